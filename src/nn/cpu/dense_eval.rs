//! A dense network's evaluation on host buffers: the first layer reads the
//! batch as the data stores it (example after example) and every layer's
//! output stays on the host for the next. The tensor path transposes each
//! batch into a fresh buffer, uploads it, and copies every layer's input
//! off its tensor and its output onto one; this path does none of that and
//! computes the same products in the same order, so it gives the same bits.

use std::sync::Arc;

use dfdx::prelude::*;

use super::product::on_kernel;

/// One dense layer as the host path reads it.
pub(crate) struct DenseLayer {
    /// W (outputs × inputs, row-major): the parameter's host copy.
    pub(crate) weight: Arc<Vec<f32>>,
    /// The bias, one per output.
    pub(crate) bias: Arc<Vec<f32>>,
    /// Whether a ReLU follows.
    pub(crate) relu: bool,
}

/// The logits (classes × n, row-major) of the `n` examples stored one
/// after another in `examples`, through `layers` on our kernel; `None`
/// where device `D`'s products do not run on it (then the caller takes the
/// tensor path). Panics if the layers' sizes do not chain.
pub(crate) fn dense_logits<D: Device<f32>>(
    layers: &[DenseLayer],
    examples: &[f32],
    n: usize,
) -> Option<Vec<f32>> {
    on_host::<D, _>(layers, examples, n, run)
}

/// `run(layers, examples, n)` where device `D`'s products run on our kernel
/// and there are layers and examples; `None` otherwise (the tensor path).
/// The guard of every host evaluation path (this one and `binary_eval`).
pub(super) fn on_host<D: Device<f32>, L>(
    layers: &[L],
    examples: &[f32],
    n: usize,
    run: impl FnOnce(&[L], &[f32], usize) -> Option<Vec<f32>>,
) -> Option<Vec<f32>> {
    if !on_kernel::<D>() || layers.is_empty() || n == 0 {
        return None;
    }
    run(layers, examples, n)
}

#[cfg(target_arch = "x86_64")]
fn run(layers: &[DenseLayer], examples: &[f32], n: usize) -> Option<Vec<f32>> {
    use super::bias_act::add_bias_act;
    use super::product::{forward_product, LayerInput};
    let mut inputs = examples.len() / n;
    let mut h = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let outputs = layer.bias.len();
        assert_eq!(layer.weight.len(), outputs * inputs, "layer {i}'s shape");
        let x = if i == 0 {
            LayerInput::ExampleMajor(examples)
        } else {
            LayerInput::FeatureMajor(&h)
        };
        let mut z = forward_product(&layer.weight, (outputs, inputs, n), x, true);
        add_bias_act(&mut z, n, &layer.bias, layer.relu);
        (h, inputs) = (z, outputs);
    }
    Some(h)
}

/// Never called: `on_kernel` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
fn run(_: &[DenseLayer], _: &[f32], _: usize) -> Option<Vec<f32>> {
    None
}
