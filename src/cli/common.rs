//! Arguments shared by the subcommands that read a pipeline.

use std::path::PathBuf;

use crate::pipeline::{Pipeline, Selection};
use crate::store::Store;

use super::CliError;

/// Where the store is.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The store folder.
    #[arg(long, env = "REPRO_STORE", default_value = "artifacts")]
    pub store: PathBuf,
}

impl StoreArgs {
    /// Opens the store.
    pub fn open(&self) -> Result<Store, CliError> {
        Store::open(&self.store).map_err(CliError::from)
    }
}

/// A pipeline file and the selection applied to it.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// The pipeline file (YAML).
    pub pipeline: PathBuf,
    /// Override a param: STAGE.KEY.SUBKEY=VALUE (VALUE is YAML). Repeatable.
    #[arg(long = "set", value_name = "K=V")]
    pub sets: Vec<String>,
    /// Apply a named profile from the pipeline file before any --set.
    #[arg(long)]
    pub profile: Option<String>,
    /// Only this stage and what it needs (repeatable; base or expanded name).
    #[arg(long = "only", value_name = "STAGE")]
    pub only: Vec<String>,
}

impl PipelineArgs {
    /// Loads and validates the pipeline.
    pub fn load(&self) -> Result<Pipeline, CliError> {
        let selection = Selection {
            profile: self.profile.clone(),
            sets: self.sets.clone(),
            only: self.only.clone(),
        };
        Ok(Pipeline::load(&self.pipeline, &selection)?)
    }
}
