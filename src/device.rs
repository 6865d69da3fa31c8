//! The device a stage computes on, chosen with `--device`.

use serde::{Deserialize, Serialize};

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The CPU (always available; the tested path).
    #[default]
    Cpu,
    /// An NVIDIA GPU (needs a binary built with `--features cuda`).
    Cuda,
}

impl DeviceChoice {
    /// The name recorded in manifests.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// Checks that this binary can use the device; an error says how to get one that can.
    pub fn ensure_available(self) -> Result<(), String> {
        match self {
            DeviceChoice::Cpu => Ok(()),
            DeviceChoice::Cuda if cfg!(feature = "cuda") => Ok(()),
            DeviceChoice::Cuda => Err("--device cuda needs a repro built with CUDA support: \
                 rebuild with `cargo build --release --features cuda` on a machine with the CUDA toolkit (nvcc), \
                 or run with --device cpu"
                .into()),
        }
    }
}
