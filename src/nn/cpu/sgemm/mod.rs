//! Single-precision matrix products on the CPU, for the forward and
//! backward passes of the products in `product`: dense layers, convolutions'
//! im2col products, dendritic segments. Two register kernels, one per
//! instruction set (the [`Isa`] trait): `avx512` (12 × 32 tiles, stable since
//! Rust 1.89) and, on CPUs without AVX-512, `avx2` (6 × 16 tiles, AVX2 and
//! FMA); [`sgemm`] runs the widest the CPU has.
//!
//! dfdx 0.13 pins `gemm` 0.15, whose AVX-512 kernels need its `nightly`
//! feature, so on stable it runs AVX2: about 90 GFLOP/s on 2 AVX-512 cores,
//! where the AVX-512 kernel measured 1.3-2x that on our layer shapes.
//! GotoBLAS structure: NC-column blocks, KC-deep panels of B packed into
//! NR-wide micro-panels, MC-row blocks of A packed into MR-tall ones. B's
//! panels are packed `PANELS` at a time, and each row block of C takes all
//! of their products before the next, so that it stays in cache instead of
//! passing through memory once per panel (a 4096-wide layer at batch 1000
//! has a 16 MB C and 16 panels).
//!
//! Deterministic: each output element is one FMA chain per KC-deep panel,
//! added to C panel after panel. That order depends on neither the thread
//! count (every element is computed by one thread) nor the kernel (the
//! tile shapes only say which elements are computed together), so the bits
//! are the same for any number of threads on either instruction set. They
//! differ from `gemm`'s (another summation order), so switching to `gemm`
//! changes trained networks' bits.

use std::arch::x86_64::__m512;

use rayon::prelude::*;

mod avx2;
mod avx512;

use avx2::Avx2;
use avx512::Avx512;

/// The depth of a packed panel: each output element's sum is one FMA chain
/// per KC terms, so this constant fixes the bits and every kernel uses it.
pub(super) const KC: usize = 256;
/// Rows of A packed at a time (a multiple of every kernel's MR).
const MC: usize = 144;
/// Columns of B packed at a time (a multiple of every kernel's NR).
const NC: usize = 2048;
/// KC-deep panels of B packed together, so that each MC-row block of C
/// takes all of their products while it is in cache: C passes through
/// memory once per group of panels instead of once per panel.
const PANELS: usize = 4;

/// One microkernel call: kc, the packed A micro-panel, the packed B
/// micro-panel, C's tile and its row stride, the rows and columns of it to
/// store, and whether to add C's values.
type Tile = (
    usize,
    *const f32,
    *const f32,
    *mut f32,
    usize,
    usize,
    usize,
    bool,
);

/// One instruction set's register kernel and the panel layouts it reads.
/// `serial` blocks every product the same way whichever kernel runs it.
///
/// Every method but `available` is unsafe: the CPU must have the
/// instructions (`available`), and the pointers must be as the
/// implementation's functions of the same names document.
trait Isa {
    /// Rows of a register tile and of a packed A micro-panel.
    const MR: usize;
    /// Columns of a register tile and of a packed B micro-panel.
    const NR: usize;
    /// Whether this CPU has the instructions.
    fn available() -> bool;
    /// Packs B[pc..pc+kc, jc..jc+nc] into micro-panels of NR columns.
    unsafe fn pack_b(kc: usize, nc: usize, b: BSource, pc: usize, jc: usize, dst: *mut f32);
    /// Packs A[0..mc, 0..kc] into micro-panels of MR rows.
    unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, lda: usize, al: Layout, dst: *mut f32);
    /// The (mc, nc) block of C at `c` = packed A (mc × kc) · packed B
    /// (kc × nc), added to C's values with `load_c`.
    unsafe fn macro_kernel(
        dims: (usize, usize, usize),
        apk: *const f32,
        bpk: *const f32,
        c: *mut f32,
        ldc: usize,
        load_c: bool,
    );
}

/// The register kernels, widest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// `avx512`.
    Avx512,
    /// `avx2`.
    Avx2,
}

impl Kernel {
    /// Every kernel, widest first.
    const ALL: [Kernel; 2] = [Kernel::Avx512, Kernel::Avx2];

    /// Whether this CPU has the kernel's instructions.
    fn available(self) -> bool {
        match self {
            Kernel::Avx512 => Avx512::available(),
            Kernel::Avx2 => Avx2::available(),
        }
    }

    /// The widest kernel this CPU runs.
    fn widest() -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.available())
    }
}

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

/// What a kernel's transposing loops leave of a B micro-panel at `d`
/// (`width` columns from `j0`, `nr` of them inside B), copied one element at
/// a time: rows `rows..kc` of the first `cols` columns, every row of columns
/// `cols..nr`, and zeros in columns `nr..width`.
///
/// # Safety
///
/// For every p < kc and jj < nr, B's element (pc + p, j0 + jj) must be
/// readable at `b.at(pc + p, j0 + jj)`, and `d` writable for `kc * width`
/// floats, none of them inside B.
unsafe fn pack_b_edges(
    b: BSource,
    (pc, j0): (usize, usize),
    (rows, kc): (usize, usize),
    (cols, nr, width): (usize, usize, usize),
    d: *mut f32,
) {
    for p in 0..kc {
        let from = if p < rows { cols } else { 0 };
        for jj in from..width {
            *d.add(p * width + jj) = if jj < nr { *b.at(pc + p, j0 + jj) } else { 0.0 };
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
    /// Each thread's packed A block and its `PANELS` packed B panels.
    static PACKED: std::cell::RefCell<(Aligned, Aligned)> =
        std::cell::RefCell::new((Aligned::new(MC * KC), Aligned::new(PANELS * KC * NC)));
}

/// Whether this CPU runs one of the kernels (AVX-512, or AVX2 with FMA);
/// otherwise callers use dfdx's products.
pub(crate) fn available() -> bool {
    Kernel::widest().is_some()
}

/// The kernel `sgemm` runs here; panics where there is none.
fn widest() -> Kernel {
    Kernel::widest().expect("sgemm needs AVX-512, or AVX2 with FMA")
}

/// C (m × n, row-major, row stride `ldc`) = A (m × k) · B (k × n), or
/// C += A · B with `accumulate`, on the widest kernel. Panics if an operand
/// is too short or the CPU has no kernel (check [`available`] first).
pub(crate) fn sgemm(
    dims: (usize, usize, usize),
    a: Operand,
    b: Operand,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    sgemm_on(widest(), dims, a, b, c, ldc, accumulate)
}

/// `sgemm` on `kernel`.
fn sgemm_on(
    kernel: Kernel,
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
    product(kernel, (m, n, k), a, b, c, ldc, accumulate);
}

/// `sgemm` with B a `Gathered` matrix (k × n), or with `transposed` the
/// transpose of one (n × k). The packed panels are the ones `sgemm` packs
/// from the same values stored, so the bits are the same. Panics if the
/// offsets are too few or point outside `b.data`, or the CPU has no kernel.
pub(crate) fn sgemm_gathered(
    dims: (usize, usize, usize),
    a: Operand,
    b: Gathered,
    transposed: bool,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    gathered_on(widest(), dims, a, b, transposed, c, ldc, accumulate)
}

/// `sgemm_gathered` on `kernel`.
#[allow(clippy::too_many_arguments)]
fn gathered_on(
    kernel: Kernel,
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
    product(kernel, (m, n, k), a, b, c, ldc, accumulate);
}

/// The product of `sgemm` and `sgemm_gathered` on `kernel`.
fn product(
    kernel: Kernel,
    dims: (usize, usize, usize),
    a: Operand,
    b: BSource,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    assert!(
        kernel.available(),
        "this CPU cannot run the {kernel:?} kernel"
    );
    match kernel {
        Kernel::Avx512 => product_on::<Avx512>(dims, a, b, c, ldc, accumulate),
        Kernel::Avx2 => product_on::<Avx2>(dims, a, b, c, ldc, accumulate),
    }
}

/// The product on `K`, B's bounds checked by the callers, split over the
/// pool's threads by rows or columns of C.
fn product_on<K: Isa>(
    (m, n, k): (usize, usize, usize),
    a: Operand,
    b: BSource,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
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
    // SAFETY (all calls below): `product` checked that the CPU runs K; the
    // asserts above and the callers' keep every read inside A and B and
    // every write inside C; workers write disjoint row or column ranges of C.
    if threads == 1 {
        unsafe { serial::<K>((m, n, k), (ap.0, lda, al), bp.0, cp.0, ldc, accumulate) };
        return;
    }
    let (row_tiles, col_tiles) = (m.div_ceil(K::MR), n.div_ceil(K::NR));
    if row_tiles >= col_tiles {
        let per = row_tiles.div_ceil(threads.min(row_tiles)) * K::MR;
        (0..m.div_ceil(per)).into_par_iter().for_each(move |t| {
            let (ap, bp, cp) = (ap, bp, cp);
            let i0 = t * per;
            let rows = per.min(m - i0);
            let a_off = if al == Layout::RowMajor { i0 * lda } else { i0 };
            unsafe {
                serial::<K>(
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
        let per = col_tiles.div_ceil(threads.min(col_tiles)) * K::NR;
        (0..n.div_ceil(per)).into_par_iter().for_each(move |t| {
            let (ap, bp, cp) = (ap, bp, cp);
            let j0 = t * per;
            let cols = per.min(n - j0);
            unsafe {
                serial::<K>(
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

/// One thread's product over all blocks on `K`: C = A · B, or C += A · B
/// with `accumulate`, for A (m × k), B (k × n) and C (m × n, row stride `ldc`).
///
/// # Safety
///
/// The CPU must run `K`. For every i < m, j < n and p < k, A's element
/// (i, p) must be readable at `a.add(i * lda + p)` (row-major `al`) or
/// `a.add(p * lda + i)` (column-major), B's element (p, j) at `b.at(p, j)`,
/// and `c.add(i * ldc + j)` must be readable and writable. Those elements of
/// C must not overlap A or B, and no other thread may access them, or write
/// A or B, during the call.
unsafe fn serial<K: Isa>(
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
            for group in (0..k).step_by(PANELS * KC) {
                // Panel g of the group (KC · NC apart, so 64-byte aligned).
                let panels = (group..k.min(group + PANELS * KC)).step_by(KC);
                let panel = |g: usize| bpk.add(g * KC * NC);
                for (g, pc) in panels.clone().enumerate() {
                    K::pack_b(KC.min(k - pc), nc, b, pc, jc, panel(g));
                }
                // Each element of C still gets its panels' sums in order.
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    for (g, pc) in panels.clone().enumerate() {
                        let kc = KC.min(k - pc);
                        let a_block = match al {
                            Layout::RowMajor => a.add(ic * lda + pc),
                            Layout::ColMajor => a.add(pc * lda + ic),
                        };
                        K::pack_a(mc, kc, a_block, lda, al, apk);
                        K::macro_kernel(
                            (mc, nc, kc),
                            apk,
                            panel(g),
                            c.add(ic * ldc + jc),
                            ldc,
                            accumulate || pc > 0,
                        );
                    }
                }
            }
        }
    });
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

    /// The kernels this CPU runs; prints which are skipped and why.
    fn kernels_here() -> Vec<Kernel> {
        let (here, missing): (Vec<_>, Vec<_>) =
            Kernel::ALL.into_iter().partition(|k| k.available());
        for k in missing {
            println!("SKIP the {k:?} kernel: this CPU lacks its instructions");
        }
        here
    }

    /// `work` on a pool of `threads` threads.
    fn on_threads(threads: usize, work: impl FnOnce() + Send) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(work)
    }

    /// C (or C + A · B with `accumulate`) as the kernels sum it, one
    /// element at a time: an FMA chain from zero over each KC-deep panel,
    /// added to C panel after panel.
    fn panel_sums(
        (m, n, k): (usize, usize, usize),
        a: Operand,
        b: Operand,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        for i in 0..m {
            for j in 0..n {
                let c = &mut c[i * ldc + j];
                for pc in (0..k).step_by(KC) {
                    let chain = (pc..k.min(pc + KC)).fold(0.0f32, |acc, p| {
                        a.data[a.at(i, p)].mul_add(b.data[b.at(p, j)], acc)
                    });
                    *c = if accumulate || pc > 0 {
                        *c + chain
                    } else {
                        chain
                    };
                }
            }
        }
    }

    /// Every kernel gives exactly the bits of `panel_sums`, whatever the
    /// layouts, the thread count or accumulation: so the AVX-512 and AVX2
    /// kernels give the same bits as each other.
    #[test]
    fn every_kernel_sums_each_element_in_the_same_order_on_any_thread_count() {
        let kernels = kernels_here();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let shapes = [
            (1, 1, 1),
            (13, 33, 257),
            (300, 60, 784),
            // Two groups of panels (the second partial) over two row blocks.
            (150, 40, PANELS * KC + 76),
            (10, 128, 100),
            (37, 1, 600),
            (2, 3000, 3),
            (7, 21, 9),
            // Last row tiles of exactly 4 and 8 rows on AVX-512, 4 and 2
            // on AVX2 (the short tiles).
            (64, 50, 300),
            (20, 17, 40),
        ];
        let layouts = [Layout::RowMajor, Layout::ColMajor];
        for &(m, n, k) in &shapes {
            for al in layouts {
                for bl in layouts {
                    let (a, lda) = operand(m, k, al, &mut rng);
                    let (b, ldb) = operand(k, n, bl, &mut rng);
                    let a = Operand {
                        data: &a,
                        ld: lda,
                        layout: al,
                    };
                    let b = Operand {
                        data: &b,
                        ld: ldb,
                        layout: bl,
                    };
                    let ldc = n + 2;
                    let c0: Vec<f32> = (0..m * ldc).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    for accumulate in [false, true] {
                        let mut want = c0.clone();
                        panel_sums((m, n, k), a, b, &mut want, ldc, accumulate);
                        for &kernel in &kernels {
                            for threads in [1, 2] {
                                let mut c = c0.clone();
                                on_threads(threads, || {
                                    sgemm_on(kernel, (m, n, k), a, b, &mut c, ldc, accumulate)
                                });
                                assert!(
                                    c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
                                    "{kernel:?} {m}x{n}x{k} {al:?} {bl:?} accumulate {accumulate}, \
                                     {threads} threads: not the bits of the panel sums"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// A gathered B (and a gathered transpose) gives the bits of the same
    /// matrix stored, on one thread and split by columns over two, on every
    /// kernel.
    #[test]
    fn gathered_operands_give_the_bits_of_stored_ones() {
        let kernels = kernels_here();
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
            for &kernel in &kernels {
                let run = |threads: usize, gathered: bool| {
                    let mut c = vec![0.5; m * n];
                    on_threads(threads, || {
                        if gathered {
                            gathered_on(kernel, (m, n, k), a, b, transposed, &mut c, n, true)
                        } else {
                            let b = Operand::row_major(&stored, n);
                            sgemm_on(kernel, (m, n, k), a, b, &mut c, n, true)
                        }
                    });
                    c
                };
                let want = run(1, false);
                let what = format!("{kernel:?} {m}x{n}x{k} transposed {transposed}");
                assert_eq!(run(1, true), want, "{what}, one thread");
                assert_eq!(run(2, true), want, "{what}, two threads");
            }
        }
    }
}
