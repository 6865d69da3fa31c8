//! The error type of `nn`: everything a caller can get wrong when building,
//! training, inspecting or saving a network (unknown parameter names, wrong
//! lengths, malformed masks, mismatched data, unreadable checkpoints).
//! Errors carry names and sizes so the stage that called us can explain them.

use std::path::PathBuf;

/// Why an `nn` operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model configuration cannot be built for the given input shape.
    #[error("model `{model}` cannot take input {shape}: {reason}")]
    Shape {
        /// The model type, e.g. `lenet5`.
        model: String,
        /// The input shape, as text.
        shape: String,
        /// What does not fit.
        reason: String,
    },
    /// A parameter name that the network does not have.
    #[error("unknown parameter `{name}`; the network has: {known}")]
    UnknownParam {
        /// The name asked for.
        name: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// A value vector whose length does not match the parameter.
    #[error("parameter `{name}` has {expected} values, got {got}")]
    Length {
        /// The parameter.
        name: String,
        /// Its number of elements.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A mask on a parameter that cannot be masked, or with values other than 0 and 1.
    #[error("invalid mask for `{name}`: {reason}")]
    Mask {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Training or evaluation data that does not fit the network.
    #[error("invalid data: {0}")]
    Data(String),
    /// A configuration that is well-formed but cannot be used as given
    /// (e.g. more metaplasticity values than weight tensors).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An optimizer whose state belongs to a different network.
    #[error("optimizer state does not match the network: {0}")]
    Optimizer(String),
    /// The tensor device failed (out of memory, a CUDA error).
    #[error("device error: {0}")]
    Device(String),
    /// A checkpoint file could not be read or written.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file that is not valid safetensors or does not match the network.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Result of `nn` operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Converts a dfdx device error, whose type differs per device.
pub(crate) fn device_error(e: impl std::fmt::Display) -> Error {
    Error::Device(e.to_string())
}
