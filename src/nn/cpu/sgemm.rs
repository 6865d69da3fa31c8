//! Single-precision matrix products on the CPU with AVX-512 (stable since
//! Rust 1.89), for the forward and backward passes of the products in
//! `product`: dense layers, convolutions' im2col products, dendritic segments.
//!
//! dfdx 0.13 pins `gemm` 0.15, whose AVX-512 kernels need its `nightly`
//! feature, so on stable it runs AVX2: about 90 GFLOP/s on 2 cores here,
//! where this kernel measured 1.3-2x that on our layer shapes. GotoBLAS
//! structure: NC-column blocks, KC-deep panels of B packed into NR-wide
//! micro-panels, MC-row blocks of A packed into MR-tall ones, and a 12x32
//! microkernel holding 24 zmm accumulators.
//!
//! Deterministic: the KC blocking never depends on the thread count and
//! every output element is computed by one thread, so the bits are the same
//! for any number of threads. They differ from `gemm`'s (another summation
//! order), so switching kernels changes trained networks' bits.

// Register tiles and packed panels are indexed by row and lane, as in the
// layouts described above; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use rayon::prelude::*;

const MR: usize = 12;
const NR: usize = 32;
const KC: usize = 256;
const MC: usize = 144;
const NC: usize = 2048;

/// How a matrix is stored: `RowMajor` has element (r, c) at `r * ld + c`,
/// `ColMajor` at `c * ld + r` (the transpose of a row-major matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Rows are contiguous.
    RowMajor,
    /// Columns are contiguous.
    ColMajor,
}

/// One operand: its values, leading dimension and layout.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    /// The values, at the offsets `layout` and `ld` give.
    pub(crate) data: &'a [f32],
    /// The leading dimension: the stride between rows (row-major) or columns.
    pub(crate) ld: usize,
    /// Whether rows or columns are contiguous.
    pub(crate) layout: Layout,
}

impl<'a> Operand<'a> {
    /// A row-major operand with leading dimension `ld`.
    pub(crate) fn row_major(data: &'a [f32], ld: usize) -> Self {
        Operand {
            data,
            ld,
            layout: Layout::RowMajor,
        }
    }

    /// A column-major operand (the transpose of a row-major one).
    pub(crate) fn col_major(data: &'a [f32], ld: usize) -> Self {
        Operand {
            data,
            ld,
            layout: Layout::ColMajor,
        }
    }

    /// Offset of element (r, c).
    fn at(&self, r: usize, c: usize) -> usize {
        match self.layout {
            Layout::RowMajor => r * self.ld + c,
            Layout::ColMajor => c * self.ld + r,
        }
    }
}

/// A matrix that is never stored: element (r, c) is
/// `data[rows[r] + groups[c / 16] + c % 16]`, runs of 16 columns read from
/// anywhere in `data`. It is a convolution's im2col columns read straight
/// from a padded band of its input (`im2col::PaddedBand`), so B's panels
/// are packed from the input without the columns being written first.
#[derive(Clone, Copy)]
pub(crate) struct Gathered<'a> {
    /// The values the offsets point into.
    pub(crate) data: &'a [f32],
    /// The offset of each row.
    pub(crate) rows: &'a [usize],
    /// The offset of each run of 16 columns.
    pub(crate) groups: &'a [usize],
}

impl Gathered<'_> {
    /// Whether every run of 16 that the offsets name lies inside `data`.
    fn fits(&self) -> bool {
        let (r, g) = (self.rows.iter().max(), self.groups.iter().max());
        r.zip(g).is_none_or(|(r, g)| r + g + 16 <= self.data.len())
    }
}

/// Where `pack_b` finds B's element (p, j): at strides, or through the
/// offsets of a `Gathered` matrix (B itself, or with `transposed` its
/// transpose, whose runs of 16 are then along p).
#[derive(Clone, Copy)]
enum BSource {
    Strided {
        data: *const f32,
        row: usize,
        col: usize,
    },
    Gathered {
        data: *const f32,
        rows: *const usize,
        groups: *const usize,
        transposed: bool,
    },
}

impl BSource {
    /// Whether B's rows are contiguous (in runs of 16 for `Gathered`).
    fn rows_contiguous(self) -> bool {
        match self {
            BSource::Strided { col, .. } => col == 1,
            BSource::Gathered { transposed, .. } => !transposed,
        }
    }

    /// Element (p, j).
    ///
    /// # Safety
    ///
    /// (p, j) must be inside the matrix this source was built for.
    #[inline(always)]
    unsafe fn at(self, p: usize, j: usize) -> *const f32 {
        match self {
            BSource::Strided { data, row, col } => data.add(p * row + j * col),
            BSource::Gathered {
                data,
                rows,
                groups,
                transposed: false,
            } => data.add(*rows.add(p) + *groups.add(j / 16) + j % 16),
            BSource::Gathered {
                data,
                rows,
                groups,
                transposed: true,
            } => data.add(*rows.add(j) + *groups.add(p / 16) + p % 16),
        }
    }

    /// The columns from `j0` on (a multiple of 16 for `Gathered`).
    ///
    /// # Safety
    ///
    /// `j0` must be a column of the matrix.
    unsafe fn columns_from(self, j0: usize) -> BSource {
        match self {
            BSource::Strided { data, row, col } => BSource::Strided {
                data: data.add(j0 * col),
                row,
                col,
            },
            BSource::Gathered {
                data,
                rows,
                groups,
                transposed,
            } => {
                debug_assert_eq!(j0 % 16, 0);
                let (rows, groups) = if transposed {
                    (rows.add(j0), groups)
                } else {
                    (rows, groups.add(j0 / 16))
                };
                BSource::Gathered {
                    data,
                    rows,
                    groups,
                    transposed,
                }
            }
        }
    }
}

/// A pointer that may cross to rayon workers; each worker writes its own rows or columns.
#[derive(Clone, Copy)]
struct Shared<T>(T);
// SAFETY: the workers read shared inputs and write disjoint parts of C.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

/// A 64-byte aligned scratch buffer of f32.
struct Aligned(Vec<__m512>);

impl Aligned {
    fn new(floats: usize) -> Self {
        // SAFETY: an all-zero __m512 is a valid value.
        Aligned(vec![
            unsafe { std::mem::zeroed::<__m512>() };
            floats.div_ceil(16).max(1)
        ])
    }
    fn ptr(&mut self) -> *mut f32 {
        self.0.as_mut_ptr() as *mut f32
    }
}

thread_local! {
    /// Each thread's packed A block and B panel.
    static PACKED: std::cell::RefCell<(Aligned, Aligned)> =
        std::cell::RefCell::new((Aligned::new(MC * KC), Aligned::new(KC * NC)));
}

/// Whether this CPU runs the AVX-512 kernel (otherwise callers use dfdx's).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// C (m × n, row-major, row stride `ldc`) = A (m × k) · B (k × n), or
/// C += A · B with `accumulate`. Panics if an operand is too short or the
/// CPU lacks AVX-512 (check [`available`] first).
pub(crate) fn sgemm(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Operand,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    assert!(m == 0 || n == 0 || k == 0 || b.data.len() > b.at(k - 1, n - 1));
    let (row, col) = match b.layout {
        Layout::RowMajor => (b.ld, 1),
        Layout::ColMajor => (1, b.ld),
    };
    let b = BSource::Strided {
        data: b.data.as_ptr(),
        row,
        col,
    };
    product((m, n, k), a, b, c, ldc, accumulate);
}

/// `sgemm` with B a `Gathered` matrix (k × n), or with `transposed` the
/// transpose of one (n × k). The packed panels are the ones `sgemm` packs
/// from the same values stored, so the bits are the same. Panics if the
/// offsets are too few or point outside `b.data`, or the CPU lacks AVX-512.
pub(crate) fn sgemm_gathered(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: Gathered,
    transposed: bool,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let (rows, runs) = if transposed { (n, k) } else { (k, n) };
    assert!(b.rows.len() >= rows && b.groups.len() >= runs.div_ceil(16) && b.fits());
    let b = BSource::Gathered {
        data: b.data.as_ptr(),
        rows: b.rows.as_ptr(),
        groups: b.groups.as_ptr(),
        transposed,
    };
    product((m, n, k), a, b, c, ldc, accumulate);
}

/// The product of `sgemm` and `sgemm_gathered`, B's bounds checked by them.
fn product(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: BSource,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    assert!(available(), "sgemm needs AVX-512");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    assert!(a.data.len() > a.at(m - 1, k - 1));
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n);
    let (ap, bp, cp) = (Shared(a.data.as_ptr()), Shared(b), Shared(c.as_mut_ptr()));
    let al = a.layout;
    let lda = a.ld;
    let threads = if 2 * m * n * k < 4_000_000 {
        1
    } else {
        rayon::current_num_threads()
    };
    // SAFETY (all calls below): AVX-512 was checked; the asserts above and
    // the callers' keep every read inside A and B and every write inside C;
    // workers write disjoint row or column ranges of C.
    if threads == 1 {
        unsafe { serial((m, n, k), (ap.0, lda, al), bp.0, cp.0, ldc, accumulate) };
        return;
    }
    let (row_tiles, col_tiles) = (m.div_ceil(MR), n.div_ceil(NR));
    if row_tiles >= col_tiles {
        let per = row_tiles.div_ceil(threads.min(row_tiles)) * MR;
        (0..m.div_ceil(per)).into_par_iter().for_each(move |t| {
            let (ap, bp, cp) = (ap, bp, cp);
            let i0 = t * per;
            let rows = per.min(m - i0);
            let a_off = if al == Layout::RowMajor { i0 * lda } else { i0 };
            unsafe {
                serial(
                    (rows, n, k),
                    (ap.0.add(a_off), lda, al),
                    bp.0,
                    cp.0.add(i0 * ldc),
                    ldc,
                    accumulate,
                )
            };
        });
    } else {
        let per = col_tiles.div_ceil(threads.min(col_tiles)) * NR;
        (0..n.div_ceil(per)).into_par_iter().for_each(move |t| {
            let (ap, bp, cp) = (ap, bp, cp);
            let j0 = t * per;
            let cols = per.min(n - j0);
            unsafe {
                serial(
                    (m, cols, k),
                    (ap.0, lda, al),
                    bp.0.columns_from(j0),
                    cp.0.add(j0),
                    ldc,
                    accumulate,
                )
            };
        });
    }
}

/// One thread's product over all blocks: C = A · B, or C += A · B with
/// `accumulate`, for A (m × k), B (k × n) and C (m × n, row stride `ldc`).
///
/// # Safety
///
/// The CPU must support AVX-512F. For every i < m, j < n and p < k, A's
/// element (i, p) must be readable at `a.add(i * lda + p)` (row-major `al`)
/// or `a.add(p * lda + i)` (column-major), B's element (p, j) at
/// `b.at(p, j)`, and `c.add(i * ldc + j)` must be readable and writable.
/// Those elements of C must not overlap A or B, and no other thread may
/// access them, or write A or B, during the call.
#[target_feature(enable = "avx512f")]
unsafe fn serial(
    (m, n, k): (usize, usize, usize),
    (a, lda, al): (*const f32, usize, Layout),
    b: BSource,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    PACKED.with_borrow_mut(|(abuf, bbuf)| {
        let (apk, bpk) = (abuf.ptr(), bbuf.ptr());
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                pack_b(kc, nc, b, pc, jc, bpk);
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    let a_block = match al {
                        Layout::RowMajor => a.add(ic * lda + pc),
                        Layout::ColMajor => a.add(pc * lda + ic),
                    };
                    pack_a(mc, kc, a_block, lda, al, apk);
                    macro_kernel(
                        mc,
                        nc,
                        kc,
                        apk,
                        bpk,
                        c.add(ic * ldc + jc),
                        ldc,
                        accumulate || pc > 0,
                    );
                }
            }
        }
    });
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
        if nr < NR {
            for p in 0..kc {
                for jj in nr..NR {
                    *d.add(p * NR + jj) = 0.0;
                }
            }
        }
        // full 16-column groups: 16x16 in-register transposes
        let mut jj = 0;
        while jj + 16 <= nr {
            let mut p = 0;
            while p + 16 <= kc {
                let mut r = [_mm512_setzero_ps(); 16];
                for x in 0..16 {
                    r[x] = _mm512_loadu_ps(b.at(pc + p, j0 + jj + x));
                }
                transpose16(&mut r);
                for x in 0..16 {
                    _mm512_store_ps(d.add((p + x) * NR + jj), r[x]);
                }
                p += 16;
            }
            for x in 0..16 {
                for pp in p..kc {
                    *d.add(pp * NR + jj + x) = *b.at(pc + pp, j0 + jj + x);
                }
            }
            jj += 16;
        }
        for jj in jj..nr {
            for p in 0..kc {
                *d.add(p * NR + jj) = *b.at(pc + p, j0 + jj);
            }
        }
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
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn macro_kernel(
    mc: usize,
    nc: usize,
    kc: usize,
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
            if nr > 16 {
                kernel::<2>(kc, ap, bp, cp, ldc, mr, nr, load_c);
            } else {
                kernel::<1>(kc, ap, bp, cp, ldc, mr, nr, load_c);
            }
            ir += MR;
        }
        jr += NR;
    }
}

/// MR x (NV*16) microkernel. ap: packed A micro-panel (kc x MR), bp: packed B micro-panel
/// (kc x NR, 64-byte aligned). Stores rows < mr and columns < nr (masked).
///
/// # Safety
///
/// The CPU must support AVX-512F. `ap` must be readable for `kc * MR` floats;
/// `bp` must be 64-byte aligned and readable for `kc * NR` floats. `mr` must
/// be at most MR and `nr` at most 16 * NV, and `c.add(i * ldc + j)` must be
/// writable, and readable if `load_c`, for every i < mr and j < nr, outside
/// `ap` and `bp`, with no other thread accessing those elements during the call.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const NV: usize>(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    load_c: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut a = ap;
    let mut b = bp;
    for _ in 0..kc {
        let mut bv = [_mm512_setzero_ps(); NV];
        for v in 0..NV {
            bv[v] = _mm512_load_ps(b.add(16 * v));
        }
        for i in 0..MR {
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
    for i in 0..MR {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A `rows × cols` operand of random values in `layout`, padded by 3.
    fn operand(
        rows: usize,
        cols: usize,
        layout: Layout,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> (Vec<f32>, usize) {
        let ld = 3 + if layout == Layout::RowMajor {
            cols
        } else {
            rows
        };
        let len = ld
            * if layout == Layout::RowMajor {
                rows
            } else {
                cols
            };
        ((0..len).map(|_| rng.gen_range(-1.0..1.0)).collect(), ld)
    }

    /// Whether this CPU runs the kernel; prints why a test is skipped if not.
    fn kernel_runs_here() -> bool {
        if !available() {
            println!("SKIP: this CPU has no AVX-512, so the kernel is not used here");
        }
        available()
    }

    /// `work` on a pool of `threads` threads.
    fn on_threads(threads: usize, work: impl FnOnce() + Send) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(work)
    }

    #[test]
    fn products_match_f64_in_every_layout_and_do_not_depend_on_threads() {
        if !kernel_runs_here() {
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let shapes = [
            (1, 1, 1),
            (13, 33, 257),
            (300, 60, 784),
            (10, 128, 100),
            (37, 1, 600),
            (2, 3000, 3),
        ];
        let layouts = [Layout::RowMajor, Layout::ColMajor];
        for &(m, n, k) in &shapes {
            for al in layouts {
                for bl in layouts {
                    let (a, lda) = operand(m, k, al, &mut rng);
                    let (b, ldb) = operand(k, n, bl, &mut rng);
                    let (a, b) = (
                        Operand {
                            data: &a,
                            ld: lda,
                            layout: al,
                        },
                        Operand {
                            data: &b,
                            ld: ldb,
                            layout: bl,
                        },
                    );
                    let ldc = n + 2;
                    let c0: Vec<f32> = (0..m * ldc).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    let run = |threads: usize| {
                        let mut c = c0.clone();
                        on_threads(threads, || sgemm((m, n, k), a, b, &mut c, ldc, true));
                        c
                    };
                    let c = run(2);
                    assert_eq!(c, run(1), "threads changed the bits");
                    for i in 0..m {
                        for j in 0..n {
                            let (mut want, mut scale) = (c0[i * ldc + j] as f64, 1.0f64);
                            for p in 0..k {
                                let t = a.data[a.at(i, p)] as f64 * b.data[b.at(p, j)] as f64;
                                want += t;
                                scale += t.abs();
                            }
                            let got = c[i * ldc + j] as f64;
                            assert!(
                                (got - want).abs() <= 1e-5 * scale,
                                "{m}x{n}x{k} {al:?} {bl:?}: {got} vs {want}"
                            );
                        }
                        assert_eq!(
                            c[i * ldc + n..(i + 1) * ldc],
                            c0[i * ldc + n..(i + 1) * ldc],
                            "padding written"
                        );
                    }
                }
            }
        }
    }

    /// A gathered B (and a gathered transpose) gives the bits of the same
    /// matrix stored, on one thread and split by columns over two.
    #[test]
    fn gathered_operands_give_the_bits_of_stored_ones() {
        if !kernel_runs_here() {
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for &(m, n, k, transposed) in &[
            (5usize, 1600usize, 700usize, false),
            (70, 600, 1000, true),
            (3, 37, 19, false),
            (9, 21, 45, true),
        ] {
            let (rows, runs) = if transposed { (n, k) } else { (k, n) };
            let data: Vec<f32> = (0..20_000).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let row_offsets: Vec<usize> = (0..rows).map(|_| rng.gen_range(0..10_000)).collect();
            let groups: Vec<usize> = (0..runs.div_ceil(16))
                .map(|_| rng.gen_range(0..9_000))
                .collect();
            let b = Gathered {
                data: &data,
                rows: &row_offsets,
                groups: &groups,
            };
            let value = |r: usize, c: usize| data[row_offsets[r] + groups[c / 16] + c % 16];
            let stored: Vec<f32> = (0..k)
                .flat_map(|p| (0..n).map(move |j| (p, j)))
                .map(|(p, j)| if transposed { value(j, p) } else { value(p, j) })
                .collect();
            let (a, _) = operand(m, k, Layout::RowMajor, &mut rng);
            let a = Operand::row_major(&a, k + 3);
            let run = |threads: usize, gathered: bool| {
                let mut c = vec![0.5; m * n];
                on_threads(threads, || {
                    if gathered {
                        sgemm_gathered((m, n, k), a, b, transposed, &mut c, n, true)
                    } else {
                        let b = Operand::row_major(&stored, n);
                        sgemm((m, n, k), a, b, &mut c, n, true)
                    }
                });
                c
            };
            let want = run(1, false);
            assert_eq!(run(1, true), want, "{m}x{n}x{k} {transposed}, one thread");
            assert_eq!(run(2, true), want, "{m}x{n}x{k} {transposed}, two threads");
        }
    }
}
