//! Hand-written AVX-512 SGEMM (stable Rust, std::arch intrinsics).
//!
//! C (m x n, row-major, row stride ldc) = [C +] A (m x k, row-major, row stride lda) * B
//! where B is either row-major k x n (b[p*ldb + j]) or "transposed" storage n x k (b[j*ldb + p]).
//!
//! Structure (GotoBLAS/BLIS style):
//!   jc loop over NC columns -> pc loop over KC (pack B panel kc x nc into NR-wide micro-panels)
//!   -> ic loop over MC rows (pack A block mc x kc into MR-tall micro-panels)
//!   -> jr loop over NR -> ir loop over MR -> microkernel MR x NR (12 x 32, 24 zmm accumulators).
//!
//! Determinism: the KC blocking is fixed (independent of thread count), each output element is
//! computed by exactly one thread, and the per-element summation order is
//!   c = (accumulate ? c : 0) + sum_{p in block0} ... ; c += sum_{p in block1} ... ; ...
//! with each block sum computed by sequential FMAs over p starting from 0.
//! Hence the result is bit-identical for any thread count / split.

use std::arch::x86_64::*;

pub const MR: usize = 12;
pub const NR: usize = 32; // 2 zmm
pub const KC: usize = 256;
pub const MC: usize = 144; // multiple of MR
pub const NC: usize = 2048; // multiple of NR

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BLayout {
    /// b[p * ldb + j], k x n row-major
    RowMajor,
    /// b[j * ldb + p], i.e. B^T stored row-major (n x k)
    Transposed,
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
#[derive(Clone, Copy)]
struct SendCPtr<T>(*const T);
unsafe impl<T> Send for SendCPtr<T> {}
unsafe impl<T> Sync for SendCPtr<T> {}

/// 64-byte aligned f32 buffer.
struct AlignedBuf {
    v: Vec<__m512>,
}
impl AlignedBuf {
    fn new(nfloats: usize) -> Self {
        let n = nfloats.div_ceil(16);
        // zero-initialised (__m512 is POD)
        let v = vec![unsafe { std::mem::zeroed::<__m512>() }; n.max(1)];
        AlignedBuf { v }
    }
    fn ptr(&mut self) -> *mut f32 {
        self.v.as_mut_ptr() as *mut f32
    }
}

thread_local! {
    static BUFS: std::cell::RefCell<(AlignedBuf, AlignedBuf)> =
        std::cell::RefCell::new((AlignedBuf::new(MC * KC), AlignedBuf::new(KC * NC)));
}

/// Whether the AVX-512 path is available at runtime.
pub fn avx512_available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// Public entry point. Panics if slices are too short.
///
/// * `a`: m x k, row-major, row stride `lda` (>= k)
/// * `b`: layout per `bl`, stride `ldb`
/// * `c`: m x n row-major with row stride `ldc` (>= n)
/// * `accumulate`: if true C += A*B, else C = A*B
/// * `threads`: number of parallel chunks (uses the current rayon pool); 1 = serial
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    bl: BLayout,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(lda >= k && ldc >= n);
    assert!(a.len() >= (m - 1) * lda + k || k == 0);
    match bl {
        BLayout::RowMajor => assert!(ldb >= n && (k == 0 || b.len() >= (k - 1) * ldb + n)),
        BLayout::Transposed => assert!(ldb >= k && (k == 0 || b.len() >= (n - 1) * ldb + k)),
    }
    assert!(c.len() >= (m - 1) * ldc + n);
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return;
    }
    if !avx512_available() {
        return sgemm_fallback(m, n, k, a, lda, b, ldb, bl, c, ldc, accumulate);
    }
    let ap = SendCPtr(a.as_ptr());
    let bp = SendCPtr(b.as_ptr());
    let cp = SendPtr(c.as_mut_ptr());

    // Small problems: threading overhead dominates.
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let threads = if flops < 4.0e6 { 1 } else { threads.max(1) };
    if threads == 1 {
        unsafe { sgemm_serial(m, n, k, ap.0, lda, bp.0, ldb, bl, cp.0, ldc, accumulate) };
        return;
    }
    // Split over m (in MR multiples) or over n (in NR multiples), whichever has more tiles.
    let mt = m.div_ceil(MR);
    let nt = n.div_ceil(NR);
    use rayon::prelude::*;
    if mt >= nt {
        let chunks = threads.min(mt);
        let per = mt.div_ceil(chunks) * MR;
        (0..chunks).into_par_iter().for_each(move |t| {
            let (ap, bp, cp) = (ap, bp, cp);
            let i0 = t * per;
            if i0 >= m {
                return;
            }
            let mm = per.min(m - i0);
            unsafe {
                sgemm_serial(mm, n, k, ap.0.add(i0 * lda), lda, bp.0, ldb, bl, cp.0.add(i0 * ldc), ldc, accumulate)
            };
        });
    } else {
        let chunks = threads.min(nt);
        let per = nt.div_ceil(chunks) * NR;
        (0..chunks).into_par_iter().for_each(move |t| {
            let (ap, bp, cp) = (ap, bp, cp);
            let j0 = t * per;
            if j0 >= n {
                return;
            }
            let nn = per.min(n - j0);
            let boff = match bl {
                BLayout::RowMajor => j0,
                BLayout::Transposed => j0 * ldb,
            };
            unsafe { sgemm_serial(m, nn, k, ap.0, lda, bp.0.add(boff), ldb, bl, cp.0.add(j0), ldc, accumulate) };
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn sgemm_fallback(
    m: usize, n: usize, k: usize, a: &[f32], lda: usize, b: &[f32], ldb: usize, bl: BLayout,
    c: &mut [f32], ldc: usize, accumulate: bool,
) {
    // Same per-element order as the AVX-512 path (KC blocks, fma within a block).
    for i in 0..m {
        for j in 0..n {
            let mut cv = if accumulate { c[i * ldc + j] } else { 0.0 };
            let mut p0 = 0;
            while p0 < k {
                let kc = KC.min(k - p0);
                let mut s = 0.0f32;
                for p in p0..p0 + kc {
                    let bv = match bl {
                        BLayout::RowMajor => b[p * ldb + j],
                        BLayout::Transposed => b[j * ldb + p],
                    };
                    s = a[i * lda + p].mul_add(bv, s);
                }
                cv = if p0 == 0 && !accumulate { s } else { cv + s };
                p0 += kc;
            }
            c[i * ldc + j] = cv;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn sgemm_serial(
    m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, bl: BLayout,
    c: *mut f32, ldc: usize, accumulate: bool,
) {
    BUFS.with(|bufs| {
        let mut bufs = bufs.borrow_mut();
        let (abuf, bbuf) = &mut *bufs;
        let apk = abuf.ptr();
        let bpk = bbuf.ptr();
        let mut jc = 0;
        while jc < n {
            let nc = NC.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kc = KC.min(k - pc);
                // load_c: whether the kernel adds into existing C
                let load_c = accumulate || pc > 0;
                pack_b(kc, nc, b, ldb, bl, pc, jc, bpk);
                let mut ic = 0;
                while ic < m {
                    let mc = MC.min(m - ic);
                    pack_a(mc, kc, a.add(ic * lda + pc), lda, apk);
                    macro_kernel(mc, nc, kc, apk, bpk, c.add(ic * ldc + jc), ldc, load_c);
                    ic += mc;
                }
                pc += kc;
            }
            jc += nc;
        }
    });
}


/// In-register 16x16 transpose: on return r[j][i] = old r[i][j].
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
            _mm512_castps_pd(t[4 * g]), _mm512_castps_pd(t[4 * g + 1]),
            _mm512_castps_pd(t[4 * g + 2]), _mm512_castps_pd(t[4 * g + 3]),
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
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(kc: usize, nc: usize, b: *const f32, ldb: usize, bl: BLayout, pc: usize, jc: usize, dst: *mut f32) {
    let npanels = nc.div_ceil(NR);
    for q in 0..npanels {
        let j0 = jc + q * NR;
        let nr = NR.min(nc - q * NR);
        let d = dst.add(q * kc * NR);
        match bl {
            BLayout::RowMajor => {
                let m0: __mmask16 = if nr >= 16 { 0xffff } else { ((1u32 << nr) - 1) as u16 };
                let m1: __mmask16 = if nr >= 32 { 0xffff } else if nr > 16 { ((1u32 << (nr - 16)) - 1) as u16 } else { 0 };
                for p in 0..kc {
                    let s = b.add((pc + p) * ldb + j0);
                    let v0 = _mm512_maskz_loadu_ps(m0, s);
                    let v1 = _mm512_maskz_loadu_ps(m1, s.add(16));
                    _mm512_store_ps(d.add(p * NR), v0);
                    _mm512_store_ps(d.add(p * NR + 16), v1);
                }
            }
            BLayout::Transposed => {
                // source column j is contiguous over p: b[j*ldb + pc + p]
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
                            r[x] = _mm512_loadu_ps(b.add((j0 + jj + x) * ldb + pc + p));
                        }
                        transpose16(&mut r);
                        for x in 0..16 {
                            _mm512_store_ps(d.add((p + x) * NR + jj), r[x]);
                        }
                        p += 16;
                    }
                    for x in 0..16 {
                        let s = b.add((j0 + jj + x) * ldb + pc);
                        for pp in p..kc {
                            *d.add(pp * NR + jj + x) = *s.add(pp);
                        }
                    }
                    jj += 16;
                }
                for jj in jj..nr {
                    let s = b.add((j0 + jj) * ldb + pc);
                    for p in 0..kc {
                        *d.add(p * NR + jj) = *s.add(p);
                    }
                }
            }
        }
    }
}

/// Pack A[0..mc, 0..kc] (row stride lda) into micro-panels of MR rows:
/// dst[r*kc*MR + p*MR + ii] = A[r*MR+ii, p], zero-padded past mc.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, lda: usize, dst: *mut f32) {
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
                    *d.add(p * MR + ii) = if ii < mr { *a.add((i0 + ii) * lda + p) } else { 0.0 };
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn macro_kernel(mc: usize, nc: usize, kc: usize, apk: *const f32, bpk: *const f32, c: *mut f32, ldc: usize, load_c: bool) {
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
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const NV: usize>(
    kc: usize, ap: *const f32, bp: *const f32, c: *mut f32, ldc: usize, mr: usize, nr: usize, load_c: bool,
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
        masks[v] = if nr >= lo + 16 { 0xffff } else if nr > lo { ((1u32 << (nr - lo)) - 1) as u16 } else { 0 };
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
mod tests;
