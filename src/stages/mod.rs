//! Stage kinds: one file per kind behind the one [`StageKind`] trait.
//!
//! A kind owns its typed params (defaults filled, unknown keys rejected), its code
//! `VERSION`, the external files that enter its key, and `run`, which writes outputs
//! into a folder it is given and returns metrics. Kinds never touch the store, never
//! print, and report progress only through [`Progress`]. All kinds are listed in
//! [`KINDS`].

mod context;
pub mod continual;
pub mod dataset;
mod files;
pub mod noise;
pub mod on_device;
mod params;
pub mod prune;
pub mod report;
pub mod train;
pub mod training;

pub use context::{Input, Metrics, Progress, StageContext, Upstream};
pub use params::ParamError;

use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Errors raised while running a stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stage's input is unusable in a way the user must fix (exit code 2).
    #[error("{0}")]
    InvalidInput(String),
    /// A dataset the stage reads is on none of the searched paths: a run stops
    /// (exit code 2), a plan shows the stage as to run.
    #[error("{message}")]
    DatasetMissing {
        /// The dataset's name.
        dataset: String,
        /// Where it was looked for and how to provide it.
        message: String,
    },
    /// The stage failed while computing.
    #[error("{0}")]
    Failed(String),
    /// Building, training or saving a network failed.
    #[error(transparent)]
    Nn(#[from] crate::nn::Error),
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of stages.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps an I/O error with the operation and path it concerns.
pub fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The object-safe face of a stage kind, used by the pipeline and the runner.
pub trait StageKind: Sync + Send {
    /// The `kind:` name in a pipeline file.
    fn name(&self) -> &'static str;
    /// The code version; part of the stage key.
    fn version(&self) -> u32;
    /// Parses params, fills defaults, rejects unknown keys; returns the resolved params.
    fn resolve(&self, raw: &serde_yaml::Value) -> std::result::Result<Value, ParamError>;
    /// The top-level param names (for matrix validation and suggestions).
    fn param_keys(&self) -> Vec<String>;
    /// Checks, at validation, that the stages in `needs` give this stage what it
    /// reads (a dataset, tickets of the right kind), so a pipeline that cannot run
    /// fails before anything runs.
    fn check_inputs(
        &self,
        params: &Value,
        inputs: &[Upstream],
    ) -> std::result::Result<(), ParamError>;
    /// External files whose content enters the stage key, by a stable name.
    fn sources(&self, params: &Value) -> Result<Vec<(String, PathBuf)>>;
    /// Runs the stage: writes outputs under `ctx.out_dir`, returns metrics.
    fn run(&self, params: &Value, ctx: &StageContext) -> Result<Metrics>;
}

/// A stage kind written against its own typed params.
pub trait TypedStage: Sync + Send + 'static {
    /// The `kind:` name.
    const NAME: &'static str;
    /// Bumped by hand whenever results change meaning or bits (keys do not
    /// cover the code).
    const VERSION: u32;
    /// The typed params (`#[serde(deny_unknown_fields, default)]`).
    type Params: Serialize + DeserializeOwned + Default;
    /// Top-level params that are left out of the serialized params (and so of the
    /// key) at their default, so that keys from before they existed stay valid; listed
    /// here so that writing them is still accepted.
    const OPTIONAL_KEYS: &'static [&'static str] = &[];
    /// Semantic checks beyond types (e.g. a positive batch size).
    fn validate(_params: &Self::Params) -> std::result::Result<(), ParamError> {
        Ok(())
    }
    /// What the stage needs from its inputs (see [`StageKind::check_inputs`]).
    fn check_inputs(
        _params: &Self::Params,
        _inputs: &[Upstream],
    ) -> std::result::Result<(), ParamError> {
        Ok(())
    }
    /// External files whose content enters the key.
    fn sources(_params: &Self::Params) -> Result<Vec<(String, PathBuf)>> {
        Ok(Vec::new())
    }
    /// Runs the stage.
    fn run(params: &Self::Params, ctx: &StageContext) -> Result<Metrics>;
}

/// Adapts a [`TypedStage`] to [`StageKind`].
pub struct Typed<T>(PhantomData<T>);

impl<T: TypedStage> Typed<T> {
    fn parse(params: &Value) -> Result<T::Params> {
        serde_json::from_value(params.clone())
            .map_err(|e| Error::Failed(format!("resolved params no longer parse: {e}")))
    }
}

impl<T: TypedStage> StageKind for Typed<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn version(&self) -> u32 {
        T::VERSION
    }
    fn resolve(&self, raw: &serde_yaml::Value) -> std::result::Result<Value, ParamError> {
        let typed: T::Params = params::parse_typed(raw, T::OPTIONAL_KEYS)?;
        T::validate(&typed)?;
        Ok(serde_json::to_value(&typed).expect("params serialize to JSON"))
    }
    fn param_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = match serde_json::to_value(T::Params::default()) {
            Ok(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        keys.extend(T::OPTIONAL_KEYS.iter().map(|k| k.to_string()));
        keys.sort();
        keys
    }
    fn check_inputs(
        &self,
        params: &Value,
        inputs: &[Upstream],
    ) -> std::result::Result<(), ParamError> {
        let typed = Self::parse(params).map_err(|e| ParamError::new("", e.to_string()))?;
        T::check_inputs(&typed, inputs)
    }
    fn sources(&self, params: &Value) -> Result<Vec<(String, PathBuf)>> {
        T::sources(&Self::parse(params)?)
    }
    fn run(&self, params: &Value, ctx: &StageContext) -> Result<Metrics> {
        T::run(&Self::parse(params)?, ctx)
    }
}

/// Every stage kind, in the order the docs list them.
pub static KINDS: &[&dyn StageKind] = &[
    &Typed::<dataset::DatasetStage>(PhantomData),
    &Typed::<train::TrainStage>(PhantomData),
    &Typed::<prune::PruneStage>(PhantomData),
    &Typed::<noise::NoiseStage>(PhantomData),
    &Typed::<continual::ContinualStage>(PhantomData),
    &Typed::<report::ReportStage>(PhantomData),
];

/// Finds a kind by name.
pub fn find_kind(name: &str) -> Option<&'static dyn StageKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}
