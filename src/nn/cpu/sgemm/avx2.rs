//! The AVX2 + FMA half of `sgemm`, for CPUs without AVX-512: 6 × 16
//! register tiles (12 ymm accumulators, BLIS's shape for Haswell and Zen;
//! where a row block ends in a part tile, it computes only 2 or 4 rows),
//! the panels packed for them, and 8 × 8 in-register transposes for the
//! operands whose columns are contiguous. Each output element is summed in
//! the order `avx512` sums it (one FMA chain per KC-deep panel, then added
//! to C), so both halves give the same bits.

// Register tiles and packed panels are indexed by row and lane.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::{pack_b_edges, BSource, Isa, Layout};

const MR: usize = 6;
const NR: usize = 16;

/// The AVX2 + FMA kernel.
pub(super) struct Avx2;

impl Isa for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;

    fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    unsafe fn pack_b(kc: usize, nc: usize, b: BSource, pc: usize, jc: usize, dst: *mut f32) {
        pack_b(kc, nc, b, pc, jc, dst)
    }

    unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, lda: usize, al: Layout, dst: *mut f32) {
        pack_a(mc, kc, a, lda, al, dst)
    }

    unsafe fn macro_kernel(
        (mc, nc, kc): (usize, usize, usize),
        apk: *const f32,
        bpk: *const f32,
        c: *mut f32,
        ldc: usize,
        load_c: bool,
    ) {
        macro_kernel((mc, nc, kc), apk, bpk, c, ldc, load_c)
    }
}

/// Lanes below `n` set (all of them from 8 on), as AVX2's masked loads and
/// stores take them.
#[inline]
#[target_feature(enable = "avx2")]
fn lanes_below(n: usize) -> __m256i {
    let n = n.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// In-register 8x8 transpose: on return r[j][i] = old r[i][j].
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(r: &mut [__m256; 8]) {
    let t = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    // s[q] (q < 4) holds, in each 128-bit half, rows 0-3 of columns q and q + 4;
    // s[4 + q] the same for rows 4-7.
    let mut s = [_mm256_setzero_ps(); 8];
    for h in 0..2 {
        let (lo, hi) = (t[4 * h], t[4 * h + 2]);
        let (lo2, hi2) = (t[4 * h + 1], t[4 * h + 3]);
        s[4 * h] = _mm256_shuffle_ps::<0x44>(lo, hi);
        s[4 * h + 1] = _mm256_shuffle_ps::<0xEE>(lo, hi);
        s[4 * h + 2] = _mm256_shuffle_ps::<0x44>(lo2, hi2);
        s[4 * h + 3] = _mm256_shuffle_ps::<0xEE>(lo2, hi2);
    }
    for q in 0..4 {
        r[q] = _mm256_permute2f128_ps::<0x20>(s[q], s[4 + q]);
        r[4 + q] = _mm256_permute2f128_ps::<0x31>(s[q], s[4 + q]);
    }
}

/// Pack B[pc..pc+kc, jc..jc+nc] into micro-panels of NR columns: panel q holds
/// dst[q*kc*NR + p*NR + jj] = B[pc+p, jc+q*NR+jj], zero-padded past nc.
///
/// # Safety
///
/// The CPU must support AVX2. For every p < kc and j < nc, B's element
/// (pc + p, jc + j) must be readable at `b.at(pc + p, jc + j)`; for a
/// `Gathered` source, `pc` and `jc` must be multiples of 16. `dst` must be
/// 32-byte aligned and writable for `nc.div_ceil(NR) * kc * NR` floats, none
/// of them inside B.
#[target_feature(enable = "avx2")]
unsafe fn pack_b(kc: usize, nc: usize, b: BSource, pc: usize, jc: usize, dst: *mut f32) {
    for q in 0..nc.div_ceil(NR) {
        let j0 = jc + q * NR;
        let nr = NR.min(nc - q * NR);
        let d = dst.add(q * kc * NR);
        if b.rows_contiguous() {
            // Row p's NR columns: two runs of 8 (masked past nr).
            let (m0, m1) = (lanes_below(nr), lanes_below(nr.saturating_sub(8)));
            for p in 0..kc {
                let s = b.at(pc + p, j0);
                let (v0, v1) = if nr == NR {
                    (_mm256_loadu_ps(s), _mm256_loadu_ps(s.add(8)))
                } else {
                    (_mm256_maskload_ps(s, m0), _mm256_maskload_ps(s.add(8), m1))
                };
                _mm256_store_ps(d.add(p * NR), v0);
                _mm256_store_ps(d.add(p * NR + 8), v1);
            }
            continue;
        }
        // Columns are contiguous over p (in runs of 16 from a multiple of
        // 16 for a transposed `Gathered` source, so runs of 8 from p).
        // 8x8 blocks turned in registers, the edges one at a time.
        let (cols, rows) = (nr / 8 * 8, kc / 8 * 8);
        for jj in (0..cols).step_by(8) {
            for p in (0..rows).step_by(8) {
                let mut r = [_mm256_setzero_ps(); 8];
                for x in 0..8 {
                    r[x] = _mm256_loadu_ps(b.at(pc + p, j0 + jj + x));
                }
                transpose8(&mut r);
                for x in 0..8 {
                    _mm256_store_ps(d.add((p + x) * NR + jj), r[x]);
                }
            }
        }
        pack_b_edges(b, (pc, j0), (rows, kc), (cols, nr, NR), d);
    }
}

/// Packs A[0..mc, 0..kc] into micro-panels of MR rows,
/// dst[r*kc*MR + p*MR + ii] = A[r*MR+ii, p], zero-padded past mc.
///
/// # Safety
///
/// The CPU must support AVX2. For every i < mc and p < kc, A's element
/// (i, p) must be readable at `a.add(i * lda + p)` (row-major `al`) or
/// `a.add(p * lda + i)` (column-major). `dst` must be writable for
/// `mc.div_ceil(MR) * kc * MR` floats, none of them inside A.
#[target_feature(enable = "avx2")]
unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, lda: usize, al: Layout, dst: *mut f32) {
    // No masked stores here: on AMD's Zen cores VMASKMOVPS to memory is
    // microcoded and took 9% of a training step in `perf`.
    for r in 0..mc.div_ceil(MR) {
        let i0 = r * MR;
        let mr = MR.min(mc - i0);
        let d = dst.add(r * kc * MR);
        if al == Layout::ColMajor {
            // Each column of the panel is mr contiguous values.
            for p in 0..kc {
                let (s, dp) = (a.add(p * lda + i0), d.add(p * MR));
                std::ptr::copy_nonoverlapping(s, dp, mr);
                for ii in mr..MR {
                    *dp.add(ii) = 0.0;
                }
            }
            continue;
        }
        // Row-major: 8 p at a time, mr rows (and zero rows) turned by an
        // 8x8 transpose, MR = 4 + 2 lanes of each stored.
        let mut p = 0;
        while p + 8 <= kc {
            let mut v = [_mm256_setzero_ps(); 8];
            for ii in 0..MR {
                if ii < mr {
                    v[ii] = _mm256_loadu_ps(a.add((i0 + ii) * lda + p));
                }
            }
            transpose8(&mut v);
            for x in 0..8 {
                let dp = d.add((p + x) * MR);
                _mm_storeu_ps(dp, _mm256_castps256_ps128(v[x]));
                let high = _mm_castps_pd(_mm256_extractf128_ps::<1>(v[x]));
                _mm_store_sd(dp.add(4).cast(), high);
            }
            p += 8;
        }
        for p in p..kc {
            for ii in 0..MR {
                *d.add(p * MR + ii) = if ii < mr {
                    *a.add((i0 + ii) * lda + p)
                } else {
                    0.0
                };
            }
        }
    }
}

/// The mc × nc block of C at `c` (row stride `ldc`) = packed A block `apk`
/// (mc × kc) · packed B panel `bpk` (kc × nc), added to C's values with
/// `load_c`: one microkernel call per MR × NR tile, each B micro-panel
/// kept in L1 while the A block's micro-panels stream past it.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA. `apk` must be readable for
/// `mc.div_ceil(MR) * kc * MR` floats laid out by `pack_a`; `bpk` must be
/// 32-byte aligned and readable for `nc.div_ceil(NR) * kc * NR` floats laid
/// out by `pack_b`. `c.add(i * ldc + j)` must be readable and writable for
/// every i < mc and j < nc, outside both packed buffers, and no other thread
/// may access those elements during the call.
#[target_feature(enable = "avx2,fma")]
unsafe fn macro_kernel(
    (mc, nc, kc): (usize, usize, usize),
    apk: *const f32,
    bpk: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    for jr in (0..nc).step_by(NR) {
        let nr = NR.min(nc - jr);
        let bp = bpk.add((jr / NR) * kc * NR);
        for ir in (0..mc).step_by(MR) {
            let mr = MR.min(mc - ir);
            let ap = apk.add((ir / MR) * kc * MR);
            let cp = c.add(ir * ldc + jr);
            // A last tile of few rows computes only those (rounded up to
            // 2), not all MR, as in `avx512`.
            let tile = (kc, ap, bp, cp, ldc, mr, nr, load_c);
            match (nr > 8, mr) {
                (true, 5..) => kernel::<2, MR>(tile),
                (true, 3..=4) => kernel::<2, 4>(tile),
                (true, _) => kernel::<2, 2>(tile),
                (false, 5..) => kernel::<1, MR>(tile),
                (false, 3..=4) => kernel::<1, 4>(tile),
                (false, _) => kernel::<1, 2>(tile),
            }
        }
    }
}

/// ROWS x (NV*8) microkernel: the first ROWS rows (at most MR) of the
/// product of the packed A micro-panel `ap` (kc x MR) and the packed B
/// micro-panel `bp` (kc x NR, 32-byte aligned), the call's arguments as
/// `Tile` orders them. Stores rows < mr and columns < nr. Each
/// element is the same FMA chain whatever ROWS is.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA. `ap` must be readable for `kc * MR`
/// floats; `bp` must be 32-byte aligned and readable for `kc * NR` floats.
/// `mr` must be at most ROWS and `nr` at most 8 * NV, and `c.add(i * ldc + j)`
/// must be writable, and readable if `load_c`, for every i < mr and j < nr,
/// outside `ap` and `bp`, with no other thread accessing those elements
/// during the call.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const NV: usize, const ROWS: usize>(
    (kc, ap, bp, c, ldc, mr, nr, load_c): super::Tile,
) {
    debug_assert!(ROWS <= MR && mr <= ROWS);
    // The tile's rows of C (read, or only written, after the k loop) are
    // usually in L3 by now; asking for them first hides that latency
    // behind the loop: 1-10% faster on 2 threads on the MLP and conv
    // shapes, timed against the kernel without it in one process.
    for i in 0..mr {
        let row = c.add(i * ldc);
        _mm_prefetch::<_MM_HINT_T0>(row.cast());
        _mm_prefetch::<_MM_HINT_T0>(row.add(nr - 1).cast());
    }
    let mut acc = [[_mm256_setzero_ps(); NV]; ROWS];
    let (mut a, mut b) = (ap, bp);
    for _ in 0..kc {
        let mut bv = [_mm256_setzero_ps(); NV];
        for v in 0..NV {
            bv[v] = _mm256_load_ps(b.add(8 * v));
        }
        for i in 0..ROWS {
            let av = _mm256_broadcast_ss(&*a.add(i));
            for v in 0..NV {
                acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
            }
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    let full = nr == 8 * NV;
    let mut masks = [_mm256_setzero_si256(); NV];
    for v in 0..NV {
        masks[v] = lanes_below(nr.saturating_sub(8 * v));
    }
    // Every row index is a constant (the loop unrolls), so the
    // accumulators stay in registers.
    for i in 0..ROWS {
        if i >= mr {
            break;
        }
        let cr = c.add(i * ldc);
        for v in 0..NV {
            let at = cr.add(8 * v);
            if full {
                let r = if load_c {
                    _mm256_add_ps(_mm256_loadu_ps(at), acc[i][v])
                } else {
                    acc[i][v]
                };
                _mm256_storeu_ps(at, r);
            } else {
                let r = if load_c {
                    _mm256_add_ps(_mm256_maskload_ps(at, masks[v]), acc[i][v])
                } else {
                    acc[i][v]
                };
                // Through the stack rather than a (slow on Zen) masked store.
                let mut lanes = [0.0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), r);
                let n = nr.saturating_sub(8 * v).min(8);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), at, n);
            }
        }
    }
}
