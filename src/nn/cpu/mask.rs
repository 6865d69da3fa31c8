//! Constant host-side 0/1 masks: `mul_mask` multiplies a tensor by one (a
//! k-WTA's winners; off the CPU, the chosen dendritic segments),
//! `mask_gradient` masks only the gradient of a weight that is already zero
//! wherever its pruning mask is, and `expand_kept` turns a sparse weight's
//! kept values into the full masked tensor.

use std::sync::Arc;

use dfdx::prelude::*;

use super::op::{grad_mut, on_cpu, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
use super::sparse::SparseLayout;

/// `x ⊙ mask` for a constant host-side `mask` of x's size (a pruning mask,
/// the winners of a k-WTA): the gradient reaches x only where the mask is
/// non-zero. On the CPU one parallel pass forward and one backward (dfdx's
/// element-wise kernels are serial); elsewhere the mask is uploaded and
/// multiplied by dfdx.
pub(crate) fn mul_mask<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    mask: Vec<f32>,
) -> Tensor<S, f32, D, T> {
    const CHUNK: usize = 1 << 14;
    let shape = *x.shape();
    if !on_cpu::<D>() {
        let m = upload(x.device(), &mask, shape);
        return x * m;
    }
    let (x, mut tape) = x.split_tape();
    let mut out = to_host(&x);
    for_each_chunk(&mut out, CHUNK, |i, o| {
        for (o, &m) in o.iter_mut().zip(&mask[i * CHUNK..]) {
            *o *= m;
        }
    });
    let y = upload(x.device(), &out, shape);
    if T::OWNS_TAPE {
        let yc = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            for_each_chunk(grad_mut(grads, &x)?, CHUNK, |i, a| {
                let range = i * CHUNK..;
                for ((a, g), m) in a.iter_mut().zip(&gy[range.clone()]).zip(&mask[range]) {
                    *a += g * m;
                }
            });
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// `x` unchanged, with its gradient multiplied by the constant host-side 0/1
/// `mask` in place once every other op has added its part: W ⊙ M for a
/// weight whose masked entries are already ±0.0, without a pass over W.
/// The op is recorded before any consumer of `x`, so it runs after them all.
pub(crate) fn mask_gradient<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    mask: std::sync::Arc<Vec<f32>>,
) -> Tensor<S, f32, D, T> {
    const CHUNK: usize = 1 << 14;
    let (x, mut tape) = x.split_tape();
    if T::OWNS_TAPE {
        let xc = x.clone();
        tape.add_backward_op(move |grads| {
            for_each_chunk(grad_mut(grads, &xc)?, CHUNK, |i, g| {
                for (g, &m) in g.iter_mut().zip(&mask[i * CHUNK..]) {
                    *g *= m;
                }
            });
            Ok(())
        });
    }
    x.put_tape(tape)
}

/// The full tensor (0.0 where masked) from a sparse weight's kept values
/// `x`, one per kept entry of `layout`, for a layer that uses the weight
/// densely; each kept entry's gradient is gathered back. CPU only.
pub(crate) fn expand_kept<D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<(usize,), f32, D, T>,
    layout: Arc<SparseLayout>,
) -> Tensor<(usize,), f32, D, T> {
    debug_assert!(on_cpu::<D>(), "sparse weights exist on the CPU only");
    let (x, mut tape) = x.split_tape();
    let full = layout.expand(&to_host(&x));
    let y = upload(x.device(), &full, (full.len(),));
    if T::OWNS_TAPE {
        let yc = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            for (g, &p) in grad_mut(grads, &x)?.iter_mut().zip(layout.kept()) {
                *g += gy[p as usize];
            }
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}
