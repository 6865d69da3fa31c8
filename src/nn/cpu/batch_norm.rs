//! `batch_norm_sign`: a binarized layer's tail (batch norm over the batch,
//! optionally with γ/β, then sign with the hardtanh estimator, or no
//! activation on the output layer) as one parallel pass per row each way,
//! instead of dfdx's dozen broadcast, reduce and element-wise ops, each a
//! pass over the activations with its own allocation.

use dfdx::prelude::*;

use super::op::{grad_mut, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
use super::row_stats::{gradient_sums, normalize_rows};
use super::sign::sign;
use crate::nn::norm::EPS;
use crate::nn::Matrix;

/// γ and β of a batch norm, on the tape of the activations they scale.
pub(crate) type Affine<D, T> = (Tensor<(usize,), f32, D, T>, Tensor<(usize,), f32, D, T>);

/// Each row of `z` (features, batch) normalized over the batch with the
/// batch mean and biased variance, scaled by γ and shifted by β if `affine`,
/// then sign(·) (sign(0) = 0) with the hardtanh estimator (gradient only
/// where the pre-sign value is within [-1, 1]) if `binarize`. Statistics are
/// summed in f64 in column order, so results do not depend on the thread
/// count.
pub(crate) fn batch_norm_sign<D: Device<f32>, T: Tape<f32, D>>(
    z: Matrix<D, T>,
    affine: Option<Affine<D, T>>,
    binarize: bool,
) -> Matrix<D, T> {
    let shape = *z.shape();
    let (rows, n) = shape;
    let (z, mut tape) = z.split_tape();
    let affine = affine.map(|(g, b)| {
        let ((g, gt), (b, bt)) = (g.split_tape(), b.split_tape());
        tape = std::mem::take(&mut tape).merge(gt).merge(bt);
        (g, b)
    });
    let (gamma, beta) = match &affine {
        Some((g, b)) => (to_host(g), to_host(b)),
        None => (vec![1.0; rows], vec![0.0; rows]),
    };
    // `xh` becomes the normalized values x̂; `inv` holds 1/σ per row.
    let mut xh = to_host(&z);
    let inv = normalize_rows(&mut xh, n, EPS);
    let activate = |yh: &mut [f32]| scale_shift_sign(yh, n, (&gamma, &beta), binarize);
    if !T::OWNS_TAPE {
        // Nothing reads x̂ again: activate it in place.
        activate(&mut xh);
        return upload(z.device(), &xh, shape).put_tape(tape);
    }
    let mut yh = xh.clone();
    activate(&mut yh);
    let out = upload(z.device(), &yh, shape);
    let y = out.clone();
    tape.add_backward_op(move |grads| {
        let mut gy = take_grad(grads, &y)?;
        // The estimator: gradient only where |γ x̂ + β| <= 1.
        if binarize {
            for_each_chunk(&mut gy, n.max(1), |r, g| {
                let (ga, b) = (gamma[r], beta[r]);
                for (g, &x) in g.iter_mut().zip(&xh[r * n..]) {
                    if (ga * x + b).abs() > 1.0 {
                        *g = 0.0;
                    }
                }
            });
        }
        // Per row: dβ = Σ g, dγ = Σ g x̂, dz = γ/σ (g - (dβ + x̂ dγ)/n).
        let sums = gradient_sums(&gy, &xh, n);
        for_each_chunk(grad_mut(grads, &z)?, n.max(1), |r, a| {
            let (db, dg) = sums[r];
            let scale = gamma[r] as f64 * inv[r] as f64;
            let (g, x) = (&gy[r * n..(r + 1) * n], &xh[r * n..(r + 1) * n]);
            for ((a, &g), &x) in a.iter_mut().zip(g).zip(x) {
                let centred = g as f64 - (db + x as f64 * dg) / n as f64;
                *a += (scale * centred) as f32;
            }
        });
        if let Some((g, b)) = &affine {
            for (a, s) in grad_mut(grads, g)?.iter_mut().zip(&sums) {
                *a += s.1 as f32;
            }
            for (a, s) in grad_mut(grads, b)?.iter_mut().zip(&sums) {
                *a += s.0 as f32;
            }
        }
        put_grad(grads, &y, gy)
    });
    out.put_tape(tape)
}

/// Each row r of `x̂` (rows of `n`) made γ_r x̂ + β_r, then its sign if
/// `binarize`, in place: batch norm's output from the normalized values.
pub(super) fn scale_shift_sign(
    xh: &mut [f32],
    n: usize,
    (gamma, beta): (&[f32], &[f32]),
    binarize: bool,
) {
    for_each_chunk(xh, n.max(1), |r, row| {
        let (g, b) = (gamma[r], beta[r]);
        for v in row {
            let pre = g * *v + b;
            *v = if binarize { sign(pre) } else { pre };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sum(batch_norm_sign(z) ⊙ r) and its gradients, against dfdx's
    /// generic ops (normalize, γ/β broadcast, the detach-trick estimator).
    fn compare(rows: usize, n: usize, binarize: bool) {
        let dev = Cpu::default();
        let z: Matrix<Cpu> = dev.sample_normal_like(&(rows, n));
        let z = z * 1.7 + 0.3;
        let r: Matrix<Cpu> = dev.sample_normal_like(&(rows, n));
        let gamma: Tensor<(usize,), f32, Cpu> = dev.sample_uniform_like(&(rows,));
        let beta: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(rows,)) * 0.5;

        let fused = batch_norm_sign(
            z.retaped::<OwnedTape<f32, Cpu>>(),
            Some((gamma.retaped(), beta.retaped())),
            binarize,
        );
        let (fy, fg) = {
            let y = fused.retaped::<NoneTape>().as_vec();
            let g = (fused * r.clone()).sum::<Rank0, _>().backward();
            (
                y,
                [
                    g.get(&z).as_vec(),
                    g.get(&gamma).as_vec(),
                    g.get(&beta).as_vec(),
                ],
            )
        };

        let zt = z.retaped::<OwnedTape<f32, Cpu>>();
        let shape = (rows, n);
        let pre = zt.normalize::<Axis<1>>(EPS)
            * gamma
                .retaped::<OwnedTape<f32, Cpu>>()
                .broadcast_like::<_, Axis<1>>(&shape)
            + beta
                .retaped::<OwnedTape<f32, Cpu>>()
                .broadcast_like::<_, Axis<1>>(&shape);
        let plain = if binarize {
            let target: Vec<f32> = pre
                .retaped::<NoneTape>()
                .as_vec()
                .into_iter()
                .map(sign)
                .collect();
            let target = dev.tensor_from_vec(target, shape);
            let clipped = pre.clamp(-1.0, 1.0);
            let detached = clipped.retaped::<NoneTape>() + 0.0;
            (clipped - detached) + target
        } else {
            pre
        };
        let py = plain.retaped::<NoneTape>().as_vec();
        let pg = (plain * r.clone()).sum::<Rank0, _>().backward();
        let pg = [
            pg.get(&z).as_vec(),
            pg.get(&gamma).as_vec(),
            pg.get(&beta).as_vec(),
        ];

        let close = |a: &[f32], b: &[f32], what: &str| {
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-4 * (1.0 + b.abs()),
                    "{what}[{i}] {rows}x{n} sign {binarize}: {a} vs {b}"
                );
            }
        };
        close(&fy, &py, "y");
        for (what, (a, b)) in ["dz", "dgamma", "dbeta"].iter().zip(fg.iter().zip(&pg)) {
            close(a, b, what);
        }
    }

    #[test]
    fn fused_tail_matches_the_generic_ops_on_odd_shapes() {
        for (rows, n) in [(1, 2), (3, 5), (7, 33), (17, 100)] {
            compare(rows, n, true);
            compare(rows, n, false);
        }
    }

    #[test]
    fn without_affine_it_is_plain_normalization() {
        let dev = Cpu::default();
        let z = dev.tensor_from_vec(vec![1.0f32, 2.0, 3.0, 10.0, 10.0, 40.0], (2, 3));
        let y = batch_norm_sign::<Cpu, NoneTape>(z.clone(), None, false).as_vec();
        let want = z.normalize::<Axis<1>>(EPS).as_vec();
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let s = batch_norm_sign::<Cpu, NoneTape>(
            dev.tensor_from_vec(vec![1.0f32, 2.0, 3.0, 5.0, 5.0, 5.0], (2, 3)),
            None,
            true,
        )
        .as_vec();
        assert_eq!(s, [-1.0, 0.0, 1.0, 0.0, 0.0, 0.0], "sign(0) = 0");
    }
}
