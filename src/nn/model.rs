//! The `Model` trait: what the training loop, the optimizers and the
//! checkpoint code need from a network. `Network` (built from a
//! `ModelConfig`) implements it; other architectures (dendritic, binarized)
//! implement it too and reuse the same loop instead of copying it.

use dfdx::prelude::*;

use super::config::InputShape;
use super::error::{Error, Result};
use super::param::{Param, ParamInfo};
use super::Matrix;

/// A named vector of a model's non-trainable state (see `Model::buffers`).
#[derive(Debug, Clone, PartialEq)]
pub struct Buffer {
    /// Unique name, PyTorch's: `bn1.running_mean`.
    pub name: String,
    /// The values, in the layer's feature order.
    pub values: Vec<f32>,
}

impl Buffer {
    /// The buffer `name` holding `values`.
    pub fn new(name: String, values: Vec<f32>) -> Self {
        Self { name, values }
    }
}

/// A classifier with named, maskable parameters on device `D`.
pub trait Model<D: Device<f32>> {
    /// Input shape and number of classes.
    fn input_shape(&self) -> InputShape;

    /// Extra input rows after the image's features: the task context of a
    /// dendritic network (0 for every other model). Training and evaluation
    /// data then carry `features + context` values per example.
    fn context_features(&self) -> usize {
        0
    }

    /// Switches to the per-task state of `task` (e.g. a binarized network's
    /// per-task normalization parameters) before training or testing on it;
    /// models without per-task state ignore it.
    fn select_task(&mut self, _task: usize) {}

    /// The device the parameters live on.
    fn device(&self) -> &D;

    /// Logits, shape (classes, batch), from inputs shaped (features, batch).
    /// With `T = OwnedTape` the result records the backward pass of every
    /// parameter; with `T = NoneTape` it is plain inference.
    fn forward<T: Tape<f32, D>>(&self, x: Matrix<D>) -> Matrix<D, T>;

    /// The logits (classes × n, row-major) of the `n` examples stored one
    /// after another in `examples`, computed without tensors where this
    /// model has such a path on this device, with `forward`'s bits;
    /// evaluation then skips the transposed upload of each batch and the
    /// crossings between layers. `None` (the default) where there is none.
    fn host_logits(&self, _examples: &[f32], _n: usize) -> Option<Vec<f32>> {
        None
    }

    /// All parameters, in a fixed order.
    fn params(&self) -> Vec<&Param<D>>;

    /// All parameters, mutably, in the same order as `params`.
    fn params_mut(&mut self) -> Vec<&mut Param<D>>;

    /// Non-trainable state saved with the parameters (PyTorch's buffers,
    /// such as a batch norm's running statistics), in a fixed order;
    /// optimizers never see it. Most models have none.
    fn buffers(&self) -> Vec<Buffer> {
        Vec::new()
    }

    /// Replaces the buffer called `name` (one of `buffers`) with `values`.
    fn set_buffer(&mut self, name: &str, _values: &[f32]) -> Result<()> {
        Err(Error::UnknownParam {
            name: name.into(),
            known: String::new(),
        })
    }

    /// Name, kind and shape of every parameter, in order.
    fn param_infos(&self) -> Vec<ParamInfo> {
        self.params()
            .into_iter()
            .map(|p| p.info().clone())
            .collect()
    }

    /// The parameter called `name` (e.g. `fc1.weight`).
    fn param(&self, name: &str) -> Result<&Param<D>> {
        let params = self.params();
        let known = names(&params);
        params
            .into_iter()
            .find(|p| p.info().name == name)
            .ok_or_else(|| Error::UnknownParam {
                name: name.into(),
                known,
            })
    }

    /// The parameter called `name`, mutably, to set its values or mask.
    fn param_mut(&mut self, name: &str) -> Result<&mut Param<D>> {
        let known = names(&self.params());
        self.params_mut()
            .into_iter()
            .find(|p| p.info().name == name)
            .ok_or_else(|| Error::UnknownParam {
                name: name.into(),
                known,
            })
    }
}

fn names<D: Device<f32>>(params: &[&Param<D>]) -> String {
    let names: Vec<&str> = params.iter().map(|p| p.info().name.as_str()).collect();
    names.join(", ")
}
