//! `bias_act`, the tail of every linear and convolutional layer: bias added
//! along the columns, then an optional ReLU, fused into one parallel pass each
//! way on the CPU; `lane_sum` gives the bias gradient a fixed summation order.

use dfdx::prelude::*;

use super::op::{grad_mut, on_cpu, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
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
    let bh = to_host(&b);
    for_each_chunk(&mut yh, n, |r, row| {
        let bias = bh[r];
        for v in row {
            // As dfdx: relu(s) = s.max(0), with derivative [s > 0].
            let s = *v + bias;
            *v = if relu { s.max(0.0) } else { s };
        }
    });
    let out = upload(z.device(), &yh, shape);
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            // y's gradient is not read again: mask it in place by the ReLU
            // derivative, then add it to z's and its row sums to b's.
            let mut gy = take_grad(grads, &y)?;
            if relu {
                for_each_chunk(&mut gy, n, |r, g| {
                    for (g, &v) in g.iter_mut().zip(&yh[r * n..]) {
                        if v <= 0.0 {
                            *g = 0.0;
                        }
                    }
                });
            }
            for_each_chunk(grad_mut(grads, &z)?, n, |r, a| {
                for (a, g) in a.iter_mut().zip(&gy[r * n..]) {
                    *a += g;
                }
            });
            let sums: Vec<f32> = gy.chunks(n).map(lane_sum).collect();
            debug_assert_eq!(sums.len(), rows);
            for (a, s) in grad_mut(grads, &b)?.iter_mut().zip(&sums) {
                *a += s;
            }
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}

/// The sum of `values` in a fixed order that vectorizes: 16 running sums
/// over interleaved lanes, added up in lane order at the end (a serial f32
/// sum cannot be vectorized, and was the bias gradient's bottleneck).
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
