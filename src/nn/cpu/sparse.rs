//! Sparse weights: `SparseLayout` lists where a pruning mask keeps entries,
//! by row and by column (built once per mask), for a parameter that stores
//! only its kept values (in row-major order); `gather`, `expand` and
//! `relayout` move per-entry data between that compact form and the full
//! one. `forward` computes Y = W X, and `add_input_grad` and `weight_grad`
//! add Wᵀ dY and dY Xᵀ (at the kept entries only) to gradients, from and
//! into compact vectors, so their cost follows the kept count. Activations
//! are (features, batch), any batch width, with a tile of up to 64 examples
//! of one output row in vector registers (`sparse_kernels`). Every output
//! element is summed by one task in a fixed order (ascending kept
//! position), so results never depend on the thread count; they differ
//! from a dense product's in the last bits.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::op::cpu_vec;
use super::simd::with_wide_simd;
use super::sparse_kernels::{dot8, sum_rows, Write};

/// Densities (kept / all entries) below which a weight on the CPU stores
/// only its kept values and its products skip the masked ones. Measured
/// with `nn::network`'s ignored `masked_fc1_timing` test (every weight
/// matrix at the same density, Adam, the sparse and the dense masked paths
/// interleaved, CPU seconds per epoch, two rounds, on 2 loaded cores): FC1
/// at batch 60 breaks even near 0.4 (sparse/dense masked 0.76-0.87x at 0.5,
/// 0.97-1.23x at 0.4, 1.14-1.49x at 0.3, 1.8-2.0x at 0.2, 4.4-6.6x at
/// 0.03); 784-2048-2048-10 at batch 256, where the dense products are most
/// efficient, near 0.17 (0.84-0.96x at 0.2, 1.5-1.7x at 0.1). 0.2 keeps
/// FC1's gain and costs the wide network little; 50% (the dendrite
/// networks' weight sparsity) stays dense.
pub(crate) const SPARSE_BELOW: f64 = 0.2;

/// Below this many multiply-adds a sparse product runs on the calling
/// thread: waking a second thread and joining it cost more than it saved on
/// FC1 at 3% density (7,056 kept weights at batch 60, 450k multiply-adds:
/// 350k samples/s on two threads against 381k on one, on a 2-core Zen 5).
const PAR_WORK: usize = 1 << 20;

/// Rows per task of the parallel loops (a fixed split, whatever the threads).
const ROWS_PER_TASK: usize = 8;

/// Where a 0/1 mask of a (rows, cols) row-major weight matrix keeps entries.
/// Kept entry k (its index in compact vectors) sits at `kept[k]`.
#[derive(Debug)]
pub(crate) struct SparseLayout {
    rows: usize,
    cols: usize,
    /// Row-major positions of the kept entries, ascending.
    kept: Vec<u32>,
    /// Row i's kept entries are `row_start[i]..row_start[i + 1]`.
    row_start: Vec<usize>,
    /// The kept entries in column-major order, rows ascending within a
    /// column: column j's are `col_entry[col_start[j]..col_start[j + 1]]`,
    /// and `col_row` holds their rows.
    col_entry: Vec<u32>,
    col_row: Vec<u32>,
    col_start: Vec<usize>,
}

impl SparseLayout {
    /// Whether `mask` keeps less than `SPARSE_BELOW` of its entries (below
    /// that the sparse products are faster) and has positions that fit in
    /// 32 bits.
    pub(crate) fn is_sparse(mask: &[f32]) -> bool {
        let kept = mask.iter().filter(|&&m| m != 0.0).count();
        (kept as f64) < SPARSE_BELOW * mask.len() as f64 && u32::try_from(mask.len()).is_ok()
    }

    /// The layout of `mask` as a (rows, mask.len() / rows) matrix (its
    /// positions must fit in 32 bits).
    pub(crate) fn new(mask: &[f32], rows: usize) -> Self {
        let rows = rows.max(1);
        let cols = mask.len() / rows;
        debug_assert_eq!(rows * cols, mask.len());
        let kept: Vec<u32> = (0..mask.len())
            .filter(|&p| mask[p] != 0.0)
            .map(|p| p as u32)
            .collect();
        let mut row_start = vec![0; rows + 1];
        let mut col_start = vec![0; cols + 1];
        for &p in &kept {
            row_start[p as usize / cols + 1] += 1;
            col_start[p as usize % cols + 1] += 1;
        }
        for i in 0..rows {
            row_start[i + 1] += row_start[i];
        }
        for j in 0..cols {
            col_start[j + 1] += col_start[j];
        }
        // Counting sort by column; `kept` is row-major, so rows ascend.
        let mut next = col_start.clone();
        let (mut col_entry, mut col_row) = (vec![0; kept.len()], vec![0; kept.len()]);
        for (k, &p) in kept.iter().enumerate() {
            let j = p as usize % cols;
            col_entry[next[j]] = k as u32;
            col_row[next[j]] = (p as usize / cols) as u32;
            next[j] += 1;
        }
        Self {
            rows,
            cols,
            kept,
            row_start,
            col_entry,
            col_row,
            col_start,
        }
    }

    /// Row-major positions of the kept entries, ascending.
    pub(crate) fn kept(&self) -> &[u32] {
        &self.kept
    }

    /// (rows, cols) of the weight matrix.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Number of entries, kept or not: rows · cols.
    pub(crate) fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// The kept entries of `full` (rows · cols values), in order.
    pub(crate) fn gather(&self, full: &[f32]) -> Vec<f32> {
        self.kept.iter().map(|&p| full[p as usize]).collect()
    }

    /// The full rows · cols values from the kept ones, 0.0 elsewhere.
    pub(crate) fn expand(&self, kept: &[f32]) -> Vec<f32> {
        let mut full = vec![0.0; self.len()];
        for (&p, &v) in self.kept.iter().zip(kept) {
            full[p as usize] = v;
        }
        full
    }
}

/// Per-entry state (an optimizer moment) stored for `from` (a sparse
/// layout's kept entries, or every entry) re-indexed for `to`: entries both
/// keep keep their values, entries only `to` keeps start at 0.0.
pub(crate) fn relayout(
    v: &[f32],
    from: Option<&SparseLayout>,
    to: Option<&SparseLayout>,
) -> Vec<f32> {
    let full = match from {
        Some(l) => l.expand(v),
        None => v.to_vec(),
    };
    match to {
        Some(l) => l.gather(&full),
        None => full,
    }
}

/// `relayout` of a device buffer (an optimizer moment), replaced by one of
/// the new length. CPU only.
pub(crate) fn relayout_buffer<D: Device<f32>>(
    dev: &D,
    buf: &mut <D as Storage<f32>>::Vec,
    from: Option<&SparseLayout>,
    to: Option<&SparseLayout>,
) -> Result<(), D::Err> {
    let moved = relayout(cpu_vec::<D>(buf), from, to);
    let mut fresh = Storage::<f32>::try_alloc_len(dev, moved.len())?;
    cpu_vec::<D>(&mut fresh).copy_from_slice(&moved);
    *buf = fresh;
    Ok(())
}

/// Y (rows, n) = W X for X (cols, n), W's kept values `w`.
pub(crate) fn forward(l: &SparseLayout, w: &[f32], x: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![0.0; l.rows * n];
    in_row_tasks(
        &mut y,
        n,
        l.kept.len() * n,
        #[inline(always)]
        |i, row| {
            let (start, base) = (l.row_start[i], i * l.cols);
            let count = l.row_start[i + 1] - start;
            sum_rows(row, x, n, count, Write::Store, |e| {
                (w[start + e], l.kept[start + e] as usize - base)
            });
        },
    );
    y
}

/// dX += Wᵀ dY, into `dx` (cols, n), for dY (rows, n) and W's kept values
/// `w`: each element of dX gets its sum whole, as if added after.
pub(crate) fn add_input_grad(l: &SparseLayout, w: &[f32], gy: &[f32], n: usize, dx: &mut [f32]) {
    debug_assert_eq!(dx.len(), l.cols * n);
    in_row_tasks(
        dx,
        n,
        l.kept.len() * n,
        #[inline(always)]
        |j, row| {
            let start = l.col_start[j];
            let count = l.col_start[j + 1] - start;
            sum_rows(row, gy, n, count, Write::Add, |e| {
                (
                    w[l.col_entry[start + e] as usize],
                    l.col_row[start + e] as usize,
                )
            });
        },
    );
}

/// dW += dY Xᵀ at the kept entries, into `dw` (one value per kept entry),
/// for dY (rows, n) and X (cols, n).
pub(crate) fn weight_grad(l: &SparseLayout, gy: &[f32], x: &[f32], n: usize, dw: &mut [f32]) {
    debug_assert_eq!(dw.len(), l.kept.len());
    // Tasks of ROWS_PER_TASK rows, each owning its rows' run of `dw`.
    let mut tasks = Vec::with_capacity(l.rows.div_ceil(ROWS_PER_TASK));
    let mut rest = dw;
    for first in (0..l.rows).step_by(ROWS_PER_TASK) {
        let last = (first + ROWS_PER_TASK).min(l.rows);
        let (own, tail) = rest.split_at_mut(l.row_start[last] - l.row_start[first]);
        tasks.push((first..last, own));
        rest = tail;
    }
    let task = |(rows, dw): (std::ops::Range<usize>, &mut [f32])| {
        let offset = l.row_start[rows.start];
        with_wide_simd(
            #[inline(always)]
            || {
                for row in rows {
                    let (start, end) = (l.row_start[row], l.row_start[row + 1]);
                    let g = &gy[row * n..][..n];
                    let base = row * l.cols;
                    let column = |k: usize| &x[(l.kept[k] as usize - base) * n..][..n];
                    // Eight of the row's kept entries at a time (the last
                    // group padded with its last entry, whose copies are
                    // dropped): eight independent chains of adds sharing
                    // dY's row, each summed exactly as `dot` does.
                    for first in (start..end).step_by(8) {
                        let count = (end - first).min(8);
                        // Spelled out: `array::from_fn` was left a call per column.
                        let pick = |q: usize| column(first + q.min(count - 1));
                        let columns = [
                            pick(0),
                            pick(1),
                            pick(2),
                            pick(3),
                            pick(4),
                            pick(5),
                            pick(6),
                            pick(7),
                        ];
                        let sums = dot8(g, columns);
                        for (d, sum) in dw[first - offset..][..count].iter_mut().zip(sums) {
                            *d += sum;
                        }
                    }
                }
            },
        )
    };
    if l.kept.len() * n < PAR_WORK {
        tasks.into_iter().for_each(task);
    } else {
        tasks.into_par_iter().for_each(task);
    }
}

/// `f(r, row)` for every row `r` (of `width` values) of `data`, in tasks of
/// `ROWS_PER_TASK` rows, in parallel when `work` (multiply-adds) is large, in
/// wide SIMD. Each call writes only its own row.
fn in_row_tasks<F>(data: &mut [f32], width: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let width = width.max(1);
    let task = |t: usize, rows: &mut [f32]| {
        with_wide_simd(
            #[inline(always)]
            || {
                for (r, row) in rows.chunks_mut(width).enumerate() {
                    f(t * ROWS_PER_TASK + r, row);
                }
            },
        )
    };
    let chunk = width * ROWS_PER_TASK;
    if work < PAR_WORK {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(t, c)| task(t, c));
    } else {
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(t, c)| task(t, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::cpu::sparse_kernels::dot;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A mask keeping about `density` of rows · cols entries, and weights
    /// that are zero where it is.
    fn masked(
        rows: usize,
        cols: usize,
        density: f64,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<f32>, Vec<f32>) {
        let mask: Vec<f32> = (0..rows * cols)
            .map(|_| (rng.gen::<f64>() < density) as u8 as f32)
            .collect();
        let w = mask
            .iter()
            .map(|&m| {
                if m == 0.0 {
                    0.0
                } else {
                    rng.gen_range(-1.0..1.0)
                }
            })
            .collect();
        (mask, w)
    }

    fn random(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// `got` against f64 sums `want` with their sums of |terms| `scale`.
    fn check(got: &[f32], want: &[f64], scale: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
            assert!(
                ((*g as f64) - w).abs() <= 1e-5 * (1.0 + s),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn layout_lists_kept_entries_by_row_and_by_column() {
        #[rustfmt::skip]
        let mask = [
            0.0, 1.0, 0.0,
            1.0, 0.0, 1.0,
            0.0, 0.0, 0.0,
            0.0, 1.0, 0.0,
        ];
        let l = SparseLayout::new(&mask, 4);
        assert_eq!(l.shape(), (4, 3));
        assert_eq!(l.kept(), [1, 3, 5, 10]);
        assert_eq!(l.row_start, [0, 1, 3, 3, 4]);
        assert_eq!(l.col_start, [0, 1, 3, 4]);
        assert_eq!(l.col_entry, [1, 0, 3, 2]);
        assert_eq!(l.col_row, [1, 0, 3, 1]);
        let full: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(l.gather(&full), [1.0, 3.0, 5.0, 10.0]);
        let back = l.expand(&[1.0, 3.0, 5.0, 10.0]);
        assert_eq!(
            back,
            full.iter()
                .zip(&mask)
                .map(|(v, m)| v * m)
                .collect::<Vec<_>>()
        );
        // Moments move between layouts; entries newly kept start at 0.
        let mut other = mask;
        (other[1], other[0]) = (0.0, 1.0);
        let o = SparseLayout::new(&other, 4);
        assert_eq!(
            relayout(&[7.0, 8.0, 9.0, 6.0], Some(&l), Some(&o)),
            [0.0, 8.0, 9.0, 6.0]
        );
        assert_eq!(relayout(&full, None, Some(&l)), [1.0, 3.0, 5.0, 10.0]);
        assert_eq!(relayout(&[1.0, 3.0, 5.0, 10.0], Some(&l), None), back);
    }

    /// A weight is sparse just below the threshold density, not at it.
    #[test]
    fn weights_are_sparse_only_below_the_threshold() {
        let n = 1000;
        let at = (SPARSE_BELOW * n as f64).ceil() as usize;
        let mask = |kept: usize| -> Vec<f32> { (0..n).map(|p| (p < kept) as u8 as f32).collect() };
        assert!(!SparseLayout::is_sparse(&mask(at)));
        assert!(SparseLayout::is_sparse(&mask(at - 1)));
        assert!(SparseLayout::is_sparse(&mask(0)));
    }

    /// The three kernels against f64 loops over the dense masked matrix, on
    /// odd shapes and batch widths and from no kept entry to all of them.
    #[test]
    fn kernels_match_dense_loops() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for &(rows, cols) in &[(1, 1), (37, 70), (10, 300), (13, 5)] {
            for &n in &[1, 7, 45, 60, 64, 70, 129] {
                for density in [0.0, 0.03, 0.5, 1.0] {
                    let (mask, w) = masked(rows, cols, density, &mut rng);
                    let l = SparseLayout::new(&mask, rows);
                    let wk = l.gather(&w);
                    let x = random(cols * n, &mut rng);
                    let gy = random(rows * n, &mut rng);
                    let (dx0, dw0) = (random(cols * n, &mut rng), random(l.kept().len(), &mut rng));
                    let y = forward(&l, &wk, &x, n);
                    let mut dx = dx0.clone();
                    add_input_grad(&l, &wk, &gy, n, &mut dx);
                    let mut dw = dw0.clone();
                    weight_grad(&l, &gy, &x, n, &mut dw);
                    let (mut yw, mut ys) = (vec![0.0f64; rows * n], vec![0.0f64; rows * n]);
                    let mut xw: Vec<f64> = dx0.iter().map(|&v| v as f64).collect();
                    let mut xs = vec![0.0f64; cols * n];
                    let expanded: Vec<f64> = l.expand(&dw0).iter().map(|&v| v as f64).collect();
                    let (mut ww, mut ws) = (expanded, vec![0.0f64; rows * cols]);
                    for i in 0..rows {
                        for j in 0..cols {
                            let wij = w[i * cols + j] as f64;
                            for b in 0..n {
                                let (xj, gi) = (x[j * n + b] as f64, gy[i * n + b] as f64);
                                yw[i * n + b] += wij * xj;
                                ys[i * n + b] += (wij * xj).abs();
                                xw[j * n + b] += wij * gi;
                                xs[j * n + b] += (wij * gi).abs();
                                ww[i * cols + j] += gi * xj;
                                ws[i * cols + j] += (gi * xj).abs();
                            }
                        }
                    }
                    let kept = |v: &[f64]| -> Vec<f64> {
                        l.kept().iter().map(|&p| v[p as usize]).collect()
                    };
                    let what = format!("{rows}x{cols} batch {n} density {density}");
                    check(&y, &yw, &ys, &format!("y {what}"));
                    check(&dx, &xw, &xs, &format!("dx {what}"));
                    check(&dw, &kept(&ww), &kept(&ws), &format!("dw {what}"));
                }
            }
        }
    }

    /// The weight gradient, eight of a row's entries at a time (the last
    /// group padded), has the bits of one `dot` per kept entry, in rows with
    /// many counts of entries mod 8.
    #[test]
    fn weight_gradient_has_the_bits_of_one_dot_per_entry() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for &(rows, cols, n, density) in &[(37, 70, 60, 0.3), (10, 300, 7, 0.03), (5, 9, 64, 1.0)] {
            let (mask, _) = masked(rows, cols, density, &mut rng);
            let l = SparseLayout::new(&mask, rows);
            let x = random(cols * n, &mut rng);
            let gy = random(rows * n, &mut rng);
            let dw0 = random(l.kept().len(), &mut rng);
            let mut dw = dw0.clone();
            weight_grad(&l, &gy, &x, n, &mut dw);
            for (k, &p) in l.kept().iter().enumerate() {
                let (i, j) = (p as usize / cols, p as usize % cols);
                let want = dw0[k] + dot(&gy[i * n..][..n], &x[j * n..][..n]);
                assert_eq!(
                    dw[k].to_bits(),
                    want.to_bits(),
                    "entry {k} of {rows}x{cols}"
                );
            }
        }
    }

    /// FC1's first layer at 10%, large enough for the parallel loops: one
    /// thread and two give the same bits.
    #[test]
    fn kernels_do_not_depend_on_the_thread_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (rows, cols, n) = (300, 784, 60);
        let (mask, w) = masked(rows, cols, 0.1, &mut rng);
        let l = SparseLayout::new(&mask, rows);
        let wk = l.gather(&w);
        let x = random(cols * n, &mut rng);
        let gy = random(rows * n, &mut rng);
        assert!(
            l.kept().len() * n >= PAR_WORK,
            "exercises the parallel path"
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut dw = vec![0.0; l.kept().len()];
                weight_grad(&l, &gy, &x, n, &mut dw);
                let mut dx = vec![0.0; cols * n];
                add_input_grad(&l, &wk, &gy, n, &mut dx);
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                (bits(forward(&l, &wk, &x, n)), bits(dx), bits(dw))
            })
        };
        assert!(run(1) == run(2), "threads changed the bits");
    }
}
