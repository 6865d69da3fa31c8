//! The fully connected layer, `Linear`, on runtime-sized dfdx tensors.
//!
//! Activations flow through the whole network feature-major, shape
//! (features, batch), so a layer is `y = W x + b` with `W` stored [out, in]
//! as in PyTorch and no transposes; the tape comes from the parameters, so the
//! network input itself needs none.

use dfdx::prelude::*;

use super::init::Initializer;
use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// A fully connected layer `y = (W ⊙ M) x + b`.
#[derive(Debug, Clone)]
pub(crate) struct Linear<D: Device<f32>> {
    pub(crate) weight: Param<D>,
    pub(crate) bias: Param<D>,
    inputs: usize,
    outputs: usize,
}

impl<D: Device<f32>> Linear<D> {
    /// A layer named `name` (parameters `name.weight`, `name.bias`), drawing
    /// its weights then its biases from `init`.
    pub(crate) fn new(
        name: &str,
        kind: ParamKind,
        inputs: usize,
        outputs: usize,
        init: &mut Initializer,
        dev: &D,
    ) -> Self {
        let weight = Param::new(
            ParamInfo {
                name: format!("{name}.weight"),
                kind,
                shape: vec![outputs, inputs],
            },
            init.weights(outputs * inputs, inputs, outputs),
            dev,
        );
        let bias = Param::new(
            ParamInfo {
                name: format!("{name}.bias"),
                kind: ParamKind::Bias,
                shape: vec![outputs],
            },
            init.biases(outputs),
            dev,
        );
        Self {
            weight,
            bias,
            inputs,
            outputs,
        }
    }

    /// (inputs, batch) -> (outputs, batch).
    pub(crate) fn forward<T, R>(&self, x: Matrix<D, R>) -> Matrix<D, T>
    where
        T: Tape<f32, D> + Merge<R>,
        R: Tape<f32, D>,
    {
        let batch = x.shape().1;
        let w = self
            .weight
            .effective::<T>()
            .reshape_like(&(self.outputs, self.inputs));
        let b = self
            .bias
            .effective::<T>()
            .broadcast_like::<_, Axis<1>>(&(self.outputs, batch));
        w.matmul(x) + b
    }
}
