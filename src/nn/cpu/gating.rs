//! The active-dendrite ops, on the distinct contexts of a batch:
//! `segment_activations` computes the segments' activations,
//! `winning_segments` takes each unit's winning segment activation (a
//! gather forward, a scatter of outer products into the winning rows
//! backward), `expand_columns` gives each example the gates of its context,
//! and `gate_channels` multiplies whole feature maps by one gate per channel
//! and example.

use std::sync::Arc;

use dfdx::prelude::*;
use rayon::prelude::*;

use super::op::{grad_mut, on_cpu, put_grad, take_grad, to_host, upload};
use super::par::{for_each_chunk, PAR_MIN};
use super::row_stats::add_by_group;
use super::simd::with_wide_simd;
use crate::nn::Matrix;

/// W · C for segment weights `w` (rows, context) and a few distinct
/// contexts `contexts` (distinct, context), both row-major: (rows, distinct)
/// row-major. Each row of W is read once for all contexts, so the product
/// runs at the speed W streams from memory; each dot product sums 16 fixed
/// lanes, then the lanes in order, whatever the thread count or vector width.
pub(crate) fn segment_activations(w: &[f32], contexts: &[f32], context: usize) -> Vec<f32> {
    const ROWS: usize = 64;
    let distinct = contexts.len() / context;
    let mut out = vec![0.0f32; w.len() / context * distinct];
    let chunk = |i: usize, o: &mut [f32]| {
        with_wide_simd(
            #[inline(always)]
            || {
                let rows = w[i * ROWS * context..].chunks(context);
                for (o, row) in o.chunks_mut(distinct).zip(rows) {
                    for (o, c) in o.iter_mut().zip(contexts.chunks(context)) {
                        *o = dot(row, c);
                    }
                }
            },
        )
    };
    if w.len() * distinct < PAR_MIN {
        out.chunks_mut(ROWS * distinct)
            .enumerate()
            .for_each(|(i, o)| chunk(i, o));
    } else {
        out.par_chunks_mut(ROWS * distinct)
            .enumerate()
            .for_each(|(i, o)| chunk(i, o));
    }
    out
}

/// Σ a·b in 16 lanes (element i into lane i mod 16, in order), the lanes
/// then summed in order: a fixed order that vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let (a16, b16) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let mut tail = 0.0f32;
    for (x, y) in a16.remainder().iter().zip(b16.remainder()) {
        tail += x * y;
    }
    for (x, y) in a16.zip(b16) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The activation of each unit's winning segment for each distinct
/// context, (units, distinct), from the segment weights `w` (units·segments,
/// context), their `activations` W · C (units·segments, distinct) row-major
/// and the `choice` of segment per unit and context (`u · distinct + c`).
/// The backward pass adds dY[u, c] · C[:, c] into the winning row of W only,
/// reading the distinct contexts C as `rows` (distinct, context), in the
/// order of the contexts, one parallel chunk per unit. CPU only.
pub(crate) fn winning_segments<D: Device<f32>, T: Tape<f32, D>>(
    w: Matrix<D, T>,
    activations: &[f32],
    choice: Vec<usize>,
    rows: Arc<Vec<f32>>,
) -> Matrix<D, T> {
    debug_assert!(on_cpu::<D>(), "winning_segments is the CPU path");
    let (weights, context) = *w.shape();
    let distinct = rows.len() / context;
    let units = choice.len() / distinct;
    let segments = weights / units;
    debug_assert_eq!(activations.len(), weights * distinct);
    let (w, mut tape) = w.split_tape();
    let out: Vec<f32> = choice
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let (u, c) = (i / distinct, i % distinct);
            activations[(u * segments + s) * distinct + c]
        })
        .collect();
    let y = upload(w.device(), &out, (units, distinct));
    if T::OWNS_TAPE {
        let yc = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            for_each_chunk(grad_mut(grads, &w)?, segments * context, |u, block| {
                for c in 0..distinct {
                    let i = u * distinct + c;
                    let row = &mut block[choice[i] * context..(choice[i] + 1) * context];
                    let x = &rows[c * context..(c + 1) * context];
                    for (a, &x) in row.iter_mut().zip(x) {
                        *a += gy[i] * x;
                    }
                }
            });
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// Column `of[b]` of `x` (rows, distinct) for every example `b`: (rows,
/// batch), the gates of the distinct contexts given to the examples that
/// have them. The backward pass sums, in the order of the examples, the
/// gradients of the examples sharing a context. `x` itself when every
/// example has its own context, in order. CPU only.
pub(crate) fn expand_columns<D: Device<f32>, T: Tape<f32, D>>(
    x: Matrix<D, T>,
    of: &[usize],
) -> Matrix<D, T> {
    debug_assert!(on_cpu::<D>(), "expand_columns is the CPU path");
    let (rows, distinct) = *x.shape();
    let batch = of.len();
    if distinct == batch && of.iter().enumerate().all(|(b, &c)| b == c) {
        return x;
    }
    let (x, mut tape) = x.split_tape();
    let xh = to_host(&x);
    let mut out = vec![0.0f32; rows * batch];
    for_each_chunk(&mut out, batch, |r, row| {
        for (o, &c) in row.iter_mut().zip(of) {
            *o = xh[r * distinct + c];
        }
    });
    let y = upload(x.device(), &out, (rows, batch));
    if T::OWNS_TAPE {
        let yc = y.clone();
        let of = of.to_vec();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            add_by_group(grad_mut(grads, &x)?, distinct, &gy, batch, &of);
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// `z ⊙ gate` with one gate value per channel and example: `z` is
/// (channels · positions, batch), `gate` (channels, batch), so whole feature
/// maps are gated. On the CPU one parallel pass each way; elsewhere dfdx's
/// broadcast and multiply.
pub(crate) fn gate_channels<D: Device<f32>, T: Tape<f32, D>>(
    z: Matrix<D, T>,
    gate: Matrix<D, T>,
    positions: usize,
) -> Matrix<D, T> {
    let (rows, batch) = *z.shape();
    let channels = rows / positions;
    if !on_cpu::<D>() {
        let full = (channels, positions, batch);
        return (z.reshape_like(&full) * gate.broadcast_like::<_, Axis<1>>(&full))
            .reshape_like(&(rows, batch));
    }
    let (z, zt) = z.split_tape();
    let (gate, gt) = gate.split_tape();
    let mut tape = zt.merge(gt);
    let zh = to_host(&z);
    let gh = to_host(&gate);
    let block = positions * batch;
    let mut out = zh.clone();
    // Each channel's block is `positions` rows of `batch` values, and its
    // gates one row.
    for_each_chunk(&mut out, block, |c, o| {
        let gate = &gh[c * batch..][..batch];
        for row in o.chunks_mut(batch) {
            for (o, &g) in row.iter_mut().zip(gate) {
                *o *= g;
            }
        }
    });
    let y = upload(z.device(), &out, (rows, batch));
    if T::OWNS_TAPE {
        let yc = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            for_each_chunk(grad_mut(grads, &z)?, block, |c, a| {
                let (gy, gate) = (&gy[c * block..][..block], &gh[c * batch..][..batch]);
                for (a, gy) in a.chunks_mut(batch).zip(gy.chunks(batch)) {
                    for ((a, &gy), &g) in a.iter_mut().zip(gy).zip(gate) {
                        *a += gy * g;
                    }
                }
            });
            // Each example's gate gradient summed over the positions in order.
            let mut sums = vec![0.0f32; channels * batch];
            for_each_chunk(&mut sums, batch, |c, s| {
                let (gy, z) = (&gy[c * block..][..block], &zh[c * block..][..block]);
                for (gy, z) in gy.chunks(batch).zip(z.chunks(batch)) {
                    for ((s, &gy), &z) in s.iter_mut().zip(gy).zip(z) {
                        *s += gy * z;
                    }
                }
            });
            for (a, s) in grad_mut(grads, &gate)?.iter_mut().zip(&sums) {
                *a += s;
            }
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 sums, on a context length that is no multiple of the lanes.
    #[test]
    fn segment_activations_are_the_products_of_weights_and_contexts() {
        let (rows, context, distinct) = (13, 37, 3);
        let w: Vec<f32> = (0..rows * context)
            .map(|i| (i as f32 * 0.61).sin())
            .collect();
        let c: Vec<f32> = (0..distinct * context)
            .map(|i| (i as f32 * 0.23).cos())
            .collect();
        let got = segment_activations(&w, &c, context);
        for r in 0..rows {
            for d in 0..distinct {
                let want: f64 = (0..context)
                    .map(|k| w[r * context + k] as f64 * c[d * context + k] as f64)
                    .sum();
                let g = got[r * distinct + d] as f64;
                assert!(
                    (g - want).abs() < 1e-5,
                    "row {r}, context {d}: {g} vs {want}"
                );
            }
        }
    }
}
