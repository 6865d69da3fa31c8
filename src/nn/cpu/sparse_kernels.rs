//! The inner loops of the sparse products: `sum_rows` (a sum of scaled
//! rows, the forward pass and the input gradient) and `dot8` (eight dot
//! products sharing one operand, the weight gradient). Written as plain
//! loops, LLVM kept `sum_rows`' running sums in memory (a load, add and
//! store per kept weight) and shuffled `dot8`'s between the halves of
//! 512-bit registers (`perf annotate`); on a CPU with AVX they run on
//! explicit 8-lane registers instead. Both paths do the same f32 operations
//! in the same order, so they give the same bits.

/// out (np values) = Σ_e w_e · src[r_e · np ..][.. np] over the `count`
/// entries (w_e, r_e) = `entry(e)`, summed in the order of e, in tiles of
/// at most 64 columns that stay in registers. `np` is a multiple of 8.
#[inline(always)]
pub(super) fn sum_rows(
    out: &mut [f32],
    src: &[f32],
    np: usize,
    count: usize,
    entry: impl Fn(usize) -> (f32, usize),
) {
    let mut b = 0;
    while b < np {
        b += match np - b {
            64.. => sum_tile::<64>(out, src, np, b, count, &entry),
            32.. => sum_tile::<32>(out, src, np, b, count, &entry),
            16.. => sum_tile::<16>(out, src, np, b, count, &entry),
            _ => sum_tile::<8>(out, src, np, b, count, &entry),
        };
    }
}

/// Columns `b..b + W` of `sum_rows`; returns W.
#[inline(always)]
fn sum_tile<const W: usize>(
    out: &mut [f32],
    src: &[f32],
    np: usize,
    b: usize,
    count: usize,
    entry: &impl Fn(usize) -> (f32, usize),
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if avx::available() {
        // SAFETY: the CPU has AVX.
        unsafe { avx::sum_tile::<W>(out, src, np, b, count, entry) };
        return W;
    }
    portable_sum_tile::<W>(out, src, np, b, count, entry);
    W
}

/// `sum_tile` as a plain loop.
#[inline(always)]
fn portable_sum_tile<const W: usize>(
    out: &mut [f32],
    src: &[f32],
    np: usize,
    b: usize,
    count: usize,
    entry: &impl Fn(usize) -> (f32, usize),
) {
    let mut acc = [0.0f32; W];
    for e in 0..count {
        let (w, r) = entry(e);
        let s: &[f32; W] = src[r * np + b..][..W].try_into().expect("W values");
        for t in 0..W {
            acc[t] += w * s[t];
        }
    }
    out[b..b + W].copy_from_slice(&acc);
}

/// Σ a[t] · b[t] for slices of a multiple of 8 values: eight lanes summed
/// in order, then added pairwise, so the bits do not depend on the SIMD width.
#[cfg(test)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
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
    let mut acc = [[0.0f32; 8]; 8];
    for c in (0..a.len()).step_by(8) {
        let a = &a[c..][..8];
        for (acc, b) in acc.iter_mut().zip(&bs) {
            let b = &b[c..][..8];
            for t in 0..8 {
                acc[t] += a[t] * b[t];
            }
        }
    }
    acc.map(|l| ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])))
}

/// The same loops on 8-lane AVX registers.
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// Whether the CPU has AVX (checked once, then a cached flag).
    #[inline(always)]
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx")
    }

    /// `sum_tile` with its W running sums in W / 8 registers (named one by
    /// one: as an array, LLVM kept them in memory).
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn sum_tile<const W: usize>(
        out: &mut [f32],
        src: &[f32],
        np: usize,
        b: usize,
        count: usize,
        entry: &impl Fn(usize) -> (f32, usize),
    ) {
        const { assert!(W == 8 || W == 16 || W == 32 || W == 64) };
        let zero = _mm256_setzero_ps();
        let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7] = [zero; 8];
        for e in 0..count {
            let (w, r) = entry(e);
            let p = src[r * np + b..][..W].as_ptr();
            let w = _mm256_set1_ps(w);
            // SAFETY: `p` points at W values; each load reads 8 of them
            // from 8 · v, v < W / 8 (the others are compiled out).
            let term = |v: usize| _mm256_mul_ps(w, unsafe { _mm256_loadu_ps(p.add(8 * v)) });
            s0 = _mm256_add_ps(s0, term(0));
            if W >= 16 {
                s1 = _mm256_add_ps(s1, term(1));
            }
            if W >= 32 {
                s2 = _mm256_add_ps(s2, term(2));
                s3 = _mm256_add_ps(s3, term(3));
            }
            if W >= 64 {
                s4 = _mm256_add_ps(s4, term(4));
                s5 = _mm256_add_ps(s5, term(5));
                s6 = _mm256_add_ps(s6, term(6));
                s7 = _mm256_add_ps(s7, term(7));
            }
        }
        let sums = [s0, s1, s2, s3, s4, s5, s6, s7];
        let out = &mut out[b..b + W];
        for (v, sum) in sums.iter().take(W / 8).enumerate() {
            // SAFETY: `out` holds W values, so 8 from 8 · v (v < W / 8).
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), *sum) };
        }
    }

    /// `dot8`: each b's eight lanes in one register (named one by one, as
    /// in `sum_tile`), then the pairwise sums of all eight at once by
    /// horizontal adds, (l0 + l1) + (l2 + l3) in the low half and
    /// (l4 + l5) + (l6 + l7) in the high, added last.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn dot8(a: &[f32], bs: [&[f32]; 8]) -> [f32; 8] {
        let len = a.len();
        assert!(len.is_multiple_of(8) && bs.iter().all(|b| b.len() >= len));
        let [p0, p1, p2, p3, p4, p5, p6, p7] = bs.map(|b| b.as_ptr());
        let zero = _mm256_setzero_ps();
        let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7] = [zero; 8];
        for c in (0..len).step_by(8) {
            // SAFETY: c + 8 <= len, and `a` and every b hold len values.
            let x = unsafe { _mm256_loadu_ps(a.as_ptr().add(c)) };
            let term = |p: *const f32| _mm256_mul_ps(x, unsafe { _mm256_loadu_ps(p.add(c)) });
            s0 = _mm256_add_ps(s0, term(p0));
            s1 = _mm256_add_ps(s1, term(p1));
            s2 = _mm256_add_ps(s2, term(p2));
            s3 = _mm256_add_ps(s3, term(p3));
            s4 = _mm256_add_ps(s4, term(p4));
            s5 = _mm256_add_ps(s5, term(p5));
            s6 = _mm256_add_ps(s6, term(p6));
            s7 = _mm256_add_ps(s7, term(p7));
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

    /// `dot8` against eight `dot`s, and `sum_rows` against the plain sum,
    /// bit for bit, on every width the products pad to up to 136: the
    /// path this CPU takes and the plain loops.
    #[test]
    fn kernels_have_the_plain_loops_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for np in (8..=136).step_by(8) {
            let a = values(np, &mut rng);
            let rows: Vec<Vec<f32>> = (0..8).map(|_| values(np, &mut rng)).collect();
            let bs: [&[f32]; 8] = std::array::from_fn(|q| rows[q].as_slice());
            let want: Vec<u32> = bs.iter().map(|b| dot(&a, b).to_bits()).collect();
            let bits8 = |v: [f32; 8]| v.map(f32::to_bits).to_vec();
            assert_eq!(bits8(dot8(&a, bs)), want, "dot8 at width {np}");
            assert_eq!(
                bits8(portable_dot8(&a, bs)),
                want,
                "plain dot8 at width {np}"
            );
            for count in [0, 1, 7, 30] {
                let src = values(40 * np, &mut rng);
                let entries: Vec<(f32, usize)> = (0..count)
                    .map(|_| (values(1, &mut rng)[0], rng.gen_range(0..40)))
                    .collect();
                let mut out = vec![f32::NAN; np];
                sum_rows(&mut out, &src, np, count, |e| entries[e]);
                let mut portable = vec![f32::NAN; np];
                for b in (0..np).step_by(8) {
                    portable_sum_tile::<8>(&mut portable, &src, np, b, count, &|e| entries[e]);
                }
                let mut plain = vec![0.0f32; np];
                for &(w, r) in &entries {
                    for (p, s) in plain.iter_mut().zip(&src[r * np..][..np]) {
                        *p += w * s;
                    }
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&out),
                    bits(&plain),
                    "sum_rows, {count} entries, width {np}"
                );
                assert_eq!(
                    bits(&portable),
                    bits(&plain),
                    "plain tiles, {count} entries"
                );
            }
        }
    }
}
