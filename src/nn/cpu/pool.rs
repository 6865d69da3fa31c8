//! 2x2/stride-2 max pooling as one parallel pass forward and one backward,
//! with dfdx's `max` semantics (every entry equal to the maximum of its window
//! gets the gradient).

use dfdx::prelude::*;

use super::op::{grad_mut, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
use crate::nn::conv::Map;
use crate::nn::Matrix;

/// 2x2/stride-2 max pooling forward: (C·H·W, B) -> (C·H/2·W/2, B).
fn pool_kernel(x: &[f32], input: Map, batch: usize) -> Vec<f32> {
    let (oh, ow) = (input.height / 2, input.width / 2);
    let plane = input.height * input.width * batch;
    let mut y = vec![0.0f32; input.channels * oh * ow * batch];
    for_each_chunk(&mut y, oh * ow * batch, |c, dst| {
        let src = &x[c * plane..(c + 1) * plane];
        for py in 0..oh {
            for px in 0..ow {
                let at = |dy: usize, dx: usize| {
                    let s = ((2 * py + dy) * input.width + 2 * px + dx) * batch;
                    &src[s..s + batch]
                };
                let (a, b, c, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                let o = (py * ow + px) * batch;
                for (j, v) in dst[o..o + batch].iter_mut().enumerate() {
                    // Same order as dfdx's max over the window axis.
                    *v = a[j].max(b[j]).max(c[j]).max(d[j]);
                }
            }
        }
    });
    y
}

/// Backward of `pool_kernel`, accumulated into `gx`: like dfdx's `max`,
/// every entry equal to its window's maximum receives the gradient.
fn pool_backward(x: &[f32], y: &[f32], gy: &[f32], gx: &mut [f32], input: Map, batch: usize) {
    let (oh, ow) = (input.height / 2, input.width / 2);
    let plane = input.height * input.width * batch;
    let oplane = oh * ow * batch;
    for_each_chunk(gx, plane, |c, dst| {
        let src = &x[c * plane..(c + 1) * plane];
        let (yc, gyc) = (&y[c * oplane..][..oplane], &gy[c * oplane..][..oplane]);
        for py in 0..oh {
            for px in 0..ow {
                let o = (py * ow + px) * batch;
                let (ym, gm) = (&yc[o..o + batch], &gyc[o..o + batch]);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let s = ((2 * py + dy) * input.width + 2 * px + dx) * batch;
                    for j in 0..batch {
                        if src[s + j] == ym[j] {
                            dst[s + j] += gm[j];
                        }
                    }
                }
            }
        }
    });
}

/// 2x2 max pooling on the CPU.
pub(crate) fn max_pool2<D: Device<f32>, T: Tape<f32, D>>(
    x: Matrix<D, T>,
    input: Map,
) -> Matrix<D, T> {
    let batch = x.shape().1;
    let (x, mut tape) = x.split_tape();
    let xh = to_host(&x);
    let yh = pool_kernel(&xh, input, batch);
    let rows = yh.len() / batch;
    let out = upload(x.device(), &yh, (rows, batch));
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &y)?;
            pool_backward(&xh, &yh, &gy, grad_mut(grads, &x)?, input, batch);
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}
