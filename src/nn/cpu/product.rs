//! The layers' matrix products and their backward passes: dense layers,
//! dendritic segments, and layers whose weight is pruned below `SPARSE_BELOW`
//! density (`sparse_matmul_bias_act`); and `tile_product`, the single-threaded product
//! that the convolution (`conv`) runs on each of its tiles.
//!
//! On a CPU with AVX-512, or AVX2 and FMA, they run on our kernel (`sgemm`) over host buffers:
//! a weight's values come from its `Param`'s host copy (so no step copies a
//! weight matrix off its tensor), Wᵀ and xᵀ are read in place as column-major
//! operands, and a layer whose input is data skips the
//! input gradient. Elsewhere dfdx's `matmul` (and on other CPUs the same
//! skipping of the input gradient). On our kernel, an evaluation's input
//! that is mostly zeros (after k-WTA) is multiplied by its nonzero values
//! only (`sparse_input`), with the same bits.

use std::sync::Arc;

use dfdx::prelude::*;

use super::bias_act::{add_bias_act, add_bias_grad, bias_act_backward};
use super::im2col::PaddedBand;
use super::op::{grad_mut, on_cpu, put_grad, take_grad, to_host, upload};
use super::par::{for_each_chunk, PAR_MIN};
use super::sparse::{self, SparseLayout};
use crate::nn::param::Param;
use crate::nn::Matrix;

/// Set to `gemm` to keep dfdx's products on a CPU our kernel runs on: to
/// compare speeds, or to get the bits a CPU without AVX2 gets.
const KERNEL_ENV: &str = "REPRO_CPU_KERNEL";

/// Whether the CPU products run on our kernel: the CPU has AVX-512, or AVX2
/// and FMA, and `REPRO_CPU_KERNEL` does not say `gemm`. Decided once per
/// process.
fn kernel_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    #[cfg(target_arch = "x86_64")]
    let available = super::sgemm::available;
    #[cfg(not(target_arch = "x86_64"))]
    let available = || false;
    *ENABLED.get_or_init(|| available() && std::env::var(KERNEL_ENV).map_or(true, |v| v != "gemm"))
}

/// What computes the matrix products on the CPU in this process, as
/// recorded in manifests: `repro-sgemm` (our kernel, on AVX-512 or AVX2: the
/// same bits) or `gemm` (dfdx's).
pub fn cpu_products() -> &'static str {
    if kernel_enabled() {
        KERNEL_LABEL
    } else {
        "gemm"
    }
}

/// `cpu_products` for our kernel.
const KERNEL_LABEL: &str = "repro-sgemm";

/// What manifests written before the AVX2 kernel existed call our kernel:
/// the same summation order, so the same bits, as `repro-sgemm`.
const OLD_KERNEL_LABEL: &str = "avx512-kernel";

/// Whether two manifests' `cpu_products` name the same summation order,
/// and so the same bits for the same thread count.
pub fn same_products(a: &str, b: &str) -> bool {
    let order = |label: &str| {
        if label == OLD_KERNEL_LABEL {
            KERNEL_LABEL
        } else {
            label
        }
        .to_string()
    };
    order(a) == order(b)
}

/// Whether the products of device `D` run on our kernel.
pub(crate) fn on_kernel<D: Device<f32>>() -> bool {
    on_cpu::<D>() && kernel_enabled()
}

/// `w`'s values on the host: the host copy of `param` when `w` is that
/// parameter's value as it is (reshaped) and it stores every entry (is not
/// sparse), otherwise a copy of `w`.
pub(super) fn weight_values<D: Device<f32>>(
    w: &Matrix<D>,
    param: Option<&Param<D>>,
) -> Arc<Vec<f32>> {
    match param.filter(|p| p.sparse_layout().is_none()) {
        Some(p) => {
            let values = p.host_values();
            debug_assert_eq!(values.len(), w.shape().num_elements());
            values
        }
        None => Arc::new(to_host(w)),
    }
}

/// `w · x` for a layer: W (out, in), x (in, batch). `param` is the parameter
/// `w` comes from, if `w` is its value unchanged (not e.g. binarized). On the
/// kernel an input without a tape gets no gradient; dfdx's `matmul` computes
/// one regardless (`matmul_no_input_grad` avoids that on any CPU).
pub(crate) fn matmul<D: Device<f32>, T, R>(
    w: Matrix<D, T>,
    param: Option<&Param<D>>,
    x: Matrix<D, R>,
) -> Matrix<D, T>
where
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    if !on_kernel::<D>() {
        return w.matmul(x);
    }
    kernel_matmul(w, param, x, None)
}

/// `bias_act(matmul(w, param, x), bias, relu)`: a dense layer. On our kernel
/// one op, which adds the bias and applies the ReLU to the product's buffer
/// and takes its backward from the masked output gradient, so the product
/// never becomes a tensor of its own: two copies and a gradient buffer of
/// the layer's output fewer, with the same bits. An input without a tape
/// gets no gradient (as `matmul_no_input_grad`) on every CPU.
pub(crate) fn matmul_bias_act<D: Device<f32>, T, R>(
    w: Matrix<D, T>,
    param: Option<&Param<D>>,
    x: Matrix<D, R>,
    bias: Tensor<(usize,), f32, D, T>,
    relu: bool,
) -> Matrix<D, T>
where
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    if on_kernel::<D>() {
        return kernel_matmul(w, param, x, Some(Tail { bias, relu }));
    }
    let z = if R::OWNS_TAPE {
        matmul(w, param, x)
    } else {
        matmul_no_input_grad(w, param, x.split_tape().0)
    };
    super::bias_act(z, bias, relu)
}

/// `matmul` on our kernel, followed by `bias_act`'s work when there is a
/// `tail` (`matmul_bias_act`).
fn kernel_matmul<D: Device<f32>, T, R>(
    w: Matrix<D, T>,
    param: Option<&Param<D>>,
    x: Matrix<D, R>,
    tail: Option<Tail<D, T>>,
) -> Matrix<D, T>
where
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    let (w, wt) = w.split_tape();
    let (x, xt) = x.split_tape();
    let mut tape = wt.merge(xt);
    let tail = tail.map(|Tail { bias, relu }| {
        let (bias, bt) = bias.split_tape();
        tape = std::mem::take(&mut tape).merge(bt);
        Tail { bias, relu }
    });
    let values = weight_values(&w, param);
    let xh = to_host(&x);
    let input_grad = if R::OWNS_TAPE {
        InputGrad::Add(x)
    } else {
        InputGrad::Skip
    };
    kernel_product(w, values, xh, tape, input_grad, tail)
}

/// Whether `sign_matmul` can multiply by the signs of `param` on device `D`:
/// on our kernel, for a weight that stores every entry (is not sparse).
pub(crate) fn signs_on_kernel<D: Device<f32>>(param: &Param<D>) -> bool {
    on_kernel::<D>() && param.sparse_layout().is_none()
}

/// sign(W) · x for a binarized layer, with the identity straight-through
/// estimator: W's gradient is sign(W)'s, dY · xᵀ. `w` is `param`'s value
/// (`effective`, reshaped), the values of which it carries the tape for. The
/// signs come from the parameter's host copy in one pass, where `sign_ste`
/// then `matmul` would make a sign(W) tensor, a copy of it for the product,
/// a gradient buffer for it and a pass adding that to W's: the same bits,
/// without those four passes over W. Only where `signs_on_kernel`.
pub(crate) fn sign_matmul<D: Device<f32>, T, R>(
    w: Matrix<D, T>,
    param: &Param<D>,
    x: Matrix<D, R>,
) -> Matrix<D, T>
where
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    debug_assert!(
        signs_on_kernel::<D>(param),
        "sign_matmul is our kernel's path"
    );
    let (w, wt) = w.split_tape();
    let (x, xt) = x.split_tape();
    let values = param.host_values();
    debug_assert_eq!(values.len(), w.shape().num_elements());
    let signs = signs_of(&values);
    let xh = to_host(&x);
    let input_grad = if R::OWNS_TAPE {
        InputGrad::Add(x)
    } else {
        InputGrad::Skip
    };
    kernel_product(w, Arc::new(signs), xh, wt.merge(xt), input_grad, None)
}

/// sign(v) (sign(0) = 0) of every value, in parallel chunks: the weights
/// a binarized layer multiplies by.
pub(super) fn signs_of(values: &[f32]) -> Vec<f32> {
    let mut signs = vec![0.0f32; values.len()];
    for_each_chunk(&mut signs, PAR_MIN, |i, chunk| {
        for (s, &v) in chunk.iter_mut().zip(&values[i * PAR_MIN..]) {
            *s = super::sign::sign(v);
        }
    });
    signs
}

/// `w · x` where only `w` (which carries the tape) needs a gradient: the
/// backward computes dW = dY · xᵀ and skips dX = Wᵀ · dY. For a layer whose
/// input is data.
pub(crate) fn matmul_no_input_grad<D: Device<f32>, T: Tape<f32, D>>(
    w: Matrix<D, T>,
    param: Option<&Param<D>>,
    x: Matrix<D>,
) -> Matrix<D, T> {
    if on_kernel::<D>() {
        return kernel_matmul(w, param, x, None);
    }
    if !on_cpu::<D>() {
        return w.matmul(x);
    }
    let (w, mut tape) = w.split_tape();
    let out = w.clone().matmul(x.clone());
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &y)?;
            let gy_t = upload(x.device(), &gy, *y.shape());
            let gw = to_host(&gy_t.matmul(x.clone().permute::<_, Axes2<1, 0>>()));
            let acc = grad_mut(grads, &w)?;
            for_each_chunk(acc, PAR_MIN, |i, a| {
                for (a, b) in a.iter_mut().zip(&gw[i * PAR_MIN..]) {
                    *a += b;
                }
            });
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}

/// A matrix operand of `tile_product` read through strides: element
/// (r, c) at `data[r * rows + c * cols]`.
#[derive(Clone, Copy)]
pub(super) struct Strided<'a> {
    /// The values.
    pub(super) data: &'a [f32],
    /// The stride between rows.
    pub(super) rows: usize,
    /// The stride between columns.
    pub(super) cols: usize,
}

/// C (m × n, row-major, row stride `ldc`) = A (m × k) · B (k × n), or C +=
/// A · B with `accumulate`, for one tile of a convolution: on our kernel
/// where it runs, otherwise on `gemm` (dfdx's) on the calling thread, as
/// the tiles themselves run in parallel. The summation order depends only
/// on the shapes, never on the number of threads.
pub(super) fn tile_product(
    (m, n, k): (usize, usize, usize),
    a: Strided,
    b: Strided,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "C too short");
    if k == 0 {
        if !accumulate {
            c.chunks_mut(ldc).take(m).for_each(|r| r[..n].fill(0.0));
        }
        return;
    }
    for (x, r, cl) in [(&a, m, k), (&b, k, n)] {
        assert!(
            x.data.len() > (r - 1) * x.rows + (cl - 1) * x.cols,
            "operand too short"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if kernel_enabled() {
        use super::sgemm::{sgemm, Operand};
        fn operand(x: Strided<'_>) -> Operand<'_> {
            if x.cols == 1 {
                Operand::row_major(x.data, x.rows)
            } else {
                debug_assert_eq!(x.rows, 1, "one stride must be 1");
                Operand::col_major(x.data, x.cols)
            }
        }
        return sgemm((m, n, k), operand(a), operand(b), c, ldc, accumulate);
    }
    // SAFETY: the asserts above keep every read inside A and B and every
    // write inside C; C does not alias A or B (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cols as isize,
            a.rows as isize,
            b.data.as_ptr(),
            b.cols as isize,
            b.rows as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Whether convolution tiles read their columns from a `PaddedBand`
/// (`band_product`): only our kernel packs its panels through offsets.
pub(super) fn band_products() -> bool {
    kernel_enabled()
}

/// `tile_product` with B the im2col columns of `band` (k × n), or with
/// `transposed` their transpose (n × k); the same bits as `tile_product` on
/// the columns stored. Only where `band_products()`.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub(super) fn band_product(
    (m, n, k): (usize, usize, usize),
    a: Strided,
    band: &PaddedBand,
    transposed: bool,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::sgemm::{sgemm_gathered, Gathered, Operand};
        assert!(a.cols == 1, "A row-major");
        let b = Gathered {
            data: &band.data,
            rows: &band.rows,
            groups: &band.groups,
        };
        let a = Operand::row_major(a.data, a.rows);
        sgemm_gathered((m, n, k), a, b, transposed, c, ldc, accumulate)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("band products need our kernel, which runs only on x86-64")
}

/// `W x + b`, then a ReLU if `relu`, on the CPU for a layer whose weight
/// `param` is sparse with `layout`, skipping the masked weights: the
/// forward pass, the input gradient (only when x is on a tape) and the
/// weight gradient, one entry per kept weight as the parameter stores them.
/// The bias and ReLU run in the product's pass, as in `matmul_bias_act`;
/// the tape is `T`'s, as from `param.effective::<T>()`, merged with the
/// bias's.
pub(crate) fn sparse_matmul_bias_act<D: Device<f32>, T, R>(
    param: &Param<D>,
    layout: Arc<SparseLayout>,
    x: Matrix<D, R>,
    bias: Tensor<(usize,), f32, D, T>,
    relu: bool,
) -> Matrix<D, T>
where
    T: Tape<f32, D> + Merge<R>,
    R: Tape<f32, D>,
{
    debug_assert!(on_cpu::<D>(), "sparse_matmul_bias_act is the CPU path");
    let (rows, cols) = layout.shape();
    let (x, xt) = x.split_tape();
    let (bias, bt) = bias.split_tape();
    debug_assert_eq!(x.shape().0, cols);
    let n = x.shape().1;
    let values = param.host_values();
    let xh = to_host(&x);
    let mut z = sparse::forward(&layout, &values, &xh, n);
    add_bias_act(&mut z, n, &to_host(&bias), relu);
    let y = upload(x.device(), &z, (rows, n));
    let mut tape = bt.merge(xt);
    if T::OWNS_TAPE {
        let (yc, w) = (y.clone(), param.value());
        // The ReLU's derivative is read from its outputs.
        let outputs = if relu { z } else { Vec::new() };
        tape.add_backward_op(move |grads| {
            // dY, made dZ (the product's gradient) in place.
            let mut gy = take_grad(grads, &yc)?;
            let sums = bias_act_backward(&mut gy, &outputs, n, relu);
            add_bias_grad(grad_mut(grads, &bias)?, &sums);
            sparse::weight_grad(&layout, &gy, &xh, n, grad_mut(grads, &w)?);
            if R::OWNS_TAPE {
                sparse::add_input_grad(&layout, &values, &gy, n, grad_mut(grads, &x)?);
            }
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// What a product's backward pass does with the input gradient Wᵀ · dY.
enum InputGrad<D: Device<f32>> {
    /// The input is data: not computed.
    Skip,
    /// Added to this tensor's gradient.
    Add(Matrix<D>),
}

/// The bias a dense layer adds to its product, and whether a ReLU follows.
struct Tail<D: Device<f32>, T = NoneTape> {
    bias: Tensor<(usize,), f32, D, T>,
    relu: bool,
}

/// y = W · X on the kernel, W (out, k) from `values` and X (k, n) row-major
/// in `x`, then with `tail` its bias and ReLU, recorded on `tape` with W's
/// gradient dW += dZ · Xᵀ, the input gradient Wᵀ · dZ as `input_grad` says
/// and the bias's, where dZ is dY masked by the ReLU's derivative.
#[cfg(target_arch = "x86_64")]
fn kernel_product<D: Device<f32>, T: Tape<f32, D>>(
    w: Matrix<D>,
    values: Arc<Vec<f32>>,
    x: Vec<f32>,
    mut tape: T,
    input_grad: InputGrad<D>,
    tail: Option<Tail<D>>,
) -> Matrix<D, T> {
    use super::sgemm::{sgemm, Operand};
    let (out, k) = *w.shape();
    let n = x.len() / k;
    let mut z = forward_product(
        &values,
        (out, k, n),
        LayerInput::FeatureMajor(&x),
        !T::OWNS_TAPE,
    );
    if let Some(t) = &tail {
        add_bias_act(&mut z, n, &to_host(&t.bias), t.relu);
    }
    let y = upload(w.device(), &z, (out, n));
    if T::OWNS_TAPE {
        let yc = y.clone();
        // The ReLU's derivative is read from its outputs.
        let outputs = if tail.as_ref().is_some_and(|t| t.relu) {
            z
        } else {
            Vec::new()
        };
        tape.add_backward_op(move |grads| {
            // dY, made dZ (the product's gradient) in place by the tail.
            let mut gy = take_grad(grads, &yc)?;
            if let Some(t) = &tail {
                let sums = bias_act_backward(&mut gy, &outputs, n, t.relu);
                add_bias_grad(grad_mut(grads, &t.bias)?, &sums);
            }
            // dW += dZ · Xᵀ, with Xᵀ read from X column-major.
            let (a, b) = (Operand::row_major(&gy, n), Operand::col_major(&x, n));
            sgemm((out, k, n), a, b, grad_mut(grads, &w)?, k, true);
            // dX = Wᵀ · dZ, with Wᵀ read from W column-major.
            let (a, b) = (Operand::col_major(&values, k), Operand::row_major(&gy, n));
            match &input_grad {
                InputGrad::Skip => {}
                InputGrad::Add(x) => sgemm((k, n, out), a, b, grad_mut(grads, x)?, n, true),
            }
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// A layer's input X (k × n): k features of n examples.
#[derive(Clone, Copy)]
pub(super) enum LayerInput<'a> {
    /// Row-major k × n, as layers pass their outputs on.
    FeatureMajor(&'a [f32]),
    /// Stored transposed, n × k: the examples one after another, as data is.
    ExampleMajor(&'a [f32]),
}

/// Z (out × n, row-major) = W (out × k, row-major `w`) · X on our kernel,
/// as a dense layer's forward pass computes it. A `tapeless` X that is
/// mostly zeros is multiplied by its nonzero values only (`sparse_input`,
/// the same bits); training keeps the dense product, because per step
/// transposing W costs what skipping saves at a batch of 256 (measured on
/// sparse-2048). The layout of X changes how B is packed, not the sums.
#[cfg(target_arch = "x86_64")]
pub(super) fn forward_product(
    w: &[f32],
    (out, k, n): (usize, usize, usize),
    x: LayerInput,
    tapeless: bool,
) -> Vec<f32> {
    use super::sgemm::{sgemm, Operand};
    use super::sparse_input;
    use super::transpose::transposed;
    let mut z = vec![0.0f32; out * n];
    let sparse = tapeless
        && match x {
            LayerInput::FeatureMajor(x) => sparse_input::skips_zeros(x),
            LayerInput::ExampleMajor(x) => sparse_input::skips_zeros_transposed(x, k, n),
        };
    if sparse {
        let feature_major;
        let x = match x {
            LayerInput::FeatureMajor(x) => x,
            LayerInput::ExampleMajor(x) => {
                feature_major = transposed(x, n, k);
                &feature_major
            }
        };
        sparse_input::product(w, (out, k, n), x, &mut z);
    } else {
        let b = match x {
            LayerInput::FeatureMajor(x) => Operand::row_major(x, n),
            LayerInput::ExampleMajor(x) => Operand::col_major(x, k),
        };
        sgemm((out, n, k), Operand::row_major(w, k), b, &mut z, n, false);
    }
    z
}

/// Never called: `on_kernel` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
fn kernel_product<D: Device<f32>, T: Tape<f32, D>>(
    _: Matrix<D>,
    _: Arc<Vec<f32>>,
    _: Vec<f32>,
    _: T,
    _: InputGrad<D>,
    _: Option<Tail<D>>,
) -> Matrix<D, T> {
    unreachable!("our kernel runs only on x86-64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::param::{ParamInfo, ParamKind};
    use crate::nn::testing::assert_close;

    type Taped = OwnedTape<f32, Cpu>;

    /// A result whose manifest says `avx512-kernel` was summed as
    /// `repro-sgemm` sums, so a shared cache may hand it to either.
    #[test]
    fn the_old_kernel_label_names_the_same_sums() {
        assert!(same_products("avx512-kernel", "repro-sgemm"));
        assert!(same_products("repro-sgemm", "avx512-kernel"));
        assert!(same_products("gemm", "gemm"));
        assert!(!same_products("gemm", "repro-sgemm"));
        assert!(!same_products("avx512-kernel", "gemm"));
    }

    /// A dense `out` × `inputs` weight of standard normal values.
    fn random_weight(dev: &Cpu, out: usize, inputs: usize) -> Param<Cpu> {
        let info = ParamInfo {
            name: "fc.weight".into(),
            kind: ParamKind::FcWeight,
            shape: vec![out, inputs],
        };
        let values: Matrix<Cpu> = dev.sample_normal_like(&(out, inputs));
        Param::new(info, values.as_vec(), dev)
    }

    /// Shapes that are not multiples of the kernels' 12x32 and 6x16 tiles,
    /// with and without the parameter's host copy, against dfdx's matmul; on
    /// a CPU without AVX2 both sides are dfdx's.
    #[test]
    fn products_and_gradients_match_dfdx() {
        let dev = Cpu::default();
        let (out, inputs, batch) = (37, 70, 45);
        let param = random_weight(&dev, out, inputs);
        let x: Matrix<Cpu> = dev.sample_normal_like(&(inputs, batch));
        let r: Matrix<Cpu> = dev.sample_normal_like(&(out, batch));
        let w = || param.effective::<Taped>().reshape_like(&(out, inputs));
        let grads_of = |y: Matrix<Cpu, Taped>, with_dx: bool| {
            let yv = y.as_vec();
            let grads = (y * r.clone()).sum::<Rank0, _>().backward();
            let dx = if with_dx {
                grads.get(&x).as_vec()
            } else {
                vec![]
            };
            (yv, grads.get(&param.value()).as_vec(), dx)
        };
        let (y0, dw0, dx0) = grads_of(w().matmul(x.retaped::<Taped>()), true);
        for kept in [Some(&param), None] {
            let (y, dw, dx) = grads_of(matmul(w(), kept, x.retaped::<Taped>()), true);
            assert_close(&y, &y0, "y");
            assert_close(&dw, &dw0, "dw");
            assert_close(&dx, &dx0, "dx");
            let (y, dw, _) = grads_of(matmul_no_input_grad(w(), kept, x.clone()), false);
            assert_close(&y, &y0, "first-layer y");
            assert_close(&dw, &dw0, "first-layer dw");
        }
    }

    /// `matmul_bias_act` gives the bits of `matmul` (or, for an input
    /// without a tape, `matmul_no_input_grad`) then `bias_act`: the output
    /// and the gradients of W, the bias and the input, with and without the
    /// ReLU, on shapes that are not multiples of the tiles, on either device
    /// path (our kernel where the CPU runs it).
    #[test]
    fn fused_layers_give_the_bits_of_product_then_bias_act() {
        let dev = Cpu::default();
        let bits = |v: Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for (out, inputs, batch) in [(37, 70, 45), (19, 300, 7)] {
            let param = random_weight(&dev, out, inputs);
            let x: Matrix<Cpu> = dev.sample_normal_like(&(inputs, batch));
            let b: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(out,));
            let r: Matrix<Cpu> = dev.sample_normal_like(&(out, batch));
            for relu in [false, true] {
                for input_grad in [false, true] {
                    let run = |fused: bool| {
                        let w = param.effective::<Taped>().reshape_like(&(out, inputs));
                        let bt = b.retaped::<Taped>();
                        let y: Matrix<Cpu, Taped> = match (fused, input_grad) {
                            (true, true) => {
                                matmul_bias_act(w, Some(&param), x.retaped::<Taped>(), bt, relu)
                            }
                            (true, false) => matmul_bias_act(w, Some(&param), x.clone(), bt, relu),
                            (false, true) => super::super::bias_act(
                                matmul(w, Some(&param), x.retaped::<Taped>()),
                                bt,
                                relu,
                            ),
                            (false, false) => super::super::bias_act(
                                matmul_no_input_grad(w, Some(&param), x.clone()),
                                bt,
                                relu,
                            ),
                        };
                        let yv = y.as_vec();
                        let grads = (y * r.clone()).sum::<Rank0, _>().backward();
                        let dx = if input_grad {
                            grads.get(&x).as_vec()
                        } else {
                            vec![]
                        };
                        let dw = grads.get(&param.value()).as_vec();
                        [yv, dw, grads.get(&b).as_vec(), dx].map(bits)
                    };
                    let (fused, separate) = (run(true), run(false));
                    for (name, (f, s)) in ["y", "dW", "db", "dx"]
                        .iter()
                        .zip(fused.iter().zip(&separate))
                    {
                        assert_eq!(f, s, "{name}: {out}x{inputs}, batch {batch}, relu {relu}, input grad {input_grad}");
                    }
                    if relu {
                        assert!(fused[0].contains(&0), "some outputs are cut by the ReLU");
                    }
                }
            }
        }
    }

    /// `sign_matmul` gives the bits of `sign_ste` then `matmul`: the output,
    /// W's gradient (the identity estimator's) and the input's, with zero
    /// weights (whose sign is 0), for a batch within one 256-deep panel with
    /// another gradient of W added to it, and for a batch over two panels.
    #[test]
    fn sign_products_give_the_bits_of_the_sign_tensor_path() {
        let dev = Cpu::default();
        let (out, inputs) = (37, 70);
        let mut param = random_weight(&dev, out, inputs);
        let mut values = param.values();
        values.iter_mut().step_by(7).for_each(|v| *v = 0.0);
        param
            .set_values(&values)
            .expect("the values fit the weight");
        if !signs_on_kernel::<Cpu>(&param) {
            println!("SKIP: sign products run on our kernel, which this CPU lacks");
            return;
        }
        let bits = |v: Vec<f32>| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for (batch, other_gradient) in [(45, true), (300, false)] {
            let x: Matrix<Cpu> = dev.sample_normal_like(&(inputs, batch));
            let r: Matrix<Cpu> = dev.sample_normal_like(&(out, batch));
            let run = |fused: bool| {
                let w = param.effective::<Taped>().reshape_like(&(out, inputs));
                let y = if fused {
                    sign_matmul(w, &param, x.retaped::<Taped>())
                } else {
                    matmul(super::super::sign_ste(w, false), None, x.retaped::<Taped>())
                };
                let yv = y.as_vec();
                let mut loss = (y * r.clone()).sum::<Rank0, _>();
                if other_gradient {
                    loss = loss + param.effective::<Taped>().sum::<Rank0, _>();
                }
                let grads = loss.backward();
                (
                    bits(yv),
                    bits(grads.get(&param.value()).as_vec()),
                    bits(grads.get(&x).as_vec()),
                )
            };
            let (fused, plain) = (run(true), run(false));
            assert_eq!(fused.0, plain.0, "y, batch {batch}");
            assert_eq!(fused.1, plain.1, "dW, batch {batch}");
            assert_eq!(fused.2, plain.2, "dx, batch {batch}");
        }
    }

    /// Odd shapes, every mix of row- and column-major operands, with and
    /// without accumulation, against a plain triple loop.
    #[test]
    fn tile_products_match_a_plain_loop() {
        let (m, n, k, ldc) = (13, 37, 19, 41);
        let a: Vec<f32> = (0..m * k).map(|v| ((v * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| ((v * 5) % 13) as f32 - 6.0).collect();
        for (a_rm, b_rm, accumulate) in [
            (true, true, false),
            (true, false, true),
            (false, true, false),
            (false, false, true),
        ] {
            let strided = |data, rows, cols, row_major| {
                let (r, c) = if row_major { (cols, 1) } else { (1, rows) };
                Strided {
                    data,
                    rows: r,
                    cols: c,
                }
            };
            let (sa, sb) = (strided(&a[..], m, k, a_rm), strided(&b[..], k, n, b_rm));
            let mut c = vec![1.0f32; m * ldc];
            tile_product((m, n, k), sa, sb, &mut c, ldc, accumulate);
            for i in 0..m {
                for j in 0..n {
                    let dot: f32 = (0..k)
                        .map(|p| a[i * sa.rows + p * sa.cols] * b[p * sb.rows + j * sb.cols])
                        .sum();
                    let want = dot + if accumulate { 1.0 } else { 0.0 };
                    // Small integers: exact in any summation order.
                    assert_eq!(
                        c[i * ldc + j],
                        want,
                        "({i}, {j}) {a_rm} {b_rm} {accumulate}"
                    );
                }
                assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 1.0));
            }
        }
    }
}
