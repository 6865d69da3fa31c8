//! The one training loop (`train_epoch`) and the one evaluation loop
//! (`evaluate`), generic over any `Model` and device.
//!
//! Data arrive as host slices: `images` is N x features, row-major, already
//! normalised; `labels` are class indices. Each batch is transposed on the
//! host into the feature-major (features, batch) layout the models use and
//! uploaded once; the logits come back to the host once per batch for the
//! loss and accuracy statistics. A model with a host path for inference
//! (`Model::host_logits`: dense networks on our CPU kernel) evaluates
//! straight from the examples' rows instead, with the same bits. The loss
//! is the mean cross-entropy of the softmax, as PyTorch's
//! `CrossEntropyLoss`. Shuffling is a seeded ChaCha8 permutation; the last,
//! partial batch is included. Progress goes to an observer callback, which
//! also sees the network after each update (to snapshot weights mid-epoch,
//! e.g. for rewinding); nothing here prints.

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cpu::{gather_transposed, upload};
use super::error::{Error, Result};
use super::model::Model;
use super::optim::Optimizer;
use super::Matrix;

/// Reported after every training batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchProgress {
    /// Batches done in this epoch, 1-based.
    pub batch: usize,
    /// Batches in this epoch.
    pub batches: usize,
    /// Mean loss of this batch.
    pub loss: f64,
}

/// Summary of one training epoch (loss and accuracy measured on the fly,
/// before each batch's update).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// Mean cross-entropy over all examples.
    pub loss: f64,
    /// Fraction of examples classified correctly, in [0, 1].
    pub accuracy: f64,
    /// Number of examples seen.
    pub samples: usize,
}

/// Loss and accuracy of a model on a data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalStats {
    /// Mean cross-entropy over all examples.
    pub loss: f64,
    /// Fraction of examples classified correctly, in [0, 1].
    pub accuracy: f64,
}

/// Trains `net` for one pass over the data in shuffled mini-batches.
pub fn train_epoch<D: Device<f32>, M: Model<D>>(
    net: &mut M,
    opt: &mut Optimizer<D>,
    images: &[f32],
    labels: &[u8],
    batch_size: usize,
    shuffle_seed: u64,
    observer: &mut dyn FnMut(BatchProgress, &M),
) -> Result<EpochStats> {
    let n = check_data(net, images, labels, batch_size)?;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(shuffle_seed));
    let batches = n.div_ceil(batch_size);
    let mut totals = Totals::default();
    for (b, chunk) in order.chunks(batch_size).enumerate() {
        let (x, onehot) = batch(net, images, labels, chunk);
        let logits = net.forward::<OwnedTape<f32, D>>(x);
        let stats = totals.add(&logits.as_vec(), labels, chunk);
        let scale = -1.0 / chunk.len() as f32;
        let loss = (logits.log_softmax::<Axis<0>>() * onehot).sum::<Rank0, _>() * scale;
        let mut grads = loss.backward();
        opt.step(&mut net.params_mut(), &mut grads)?;
        let progress = BatchProgress {
            batch: b + 1,
            batches,
            loss: stats,
        };
        observer(progress, net);
    }
    Ok(EpochStats {
        loss: totals.loss / n as f64,
        accuracy: totals.correct as f64 / n as f64,
        samples: n,
    })
}

/// Loss and accuracy of `net` on the data, in batches of `batch_size`:
/// through `Model::host_logits` where the model has that path, otherwise
/// each batch transposed, uploaded and run through `forward`.
pub fn evaluate<D: Device<f32>, M: Model<D>>(
    net: &M,
    images: &[f32],
    labels: &[u8],
    batch_size: usize,
) -> Result<EvalStats> {
    let n = check_data(net, images, labels, batch_size)?;
    let features = images.len() / n;
    let mut totals = Totals::default();
    for start in (0..n).step_by(batch_size) {
        let chunk: Vec<usize> = (start..(start + batch_size).min(n)).collect();
        let examples = &images[start * features..(start + chunk.len()) * features];
        let logits = net.host_logits(examples, chunk.len()).unwrap_or_else(|| {
            let (x, _) = batch(net, images, labels, &chunk);
            net.forward::<NoneTape>(x).as_vec()
        });
        totals.add(&logits, labels, &chunk);
    }
    Ok(EvalStats {
        loss: totals.loss / n as f64,
        accuracy: totals.correct as f64 / n as f64,
    })
}

/// Checks sizes and labels; returns the number of examples.
fn check_data<D: Device<f32>, M: Model<D>>(
    net: &M,
    images: &[f32],
    labels: &[u8],
    batch_size: usize,
) -> Result<usize> {
    let shape = net.input_shape();
    let n = labels.len();
    if batch_size == 0 {
        return Err(Error::Data("batch size must be positive".into()));
    }
    if n == 0 {
        return Err(Error::Data("no examples".into()));
    }
    let features = shape.features() + net.context_features();
    if images.len() != n * features {
        return Err(Error::Data(format!(
            "{} labels need {} image values ({} per example), got {}",
            n,
            n * features,
            features,
            images.len()
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= shape.classes) {
        return Err(Error::Data(format!(
            "label {bad} is not below the class count {}",
            shape.classes
        )));
    }
    Ok(n)
}

/// Uploads the examples `chunk` as (features, batch) inputs and
/// (classes, batch) one-hot targets.
fn batch<D: Device<f32>, M: Model<D>>(
    net: &M,
    images: &[f32],
    labels: &[u8],
    chunk: &[usize],
) -> (Matrix<D>, Matrix<D>) {
    let shape = net.input_shape();
    let features = shape.features() + net.context_features();
    let (classes, b) = (shape.classes, chunk.len());
    let mut x = vec![0.0f32; features * b];
    let mut onehot = vec![0.0f32; classes * b];
    gather_transposed(images, features, chunk, &mut x);
    for (j, &i) in chunk.iter().enumerate() {
        onehot[labels[i] as usize * b + j] = 1.0;
    }
    // Through the allocation cache: `tensor_from_vec` buffers would be added
    // to dfdx's cache on every step without ever being taken from it.
    let dev = net.device();
    (
        upload(dev, &x, (features, b)),
        upload(dev, &onehot, (classes, b)),
    )
}

/// Running sums of loss and correct predictions.
#[derive(Default)]
struct Totals {
    loss: f64,
    correct: usize,
}

impl Totals {
    /// Adds a batch from its host logits, (classes, batch) row-major;
    /// returns the batch's mean loss. Ties go to the lowest class.
    fn add(&mut self, logits: &[f32], labels: &[u8], chunk: &[usize]) -> f64 {
        let b = chunk.len();
        let classes = logits.len() / b;
        let mut batch_loss = 0.0;
        for (j, &i) in chunk.iter().enumerate() {
            let column = (0..classes).map(|c| logits[c * b + j] as f64);
            let (best, max) =
                column
                    .clone()
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |acc, (c, v)| if v > acc.1 { (c, v) } else { acc },
                    );
            let lse = max + column.map(|v| (v - max).exp()).sum::<f64>().ln();
            let label = labels[i] as usize;
            batch_loss += lse - logits[label * b + j] as f64;
            self.correct += usize::from(best == label);
        }
        self.loss += batch_loss;
        batch_loss / b as f64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::Rng;

    use super::*;
    use crate::nn::config::{InitConfig, InputShape, ModelConfig};
    use crate::nn::network::Network;
    use crate::nn::optim::OptimizerConfig;

    pub(crate) const SHAPE: InputShape = InputShape {
        channels: 1,
        height: 4,
        width: 5,
        classes: 4,
    };

    /// Four Gaussian blobs in 20 dimensions, linearly separable with margin.
    pub(crate) fn blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let features = SHAPE.features();
        let mut images = Vec::with_capacity(n * features);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let label = rng.gen_range(0..SHAPE.classes);
            for f in 0..features {
                let centre = if f % SHAPE.classes == label { 1.5 } else { 0.0 };
                images.push(centre + rng.gen_range(-1.0f32..1.0));
            }
            labels.push(label as u8);
        }
        (images, labels)
    }

    pub(crate) fn adam(lr: f64) -> Optimizer<Cpu> {
        Optimizer::new(OptimizerConfig::Adam {
            lr,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        })
    }

    #[test]
    fn a_batch_is_its_examples_transposed_in_any_order_and_size() {
        // 20 features (one full tile of 16 and a part), 37 examples picked out
        // of order (two full tiles and a part).
        let (images, labels) = blobs(50, 3);
        let net = mlp(0);
        let chunk: Vec<usize> = (0..37).map(|j| (j * 7 + 3) % 50).collect();
        let (x, onehot) = batch(&net, &images, &labels, &chunk);
        let (x, onehot) = (x.as_vec(), onehot.as_vec());
        let (features, b) = (SHAPE.features(), chunk.len());
        for (j, &i) in chunk.iter().enumerate() {
            for f in 0..features {
                assert_eq!(x[f * b + j], images[i * features + f], "feature {f} of {i}");
            }
            for c in 0..SHAPE.classes {
                let hot = f32::from(u8::from(c == labels[i] as usize));
                assert_eq!(onehot[c * b + j], hot);
            }
        }
    }

    fn mlp(seed: u64) -> Network<Cpu> {
        let config = ModelConfig::Mlp { hidden: vec![32] };
        Network::new(
            &config,
            SHAPE,
            &InitConfig::default(),
            seed,
            &Cpu::default(),
        )
        .unwrap()
    }

    #[test]
    fn mlp_learns_separable_blobs() {
        let (train_x, train_y) = blobs(1000, 1);
        let (test_x, test_y) = blobs(500, 2);
        let mut net = mlp(0);
        let mut opt = adam(1e-2);
        let mut seen = 0;
        for epoch in 0..5 {
            let stats = train_epoch(
                &mut net,
                &mut opt,
                &train_x,
                &train_y,
                64,
                epoch,
                &mut |p, _| {
                    seen += 1;
                    assert_eq!(p.batches, 16);
                },
            )
            .unwrap();
            assert_eq!(stats.samples, 1000);
        }
        assert_eq!(seen, 80);
        let eval = evaluate(&net, &test_x, &test_y, 128).unwrap();
        assert!(eval.accuracy > 0.95, "{eval:?}");
        assert!(eval.loss < 0.3, "{eval:?}");
    }

    /// Same seeds, same bytes: the CPU fast paths (parallel im2col, pooling,
    /// first-layer matmul) sum in a fixed order.
    #[test]
    fn training_is_deterministic() {
        let (x, y) = blobs(200, 7);
        for config in [ModelConfig::Cnn, ModelConfig::Mlp { hidden: vec![16] }] {
            let run = || {
                let mut net =
                    Network::new(&config, SHAPE, &InitConfig::default(), 3, &crate::nn::cpu())
                        .unwrap();
                let mut opt = adam(1e-2);
                for epoch in 0..2 {
                    train_epoch(&mut net, &mut opt, &x, &y, 32, epoch, &mut |_, _| {}).unwrap();
                }
                let bits: Vec<u32> = net
                    .params()
                    .iter()
                    .flat_map(|p| p.values())
                    .map(f32::to_bits)
                    .collect();
                (bits, evaluate(&net, &x, &y, 50).unwrap())
            };
            let (a, b) = (run(), run());
            assert!(a.0 == b.0, "{config:?}: parameters differ");
            assert_eq!(a.1, b.1);
            assert!(a.1.accuracy > 0.3, "{config:?}: {:?}", a.1);
        }
    }

    #[test]
    fn evaluation_agrees_with_a_host_forward_pass() {
        let (x, y) = blobs(7, 3);
        let net = mlp(4);
        // Batch 3 leaves a partial batch of 1; results must not depend on batching.
        let a = evaluate(&net, &x, &y, 3).unwrap();
        let b = evaluate(&net, &x, &y, 7).unwrap();
        assert!((a.loss - b.loss).abs() < 1e-6 && a.accuracy == b.accuracy);
    }

    #[test]
    fn bad_data_is_an_error() {
        let (x, y) = blobs(10, 3);
        let mut net = mlp(0);
        let mut opt = adam(1e-3);
        let mut none = |_, _: &_| {};
        assert!(train_epoch(&mut net, &mut opt, &x[1..], &y, 4, 0, &mut none).is_err());
        assert!(train_epoch(&mut net, &mut opt, &x, &y, 0, 0, &mut none).is_err());
        let mut bad = y.clone();
        bad[0] = 9;
        assert!(matches!(evaluate(&net, &x, &bad, 4), Err(Error::Data(_))));
    }

    #[test]
    fn masked_weights_stay_zero_while_training() {
        let (x, y) = blobs(300, 5);
        let mut net = mlp(0);
        let mut opt = Optimizer::new(OptimizerConfig::Adam {
            lr: 1e-2,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 1e-4,
        });
        train_epoch(&mut net, &mut opt, &x, &y, 32, 0, &mut |_, _| {}).unwrap();
        let n = net.param("fc1.weight").unwrap().info().numel();
        let mask: Vec<f32> = (0..n).map(|i| (i % 3 != 0) as u8 as f32).collect();
        net.param_mut("fc1.weight")
            .unwrap()
            .set_mask(Some(&mask))
            .unwrap();
        for epoch in 1..3 {
            train_epoch(&mut net, &mut opt, &x, &y, 32, epoch, &mut |_, _| {}).unwrap();
        }
        let w = net.param("fc1.weight").unwrap().values();
        for (v, m) in w.iter().zip(&mask) {
            if *m == 0.0 {
                assert_eq!(*v, 0.0);
            } else {
                assert_ne!(*v, 0.0);
            }
        }
    }
}
