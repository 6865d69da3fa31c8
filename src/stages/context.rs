//! What a running stage is given: its output folder, its inputs, its seed and device,
//! and a progress handle.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::dataset::DatasetStage;
use super::TypedStage;

/// Metrics a stage reports; they go into its manifest.
pub type Metrics = BTreeMap<String, Value>;

/// Receives a stage's progress; the runner turns it into progress bars.
pub trait Progress: Sync {
    /// Reports `position` out of `length` units of work, with a short message
    /// such as `epoch 2/10`.
    fn update(&self, position: u64, length: u64, message: &str);
}

/// One upstream result, read-only. Serialized into a Slurm job's spec.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Input {
    /// Upstream stage name (its role).
    pub stage: String,
    /// Upstream kind.
    pub kind: String,
    /// Folder of its output object.
    pub dir: PathBuf,
    /// Digest of its output object.
    pub digest: String,
    /// Its stage key.
    pub key: String,
    /// Wall seconds it took when it ran.
    pub wall_seconds: f64,
    /// Its resolved params.
    pub params: Value,
    /// Its seed.
    pub seed: u64,
    /// Its metrics.
    pub metrics: Metrics,
    /// The datasets it was computed from, directly or through its own inputs,
    /// described for captions (e.g. `fashion-mnist (train 3000, test 1000)`).
    pub datasets: Vec<String>,
}

/// What validation knows of a stage in `needs`: its name, kind and resolved params.
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    /// Expanded stage name (`dense@seed=1`).
    pub stage: &'a str,
    /// Its kind name.
    pub kind: &'a str,
    /// Its resolved params.
    pub params: &'a Value,
}

impl Upstream<'_> {
    /// The stage name without its matrix suffix: `dense@seed=1` -> `dense`.
    pub fn base(&self) -> &str {
        crate::pipeline::names::base_name(self.stage)
    }
}

/// Checks that exactly one input is a dataset stage (what `train`, `prune`,
/// `noise-eval` and most `continual` stages read), naming the key `needs`.
pub fn one_dataset(inputs: &[Upstream]) -> Result<(), super::ParamError> {
    let n = inputs
        .iter()
        .filter(|i| i.kind == DatasetStage::NAME)
        .count();
    match n {
        1 => Ok(()),
        0 => Err(super::ParamError::new(
            "needs",
            "needs a dataset stage; add one to `needs`",
        )),
        n => Err(super::ParamError::new(
            "needs",
            format!("needs exactly one dataset stage, but `needs` gives {n}"),
        )),
    }
}

/// Everything a stage's `run` may use.
pub struct StageContext<'a> {
    /// The pipeline's name.
    pub pipeline: String,
    /// The stage's name in the pipeline (e.g. `dense@seed=1`).
    pub stage: String,
    /// Where to write outputs; published as one object when `run` returns Ok.
    pub out_dir: PathBuf,
    /// A folder that survives an interrupted run of the same key, for checkpoints.
    pub scratch_dir: PathBuf,
    /// Upstream results by stage name.
    pub inputs: BTreeMap<String, Input>,
    /// External source files by name (as returned by the kind's `sources`).
    pub sources: BTreeMap<String, PathBuf>,
    /// The stage's seed.
    pub seed: u64,
    /// `cpu` or `cuda`.
    pub device: crate::device::DeviceChoice,
    /// Progress sink.
    pub progress: &'a dyn Progress,
}

impl StageContext<'_> {
    /// The inputs of a given kind, in stage-name order.
    pub fn inputs_of_kind(&self, kind: &str) -> Vec<&Input> {
        self.inputs.values().filter(|i| i.kind == kind).collect()
    }
}
