//! `ActiveNet`: the networks of the continual-learning experiments (Iyer et
//! et al. 2022; Bain 2022, section 3). One description covers the plain MLP
//! and CNN baselines, their sparse versions (k-WTA activations and fixed
//! sparse feed-forward weights) and active-dendrite networks (dendritic gating
//! from a task context, then k-WTA).
//!
//! A block is: linear or 3x3 convolution (weights under a fixed random mask
//! when sparse) → dendritic gate (per unit, or per channel for convolutions,
//! so whole feature maps are gated) → ReLU or k-WTA → 2x2 max-pool after a
//! convolution. The output layer is linear. The context, when there is one,
//! arrives as extra input rows after the image (see `Model::context_features`).
//!
//! Initialization follows Numenta's "modified" sparse Kaiming uniform:
//! weights U(±1/sqrt(d_in · d_w · fan_in)) with d_in the density of the
//! layer's input (the previous k-WTA's fraction, else 1) and d_w the density
//! of its weights; biases U(±1/sqrt(fan_in)) (PyTorch's default); segment
//! weights U(±1/sqrt(p · context)) with p = `context_percent_on` (Numenta's code 0.1,
//! Bain's 0.05: the density the init assumes of the context, which is dense in fact).
//! With no sparsity this is PyTorch's default initialization.
//! [`ActiveInit::Bain`] draws as Bain's split-CIFAR scripts do instead.

use dfdx::prelude::*;
use rand::seq::index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::{BiasInit, InitConfig, InputShape, WeightInit};
use super::contexts::BatchContexts;
use super::conv::{Conv2d, Map, MaxPool2};
use super::cpu::gate_channels;
use super::dendrite::Dendrites;
use super::error::{Error, Result};
use super::init::Initializer;
use super::kwta::{kwta, winners_for};
use super::linear::Linear;
use super::model::Model;
use super::param::{Param, ParamKind};
use super::Matrix;
use crate::seeds;

/// The architecture of an `ActiveNet`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveSpec {
    /// Output channels of the convolutional blocks (3x3, pad 1, pool 2);
    /// Bain's split-CIFAR CNN is `[64, 32]`, an MLP has none.
    pub conv: Vec<usize>,
    /// Widths of the hidden fully connected layers.
    pub hidden: Vec<usize>,
    /// k-WTA fraction of the convolutional blocks (`None`: ReLU).
    pub conv_percent_on: Option<f64>,
    /// k-WTA fraction of the hidden fully connected layers (`None`: ReLU).
    pub percent_on: Option<f64>,
    /// Fraction of each hidden fully connected unit's weights fixed at zero.
    pub weight_sparsity: f64,
    /// Whether the output layer has the same fixed sparsity.
    pub sparse_output: bool,
    /// Dendritic segments per unit of every hidden layer (0: no dendrites).
    pub segments: usize,
    /// Length of the context vector the segments read (0 without dendrites).
    pub context: usize,
    /// The context density the segment weights' init assumes (see the module doc).
    pub context_percent_on: f64,
    /// How the weights are drawn.
    pub init: ActiveInit,
}

/// How an `ActiveNet`'s weights are drawn (biases are U(±1/sqrt(fan_in)) in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActiveInit {
    /// Numenta's sparse Kaiming uniform, with input and weight densities (the module doc).
    #[default]
    Numenta,
    /// Bain's `cnn_`, `sparse_` and `adn_split_cifar.py` (commits cf919d3 to
    /// 2a3d259, the paper's runs): PyTorch's default, weights
    /// kaiming_uniform(a = sqrt(5)) = U(±1/sqrt(fan_in)) and segments
    /// U(±1/sqrt(context)) per unit, for every layer but the sparse hidden
    /// layers of a network without dendrites, which get Numenta's
    /// `_init_sparse_weights(layer, 1 - s)` as his sparse CNN calls it (the
    /// weight density passed as the input sparsity):
    /// U(±1/sqrt(s · (1 - s) · fan_in)) for weight sparsity s.
    Bain,
}

/// Feed-forward part of a block.
#[derive(Debug, Clone)]
enum Layer<D: Device<f32>> {
    Fc(Linear<D>),
    Conv(Conv2d<D>),
}

/// One hidden block.
#[derive(Debug, Clone)]
struct Block<D: Device<f32>> {
    layer: Layer<D>,
    dendrites: Option<Dendrites<D>>,
    /// `Some(k)`: k-WTA with k winners; `None`: ReLU.
    winners: Option<usize>,
    pool: Option<MaxPool2<D>>,
    /// Feature map of the layer's output (channels, positions) for gating.
    map: Map,
}

/// A classifier built from an `ActiveSpec`.
#[derive(Debug, Clone)]
pub struct ActiveNet<D: Device<f32>> {
    shape: InputShape,
    context: usize,
    blocks: Vec<Block<D>>,
    out: Linear<D>,
    dev: D,
}

impl<D: Device<f32>> ActiveNet<D> {
    /// Builds `spec` for inputs of `shape`, with every draw (weights, masks,
    /// segments) derived from `seed`.
    pub fn new(spec: &ActiveSpec, shape: InputShape, seed: u64, dev: &D) -> Result<Self> {
        let fail = |reason: &str| Error::Shape {
            model: "active".into(),
            shape: shape.to_string(),
            reason: reason.into(),
        };
        if shape.features() == 0 || shape.classes == 0 || spec.hidden.contains(&0) {
            return Err(fail("every size must be positive"));
        }
        if !(0.0..1.0).contains(&spec.weight_sparsity) {
            return Err(fail("weight_sparsity must be in [0, 1)"));
        }
        if spec.segments > 0 && spec.context == 0 {
            return Err(fail("dendritic segments need a context of length > 0"));
        }
        let dense = 1.0 - spec.weight_sparsity;
        let bain = spec.init == ActiveInit::Bain;
        // Bain's sparse hidden layers without dendrites: U(±1/sqrt(s (1 - s) fan_in)).
        let bain_sparse = spec.weight_sparsity * dense;
        let bain_hidden = if spec.segments == 0 && bain_sparse > 0.0 {
            bain_sparse
        } else {
            1.0
        };
        let mut layer_no = 0u64;
        let mut next_init = |fan_in: usize, density: f64| {
            layer_no += 1;
            let config = InitConfig {
                weight: WeightInit::Uniform {
                    width: (1.0 / (density * fan_in as f64).sqrt()) as f32,
                },
                bias: BiasInit::Uniform {
                    width: (1.0 / (fan_in as f64).sqrt()) as f32,
                },
            };
            Initializer::new(config, seeds::derive(seed, "layer", layer_no))
        };
        let segments = |name: &str, units: usize, block: usize| {
            (spec.segments > 0).then(|| {
                let active = if bain { 1.0 } else { spec.context_percent_on };
                let width = (1.0 / (active * spec.context as f64).sqrt()) as f32;
                let mut init = Initializer::new(
                    InitConfig {
                        weight: WeightInit::Uniform { width },
                        ..InitConfig::default()
                    },
                    seeds::derive(seed, "segments", block as u64),
                );
                Dendrites::new(name, units, spec.segments, spec.context, &mut init, dev)
            })
        };
        let mut blocks = Vec::new();
        let mut map = Map {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        };
        let mut input_density = 1.0;
        for (i, &channels) in spec.conv.iter().enumerate() {
            if map.height < 2 || map.width < 2 || channels == 0 {
                return Err(fail("feature map too small to pool, or zero channels"));
            }
            let name = format!("conv{}", i + 1);
            let mut init = next_init(map.channels * 9, 1.0);
            let conv = Conv2d::new(&name, map, channels, 3, 1, &mut init, dev);
            let out = conv.output();
            let pool = MaxPool2::new(out, dev);
            let winners = spec.conv_percent_on.map(|p| winners_for(out.len(), p));
            blocks.push(Block {
                dendrites: segments(&name, channels, blocks.len()),
                layer: Layer::Conv(conv),
                winners,
                map: out,
                pool: Some(pool.clone()),
            });
            map = pool.output();
            input_density = spec.conv_percent_on.unwrap_or(1.0);
        }
        let mut inputs = map.len();
        let mut mask_rng = ChaCha8Rng::seed_from_u64(seeds::derive(seed, "sparse", 0));
        for (i, &width) in spec.hidden.iter().enumerate() {
            let name = format!("fc{}", i + 1);
            let density = if bain {
                bain_hidden
            } else {
                input_density * dense
            };
            let mut init = next_init(inputs, density);
            let mut l = Linear::new(&name, ParamKind::FcWeight, inputs, width, &mut init, dev);
            sparsify(
                &mut l.weight,
                width,
                inputs,
                spec.weight_sparsity,
                &mut mask_rng,
            )?;
            blocks.push(Block {
                dendrites: segments(&name, width, blocks.len()),
                layer: Layer::Fc(l),
                winners: spec.percent_on.map(|p| winners_for(width, p)),
                map: Map {
                    channels: width,
                    height: 1,
                    width: 1,
                },
                pool: None,
            });
            inputs = width;
            input_density = spec.percent_on.unwrap_or(1.0);
        }
        let out_density = if spec.sparse_output { dense } else { 1.0 };
        let density = if bain {
            1.0
        } else {
            input_density * out_density
        };
        let mut init = next_init(inputs, density);
        let mut out = Linear::new(
            "out",
            ParamKind::OutputWeight,
            inputs,
            shape.classes,
            &mut init,
            dev,
        );
        if spec.sparse_output {
            let s = spec.weight_sparsity;
            sparsify(&mut out.weight, shape.classes, inputs, s, &mut mask_rng)?;
        }
        Ok(Self {
            shape,
            context: if spec.segments > 0 { spec.context } else { 0 },
            blocks,
            out,
            dev: dev.clone(),
        })
    }
}

/// Fixes `round(sparsity · inputs)` randomly chosen weights of every output
/// unit at zero (Numenta's `SparseWeights`).
fn sparsify<D: Device<f32>>(
    weight: &mut Param<D>,
    outputs: usize,
    inputs: usize,
    sparsity: f64,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let zeros = (sparsity * inputs as f64).round() as usize;
    if zeros == 0 {
        return Ok(());
    }
    let mut mask = vec![1.0f32; outputs * inputs];
    for row in mask.chunks_mut(inputs) {
        for i in index::sample(rng, inputs, zeros) {
            row[i] = 0.0;
        }
    }
    weight.set_mask(Some(&mask))
}

impl<D: Device<f32>> Model<D> for ActiveNet<D> {
    fn input_shape(&self) -> InputShape {
        self.shape
    }

    fn context_features(&self) -> usize {
        self.context
    }

    fn device(&self) -> &D {
        &self.dev
    }

    fn forward<T: Tape<f32, D>>(&self, x: Matrix<D>) -> Matrix<D, T> {
        let features = self.shape.features();
        let (image, context) = if self.context > 0 {
            let context = x.clone().slice((features..features + self.context, ..));
            (
                x.slice((0..features, ..)),
                Some(BatchContexts::new(context)),
            )
        } else {
            (x, None)
        };
        let mut input = Some(image);
        let mut h: Option<Matrix<D, T>> = None;
        for block in &self.blocks {
            // A ReLU straight after the layer is fused into it.
            let relu = block.winners.is_none() && block.dendrites.is_none();
            let mut z: Matrix<D, T> = match (&block.layer, input.take(), h.take()) {
                (Layer::Fc(l), Some(x), _) => l.forward_first(x, relu),
                (Layer::Conv(c), Some(x), _) => c.forward_first(x, relu),
                (Layer::Fc(l), None, Some(h)) => l.forward_act(h, relu),
                (Layer::Conv(c), None, Some(h)) => c.forward_act(h, relu),
                (_, None, None) => unreachable!("every block gets an input"),
            };
            if let (Some(d), Some(ctx)) = (&block.dendrites, &context) {
                let gate = d.gate::<T>(ctx);
                let positions = block.map.height * block.map.width;
                z = gate_channels(z, gate, positions);
                if block.winners.is_none() {
                    z = z.relu();
                }
            }
            if let Some(k) = block.winners {
                z = kwta(z, k);
            }
            if let Some(p) = &block.pool {
                z = p.forward(z);
            }
            h = Some(z);
        }
        match (input, h) {
            (Some(x), _) => self.out.forward_first(x, false),
            (None, Some(h)) => self.out.forward(h),
            (None, None) => unreachable!("the input went into a block"),
        }
    }

    fn params(&self) -> Vec<&Param<D>> {
        let mut out = Vec::new();
        for b in &self.blocks {
            match &b.layer {
                Layer::Fc(l) => out.extend([&l.weight, &l.bias]),
                Layer::Conv(c) => out.extend([&c.weight, &c.bias]),
            }
            if let Some(d) = &b.dendrites {
                out.push(&d.weight);
            }
        }
        out.extend([&self.out.weight, &self.out.bias]);
        out
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        let mut out = Vec::new();
        for b in &mut self.blocks {
            match &mut b.layer {
                Layer::Fc(l) => out.extend([&mut l.weight, &mut l.bias]),
                Layer::Conv(c) => out.extend([&mut c.weight, &mut c.bias]),
            }
            if let Some(d) = &mut b.dendrites {
                out.push(&mut d.weight);
            }
        }
        out.extend([&mut self.out.weight, &mut self.out.bias]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::optim::{Optimizer, OptimizerConfig};
    use crate::nn::train::{evaluate, train_epoch};

    fn spec(segments: usize, context: usize) -> ActiveSpec {
        ActiveSpec {
            conv: vec![],
            hidden: vec![32, 16],
            conv_percent_on: None,
            percent_on: Some(0.25),
            weight_sparsity: 0.5,
            sparse_output: true,
            segments,
            context,
            context_percent_on: 0.1,
            init: ActiveInit::Numenta,
        }
    }

    fn shape(features: usize) -> InputShape {
        InputShape {
            channels: 1,
            height: 1,
            width: features,
            classes: 2,
        }
    }

    #[test]
    fn sparse_layers_fix_half_of_each_units_weights_at_zero() {
        let dev = Cpu::default();
        let net = ActiveNet::new(&spec(3, 2), shape(10), 0, &dev).unwrap();
        assert_eq!(net.context_features(), 2);
        let names: Vec<_> = net.param_infos().into_iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "fc1.weight",
                "fc1.bias",
                "fc1.segments",
                "fc2.weight",
                "fc2.bias",
                "fc2.segments",
                "out.weight",
                "out.bias"
            ]
        );
        for (name, inputs) in [("fc1.weight", 10), ("fc2.weight", 32), ("out.weight", 16)] {
            let mask = net.param(name).unwrap().mask().unwrap();
            for row in mask.chunks(inputs) {
                let zeros = row.iter().filter(|&&m| m == 0.0).count();
                assert_eq!(zeros, inputs / 2, "{name}");
            }
        }
        let again = ActiveNet::new(&spec(3, 2), shape(10), 0, &dev).unwrap();
        assert_eq!(
            net.param("fc2.segments").unwrap().values(),
            again.param("fc2.segments").unwrap().values()
        );
    }

    #[test]
    fn convolutional_blocks_gate_whole_feature_maps() {
        let dev = Cpu::default();
        let cnn = ActiveSpec {
            conv: vec![4, 2],
            hidden: vec![8],
            conv_percent_on: Some(0.2),
            percent_on: Some(0.3),
            weight_sparsity: 0.5,
            sparse_output: false,
            segments: 3,
            context: 2,
            context_percent_on: 0.1,
            init: ActiveInit::Numenta,
        };
        let image = InputShape {
            channels: 1,
            height: 8,
            width: 8,
            classes: 2,
        };
        let net = ActiveNet::new(&cnn, image, 1, &dev).unwrap();
        assert_eq!(net.param("conv2.segments").unwrap().info().shape, [6, 2]);
        assert_eq!(
            net.param("fc1.weight").unwrap().info().shape,
            [8, 2 * 2 * 2]
        );
        assert!(net.param("out.weight").unwrap().mask().is_none());
        let x: Matrix<Cpu> = dev.sample_normal_like(&(64 + 2, 5));
        let y = net.forward::<OwnedTape<f32, Cpu>>(x);
        assert_eq!(*y.shape(), (2, 5));
        let grads = y.sum::<Rank0, _>().backward();
        let seg = net.param("conv1.segments").unwrap().value();
        assert!(grads.get(&seg).as_vec().iter().any(|&g| g != 0.0));
    }

    /// Bain's init: PyTorch's U(±1/sqrt(fan_in)) everywhere in the ADN CNN
    /// (segments U(±1/sqrt(context))); his sparse CNN's hidden layers
    /// U(±1/sqrt(s (1 - s) fan_in)). Checked by the largest |weight| drawn,
    /// which comes close to the bound.
    #[test]
    fn bain_init_draws_pytorch_default_bounds() {
        let dev = Cpu::default();
        let image = InputShape {
            channels: 3,
            height: 8,
            width: 8,
            classes: 10,
        };
        let cnn = |segments: usize, init: ActiveInit| ActiveSpec {
            conv: vec![8, 4],
            hidden: vec![64],
            conv_percent_on: Some(0.2),
            percent_on: Some(0.3),
            weight_sparsity: 0.5,
            sparse_output: false,
            segments,
            context: if segments > 0 { 10 } else { 0 },
            context_percent_on: 0.1,
            init,
        };
        let largest = |net: &ActiveNet<Cpu>, name: &str| {
            let v = net.param(name).unwrap().values();
            v.iter().fold(0.0f32, |m, x| m.max(x.abs())) as f64
        };
        let near = |got: f64, bound: f64, what: &str| {
            assert!(
                got <= bound && got > 0.9 * bound,
                "{what}: {got} vs bound {bound}"
            );
        };
        let adn = ActiveNet::new(&cnn(10, ActiveInit::Bain), image, 0, &dev).unwrap();
        near(largest(&adn, "conv2.weight"), 1.0 / 72f64.sqrt(), "conv2");
        near(
            largest(&adn, "fc1.weight"),
            1.0 / 16f64.sqrt(),
            "dendritic fc1",
        );
        near(
            largest(&adn, "fc1.segments"),
            1.0 / 10f64.sqrt(),
            "segments",
        );
        near(largest(&adn, "out.weight"), 1.0 / 64f64.sqrt(), "out");
        let sparse = ActiveNet::new(&cnn(0, ActiveInit::Bain), image, 0, &dev).unwrap();
        near(
            largest(&sparse, "fc1.weight"),
            1.0 / (0.25 * 16f64).sqrt(),
            "sparse fc1",
        );
        near(
            largest(&sparse, "out.weight"),
            1.0 / 64f64.sqrt(),
            "sparse out",
        );
        let ours = ActiveNet::new(&cnn(0, ActiveInit::Numenta), image, 0, &dev).unwrap();
        near(
            largest(&ours, "fc1.weight"),
            1.0 / (0.1 * 16f64).sqrt(),
            "numenta fc1",
        );
    }

    #[test]
    fn channel_gating_matches_dfdx_broadcasting() {
        let dev = Cpu::default();
        let z: Matrix<Cpu> = dev.sample_normal_like(&(3 * 4, 5));
        let g: Matrix<Cpu> = dev.sample_normal_like(&(3, 5));
        let r: Matrix<Cpu> = dev.sample_normal_like(&(3 * 4, 5));
        type Taped = OwnedTape<f32, Cpu>;
        let fast = gate_channels(z.retaped::<Taped>(), g.retaped::<Taped>(), 4);
        let full: (usize, usize, usize) = (3, 4, 5);
        let slow = (z.retaped::<Taped>().reshape_like(&full)
            * g.retaped::<Taped>().broadcast_like::<_, Axis<1>>(&full))
        .reshape_like(&(12, 5));
        let (fv, sv) = (fast.as_vec(), slow.as_vec());
        let fg = (fast * r.clone()).sum::<Rank0, _>().backward();
        let sg = (slow * r).sum::<Rank0, _>().backward();
        let close = |a: Vec<f32>, b: Vec<f32>| {
            assert!(
                a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5),
                "{a:?} vs {b:?}"
            );
        };
        close(fv, sv);
        close(fg.get(&z).as_vec(), sg.get(&z).as_vec());
        close(fg.get(&g).as_vec(), sg.get(&g).as_vec());
    }

    /// Milliseconds per Adam training step of `spec` at `batch` on random
    /// images of `image`, with `context` (if any) appended to every example,
    /// as a task's context is while training on it.
    fn ms_per_step(spec: &ActiveSpec, image: InputShape, context: &[f32], batch: usize) -> f64 {
        // With the allocation cache, as the stages run.
        let dev = crate::nn::cpu();
        let steps = 6;
        let n = batch * (steps + 1);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut data = Vec::new();
        for _ in 0..n {
            data.extend((0..image.features()).map(|_| rand::Rng::gen_range(&mut rng, 0.0..1.0)));
            data.extend_from_slice(context);
        }
        let labels: Vec<u8> = (0..n).map(|i| (i * 7 % image.classes) as u8).collect();
        let mut net = ActiveNet::new(spec, image, 0, &dev).unwrap();
        let mut opt = Optimizer::new(OptimizerConfig::Adam {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        });
        let warm = batch * (image.features() + context.len());
        let mut run = |d: &[f32], y: &[u8]| {
            train_epoch(&mut net, &mut opt, d, y, batch, 0, &mut |_, _| {}).unwrap();
        };
        run(&data[..warm], &labels[..batch]);
        let start = std::time::Instant::now();
        run(&data[warm..], &labels[batch..]);
        start.elapsed().as_secs_f64() * 1e3 / steps as f64
    }

    /// `adn-2048` against `sparse-2048` (784-2048-2048, k-WTA 5%, 50% sparse
    /// weights; the ADN with 10 segments over a 784-d prototype context),
    /// batch 256, interleaved over two rounds. Run with
    /// `cargo test --lib step_time -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, prints only"]
    fn adn_2048_step_time_against_sparse_2048() {
        let spec = |segments: usize| ActiveSpec {
            conv: vec![],
            hidden: vec![2048, 2048],
            conv_percent_on: None,
            percent_on: Some(0.05),
            weight_sparsity: 0.5,
            sparse_output: true,
            segments,
            context: if segments > 0 { 784 } else { 0 },
            context_percent_on: 0.1,
            init: ActiveInit::Numenta,
        };
        let image = InputShape {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let prototype: Vec<f32> = (0..784)
            .map(|_| rand::Rng::gen_range(&mut rng, 0.0..1.0))
            .collect();
        for round in 1..=2 {
            let sparse = ms_per_step(&spec(0), image, &[], 256);
            let adn = ms_per_step(&spec(10), image, &prototype, 256);
            println!(
                "round {round}: sparse-2048 {sparse:.1} ms/step, adn-2048 {adn:.1} ms/step, ratio {:.2}",
                adn / sparse
            );
        }
    }

    /// Bain's split-CIFAR CNNs (conv 64-32, FC 256-128, batch 128): the
    /// sparse CNN against the ADN CNN (10 segments) with a one-hot context
    /// of 10 tasks and with a 3072-d prototype, interleaved over two rounds.
    #[test]
    #[ignore = "timing, prints only"]
    fn adn_cnn_step_time_against_sparse_cnn() {
        let spec = |segments: usize, context: usize| ActiveSpec {
            conv: vec![64, 32],
            hidden: vec![256, 128],
            conv_percent_on: Some(0.2),
            percent_on: Some(0.3),
            weight_sparsity: 0.5,
            sparse_output: false,
            segments,
            context,
            context_percent_on: 0.1,
            init: ActiveInit::Numenta,
        };
        let image = InputShape {
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        };
        let onehot: Vec<f32> = (0..10).map(|i| f32::from(u8::from(i == 3))).collect();
        let prototype: Vec<f32> = (0..3072).map(|i| (i as f32 * 0.01).sin()).collect();
        for round in 1..=2 {
            let sparse = ms_per_step(&spec(0, 0), image, &[], 128);
            let onehot = ms_per_step(&spec(10, 10), image, &onehot, 128);
            let proto = ms_per_step(&spec(10, 3072), image, &prototype, 128);
            println!(
                "round {round}: sparse-cnn {sparse:.1} ms/step, adn-cnn one-hot {onehot:.1} ({:.2}x), \
                 adn-cnn prototype {proto:.1} ({:.2}x)",
                onehot / sparse,
                proto / sparse
            );
        }
    }

    /// Two tasks with opposite labels for the same inputs: only the context
    /// tells them apart, so a dendritic network learns both and a network
    /// without dendrites cannot beat chance by much.
    #[test]
    fn dendrites_learn_tasks_that_only_the_context_separates() {
        let dev = Cpu::default();
        // The first half trains, the second half tests.
        let n = 800;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut images = Vec::new();
        let mut labels = Vec::new();
        let mut plain = Vec::new();
        for i in 0..n {
            let task = i % 2;
            let x: Vec<f32> = (0..4)
                .map(|_| rand::Rng::gen_range(&mut rng, -1.0..1.0))
                .collect();
            let label = u8::from(x[0] > 0.0) ^ task as u8;
            plain.extend_from_slice(&x);
            images.extend_from_slice(&x);
            images.extend([(1 - task) as f32, task as f32]);
            labels.push(label);
        }
        let accuracy = |segments: usize, context: usize, data: &[f32]| {
            let mut spec = spec(segments, context);
            spec.weight_sparsity = 0.0;
            spec.sparse_output = false;
            spec.percent_on = None;
            let mut net = ActiveNet::new(&spec, shape(4), 0, &dev).unwrap();
            let mut opt = Optimizer::new(OptimizerConfig::Adam {
                lr: 1e-2,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.0,
            });
            let half = data.len() / 2;
            let (train, test) = (&data[..half], &data[half..]);
            let (train_y, test_y) = (&labels[..n / 2], &labels[n / 2..]);
            for epoch in 0..60 {
                train_epoch(
                    &mut net,
                    &mut opt,
                    train,
                    train_y,
                    20,
                    epoch,
                    &mut |_, _| {},
                )
                .unwrap();
            }
            evaluate(&net, test, test_y, 100).unwrap().accuracy
        };
        let with_dendrites = accuracy(2, 2, &images);
        let without = accuracy(0, 0, &plain);
        assert!(with_dendrites > 0.9, "dendritic: {with_dendrites}");
        assert!(without < 0.7, "no dendrites: {without}");
    }
}
