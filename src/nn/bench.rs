//! Throughput measurements for `repro bench`: training and evaluation speed
//! of a model on seeded random data, in examples per second. The first batch
//! is a warm-up (allocation cache, rayon threads) and is not timed.

use std::time::Instant;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{InitConfig, InputShape, ModelConfig};
use super::error::Result;
use super::network::Network;
use super::optim::{Optimizer, OptimizerConfig};
use super::train::{evaluate, train_epoch};

/// Random inputs and labels for `n` examples.
fn random_data(shape: InputShape, n: usize) -> (Vec<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let images = (0..n * shape.features())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let labels = (0..n)
        .map(|_| rng.gen_range(0..shape.classes) as u8)
        .collect();
    (images, labels)
}

/// Examples per second of `steps` Adam training steps with `batch_size`.
pub fn bench_training<D: Device<f32>>(
    dev: &D,
    model: &ModelConfig,
    shape: InputShape,
    batch_size: usize,
    steps: usize,
) -> Result<f64> {
    let mut net = Network::new(model, shape, &InitConfig::default(), 0, dev)?;
    let mut opt = Optimizer::new(OptimizerConfig::Adam {
        lr: 1e-3,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.0,
    });
    let (images, labels) = random_data(shape, batch_size * steps.max(1));
    let warm = batch_size * shape.features();
    train_epoch(
        &mut net,
        &mut opt,
        &images[..warm],
        &labels[..batch_size],
        batch_size,
        0,
        &mut |_, _| {},
    )?;
    let start = Instant::now();
    let stats = train_epoch(
        &mut net,
        &mut opt,
        &images,
        &labels,
        batch_size,
        1,
        &mut |_, _| {},
    )?;
    Ok(stats.samples as f64 / start.elapsed().as_secs_f64())
}

/// Examples per second of inference over `steps` batches of `batch_size`.
pub fn bench_evaluation<D: Device<f32>>(
    dev: &D,
    model: &ModelConfig,
    shape: InputShape,
    batch_size: usize,
    steps: usize,
) -> Result<f64> {
    let net = Network::new(model, shape, &InitConfig::default(), 0, dev)?;
    let (images, labels) = random_data(shape, batch_size * steps.max(1));
    let warm = batch_size * shape.features();
    evaluate(&net, &images[..warm], &labels[..batch_size], batch_size)?;
    let start = Instant::now();
    evaluate(&net, &images, &labels, batch_size)?;
    Ok(labels.len() as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::device::cpu;

    const MNIST: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    };

    #[test]
    fn benchmarks_run_on_tiny_models() {
        let shape = InputShape {
            channels: 1,
            height: 4,
            width: 4,
            classes: 3,
        };
        let model = ModelConfig::Mlp { hidden: vec![5] };
        assert!(bench_training(&cpu(), &model, shape, 8, 3).unwrap() > 0.0);
        assert!(bench_evaluation(&cpu(), &model, shape, 8, 3).unwrap() > 0.0);
    }

    /// Throughput table; run with
    /// `cargo test --release --lib nn::bench -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        let dev = cpu();
        let mlp = |h: &[usize]| ModelConfig::Mlp { hidden: h.to_vec() };
        for (name, model, batch, steps, eval_batch) in [
            ("mlp 300-100", mlp(&[300, 100]), 60, 1000, 512),
            ("mlp 300-100", mlp(&[300, 100]), 128, 500, 512),
            ("mlp 2048-2048", mlp(&[2048, 2048]), 128, 40, 512),
            ("mlp 2048-2048", mlp(&[2048, 2048]), 256, 20, 512),
            ("lenet5", ModelConfig::Lenet5, 60, 5, 60),
        ] {
            // `REPRO_BENCH_ONLY=lenet5` runs only the matching rows.
            if let Ok(only) = std::env::var("REPRO_BENCH_ONLY") {
                if !name.contains(only.as_str()) {
                    continue;
                }
            }
            let train = bench_training(&dev, &model, MNIST, batch, steps).unwrap();
            let eval = bench_evaluation(&dev, &model, MNIST, eval_batch, 10).unwrap();
            println!(
                "{name:>14} batch {batch:>3}: train {train:>8.0}/s; eval batch {eval_batch}: {eval:>8.0}/s"
            );
        }
    }
}
