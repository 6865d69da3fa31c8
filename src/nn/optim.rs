//! Mask-aware optimizers: `Optimizer` applies Adam, SGD or metaplastic
//! Adam, configured by the serde type `OptimizerConfig`, to a model's `Param`s.
//!
//! The per-element update follows PyTorch: L2 weight decay is added to the
//! gradient before the moments, Adam's bias correction uses the step count,
//! and eps is added outside the square root. SGD, and Adam off the CPU, run
//! dfdx's fused kernels (`SgdConfig::try_update`, `AdamConfig::try_update`);
//! on the CPU Adam runs `cpu::adam_update` (the same f32 operations, so the
//! same bits, in parallel over the parameter's host copy). What dfdx's own
//! optimizers lack is masks: after each update we re-apply every parameter's
//! mask (on the CPU in Adam's own pass), so a pruned weight stays exactly 0.0
//! whatever the optimizer state holds. State lives on the device and is
//! allocated on the first step; `reset` forgets it. Metaplastic Adam
//! (`metaplastic.rs`) keeps its moments on the host and updates there. A
//! sparse parameter (`Param::sparse_layout`) has state for its kept entries
//! only; when a mask change makes a parameter sparse or dense, or changes
//! its layout, the state follows (kept entries keep theirs).

use std::sync::Arc;

use dfdx::optim::{Momentum, WeightDecay};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::cpu::{self, on_cpu, SparseLayout};
use super::error::{device_error, Error, Result};
use super::metaplastic::adam_meta_update;
use super::param::Param;

/// Which optimizer to use and its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// PyTorch's `Adam(lr, betas, eps, weight_decay)`.
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the first and second moments.
        #[serde(default = "default_betas")]
        betas: [f64; 2],
        /// Added to the root of the second moment.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// PyTorch's `SGD(lr, momentum, weight_decay)` (no dampening, no Nesterov).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor; 0 disables the velocity buffer.
        #[serde(default)]
        momentum: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// The metaplastic Adam of Laborieux et al. 2021 (`Adam_meta`, written
    /// `adam-meta`): Adam, except that for weight tensors (two or more
    /// dimensions) an update that moves a hidden weight W_h toward zero
    /// (sign(W_h) · m > 0, m the updated first moment) steps with m scaled
    /// by 1 - tanh²(meta · |W_h|); the stored moment is not scaled. Normalization
    /// parameters and biases get plain Adam; weight decay (L2) applies to all.
    AdamMeta {
        /// Learning rate.
        lr: f64,
        /// Decay rates of the first and second moments.
        #[serde(default = "default_betas")]
        betas: [f64; 2],
        /// Added to the root of the second moment.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
        /// Metaplasticity m per weight tensor, in parameter order, or one
        /// value for all; 0 is plain Adam.
        meta: Vec<f64>,
    },
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_eps() -> f64 {
    1e-8
}

fn l2(weight_decay: f64) -> Option<WeightDecay> {
    (weight_decay != 0.0).then_some(WeightDecay::L2(weight_decay))
}

/// The optimizer state of one parameter of `len` stored elements, kept
/// for the sparse `layout` the parameter had (if any).
#[derive(Debug)]
struct State<D: Device<f32>> {
    len: usize,
    layout: Option<Arc<SparseLayout>>,
    moments: Moments<D>,
}

impl<D: Device<f32>> State<D> {
    /// Re-indexes the state for a parameter of `len` stored elements that is
    /// now sparse with `layout` (or dense): kept entries keep their state,
    /// the others start at 0. `both`: the second device buffer is in use
    /// (Adam's, not SGD's). Layouts exist on the CPU only.
    fn relayout(
        &mut self,
        dev: &D,
        len: usize,
        layout: Option<Arc<SparseLayout>>,
        both: bool,
    ) -> Result<()> {
        let (from, to) = (self.layout.as_deref(), layout.as_deref());
        match &mut self.moments {
            Moments::Host { first, second } => {
                *first = cpu::relayout(first, from, to);
                *second = cpu::relayout(second, from, to);
            }
            Moments::Device { first, second } => {
                for v in [Some(first), both.then_some(second)].into_iter().flatten() {
                    cpu::relayout_buffer(dev, v, from, to).map_err(device_error)?;
                }
            }
        }
        (self.len, self.layout) = (len, layout);
        Ok(())
    }
}

/// Where a parameter's optimizer state lives.
#[derive(Debug)]
enum Moments<D: Device<f32>> {
    /// Device buffers: Adam's two moments, or SGD's velocity (`first`).
    Device {
        first: <D as Storage<f32>>::Vec,
        second: <D as Storage<f32>>::Vec,
    },
    /// Adam's two moments on the host, for metaplastic Adam.
    Host { first: Vec<f32>, second: Vec<f32> },
}

/// The update rule of one step, from the configuration.
enum Rule {
    Adam(AdamConfig),
    Sgd(SgdConfig),
}

/// An optimizer with its state, updating parameters in place.
#[derive(Debug)]
pub struct Optimizer<D: Device<f32>> {
    config: OptimizerConfig,
    steps: i32,
    state: Vec<State<D>>,
}

impl<D: Device<f32>> Optimizer<D> {
    /// A fresh optimizer; state is allocated on the first step.
    pub fn new(config: OptimizerConfig) -> Self {
        Self {
            config,
            steps: 0,
            state: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// dfdx's Adam configuration (for `Adam` and `AdamMeta`).
    fn adam_config(&self) -> AdamConfig {
        match self.config {
            OptimizerConfig::Adam {
                lr,
                betas,
                eps,
                weight_decay,
            }
            | OptimizerConfig::AdamMeta {
                lr,
                betas,
                eps,
                weight_decay,
                ..
            } => AdamConfig {
                lr,
                betas,
                eps,
                weight_decay: l2(weight_decay),
            },
            OptimizerConfig::Sgd { .. } => unreachable!("not an Adam optimizer"),
        }
    }

    /// The metaplasticity of each parameter: `meta[k]` (or `meta[0]` for
    /// all) for the k-th tensor of two or more dimensions, 0 for the others
    /// and for every parameter of the other optimizers.
    fn metas(&self, params: &[&mut Param<D>]) -> Result<Vec<f32>> {
        let OptimizerConfig::AdamMeta { meta, .. } = &self.config else {
            return Ok(vec![0.0; params.len()]);
        };
        let is_weight = |p: &Param<D>| p.info().shape.len() >= 2;
        let weights = params.iter().filter(|p| is_weight(p)).count();
        if meta.is_empty() || (meta.len() > 1 && meta.len() != weights) {
            return Err(Error::Config(format!(
                "adam-meta has {} meta values for {weights} weight tensors; give one value, or one per tensor",
                meta.len()
            )));
        }
        let mut k = 0;
        Ok(params
            .iter()
            .map(|p| {
                if !is_weight(p) {
                    return 0.0;
                }
                k += 1;
                meta[if meta.len() == 1 { 0 } else { k - 1 }] as f32
            })
            .collect())
    }

    /// Forgets all state (moments, velocities, step count), as creating a new
    /// PyTorch optimizer does at the start of each pruning round.
    pub fn reset(&mut self) {
        self.steps = 0;
        self.state.clear();
    }

    /// One update of `params` from `grads` (the result of `backward`), in the
    /// same order on every call; masked entries stay exactly 0.0.
    pub fn step(
        &mut self,
        params: &mut [&mut Param<D>],
        grads: &mut Gradients<f32, D>,
    ) -> Result<()> {
        let Some(first) = params.first() else {
            return Ok(());
        };
        let dev = first.value().device().clone();
        let metas = self.metas(params)?;
        if self.state.is_empty() {
            // dfdx's SGD kernel walks the velocity even without momentum, so it
            // always gets a full buffer; only Adam needs the second one.
            for p in params.iter() {
                let len = p.stored_len();
                let alloc = |n| Storage::<f32>::try_alloc_len(&dev, n).map_err(device_error);
                let moments = match self.config {
                    OptimizerConfig::AdamMeta { .. } => Moments::Host {
                        first: vec![0.0; len],
                        second: vec![0.0; len],
                    },
                    OptimizerConfig::Adam { .. } => Moments::Device {
                        first: alloc(len)?,
                        second: alloc(len)?,
                    },
                    OptimizerConfig::Sgd { .. } => Moments::Device {
                        first: alloc(len)?,
                        second: alloc(0)?,
                    },
                };
                self.state.push(State {
                    len,
                    layout: p.sparse_layout(),
                    moments,
                });
            }
        }
        let both = !matches!(self.config, OptimizerConfig::Sgd { .. });
        for (s, p) in self.state.iter_mut().zip(params.iter()) {
            let layout = p.sparse_layout();
            let same = match (&s.layout, &layout) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            };
            // Only state that fits the parameter as it was (anything else is
            // the error below).
            let fits = match &s.layout {
                Some(l) => l.kept().len() == s.len && l.len() == p.info().numel(),
                None => s.len == p.info().numel(),
            };
            if !same && fits {
                s.relayout(&dev, p.stored_len(), layout, both)?;
            }
        }
        if self.state.len() != params.len()
            || self
                .state
                .iter()
                .zip(params.iter())
                .any(|(s, p)| s.len != p.stored_len())
        {
            return Err(Error::Optimizer(format!(
                "state for {} parameters, got {}",
                self.state.len(),
                params.len()
            )));
        }
        self.steps = self.steps.saturating_add(1);
        let rule = match self.config {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => Rule::Sgd(SgdConfig {
                lr,
                momentum: (momentum != 0.0).then_some(Momentum::Classic(momentum)),
                weight_decay: l2(weight_decay),
            }),
            _ => Rule::Adam(self.adam_config()),
        };
        for ((p, s), &meta) in params.iter_mut().zip(&mut self.state).zip(&metas) {
            match (&rule, &mut s.moments) {
                (Rule::Adam(cfg), Moments::Host { first, second }) => {
                    adam_meta_update(cfg, self.steps, meta, p, first, second, grads)?;
                }
                // On the CPU, Adam runs in parallel (`cpu::adam_update`).
                (Rule::Adam(cfg), Moments::Device { first, second }) if on_cpu::<D>() => {
                    p.update_on_host(|value, values, mask| {
                        cpu::adam_update(cfg, self.steps, value, values, mask, first, second, grads)
                    })
                    .map_err(device_error)?;
                }
                (Rule::Adam(cfg), Moments::Device { first, second }) => {
                    let grad = grads.get_or_alloc_mut(&p.value()).map_err(device_error)?;
                    cfg.try_update(self.steps, p.value_mut(), first, second, grad)
                        .map_err(device_error)?;
                    p.reapply_mask();
                }
                (Rule::Sgd(cfg), Moments::Device { first, .. }) => {
                    let grad = grads.get_or_alloc_mut(&p.value()).map_err(device_error)?;
                    cfg.try_update(p.value_mut(), first, grad)
                        .map_err(device_error)?;
                    p.reapply_mask();
                }
                (Rule::Sgd(_), Moments::Host { .. }) => {
                    unreachable!("only metaplastic Adam keeps its state on the host")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::param::{ParamInfo, ParamKind};

    fn param(dev: &Cpu, values: &[f32]) -> Param<Cpu> {
        let info = ParamInfo {
            name: "fc1.weight".into(),
            kind: ParamKind::FcWeight,
            shape: vec![values.len()],
        };
        Param::new(info, values.to_vec(), dev)
    }

    /// One step on the loss sum(p ⊙ c), whose gradient is c ⊙ mask.
    fn step(opt: &mut Optimizer<Cpu>, p: &mut Param<Cpu>, c: &[f32]) {
        let dev = p.value().device().clone();
        let c = dev.tensor_from_vec(c.to_vec(), (c.len(),));
        let loss = (p.effective::<OwnedTape<f32, Cpu>>() * c).sum::<Rank0, _>();
        let mut grads = loss.backward();
        opt.step(&mut [p], &mut grads).unwrap();
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((*x as f64 - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn adam_matches_pytorch_by_hand() {
        let dev = Cpu::default();
        let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
        let mut opt = Optimizer::new(OptimizerConfig::Adam {
            lr,
            betas: [b1, b2],
            eps,
            weight_decay: wd,
        });
        let mut p = param(&dev, &[1.0, -2.0, 0.5]);
        let c = [0.1f32, -0.2, 0.3];
        let mut w: Vec<f64> = vec![1.0, -2.0, 0.5];
        let (mut m, mut v) = (vec![0.0f64; 3], vec![0.0f64; 3]);
        for t in 1..=3 {
            step(&mut opt, &mut p, &c);
            for i in 0..3 {
                let g = c[i] as f64 + wd * w[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                w[i] -= lr * mh / (vh.sqrt() + eps);
            }
            close(&p.values(), &w);
        }
        // A reset restarts the bias correction: the first step moves by ~lr.
        opt.reset();
        let before = p.values();
        step(&mut opt, &mut p, &c);
        for (a, b) in p.values().iter().zip(&before) {
            assert!(((a - b).abs() - 0.01).abs() < 1e-5);
        }
    }

    #[test]
    fn sgd_with_momentum_and_decay_matches_by_hand() {
        let dev = Cpu::default();
        let mut opt = Optimizer::new(OptimizerConfig::Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
        });
        let mut p = param(&dev, &[1.0, -1.0]);
        let c = [0.5f32, 2.0];
        let mut w = vec![1.0f64, -1.0];
        let mut vel = [0.0f64; 2];
        for _ in 0..3 {
            step(&mut opt, &mut p, &c);
            for i in 0..2 {
                let g = c[i] as f64 + 0.01 * w[i];
                vel[i] = 0.9 * vel[i] + g;
                w[i] -= 0.1 * vel[i];
            }
            close(&p.values(), &w);
        }
        let mut plain = Optimizer::new(OptimizerConfig::Sgd {
            lr: 0.5,
            momentum: 0.0,
            weight_decay: 0.0,
        });
        let mut q = param(&dev, &[1.0, 1.0]);
        step(&mut plain, &mut q, &c);
        close(&q.values(), &[0.75, 0.0]);
    }

    #[test]
    fn masked_entries_stay_exactly_zero_even_with_stale_state() {
        let dev = Cpu::default();
        for config in [
            OptimizerConfig::Adam {
                lr: 0.1,
                betas: default_betas(),
                eps: default_eps(),
                weight_decay: 0.01,
            },
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.01,
            },
            adam_meta(0.1, 0.01, vec![1.0]),
        ] {
            let mut opt = Optimizer::new(config);
            let mut p = param(&dev, &[1.0, 2.0, 3.0, 4.0]);
            let c = [1.0f32, -1.0, 1.0, -1.0];
            // Momentum builds up before the mask arrives.
            step(&mut opt, &mut p, &c);
            step(&mut opt, &mut p, &c);
            p.set_mask(Some(&[1.0, 0.0, 1.0, 0.0])).unwrap();
            for _ in 0..5 {
                step(&mut opt, &mut p, &c);
                let v = p.values();
                assert_eq!((v[1], v[3]), (0.0, 0.0));
                assert!(v[0] != 0.0 && v[2] != 0.0);
            }
        }
    }

    #[test]
    fn config_defaults_and_state_mismatch() {
        let c: OptimizerConfig = serde_json::from_str(r#"{"type":"adam","lr":0.0012}"#).unwrap();
        assert_eq!(
            c,
            OptimizerConfig::Adam {
                lr: 0.0012,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.0
            }
        );
        assert!(serde_json::from_str::<OptimizerConfig>(
            r#"{"type":"sgd","lr":1,"nesterov":true}"#
        )
        .is_err());
        let dev = Cpu::default();
        let mut opt = Optimizer::new(c);
        let mut p = param(&dev, &[1.0, 2.0]);
        step(&mut opt, &mut p, &[1.0, 1.0]);
        let mut q = param(&dev, &[1.0, 2.0, 3.0]);
        let loss = q.effective::<OwnedTape<f32, Cpu>>().sum::<Rank0, _>();
        let mut grads = loss.backward();
        assert!(matches!(
            opt.step(&mut [&mut q], &mut grads),
            Err(Error::Optimizer(_))
        ));
    }

    fn shaped(
        dev: &Cpu,
        name: &str,
        kind: ParamKind,
        shape: Vec<usize>,
        values: Vec<f32>,
    ) -> Param<Cpu> {
        Param::new(
            ParamInfo {
                name: name.into(),
                kind,
                shape,
            },
            values,
            dev,
        )
    }

    fn adam_meta(lr: f64, weight_decay: f64, meta: Vec<f64>) -> OptimizerConfig {
        OptimizerConfig::AdamMeta {
            lr,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay,
            meta,
        }
    }

    /// One step on the loss Σ_k sum(p_k² ⊙ c_k), whose gradients depend on the values.
    fn quadratic_step(
        opt: &mut Optimizer<Cpu>,
        ps: &mut [Param<Cpu>],
        cs: &[Tensor<(usize,), f32, Cpu>],
    ) -> Result<()> {
        let mut loss = None;
        for (p, c) in ps.iter().zip(cs) {
            let term =
                (p.effective::<OwnedTape<f32, Cpu>>().square() * c.clone()).sum::<Rank0, _>();
            loss = Some(match loss {
                None => term,
                Some(l) => l + term,
            });
        }
        let mut grads = loss.expect("at least one parameter").backward();
        let mut refs: Vec<&mut Param<Cpu>> = ps.iter_mut().collect();
        opt.step(&mut refs, &mut grads)
    }

    #[test]
    fn adam_meta_with_zero_meta_is_adam_bit_for_bit() {
        let dev = Cpu::default();
        // The weight is large enough for the parallel chunks.
        let w: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(70_000,));
        let make = || {
            vec![
                shaped(
                    &dev,
                    "fc1.weight",
                    ParamKind::FcWeight,
                    vec![350, 200],
                    w.as_vec(),
                ),
                shaped(
                    &dev,
                    "bn1.weight",
                    ParamKind::Norm,
                    vec![5],
                    vec![1.0, -0.5, 0.2, 0.0, 3.0],
                ),
            ]
        };
        let cs = [
            dev.sample_normal_like(&(70_000,)),
            dev.sample_normal_like(&(5,)),
        ];
        let (mut a, mut b) = (make(), make());
        let mut adam = Optimizer::new(OptimizerConfig::Adam {
            lr: 5e-3,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 1e-4,
        });
        let mut meta = Optimizer::new(adam_meta(5e-3, 1e-4, vec![0.0]));
        let bits = |ps: &[Param<Cpu>]| -> Vec<u32> {
            ps.iter()
                .flat_map(|p| p.values())
                .map(f32::to_bits)
                .collect()
        };
        for t in 0..4 {
            quadratic_step(&mut adam, &mut a, &cs).unwrap();
            quadratic_step(&mut meta, &mut b, &cs).unwrap();
            assert!(bits(&a) == bits(&b), "step {t}");
        }
        assert!(bits(&a) != bits(&make()));
    }

    #[test]
    fn adam_meta_attenuates_only_steps_toward_zero() {
        let dev = Cpu::default();
        let (lr, b1, b2, eps, wd) = (0.1, 0.9, 0.999, 1e-8, 0.01);
        let start = vec![0.5f32, -0.5, 0.0];
        // Two weight tensors (meta 1.3 and 2.0) around a normalization vector.
        let mut ps = vec![
            shaped(
                &dev,
                "fc1.weight",
                ParamKind::FcWeight,
                vec![1, 3],
                start.clone(),
            ),
            shaped(&dev, "bn1.bias", ParamKind::Norm, vec![3], start.clone()),
            shaped(
                &dev,
                "out.weight",
                ParamKind::OutputWeight,
                vec![3, 1],
                start.clone(),
            ),
        ];
        let metas = [1.3, 0.0, 2.0];
        let mut opt = Optimizer::new(adam_meta(lr, wd, vec![1.3, 2.0]));
        let c = [1.0f32, 1.0, 1.0];
        let mut w = vec![start.iter().map(|&x| x as f64).collect::<Vec<_>>(); 3];
        let (mut m, mut v) = (vec![vec![0.0f64; 3]; 3], vec![vec![0.0f64; 3]; 3]);
        for t in 1..=3 {
            // The loss sum(p ⊙ c) over every parameter: gradient c.
            let mut loss = None;
            for p in &ps {
                let cst = dev.tensor_from_vec(c.to_vec(), (3,));
                let term = (p.effective::<OwnedTape<f32, Cpu>>() * cst).sum::<Rank0, _>();
                loss = Some(match loss {
                    None => term,
                    Some(l) => l + term,
                });
            }
            let mut grads = loss.unwrap().backward();
            let before: Vec<Vec<f32>> = ps.iter().map(|p| p.values()).collect();
            let mut refs: Vec<&mut Param<Cpu>> = ps.iter_mut().collect();
            opt.step(&mut refs, &mut grads).unwrap();
            for k in 0..3 {
                for i in 0..3 {
                    let g = c[i] as f64 + wd * w[k][i];
                    m[k][i] = b1 * m[k][i] + (1.0 - b1) * g;
                    v[k][i] = b2 * v[k][i] + (1.0 - b2) * g * g;
                    let shrinks = w[k][i].signum() * m[k][i] > 0.0 && w[k][i] != 0.0;
                    let f = if shrinks {
                        1.0 - (metas[k] * w[k][i].abs()).tanh().powi(2)
                    } else {
                        1.0
                    };
                    let mh = f * m[k][i] / (1.0 - b1.powi(t));
                    let vh = v[k][i] / (1.0 - b2.powi(t));
                    w[k][i] -= lr * mh / (vh.sqrt() + eps);
                }
                // f32 bias corrections with lr 0.1: errors of ~1e-6.
                for (a, b) in ps[k].values().iter().zip(&w[k]) {
                    assert!((*a as f64 - b).abs() < 1e-5, "{k}: {a} vs {b}");
                }
            }
            if t == 1 {
                // The first step moves every entry by ~lr, except a weight
                // being pulled toward zero: 0.5 in fc1 moves by lr·(1 - tanh²(0.65)).
                let step = |k: usize, i: usize| (ps[k].values()[i] - before[k][i]).abs() as f64;
                let f = 1.0 - 0.65f64.tanh().powi(2);
                assert!((step(0, 0) - lr * f).abs() < 1e-5, "{}", step(0, 0));
                for (k, i) in [(0, 1), (0, 2), (1, 0), (1, 1), (2, 1), (2, 2)] {
                    assert!((step(k, i) - lr).abs() < 1e-5, "{k} {i}: {}", step(k, i));
                }
                assert!(step(2, 0) < step(0, 0), "meta 2.0 attenuates more than 1.3");
            }
        }
    }

    /// A sparse parameter (state for its kept entries only) gets the dense
    /// masked path's values exactly, for every optimizer, including when a
    /// mask set mid-training makes it sparse (its kept entries keep their
    /// moments) and when removing the mask makes it dense again.
    #[test]
    fn sparse_parameters_update_as_dense_masked_ones() {
        let dev = Cpu::default();
        let n = 200;
        let start: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        // 10 of 200 kept: sparse.
        let mask: Vec<f32> = (0..n).map(|i| (i % 20 == 3) as u8 as f32).collect();
        let c =
            vec![dev.tensor_from_vec((0..n).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect(), (n,))];
        for config in [
            OptimizerConfig::Adam {
                lr: 0.05,
                betas: default_betas(),
                eps: default_eps(),
                weight_decay: 0.01,
            },
            OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 0.01,
            },
            adam_meta(0.05, 0.01, vec![1.3]),
        ] {
            let run = |sparse: bool| {
                let mut opt = Optimizer::new(config.clone());
                let w = shaped(
                    &dev,
                    "fc1.weight",
                    ParamKind::FcWeight,
                    vec![20, 10],
                    start.clone(),
                );
                let mut ps = vec![w];
                let mut trace = Vec::new();
                for t in 0..8 {
                    if t == 2 {
                        ps[0].set_mask(Some(&mask)).unwrap();
                        assert!(ps[0].sparse_layout().is_some());
                        if !sparse {
                            ps[0].force_layout(false);
                        }
                    }
                    if t == 6 {
                        ps[0].set_mask(None).unwrap();
                    }
                    quadratic_step(&mut opt, &mut ps, &c).unwrap();
                    trace.push(ps[0].values());
                }
                trace
            };
            let (sparse, dense) = (run(true), run(false));
            for (t, (a, b)) in sparse.iter().zip(&dense).enumerate() {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    // After the mask goes, formerly masked entries restart
                    // from fresh state in the sparse run, from stale state in the dense one.
                    if t < 6 || mask[i] == 1.0 {
                        assert!(x == y, "{config:?} step {t} [{i}]: {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn adam_meta_config_and_its_errors() {
        let c: OptimizerConfig =
            serde_yaml::from_str("{type: adam-meta, lr: 0.005, meta: [1.35]}").unwrap();
        assert_eq!(c, adam_meta(0.005, 0.0, vec![1.35]));
        assert!(serde_yaml::from_str::<OptimizerConfig>("{type: adam-meta, lr: 0.005}").is_err());
        let dev = Cpu::default();
        let weights = |n: usize| -> Vec<Param<Cpu>> {
            (0..n)
                .map(|i| {
                    shaped(
                        &dev,
                        &format!("fc{i}.weight"),
                        ParamKind::FcWeight,
                        vec![2, 1],
                        vec![0.1, -0.1],
                    )
                })
                .collect()
        };
        let cs = vec![dev.tensor_from_vec(vec![1.0f32, 1.0], (2,)); 3];
        for bad in [vec![], vec![1.0, 2.0]] {
            let mut opt = Optimizer::new(adam_meta(0.1, 0.0, bad));
            let err = quadratic_step(&mut opt, &mut weights(3), &cs).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err}");
        }
        for good in [vec![1.0], vec![1.0, 2.0, 3.0]] {
            let mut opt = Optimizer::new(adam_meta(0.1, 0.0, good));
            quadratic_step(&mut opt, &mut weights(3), &cs).unwrap();
        }
    }
}
