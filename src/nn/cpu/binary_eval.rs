//! A binarized network's evaluation on host buffers: the first layer reads
//! the batch as the data stores it (example after example), the hidden
//! layers after it multiply bit-packed (`xnor_matmul`), and every layer's
//! batch norm and sign run on the host buffer its product wrote. The tensor
//! path transposes each batch into a fresh buffer, then copies every
//! layer's activations off a tensor, into the packing buffer and back onto
//! a tensor; this path does none of that and computes the same products and
//! statistics in the same order, so it gives the same bits.

use std::sync::Arc;

use dfdx::prelude::*;

use super::dense_eval::on_host;
use super::xnor::PackedWeights;

/// One binarized layer (FC without bias, then batch norm on the batch's
/// statistics) as the host path reads it.
pub(crate) struct BinaryLayer<'a> {
    /// W (outputs × inputs, row-major): the parameter's host copy, of which
    /// the product uses the signs.
    pub(crate) weight: Arc<Vec<f32>>,
    /// The signs of `weight`, packed for XNOR products and as floats, kept
    /// between batches.
    pub(crate) packed: &'a PackedWeights,
    /// Batch norm's γ, one per output.
    pub(crate) gamma: Arc<Vec<f32>>,
    /// Batch norm's β, one per output.
    pub(crate) beta: Arc<Vec<f32>>,
}

/// The logits (classes × n, row-major) of the `n` examples stored one after
/// another in `examples`, through `layers` (every one but the last followed
/// by sign); `None` where device `D`'s products do not run on our kernel
/// (then the caller takes the tensor path). A layer whose weight or input
/// has a zero sign multiplies in floats, as the tensor path then does.
/// Panics if the layers' sizes do not chain.
pub(crate) fn binary_logits<D: Device<f32>>(
    layers: &[BinaryLayer],
    examples: &[f32],
    n: usize,
) -> Option<Vec<f32>> {
    on_host::<D, _>(layers, examples, n, run)
}

#[cfg(target_arch = "x86_64")]
fn run(layers: &[BinaryLayer], examples: &[f32], n: usize) -> Option<Vec<f32>> {
    use super::batch_norm::scale_shift_sign;
    use super::product::{forward_product, LayerInput};
    use super::row_stats::normalize_rows;
    use super::xnor::xnor_matmul;
    use crate::nn::norm::EPS;
    let mut inputs = examples.len() / n;
    let mut h = Vec::new();
    let last = layers.len() - 1;
    for (i, layer) in layers.iter().enumerate() {
        let outputs = layer.gamma.len();
        assert_eq!(layer.weight.len(), outputs * inputs, "layer {i}'s shape");
        let packed = (i > 0)
            .then(|| layer.packed.get(&layer.weight, outputs, inputs))
            .flatten()
            .and_then(|ws| {
                let mut z = Vec::new();
                xnor_matmul(&ws, &h, (outputs, inputs, n), &mut z).map(|()| z)
            });
        let mut z = packed.unwrap_or_else(|| {
            let x = if i == 0 {
                LayerInput::ExampleMajor(examples)
            } else {
                LayerInput::FeatureMajor(&h)
            };
            let signs = layer.packed.float_signs(&layer.weight);
            forward_product(&signs, (outputs, inputs, n), x, true)
        });
        normalize_rows(&mut z, n, EPS);
        scale_shift_sign(&mut z, n, (&layer.gamma, &layer.beta), i < last);
        (h, inputs) = (z, outputs);
    }
    Some(h)
}

/// Never called: `on_kernel` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
fn run(_: &[BinaryLayer], _: &[f32], _: usize) -> Option<Vec<f32>> {
    None
}
