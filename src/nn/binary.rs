//! `BinaryNet`: the binarized fully connected classifier of "Synaptic
//! metaplasticity in binarized neural networks" (Laborieux et al. 2021),
//! and its full-precision variant, built from a `BinaryConfig`.
//!
//! Every layer is FC (no bias) -> normalization; hidden layers then apply
//! sign (ReLU in the full-precision variant); the output is FC -> norm,
//! the logits. In the binary network the forward pass uses sign(W_h) of the
//! hidden weights W_h, whose gradient is the binary weights' (identity
//! straight-through estimator); activations are sign(x) with the hardtanh
//! estimator (gradient only where |x| <= 1). sign(0) = 0, as `torch.sign`.
//! Hidden weights are never clipped. Raw inputs stay real unless
//! `binarize_input` (the paper's CIFAR-feature networks). On the CPU,
//! evaluation multiplies the hidden layers after the first bit-packed (XNOR
//! and popcount; `BinaryKernels`), with the float path's bits.
//!
//! Normalization state (γ/β of batch norm, the running statistics of
//! `batch-running`) is per task: `select_task(t)` stores the active state
//! under the current task and makes task t's active, restoring what t had
//! when it was left, or keeping the current state if t is new (as the
//! paper's code, which saves the BN state after each task and loads it to
//! test that task). Only the active γ/β are in `params()`, hence seen by
//! optimizers and checkpoints, and only the active running statistics in
//! `buffers()`; the other tasks' live in the network.
//! Optimizer moments follow parameter positions, not tasks: use a fresh
//! optimizer (the paper creates one per task) after switching the task you
//! train on.

use std::collections::BTreeMap;

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{BiasInit, InitConfig, InputShape, WeightInit};
use super::cpu::{self, on_cpu};
use super::error::{Error, Result};
use super::init::Initializer;
use super::model::{Buffer, Model};
use super::norm::{instance_norm, BatchNorm, NormKind, RunningBatchNorm};
use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// The architecture of a `BinaryNet`, e.g. in YAML
/// `{hidden: [4096, 4096], binary: true, init_width: 0.1, norm: batch}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryConfig {
    /// Widths of the hidden layers, input side first (may be empty).
    pub hidden: Vec<usize>,
    /// Binary weights and sign activations; `false` gives the paper's
    /// full-precision network (real weights, ReLU, same normalization).
    #[serde(default = "default_binary")]
    pub binary: bool,
    /// Weights start U(-init_width/2, init_width/2) (the paper's `--init
    /// uniform --init-width`).
    #[serde(default = "default_init_width")]
    pub init_width: f32,
    /// The normalization after every layer.
    #[serde(default)]
    pub norm: NormKind,
    /// Binarize the network's input too (the paper's code does for every
    /// input that is not 784 MNIST pixels, e.g. 512-d CIFAR features);
    /// only with `binary`.
    #[serde(default)]
    pub binarize_input: bool,
}

fn default_binary() -> bool {
    true
}

fn default_init_width() -> f32 {
    0.1
}

/// How a binarized network evaluates (no tape) its hidden layers after the
/// first, whose inputs are the previous layer's signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BinaryKernels {
    /// Bit-packed XNOR and popcount on the CPU where every weight sign and
    /// input is ±1 (a zero falls back to `Float`): the same bits, several
    /// times faster.
    #[default]
    Packed,
    /// Float products, as in training; kept to measure `Packed` against.
    Float,
}

/// The normalization of one layer.
#[derive(Debug, Clone)]
enum Norm<D: Device<f32>> {
    Batch(Box<BatchNorm<D>>),
    Instance,
    Running(RunningBatchNorm),
}

/// FC (weight [out, in], no bias) -> normalization.
#[derive(Debug, Clone)]
struct Layer<D: Device<f32>> {
    weight: Param<D>,
    /// sign(W_h) bit-packed for evaluation, packed on first use.
    packed: cpu::PackedWeights,
    norm: Norm<D>,
    inputs: usize,
    outputs: usize,
}

/// A binarized (or full-precision) fully connected classifier with a
/// normalization after every layer and per-task batch-norm parameters.
#[derive(Debug, Clone)]
pub struct BinaryNet<D: Device<f32>> {
    config: BinaryConfig,
    shape: InputShape,
    layers: Vec<Layer<D>>,
    task: usize,
    saved: BTreeMap<usize, Vec<Norm<D>>>,
    kernels: BinaryKernels,
    dev: D,
}

impl<D: Device<f32>> BinaryNet<D> {
    /// Builds `config` for inputs of `shape`, drawing the weights layer by
    /// layer from a ChaCha8 stream seeded with `seed`. The active task is 0.
    pub fn new(config: &BinaryConfig, shape: InputShape, seed: u64, dev: &D) -> Result<Self> {
        let fail = |reason: &str| Error::Config(format!("binary network: {reason}"));
        if shape.features() == 0 || shape.classes == 0 {
            return Err(fail(
                "every input dimension and the class count must be positive",
            ));
        }
        if config.hidden.contains(&0) {
            return Err(fail("hidden layer widths must be positive"));
        }
        if !(config.init_width.is_finite() && config.init_width > 0.0) {
            return Err(fail("init_width must be positive"));
        }
        if config.binarize_input && !config.binary {
            return Err(fail("binarize_input needs binary: true"));
        }
        let mut init = Initializer::new(
            InitConfig {
                weight: WeightInit::Uniform {
                    width: config.init_width / 2.0,
                },
                bias: BiasInit::Zeros,
            },
            seed,
        );
        let last = config.hidden.len();
        let widths = config.hidden.iter().copied().chain([shape.classes]);
        let mut inputs = shape.features();
        let mut layers = Vec::new();
        for (i, outputs) in widths.enumerate() {
            let (fc, bn, kind) = if i == last {
                (
                    "out".to_string(),
                    "bnout".to_string(),
                    ParamKind::OutputWeight,
                )
            } else {
                (
                    format!("fc{}", i + 1),
                    format!("bn{}", i + 1),
                    ParamKind::FcWeight,
                )
            };
            let info = ParamInfo {
                name: format!("{fc}.weight"),
                kind,
                shape: vec![outputs, inputs],
            };
            let values = init.weights(outputs * inputs, inputs, outputs);
            let norm = match config.norm {
                NormKind::Batch => Norm::Batch(Box::new(BatchNorm::new(&bn, outputs, dev))),
                NormKind::Instance => Norm::Instance,
                NormKind::BatchRunning => Norm::Running(RunningBatchNorm::new(outputs)),
            };
            layers.push(Layer {
                weight: Param::new(info, values, dev),
                packed: cpu::PackedWeights::default(),
                norm,
                inputs,
                outputs,
            });
            inputs = outputs;
        }
        Ok(Self {
            config: config.clone(),
            shape,
            layers,
            task: 0,
            saved: BTreeMap::new(),
            kernels: BinaryKernels::default(),
            dev: dev.clone(),
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &BinaryConfig {
        &self.config
    }

    /// Chooses how evaluation multiplies the binarized hidden layers.
    pub fn set_kernels(&mut self, kernels: BinaryKernels) {
        self.kernels = kernels;
    }

    /// The task whose normalization parameters are active.
    pub fn task(&self) -> usize {
        self.task
    }

    /// The weight matrix used by the forward pass: sign(W_h ⊙ M) with the
    /// identity estimator in the binary network, W ⊙ M otherwise.
    fn weight_matrix<T: Tape<f32, D>>(&self, layer: &Layer<D>) -> Matrix<D, T> {
        let w = layer.weight.effective::<T>();
        let w = if self.config.binary {
            sign_ste(w, false)
        } else {
            w
        };
        w.reshape_like(&(layer.outputs, layer.inputs))
    }

    /// W as it is (not its signs), for `cpu::sign_matmul` to multiply by its
    /// signs: in a binarized network where our kernel runs that product. It
    /// reads the signs from the host copy, so the tensor only routes the
    /// gradient (`on_tape`).
    fn sign_weight<T: Tape<f32, D>>(&self, layer: &Layer<D>) -> Option<Matrix<D, T>> {
        (self.config.binary && cpu::signs_on_kernel(&layer.weight)).then(|| {
            let w = layer.weight.on_tape::<T>();
            w.reshape_like(&(layer.outputs, layer.inputs))
        })
    }

    /// The parameter whose values `weight_matrix` uses as they are: the weight
    /// of a full-precision network, none for a binarized one.
    fn real_weight<'a>(&self, layer: &'a Layer<D>) -> Option<&'a Param<D>> {
        (!self.config.binary).then_some(&layer.weight)
    }

    /// sign(W_h) · h by XNOR and popcount, where that applies: evaluation
    /// (no tape) of a binarized layer on the CPU with `Packed` kernels, a
    /// dense weight, and every sign and input ±1 (`h` is the previous layer's
    /// sign). `None` means: use the float product.
    fn packed_product<T: Tape<f32, D>>(
        &self,
        layer: &Layer<D>,
        h: &Matrix<D, T>,
    ) -> Option<Matrix<D, T>> {
        let applies = !T::OWNS_TAPE
            && self.config.binary
            && self.kernels == BinaryKernels::Packed
            && on_cpu::<D>()
            && layer.weight.sparse_layout().is_none();
        if !applies {
            return None;
        }
        let w = layer.weight.host_values();
        let z = packed_sign_product(&layer.packed, &w, (layer.outputs, layer.inputs), h)?;
        Some(z.put_tape(T::default()))
    }

    /// Normalization, then (for a hidden layer) the activation; on the CPU
    /// batch norm and sign (or batch norm alone) run as one fused op.
    fn tail<T: Tape<f32, D>>(
        &self,
        layer: &Layer<D>,
        z: Matrix<D, T>,
        hidden: bool,
    ) -> Matrix<D, T> {
        if on_cpu::<D>() && (self.config.binary || !hidden) {
            match &layer.norm {
                Norm::Batch(bn) => {
                    let affine = (bn.weight.effective::<T>(), bn.bias.effective::<T>());
                    return cpu::batch_norm_sign(z, Some(affine), hidden);
                }
                Norm::Running(bn) if T::OWNS_TAPE => {
                    bn.observe(&z);
                    return cpu::batch_norm_sign(z, None, hidden);
                }
                _ => {}
            }
        }
        let z = match &layer.norm {
            Norm::Batch(bn) => bn.forward(z),
            Norm::Instance => instance_norm(z),
            Norm::Running(bn) => bn.forward(z),
        };
        match (hidden, self.config.binary) {
            (false, _) => z,
            (true, true) => sign_ste(z, true),
            (true, false) => z.relu(),
        }
    }

    /// The running-statistics norms with the PyTorch names of their
    /// buffers' layer (`bn1`, ..., `bnout`).
    fn running_norms(&self) -> impl Iterator<Item = (String, &RunningBatchNorm)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match &l.norm {
                Norm::Running(bn) => Some((self.norm_name(i), bn)),
                _ => None,
            })
    }

    /// `bn<i+1>`, or `bnout` for the output layer.
    fn norm_name(&self, i: usize) -> String {
        if i + 1 == self.layers.len() {
            "bnout".into()
        } else {
            format!("bn{}", i + 1)
        }
    }
}

/// sign(W) · h on the CPU by XNOR and popcount, for W's host values `w`
/// (`outputs` × `inputs`, packed once into `packed`, which also lends the
/// host buffers) and `h` (`inputs` × batch, every value ±1); `None` if a
/// sign or an input is 0. What a
/// binarized hidden layer's evaluation multiplies with `Packed` kernels
/// (and `repro bench` measures on its own).
pub(crate) fn packed_sign_product<D: Device<f32>, T>(
    packed: &cpu::PackedWeights,
    w: &std::sync::Arc<Vec<f32>>,
    (outputs, inputs): (usize, usize),
    h: &Matrix<D, T>,
) -> Option<Matrix<D>> {
    let batch = h.shape().1;
    let ws = packed.get(w, outputs, inputs)?;
    packed.with_buffers(|input, output| {
        input.resize(inputs * batch, 0.0);
        h.copy_into(input);
        cpu::xnor_matmul(&ws, input, (outputs, inputs, batch), output)?;
        Some(cpu::upload(h.device(), output, (outputs, batch)))
    })
}

/// Suffixes of a running-statistics norm's buffers, PyTorch's names.
const RUNNING_MEAN: &str = "running_mean";
const RUNNING_VAR: &str = "running_var";

impl<D: Device<f32>> Model<D> for BinaryNet<D> {
    fn input_shape(&self) -> InputShape {
        self.shape
    }

    /// Stores the active normalization state under the current task and
    /// activates `task`'s (unchanged if `task` has none stored yet).
    fn select_task(&mut self, task: usize) {
        if task == self.task {
            return;
        }
        let incoming = self.saved.remove(&task);
        let mut outgoing = Vec::new();
        let mut incoming = incoming.into_iter().flatten();
        for layer in &mut self.layers {
            match incoming.next() {
                Some(stored) => outgoing.push(std::mem::replace(&mut layer.norm, stored)),
                None => outgoing.push(layer.norm.clone()),
            }
        }
        self.saved.insert(self.task, outgoing);
        self.task = task;
    }

    fn device(&self) -> &D {
        &self.dev
    }

    fn forward<T: Tape<f32, D>>(&self, x: Matrix<D>) -> Matrix<D, T> {
        let x = if self.config.binarize_input {
            sign_ste::<_, D, NoneTape>(x, false)
        } else {
            x
        };
        let last = self.layers.len() - 1;
        // The input is data: on the CPU the first layer's backward skips its gradient.
        let first = &self.layers[0];
        let z = match self.sign_weight::<T>(first) {
            Some(w) => cpu::sign_matmul(w, &first.weight, x),
            None => {
                let w = self.weight_matrix::<T>(first);
                cpu::matmul_no_input_grad(w, self.real_weight(first), x)
            }
        };
        let mut h = self.tail(first, z, last > 0);
        for (i, layer) in self.layers.iter().enumerate().skip(1) {
            let z = if let Some(z) = self.packed_product::<T>(layer, &h) {
                z
            } else if let Some(w) = self.sign_weight::<T>(layer) {
                cpu::sign_matmul(w, &layer.weight, h)
            } else {
                cpu::matmul(self.weight_matrix::<T>(layer), self.real_weight(layer), h)
            };
            h = self.tail(layer, z, i < last);
        }
        h
    }

    /// On our kernel, for a binarized network with `Packed` kernels, real
    /// inputs, batch norm on the batch's statistics and dense weights:
    /// `cpu::binary_logits`.
    fn host_logits(&self, examples: &[f32], n: usize) -> Option<Vec<f32>> {
        if !self.config.binary
            || self.config.binarize_input
            || self.kernels != BinaryKernels::Packed
        {
            return None;
        }
        let mut layers = Vec::new();
        for layer in &self.layers {
            let Norm::Batch(bn) = &layer.norm else {
                return None;
            };
            if layer.weight.sparse_layout().is_some() {
                return None;
            }
            layers.push(cpu::BinaryLayer {
                weight: layer.weight.host_values(),
                packed: &layer.packed,
                gamma: bn.weight.host_values(),
                beta: bn.bias.host_values(),
            });
        }
        cpu::binary_logits::<D>(&layers, examples, n)
    }

    fn params(&self) -> Vec<&Param<D>> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.push(&l.weight);
            if let Norm::Batch(bn) = &l.norm {
                out.extend([&bn.weight, &bn.bias]);
            }
        }
        out
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        let mut out = Vec::new();
        for l in &mut self.layers {
            out.push(&mut l.weight);
            if let Norm::Batch(bn) = &mut l.norm {
                out.extend([&mut bn.weight, &mut bn.bias]);
            }
        }
        out
    }

    /// `bn<i>.running_mean` and `bn<i>.running_var` of every
    /// `batch-running` norm.
    fn buffers(&self) -> Vec<Buffer> {
        let mut out = Vec::new();
        for (name, bn) in self.running_norms() {
            let stats = bn.stats();
            out.push(Buffer::new(format!("{name}.{RUNNING_MEAN}"), stats.mean));
            out.push(Buffer::new(format!("{name}.{RUNNING_VAR}"), stats.var));
        }
        out
    }

    fn set_buffer(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let known: Vec<String> = self.buffers().into_iter().map(|b| b.name).collect();
        let unknown = || Error::UnknownParam {
            name: name.into(),
            known: known.join(", "),
        };
        let (layer, suffix) = name.rsplit_once('.').ok_or_else(unknown)?;
        let index = (0..self.layers.len()).find(|&i| self.norm_name(i) == layer);
        let Some(Norm::Running(bn)) = index.map(|i| &mut self.layers[i].norm) else {
            return Err(unknown());
        };
        let mut stats = bn.stats();
        let target = match suffix {
            RUNNING_MEAN => &mut stats.mean,
            RUNNING_VAR => &mut stats.var,
            _ => return Err(unknown()),
        };
        if values.len() != target.len() {
            return Err(Error::Config(format!(
                "buffer `{name}` has {} values, the layer {}",
                values.len(),
                target.len()
            )));
        }
        target.copy_from_slice(values);
        bn.set_stats(stats);
        Ok(())
    }
}

/// sign(x) with a straight-through gradient (all of it, or with `clip`
/// only where |x| <= 1): one host pass on the CPU, dfdx ops elsewhere.
fn sign_ste<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    clip: bool,
) -> Tensor<S, f32, D, T> {
    if on_cpu::<D>() {
        cpu::sign_ste(x, clip)
    } else {
        sign_ste_generic(x, clip)
    }
}

/// `sign_ste` from dfdx ops by the detach trick: s - s' + sign(x), where s
/// (x, or hardtanh(x) with `clip`) carries the tape and its copy s' does
/// not. s - s' is exactly 0, so the values are exactly sign(x).
fn sign_ste_generic<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    clip: bool,
) -> Tensor<S, f32, D, T> {
    let shape = *x.shape();
    let dev = x.device().clone();
    let ones = dev.ones_like(&shape);
    let target = x.gt(0.0).choose(
        ones.clone(),
        x.lt(0.0).choose(-ones, dev.zeros_like(&shape)),
    );
    let s = if clip { x.clamp(-1.0, 1.0) } else { x };
    // `+ 0.0` makes a new tensor: a retaped one would share s's gradient slot.
    let detached = s.retaped::<NoneTape>() + 0.0;
    (s - detached) + target
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::optim::{Optimizer, OptimizerConfig};
    use crate::nn::train::tests::{adam, blobs, SHAPE};
    use crate::nn::train::{evaluate, train_epoch};

    fn config(hidden: Vec<usize>, binary: bool) -> BinaryConfig {
        BinaryConfig {
            hidden,
            binary,
            init_width: 0.1,
            norm: NormKind::Batch,
            binarize_input: false,
        }
    }

    #[test]
    fn config_reads_yaml_with_defaults() {
        let c: BinaryConfig = serde_yaml::from_str("hidden: [64, 32]").unwrap();
        assert_eq!(c, config(vec![64, 32], true));
        let c: BinaryConfig =
            serde_yaml::from_str("{hidden: [], binary: false, norm: instance, init_width: 0.2}")
                .unwrap();
        assert!(!c.binary && c.norm == NormKind::Instance && c.init_width == 0.2);
        assert!(serde_yaml::from_str::<BinaryConfig>("{hidden: [], meta: 1}").is_err());
        let dev = Cpu::default();
        let bad = BinaryConfig {
            binarize_input: true,
            ..config(vec![4], false)
        };
        assert!(matches!(
            BinaryNet::new(&bad, SHAPE, 0, &dev),
            Err(Error::Config(_))
        ));
        assert!(BinaryNet::new(&config(vec![0], true), SHAPE, 0, &dev).is_err());
    }

    #[test]
    fn layers_names_kinds_and_seeded_init() {
        let dev = Cpu::default();
        let net = BinaryNet::new(&config(vec![8, 6], true), SHAPE, 3, &dev).unwrap();
        let infos = net.param_infos();
        let names: Vec<_> = infos.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fc1.weight",
                "bn1.weight",
                "bn1.bias",
                "fc2.weight",
                "bn2.weight",
                "bn2.bias",
                "out.weight",
                "bnout.weight",
                "bnout.bias"
            ]
        );
        let kinds: Vec<_> = infos.iter().map(|i| i.kind).collect();
        assert_eq!(kinds[0], ParamKind::FcWeight);
        assert_eq!(kinds[1], ParamKind::Norm);
        assert_eq!(kinds[6], ParamKind::OutputWeight);
        assert_eq!(infos[3].shape, vec![6, 8]);
        assert_eq!(infos[8].shape, vec![4]);
        let w = net.param("fc1.weight").unwrap().values();
        assert!(w.iter().all(|v| v.abs() <= 0.05));
        assert!(w.iter().any(|v| v.abs() > 0.04));
        assert_eq!(net.param("bn2.weight").unwrap().values(), vec![1.0; 6]);
        let same = BinaryNet::new(&config(vec![8, 6], true), SHAPE, 3, &dev).unwrap();
        assert_eq!(
            same.param("out.weight").unwrap().values(),
            net.param("out.weight").unwrap().values()
        );
        let other = BinaryNet::new(&config(vec![8, 6], true), SHAPE, 4, &dev).unwrap();
        assert_ne!(other.param("fc1.weight").unwrap().values(), w);
        assert!(net
            .param("bn1.weight")
            .unwrap()
            .clone()
            .set_mask(Some(&[1.0; 8]))
            .is_err());
    }

    /// Gradients of sum(sign_ste(x) ⊙ r) on both paths.
    #[test]
    fn straight_through_estimators() {
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(vec![-2.0f32, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5], (7,));
        let r = dev.tensor_from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], (7,));
        for clip in [false, true] {
            for generic in [false, true] {
                let xt = x.retaped::<OwnedTape<f32, Cpu>>();
                let y = if generic {
                    sign_ste_generic(xt, clip)
                } else {
                    cpu::sign_ste(xt, clip)
                };
                assert_eq!(y.as_vec(), [-1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0]);
                let g = (y * r.clone())
                    .sum::<Rank0, _>()
                    .backward()
                    .get(&x)
                    .as_vec();
                let want = if clip {
                    vec![0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]
                } else {
                    r.as_vec()
                };
                assert_eq!(g, want, "clip {clip}, generic {generic}");
            }
        }
    }

    /// The hidden weights get the gradient of the binary weights they stand for.
    #[test]
    fn hidden_weights_get_the_binary_weights_gradient() {
        let dev = Cpu::default();
        let shape = InputShape {
            channels: 1,
            height: 1,
            width: 3,
            classes: 2,
        };
        let mut net = BinaryNet::new(&config(vec![], true), shape, 0, &dev).unwrap();
        net.param_mut("out.weight")
            .unwrap()
            .set_values(&[0.01, -0.02, 0.0, 0.03, 0.04, -0.05])
            .unwrap();
        let x = dev.tensor_from_vec(vec![1.0f32, -1.0, 2.0, 0.5, 3.0, 1.0], (3, 2));
        let r = dev.tensor_from_vec(vec![1.0f32, -2.0, 0.5, 3.0], (2, 2));
        let y = net.forward::<OwnedTape<f32, Cpu>>(x.clone());
        let g = (y * r.clone()).sum::<Rank0, _>().backward();
        let gw = g.get(&net.param("out.weight").unwrap().value()).as_vec();
        // The same loss through a real-valued layer holding sign(W_h).
        let mut real = BinaryNet::new(&config(vec![], false), shape, 0, &dev).unwrap();
        real.param_mut("out.weight")
            .unwrap()
            .set_values(&[1.0, -1.0, 0.0, 1.0, 1.0, -1.0])
            .unwrap();
        let y = real.forward::<OwnedTape<f32, Cpu>>(x);
        let g = (y * r).sum::<Rank0, _>().backward();
        let want = g.get(&real.param("out.weight").unwrap().value()).as_vec();
        for (a, b) in gw.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{gw:?} vs {want:?}");
        }
        assert!(gw.iter().any(|v| v.abs() > 1e-3));
    }

    #[test]
    fn evaluation_uses_batch_statistics() {
        let dev = Cpu::default();
        let net = BinaryNet::new(&config(vec![16], true), SHAPE, 1, &dev).unwrap();
        let (x, _) = blobs(6, 9);
        let features = SHAPE.features();
        let columns = |rows: &[usize]| {
            let mut v = vec![0.0f32; features * rows.len()];
            for (j, &i) in rows.iter().enumerate() {
                for f in 0..features {
                    v[f * rows.len() + j] = x[i * features + f];
                }
            }
            dev.tensor_from_vec(v, (features, rows.len()))
        };
        let logits = |rows: &[usize]| net.forward::<NoneTape>(columns(rows)).as_vec();
        // Example 0's logits depend on the rest of its batch...
        let (a, b) = (logits(&[0, 1, 2]), logits(&[0, 3, 4]));
        assert!((0..4).any(|c| a[c * 3] != b[c * 3]));
        // ...and the output rows are normalized over the batch.
        for c in 0..4 {
            let row = &a[c * 3..c * 3 + 3];
            let mean: f32 = row.iter().sum::<f32>() / 3.0;
            assert!(mean.abs() < 1e-5, "{row:?}");
        }
    }

    #[test]
    fn each_task_keeps_its_own_batch_norm() {
        let dev = Cpu::default();
        let mut net = BinaryNet::new(&config(vec![5], true), SHAPE, 2, &dev).unwrap();
        let (x, _) = blobs(8, 1);
        let input = || {
            let mut v = vec![0.0f32; x.len()];
            for i in 0..8 {
                for f in 0..20 {
                    v[f * 8 + i] = x[i * 20 + f];
                }
            }
            dev.tensor_from_vec(v, (20, 8))
        };
        let set = |net: &mut BinaryNet<Cpu>, v: f32| {
            net.param_mut("bn1.bias")
                .unwrap()
                .set_values(&[v; 5])
                .unwrap();
            net.param_mut("bnout.weight")
                .unwrap()
                .set_values(&[v; 4])
                .unwrap();
        };
        let bias = |net: &BinaryNet<Cpu>| net.param("bn1.bias").unwrap().values()[0];
        set(&mut net, 0.5);
        let out0 = net.forward::<NoneTape>(input()).as_vec();
        net.select_task(1);
        assert_eq!(net.task(), 1);
        assert_eq!(bias(&net), 0.5, "a new task starts from the current values");
        set(&mut net, -2.0);
        let out1 = net.forward::<NoneTape>(input()).as_vec();
        assert_ne!(out0, out1);
        net.select_task(0);
        assert_eq!(bias(&net), 0.5);
        assert_eq!(net.forward::<NoneTape>(input()).as_vec(), out0);
        net.select_task(2);
        assert_eq!(bias(&net), 0.5);
        net.select_task(1);
        assert_eq!(bias(&net), -2.0);
        assert_eq!(net.forward::<NoneTape>(input()).as_vec(), out1);
        assert_eq!(net.params().len(), 6);
    }

    #[test]
    fn binary_and_full_precision_nets_learn_separable_blobs() {
        let (train_x, train_y) = blobs(1000, 1);
        let (test_x, test_y) = blobs(500, 2);
        let dev = Cpu::default();
        for (binary, norm) in [
            (true, NormKind::Batch),
            (false, NormKind::Batch),
            (true, NormKind::Instance),
            (true, NormKind::BatchRunning),
        ] {
            let c = BinaryConfig {
                norm,
                ..config(vec![64], binary)
            };
            let mut net = BinaryNet::new(&c, SHAPE, 0, &dev).unwrap();
            let mut opt = if binary {
                Optimizer::new(OptimizerConfig::AdamMeta {
                    lr: 5e-3,
                    betas: [0.9, 0.999],
                    eps: 1e-8,
                    weight_decay: 1e-7,
                    meta: vec![1.3],
                })
            } else {
                adam(5e-3)
            };
            for epoch in 0..5 {
                train_epoch(
                    &mut net,
                    &mut opt,
                    &train_x,
                    &train_y,
                    50,
                    epoch,
                    &mut |_, _| {},
                )
                .unwrap();
            }
            let eval = evaluate(&net, &test_x, &test_y, 100).unwrap();
            assert!(eval.accuracy > 0.9, "binary {binary}, {norm:?}: {eval:?}");
        }
    }

    /// `batch-running`: no parameters, buffers with PyTorch's names that
    /// training moves and evaluation uses, saved and loaded by checkpoints,
    /// and kept per task.
    #[test]
    fn running_statistics_are_buffers_saved_and_kept_per_task() {
        let dev = Cpu::default();
        let c = BinaryConfig {
            norm: NormKind::BatchRunning,
            ..config(vec![6], true)
        };
        let mut net = BinaryNet::new(&c, SHAPE, 1, &dev).unwrap();
        assert_eq!(net.param_infos().len(), 2, "only the two weight matrices");
        let names: Vec<String> = net.buffers().into_iter().map(|b| b.name).collect();
        assert_eq!(
            names,
            [
                "bn1.running_mean",
                "bn1.running_var",
                "bnout.running_mean",
                "bnout.running_var"
            ]
        );
        let (x, y) = blobs(200, 3);
        let (test_x, test_y) = blobs(50, 4);
        let mut opt = adam(5e-3);
        train_epoch(&mut net, &mut opt, &x, &y, 50, 0, &mut |_, _| {}).unwrap();
        let trained = net.buffers();
        assert!(trained[0].values.iter().any(|&m| m != 0.0));
        let before = evaluate(&net, &test_x, &test_y, 50).unwrap();
        assert_eq!(
            before.accuracy,
            evaluate(&net, &test_x, &test_y, 7).unwrap().accuracy,
            "running statistics make evaluation independent of the batch"
        );
        assert_eq!(net.buffers(), trained, "evaluation moves nothing");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.safetensors");
        crate::nn::checkpoint::save(&net, &path).unwrap();
        let mut loaded = BinaryNet::new(&c, SHAPE, 9, &dev).unwrap();
        crate::nn::checkpoint::load_into(&mut loaded, &path).unwrap();
        assert_eq!(loaded.buffers(), trained);
        assert_eq!(evaluate(&loaded, &test_x, &test_y, 50).unwrap(), before);
        let plain = BinaryNet::new(&config(vec![6], true), SHAPE, 1, &dev).unwrap();
        let plain_bytes = crate::nn::checkpoint::to_bytes(&plain).unwrap();
        std::fs::write(&path, plain_bytes).unwrap();
        assert!(crate::nn::checkpoint::load_into(&mut loaded, &path).is_err());
        assert!(loaded.set_buffer("bn1.running_mean", &[0.0; 5]).is_err());
        assert!(loaded.set_buffer("bn2.running_mean", &[0.0; 6]).is_err());

        net.select_task(1);
        assert_eq!(
            net.buffers(),
            trained,
            "a new task starts from the current state"
        );
        train_epoch(&mut net, &mut opt, &test_x, &test_y, 25, 0, &mut |_, _| {}).unwrap();
        let task1 = net.buffers();
        assert_ne!(task1, trained);
        net.select_task(0);
        assert_eq!(net.buffers(), trained);
        net.select_task(1);
        assert_eq!(net.buffers(), task1);
    }

    /// Packed evaluation gives the float path's logits bit for bit, on odd
    /// widths, on a trained network and with a zero weight (which falls back).
    #[test]
    fn packed_evaluation_gives_the_float_logits() {
        let dev = Cpu::default();
        let (x, y) = blobs(300, 5);
        let mut net = BinaryNet::new(&config(vec![70, 33], true), SHAPE, 4, &dev).unwrap();
        let mut opt = adam(5e-3);
        train_epoch(&mut net, &mut opt, &x, &y, 50, 0, &mut |_, _| {}).unwrap();
        // Any real values make an input (features, batch) for this test.
        let input = || dev.tensor_from_vec(x[..20 * 97].to_vec(), (20, 97));
        let signs = dev.tensor_from_vec(
            (0..70 * 5)
                .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
                .collect(),
            (70, 5),
        );
        assert!(
            net.packed_product::<NoneTape>(&net.layers[1], &signs)
                .is_some(),
            "the packed path applies to ±1 inputs"
        );
        let logits = |net: &mut BinaryNet<Cpu>, kernels| {
            net.set_kernels(kernels);
            net.forward::<NoneTape>(input()).as_vec()
        };
        let packed = logits(&mut net, BinaryKernels::Packed);
        assert_eq!(packed, logits(&mut net, BinaryKernels::Float));
        let mut w = net.param("fc2.weight").unwrap().values();
        w[3] = 0.0;
        net.param_mut("fc2.weight").unwrap().set_values(&w).unwrap();
        let packed = logits(&mut net, BinaryKernels::Packed);
        assert_eq!(packed, logits(&mut net, BinaryKernels::Float));
        assert!(net
            .packed_product::<NoneTape>(&net.layers[1], &signs)
            .is_none());
    }

    /// On our kernel the host path gives the tensor path's logits bit for
    /// bit, packed and (after a weight is set to 0) in floats; float
    /// kernels, or other products, have no host path.
    #[test]
    fn host_logits_have_the_tensor_paths_bits() {
        let dev = Cpu::default();
        let (x, y) = blobs(300, 5);
        let mut net = BinaryNet::new(&config(vec![70, 33], true), SHAPE, 4, &dev).unwrap();
        train_epoch(&mut net, &mut adam(5e-3), &x, &y, 50, 0, &mut |_, _| {}).unwrap();
        let (n, features) = (97, x.len() / y.len());
        let examples = &x[..n * features];
        if cpu::cpu_products() != "repro-sgemm" {
            assert!(net.host_logits(examples, n).is_none());
            println!("SKIP host_logits_have_the_tensor_paths_bits: the CPU products do not run on our kernel here");
            return;
        }
        let feature_major: Vec<f32> = (0..features * n)
            .map(|i| examples[(i % n) * features + i / n])
            .collect();
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let tensor = |net: &BinaryNet<Cpu>| {
            let input = dev.tensor_from_vec(feature_major.clone(), (features, n));
            bits(net.forward::<NoneTape>(input).as_vec())
        };
        let host = |net: &BinaryNet<Cpu>| net.host_logits(examples, n).map(bits);
        assert_eq!(host(&net), Some(tensor(&net)));
        let mut w = net.param("fc2.weight").unwrap().values();
        w[3] = 0.0;
        net.param_mut("fc2.weight").unwrap().set_values(&w).unwrap();
        assert_eq!(host(&net), Some(tensor(&net)), "a zero weight: in floats");
        net.set_kernels(BinaryKernels::Float);
        assert!(net.host_logits(examples, n).is_none());
    }
}
