//! The geometry of a stride-1, zero-padded convolution with square kernels
//! (`ConvGeom`), and `im2col_band`, the im2col of one tile of it: a band of
//! output rows for a run of examples, read straight from the feature-major
//! (C·H·W, batch) layout, whose rows hold a run of examples contiguously;
//! or `PaddedBand`, the input rows such a band reads, from which a product
//! reads the same columns in place.

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

/// The rows of a feature-major input that one band of output rows reads, for
/// one full tile of 16 examples, zero-padded: (C, h + K - 1, W + 2·pad, 16)
/// for a band of h rows, and the offsets (`rows`, `groups`) that read it as
/// that band's im2col columns: column (oy, ox, e) of row (c, ky, kx) is
/// `data[rows[(c, ky, kx)] + groups[(oy, ox)] + e]`. `sgemm_gathered` packs
/// its panels from it, so the columns (9 times as many values for a 3x3
/// kernel) are never written.
#[derive(Debug, Default)]
pub(super) struct PaddedBand {
    pub(super) data: Vec<f32>,
    pub(super) rows: Vec<usize>,
    pub(super) groups: Vec<usize>,
}

impl PaddedBand {
    /// Examples per band: one run of the gathered matrix.
    pub(super) const EXAMPLES: usize = 16;

    /// The band of output rows `rows` for examples `examples` (exactly
    /// `EXAMPLES` of them) of `x` (C·H·W, `batch`); reuses the buffers.
    pub(super) fn fill(
        &mut self,
        x: &[f32],
        batch: usize,
        g: ConvGeom,
        examples: Range<usize>,
        rows: Range<usize>,
    ) {
        const T: usize = PaddedBand::EXAMPLES;
        assert_eq!(examples.len(), T, "a padded band holds one full tile");
        let (k, pad) = (g.kernel, g.pad);
        let (ih, iw) = (g.input.height, g.input.width);
        let (hh, wp) = (rows.len() + k - 1, iw + 2 * pad);
        self.data.clear();
        self.data.resize(g.input.channels * hh * wp * T, 0.0);
        for c in 0..g.input.channels {
            for yy in 0..hh {
                let Some(iy) = g.source(rows.start, yy, ih) else {
                    continue;
                };
                for ix in 0..iw {
                    let s = ((c * ih + iy) * iw + ix) * batch + examples.start;
                    let d = ((c * hh + yy) * wp + ix + pad) * T;
                    copy_run(&mut self.data[d..d + T], &x[s..s + T]);
                }
            }
        }
        self.rows.clear();
        for c in 0..g.input.channels {
            for ky in 0..k {
                for kx in 0..k {
                    self.rows.push(((c * hh + ky) * wp + kx) * T);
                }
            }
        }
        self.groups.clear();
        for oy in 0..rows.len() {
            for ox in 0..g.output.width {
                self.groups.push((oy * wp + ox) * T);
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
