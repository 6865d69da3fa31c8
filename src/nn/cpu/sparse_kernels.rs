//! The inner loops of the sparse products: `sum_rows` (a sum of scaled
//! rows, the forward pass and the input gradient) and `dot8` (eight dot
//! products sharing one operand, the weight gradient), on rows of any
//! width: the last, partial group of 8 columns is read and written through
//! masks, with the sums of rows padded with zeros. Written as plain loops,
//! LLVM kept `sum_rows`' running sums in memory (a load, add and store per
//! kept weight) and shuffled `dot8`'s between the halves of 512-bit
//! registers (`perf annotate`); on a CPU with AVX they run on explicit
//! 8-lane registers instead. Both paths do the same f32 operations in the
//! same order, so they give the same bits.

use std::ops::Range;

/// Whether `sum_rows` overwrites its output or adds its sums to it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Write {
    /// out = Σ.
    Store,
    /// out = out + Σ, Σ complete before it is added.
    Add,
}

/// out (n values) = Σ_e w_e · src[r_e · n ..][.. n] over the `count`
/// entries (w_e, r_e) = `entry(e)`, summed in the order of e (or added to
/// `out`, by `write`), in tiles of at most 64 columns that stay in registers.
#[inline(always)]
pub(super) fn sum_rows(
    out: &mut [f32],
    src: &[f32],
    n: usize,
    count: usize,
    write: Write,
    entry: impl Fn(usize) -> (f32, usize),
) {
    let full = n - n % 64;
    for b in (0..full).step_by(64) {
        sum_tile::<64>(out, src, n, b..b + 64, count, write, &entry);
    }
    let rest = full..n;
    // The narrowest tile that holds the rest, so that only its last group
    // of 8 columns is partial.
    match rest.len().div_ceil(8) {
        0 => {}
        1 => sum_tile::<8>(out, src, n, rest, count, write, &entry),
        2 => sum_tile::<16>(out, src, n, rest, count, write, &entry),
        3 => sum_tile::<24>(out, src, n, rest, count, write, &entry),
        4 => sum_tile::<32>(out, src, n, rest, count, write, &entry),
        5 => sum_tile::<40>(out, src, n, rest, count, write, &entry),
        6 => sum_tile::<48>(out, src, n, rest, count, write, &entry),
        7 => sum_tile::<56>(out, src, n, rest, count, write, &entry),
        _ => sum_tile::<64>(out, src, n, rest, count, write, &entry),
    }
}

/// Columns `cols` of `sum_rows`, W - 8 < cols.len() ≤ W.
#[inline(always)]
fn sum_tile<const W: usize>(
    out: &mut [f32],
    src: &[f32],
    n: usize,
    cols: Range<usize>,
    count: usize,
    write: Write,
    entry: &impl Fn(usize) -> (f32, usize),
) {
    debug_assert!(cols.len() <= W && cols.len() + 8 > W);
    #[cfg(target_arch = "x86_64")]
    if avx::available() {
        // SAFETY: the CPU has AVX.
        unsafe {
            if cols.len() == W {
                avx::sum_tile::<W, false>(out, src, n, cols, count, write, entry);
            } else {
                avx::sum_tile::<W, true>(out, src, n, cols, count, write, entry);
            }
        }
        return;
    }
    portable_sum_tile::<W>(out, src, n, cols, count, write, entry);
}

/// `sum_tile` as a plain loop (for any cols.len() ≤ W).
#[inline(always)]
fn portable_sum_tile<const W: usize>(
    out: &mut [f32],
    src: &[f32],
    n: usize,
    cols: Range<usize>,
    count: usize,
    write: Write,
    entry: &impl Fn(usize) -> (f32, usize),
) {
    let mut acc = [0.0f32; W];
    for e in 0..count {
        let (w, r) = entry(e);
        for (a, s) in acc.iter_mut().zip(&src[r * n + cols.start..][..cols.len()]) {
            *a += w * s;
        }
    }
    for (o, a) in out[cols].iter_mut().zip(acc) {
        *o = match write {
            Write::Store => a,
            Write::Add => *o + a,
        };
    }
}

/// Σ a[t] · b[t] over slices padded with zeros to a multiple of 8 values:
/// eight lanes summed in order, then added pairwise, so the bits do not
/// depend on the SIMD width.
#[cfg(test)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for c in (0..a.len()).step_by(8) {
        let (a, b) = (eight(a, c), eight(b, c));
        for t in 0..8 {
            acc[t] += a[t] * b[t];
        }
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// `dot(a, b)` for eight `b`s at once, with the same bits: each has its
/// own eight lanes, summed in the same order.
#[inline(always)]
pub(super) fn dot8(a: &[f32], bs: [&[f32]; 8]) -> [f32; 8] {
    #[cfg(target_arch = "x86_64")]
    if avx::available() {
        // SAFETY: the CPU has AVX.
        return unsafe { avx::dot8(a, bs) };
    }
    portable_dot8(a, bs)
}

/// `dot8` as a plain loop.
#[inline(always)]
fn portable_dot8(a: &[f32], bs: [&[f32]; 8]) -> [f32; 8] {
    let (mut acc, len) = ([[0.0f32; 8]; 8], a.len());
    for c in (0..len).step_by(8) {
        let a = eight(a, c);
        for (acc, b) in acc.iter_mut().zip(&bs) {
            let b = eight(&b[..len], c);
            for t in 0..8 {
                acc[t] += a[t] * b[t];
            }
        }
    }
    acc.map(|l| ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])))
}

/// The 8 values of `v` from `c`, zeros past its end.
#[inline(always)]
fn eight(v: &[f32], c: usize) -> [f32; 8] {
    let mut out = [0.0; 8];
    let have = (v.len() - c).min(8);
    out[..have].copy_from_slice(&v[c..c + have]);
    out
}

/// The same loops on 8-lane AVX registers.
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::Write;

    /// Whether the CPU has AVX (checked once, then a cached flag).
    #[inline(always)]
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx")
    }

    /// A mask of the first `lanes` (1 to 8) of 8, for masked loads and stores.
    #[inline(always)]
    fn first(lanes: usize) -> __m256i {
        const ONES_THEN_ZEROS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        let m = &ONES_THEN_ZEROS[8 - lanes..][..8];
        // SAFETY: `m` holds 8 values.
        unsafe { _mm256_loadu_si256(m.as_ptr().cast()) }
    }

    /// `sum_tile` with its W running sums in W / 8 registers (named one by
    /// one: as an array, LLVM kept them in memory); when PARTIAL, the last
    /// register's columns are read and written through a mask.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn sum_tile<const W: usize, const PARTIAL: bool>(
        out: &mut [f32],
        src: &[f32],
        n: usize,
        cols: Range<usize>,
        count: usize,
        write: Write,
        entry: &impl Fn(usize) -> (f32, usize),
    ) {
        const { assert!(W.is_multiple_of(8) && W >= 8 && W <= 64) };
        let (b, valid) = (cols.start, cols.len());
        assert!(if PARTIAL {
            valid + 8 > W && valid < W
        } else {
            valid == W
        });
        let last = W / 8 - 1;
        let mask = first(valid - 8 * last);
        // SAFETY (both loads): `p` points at `valid` values; register v
        // reads 8 of them from 8 · v, v < W / 8, all in bounds but the
        // last one's when PARTIAL, which reads only its masked lanes.
        let load = |p: *const f32, v: usize| unsafe {
            if PARTIAL && v == last {
                _mm256_maskload_ps(p.add(8 * v), mask)
            } else {
                _mm256_loadu_ps(p.add(8 * v))
            }
        };
        let zero = _mm256_setzero_ps();
        let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7] = [zero; 8];
        for e in 0..count {
            let (w, r) = entry(e);
            let p = src[r * n + b..][..valid].as_ptr();
            let w = _mm256_set1_ps(w);
            // Registers past W / 8 are compiled out.
            let term = |v: usize| _mm256_mul_ps(w, load(p, v));
            s0 = _mm256_add_ps(s0, term(0));
            if W > 8 {
                s1 = _mm256_add_ps(s1, term(1));
            }
            if W > 16 {
                s2 = _mm256_add_ps(s2, term(2));
            }
            if W > 24 {
                s3 = _mm256_add_ps(s3, term(3));
            }
            if W > 32 {
                s4 = _mm256_add_ps(s4, term(4));
            }
            if W > 40 {
                s5 = _mm256_add_ps(s5, term(5));
            }
            if W > 48 {
                s6 = _mm256_add_ps(s6, term(6));
            }
            if W > 56 {
                s7 = _mm256_add_ps(s7, term(7));
            }
        }
        let sums = [s0, s1, s2, s3, s4, s5, s6, s7];
        let o = out[cols].as_mut_ptr();
        for (v, &sum) in sums.iter().take(W / 8).enumerate() {
            let sum = match write {
                Write::Store => sum,
                Write::Add => _mm256_add_ps(load(o, v), sum),
            };
            // SAFETY: as the loads, into `out`'s `valid` values.
            unsafe {
                if PARTIAL && v == last {
                    _mm256_maskstore_ps(o.add(8 * v), mask, sum);
                } else {
                    _mm256_storeu_ps(o.add(8 * v), sum);
                }
            }
        }
    }

    /// `dot8`: each b's eight lanes in one register (named one by one, as
    /// in `sum_tile`; a partial last group through a mask, its other lanes
    /// zeros), then the pairwise sums of all eight at once by horizontal
    /// adds, (l0 + l1) + (l2 + l3) in the low half and (l4 + l5) + (l6 + l7)
    /// in the high, added last.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn dot8(a: &[f32], bs: [&[f32]; 8]) -> [f32; 8] {
        let len = a.len();
        assert!(bs.iter().all(|b| b.len() >= len));
        let full = len - len % 8;
        let [p0, p1, p2, p3, p4, p5, p6, p7] = bs.map(|b| b.as_ptr());
        let zero = _mm256_setzero_ps();
        let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7] = [zero; 8];
        // Adds x · b, 8 values from c of `a` and of each b, to b's register;
        // through `mask` for a partial last group.
        let mut step = |c: usize, mask: Option<__m256i>| {
            // SAFETY: c + 8 <= len, or the mask's lanes are the len - c values
            // from c; `a` and every b hold len values.
            let load = |p: *const f32| unsafe {
                match mask {
                    Some(mask) => _mm256_maskload_ps(p.add(c), mask),
                    None => _mm256_loadu_ps(p.add(c)),
                }
            };
            let x = load(a.as_ptr());
            let term = |p: *const f32| _mm256_mul_ps(x, load(p));
            s0 = _mm256_add_ps(s0, term(p0));
            s1 = _mm256_add_ps(s1, term(p1));
            s2 = _mm256_add_ps(s2, term(p2));
            s3 = _mm256_add_ps(s3, term(p3));
            s4 = _mm256_add_ps(s4, term(p4));
            s5 = _mm256_add_ps(s5, term(p5));
            s6 = _mm256_add_ps(s6, term(p6));
            s7 = _mm256_add_ps(s7, term(p7));
        };
        for c in (0..full).step_by(8) {
            step(c, None);
        }
        if full < len {
            step(full, Some(first(len - full)));
        }
        // [l0+l1, l2+l3] of b0 and b1, by 128-bit half.
        let h01 = _mm256_hadd_ps(s0, s1);
        let h23 = _mm256_hadd_ps(s2, s3);
        let h45 = _mm256_hadd_ps(s4, s5);
        let h67 = _mm256_hadd_ps(s6, s7);
        // (l0+l1)+(l2+l3) of b0..b3 low, (l4+l5)+(l6+l7) high.
        let q0 = _mm256_hadd_ps(h01, h23);
        let q1 = _mm256_hadd_ps(h45, h67);
        let low = _mm256_permute2f128_ps(q0, q1, 0x20);
        let high = _mm256_permute2f128_ps(q0, q1, 0x31);
        let mut sums = [0.0f32; 8];
        // SAFETY: `sums` holds 8 values.
        unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), _mm256_add_ps(low, high)) };
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Values far apart in magnitude, and some zeros of both signs, so
    /// that any other order of additions shows in the bits.
    fn values(len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..len)
            .map(|i| match i % 11 {
                0 => 0.0,
                1 => -0.0,
                _ => rng.gen_range(-1.0f32..1.0) * 10f32.powi(rng.gen_range(-6..7)),
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// `dot8` against eight `dot`s, and `sum_rows` against the plain sum
    /// (stored, and added to what the output held), bit for bit, on every
    /// width up to 136: the path this CPU takes and the plain loops.
    #[test]
    fn kernels_have_the_plain_loops_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in 1..=136 {
            let a = values(n, &mut rng);
            let rows: Vec<Vec<f32>> = (0..8).map(|_| values(n, &mut rng)).collect();
            let bs: [&[f32]; 8] = std::array::from_fn(|q| rows[q].as_slice());
            let want: Vec<u32> = bs.iter().map(|b| dot(&a, b).to_bits()).collect();
            assert_eq!(bits(&dot8(&a, bs)), want, "dot8 at width {n}");
            assert_eq!(
                bits(&portable_dot8(&a, bs)),
                want,
                "plain dot8 at width {n}"
            );
            for count in [0, 1, 7, 30] {
                let src = values(40 * n, &mut rng);
                let entries: Vec<(f32, usize)> = (0..count)
                    .map(|_| (values(1, &mut rng)[0], rng.gen_range(0..40)))
                    .collect();
                let mut sum = vec![0.0f32; n];
                for &(w, r) in &entries {
                    for (p, s) in sum.iter_mut().zip(&src[r * n..][..n]) {
                        *p += w * s;
                    }
                }
                let before = values(n, &mut rng);
                for write in [Write::Store, Write::Add] {
                    let want: Vec<f32> = match write {
                        Write::Store => sum.clone(),
                        Write::Add => before.iter().zip(&sum).map(|(o, s)| o + s).collect(),
                    };
                    let what = format!("{write:?}, {count} entries, width {n}");
                    let mut out = before.clone();
                    sum_rows(&mut out, &src, n, count, write, |e| entries[e]);
                    assert_eq!(bits(&out), bits(&want), "sum_rows, {what}");
                    let mut portable = before.clone();
                    for b in (0..n).step_by(64) {
                        let cols = b..(b + 64).min(n);
                        portable_sum_tile::<64>(&mut portable, &src, n, cols, count, write, &|e| {
                            entries[e]
                        });
                    }
                    assert_eq!(bits(&portable), bits(&want), "plain tiles, {what}");
                }
            }
        }
    }
}
