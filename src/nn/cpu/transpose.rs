//! The batch transpose: a training or evaluation batch's examples (rows of
//! `features` values, in shuffled order, mostly not in any cache) gathered
//! into the feature-major (features, batch) layout the layers read. Eight
//! examples are read at a time, each along its row, so that the hardware
//! prefetcher follows eight streams; their 8 × 8 blocks are transposed in
//! AVX registers where the CPU has AVX, and the rest is copied value by
//! value. A copy either way: the bits are the inputs'.

use rayon::prelude::*;

use super::par::PAR_MIN;

/// Features per parallel task, each task writing its own rows of the batch:
/// long enough runs of each example's row for the prefetcher.
const BAND: usize = 256;

/// Examples (and features) per transposed block.
const BLOCK: usize = 8;

/// Writes the examples `chunk` of `images` (row-major, `features` values
/// each) into `x`, (features, chunk.len()) row-major: x[f · b + j] =
/// images[chunk[j] · features + f]. In parallel bands of features when the
/// batch is large.
pub(crate) fn gather_transposed(images: &[f32], features: usize, chunk: &[usize], x: &mut [f32]) {
    let b = chunk.len();
    debug_assert_eq!(x.len(), features * b);
    if b == 0 {
        return;
    }
    let simd = has_avx();
    let band = |(band, rows): (usize, &mut [f32])| {
        let (start, width) = (band * BAND, rows.len() / b);
        let full = if simd { width - width % BLOCK } else { 0 };
        for (block, examples) in chunk.chunks(BLOCK).enumerate() {
            let first = block * BLOCK;
            let part = |j: usize| &images[examples[j] * features + start..][..width];
            if examples.len() < BLOCK {
                for j in 0..examples.len() {
                    for (k, &v) in part(j).iter().enumerate() {
                        rows[k * b + first + j] = v;
                    }
                }
                continue;
            }
            let src: [&[f32]; BLOCK] = std::array::from_fn(part);
            for done in (0..full).step_by(BLOCK) {
                let from = src.map(|s| &s[done..done + BLOCK]);
                transpose_block(from, &mut rows[done * b + first..], b);
            }
            for (j, s) in src.iter().enumerate() {
                for (k, &v) in s.iter().enumerate().skip(full) {
                    rows[k * b + first + j] = v;
                }
            }
        }
    };
    if x.len() < PAR_MIN {
        x.chunks_mut(BAND * b).enumerate().for_each(band);
    } else {
        x.par_chunks_mut(BAND * b).enumerate().for_each(band);
    }
}

/// The transpose of `m`, a `rows` × `cols` row-major matrix: `cols` ×
/// `rows`, row-major, by `gather_transposed` with every row in order.
pub(crate) fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let all_rows: Vec<usize> = (0..rows).collect();
    let mut t = vec![0.0f32; rows * cols];
    gather_transposed(&m[..rows * cols], cols, &all_rows, &mut t);
    t
}

/// Whether the 8 × 8 blocks can be transposed in AVX registers.
fn has_avx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// dst[k · stride + j] = src[j][k] for j, k < 8: eight examples' eight
/// features written as eight feature rows. Called only when `has_avx()`.
fn transpose_block(src: [&[f32]; BLOCK], dst: &mut [f32], stride: usize) {
    assert!(src.iter().all(|s| s.len() >= BLOCK));
    assert!(dst.len() >= (BLOCK - 1) * stride + BLOCK);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX was detected by the caller (`has_avx`); the asserts above
    // keep every load and store inside `src` and `dst`.
    unsafe {
        avx::transpose_block(src, dst, stride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("transpose_block without AVX")
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// `super::transpose_block` in AVX registers: per 128-bit lane,
    /// unpacks pair the examples, shuffles make groups of four, and the
    /// lane permutes join the two halves of each feature.
    ///
    /// # Safety
    /// The CPU has AVX; every `src` slice holds 8 values and `dst` at least
    /// `7 · stride + 8`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn transpose_block(src: [&[f32]; BLOCK], dst: &mut [f32], stride: usize) {
        let r = src.map(|s| _mm256_loadu_ps(s.as_ptr()));
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let rows = [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ];
        let out = dst.as_mut_ptr();
        for (k, row) in rows.into_iter().enumerate() {
            _mm256_storeu_ps(out.add(k * stride), row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value lands where the plain definition puts it, for batches with
    /// full and ragged blocks of examples and bands with full and partial
    /// blocks of features, large enough to run in parallel too.
    #[test]
    fn examples_become_feature_rows_for_odd_shapes() {
        for (features, n, b) in [
            (20, 50, 37),
            (40, 70, 8),
            (13, 30, 5),
            (784, 200, 60),
            (1568, 300, 128),
        ] {
            let images: Vec<f32> = (0..features * n).map(|v| v as f32 * 0.5 - 3.0).collect();
            let chunk: Vec<usize> = (0..b).map(|j| (j * 7 + 3) % n).collect();
            let mut x = vec![f32::NAN; features * b];
            gather_transposed(&images, features, &chunk, &mut x);
            for (j, &i) in chunk.iter().enumerate() {
                for f in 0..features {
                    assert_eq!(
                        x[f * b + j].to_bits(),
                        images[i * features + f].to_bits(),
                        "{features} features, batch {b}: feature {f} of example {j}"
                    );
                }
            }
        }
    }

    /// One block on its own: the AVX shuffles give the transpose.
    #[test]
    fn one_block_is_transposed() {
        if !has_avx() {
            println!("SKIP: this CPU has no AVX; the plain copy is tested above");
            return;
        }
        let rows: Vec<Vec<f32>> = (0..8)
            .map(|j| (0..8).map(|k| (10 * j + k) as f32).collect())
            .collect();
        let src: [&[f32]; 8] = std::array::from_fn(|j| rows[j].as_slice());
        let stride = 11;
        let mut dst = vec![-1.0; 7 * stride + 8];
        transpose_block(src, &mut dst, stride);
        for k in 0..8 {
            for j in 0..8 {
                assert_eq!(dst[k * stride + j], (10 * j + k) as f32);
            }
            if k < 7 {
                assert!(dst[k * stride + 8..(k + 1) * stride]
                    .iter()
                    .all(|&v| v == -1.0));
            }
        }
    }
}
