//! Normalization layers of the binarized networks (Laborieux et al. 2021),
//! on feature-major activations (features, batch).
//!
//! `BatchNorm` is PyTorch's `BatchNorm1d(affine=True,
//! track_running_stats=False)`: each feature (row) is normalized over the
//! batch (columns) with the batch mean and biased variance, in training and
//! in evaluation alike, so an example's output depends on the rest of its
//! batch (a batch of one normalizes to β). The instance norm of the paper's
//! "domain" scenario normalizes each example (column) over its features and
//! has no parameters. Both are built from dfdx ops, so they run and
//! differentiate on any device.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// Added to the variance before the square root, as PyTorch's default.
const EPS: f64 = 1e-5;

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
            grads.get(bn.weight.value()).as_vec(),
            grads.get(bn.bias.value()).as_vec(),
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
