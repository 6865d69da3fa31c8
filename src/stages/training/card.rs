//! The model card: the `model.json` beside a trained network's weights that says how
//! to rebuild it (architecture, input shape, normalization). `train` and `prune` write
//! it; `noise-eval` reads it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::nn::{InputShape, ModelConfig};
use crate::stages::files::{read_json, write_json};
use crate::stages::Result;

use super::Normalize;

/// The card's file name in a producing stage's output folder.
pub const MODEL_CARD: &str = "model.json";

/// What a trained network's folder says about how to rebuild it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Architecture.
    pub model: ModelConfig,
    /// Input shape and classes.
    pub shape: InputShape,
    /// Input normalization.
    pub normalize: Normalize,
}

impl ModelCard {
    /// Writes the card into a stage's output folder.
    pub fn write(&self, out_dir: &Path) -> Result<()> {
        write_json(&out_dir.join(MODEL_CARD), self)
    }

    /// Reads the card of an upstream stage's output folder.
    pub fn read(dir: &Path) -> Result<ModelCard> {
        read_json(&dir.join(MODEL_CARD))
    }
}
