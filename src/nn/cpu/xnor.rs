//! Bit-packed products of ±1 matrices (`xnor_matmul`): the evaluation of a
//! binarized layer whose weights sign(W_h) and inputs (the previous layer's
//! sign) are all ±1. Each row of signs packs into u64 words (bit set = +1),
//! and a dot product of n signs is n - 2·popcount(w XOR x): XNOR and
//! popcount instead of n multiply-adds. The result is an integer, which the
//! float path computes exactly too (every partial sum of ±1 products is an
//! integer below 2^24), so both paths give the same bits. A zero (sign(0) = 0,
//! as `torch.sign`) has no bit; a layer with one falls back to the float path.

use std::sync::{Arc, Mutex, Weak};

use rayon::prelude::*;

/// Output rows per parallel task: the task's packed weight rows stay in L2
/// (32 KB for 4096 inputs, twice that split into nibbles) while the input
/// rows pass by in blocks (`INPUT_BYTES_PER_PASS`), each block read from
/// memory once per task and then from L2 once per tile of 4 weight rows.
const ROW_BLOCK: usize = 64;

/// Bytes of packed input rows per pass over a task's weight rows.
const INPUT_BYTES_PER_PASS: usize = 128 << 10;

/// Signs of `values` (`rows` rows of `len`) packed into `words` u64 per row,
/// bit k of row r set where value k is positive; `None` if any value is 0
/// (or NaN), which has no bit.
fn pack_rows(values: &[f32], rows: usize, len: usize, words: usize) -> Option<Vec<u64>> {
    let mut out = vec![0u64; rows * words];
    let ok = out
        .par_chunks_mut(words)
        .zip(values.par_chunks(len))
        .all(|(bits, row)| {
            let mut signed = true;
            for (word, chunk) in bits.iter_mut().zip(row.chunks(64)) {
                *word = sign_bits(chunk, &mut signed);
            }
            signed
        });
    ok.then_some(out)
}

/// The packed signs of one weight matrix, remembered with the host copy of
/// the values they came from: a parameter makes a new host copy whenever its
/// values change, so the same copy means the same signs, and evaluation packs
/// a matrix once instead of once per batch. The copy is held weakly, so that
/// the next optimizer step still updates it in place instead of copying it
/// (and the weak pointer keeps its address from being reused by a new copy).
///
/// It also keeps the host buffers of the layer's last product (its input
/// copied out of dfdx's tensor, its output): the next batch reuses their
/// memory, where fresh 16 MB buffers (a 4096-wide layer at batch 1000) had
/// every page cleared by the kernel again, some batches a third slower.
#[derive(Debug, Default)]
pub(crate) struct PackedWeights {
    slot: Kept<Option<Arc<Vec<u64>>>>,
    float_signs: Kept<Arc<Vec<f32>>>,
    buffers: Mutex<HostBuffers>,
}

/// The input and output buffers `PackedWeights::with_buffers` lends.
#[derive(Default)]
struct HostBuffers {
    input: Vec<f32>,
    output: Vec<f32>,
}

impl std::fmt::Debug for HostBuffers {
    /// Their sizes, not their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuffers")
            .field("input", &self.input.len())
            .field("output", &self.output.len())
            .finish()
    }
}

/// Something made from a host copy (the packed signs, `None` where a sign
/// was 0; the float signs), kept with a weak pointer to the copy.
type Kept<T> = Mutex<Option<(Weak<Vec<f32>>, T)>>;

impl Clone for PackedWeights {
    /// A clone packs again on first use.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PackedWeights {
    /// The signs of `w` (`outputs` × `inputs`) packed, in the layout of this
    /// CPU's widest kernel (`Popcount::layout`), or `None` if one is 0.
    pub(crate) fn get(
        &self,
        w: &Arc<Vec<f32>>,
        outputs: usize,
        inputs: usize,
    ) -> Option<Arc<Vec<u64>>> {
        kept(&self.slot, w, || {
            let words = inputs.div_ceil(64);
            let kernel = Popcount::detect();
            pack_rows(w, outputs, inputs, words).map(|rows| Arc::new(kernel.layout(rows, words)))
        })
    }

    /// sign(v) of every value of `w`, as floats, kept the same way: what a
    /// binarized first layer, whose inputs are real, multiplies by.
    pub(crate) fn float_signs(&self, w: &Arc<Vec<f32>>) -> Arc<Vec<f32>> {
        kept(&self.float_signs, w, || {
            Arc::new(super::product::signs_of(w))
        })
    }

    /// `f` on this layer's input and output buffers (fresh ones while
    /// another thread holds them).
    pub(crate) fn with_buffers<R>(&self, f: impl FnOnce(&mut Vec<f32>, &mut Vec<f32>) -> R) -> R {
        match self.buffers.try_lock() {
            Ok(mut held) => {
                let HostBuffers { input, output } = &mut *held;
                f(input, output)
            }
            Err(_) => f(&mut Vec::new(), &mut Vec::new()),
        }
    }
}

/// What `slot` keeps for the host copy `w`: made by `make`, and kept with
/// a weak pointer to `w`, unless the slot already holds it for `w`.
fn kept<T: Clone>(slot: &Kept<T>, w: &Arc<Vec<f32>>, make: impl FnOnce() -> T) -> T {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((source, value)) = slot.as_ref() {
        if std::ptr::eq(source.as_ptr(), Arc::as_ptr(w)) {
            return value.clone();
        }
    }
    let value = make();
    *slot = Some((Arc::downgrade(w), value.clone()));
    value
}

/// The columns of `x` (`len` rows × `cols` columns, row-major: the
/// feature-major activations) packed as rows of `words` u64, one per column.
/// Word k of every column comes from rows 64k.., read in order (one task per
/// such band of rows, `pack_band`).
fn pack_columns(x: &[f32], len: usize, cols: usize, words: usize) -> Option<Vec<u64>> {
    let bands: Vec<Option<Vec<u64>>> = (0..words)
        .into_par_iter()
        .map(|word| pack_band(x, 64 * word..len.min(64 * word + 64), cols))
        .collect();
    let mut out = vec![0u64; cols * words];
    for (word, band) in bands.into_iter().enumerate() {
        for (c, bits) in band?.into_iter().enumerate() {
            out[c * words + word] = bits;
        }
    }
    Some(out)
}

/// Bit i of column c's word: the sign of `x[rows.start + i][c]` (`x` as in
/// `pack_columns`, at most 64 rows); `None` if one of those values is 0 or
/// NaN. On AVX-512 with byte instructions by `avx512_pack_band`.
fn pack_band(x: &[f32], rows: std::ops::Range<usize>, cols: usize) -> Option<Vec<u64>> {
    debug_assert!(rows.len() <= 64);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU has AVX-512F and BW.
        return unsafe { avx512_pack_band(x, rows, cols) };
    }
    plain_pack_band(x, rows, cols)
}

/// `pack_band` by bytes of signs (`sign_bytes`) gathered into 8 × 8 bit
/// squares, each transposed in a register (`transpose_bits`).
fn plain_pack_band(x: &[f32], rows: std::ops::Range<usize>, cols: usize) -> Option<Vec<u64>> {
    let groups = cols.div_ceil(8);
    let mut signed = true;
    // Byte i of squares[8 g + q]: the signs of columns 8 g.. in row 8 q + i.
    let mut squares = vec![0u64; 8 * groups];
    let mut bytes = vec![0u8; groups];
    for (i, k) in rows.enumerate() {
        let (q, shift) = (i / 8, 8 * (i % 8));
        signed &= sign_bytes(&x[k * cols..(k + 1) * cols], &mut bytes);
        for (g, &byte) in bytes.iter().enumerate() {
            squares[8 * g + q] |= u64::from(byte) << shift;
        }
    }
    let mut bits = vec![0u64; cols];
    for (g, eight) in bits.chunks_mut(8).enumerate() {
        for (q, &square) in squares[8 * g..8 * g + 8].iter().enumerate() {
            let square = transpose_bits(square);
            for (c, column) in eight.iter_mut().enumerate() {
                *column |= (square >> (8 * c) & 0xff) << (8 * q);
            }
        }
    }
    signed.then_some(bits)
}

/// `pack_band` on AVX-512, 16 columns at a time: one compare per row gives
/// the 16 columns' signs as a mask, whose low and high bytes go to byte i
/// (row i) of two 64-byte vectors; then bit j of every byte, shifted to the
/// byte's top bit, is column j's word (`_mm512_movepi8_mask`: the top bits
/// of 64 bytes). Packing value by value was 8% of the packed bnn-4096's
/// evaluation, and by bytes of signs still 17% of its 4096 × 4096 layer's.
/// The bits are `plain_pack_band`'s: the ordered compares `v > 0` and `v !=
/// 0` are false for NaN, as `sign_bits`' `v > 0.0` and `v.abs() > 0.0` are,
/// and rows past the band's end are zero bytes.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn avx512_pack_band(
    x: &[f32],
    rows: std::ops::Range<usize>,
    cols: usize,
) -> Option<Vec<u64>> {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    let mut unsigned: __mmask16 = 0;
    let mut bits = vec![0u64; cols];
    for (group, words) in bits.chunks_mut(16).enumerate() {
        let c = 16 * group;
        let lanes = ((1u32 << words.len()) - 1) as __mmask16;
        // Byte i: the signs of row rows.start + i, columns c.. (low) and c + 8.. (high).
        let (mut low, mut high) = ([0u8; 64], [0u8; 64]);
        for (i, k) in rows.clone().enumerate() {
            let row = &x[k * cols + c..][..words.len()];
            // SAFETY: the masked load reads (and faults on) only the row's
            // `words.len()` values from c.
            let v = unsafe { _mm512_maskz_loadu_ps(lanes, row.as_ptr()) };
            let positive = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(lanes, v, zero);
            unsigned |= lanes & !_mm512_mask_cmp_ps_mask::<_CMP_NEQ_OQ>(lanes, v, zero);
            [low[i], high[i]] = positive.to_le_bytes();
        }
        // SAFETY: both arrays hold 64 bytes.
        let halves = unsafe {
            [
                _mm512_loadu_si512(low.as_ptr().cast()),
                _mm512_loadu_si512(high.as_ptr().cast()),
            ]
        };
        for (j, word) in words.iter_mut().enumerate() {
            let half = halves[j / 8];
            // Bit j % 8 of each byte to its top bit (the shift crosses into
            // the next byte's low bits, which are not read).
            let top = match j % 8 {
                0 => _mm512_slli_epi16::<7>(half),
                1 => _mm512_slli_epi16::<6>(half),
                2 => _mm512_slli_epi16::<5>(half),
                3 => _mm512_slli_epi16::<4>(half),
                4 => _mm512_slli_epi16::<3>(half),
                5 => _mm512_slli_epi16::<2>(half),
                6 => _mm512_slli_epi16::<1>(half),
                _ => half,
            };
            *word = _mm512_movepi8_mask(top);
        }
    }
    (unsigned == 0).then_some(bits)
}

/// Byte g of `bytes` (`row.len()` / 8 of them, rounded up): bit j set where
/// `row[8 g + j]` is positive, by `sign_bits`. Whether every value is signed
/// (not 0 or NaN).
fn sign_bytes(row: &[f32], bytes: &mut [u8]) -> bool {
    debug_assert_eq!(bytes.len(), row.len().div_ceil(8));
    let mut signed = true;
    for (byte, eight) in bytes.iter_mut().zip(row.chunks(8)) {
        *byte = sign_bits(eight, &mut signed) as u8;
    }
    signed
}

/// Bit c set where `values[c]` is positive (at most 64 values); `signed`
/// cleared if one is 0 or NaN. The packing of weight rows (64 values), and
/// of activations (8) where there is no AVX-512 with byte instructions.
#[inline(always)]
fn sign_bits(values: &[f32], signed: &mut bool) -> u64 {
    let mut bits = 0u64;
    for (c, &v) in values.iter().enumerate() {
        bits |= u64::from(v > 0.0) << c;
        *signed &= v.abs() > 0.0;
    }
    bits
}

/// The 8 × 8 bit matrix `m` (bit j of byte i is row i, column j)
/// transposed, by three rounds of swapping bits across the diagonal.
fn transpose_bits(mut m: u64) -> u64 {
    for (shift, mask) in [
        (7, 0x00aa_00aa_00aa_00aa_u64),
        (14, 0x0000_cccc_0000_cccc),
        (28, 0x0000_0000_f0f0_f0f0),
    ] {
        let t = (m ^ (m >> shift)) & mask;
        m ^= t ^ (t << shift);
    }
    m
}

/// sign(w) · x for the packed signs `ws` of a weight (`outputs` × `inputs`,
/// from `PackedWeights`, so in its kernel's layout) and `x` (`inputs` × `batch`, every value ±1), into
/// `out` as (`outputs` × `batch`) row-major (resized; its old values are
/// overwritten); `None` when an input is 0 (use the float path then). The
/// same on every thread count and CPU.
pub(crate) fn xnor_matmul(
    ws: &[u64],
    x: &[f32],
    (outputs, inputs, batch): (usize, usize, usize),
    out: &mut Vec<f32>,
) -> Option<()> {
    let (words, kernel) = (inputs.div_ceil(64), Popcount::detect());
    debug_assert_eq!(ws.len(), outputs * kernel.stride(words));
    debug_assert_eq!(x.len(), inputs * batch);
    let xs = pack_columns(x, inputs, batch, words)?;
    out.resize(outputs * batch, 0.0);
    if batch == 0 {
        return Some(());
    }
    let xs = kernel.layout(xs, words);
    out.par_chunks_mut(ROW_BLOCK * batch)
        .zip(ws.par_chunks(ROW_BLOCK * kernel.stride(words)))
        .for_each(|(out, ws)| {
            kernel.mismatches(ws, &xs, words, out);
            // The dot product of n signs that differ in m places: n - 2m.
            for v in out {
                *v = inputs as f32 - 2.0 * *v;
            }
        });
    Some(())
}

/// The widest way this CPU has to count the differing bits of packed rows.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Popcount {
    /// VPOPCNTQ on 8 words at a time.
    Avx512,
    /// Byte counts by table lookups, on rows split into nibbles
    /// (`split_nibbles`).
    Avx2,
    /// The POPCNT instruction, one word at a time.
    Popcnt,
    /// `count_ones` as compiled for any CPU.
    Portable,
}

impl Popcount {
    /// The widest kernel this CPU supports.
    fn detect() -> Self {
        Self::supported()[0]
    }

    /// Every kernel this CPU supports, widest first (the tests run each).
    fn supported() -> Vec<Self> {
        let mut kernels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512vpopcntdq") && has!("avx512f") {
                kernels.push(Self::Avx512);
            }
            if has!("avx2") && has!("popcnt") {
                kernels.push(Self::Avx2);
            }
            if has!("popcnt") {
                kernels.push(Self::Popcnt);
            }
        }
        kernels.push(Self::Portable);
        kernels
    }

    /// Packed rows of `words` u64 in the layout this kernel reads.
    fn layout(self, rows: Vec<u64>, words: usize) -> Vec<u64> {
        match self {
            Self::Avx2 => split_nibbles(&rows, words),
            _ => rows,
        }
    }

    /// The u64 per row of rows of `words` u64 in this kernel's `layout`.
    fn stride(self, words: usize) -> usize {
        match self {
            Self::Avx2 => 8 * words.div_ceil(4),
            _ => words,
        }
    }

    /// `out[r · batch + c]` = the number of differing bits between weight
    /// row r of `ws` and input row c of `xs` (rows of `words` u64, both in
    /// this kernel's `layout`).
    fn mismatches(self, ws: &[u64], xs: &[u64], words: usize, out: &mut [f32]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found AVX-512F and VPOPCNTQ on this CPU.
            Self::Avx512 => unsafe { mismatches_avx512(ws, xs, words, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found AVX2 and POPCNT on this CPU.
            Self::Avx2 => unsafe { mismatches_avx2(ws, xs, words, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found POPCNT on this CPU.
            Self::Popcnt => unsafe { mismatches_popcnt(ws, xs, words, out) },
            _ => mismatches_portable(ws, xs, words, out),
        }
    }
}

/// The low nibble of every byte.
const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;

/// Packed rows of `words` u64 with each block of 4 words split into 8: the
/// low nibbles of its bytes, then the high nibbles shifted down, the last
/// block padded with zero bits. Each bit keeps one place, so two split rows
/// differ in as many bits as the rows they came from, and a byte of either
/// half indexes a 16-entry table directly.
fn split_nibbles(rows: &[u64], words: usize) -> Vec<u64> {
    let stride = Popcount::Avx2.stride(words);
    let mut out = vec![0u64; rows.len() / words.max(1) * stride];
    for (row, split) in rows.chunks(words.max(1)).zip(out.chunks_mut(stride.max(1))) {
        for (k, &w) in row.iter().enumerate() {
            let (block, lane) = (k / 4, k % 4);
            split[8 * block + lane] = w & LOW_NIBBLES;
            split[8 * block + 4 + lane] = (w >> 4) & LOW_NIBBLES;
        }
    }
    out
}

/// `Popcount::mismatches` with `count_ones` as the caller is compiled
/// (inlined, so that `mismatches_popcnt` gets the POPCNT instruction).
#[inline(always)]
fn mismatches_portable(ws: &[u64], xs: &[u64], words: usize, out: &mut [f32]) {
    let batch = xs.len() / words;
    for (r, w) in ws.chunks(words).enumerate() {
        for (c, x) in xs.chunks(words).enumerate() {
            out[r * batch + c] = differing_bits(w, x) as f32;
        }
    }
}

/// The bits that differ between `w` and `x`, word by word, with
/// `count_ones` as the caller is compiled (inlined, for the same reason).
#[inline(always)]
fn differing_bits(w: &[u64], x: &[u64]) -> u32 {
    w.iter().zip(x).map(|(a, b)| (a ^ b).count_ones()).sum()
}

/// `mismatches_portable` compiled with the POPCNT instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn mismatches_popcnt(ws: &[u64], xs: &[u64], words: usize, out: &mut [f32]) {
    mismatches_portable(ws, xs, words, out)
}

/// `Popcount::mismatches` with AVX2, which has no popcount instruction, on
/// rows split into nibbles (`split_nibbles`, `ws` as well as `xs`): each
/// byte of a half of w XOR x indexes a 16-entry table of bit counts
/// (VPSHUFB) without a shift or a mask, so a block of 4 words costs two
/// XORs, two lookups and two byte additions. Byte counts add up for up to
/// 31 blocks (at most 8 · 31 = 248 per lane) before they are summed into
/// u64 lanes (VPSADBW). Tiles of 4 weight rows × 2 input rows, as
/// `mismatches_avx512`, their 8 sums reduced in registers; the rows and
/// columns left over from the tiles go through POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn mismatches_avx2(ws: &[u64], xs: &[u64], words: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    const FLUSH: usize = 31;
    let blocks = words.div_ceil(4);
    let table = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, //
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    );
    // The low (`half` 0) or high (1) nibbles of block j of `row`.
    // SAFETY (every call): j < blocks, and a split row holds 8 words per block.
    let half = |row: &[u64], j: usize, half: usize| unsafe {
        _mm256_loadu_si256(row.as_ptr().add(8 * j + 4 * half).cast())
    };
    let single = |w: &[u64], x: &[u64]| differing_bits(w, x) as f32;
    let tile = |w: [&[u64]; 4], x: [&[u64]; 2]| {
        let mut sums = [_mm256_setzero_si256(); 8];
        let mut j = 0;
        while j < blocks {
            let mut bytes = [_mm256_setzero_si256(); 8];
            for j in j..blocks.min(j + FLUSH) {
                let lo = [half(x[0], j, 0), half(x[1], j, 0)];
                let hi = [half(x[0], j, 1), half(x[1], j, 1)];
                for (i, w) in w.iter().enumerate() {
                    let (wl, wh) = (half(w, j, 0), half(w, j, 1));
                    for k in 0..2 {
                        let l = _mm256_shuffle_epi8(table, _mm256_xor_si256(wl, lo[k]));
                        let h = _mm256_shuffle_epi8(table, _mm256_xor_si256(wh, hi[k]));
                        bytes[2 * i + k] = _mm256_add_epi8(bytes[2 * i + k], _mm256_add_epi8(l, h));
                    }
                }
            }
            for (s, b) in sums.iter_mut().zip(bytes) {
                *s = _mm256_add_epi64(*s, _mm256_sad_epu8(b, _mm256_setzero_si256()));
            }
            j += FLUSH;
        }
        lane_totals(sums)
    };
    by_tiles(ws, xs, 8 * blocks, out, tile, single);
}

/// The totals of 8 sums of 4 u64 lanes each (every lane below 2^32), as
/// f32: the lanes read as (count, 0) i32 pairs, three rounds of pairwise
/// sums leave sums t and t + 4 in the two 128-bit halves' lane t, which the
/// last addition lines up. One reduction for a whole tile instead of 8.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn lane_totals(sums: [std::arch::x86_64::__m256i; 8]) -> [f32; 8] {
    use std::arch::x86_64::*;
    let pairs = |a, b| _mm256_hadd_epi32(a, b);
    let first = pairs(pairs(sums[0], sums[1]), pairs(sums[2], sums[3]));
    let second = pairs(pairs(sums[4], sums[5]), pairs(sums[6], sums[7]));
    let total = _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(first, second),
        _mm256_permute2x128_si256::<0x31>(first, second),
    );
    let mut counts = [0.0f32; 8];
    // SAFETY: `counts` holds 8 f32.
    unsafe { _mm256_storeu_ps(counts.as_mut_ptr(), _mm256_cvtepi32_ps(total)) };
    counts
}

/// `out[r · batch + c]` for every weight row r of `ws` and input row c of
/// `xs`: `tile` counts tiles of 4 weight rows × 2 input rows (its 8 counts
/// weight row by weight row), `single` the products the tiles leave (those
/// of the last input row where there is an odd number of them, and all
/// those of the weight rows past the last full tile). Inlined, so that both
/// are compiled with the caller's instructions.
#[inline(always)]
fn by_tiles(
    ws: &[u64],
    xs: &[u64],
    words: usize,
    out: &mut [f32],
    tile: impl Fn([&[u64]; 4], [&[u64]; 2]) -> [f32; 8],
    single: impl Fn(&[u64], &[u64]) -> f32,
) {
    let (batch, rows) = (xs.len() / words, ws.len() / words);
    let (tiled_rows, tiled_cols) = (rows / 4 * 4, batch / 2 * 2);
    let row = |m, i| row_of(m, i, words);
    // Input rows per pass over the weight rows: as many as fit in L2 beside them.
    let pass = (INPUT_BYTES_PER_PASS / (8 * words).max(1)).max(2) / 2 * 2;
    for first in (0..tiled_cols).step_by(pass) {
        for r in (0..tiled_rows).step_by(4) {
            let w = [row(ws, r), row(ws, r + 1), row(ws, r + 2), row(ws, r + 3)];
            for c in (first..tiled_cols.min(first + pass)).step_by(2) {
                for (t, n) in tile(w, [row(xs, c), row(xs, c + 1)])
                    .into_iter()
                    .enumerate()
                {
                    out[(r + t / 2) * batch + c + t % 2] = n;
                }
            }
        }
    }
    for r in 0..rows {
        let from = if r < tiled_rows { tiled_cols } else { 0 };
        for c in from..batch {
            out[r * batch + c] = single(row(ws, r), row(xs, c));
        }
    }
}

/// Row `i` of `words` u64 each in `m`.
fn row_of(m: &[u64], i: usize, words: usize) -> &[u64] {
    &m[i * words..(i + 1) * words]
}

/// `mismatches` with AVX-512 VPOPCNTQ, 8 words per instruction (the tail of
/// each row, fewer than 8 words, masked), in tiles of 4 weight rows × 2
/// input rows: each loaded block of words serves 4 or 2 products instead of
/// one, and the 8 sums stay in registers until the rows end. Rows and
/// columns left over from the tiles are counted one product at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn mismatches_avx512(ws: &[u64], xs: &[u64], words: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let full = words / 8;
    let tail: __mmask8 = ((1u32 << (words % 8)) - 1) as u8;
    let blocks = full + usize::from(tail != 0);
    // Block j (8 words) of `row`: masked past the row's end.
    macro_rules! block {
        ($row:expr, $j:expr) => {{
            let p = $row.as_ptr().add(8 * $j);
            if $j < full {
                _mm512_loadu_si512(p.cast())
            } else {
                _mm512_maskz_loadu_epi64(tail, p.cast())
            }
        }};
    }
    let single = |w: &[u64], x: &[u64]| {
        let mut acc = _mm512_setzero_si512();
        for j in 0..blocks {
            // SAFETY: block j lies inside both rows (the tail block masked).
            let (a, b) = unsafe { (block!(w, j), block!(x, j)) };
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
        }
        _mm512_reduce_add_epi64(acc) as f32
    };
    let tile = |w: [&[u64]; 4], x: [&[u64]; 2]| {
        let mut acc = [_mm512_setzero_si512(); 8];
        let (wp, xp) = (w.map(<[u64]>::as_ptr), x.map(<[u64]>::as_ptr));
        // Block j of every row, each loaded by `$load`.
        macro_rules! step {
            ($j:expr, $load:expr) => {{
                let at = 8 * $j;
                let xv = [$load(xp[0].add(at)), $load(xp[1].add(at))];
                for (i, &w) in wp.iter().enumerate() {
                    let wv = $load(w.add(at));
                    for (k, &xv) in xv.iter().enumerate() {
                        let n = _mm512_popcnt_epi64(_mm512_xor_si512(wv, xv));
                        acc[2 * i + k] = _mm512_add_epi64(acc[2 * i + k], n);
                    }
                }
            }};
        }
        // SAFETY: blocks below `full` lie inside every row, and the tail
        // block's loads are masked to the row's end.
        unsafe {
            for j in 0..full {
                step!(j, |p: *const u64| _mm512_loadu_si512(p.cast()));
            }
            if tail != 0 {
                step!(full, |p: *const u64| _mm512_maskz_loadu_epi64(
                    tail,
                    p.cast()
                ));
            }
        }
        // Each lane's count is below 2^32: halve to 4 lanes, then one
        // reduction for all 8 sums.
        lane_totals(acc.map(|a| {
            _mm256_add_epi64(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64::<1>(a))
        }))
    };
    by_tiles(ws, xs, words, out, tile, single);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ±1 values from a fixed LCG (zero where `zero_at` says).
    fn signs(n: usize, seed: u64, zero_at: Option<usize>) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if Some(i) == zero_at {
                    0.0
                } else if (s >> 33) & 1 == 1 {
                    0.37
                } else {
                    -2.5
                }
            })
            .collect()
    }

    /// `xnor_matmul` into a new buffer.
    fn product(ws: &[u64], x: &[f32], shape: (usize, usize, usize)) -> Option<Vec<f32>> {
        let mut out = Vec::new();
        xnor_matmul(ws, x, shape, &mut out).map(|()| out)
    }

    /// A reused output buffer, longer or shorter than the product, and
    /// holding other values, gives the same product as a new one.
    #[test]
    fn reused_buffers_give_the_same_products() {
        let (outputs, inputs) = (9, 130);
        let packed = PackedWeights::default();
        let ws = packed
            .get(&Arc::new(signs(outputs * inputs, 5, None)), outputs, inputs)
            .unwrap();
        for batch in [7, 3, 12] {
            let x = signs(inputs * batch, batch as u64, None);
            let fresh = product(&ws, &x, (outputs, inputs, batch)).unwrap();
            let reused = packed.with_buffers(|input, output| {
                input.clone_from(&x);
                output.iter_mut().for_each(|v| *v = f32::NAN);
                xnor_matmul(&ws, input, (outputs, inputs, batch), output).map(|()| output.clone())
            });
            assert_eq!(reused, Some(fresh), "batch {batch}");
        }
        let held = packed.buffers.lock().unwrap();
        assert_eq!(
            packed.with_buffers(|i, o| (i.len(), o.len())),
            (0, 0),
            "fresh while held"
        );
        assert_eq!(held.output.len(), outputs * 12);
    }

    /// sign(w) · sign(x) in f64, the plain definition.
    fn reference(w: &[f32], x: &[f32], outputs: usize, inputs: usize, batch: usize) -> Vec<f32> {
        let s = |v: f32| v.signum() as f64;
        let mut out = vec![0.0; outputs * batch];
        for o in 0..outputs {
            for b in 0..batch {
                let dot: f64 = (0..inputs)
                    .map(|k| s(w[o * inputs + k]) * s(x[k * batch + b]))
                    .sum();
                out[o * batch + b] = dot as f32;
            }
        }
        out
    }

    #[test]
    fn packed_products_equal_the_plain_ones_on_odd_shapes() {
        for (outputs, inputs, batch) in [
            (1, 1, 1),
            (3, 63, 5),
            (9, 64, 2),
            (17, 65, 7),
            (10, 600, 3),
            (8, 1024, 33),
            // Two blocks of packed columns, the second ending mid-group.
            (6, 130, 70),
            // 129 words: more blocks than AVX2's byte counts hold, a last
            // block of one word, and more input rows than one pass takes.
            (5, 8200, 70),
        ] {
            let w = signs(outputs * inputs, 1 + inputs as u64, None);
            let x = signs(inputs * batch, 7 + batch as u64, None);
            let want = reference(&w, &x, outputs, inputs, batch);
            let packed = PackedWeights::default();
            let ws = packed.get(&Arc::new(w.clone()), outputs, inputs).unwrap();
            assert_eq!(product(&ws, &x, (outputs, inputs, batch)), Some(want));
            // Every path, not only the one this CPU picks.
            let words = inputs.div_ceil(64);
            let xs = pack_columns(&x, inputs, batch, words).unwrap();
            let ws = pack_rows(&w, outputs, inputs, words).unwrap();
            let mut portable = vec![0.0; outputs * batch];
            mismatches_portable(&ws, &xs, words, &mut portable);
            for kernel in Popcount::supported() {
                let mut counts = vec![0.0; outputs * batch];
                let (ws, xs) = (
                    kernel.layout(ws.clone(), words),
                    kernel.layout(xs.clone(), words),
                );
                kernel.mismatches(&ws, &xs, words, &mut counts);
                assert_eq!(portable, counts, "{kernel:?} {outputs}x{inputs}x{batch}");
            }
        }
    }

    /// A band's words spelled out bit by bit: bit i of column c's word is
    /// x[rows.start + i][c] > 0; `None` if one of them is 0 or NaN.
    fn band_by_bits(x: &[f32], rows: std::ops::Range<usize>, cols: usize) -> Option<Vec<u64>> {
        let mut words = vec![0u64; cols];
        for (i, k) in rows.enumerate() {
            for (c, word) in words.iter_mut().enumerate() {
                let v = x[k * cols + c];
                if v.abs() > 0.0 {
                    *word |= u64::from(v > 0.0) << i;
                } else {
                    return None;
                }
            }
        }
        Some(words)
    }

    /// Both band packings give the words spelled out bit by bit, on bands
    /// of 1 to 64 rows from inside a taller matrix, widths around the
    /// AVX-512 path's groups of 16 columns, and with one value 0, -0 or NaN.
    #[test]
    fn band_packings_agree_bit_by_bit() {
        let (height, mut seed) = (70, 3);
        for cols in [1, 7, 8, 9, 15, 16, 17, 33, 100] {
            for (start, len) in [(0, 64), (3, 1), (5, 37), (6, 64), (64, 6)] {
                seed += 1;
                let mut x = signs(height * cols, seed, None);
                let rows = start..start + len;
                let want = band_by_bits(&x, rows.clone(), cols);
                assert!(want.is_some());
                assert_eq!(
                    plain_pack_band(&x, rows.clone(), cols),
                    want,
                    "{cols} {rows:?}"
                );
                assert_eq!(pack_band(&x, rows.clone(), cols), want, "{cols} {rows:?}");
                for bad in [0.0, -0.0, f32::NAN] {
                    let at = (start + len / 2) * cols + cols / 2;
                    let kept = std::mem::replace(&mut x[at], bad);
                    assert_eq!(plain_pack_band(&x, rows.clone(), cols), None);
                    assert_eq!(
                        pack_band(&x, rows.clone(), cols),
                        None,
                        "{bad} in {cols} {rows:?}"
                    );
                    x[at] = kept;
                }
            }
        }
    }

    #[test]
    fn sign_bytes_are_the_bits_on_every_length_and_odd_value() {
        let odd = [
            0.0f32,
            -0.0,
            f32::NAN,
            -1.5,
            2.0,
            f32::INFINITY,
            -1e-30,
            3e-30,
        ];
        for len in 0..=70 {
            for bad in [None, Some(len / 2)] {
                let row: Vec<f32> = (0..len)
                    .map(|i| match bad {
                        Some(b) if i == b => odd[i % 3],
                        _ => odd[3 + i % 5],
                    })
                    .collect();
                // Bit j of byte g: row[8 g + j] > 0, spelled out.
                let mut want = vec![0u8; len.div_ceil(8)];
                for (i, &v) in row.iter().enumerate() {
                    want[i / 8] |= u8::from(v > 0.0) << (i % 8);
                }
                let signed = bad.is_none() || len == 0;
                let mut bytes = vec![0xffu8; len.div_ceil(8)];
                assert_eq!(sign_bytes(&row, &mut bytes), signed, "length {len}");
                assert_eq!(bytes, want, "length {len}, {bad:?}");
            }
        }
    }

    #[test]
    fn bit_squares_transpose() {
        let m = 0x0102_0408_1020_4080_u64 | 0x0300;
        let slow = (0..64).fold(0u64, |t, b| t | (m >> (8 * (b % 8) + b / 8) & 1) << b);
        assert_eq!(transpose_bits(m), slow);
        assert_eq!(transpose_bits(transpose_bits(m)), m);
    }

    #[test]
    fn a_zero_weight_or_input_falls_back() {
        let (outputs, inputs, batch) = (4, 70, 3);
        let packed = PackedWeights::default();
        let w = Arc::new(signs(outputs * inputs, 3, Some(69)));
        assert!(packed.get(&w, outputs, inputs).is_none());
        let w = Arc::new(signs(outputs * inputs, 3, None));
        let ws = packed.get(&w, outputs, inputs).unwrap();
        let x = signs(inputs * batch, 4, Some(100));
        assert!(product(&ws, &x, (outputs, inputs, batch)).is_none());
        let mut x = signs(inputs * batch, 4, None);
        x[5] = f32::NAN;
        assert!(product(&ws, &x, (outputs, inputs, batch)).is_none());
        assert_eq!(product(&ws, &[], (outputs, inputs, 0)), Some(vec![]));
    }

    /// `w`'s signs packed and laid out as `PackedWeights` keeps them.
    fn laid_out(w: &[f32], outputs: usize, inputs: usize) -> Vec<u64> {
        let words = inputs.div_ceil(64);
        Popcount::detect().layout(pack_rows(w, outputs, inputs, words).unwrap(), words)
    }

    #[test]
    fn packed_weights_are_reused_only_for_the_same_copy() {
        let packed = PackedWeights::default();
        let w = Arc::new(signs(2 * 5, 1, None));
        let first = packed.get(&w, 2, 5).unwrap();
        assert!(Arc::ptr_eq(&first, &packed.get(&w, 2, 5).unwrap()));
        let flipped = Arc::new(w.iter().map(|v| -v).collect::<Vec<_>>());
        let second = packed.get(&flipped, 2, 5).unwrap();
        assert_eq!(*second, laid_out(&flipped, 2, 5));
        assert_eq!(
            pack_rows(&flipped, 2, 5, 1).unwrap()[0],
            !pack_rows(&w, 2, 5, 1).unwrap()[0] & 0b11111
        );
        assert!(packed.clone().slot.lock().unwrap().is_none());
    }

    /// Packing holds the host copy weakly: the optimizer can still take it
    /// back without a copy, and a new copy is packed again.
    #[test]
    fn packing_leaves_the_host_copy_to_its_parameter() {
        let packed = PackedWeights::default();
        let w = Arc::new(signs(3 * 70, 2, None));
        let first = packed.get(&w, 3, 70).unwrap();
        let mut values = Arc::try_unwrap(w).expect("the packer holds no strong reference");
        values.iter_mut().for_each(|v| *v = -*v);
        let second = packed.get(&Arc::new(values.clone()), 3, 70).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(*second, laid_out(&values, 3, 70));
        assert_ne!(first, second);
    }
}
