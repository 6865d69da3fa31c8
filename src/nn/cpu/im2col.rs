//! im2col and its adjoint col2im for stride-1, zero-padded convolutions with
//! square kernels (`ConvGeom`), as rayon loops over host buffers, and `im2col`,
//! the taped op that the products use where our AVX-512 kernel does not run.

use dfdx::prelude::*;

use super::op::{grad_mut, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
use crate::nn::conv::Map;
use crate::nn::Matrix;

/// Geometry of a stride-1, zero-padded convolution with square kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    /// The input feature map.
    pub(crate) input: Map,
    /// The output feature map (`channels` is the number of kernels).
    pub(crate) output: Map,
    /// The kernels' side, K.
    pub(crate) kernel: usize,
    /// Zero rows and columns added on each side of the input.
    pub(crate) pad: usize,
}

impl ConvGeom {
    /// Input row and column read by output position (oy, ox) at kernel offset (ky, kx).
    fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy + ky).checked_sub(self.pad)?;
        let ix = (ox + kx).checked_sub(self.pad)?;
        (iy < self.input.height && ix < self.input.width).then_some((iy, ix))
    }
}

/// im2col of a (C·H·W, B) batch: rows (c, ky, kx), columns (oy, ox, b).
pub(super) fn im2col_kernel(x: &[f32], g: ConvGeom, batch: usize) -> Vec<f32> {
    let (k, out) = (g.kernel, g.output);
    let row = out.height * out.width * batch;
    let plane = g.input.height * g.input.width * batch;
    let mut cols = vec![0.0f32; g.input.channels * k * k * row];
    for_each_chunk(&mut cols, row, |r, dst| {
        let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
        let src = &x[c * plane..(c + 1) * plane];
        for oy in 0..out.height {
            for ox in 0..out.width {
                if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                    let s = (iy * g.input.width + ix) * batch;
                    let d = (oy * out.width + ox) * batch;
                    dst[d..d + batch].copy_from_slice(&src[s..s + batch]);
                }
            }
        }
    });
    cols
}

/// col2im, accumulated into `gx`: the adjoint of `im2col_kernel`.
pub(super) fn col2im_kernel(gcols: &[f32], gx: &mut [f32], g: ConvGeom, batch: usize) {
    let (k, out) = (g.kernel, g.output);
    let row = out.height * out.width * batch;
    let plane = g.input.height * g.input.width * batch;
    for_each_chunk(gx, plane, |c, dst| {
        for ky in 0..k {
            for kx in 0..k {
                let src = &gcols[((c * k + ky) * k + kx) * row..][..row];
                for oy in 0..out.height {
                    for ox in 0..out.width {
                        if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                            let d = (iy * g.input.width + ix) * batch;
                            let s = (oy * out.width + ox) * batch;
                            for (a, b) in dst[d..d + batch].iter_mut().zip(&src[s..s + batch]) {
                                *a += b;
                            }
                        }
                    }
                }
            }
        }
    });
}

/// im2col on the CPU: (C·H·W, B) -> (C·K·K, OH·OW·B), backward col2im.
pub(super) fn im2col<D: Device<f32>, R: Tape<f32, D>>(
    x: Matrix<D, R>,
    geom: ConvGeom,
) -> Matrix<D, R> {
    let batch = x.shape().1;
    let (x, mut tape) = x.split_tape();
    let cols = im2col_kernel(&to_host(&x), geom, batch);
    let rows = geom.input.channels * geom.kernel * geom.kernel;
    let n = cols.len() / rows;
    let out = upload(x.device(), &cols, (rows, n));
    if R::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &y)?;
            col2im_kernel(&gy, grad_mut(grads, &x)?, geom, batch);
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}
