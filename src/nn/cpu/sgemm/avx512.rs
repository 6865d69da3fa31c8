//! The AVX-512 half of `sgemm`: 12 × 32 register tiles (24 zmm
//! accumulators; where a row block ends in a part tile, it computes only 4
//! or 8 rows, not 12), the panels packed for them, and 16 × 16 in-register
//! transposes for the operands whose columns are contiguous. Each output
//! element is one FMA chain per KC-deep panel, then added to C: the order
//! `avx2` sums in too, so both halves give the same bits.

// Register tiles and packed panels are indexed by row and lane.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::{pack_b_edges, BSource, Isa, Layout};

const MR: usize = 12;
const NR: usize = 32;

/// The AVX-512 kernel.
pub(super) struct Avx512;

impl Isa for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;

    fn available() -> bool {
        is_x86_feature_detected!("avx512f")
    }

    unsafe fn pack_b(kc: usize, nc: usize, b: BSource, pc: usize, jc: usize, dst: *mut f32) {
        pack_b(kc, nc, b, pc, jc, dst)
    }

    unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, lda: usize, al: Layout, dst: *mut f32) {
        pack_a(mc, kc, a, lda, al, dst)
    }

    unsafe fn macro_kernel(
        dims: (usize, usize, usize),
        apk: *const f32,
        bpk: *const f32,
        c: *mut f32,
        ldc: usize,
        load_c: bool,
    ) {
        macro_kernel(dims, apk, bpk, c, ldc, load_c)
    }
}

/// In-register 16x16 transpose: on return r[j][i] = old r[i][j].
///
/// # Safety
///
/// The CPU must support AVX-512F.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(r: &mut [__m512; 16]) {
    let mut t = [_mm512_setzero_ps(); 16];
    for q in 0..8 {
        t[2 * q] = _mm512_unpacklo_ps(r[2 * q], r[2 * q + 1]);
        t[2 * q + 1] = _mm512_unpackhi_ps(r[2 * q], r[2 * q + 1]);
    }
    // u[4g + c]: lane L holds column 4L+c, rows 4g..4g+3
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (t0, t1, t2, t3) = (
            _mm512_castps_pd(t[4 * g]),
            _mm512_castps_pd(t[4 * g + 1]),
            _mm512_castps_pd(t[4 * g + 2]),
            _mm512_castps_pd(t[4 * g + 3]),
        );
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for c in 0..4 {
        let x = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
        let y = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
        let x2 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
        let y2 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
        r[c] = _mm512_shuffle_f32x4::<0x88>(x, x2);
        r[4 + c] = _mm512_shuffle_f32x4::<0xDD>(x, x2);
        r[8 + c] = _mm512_shuffle_f32x4::<0x88>(y, y2);
        r[12 + c] = _mm512_shuffle_f32x4::<0xDD>(y, y2);
    }
}

/// Pack B[pc..pc+kc, jc..jc+nc] into micro-panels of NR columns: panel q holds
/// dst[q*kc*NR + p*NR + jj] = B[pc+p, jc+q*NR+jj], zero-padded past nc.
///
/// # Safety
///
/// The CPU must support AVX-512F. For every p < kc and j < nc, B's element
/// (pc + p, jc + j) must be readable at `b.at(pc + p, jc + j)`; for a
/// `Gathered` source, `pc` and `jc` must be multiples of 16. `dst` must be
/// 64-byte aligned and writable for `nc.div_ceil(NR) * kc * NR` floats, none
/// of them inside B.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(kc: usize, nc: usize, b: BSource, pc: usize, jc: usize, dst: *mut f32) {
    let npanels = nc.div_ceil(NR);
    for q in 0..npanels {
        let j0 = jc + q * NR;
        let nr = NR.min(nc - q * NR);
        let d = dst.add(q * kc * NR);
        if b.rows_contiguous() {
            // Row p's NR columns: two runs of 16 (masked past nr).
            let m0: __mmask16 = if nr >= 16 {
                0xffff
            } else {
                ((1u32 << nr) - 1) as u16
            };
            let m1: __mmask16 = if nr >= 32 {
                0xffff
            } else if nr > 16 {
                ((1u32 << (nr - 16)) - 1) as u16
            } else {
                0
            };
            for p in 0..kc {
                let v0 = _mm512_maskz_loadu_ps(m0, b.at(pc + p, j0));
                let v1 = if nr > 16 {
                    _mm512_maskz_loadu_ps(m1, b.at(pc + p, j0 + 16))
                } else {
                    _mm512_setzero_ps()
                };
                _mm512_store_ps(d.add(p * NR), v0);
                _mm512_store_ps(d.add(p * NR + 16), v1);
            }
            continue;
        }
        // Columns are contiguous over p (in runs of 16 from a multiple of
        // 16 for a transposed `Gathered` source).
        // 16x16 blocks turned in registers, the edges one at a time.
        let (cols, rows) = (nr / 16 * 16, kc / 16 * 16);
        for jj in (0..cols).step_by(16) {
            for p in (0..rows).step_by(16) {
                let mut r = [_mm512_setzero_ps(); 16];
                for x in 0..16 {
                    r[x] = _mm512_loadu_ps(b.at(pc + p, j0 + jj + x));
                }
                transpose16(&mut r);
                for x in 0..16 {
                    _mm512_store_ps(d.add((p + x) * NR + jj), r[x]);
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
/// The CPU must support AVX-512F. For every i < mc and p < kc, A's element
/// (i, p) must be readable at `a.add(i * lda + p)` (row-major `al`) or
/// `a.add(p * lda + i)` (column-major). `dst` must be writable for
/// `mc.div_ceil(MR) * kc * MR` floats, none of them inside A.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, lda: usize, al: Layout, dst: *mut f32) {
    if al == Layout::ColMajor {
        return pack_a_col_major(mc, kc, a, lda, dst);
    }
    let npanels = mc.div_ceil(MR);
    for r in 0..npanels {
        let i0 = r * MR;
        let mr = MR.min(mc - i0);
        let d = dst.add(r * kc * MR);
        if mr == MR {
            // 16 p at a time: MR rows (+4 zero rows) -> 16x16 transpose -> 12-lane masked stores
            let mut p = 0;
            while p + 16 <= kc {
                let mut r = [_mm512_setzero_ps(); 16];
                for ii in 0..MR {
                    r[ii] = _mm512_loadu_ps(a.add((i0 + ii) * lda + p));
                }
                transpose16(&mut r);
                for x in 0..16 {
                    _mm512_mask_storeu_ps(d.add((p + x) * MR), ((1u32 << MR) - 1) as u16, r[x]);
                }
                p += 16;
            }
            while p < kc {
                for ii in 0..MR {
                    *d.add(p * MR + ii) = *a.add((i0 + ii) * lda + p);
                }
                p += 1;
            }
        } else {
            for p in 0..kc {
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
}

/// `pack_a` for a column-major A (element (i, p) at a[p*lda + i]): each
/// micro-panel column is MR contiguous values, one masked load each.
///
/// # Safety
///
/// The CPU must support AVX-512F. `a.add(p * lda + i)` must be readable for
/// every i < mc and p < kc, and `dst` writable for `mc.div_ceil(MR) * kc * MR`
/// floats, none of them inside A.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a_col_major(mc: usize, kc: usize, a: *const f32, lda: usize, dst: *mut f32) {
    for r in 0..mc.div_ceil(MR) {
        let i0 = r * MR;
        let mr = MR.min(mc - i0);
        let mask = ((1u32 << mr) - 1) as u16;
        let d = dst.add(r * kc * MR);
        for p in 0..kc {
            let v = _mm512_maskz_loadu_ps(mask, a.add(p * lda + i0));
            _mm512_mask_storeu_ps(d.add(p * MR), ((1u32 << MR) - 1) as u16, v);
        }
    }
}

/// The mc × nc block of C at `c` (row stride `ldc`) = packed A block `apk`
/// (mc × kc) · packed B panel `bpk` (kc × nc), added to C's values with
/// `load_c`: one microkernel call per MR × NR tile.
///
/// # Safety
///
/// The CPU must support AVX-512F. `apk` must be readable for
/// `mc.div_ceil(MR) * kc * MR` floats laid out by `pack_a`; `bpk` must be
/// 64-byte aligned and readable for `nc.div_ceil(NR) * kc * NR` floats laid
/// out by `pack_b`. `c.add(i * ldc + j)` must be readable and writable for
/// every i < mc and j < nc, outside both packed buffers, and no other thread
/// may access those elements during the call.
#[target_feature(enable = "avx512f")]
unsafe fn macro_kernel(
    (mc, nc, kc): (usize, usize, usize),
    apk: *const f32,
    bpk: *const f32,
    c: *mut f32,
    ldc: usize,
    load_c: bool,
) {
    let mut jr = 0;
    while jr < nc {
        let nr = NR.min(nc - jr);
        let bp = bpk.add((jr / NR) * kc * NR);
        let mut ir = 0;
        while ir < mc {
            let mr = MR.min(mc - ir);
            let ap = apk.add((ir / MR) * kc * MR);
            let cp = c.add(ir * ldc + jr);
            // A last tile of few rows computes only those (rounded up to 4),
            // not all MR: a 64-channel convolution is 5 1/3 tiles tall.
            let tile = (kc, ap, bp, cp, ldc, mr, nr, load_c);
            match (nr > 16, mr) {
                (true, 9..) => kernel::<2, MR>(tile),
                (true, 5..=8) => kernel::<2, 8>(tile),
                (true, _) => kernel::<2, 4>(tile),
                (false, 9..) => kernel::<1, MR>(tile),
                (false, 5..=8) => kernel::<1, 8>(tile),
                (false, _) => kernel::<1, 4>(tile),
            }
            ir += MR;
        }
        jr += NR;
    }
}

/// ROWS x (NV*16) microkernel: the first ROWS rows (at most MR) of the
/// product of the packed A micro-panel `ap` (kc x MR) and the packed B
/// micro-panel `bp` (kc x NR, 64-byte aligned), the call's arguments as
/// `Tile` orders them; stores rows < mr and columns < nr (masked).
/// Each element is the same FMA chain whatever ROWS is.
///
/// # Safety
///
/// The CPU must support AVX-512F. `ap` must be readable for `kc * MR` floats;
/// `bp` must be 64-byte aligned and readable for `kc * NR` floats. `mr` must
/// be at most ROWS and `nr` at most 16 * NV, and `c.add(i * ldc + j)` must be
/// writable, and readable if `load_c`, for every i < mr and j < nr, outside
/// `ap` and `bp`, with no other thread accessing those elements during the call.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const NV: usize, const ROWS: usize>(
    (kc, ap, bp, c, ldc, mr, nr, load_c): super::Tile,
) {
    debug_assert!(ROWS <= MR && mr <= ROWS);
    let mut acc = [[_mm512_setzero_ps(); NV]; ROWS];
    let mut a = ap;
    let mut b = bp;
    for _ in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for v in 0..NV {
            bv[v] = _mm512_load_ps(b.add(16 * v));
        }
        for i in 0..ROWS {
            let av = _mm512_set1_ps(*a.add(i));
            for v in 0..NV {
                acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
            }
        }
        a = a.add(MR);
        b = b.add(NR);
    }
    let mut masks = [0xffffu16; NV];
    for v in 0..NV {
        let lo = 16 * v;
        masks[v] = if nr >= lo + 16 {
            0xffff
        } else if nr > lo {
            ((1u32 << (nr - lo)) - 1) as u16
        } else {
            0
        };
    }
    for i in 0..ROWS {
        if i < mr {
            let cr = c.add(i * ldc);
            for v in 0..NV {
                let mut r = acc[i][v];
                if load_c {
                    r = _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], cr.add(16 * v)), r);
                }
                _mm512_mask_storeu_ps(cr.add(16 * v), masks[v], r);
            }
        }
    }
}
