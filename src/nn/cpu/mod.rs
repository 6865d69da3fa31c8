//! `cpu`: the CPU kernels behind the layers and optimizers. Custom dfdx ops
//! whose forward and backward passes run as rayon loops over host buffers
//! (convolutions in tiles, pooling, bias + ReLU, masks, dendritic gating, the straight-through
//! sign, a binarized layer's batch norm + sign), Adam's update on a parameter's host copy, and the matrix products
//! (`product`, on our `sgemm` where the CPU has AVX-512 or AVX2, or `sparse` for a
//! weight pruned below `SPARSE_BELOW` density, which stores only its kept
//! values), the bit-packed XNOR products of binarized evaluation, k-WTA's choice of
//! winners (`winners`), a dense or binarized network's
//! evaluation on host buffers (`dense_eval`, `binary_eval`), and the transpose of
//! each batch into the feature-major layout the layers read. Callers check
//! `on_cpu::<D>()`, or call an op that does, and keep dfdx's generic path on
//! other devices. This module holds no layer or model state, never lets the
//! thread count change a result (fixed chunks, fixed summation orders), and
//! never prints or reads files.

mod adam;
mod batch_norm;
mod bias_act;
mod binary_eval;
mod conv;
mod dense_eval;
mod gating;
mod heap;
mod im2col;
mod mask;
mod op;
mod par;
mod pool;
mod product;
mod row_stats;
#[cfg(target_arch = "x86_64")]
mod sgemm;
mod sign;
mod simd;
mod sparse;
#[cfg(target_arch = "x86_64")]
mod sparse_input;
mod sparse_kernels;
mod transpose;
mod winners;
mod xnor;

pub(crate) use adam::{adam_update, for_each_moment_chunk};
pub(crate) use batch_norm::batch_norm_sign;
pub(crate) use bias_act::bias_act;
pub(crate) use binary_eval::{binary_logits, BinaryLayer};
pub(crate) use conv::conv2d;
pub(crate) use dense_eval::{dense_logits, DenseLayer};
pub(crate) use gating::{expand_columns, gate_channels, segment_activations, winning_segments};
pub use heap::keep_freed_buffers;
pub(crate) use im2col::ConvGeom;
pub(crate) use mask::{expand_kept, mask_gradient, mul_mask};
pub(crate) use op::{on_cpu, to_host, upload};
pub use par::on_pool;
pub(crate) use pool::max_pool2;
pub use product::{cpu_products, same_products};
pub(crate) use product::{
    matmul, matmul_bias_act, matmul_no_input_grad, on_kernel, sign_matmul, signs_on_kernel,
    sparse_matmul_bias_act,
};
pub(crate) use sign::sign_ste;
#[cfg(test)]
pub(crate) use sparse::SPARSE_BELOW;
pub(crate) use sparse::{relayout, relayout_buffer, SparseLayout};
pub(crate) use transpose::gather_transposed;
pub(crate) use winners::winner_mask;
pub(crate) use xnor::{xnor_matmul, PackedWeights};
