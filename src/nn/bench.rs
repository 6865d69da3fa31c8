//! Throughput measurements for `repro bench`: training and evaluation speed
//! of the papers' networks on seeded random data, in examples per second.
//! The first batch is a warm-up (allocation cache, rayon threads) and is not
//! timed. A dendritic network reads one context vector shared by every
//! example, as in training on one task and testing one task.

use std::sync::Arc;
use std::time::Instant;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::active::{ActiveNet, ActiveSpec};
use super::binary::{packed_sign_product, BinaryConfig, BinaryKernels, BinaryNet};
use super::config::{InitConfig, InputShape, ModelConfig};
use super::cpu;
use super::error::{Error, Result};
use super::model::Model;
use super::network::Network;
use super::optim::{Optimizer, OptimizerConfig};
use super::param::{Param, ParamInfo, ParamKind};
use super::train::{evaluate, train_epoch};
use super::Matrix;

/// A network to measure, built the way its stage kind builds it.
#[derive(Debug, Clone)]
pub enum BenchNet {
    /// A `train` stage's network.
    Dense(ModelConfig),
    /// A `train` stage's network whose fully connected weight matrices keep
    /// only a random `keep` fraction of their entries (a late lottery round).
    Masked(ModelConfig, f64),
    /// A `continual` stage's sparse or dendritic network.
    Active(ActiveSpec),
    /// A `continual` stage's binarized network, evaluated with `BinaryKernels`.
    Binary(BinaryConfig, BinaryKernels),
    /// The product of one binarized hidden layer alone, `width` × `width`:
    /// sign(W) · h for ±1 inputs h, as the evaluation of `Binary` computes it
    /// with `BinaryKernels` (evaluation only).
    BinaryLayer(usize, BinaryKernels),
}

/// Examples per second of `steps` Adam (lr 1e-3) steps with `batch_size`.
pub fn bench_training<D: Device<f32>>(
    dev: &D,
    net: &BenchNet,
    shape: InputShape,
    batch_size: usize,
    steps: usize,
) -> Result<f64> {
    build(dev, net, shape, Training { batch_size, steps })
}

/// Examples per second of inference over `steps` batches of `batch_size`.
pub fn bench_evaluation<D: Device<f32>>(
    dev: &D,
    net: &BenchNet,
    shape: InputShape,
    batch_size: usize,
    steps: usize,
) -> Result<f64> {
    build(dev, net, shape, Evaluation { batch_size, steps })
}

/// A measurement of any `Model` (a trait, because `Model` is generic and
/// cannot be a trait object).
trait Measure<D: Device<f32>> {
    fn measure<M: Model<D>>(self, net: &mut M) -> Result<f64>;

    /// The measurement of a `BenchNet::BinaryLayer`.
    fn measure_layer(self, dev: &D, width: usize, kernels: BinaryKernels) -> Result<f64>;
}

/// Builds `net` and runs `measure` on it.
fn build<D: Device<f32>>(
    dev: &D,
    net: &BenchNet,
    shape: InputShape,
    measure: impl Measure<D>,
) -> Result<f64> {
    match net {
        BenchNet::BinaryLayer(width, kernels) => measure.measure_layer(dev, *width, *kernels),
        BenchNet::Dense(model) => measure.measure(&mut Network::new(
            model,
            shape,
            &InitConfig::default(),
            0,
            dev,
        )?),
        BenchNet::Masked(model, keep) => measure.measure(&mut masked(model, *keep, shape, dev)?),
        BenchNet::Active(spec) => measure.measure(&mut ActiveNet::new(spec, shape, 0, dev)?),
        BenchNet::Binary(config, kernels) => {
            let mut net = BinaryNet::new(config, shape, 0, dev)?;
            net.set_kernels(*kernels);
            measure.measure(&mut net)
        }
    }
}

/// `bench_training`'s measurement.
struct Training {
    batch_size: usize,
    steps: usize,
}

/// `bench_evaluation`'s measurement.
struct Evaluation {
    batch_size: usize,
    steps: usize,
}

impl<D: Device<f32>> Measure<D> for Training {
    fn measure<M: Model<D>>(self, net: &mut M) -> Result<f64> {
        train_rate(net, self.batch_size, self.steps)
    }

    fn measure_layer(self, _: &D, _: usize, _: BinaryKernels) -> Result<f64> {
        Err(Error::Config(
            "a binarized layer's product is measured in evaluation only".into(),
        ))
    }
}

impl<D: Device<f32>> Measure<D> for Evaluation {
    fn measure<M: Model<D>>(self, net: &mut M) -> Result<f64> {
        eval_rate(net, self.batch_size, self.steps)
    }

    fn measure_layer(self, dev: &D, width: usize, kernels: BinaryKernels) -> Result<f64> {
        binary_layer_rate(dev, width, kernels, self.batch_size, self.steps)
    }
}

/// Examples per second of sign(W) · h for a random `width` × `width` W and
/// ±1 inputs h of `batch_size` columns: bit-packed with `Packed` kernels on
/// the CPU (the signs packed once, as evaluation packs them), otherwise the
/// float product per batch exactly as `BinaryNet`'s float path computes it
/// (signs from the weight's host copy on our kernel, sign(W) then a product
/// elsewhere).
fn binary_layer_rate<D: Device<f32>>(
    dev: &D,
    width: usize,
    kernels: BinaryKernels,
    batch_size: usize,
    steps: usize,
) -> Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // Magnitudes away from 0: a zero weight has no sign bit (packing falls back).
    let w: Vec<f32> = (0..width * width)
        .map(|_| rng.gen_range(0.1..1.0) * if rng.gen::<bool>() { 1.0 } else { -1.0 })
        .collect();
    let h: Vec<f32> = (0..width * batch_size)
        .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
        .collect();
    let ht = cpu::upload(dev, &h, (width, batch_size));
    let info = ParamInfo {
        name: "hidden.weight".into(),
        kind: ParamKind::FcWeight,
        shape: vec![width, width],
    };
    let param = Param::new(info, w.clone(), dev);
    let (w, packed) = (Arc::new(w), cpu::PackedWeights::default());
    let float_product = || {
        let wt: Matrix<D> = param.effective::<NoneTape>().reshape_like(&(width, width));
        if cpu::signs_on_kernel(&param) {
            cpu::sign_matmul(wt, &param, ht.clone())
        } else {
            cpu::matmul(cpu::sign_ste(wt, false), None, ht.clone())
        }
    };
    let product = || {
        let z = (kernels == BinaryKernels::Packed && cpu::on_cpu::<D>())
            .then(|| packed_sign_product(&packed, &w, (width, width), &ht))
            .flatten();
        z.unwrap_or_else(float_product)
    };
    std::hint::black_box(product());
    let start = Instant::now();
    for _ in 0..steps.max(1) {
        std::hint::black_box(product());
    }
    Ok((steps.max(1) * batch_size) as f64 / start.elapsed().as_secs_f64())
}

/// `model` with `keep` of each fully connected weight matrix kept, at random.
fn masked<D: Device<f32>>(
    model: &ModelConfig,
    keep: f64,
    shape: InputShape,
    dev: &D,
) -> Result<Network<D>> {
    let mut net = Network::new(model, shape, &InitConfig::default(), 0, dev)?;
    net.mask_fc_randomly(keep, 1)?;
    Ok(net)
}

fn train_rate<D: Device<f32>, M: Model<D>>(
    net: &mut M,
    batch_size: usize,
    steps: usize,
) -> Result<f64> {
    let mut opt = Optimizer::new(OptimizerConfig::Adam {
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.0,
    });
    let (images, labels) = random_data(net, batch_size * steps.max(1));
    let warm = batch_size * (images.len() / labels.len());
    let skip = &mut |_, _: &M| {};
    train_epoch(
        net,
        &mut opt,
        &images[..warm],
        &labels[..batch_size],
        batch_size,
        0,
        skip,
    )?;
    let start = Instant::now();
    let stats = train_epoch(net, &mut opt, &images, &labels, batch_size, 1, skip)?;
    Ok(stats.samples as f64 / start.elapsed().as_secs_f64())
}

fn eval_rate<D: Device<f32>, M: Model<D>>(net: &M, batch_size: usize, steps: usize) -> Result<f64> {
    let (images, labels) = random_data(net, batch_size * steps.max(1));
    let warm = batch_size * (images.len() / labels.len());
    evaluate(net, &images[..warm], &labels[..batch_size], batch_size)?;
    let start = Instant::now();
    evaluate(net, &images, &labels, batch_size)?;
    Ok(labels.len() as f64 / start.elapsed().as_secs_f64())
}

/// Random inputs in [-1, 1) and labels for `n` examples of `net`, each
/// followed by the same random context vector when `net` reads one.
fn random_data<D: Device<f32>, M: Model<D>>(net: &M, n: usize) -> (Vec<f32>, Vec<u8>) {
    let shape = net.input_shape();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let context: Vec<f32> = (0..net.context_features())
        .map(|_| rng.gen_range(0.0..1.0))
        .collect();
    let mut images = Vec::with_capacity(n * (shape.features() + context.len()));
    for _ in 0..n {
        images.extend((0..shape.features()).map(|_| rng.gen_range(-1.0f32..1.0)));
        images.extend_from_slice(&context);
    }
    let labels = (0..n)
        .map(|_| rng.gen_range(0..shape.classes) as u8)
        .collect();
    (images, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::active::ActiveInit;
    use crate::nn::device::cpu;
    use crate::nn::norm::NormKind;

    const SHAPE: InputShape = InputShape {
        channels: 1,
        height: 4,
        width: 4,
        classes: 3,
    };

    fn nets() -> Vec<BenchNet> {
        let mlp = ModelConfig::Mlp { hidden: vec![5] };
        vec![
            BenchNet::Dense(mlp.clone()),
            BenchNet::Masked(mlp, 0.3),
            BenchNet::Active(ActiveSpec {
                conv: vec![],
                hidden: vec![6],
                conv_percent_on: None,
                percent_on: Some(0.5),
                weight_sparsity: 0.5,
                sparse_output: false,
                segments: 2,
                context: 4,
                context_percent_on: 1.0,
                init: ActiveInit::Numenta,
            }),
            BenchNet::Binary(
                BinaryConfig {
                    hidden: vec![6, 6],
                    binary: true,
                    init_width: 0.1,
                    norm: NormKind::Batch,
                    binarize_input: false,
                },
                BinaryKernels::Packed,
            ),
        ]
    }

    #[test]
    fn every_kind_of_network_can_be_measured() {
        for net in nets() {
            assert!(
                bench_training(&cpu(), &net, SHAPE, 8, 3).unwrap() > 0.0,
                "{net:?}"
            );
            assert!(
                bench_evaluation(&cpu(), &net, SHAPE, 8, 3).unwrap() > 0.0,
                "{net:?}"
            );
        }
    }

    #[test]
    fn a_binarized_layer_is_measured_in_evaluation_only() {
        for kernels in [BinaryKernels::Packed, BinaryKernels::Float] {
            let layer = BenchNet::BinaryLayer(70, kernels);
            assert!(bench_evaluation(&cpu(), &layer, SHAPE, 5, 2).unwrap() > 0.0);
            let err = bench_training(&cpu(), &layer, SHAPE, 5, 2).unwrap_err();
            assert!(err.to_string().contains("evaluation only"), "{err}");
        }
    }

    #[test]
    fn dendritic_inputs_share_one_context() {
        let BenchNet::Active(spec) = &nets()[2] else {
            unreachable!()
        };
        let net = ActiveNet::new(spec, SHAPE, 0, &cpu()).unwrap();
        let (images, labels) = random_data(&net, 3);
        let width = SHAPE.features() + 4;
        assert_eq!(images.len(), 3 * width);
        assert_eq!(labels.len(), 3);
        assert_eq!(images[16..20], images[width + 16..width + 20]);
        assert_ne!(images[..16], images[width..width + 16]);
    }
}
