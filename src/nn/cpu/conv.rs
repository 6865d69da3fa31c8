//! `conv2d`, a convolution layer on the CPU: W · im2col(x) + b, then an
//! optional ReLU and 2x2 max pool, forward and backward as one op.
//!
//! The batch is cut into tiles of `TILE` examples by a band of output rows
//! (`Plan`), each an independent rayon task: im2col of the tile straight from
//! the feature-major input (each of its rows holds the tile's examples in one
//! cache line), a single-threaded product, bias, ReLU and pooling while the
//! tile is in cache. On our kernel (`sgemm`) a full tile's columns are never
//! written: the product packs them from the band's zero-padded input rows
//! (`PaddedBand`, a ninth of the values for 3x3 kernels), with the same bits.
//! The columns stay a few MB per thread whatever the batch,
//! where a whole-batch im2col of LeNet5's second layer is 1.8 GB at batch 1000.
//! The backward pass recomputes each tile's columns for its part of dW rather
//! than keeping them; dX is the convolution of the output gradient with the
//! flipped kernels (`ConvGeom::adjoint`), the same forward tiles again, so
//! there is no col2im. Every output value is computed by one task, and the
//! per-tile parts of dW and db are added in tile order: the bits do not depend
//! on the number of threads.

use std::ops::Range;
use std::sync::Arc;

use dfdx::prelude::*;
use rayon::prelude::*;

use super::bias_act::lane_sum;
use super::im2col::{copy_run, im2col_band, ConvGeom, PaddedBand};
use super::op::{grad_mut, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
use super::product::{band_product, band_products, tile_product, weight_values, Strided};
use super::simd::with_wide_simd;
use crate::nn::conv::Map;
use crate::nn::param::Param;
use crate::nn::Matrix;

/// Examples per tile: 16 f32, one 64-byte cache line of each feature-major row.
const TILE: usize = 16;

/// The im2col columns of one tile, in values (2 MB), unless one output row
/// (two when pooling) needs more.
const BAND_VALUES: usize = 1 << 19;

/// How a batch is cut into tiles: examples by `TILE`, output rows by `band`.
#[derive(Debug, Clone, Copy)]
struct Plan {
    geom: ConvGeom,
    batch: usize,
    /// Output rows per band; even when pooling, so windows never straddle bands.
    band: usize,
    pool: bool,
    /// The column budget `band` was cut to, in values.
    budget: usize,
    /// Whether full tiles read their columns from a `PaddedBand` instead
    /// of writing them (the same bits).
    gathered: bool,
}

impl Plan {
    /// Bands as tall as `budget` values of columns allow.
    fn new(geom: ConvGeom, batch: usize, pool: bool, (budget, gathered): (usize, bool)) -> Plan {
        let per_row = geom.patch() * geom.output.width * TILE.min(batch).max(1);
        let mut band = (budget / per_row.max(1)).clamp(1, geom.output.height.max(1));
        if pool {
            band = (band & !1).max(2);
        }
        Plan {
            geom,
            batch,
            band,
            pool,
            budget,
            gathered,
        }
    }

    /// Whether tile `j` reads its columns from a `PaddedBand`.
    fn gathers(&self, j: usize) -> bool {
        self.gathered && self.examples(j).len() == PaddedBand::EXAMPLES
    }

    fn tiles(&self) -> usize {
        self.batch.div_ceil(TILE)
    }

    fn bands(&self) -> usize {
        self.geom.output.height.div_ceil(self.band)
    }

    /// The examples of tile `j`.
    fn examples(&self, j: usize) -> Range<usize> {
        j * TILE..((j + 1) * TILE).min(self.batch)
    }

    /// The output rows of band `i`.
    fn rows(&self, i: usize) -> Range<usize> {
        i * self.band..((i + 1) * self.band).min(self.geom.output.height)
    }

    /// The feature map the layer outputs: the convolution's, or pooled.
    fn out_map(&self) -> Map {
        let out = self.geom.output;
        if self.pool {
            Map {
                channels: out.channels,
                height: out.height / 2,
                width: out.width / 2,
            }
        } else {
            out
        }
    }

    /// Rows of `out_map` per band.
    fn out_band(&self) -> usize {
        if self.pool {
            self.band / 2
        } else {
            self.band
        }
    }
}

/// A task's im2col columns of one tile and band: stored (`cols`), or read
/// in place from a padded band where the plan `gathers` the tile.
#[derive(Default)]
struct Columns {
    cols: Vec<f32>,
    band: PaddedBand,
    gathered: bool,
    n: usize,
}

impl Columns {
    /// The columns of tile `j`, band `i` of `x` under `plan`.
    fn fill(&mut self, x: &[f32], plan: &Plan, j: usize, i: usize) {
        let (examples, rows) = (plan.examples(j), plan.rows(i));
        let g = plan.geom;
        self.gathered = plan.gathers(j);
        self.n = rows.len() * g.output.width * examples.len();
        if self.gathered {
            self.band.fill(x, plan.batch, g, examples, rows);
        } else {
            self.cols.resize(g.patch() * self.n, 0.0);
            im2col_band(x, plan.batch, g, examples, rows, &mut self.cols);
        }
    }

    /// C = A · cols (m × n × k, k the patch), or with `transposed` C += A ·
    /// colsᵀ (m × patch × n, k = n): `tile_product` with B the columns.
    fn product(
        &self,
        mnk: (usize, usize, usize),
        a: Strided,
        transposed: bool,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        if self.gathered {
            return band_product(mnk, a, &self.band, transposed, c, ldc, accumulate);
        }
        let b = if transposed {
            Strided {
                data: &self.cols,
                rows: 1,
                cols: self.n,
            }
        } else {
            Strided {
                data: &self.cols,
                rows: self.n,
                cols: 1,
            }
        };
        tile_product(mnk, a, b, c, ldc, accumulate);
    }
}

/// One tile's forward results, each (channels, rows, width, examples):
/// the activations (dropped when pooled and not needed) and the pooled ones.
struct Tile {
    act: Vec<f32>,
    pooled: Vec<f32>,
}

/// Every tile of the convolution `plan` of feature-major `x` with kernel
/// matrix `w` (O, C·K·K), `bias` added and ReLU'd if `relu`, in tile order
/// (tile-major, band-minor). `keep`: keep the activations of pooled tiles.
fn forward_tiles(
    x: &[f32],
    plan: &Plan,
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    keep: bool,
) -> Vec<Tile> {
    let (g, bands) = (plan.geom, plan.bands());
    let (o, patch) = (g.output.channels, g.patch());
    (0..plan.tiles() * bands)
        .into_par_iter()
        .map_init(Columns::default, |scratch, idx| {
            let (j, i) = (idx / bands, idx % bands);
            let (examples, rows) = (plan.examples(j), plan.rows(i));
            let (t, h) = (examples.len(), rows.len());
            let n = h * g.output.width * t;
            let mut act = vec![0.0f32; o * n];
            let a = Strided {
                data: w,
                rows: patch,
                cols: 1,
            };
            scratch.fill(x, plan, j, i);
            scratch.product((o, n, patch), a, false, &mut act, n, false);
            if bias.is_some() || relu {
                with_wide_simd(
                    #[inline(always)]
                    || {
                        for (r, row) in act.chunks_mut(n).enumerate() {
                            let bias = bias.map_or(0.0, |b| b[r]);
                            for v in row {
                                // As dfdx: relu(s) = s.max(0), with derivative [s > 0].
                                let s = *v + bias;
                                *v = if relu { s.max(0.0) } else { s };
                            }
                        }
                    },
                );
            }
            let pooled = if plan.pool {
                pool_tile(&act, o, h, g.output.width, t)
            } else {
                Vec::new()
            };
            if plan.pool && !keep {
                act = Vec::new();
            }
            Tile { act, pooled }
        })
        .collect()
}

/// 2x2/stride-2 max pooling of a (channels, rows, width, t) tile, an odd
/// last row or column dropped as PyTorch's `MaxPool2d(2)` does.
fn pool_tile(act: &[f32], channels: usize, rows: usize, width: usize, t: usize) -> Vec<f32> {
    let (ph, pw) = (rows / 2, width / 2);
    let mut out = vec![0.0f32; channels * ph * pw * t];
    with_wide_simd(
        #[inline(always)]
        || pool_windows(act, (channels, rows, width, t), &mut out),
    );
    out
}

/// `pool_tile`'s loop: each window's maximum into `out`, (channels, rows /
/// 2, width / 2, t).
#[inline(always)]
fn pool_windows(act: &[f32], shape: (usize, usize, usize, usize), out: &mut [f32]) {
    let (channels, rows, width, t) = shape;
    let (ph, pw) = (rows / 2, width / 2);
    for c in 0..channels {
        for py in 0..ph {
            for px in 0..pw {
                let at = |dy: usize, dx: usize| {
                    &act[((c * rows + 2 * py + dy) * width + 2 * px + dx) * t..][..t]
                };
                let (a, b, cc, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                let dst = &mut out[((c * ph + py) * pw + px) * t..][..t];
                for (e, v) in dst.iter_mut().enumerate() {
                    // Same order as dfdx's max over the window axis.
                    *v = a[e].max(b[e]).max(cc[e]).max(d[e]);
                }
            }
        }
    }
}

/// Writes (or, with `add`, adds) the tiles' buffers `parts`, each (channels,
/// rows, width, examples) over its band of `band` rows of `map`, into the
/// feature-major (map.len(), batch) `out`.
fn scatter(plan: &Plan, map: Map, band: usize, parts: &[&[f32]], out: &mut [f32], add: bool) {
    let (bands, area) = (plan.bands(), map.height * map.width);
    for_each_chunk(out, plan.batch, |r, row| {
        let (c, y, x) = (r / area, r / map.width % map.height, r % map.width);
        let (i, y0) = (y / band, y / band * band);
        let rows = band.min(map.height - y0);
        for j in 0..plan.tiles() {
            let examples = plan.examples(j);
            let t = examples.len();
            let src = &parts[j * bands + i][((c * rows + y - y0) * map.width + x) * t..][..t];
            let dst = &mut row[examples];
            if add {
                for (a, b) in dst.iter_mut().zip(src) {
                    *a += b;
                }
            } else {
                copy_run(dst, src);
            }
        }
    });
}

/// The buffer of tile `j`, band `i` (bands of `band` rows of `map`) of the
/// feature-major `full`: the inverse of `scatter`.
fn gather_tile(plan: &Plan, map: Map, band: usize, full: &[f32], j: usize, i: usize) -> Vec<f32> {
    let examples = plan.examples(j);
    let t = examples.len();
    let y0 = i * band;
    let rows = band.min(map.height.saturating_sub(y0));
    let mut out = vec![0.0f32; map.channels * rows * map.width * t];
    for (k, dst) in out.chunks_mut(t).enumerate() {
        let (c, y, x) = (k / (rows * map.width), k / map.width % rows, k % map.width);
        let r = (c * map.height + y0 + y) * map.width + x;
        copy_run(dst, &full[r * plan.batch + examples.start..][..t]);
    }
    out
}

/// The gradient of one tile's pre-activations from that of its outputs
/// `gy` (pooled or not): through the pooling (every entry equal to its
/// window's maximum gets it, as dfdx's `max`) and the ReLU.
fn tile_grad(plan: &Plan, tile: &Tile, gy: &[f32], relu: bool, rows: usize, t: usize) -> Vec<f32> {
    let (o, w) = (plan.geom.output.channels, plan.geom.output.width);
    if !plan.pool {
        let mut gz = gy.to_vec();
        if relu {
            // A select, not a conditional store, so that it vectorizes.
            with_wide_simd(
                #[inline(always)]
                || {
                    for (g, &a) in gz.iter_mut().zip(&tile.act) {
                        *g = if a <= 0.0 { 0.0 } else { *g };
                    }
                },
            );
        }
        return gz;
    }
    // Entries outside every window (an odd last row or column) stay 0.
    let mut gz = vec![0.0f32; o * rows * w * t];
    with_wide_simd(
        #[inline(always)]
        || unpool(tile, gy, relu, (o, rows, w, t), &mut gz),
    );
    gz
}

/// `tile_grad`'s loop through the pooling: each entry of a window gets the
/// window's gradient if it is the window's maximum (and, after a ReLU,
/// positive), else 0. Windows do not overlap, so each entry is written once.
#[inline(always)]
fn unpool(
    tile: &Tile,
    gy: &[f32],
    relu: bool,
    shape: (usize, usize, usize, usize),
    gz: &mut [f32],
) {
    let (channels, rows, w, t) = shape;
    let (ph, pw) = (rows / 2, w / 2);
    for c in 0..channels {
        for py in 0..ph {
            for px in 0..pw {
                let p = ((c * ph + py) * pw + px) * t;
                let (m, g) = (&tile.pooled[p..p + t], &gy[p..p + t]);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let s = ((c * rows + 2 * py + dy) * w + 2 * px + dx) * t;
                    let (a, dst) = (&tile.act[s..s + t], &mut gz[s..s + t]);
                    for ((d, &a), (&m, &g)) in dst.iter_mut().zip(a).zip(m.iter().zip(g)) {
                        // `&`, not `&&`: no branch, so the loop vectorizes.
                        let max = (a == m) & (!relu | (a > 0.0));
                        *d = if max { g } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// One tile of examples' share of the gradients: dW and db (to be added in
/// tile order) and the pre-activation gradient of each of its bands.
struct TileGrads {
    dw: Vec<f32>,
    db: Vec<f32>,
    gz: Vec<Vec<f32>>,
}

/// The backward pass of tile `j` (all its bands, in order) given the
/// layer's output gradient `gy` and input `x`, both feature-major.
fn backward_tile(
    x: &[f32],
    plan: &Plan,
    tiles: &[Tile],
    gy: &[f32],
    relu: bool,
    j: usize,
) -> TileGrads {
    let (g, bands) = (plan.geom, plan.bands());
    let (o, patch) = (g.output.channels, g.patch());
    let mut grads = TileGrads {
        dw: vec![0.0f32; o * patch],
        db: vec![0.0f32; o],
        gz: Vec::with_capacity(bands),
    };
    let mut scratch = Columns::default();
    for i in 0..bands {
        let (examples, rows) = (plan.examples(j), plan.rows(i));
        let (t, h) = (examples.len(), rows.len());
        let n = h * g.output.width * t;
        let gyt = gather_tile(plan, plan.out_map(), plan.out_band(), gy, j, i);
        let gz = tile_grad(plan, &tiles[j * bands + i], &gyt, relu, h, t);
        scratch.fill(x, plan, j, i);
        // dW += dZ · colsᵀ, colsᵀ read from the columns in place.
        let a = Strided {
            data: &gz,
            rows: n,
            cols: 1,
        };
        scratch.product((o, patch, n), a, true, &mut grads.dw, patch, true);
        for (d, row) in grads.db.iter_mut().zip(gz.chunks(n)) {
            *d += lane_sum(row);
        }
        grads.gz.push(gz);
    }
    grads
}

/// Adds the input gradient to `gx`: the adjoint convolution of the
/// pre-activation gradient with the flipped kernels.
fn input_gradient(plan: &Plan, w: &[f32], grads: &[TileGrads], gx: &mut [f32]) {
    let g = plan.geom;
    let parts: Vec<&[f32]> = grads
        .iter()
        .flat_map(|t| t.gz.iter().map(Vec::as_slice))
        .collect();
    let mut gz = vec![0.0f32; g.output.len() * plan.batch];
    scatter(plan, g.output, plan.band, &parts, &mut gz, false);
    let adjoint = g.adjoint();
    let back = Plan::new(adjoint, plan.batch, false, (plan.budget, plan.gathered));
    let tiles = forward_tiles(&gz, &back, &g.flipped_kernels(w), None, false, true);
    let parts: Vec<&[f32]> = tiles.iter().map(|t| t.act.as_slice()).collect();
    scatter(&back, adjoint.output, back.band, &parts, gx, true);
}

/// A convolution layer on the CPU: `w` (O, C·K·K) the kernel matrix, `param`
/// its parameter if `w` is its value as it is (its host copy is then used),
/// `b` (O) the bias, x (C·H·W, batch); the result (O·OH·OW, batch), or with
/// `pool` (O·OH/2·OW/2, batch), ReLU'd if `relu`. x gets a gradient when it
/// is on a tape.
pub(crate) fn conv2d<D: Device<f32>, T, R>(
    w: Matrix<D, T>,
    param: Option<&Param<D>>,
    b: Tensor<(usize,), f32, D, T>,
    x: Matrix<D, R>,
    geom: ConvGeom,
    relu: bool,
    pool: bool,
) -> Matrix<D, T>
where
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    let columns = (BAND_VALUES, band_products());
    conv2d_in_bands(w, param, b, x, geom, (relu, pool), columns)
}

/// `conv2d` with bands of at most `budget` values of columns, read from
/// padded bands where `gathered` (`columns`).
fn conv2d_in_bands<D: Device<f32>, T, R>(
    w: Matrix<D, T>,
    param: Option<&Param<D>>,
    b: Tensor<(usize,), f32, D, T>,
    x: Matrix<D, R>,
    geom: ConvGeom,
    (relu, pool): (bool, bool),
    columns: (usize, bool),
) -> Matrix<D, T>
where
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    let batch = x.shape().1;
    debug_assert_eq!(*w.shape(), (geom.output.channels, geom.patch()));
    debug_assert_eq!(x.shape().0, geom.input.len());
    let (w, wt) = w.split_tape();
    let (b, bt) = b.split_tape();
    let (x, xt) = x.split_tape();
    let mut tape = wt.merge(bt).merge(xt);
    let values: Arc<Vec<f32>> = weight_values(&w, param);
    let (bias, xh) = (to_host(&b), to_host(&x));
    let plan = Plan::new(geom, batch, pool, columns);
    let tiles = forward_tiles(&xh, &plan, &values, Some(&bias), relu, T::OWNS_TAPE);
    let map = plan.out_map();
    let mut yh = vec![0.0f32; map.len() * batch];
    {
        let parts: Vec<&[f32]> = tiles
            .iter()
            .map(|t| if pool { &t.pooled[..] } else { &t.act[..] })
            .collect();
        scatter(&plan, map, plan.out_band(), &parts, &mut yh, false);
    }
    if !T::OWNS_TAPE {
        drop(tiles);
        return upload(x.device(), &yh, (map.len(), batch)).put_tape(tape);
    }
    let y = upload(x.device(), &yh, (map.len(), batch));
    drop(yh);
    let yc = y.clone();
    tape.add_backward_op(move |grads| {
        let gy = take_grad(grads, &yc)?;
        let parts: Vec<TileGrads> = (0..plan.tiles())
            .into_par_iter()
            .map(|j| backward_tile(&xh, &plan, &tiles, &gy, relu, j))
            .collect();
        let gw = grad_mut(grads, &w)?;
        for part in &parts {
            for (a, d) in gw.iter_mut().zip(&part.dw) {
                *a += d;
            }
        }
        let gb = grad_mut(grads, &b)?;
        for part in &parts {
            for (a, d) in gb.iter_mut().zip(&part.db) {
                *a += d;
            }
        }
        if R::OWNS_TAPE {
            input_gradient(&plan, &values, &parts, grad_mut(grads, &x)?);
        }
        put_grad(grads, &yc, gy)
    });
    y.put_tape(tape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::config::InitConfig;
    use crate::nn::conv::{Conv2d, MaxPool2};
    use crate::nn::init::Initializer;
    use crate::nn::testing::assert_close;

    type Taped = OwnedTape<f32, Cpu>;

    /// One case: input map, output channels, padding, ReLU, pooling, batch
    /// and column budget (1: one row, or two, per band).
    struct Case {
        input: Map,
        out: usize,
        pad: usize,
        relu: bool,
        pool: bool,
        batch: usize,
        budget: usize,
    }

    fn map(channels: usize, height: usize, width: usize) -> Map {
        Map {
            channels,
            height,
            width,
        }
    }

    /// The output, dW, db, and dx (empty when `first`) of `conv` on `x`
    /// with loss Σ y·r, through the tiles (their columns read from padded
    /// bands where this process's kernel can) or through the generic path.
    fn run(
        conv: &Conv2d<Cpu>,
        c: &Case,
        x: &Matrix<Cpu>,
        r: &Matrix<Cpu>,
        tiled: bool,
        first: bool,
    ) -> [Vec<f32>; 4] {
        run_with(conv, c, x, r, (tiled, band_products()), first)
    }

    /// `run`, full tiles' columns read from padded bands if `gathered`.
    fn run_with(
        conv: &Conv2d<Cpu>,
        c: &Case,
        x: &Matrix<Cpu>,
        r: &Matrix<Cpu>,
        (tiled, gathered): (bool, bool),
        first: bool,
    ) -> [Vec<f32>; 4] {
        let dev = Cpu::default();
        let pool = MaxPool2::new(conv.output(), &dev);
        let w = || {
            conv.weight
                .effective::<Taped>()
                .reshape_like(&(c.out, c.input.channels * 9))
        };
        let y: Matrix<Cpu, Taped> = match (tiled, first) {
            (true, true) => conv2d_in_bands(
                w(),
                Some(&conv.weight),
                conv.bias.effective::<Taped>(),
                x.clone(),
                conv.geom(),
                (c.relu, c.pool),
                (c.budget, gathered),
            ),
            (true, false) => conv2d_in_bands(
                w(),
                Some(&conv.weight),
                conv.bias.effective::<Taped>(),
                x.retaped::<Taped>(),
                conv.geom(),
                (c.relu, c.pool),
                (c.budget, gathered),
            ),
            (false, _) => {
                let y = conv.forward_generic(x.retaped::<Taped>());
                let y = if c.relu { y.relu() } else { y };
                if c.pool {
                    pool.forward_generic(y)
                } else {
                    y
                }
            }
        };
        let yv = y.as_vec();
        let grads = (y * r.clone()).sum::<Rank0, _>().backward();
        let dx = if first { vec![] } else { grads.get(x).as_vec() };
        [
            yv,
            grads.get(&conv.weight.value()).as_vec(),
            grads.get(&conv.bias.value()).as_vec(),
            dx,
        ]
    }

    fn cases() -> Vec<Case> {
        let case = |input, out, pad, relu, pool, batch, budget| Case {
            input,
            out,
            pad,
            relu,
            pool,
            batch,
            budget,
        };
        vec![
            case(map(2, 5, 7), 3, 1, true, true, 19, 1),
            case(map(3, 6, 5), 4, 0, false, false, 17, 1),
            case(map(2, 7, 6), 5, 1, true, false, 3, BAND_VALUES),
            case(map(1, 9, 9), 4, 1, false, true, 33, 200),
            case(map(3, 4, 4), 2, 1, true, true, 16, BAND_VALUES),
        ]
    }

    fn setup(c: &Case) -> (Conv2d<Cpu>, Matrix<Cpu>, Matrix<Cpu>) {
        let dev = Cpu::default();
        let mut init = Initializer::new(InitConfig::default(), 5);
        let conv = Conv2d::new("conv1", c.input, c.out, 3, c.pad, &mut init, &dev);
        let out = conv.output();
        let rows = if c.pool {
            out.channels * (out.height / 2) * (out.width / 2)
        } else {
            out.len()
        };
        let x = dev.sample_normal_like(&(c.input.len(), c.batch));
        let r = dev.sample_normal_like(&(rows, c.batch));
        (conv, x, r)
    }

    /// Odd maps, both paddings, pooled or not, batches that are not a
    /// multiple of the tile and bands of one or two rows, against dfdx's
    /// generic path; on whichever matrix kernel this process runs.
    #[test]
    fn tiles_match_the_generic_path_on_odd_shapes() {
        for (k, c) in cases().iter().enumerate() {
            let (conv, x, r) = setup(c);
            let generic = run(&conv, c, &x, &r, false, false);
            let tiled = run(&conv, c, &x, &r, true, false);
            for (what, (a, b)) in ["y", "dw", "db", "dx"]
                .iter()
                .zip(tiled.iter().zip(&generic))
            {
                assert_close(a, b, &format!("case {k} {what}"));
            }
            let first = run(&conv, c, &x, &r, true, true);
            assert_close(&first[0], &generic[0], &format!("case {k} first y"));
            assert_close(&first[1], &generic[1], &format!("case {k} first dw"));
            assert_close(&first[2], &generic[2], &format!("case {k} first db"));
        }
    }

    /// Full tiles read from padded bands give the bits of the stored
    /// columns, forward, dW and dx (the adjoint convolution gathers too),
    /// whatever the kernel's padding, band height and tile count.
    #[test]
    fn padded_bands_give_the_bits_of_stored_columns() {
        if !band_products() {
            println!("SKIP: padded bands need our kernel (AVX-512, or AVX2 and FMA), which this process does not run");
            return;
        }
        let mut cases = cases();
        cases.push(Case {
            input: map(5, 11, 9),
            out: 7,
            pad: 2,
            relu: true,
            pool: true,
            batch: 48,
            budget: 3000,
        });
        cases.push(Case {
            input: map(4, 6, 6),
            out: 3,
            pad: 0,
            relu: false,
            pool: false,
            batch: 32,
            budget: BAND_VALUES,
        });
        for (k, c) in cases.iter().enumerate() {
            let (conv, x, r) = setup(c);
            let stored = run_with(&conv, c, &x, &r, (true, false), false);
            let gathered = run_with(&conv, c, &x, &r, (true, true), false);
            for (what, (a, b)) in ["y", "dw", "db", "dx"]
                .iter()
                .zip(stored.iter().zip(&gathered))
            {
                assert_eq!(a, b, "case {k} {what}");
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        for c in &cases()[..2] {
            let (conv, x, r) = setup(c);
            let with = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| run(&conv, c, &x, &r, true, false))
            };
            let one = with(1);
            assert_eq!(one, with(2));
            assert_eq!(one, with(3));
        }
    }

    #[test]
    fn adjoint_kernels_are_flipped_and_transposed() {
        let g = ConvGeom {
            input: map(2, 4, 4),
            output: map(3, 4, 4),
            kernel: 3,
            pad: 1,
        };
        let w: Vec<f32> = (0..54).map(|v| v as f32).collect();
        let f = g.flipped_kernels(&w);
        // (c 1, o 2, ky 0, kx 1) reads w(o 2, c 1, ky 2, kx 1).
        assert_eq!(f[((3 + 2) * 3) * 3 + 1], w[((2 * 2 + 1) * 3 + 2) * 3 + 1]);
        assert_eq!(g.adjoint().flipped_kernels(&f), w);
        assert_eq!(g.adjoint().pad, 1);
    }

    /// Where the time of LeNet5's second convolution goes, forward and
    /// backward at batch 60 and forward (pooled, tapeless) at batch 250; run
    /// with `cargo test --lib conv_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn conv_timing() {
        use std::time::Instant;
        let dev = Cpu::default();
        let mut init = Initializer::new(InitConfig::default(), 5);
        let conv = Conv2d::new("conv2", map(64, 28, 28), 64, 3, 1, &mut init, &dev);
        let pool = MaxPool2::new(conv.output(), &dev);
        for round in 0..3 {
            let x: Matrix<Cpu> = dev.sample_normal_like(&(64 * 784, 60));
            let start = Instant::now();
            let y: Matrix<Cpu, Taped> = conv.forward_fused(x.retaped::<Taped>(), true, Some(&pool));
            let forward = start.elapsed();
            let start = Instant::now();
            let _ = y.sum::<Rank0, _>().backward();
            let backward = start.elapsed();
            let x: Matrix<Cpu> = dev.sample_normal_like(&(64 * 784, 250));
            let start = Instant::now();
            let _: Matrix<Cpu> = conv.forward_fused(x, true, Some(&pool));
            let eval = start.elapsed();
            println!(
                "round {round}: batch 60 forward {:.1} ms, backward {:.1} ms; batch 250 tapeless forward {:.1} ms",
                forward.as_secs_f64() * 1e3,
                backward.as_secs_f64() * 1e3,
                eval.as_secs_f64() * 1e3
            );
        }
    }
}
