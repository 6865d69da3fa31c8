//! Choosing the dfdx device the networks run on. Everything else in `nn` is
//! generic over `D: dfdx::tensor_ops::Device<f32>`; this file only makes the
//! concrete devices, with dfdx's allocation cache turned on so that the
//! per-step temporaries of the training loop reuse buffers instead of
//! allocating. CUDA is behind the `cuda` cargo feature.

use dfdx::prelude::*;

/// The CPU device (matmul is multithreaded through rayon; other ops run on
/// one thread), with the allocation cache on.
pub fn cpu() -> Cpu {
    let dev = Cpu::default();
    dev.enable_cache();
    dev
}

/// The CUDA device with ordinal `index`, with the allocation cache on.
#[cfg(feature = "cuda")]
pub fn cuda(ordinal: usize) -> Result<Cuda, super::error::Error> {
    // The device seed only drives dfdx's own random ops, which `nn` never uses.
    let dev = Cuda::try_build(ordinal, 0).map_err(super::error::device_error)?;
    dev.try_enable_cache().map_err(super::error::device_error)?;
    Ok(dev)
}
