//! Products whose input is mostly zeros: the layers after a k-WTA layer,
//! which keeps k of its units per example (5% in Numenta's sparse and
//! active-dendrite networks), so that 95% of the next layer's multiply-adds
//! are by zero. `product` skips them and sums the rest in our kernel's
//! order, so it gives that kernel's bits; a dense product (PyTorch's, and
//! ours) does all of them.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::sgemm::KC;
use super::transpose::transposed;

/// Below this fraction of nonzero inputs the product skips the zeros.
/// Skipping costs a transpose of W per product and reads a row of Wᵀ per
/// nonzero input. The value is chosen, not measured as a break-even: it
/// sits between k-WTA layers (5-10% nonzero) and ReLU layers (about half).
const SPARSE_INPUT_BELOW: f64 = 0.125;

/// Examples per parallel task: 16 floats, one cache line of each row of Z.
const BLOCK: usize = 16;

/// Outputs held in registers while a panel's inputs are summed.
const WIDE: usize = 8;

/// Values of X looked at to decide whether to skip its zeros.
const SAMPLE: usize = 4096;

/// Whether `x` has few enough nonzero values for `product` to be worth it,
/// on a CPU that runs it. Both products give the same bits, so the count is
/// taken over an evenly spaced sample, at a cost the product never notices.
pub(super) fn skips_zeros(x: &[f32]) -> bool {
    skips_sampled(x.len(), |i| x[i])
}

/// `skips_zeros` of the k × n matrix whose transpose (n × k, row-major) is
/// `xt`: the same sample of the same elements, so the same answer.
pub(super) fn skips_zeros_transposed(xt: &[f32], k: usize, n: usize) -> bool {
    assert!(xt.len() >= k * n);
    skips_sampled(k * n, |i| xt[(i % n) * k + i / n])
}

/// `skips_zeros` of the `len` values `at` gives by row-major index.
fn skips_sampled(len: usize, at: impl Fn(usize) -> f32) -> bool {
    let sample = (0..len).step_by((len / SAMPLE).max(1));
    let (seen, nonzero) = sample.fold((0, 0), |(seen, nonzero), i| {
        (seen + 1, nonzero + usize::from(at(i) != 0.0))
    });
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && (nonzero as f64) < SPARSE_INPUT_BELOW * seen as f64
}

/// Z (out × n) = W (out × k) · X (k × n), all row-major, with only X's
/// nonzero values multiplied: each element sums, for each KC-deep panel of
/// k in turn, its nonzero terms in one fused multiply-add chain from zero,
/// then adds that panel's sum to those before, as `sgemm` does with every
/// term. A term whose input is zero leaves such a chain as it was, so the
/// bits are `sgemm`'s, except where W holds an infinity or NaN (dense, it
/// makes the sum NaN) and the sign of a zero sum. Panics on a CPU without
/// AVX2 and FMA (`skips_zeros` is false there).
pub(super) fn product(w: &[f32], (out, k, n): (usize, usize, usize), x: &[f32], z: &mut [f32]) {
    assert!(
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        "skipping zero inputs needs AVX2 and FMA"
    );
    assert!(w.len() >= out * k && x.len() >= k * n && z.len() >= out * n);
    let wt = transposed(w, out, k);
    let zp = ColumnsOf(z.as_mut_ptr());
    // Each task's outputs, kept by a thread from one block to the next:
    // `sum_panels` writes every value, so they need no zeroing.
    let new_columns = || vec![0.0f32; BLOCK * out];
    (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .for_each_init(new_columns, |columns, block| {
            let zp = &zp;
            let (b0, nb) = (block * BLOCK, BLOCK.min(n - block * BLOCK));
            // SAFETY: AVX2 is asserted above; b0 + nb ≤ n and X holds k rows.
            let terms = unsafe { nonzero_terms(x, (k, n), b0, nb) };
            let columns = &mut columns[..nb * out];
            for (column, terms) in columns.chunks_mut(out).zip(&terms) {
                // SAFETY: AVX2 and FMA are asserted above; every index in
                // `terms` is below k, and `wt` holds k rows of `out` values.
                unsafe { sum_panels(&wt, out, terms, column) };
            }
            for i in 0..out {
                for (j, column) in columns.chunks(out).enumerate() {
                    // SAFETY: i < out and b0 + j < n, inside Z (asserted above);
                    // each task writes only its own examples' columns.
                    unsafe { *zp.0.add(i * n + b0 + j) = column[i] };
                }
            }
        });
}

/// The nonzero values of examples b0 .. b0 + nb of X (k × n, row-major),
/// as (input index, value) in increasing index, one list per example. A
/// full block's 16 values of a row are compared with zero at once and only
/// the nonzero ones are visited, so the 95% that are zero cost no branch
/// each.
///
/// # Safety
///
/// The CPU must run AVX2, b0 + nb ≤ n, nb ≤ BLOCK and x.len() ≥ k · n.
#[target_feature(enable = "avx2")]
unsafe fn nonzero_terms(
    x: &[f32],
    (k, n): (usize, usize),
    b0: usize,
    nb: usize,
) -> Vec<Vec<(usize, f32)>> {
    let mut terms: Vec<Vec<(usize, f32)>> = vec![Vec::new(); nb];
    for (p, row) in x.chunks(n).take(k).enumerate() {
        let values = &row[b0..b0 + nb];
        if nb < BLOCK {
            for (j, &v) in values.iter().enumerate() {
                if v != 0.0 {
                    terms[j].push((p, v));
                }
            }
            continue;
        }
        // `v != 0.0` is true for NaN and false for -0.0: so is NEQ_UQ.
        let zero = _mm256_setzero_ps();
        let low = _mm256_cmp_ps::<_CMP_NEQ_UQ>(_mm256_loadu_ps(values.as_ptr()), zero);
        let high = _mm256_cmp_ps::<_CMP_NEQ_UQ>(_mm256_loadu_ps(values[8..].as_ptr()), zero);
        let mut nonzero = _mm256_movemask_ps(low) as u32 | (_mm256_movemask_ps(high) as u32) << 8;
        while nonzero != 0 {
            let j = nonzero.trailing_zeros() as usize;
            terms[j].push((p, values[j]));
            nonzero &= nonzero - 1;
        }
    }
    terms
}

/// Z's pointer, shared by the tasks that write its disjoint columns.
struct ColumnsOf(*mut f32);
// SAFETY: the tasks write disjoint columns of Z and read nothing of it.
unsafe impl Sync for ColumnsOf {}

/// One example's outputs: `column` = Σ over the KC-deep panels of the sum
/// of that panel's `terms` (input index, value, in increasing index), each
/// sum one chain from zero; zeros where there are no terms. Whatever
/// `column` held is overwritten.
///
/// # Safety
///
/// The CPU must run AVX2 and FMA, and `wt` must hold `out` values for each
/// index in `terms`.
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_panels(wt: &[f32], out: usize, terms: &[(usize, f32)], column: &mut [f32]) {
    if terms.is_empty() {
        column.fill(0.0);
    }
    let mut first = true;
    for panel in terms.chunk_by(|a, b| a.0 / KC == b.0 / KC) {
        let mut c0 = 0;
        while c0 + 8 * WIDE <= out {
            sum_lanes::<WIDE>(wt, out, c0, panel, &mut column[c0..], first);
            c0 += 8 * WIDE;
        }
        while c0 + 8 <= out {
            sum_lanes::<1>(wt, out, c0, panel, &mut column[c0..], first);
            c0 += 8;
        }
        for (i, c) in column.iter_mut().enumerate().skip(c0) {
            let s = panel
                .iter()
                .fold(0.0f32, |s, &(p, v)| wt[p * out + i].mul_add(v, s));
            *c = if first { s } else { *c + s };
        }
        first = false;
    }
}

/// `sum_panels` for outputs c0 .. c0 + 8·NV, held in NV registers.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_lanes<const NV: usize>(
    wt: &[f32],
    out: usize,
    c0: usize,
    panel: &[(usize, f32)],
    column: &mut [f32],
    first: bool,
) {
    let mut acc = [_mm256_setzero_ps(); NV];
    for &(p, v) in panel {
        let (row, x) = (&wt[p * out + c0..p * out + c0 + 8 * NV], _mm256_set1_ps(v));
        for (q, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(_mm256_loadu_ps(row[8 * q..].as_ptr()), x, *a);
        }
    }
    for (q, a) in acc.iter().enumerate() {
        let at = column[8 * q..8 * q + 8].as_mut_ptr();
        let sum = if first {
            *a
        } else {
            _mm256_add_ps(_mm256_loadu_ps(at), *a)
        };
        _mm256_storeu_ps(at, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::cpu::sgemm::{sgemm, Operand};
    use rand::{Rng, SeedableRng};

    /// On shapes off every tile and block size, over one and several
    /// panels, with inputs that are zero except for a few per example (some
    /// examples with none, some panels empty), `product` gives `sgemm`'s bits.
    /// Every 16th example from the 4th has no input at all, so that a
    /// thread's outputs kept from an earlier block would show.
    #[test]
    fn skipping_zero_inputs_gives_the_kernels_bits() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            println!("SKIP skipping_zero_inputs_gives_the_kernels_bits: no AVX2 and FMA here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (out, k, n, density) in [
            (37, 70, 45, 0.1),
            (2048 + 13, 700, 33, 0.05),
            (9, 1030, 17, 0.02),
            (40, 30, 16 * 40 + 5, 0.1),
        ] {
            let w: Vec<f32> = (0..out * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let x: Vec<f32> = (0..k * n)
                .map(|i| {
                    let silent = i % n % BLOCK == 3;
                    if !silent && rng.gen::<f64>() < density {
                        rng.gen_range(0.0..2.0)
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut want = vec![0.0f32; out * n];
            let (a, b) = (Operand::row_major(&w, k), Operand::row_major(&x, n));
            sgemm((out, n, k), a, b, &mut want, n, false);
            let mut got = vec![f32::NAN; out * n];
            product(&w, (out, k, n), &x, &mut got);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert!(bits(&got) == bits(&want), "{out}x{k}x{n}");
            assert!(skips_zeros(&x), "{out}x{k}x{n} at {density}");
        }
        assert!(!skips_zeros(&[1.0; 64]));
    }

    /// The vector comparison picks the values `v != 0.0` picks: NaNs and
    /// subnormals are terms, zeros of either sign are not, in full blocks
    /// and in a partial one.
    #[test]
    fn the_terms_are_the_values_not_equal_to_zero() {
        if !is_x86_feature_detected!("avx2") {
            println!("SKIP the_terms_are_the_values_not_equal_to_zero: no AVX2 here");
            return;
        }
        let special = [
            0.0,
            -0.0,
            f32::NAN,
            f32::MIN_POSITIVE / 4.0,
            -1.5,
            f32::INFINITY,
        ];
        let (k, n) = (5, 2 * BLOCK + 3);
        let x: Vec<f32> = (0..k * n)
            .map(|i| special[(i * 7 + i / 3) % special.len()])
            .collect();
        for b0 in (0..n).step_by(BLOCK) {
            let nb = BLOCK.min(n - b0);
            // SAFETY: AVX2 was checked; b0 + nb ≤ n, nb ≤ BLOCK, x is k × n.
            let got = unsafe { nonzero_terms(&x, (k, n), b0, nb) };
            for (j, terms) in got.iter().enumerate() {
                let want: Vec<(usize, u32)> = (0..k)
                    .map(|p| (p, x[p * n + b0 + j]))
                    .filter(|&(_, v)| v != 0.0)
                    .map(|(p, v)| (p, v.to_bits()))
                    .collect();
                let got: Vec<(usize, u32)> = terms.iter().map(|&(p, v)| (p, v.to_bits())).collect();
                assert_eq!(got, want, "example {}", b0 + j);
            }
        }
    }

    /// The decision read from the transpose is the decision: on shapes whose
    /// sample is every element and shapes whose sample is strided, at
    /// densities either side of the threshold.
    #[test]
    fn the_transposed_input_gets_the_same_decision() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (k, n) in [(7, 5), (784, 1000), (300, 37), (4099, 3)] {
            for density in [0.05, 0.11, 0.14, 0.5] {
                let x: Vec<f32> = (0..k * n)
                    .map(|_| f32::from(rng.gen::<f64>() < density))
                    .collect();
                let mut xt = vec![0.0f32; k * n];
                for (i, v) in x.iter().enumerate() {
                    xt[(i % n) * k + i / n] = *v;
                }
                assert_eq!(
                    skips_zeros_transposed(&xt, k, n),
                    skips_zeros(&x),
                    "{k}x{n} at {density}"
                );
            }
        }
        // Nonzero exactly where the sample looks, zero elsewhere: any other
        // reading of the transpose sees mostly zeros and decides otherwise.
        let (k, n) = (784, 1000);
        let step = (k * n / SAMPLE).max(1);
        let mut xt = vec![0.0f32; k * n];
        for i in (0..k * n).step_by(step) {
            xt[(i % n) * k + i / n] = 1.0;
        }
        assert!(!skips_zeros_transposed(&xt, k, n));
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            assert!(skips_zeros(&xt), "the same values, read as stored");
        }
    }
}
