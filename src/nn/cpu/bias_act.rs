//! `bias_act`, the tail of every linear and convolutional layer: bias added
//! along the columns, then an optional ReLU, fused into one parallel pass each
//! way on the CPU; `lane_sum` gives the bias gradient a fixed summation order.

use dfdx::prelude::*;

use super::op::{grad_mut, on_cpu, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
use super::simd::with_wide_simd;
use crate::nn::Matrix;

/// `z + b` (b broadcast along the columns), then ReLU if `relu`: the tail
/// of every linear and convolutional layer. On the CPU one parallel pass
/// forward and one backward; elsewhere dfdx's broadcast add and `relu`.
pub(crate) fn bias_act<D: Device<f32>, T: Tape<f32, D>>(
    z: Matrix<D, T>,
    b: Tensor<(usize,), f32, D, T>,
    relu: bool,
) -> Matrix<D, T> {
    let shape = *z.shape();
    if !on_cpu::<D>() {
        let y = z + b.broadcast_like::<_, Axis<1>>(&shape);
        return if relu { y.relu() } else { y };
    }
    let (rows, n) = shape;
    let (z, zt) = z.split_tape();
    let (b, bt) = b.split_tape();
    let mut tape = zt.merge(bt);
    let mut yh = to_host(&z);
    add_bias_act(&mut yh, n, &to_host(&b), relu);
    let out = upload(z.device(), &yh, shape);
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            // y's gradient is not read again: mask it in place by the ReLU
            // derivative, then add it to z's and its row sums to b's.
            let mut gy = take_grad(grads, &y)?;
            let sums = bias_act_backward(&mut gy, &yh, n, relu);
            debug_assert_eq!(sums.len(), rows);
            for_each_chunk(grad_mut(grads, &z)?, n, |r, a| {
                with_wide_simd(
                    #[inline(always)]
                    || {
                        for (a, g) in a.iter_mut().zip(&gy[r * n..]) {
                            *a += g;
                        }
                    },
                )
            });
            add_bias_grad(grad_mut(grads, &b)?, &sums);
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}

/// Adds `bias[r]` to row r of `y` (rows of `n` values), then a ReLU if
/// `relu`, in place: `bias_act`'s forward, which `matmul_bias_act` runs on
/// its product.
pub(super) fn add_bias_act(y: &mut [f32], n: usize, bias: &[f32], relu: bool) {
    for_each_chunk(y, n, |r, row| {
        let bias = bias[r];
        with_wide_simd(
            #[inline(always)]
            || {
                for v in row {
                    // As dfdx: relu(s) = s.max(0), with derivative [s > 0].
                    let s = *v + bias;
                    *v = if relu { s.max(0.0) } else { s };
                }
            },
        )
    });
}

/// `bias_act`'s backward up to the product's gradient: masks the output
/// gradient `gy` in place by the ReLU's derivative at the outputs `y` (if
/// `relu`), which makes it the gradient of the product, and returns the
/// bias gradient, `gy`'s row sums.
pub(super) fn bias_act_backward(gy: &mut [f32], y: &[f32], n: usize, relu: bool) -> Vec<f32> {
    if relu {
        for_each_chunk(gy, n, |r, g| {
            with_wide_simd(
                #[inline(always)]
                || {
                    // A select, not a conditional store, so that it vectorizes.
                    for (g, &v) in g.iter_mut().zip(&y[r * n..]) {
                        *g = if v <= 0.0 { 0.0 } else { *g };
                    }
                },
            )
        });
    }
    let mut sums = Vec::with_capacity(gy.len() / n.max(1));
    with_wide_simd(
        #[inline(always)]
        || {
            // A plain loop: `map(lane_sum).collect()` was left a call.
            for row in gy.chunks(n) {
                sums.push(lane_sum(row));
            }
        },
    );
    sums
}

/// Adds the row sums from `bias_act_backward` to the bias's gradient.
pub(super) fn add_bias_grad(grad: &mut [f32], sums: &[f32]) {
    for (a, s) in grad.iter_mut().zip(sums) {
        *a += s;
    }
}

/// The sum of `values` in a fixed order that vectorizes: 16 running sums
/// over interleaved lanes, added up in lane order at the end (a serial f32
/// sum cannot be vectorized, and was the bias gradient's bottleneck).
#[inline(always)]
pub(super) fn lane_sum(values: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    for (a, v) in acc.iter_mut().zip(rest) {
        *a += v;
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_adds_every_value_including_the_remainder() {
        // Small integers add exactly in f32, in any order.
        for len in [0, 1, 15, 16, 17, 40] {
            let values: Vec<f32> = (1..=len).map(|v| v as f32).collect();
            assert_eq!(lane_sum(&values), (len * (len + 1) / 2) as f32, "len {len}");
        }
    }
}
