//! sign(x) with a straight-through gradient (`sign_ste`), the binarization of
//! the BNN weights and activations, as one parallel pass each way.

use dfdx::prelude::*;

use super::op::{grad_mut, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;

/// sign(x), with sign(0) = 0 as `torch.sign`.
pub(super) fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// sign(x) with a straight-through gradient, one parallel pass each way:
/// the gradient passes unchanged (binarized weights), or with `clip` only
/// where |x| <= 1 (the hardtanh estimator of binarized activations).
pub(crate) fn sign_ste<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    clip: bool,
) -> Tensor<S, f32, D, T> {
    const CHUNK: usize = 1 << 14;
    let (x, mut tape) = x.split_tape();
    let mut yh = to_host(&x);
    // Only the clipped estimator's backward pass needs the input.
    let kept = (clip && T::OWNS_TAPE).then(|| yh.clone());
    for_each_chunk(&mut yh, CHUNK, |_, c| {
        for v in c {
            *v = sign(*v);
        }
    });
    let out = upload(x.device(), &yh, *x.shape());
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &y)?;
            for_each_chunk(grad_mut(grads, &x)?, CHUNK, |i, a| {
                let range = i * CHUNK..;
                let gy = &gy[range.clone()];
                match &kept {
                    Some(xh) => {
                        for ((a, g), v) in a.iter_mut().zip(gy).zip(&xh[range]) {
                            if v.abs() <= 1.0 {
                                *a += g;
                            }
                        }
                    }
                    None => a.iter_mut().zip(gy).for_each(|(a, g)| *a += g),
                }
            });
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}
