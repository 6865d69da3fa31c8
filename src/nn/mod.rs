//! `nn`: dfdx models, layers, masks, optimizers and the training and
//! evaluation loops, with layer sizes decided at run time.
//!
//! A `ModelConfig` plus an `InputShape` builds a `Network` (seeded by an
//! `InitConfig`); `train_epoch` and `evaluate` drive any `Model` with an
//! `Optimizer`; `checkpoint` saves and loads parameters and masks. A
//! `BinaryConfig` builds a `BinaryNet`, the binarized network with per-task
//! batch norm of the metaplasticity experiments, trained with the same loop
//! and the `adam-meta` optimizer. Everything
//! is generic over the dfdx device (`cpu()`, or `cuda()` with the `cuda`
//! feature). Activations are feature-major, (features, batch). On the CPU the
//! layers run on the kernels of `cpu`: the matrix products on our kernel
//! where the CPU has AVX-512 or AVX2, and rayon loops over host buffers in
//! place of dfdx's slow element-wise ops; a weight pruned below a density
//! threshold stores only its kept values, and its products, gradient and
//! optimizer state skip the masked ones. This module
//! never reads files other than checkpoints, never prints and never touches
//! the store.

mod active;
mod bench;
mod binary;
pub mod checkpoint;
mod config;
mod contexts;
mod conv;
mod cpu;
mod dendrite;
mod device;
mod error;
mod init;
mod kwta;
mod linear;
mod metaplastic;
mod model;
mod network;
mod norm;
mod optim;
mod param;
mod train;

use dfdx::prelude::{NoneTape, Tensor};

pub use active::{ActiveInit, ActiveNet, ActiveSpec};
pub use bench::{bench_evaluation, bench_training, BenchNet};
pub use binary::{BinaryConfig, BinaryKernels, BinaryNet};
pub use config::{BiasInit, InitConfig, InputShape, ModelConfig, WeightInit};
pub use cpu::{cpu_products, keep_freed_buffers, on_pool, same_products};
pub use device::cpu;
#[cfg(feature = "cuda")]
pub use device::cuda;
#[cfg(feature = "cuda")]
pub use dfdx::prelude::Cuda;
pub use dfdx::prelude::{Cpu, Device};
pub use error::{Error, Result};
pub use model::{Buffer, Model};
pub use network::Network;
pub use norm::NormKind;
pub use optim::{Optimizer, OptimizerConfig};
pub use param::{Param, ParamInfo, ParamKind};
pub use train::{evaluate, train_epoch, BatchProgress, EpochStats, EvalStats};

/// A runtime-sized matrix of `f32` on device `D`, optionally recording
/// gradients on tape `T`; activations are (features, batch).
pub type Matrix<D, T = NoneTape> = Tensor<(usize, usize), f32, D, T>;

/// Helpers shared by the unit tests of several layers.
#[cfg(test)]
pub(crate) mod testing {
    /// Element-wise `a ≈ b` within 1e-4 relative (plus 1e-4 absolute), for
    /// comparing two computations of the same values in different orders.
    pub(crate) fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }
}
