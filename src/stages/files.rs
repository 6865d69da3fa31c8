//! Reading and writing the JSON files of stage outputs, with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{io_err, Error, Result};

/// Writes pretty JSON into a stage's output.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).expect("plain data serializes");
    std::fs::write(path, text).map_err(io_err("write", path))
}

/// Reads a JSON file of a stage's output (its own checkpoint, or an upstream's file).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))
}
