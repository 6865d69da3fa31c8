//! The pipeline file as written: serde types with no meaning attached yet.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// A pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Names the report folder and the refs.
    pub name: String,
    /// Free text for people reading the file (repro accepts it and does not use it).
    #[serde(default)]
    pub description: Option<String>,
    /// Default seed of every stage.
    #[serde(default)]
    pub seed: u64,
    /// Named sets of `STAGE.KEY: VALUE` overrides.
    #[serde(default)]
    pub profiles: Mapping,
    /// Stages by name, in file order.
    pub stages: Mapping,
}

/// One stage as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Stage kind name.
    pub kind: String,
    /// Upstream stage names.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Kind-specific params.
    #[serde(default)]
    pub params: Value,
    /// Keys to expand over: `{seed: [0, 1]}` or `{optimizer.lr: [...]}`.
    #[serde(default)]
    pub matrix: Mapping,
    /// The stage's own seed.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The field names of a stage, for suggestions.
pub const STAGE_FIELDS: &[&str] = &["kind", "needs", "params", "matrix", "seed"];
