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
    /// Opens the store, creating it where it does not exist yet.
    pub fn open(&self) -> Result<Store, CliError> {
        if self.store.exists() && !self.store.is_dir() {
            return Err(CliError::invalid(format!(
                "--store {} is not a folder; name the store's folder (default ./artifacts)",
                self.store.display()
            )));
        }
        Store::open(&self.store).map_err(|e| match e {
            crate::store::Error::Io { .. } => CliError::invalid(format!(
                "cannot use {} as the store: {e}",
                self.store.display()
            )),
            other => CliError::from(other),
        })
    }

    /// Opens a store that must already exist (for commands that only inspect one:
    /// a mistyped `--store` is an error, not a new empty store).
    pub fn open_existing(&self) -> Result<Store, CliError> {
        if !self.store.join("objects").is_dir() {
            return Err(CliError::invalid(format!(
                "there is no store at {} (no objects/ folder); check --store or REPRO_STORE",
                self.store.display()
            )));
        }
        self.open()
    }
}

/// Longest accepted `--wait`: a week.
const MAX_WAIT_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// Parses `--wait SECONDS`: a finite number from 0 to a week.
pub fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=MAX_WAIT_SECONDS).contains(&seconds) {
        return Err(format!(
            "must be between 0 and {MAX_WAIT_SECONDS} seconds (a week), got `{text}`"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
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

/// Where stages compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorChoice {
    /// In this process, on this machine.
    Local,
    /// One Slurm job per stage (the store must be on a file system the nodes share).
    Slurm,
}

/// `--executor` and `--cluster`.
#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    /// Where stages compute.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorChoice,
    /// With `--executor slurm`: the cluster file (YAML) of each job's resources and the
    /// polling and retry settings; without it, every job asks for 2 CPUs, 4G and 4 hours.
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
}

impl ExecutorArgs {
    /// The cluster file's settings with `--executor slurm`, `None` for a local run.
    pub fn cluster(&self) -> Result<Option<crate::run::slurm::cluster::Cluster>, CliError> {
        match (self.executor, &self.cluster) {
            (ExecutorChoice::Local, Some(_)) => Err(CliError::invalid(
                "--cluster applies to Slurm runs only; add --executor slurm",
            )),
            (ExecutorChoice::Local, None) => Ok(None),
            (ExecutorChoice::Slurm, file) => {
                crate::run::slurm::cluster::Cluster::load(file.as_deref())
                    .map(Some)
                    .map_err(CliError::invalid)
            }
        }
    }
}
