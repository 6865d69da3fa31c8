//! The geometry of a stride-1, zero-padded convolution with square kernels
//! (`ConvGeom`), and `im2col_band`, the im2col of one tile of it: a band of
//! output rows for a run of examples, read straight from the feature-major
//! (C·H·W, batch) layout, whose rows hold a run of examples contiguously.

use std::ops::Range;

use crate::nn::conv::Map;

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
    /// Rows of a patch (and columns of the kernel matrix): C·K·K.
    pub(super) fn patch(&self) -> usize {
        self.input.channels * self.kernel * self.kernel
    }

    /// The convolution whose output is this one's input gradient: over the
    /// output map, back to the input map, with the kernels flipped and
    /// transposed (`flipped_kernels`) and K-1-pad zeros of padding.
    pub(super) fn adjoint(&self) -> ConvGeom {
        assert!(self.pad < self.kernel, "padding of a kernel's side or more");
        ConvGeom {
            input: self.output,
            output: self.input,
            kernel: self.kernel,
            pad: self.kernel - 1 - self.pad,
        }
    }

    /// The kernel matrix of `adjoint` from this one's (O, C·K·K) matrix `w`:
    /// (C, O·K·K), entry (c, (o, ky, kx)) = w(o, (c, K-1-ky, K-1-kx)).
    pub(super) fn flipped_kernels(&self, w: &[f32]) -> Vec<f32> {
        let (o_n, c_n, k) = (self.output.channels, self.input.channels, self.kernel);
        let mut out = vec![0.0f32; w.len()];
        for c in 0..c_n {
            for o in 0..o_n {
                for ky in 0..k {
                    for kx in 0..k {
                        let src = ((o * c_n + c) * k + (k - 1 - ky)) * k + (k - 1 - kx);
                        out[((c * o_n + o) * k + ky) * k + kx] = w[src];
                    }
                }
            }
        }
        out
    }

    /// The input coordinate read at output coordinate `o` and kernel offset
    /// `d` along an axis of `size` input positions; `None` in the padding.
    fn source(&self, o: usize, d: usize, size: usize) -> Option<usize> {
        (o + d).checked_sub(self.pad).filter(|&i| i < size)
    }
}

/// im2col of output rows `rows` (all columns) for examples `examples` of a
/// feature-major (C·H·W, `batch`) input `x`: `cols` is (C·K·K, n), n =
/// rows·OW·examples, columns ordered (oy, ox, example), padding zero.
pub(super) fn im2col_band(
    x: &[f32],
    batch: usize,
    g: ConvGeom,
    examples: Range<usize>,
    rows: Range<usize>,
    cols: &mut [f32],
) {
    let (k, ow, t) = (g.kernel, g.output.width, examples.len());
    let (ih, iw) = (g.input.height, g.input.width);
    let n = rows.len() * ow * t;
    for (r, dst) in cols[..g.patch() * n].chunks_mut(n).enumerate() {
        let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
        for (line, oy) in dst.chunks_mut(ow * t).zip(rows.clone()) {
            let Some(iy) = g.source(oy, ky, ih) else {
                line.fill(0.0);
                continue;
            };
            for (ox, d) in line.chunks_mut(t).enumerate() {
                match g.source(ox, kx, iw) {
                    Some(ix) => {
                        let s = ((c * ih + iy) * iw + ix) * batch + examples.start;
                        copy_run(d, &x[s..s + t]);
                    }
                    None => d.fill(0.0),
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)`, as one 64-byte move when the run is a full
/// tile of 16 examples: the convolution copies millions of such runs per
/// step, and a `memcpy` call for each cost 14% of LeNet5's training.
#[inline(always)]
pub(super) fn copy_run(dst: &mut [f32], src: &[f32]) {
    match (
        <&mut [f32; 16]>::try_from(&mut *dst),
        <&[f32; 16]>::try_from(src),
    ) {
        (Ok(d), Ok(s)) => *d = *s,
        _ => dst.copy_from_slice(src),
    }
}
