//! Normalization layers of the binarized networks (Laborieux et al. 2021),
//! on feature-major activations (features, batch).
//!
//! `BatchNorm` is PyTorch's `BatchNorm1d(affine=True,
//! track_running_stats=False)`: each feature (row) is normalized over the
//! batch (columns) with the batch mean and biased variance, in training and
//! in evaluation alike, so an example's output depends on the rest of its
//! batch (a batch of one normalizes to β). `RunningBatchNorm` is the stream
//! script's `BatchNorm1d(affine=False, track_running_stats=True)`: batch
//! statistics in training, which also move running statistics, and the
//! running statistics in evaluation. The instance norm of the paper's
//! "domain" scenario normalizes each example (column) over its features and
//! has no parameters. All are built from dfdx ops, so they run and
//! differentiate on any device.

use std::sync::Mutex;

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// Added to the variance before the square root, as PyTorch's default.
pub(crate) const EPS: f64 = 1e-5;

/// Weight of a training batch's statistics in the running ones, PyTorch's
/// default `momentum=0.1`.
const MOMENTUM: f64 = 0.1;

/// Which normalization follows each fully connected layer of a `BinaryNet`;
/// written `batch` or `instance` in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// Batch norm with learnable γ (init 1) and β (init 0) and batch
    /// statistics in training and evaluation; γ/β are per-task state.
    #[default]
    Batch,
    /// `InstanceNorm1d(affine=False)` as the paper's code applies it: each
    /// example normalized over its features; no parameters.
    Instance,
    /// `BatchNorm1d(affine=False, track_running_stats=True)`, the authors'
    /// stream script: no parameters; batch statistics in training, running
    /// statistics (saved in checkpoints) in evaluation.
    BatchRunning,
}

/// Batch norm over the columns with affine γ/β (`<name>.weight`, `<name>.bias`).
#[derive(Debug, Clone)]
pub(crate) struct BatchNorm<D: Device<f32>> {
    pub(crate) weight: Param<D>,
    pub(crate) bias: Param<D>,
}

impl<D: Device<f32>> BatchNorm<D> {
    /// γ = 1 and β = 0 for `features` rows.
    pub(crate) fn new(name: &str, features: usize, dev: &D) -> Self {
        let param = |suffix: &str, value: f32| {
            let info = ParamInfo {
                name: format!("{name}.{suffix}"),
                kind: ParamKind::Norm,
                shape: vec![features],
            };
            Param::new(info, vec![value; features], dev)
        };
        Self {
            weight: param("weight", 1.0),
            bias: param("bias", 0.0),
        }
    }

    /// (features, batch) -> (features, batch).
    pub(crate) fn forward<T: Tape<f32, D>>(&self, x: Matrix<D, T>) -> Matrix<D, T> {
        let shape = *x.shape();
        let gamma = self
            .weight
            .effective::<T>()
            .broadcast_like::<_, Axis<1>>(&shape);
        let beta = self
            .bias
            .effective::<T>()
            .broadcast_like::<_, Axis<1>>(&shape);
        x.normalize::<Axis<1>>(EPS) * gamma + beta
    }
}

/// Running mean and (unbiased) variance of each feature, PyTorch's
/// `running_mean` (init 0) and `running_var` (init 1).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunningStats {
    pub(crate) mean: Vec<f32>,
    pub(crate) var: Vec<f32>,
}

/// Batch norm without γ/β whose training batches move running statistics,
/// which evaluation then uses. The statistics sit behind a mutex because
/// they change inside `forward(&self)`, as a PyTorch module's buffers do in
/// training mode.
#[derive(Debug)]
pub(crate) struct RunningBatchNorm {
    stats: Mutex<RunningStats>,
}

impl Clone for RunningBatchNorm {
    fn clone(&self) -> Self {
        Self {
            stats: Mutex::new(self.stats()),
        }
    }
}

impl RunningBatchNorm {
    /// Mean 0 and variance 1 for `features` rows, as PyTorch starts.
    pub(crate) fn new(features: usize) -> Self {
        Self {
            stats: Mutex::new(RunningStats {
                mean: vec![0.0; features],
                var: vec![1.0; features],
            }),
        }
    }

    /// A copy of the running statistics.
    pub(crate) fn stats(&self) -> RunningStats {
        self.lock().clone()
    }

    /// Replaces the running statistics (from a checkpoint).
    pub(crate) fn set_stats(&mut self, stats: RunningStats) {
        *self.lock() = stats;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunningStats> {
        // A poisoned lock only means another thread panicked mid-update; the
        // vectors are still whole.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (features, batch) -> (features, batch). With a tape (training) each
    /// row is normalized over the batch and the running statistics move by
    /// `MOMENTUM` towards the batch mean and unbiased variance (not for a
    /// batch of one, whose variance is undefined); without one (evaluation)
    /// the running statistics normalize every example on its own.
    pub(crate) fn forward<D: Device<f32>, T: Tape<f32, D>>(&self, x: Matrix<D, T>) -> Matrix<D, T> {
        let (rows, n) = *x.shape();
        if T::OWNS_TAPE {
            self.observe(&x);
            return x.normalize::<Axis<1>>(EPS);
        }
        let stats = self.stats();
        let dev = x.device().clone();
        let mean = dev.tensor_from_vec(stats.mean, (rows,));
        let inv_std: Vec<f32> = stats
            .var
            .iter()
            .map(|&v| (1.0 / (v as f64 + EPS).sqrt()) as f32)
            .collect();
        let inv_std = dev.tensor_from_vec(inv_std, (rows,));
        let shape = (rows, n);
        (x - mean.broadcast_like::<_, Axis<1>>(&shape))
            * inv_std.broadcast_like::<_, Axis<1>>(&shape)
    }

    /// Moves the running statistics towards those of the training batch `x`
    /// (features, batch), unless it holds a single example.
    pub(crate) fn observe<D: Device<f32>, T: Tape<f32, D>>(&self, x: &Matrix<D, T>) {
        let (rows, n) = *x.shape();
        if n > 1 {
            self.update(&x.as_vec(), rows, n);
        }
    }

    /// Moves the running statistics towards those of `x`, (rows, n) row-major,
    /// summing in f64 in a fixed order.
    fn update(&self, x: &[f32], rows: usize, n: usize) {
        let mut guard = self.lock();
        let stats = &mut *guard;
        for r in 0..rows {
            let row = &x[r * n..(r + 1) * n];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let squares = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>();
            let var = squares / (n - 1) as f64;
            let (m, v) = (&mut stats.mean[r], &mut stats.var[r]);
            *m = ((1.0 - MOMENTUM) * *m as f64 + MOMENTUM * mean) as f32;
            *v = ((1.0 - MOMENTUM) * *v as f64 + MOMENTUM * var) as f32;
        }
    }
}

/// Each column (example) normalized over its rows (features).
pub(crate) fn instance_norm<D: Device<f32>, T: Tape<f32, D>>(x: Matrix<D, T>) -> Matrix<D, T> {
    x.normalize::<Axis<0>>(EPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batch norm of the rows of a (rows, n) row-major matrix, in f64.
    fn reference(x: &[f64], rows: usize, gamma: &[f64], beta: &[f64]) -> Vec<f64> {
        let n = x.len() / rows;
        let mut y = vec![0.0; x.len()];
        for r in 0..rows {
            let row = &x[r * n..(r + 1) * n];
            let mean = row.iter().sum::<f64>() / n as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            for (j, v) in row.iter().enumerate() {
                y[r * n + j] = gamma[r] * (v - mean) / (var + EPS).sqrt() + beta[r];
            }
        }
        y
    }

    fn set(p: &mut Param<Cpu>, v: &[f32]) {
        p.set_values(v).unwrap();
    }

    #[test]
    fn batch_norm_matches_pytorch_and_finite_differences() {
        let dev = Cpu::default();
        let (rows, n) = (3, 5);
        let mut bn = BatchNorm::new("bn1", rows, &dev);
        let (gamma, beta) = ([1.5f32, -0.7, 0.9], [0.2f32, 0.0, -1.1]);
        set(&mut bn.weight, &gamma);
        set(&mut bn.bias, &beta);
        let x: Matrix<Cpu> = dev.sample_normal_like(&(rows, n));
        let r: Matrix<Cpu> = dev.sample_normal_like(&(rows, n));
        let (xh, rh) = (x.as_vec(), r.as_vec());
        let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let (g64, b64) = (f64s(&gamma), f64s(&beta));
        let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
            let y = reference(x, rows, g, b);
            y.iter().zip(&rh).map(|(y, &r)| y * r as f64).sum()
        };

        let y = bn.forward(x.retaped::<OwnedTape<f32, Cpu>>());
        for (a, b) in y
            .as_vec()
            .iter()
            .zip(reference(&f64s(&xh), rows, &g64, &b64))
        {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
        let grads = (y * r.clone()).sum::<Rank0, _>().backward();
        let (gx, gg, gb) = (
            grads.get(&x).as_vec(),
            grads.get(&bn.weight.value()).as_vec(),
            grads.get(&bn.bias.value()).as_vec(),
        );

        // Central differences of the f64 reference.
        let h = 1e-5;
        let numeric = |v: &[f64], i: usize, f: &dyn Fn(&[f64]) -> f64| {
            let (mut up, mut down) = (v.to_vec(), v.to_vec());
            up[i] += h;
            down[i] -= h;
            (f(&up) - f(&down)) / (2.0 * h)
        };
        let check = |analytic: &[f32], v: &[f64], f: &dyn Fn(&[f64]) -> f64| {
            for (i, &a) in analytic.iter().enumerate() {
                let d = numeric(v, i, f);
                assert!(
                    (a as f64 - d).abs() < 1e-3 * (1.0 + d.abs()),
                    "{i}: {a} vs {d}"
                );
            }
        };
        let x64 = f64s(&xh);
        check(&gx, &x64, &|v| loss(v, &g64, &b64));
        check(&gg, &g64, &|v| loss(&x64, v, &b64));
        check(&gb, &b64, &|v| loss(&x64, &g64, v));
    }

    /// Two training batches, then evaluation, against numbers computed with
    /// PyTorch 2 (`BatchNorm1d(2, affine=False)`, `train()` then `eval()`).
    #[test]
    fn running_batch_norm_tracks_statistics_as_pytorch() {
        let dev = Cpu::default();
        let bn = RunningBatchNorm::new(2);
        // (features, batch): feature 0 is [1, 2, 3], feature 1 is [10, 10, 40].
        let x = dev.tensor_from_vec(vec![1.0f32, 2.0, 3.0, 10.0, 10.0, 40.0], (2, 3));
        let y = bn.forward(x.retaped::<OwnedTape<f32, Cpu>>()).as_vec();
        let want = reference(&[1.0, 2.0, 3.0, 10.0, 10.0, 40.0], 2, &[1.0; 2], &[0.0; 2]);
        for (a, b) in y.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
        let x = dev.tensor_from_vec(vec![-1.0f32, 1.0, 0.5, 0.5], (2, 2));
        bn.forward(x.retaped::<OwnedTape<f32, Cpu>>());
        let stats = bn.stats();
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(a, b)| (a - b).abs() < 1e-5 * (1.0 + b.abs()))
        };
        assert!(
            close(&stats.mean, &[0.18, 1.85]) && close(&stats.var, &[1.1, 27.81]),
            "{stats:?}"
        );
        // Without a tape: (x - running_mean) / sqrt(running_var + eps), each
        // example on its own, and the statistics stay.
        let x = dev.tensor_from_vec(vec![0.18f32, 2.0, 1.85, 0.0], (2, 2));
        let y = bn.forward(x).as_vec();
        assert!(close(&y, &[0.0, 1.735294, 0.0, -0.350809]), "{y:?}");
        assert_eq!(bn.stats(), stats);
        // A training batch of one example leaves the statistics as they are.
        bn.forward(
            dev.tensor_from_vec(vec![5.0f32, 5.0], (2, 1))
                .retaped::<OwnedTape<f32, Cpu>>(),
        );
        assert_eq!(bn.stats(), stats);
    }

    #[test]
    fn batch_statistics_are_used_without_a_tape() {
        let dev = Cpu::default();
        let bn = BatchNorm::new("bn1", 2, &dev);
        let x = dev.tensor_from_vec(vec![1.0f32, 2.0, 3.0, 10.0, 10.0, 40.0], (2, 3));
        let y = bn.forward(x).as_vec();
        let want = reference(&[1.0, 2.0, 3.0, 10.0, 10.0, 40.0], 2, &[1.0; 2], &[0.0; 2]);
        for (a, b) in y.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
        // Each column (example) of an instance norm has mean 0 and variance ~1.
        let x = dev.tensor_from_vec(vec![1.0f32, 5.0, 3.0, -2.0], (2, 2));
        let y = instance_norm(x).as_vec();
        assert!((y[0] + y[2]).abs() < 1e-6 && (y[0] + 1.0).abs() < 1e-5);
        assert!((y[1] - 1.0).abs() < 1e-5 && (y[3] + 1.0).abs() < 1e-5);
    }
}
