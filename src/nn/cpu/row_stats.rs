//! Per-row sums, each row summed in column order (one addition after
//! another, as a plain loop adds), 16 rows side by side: batch norm's in
//! f64, and the gradient of the dendrites' gates summed per context.
//! A row's sum is a chain of dependent additions, each waiting for the one
//! before (3-4 cycles); a block of 16 rows is transposed into a small
//! buffer so that each column's 16 values are one vector and each row's
//! running sum one lane, and 16 chains share every wait. Every row's
//! additions keep the plain loop's order, so the bits are the plain loop's.

use rayon::prelude::*;

use super::par::PAR_MIN;
use super::simd::with_wide_simd;
use super::transpose::gather_transposed;

/// Rows summed side by side.
const LANES: usize = 16;

/// Replaces each row of `values` (rows of `n`) by (row - mean) / sqrt(var +
/// `eps`) and returns 1 / sqrt(var + `eps`) per row, mean and (biased)
/// variance summed in f64 in column order. In parallel blocks of rows when
/// the matrix is large.
pub(super) fn normalize_rows(values: &mut [f32], n: usize, eps: f64) -> Vec<f32> {
    let rows = values.len().checked_div(n).unwrap_or(0);
    let mut inv = vec![0.0f32; rows];
    if rows == 0 {
        return inv;
    }
    let block = |(values, inv): (&mut [f32], &mut [f32])| {
        with_wide_simd(
            #[inline(always)]
            || normalize_block(values, inv, n, eps),
        )
    };
    if values.len() < PAR_MIN {
        values
            .chunks_mut(LANES * n)
            .zip(inv.chunks_mut(LANES))
            .for_each(block);
    } else {
        values
            .par_chunks_mut(LANES * n)
            .zip(inv.par_chunks_mut(LANES))
            .for_each(block);
    }
    inv
}

/// `normalize_rows` for up to `LANES` rows.
#[inline(always)]
fn normalize_block(values: &mut [f32], inv: &mut [f32], n: usize, eps: f64) {
    let t = lanes_of(values, n);
    let count = n as f64;
    let sums = lane_sums(&t, |_, v| v as f64);
    let mean = sums.map(|s| s / count);
    let squares = lane_sums(&t, |r, v| {
        let d = v as f64 - mean[r];
        d * d
    });
    for (r, (row, inv)) in values.chunks_mut(n).zip(inv).enumerate() {
        let (mean, scale) = (mean[r], 1.0 / (squares[r] / count + eps).sqrt());
        for v in row.iter_mut() {
            *v = ((*v as f64 - mean) * scale) as f32;
        }
        *inv = scale as f32;
    }
}

/// Per row of `g` and `x` (the same shape, rows of `n`): (Σ g, Σ g · x),
/// each product and sum in f64 in column order (batch norm's dβ and dγ).
pub(super) fn gradient_sums(g: &[f32], x: &[f32], n: usize) -> Vec<(f64, f64)> {
    assert_eq!(g.len(), x.len());
    if n == 0 {
        return Vec::new();
    }
    let block = |(g, x): (&[f32], &[f32])| {
        with_wide_simd(
            #[inline(always)]
            || {
                let (tg, tx) = (lanes_of(g, n), lanes_of(x, n));
                let (mut s, mut sx) = ([0.0f64; LANES], [0.0f64; LANES]);
                for (g, x) in tg.chunks_exact(LANES).zip(tx.chunks_exact(LANES)) {
                    for r in 0..LANES {
                        s[r] += g[r] as f64;
                        sx[r] += g[r] as f64 * x[r] as f64;
                    }
                }
                let rows = g.len() / n;
                (0..rows).map(|r| (s[r], sx[r])).collect::<Vec<_>>()
            },
        )
    };
    let chunks = g.chunks(LANES * n).zip(x.chunks(LANES * n));
    if g.len() < PAR_MIN {
        chunks.flat_map(block).collect()
    } else {
        g.par_chunks(LANES * n)
            .zip(x.par_chunks(LANES * n))
            .flat_map_iter(block)
            .collect()
    }
}

/// Adds each row of `g` (rows of `n`) to the same row of `acc` (rows of
/// `groups`) by groups of columns: value j of a row goes to column `of[j]`,
/// in order of j, each addition in f32 as `acc[of[j]] += g[j]` adds.
/// `expand_columns`' backward, where a row's values of every example with
/// the same context meet in one sum. In parallel blocks of rows when `g` is
/// large.
pub(super) fn add_by_group(acc: &mut [f32], groups: usize, g: &[f32], n: usize, of: &[usize]) {
    assert_eq!(of.len(), n);
    assert_eq!(acc.len() * n, g.len() * groups);
    if n == 0 || groups == 0 {
        return;
    }
    let block = |(acc, g): (&mut [f32], &[f32])| {
        with_wide_simd(
            #[inline(always)]
            || {
                let t = lanes_of(g, n);
                let rows = g.len() / n;
                // Lane r of sums[c] is row r's running sum for column c.
                let mut sums = vec![[0.0f32; LANES]; groups];
                for (r, row) in acc.chunks(groups).enumerate() {
                    for (sum, &v) in sums.iter_mut().zip(row) {
                        sum[r] = v;
                    }
                }
                for (column, &c) in t.chunks_exact(LANES).zip(of) {
                    let sum = &mut sums[c];
                    for r in 0..LANES {
                        sum[r] += column[r];
                    }
                }
                for (r, row) in acc.chunks_mut(groups).take(rows).enumerate() {
                    for (v, sum) in row.iter_mut().zip(&sums) {
                        *v = sum[r];
                    }
                }
            },
        )
    };
    let chunks = acc.chunks_mut(LANES * groups).zip(g.chunks(LANES * n));
    if g.len() < PAR_MIN {
        chunks.for_each(block);
    } else {
        acc.par_chunks_mut(LANES * groups)
            .zip(g.par_chunks(LANES * n))
            .for_each(block);
    }
}

/// Up to `LANES` rows of `n` values, transposed: value j of row r at
/// `j · LANES + r`, the last row repeated in the lanes past the rows.
fn lanes_of(rows: &[f32], n: usize) -> Vec<f32> {
    let count = rows.len() / n;
    let order: Vec<usize> = (0..LANES).map(|r| r.min(count - 1)).collect();
    let mut t = vec![0.0f32; LANES * n];
    gather_transposed(rows, n, &order, &mut t);
    t
}

/// Σ_j `term(r, t[j · LANES + r])` for each lane r, starting from -0.0 and
/// adding in order of j, as `Iterator::sum` over the row would.
#[inline(always)]
fn lane_sums(t: &[f32], term: impl Fn(usize, f32) -> f64) -> [f64; LANES] {
    let mut acc = [-0.0f64; LANES];
    for column in t.chunks_exact(LANES) {
        for r in 0..LANES {
            acc[r] += term(r, column[r]);
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The plain loops these replace: one row at a time, one addition after another.
    fn normalize_plainly(row: &mut [f32], eps: f64) -> f32 {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for v in row.iter_mut() {
            *v = ((*v as f64 - mean) * inv) as f32;
        }
        inv as f32
    }

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // Magnitudes far apart, so that the order of the additions shows in the bits.
        (0..len)
            .map(|i| rng.gen_range(-1.0f32..1.0) * if i % 7 == 0 { 3e4 } else { 1.0 })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn rows_side_by_side_give_the_plain_loops_bits() {
        // Row counts around a block of 16, one row, and a matrix over PAR_MIN.
        for (rows, n) in [
            (1, 1),
            (1, 7),
            (5, 3),
            (16, 100),
            (17, 33),
            (40, 1000),
            (70, 1001),
        ] {
            let values = random(rows * n, rows as u64);
            let mut fast = values.clone();
            let inv = normalize_rows(&mut fast, n, 1e-5);
            let mut plain = values.clone();
            let plain_inv: Vec<f32> = plain
                .chunks_mut(n)
                .map(|row| normalize_plainly(row, 1e-5))
                .collect();
            assert_eq!(bits(&fast), bits(&plain), "{rows} x {n}");
            assert_eq!(bits(&inv), bits(&plain_inv), "{rows} x {n}");

            let (g, x) = (random(rows * n, 7), random(rows * n, 8));
            let sums = gradient_sums(&g, &x, n);
            let plain: Vec<(f64, f64)> = g
                .chunks(n)
                .zip(x.chunks(n))
                .map(|(g, x)| {
                    g.iter().zip(x).fold((0.0, 0.0), |(s, sx), (&g, &x)| {
                        (s + g as f64, sx + g as f64 * x as f64)
                    })
                })
                .collect();
            let wide = |v: &[(f64, f64)]| {
                v.iter()
                    .map(|(a, b)| (a.to_bits(), b.to_bits()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(wide(&sums), wide(&plain), "{rows} x {n}");
        }
    }

    #[test]
    fn grouped_sums_give_the_plain_loops_bits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        // Rows around the block of 16, and one shape above `PAR_MIN`.
        for (rows, n, groups) in [
            (1, 1, 1),
            (15, 7, 2),
            (16, 33, 1),
            (17, 256, 3),
            (300, 256, 1),
        ] {
            let g: Vec<f32> = (0..rows * n)
                .map(|_| rng.gen_range(-1.0f32..1.0) * 10f32.powi(rng.gen_range(-4..5)))
                .collect();
            let of: Vec<usize> = (0..n).map(|_| rng.gen_range(0..groups)).collect();
            let start: Vec<f32> = (0..rows * groups)
                .map(|i| {
                    if i % 3 == 0 {
                        -0.0
                    } else {
                        rng.gen_range(-1.0f32..1.0)
                    }
                })
                .collect();
            let mut plain = start.clone();
            for (row, g) in plain.chunks_mut(groups).zip(g.chunks(n)) {
                for (&g, &c) in g.iter().zip(&of) {
                    row[c] += g;
                }
            }
            let mut side_by_side = start;
            add_by_group(&mut side_by_side, groups, &g, n, &of);
            assert_eq!(
                bits(&side_by_side),
                bits(&plain),
                "{rows} x {n}, {groups} groups"
            );
        }
    }

    #[test]
    fn a_row_of_negative_zeros_keeps_its_signs() {
        let mut values = vec![-0.0f32; 3];
        let mut plain = values.clone();
        normalize_rows(&mut values, 3, 1e-5);
        normalize_plainly(&mut plain, 1e-5);
        assert_eq!(bits(&values), bits(&plain));
    }
}
