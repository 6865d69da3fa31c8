//! Mask-aware optimizers: `Optimizer` applies Adam or SGD, configured by the
//! serde type `OptimizerConfig`, to a model's `Param`s.
//!
//! The per-element update is dfdx's fused, device-generic kernel
//! (`AdamConfig::try_update`, `SgdConfig::try_update`, CPU and CUDA), which
//! follows PyTorch: L2 weight decay is added to the gradient before the
//! moments, Adam's bias correction uses the step count, and eps is added
//! outside the square root. What dfdx's own optimizers lack is masks: after
//! each update we re-apply every parameter's mask, so a pruned weight stays
//! exactly 0.0 whatever the optimizer state holds. State lives on the device
//! and is allocated on the first step; `reset` forgets it.

use dfdx::optim::{Momentum, WeightDecay};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{device_error, Error, Result};
use super::host::{self, on_cpu};
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

/// Device buffers of one parameter: Adam's two moments, or SGD's velocity.
#[derive(Debug)]
struct State<D: Device<f32>> {
    len: usize,
    first: <D as Storage<f32>>::Vec,
    second: <D as Storage<f32>>::Vec,
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

    /// dfdx's Adam configuration (for `OptimizerConfig::Adam`).
    fn adam_config(&self) -> AdamConfig {
        match self.config {
            OptimizerConfig::Adam {
                lr,
                betas,
                eps,
                weight_decay,
            } => AdamConfig {
                lr,
                betas,
                eps,
                weight_decay: l2(weight_decay),
            },
            OptimizerConfig::Sgd { .. } => unreachable!("not an Adam optimizer"),
        }
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
        if self.state.is_empty() {
            // dfdx's SGD kernel walks the velocity even without momentum, so it
            // always gets a full buffer; only Adam needs the second one.
            let adam = matches!(self.config, OptimizerConfig::Adam { .. });
            for p in params.iter() {
                let len = p.info().numel();
                let second_len = if adam { len } else { 0 };
                self.state.push(State {
                    len,
                    first: Storage::<f32>::try_alloc_len(&dev, len).map_err(device_error)?,
                    second: Storage::<f32>::try_alloc_len(&dev, second_len)
                        .map_err(device_error)?,
                });
            }
        }
        if self.state.len() != params.len()
            || self
                .state
                .iter()
                .zip(params.iter())
                .any(|(s, p)| s.len != p.info().numel())
        {
            return Err(Error::Optimizer(format!(
                "state for {} parameters, got {}",
                self.state.len(),
                params.len()
            )));
        }
        self.steps = self.steps.saturating_add(1);
        // On the CPU, Adam runs in parallel (`host::adam_update`).
        let fast_adam = match self.config {
            OptimizerConfig::Adam { .. } if on_cpu::<D>() => Some(self.adam_config()),
            _ => None,
        };
        for (p, s) in params.iter_mut().zip(&mut self.state) {
            if let Some(cfg) = &fast_adam {
                let (value, mask) = p.value_and_mask_mut();
                host::adam_update(
                    cfg,
                    self.steps,
                    value,
                    mask,
                    &mut s.first,
                    &mut s.second,
                    grads,
                )
                .map_err(device_error)?;
                continue;
            }
            let grad = grads.get_or_alloc_mut(p.value()).map_err(device_error)?;
            match self.config {
                OptimizerConfig::Adam {
                    lr,
                    betas,
                    eps,
                    weight_decay,
                } => AdamConfig {
                    lr,
                    betas,
                    eps,
                    weight_decay: l2(weight_decay),
                }
                .try_update(
                    self.steps,
                    p.value_mut(),
                    &mut s.first,
                    &mut s.second,
                    grad,
                ),
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                } => SgdConfig {
                    lr,
                    momentum: (momentum != 0.0).then_some(Momentum::Classic(momentum)),
                    weight_decay: l2(weight_decay),
                }
                .try_update(p.value_mut(), &mut s.first, grad),
            }
            .map_err(device_error)?;
            p.reapply_mask();
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

    /// The parallel CPU Adam gives the same bits as dfdx's own kernel.
    #[test]
    fn parallel_adam_matches_dfdx_bit_for_bit() {
        let dev = Cpu::default();
        let n = 40_000; // several chunks
        let cfg = AdamConfig {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: Some(WeightDecay::L2(1e-4)),
        };
        let start: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(n,));
        let coef: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(n,));
        let (mut a, mut b) = (start.clone(), start.clone());
        let alloc = || Storage::<f32>::try_alloc_len(&dev, n).unwrap();
        let (mut am1, mut am2, mut bm1, mut bm2) = (alloc(), alloc(), alloc(), alloc());
        for t in 1..=3 {
            // A gradient that depends on the current values.
            let g: Vec<f32> = a
                .as_vec()
                .iter()
                .zip(coef.as_vec())
                .map(|(x, c)| x * c)
                .collect();
            let mut grads = Gradients::leaky();
            grads.get_or_alloc_mut(&a).unwrap().copy_from_slice(&g);
            let g = grads.get_or_alloc_mut(&a).unwrap().clone();
            cfg.try_update(t, &mut b, &mut bm1, &mut bm2, &g).unwrap();
            host::adam_update(&cfg, t, &mut a, None, &mut am1, &mut am2, &mut grads).unwrap();
            let bits = |t: &Tensor<(usize,), f32, Cpu>| -> Vec<u32> {
                t.as_vec().into_iter().map(f32::to_bits).collect()
            };
            assert!(bits(&a) == bits(&b), "step {t}");
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
}
