//! The planner: decides, for each stage, whether its cached result is valid and why not.
//!
//! Pure apart from reading the store (records, refs, object stamps) and hashing external
//! source files through the digest cache. The same [`assess`] serves `repro plan` (with
//! the upstream digests known before anything runs) and the runner (called again for
//! each stage once its inputs are final, which gives early cutoff for free).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::pipeline::{Pipeline, Stage};
use crate::stages;
use crate::store::filecache::FileDigests;
use crate::store::key::{KeyFields, MissReason, KEY_FORMAT};
use crate::store::object::{self, Health};
use crate::store::record::{lookup, read_ref, Lookup, StageRecord};
use crate::store::Store;

/// Whether a stage will run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its cached result is valid.
    Cached,
    /// It must run.
    Run,
}

/// The verdict on one stage.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// Key fields with the inputs known so far.
    pub fields: KeyFields,
    /// The stage key (provisional while an input is pending).
    pub key: String,
    /// Cached or run.
    pub status: Status,
    /// Why it runs (empty when cached).
    pub reasons: Vec<MissReason>,
    /// The valid record, when cached.
    pub record: Option<StageRecord>,
    /// External source files, by name.
    pub sources: BTreeMap<String, std::path::PathBuf>,
}

/// Errors of planning.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// A stage's external inputs could not be found.
    #[error("{}: stage `{stage}`: {source}", file.display())]
    Stage {
        /// The pipeline file.
        file: std::path::PathBuf,
        /// The stage.
        stage: String,
        /// Why.
        #[source]
        source: stages::Error,
    },
}

/// The digest of an upstream output, or `Pending` if that stage has yet to run.
#[derive(Debug, Clone, PartialEq)]
pub enum InputState {
    /// Final output digest.
    Ready(String),
    /// Will run first; carries its provisional key.
    Pending(String),
}

/// The key fields of a stage given its inputs' states and its sources' digests.
fn key_fields(
    stage: &Stage,
    inputs: &BTreeMap<String, InputState>,
    sources: BTreeMap<String, String>,
) -> KeyFields {
    KeyFields {
        format: KEY_FORMAT,
        kind: stage.kind.name().to_string(),
        version: stage.kind.version(),
        params: stage.params.clone(),
        seed: stage.seed,
        inputs: inputs
            .iter()
            .map(|(n, s)| {
                let d = match s {
                    InputState::Ready(d) => d.clone(),
                    InputState::Pending(k) => format!("pending:{k}"),
                };
                (n.clone(), d)
            })
            .collect(),
        sources,
    }
}

/// Assesses one stage given the state of its inputs.
pub fn assess(
    store: &Store,
    files: &FileDigests,
    pipeline: &Pipeline,
    stage: &Stage,
    inputs: &BTreeMap<String, InputState>,
) -> Result<Assessment, Error> {
    let mut sources = BTreeMap::new();
    let mut source_digests = BTreeMap::new();
    let listed = stage
        .kind
        .sources(&stage.params)
        .map_err(|source| Error::Stage {
            file: pipeline.file.clone(),
            stage: stage.name.clone(),
            source,
        })?;
    for (name, path) in listed {
        source_digests.insert(name.clone(), files.digest(&path)?);
        sources.insert(name, path);
    }
    let pending: Vec<String> = inputs
        .iter()
        .filter(|(_, s)| matches!(s, InputState::Pending(_)))
        .map(|(n, _)| n.clone())
        .collect();
    let fields = key_fields(stage, inputs, source_digests);
    let key = fields.key();
    let mut out = Assessment {
        fields,
        key,
        status: Status::Run,
        reasons: Vec::new(),
        record: None,
        sources,
    };
    if pending.is_empty() {
        match lookup(store, &out.key) {
            Lookup::Absent => {}
            Lookup::Corrupt(why) => {
                out.reasons.push(MissReason::RecordCorrupt { why });
                return Ok(out);
            }
            Lookup::Found(record) => {
                match object::check(store, &record.output)? {
                    Health::Intact => {
                        out.status = Status::Cached;
                        out.record = Some(*record);
                        return Ok(out);
                    }
                    Health::Missing => out.reasons.push(MissReason::OutputMissing),
                    Health::Corrupt => out.reasons.push(MissReason::OutputCorrupt),
                }
                return Ok(out);
            }
        }
    }
    out.reasons = match read_ref(store, &pipeline.name, &stage.name) {
        None => vec![MissReason::New],
        Some(last) => {
            let mut reasons: Vec<MissReason> = out
                .fields
                .compare(&last.fields)
                .into_iter()
                .filter(|r| !matches!(r, MissReason::InputChanged { .. }))
                .collect();
            let mut changed: Vec<String> = pending.clone();
            for (n, d) in &out.fields.inputs {
                if !d.starts_with("pending:") && last.fields.inputs.get(n) != Some(d) {
                    changed.push(n.clone());
                }
            }
            changed.sort();
            changed.dedup();
            if !changed.is_empty() {
                reasons.push(MissReason::InputChanged { inputs: changed });
            }
            if reasons.is_empty() {
                reasons.push(if last.key == out.key {
                    MissReason::OutputMissing
                } else {
                    MissReason::KeyChanged
                });
            }
            reasons
        }
    };
    Ok(out)
}

/// What planning does when a stage's dataset is not on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingData {
    /// Stop with the resolver's error (runs, reports, `show` and `gc` need the keys).
    Fail,
    /// Plan the stage to run, with the reason [`MissReason::DatasetMissing`] and a
    /// provisional key (`repro plan` on a machine without the data).
    Provisional,
}

/// Assesses every stage in order, as `repro plan` shows it: a stage that will run makes
/// its dependants' inputs pending. A missing dataset is an error.
pub fn plan(
    store: &Store,
    files: &FileDigests,
    pipeline: &Pipeline,
) -> Result<Vec<(String, Assessment)>, Error> {
    plan_with(store, files, pipeline, MissingData::Fail)
}

/// [`plan`], choosing what a missing dataset does.
pub fn plan_with(
    store: &Store,
    files: &FileDigests,
    pipeline: &Pipeline,
    missing: MissingData,
) -> Result<Vec<(String, Assessment)>, Error> {
    let mut states: BTreeMap<String, InputState> = BTreeMap::new();
    let mut out = Vec::new();
    for stage in &pipeline.stages {
        let inputs = stage
            .needs
            .iter()
            .map(|n| (n.clone(), states[n].clone()))
            .collect();
        let a = match assess(store, files, pipeline, stage, &inputs) {
            Err(Error::Stage {
                source: stages::Error::DatasetMissing { dataset, .. },
                ..
            }) if missing == MissingData::Provisional => without_data(stage, &inputs, dataset),
            other => other?,
        };
        let state = match (&a.status, &a.record) {
            (Status::Cached, Some(r)) => InputState::Ready(r.output.clone()),
            _ => InputState::Pending(a.key.clone()),
        };
        states.insert(stage.name.clone(), state);
        out.push((stage.name.clone(), a));
    }
    Ok(out)
}

/// A stage whose dataset is missing: to run, under the key of its fields without the
/// dataset's files (provisional, like the key of a stage with a pending input).
fn without_data(
    stage: &Stage,
    inputs: &BTreeMap<String, InputState>,
    dataset: String,
) -> Assessment {
    let fields = key_fields(stage, inputs, BTreeMap::new());
    Assessment {
        key: fields.key(),
        fields,
        status: Status::Run,
        reasons: vec![MissReason::DatasetMissing { dataset }],
        record: None,
        sources: BTreeMap::new(),
    }
}
