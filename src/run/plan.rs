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

/// The key fields of a stage given its inputs' states and its sources' digests: ready
/// inputs go in `inputs`, pending ones in `pending` (so a stage whose inputs are all
/// ready has exactly the fields it will be recorded under).
fn key_fields(
    stage: &Stage,
    inputs: &BTreeMap<String, InputState>,
    sources: BTreeMap<String, String>,
) -> KeyFields {
    let mut ready = BTreeMap::new();
    let mut pending = BTreeMap::new();
    for (name, state) in inputs {
        match state {
            InputState::Ready(digest) => ready.insert(name.clone(), digest.clone()),
            InputState::Pending(key) => pending.insert(name.clone(), key.clone()),
        };
    }
    KeyFields {
        format: KEY_FORMAT,
        kind: stage.kind.name().to_string(),
        version: stage.kind.version(),
        params: stage.params.clone(),
        seed: stage.seed,
        inputs: ready,
        sources,
        pending,
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
    if out.fields.pending.is_empty() {
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
            let mut reasons = out.fields.compare(&last.fields);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Selection;
    use crate::store::record::{write_record, write_ref, Manifest};
    use serde_json::json;

    const PIPELINE: &str = "name: assess
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 300, test_size: 100 }
  net:
    kind: train
    needs: [data]
    params: { model: { type: mlp, hidden: [8] }, epochs: 1 }
";

    /// A store and the pipeline above, in a temporary folder.
    struct Setup {
        _dir: tempfile::TempDir,
        store: Store,
        files: FileDigests,
        pipeline: Pipeline,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, PIPELINE).unwrap();
        let pipeline = Pipeline::load(&path, &Selection::default()).unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let files = FileDigests::load(&store);
        Setup {
            _dir: dir,
            store,
            files,
            pipeline,
        }
    }

    impl Setup {
        fn assess(&self, stage: &str, inputs: &[(&str, InputState)]) -> Assessment {
            let inputs = inputs
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect();
            let stage = self.pipeline.stage(stage).unwrap();
            assess(&self.store, &self.files, &self.pipeline, stage, &inputs).unwrap()
        }

        /// Publishes a one-file result under `fields` and points the stage's ref at it,
        /// as a finished run does.
        fn publish(&self, stage: &str, fields: &KeyFields) -> StageRecord {
            let work = self.store.tmp_dir().join("work");
            std::fs::create_dir_all(&work).unwrap();
            std::fs::write(work.join("out.txt"), "result").unwrap();
            let output = object::publish(&self.store, &work).unwrap();
            let manifest = Manifest::for_tests(&self.pipeline.name, stage, fields);
            let record = StageRecord::new(fields.clone(), output, manifest);
            write_record(&self.store, &record).unwrap();
            write_ref(&self.store, &self.pipeline.name, stage, fields).unwrap();
            record
        }
    }

    fn ready() -> [(&'static str, InputState); 1] {
        [("data", InputState::Ready("d1".into()))]
    }

    #[test]
    fn a_stage_never_run_is_new() {
        let s = setup();
        let a = s.assess("data", &[]);
        assert_eq!(a.status, Status::Run);
        assert_eq!(a.reasons, [MissReason::New]);
        assert!(a.record.is_none());
    }

    #[test]
    fn a_published_result_is_cached_with_no_reason() {
        let s = setup();
        let first = s.assess("net", &ready());
        let record = s.publish("net", &first.fields);
        let a = s.assess("net", &ready());
        assert_eq!(a.status, Status::Cached);
        assert!(a.reasons.is_empty());
        assert_eq!(a.key, record.key);
        assert_eq!(a.record.unwrap().output, record.output);
    }

    #[test]
    fn a_missing_object_is_output_missing() {
        let s = setup();
        let record = s.publish("data", &s.assess("data", &[]).fields);
        std::fs::remove_dir_all(s.store.object_dir(&record.output)).unwrap();
        let a = s.assess("data", &[]);
        assert_eq!(a.status, Status::Run);
        assert_eq!(a.reasons, [MissReason::OutputMissing]);
    }

    #[test]
    fn a_damaged_object_is_output_corrupt() {
        let s = setup();
        let record = s.publish("data", &s.assess("data", &[]).fields);
        let file = s.store.object_dir(&record.output).join("out.txt");
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "another result").unwrap();
        let a = s.assess("data", &[]);
        assert_eq!(a.status, Status::Run);
        assert_eq!(a.reasons, [MissReason::OutputCorrupt]);
    }

    #[test]
    fn a_damaged_record_is_record_corrupt() {
        let s = setup();
        let record = s.publish("data", &s.assess("data", &[]).fields);
        std::fs::write(s.store.record_path(&record.key), "not a record").unwrap();
        let a = s.assess("data", &[]);
        assert_eq!(a.status, Status::Run);
        assert!(
            matches!(&a.reasons[..], [MissReason::RecordCorrupt { why }] if why.contains("not a valid record")),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn a_pending_input_is_data_in_the_fields_and_a_changed_input() {
        let s = setup();
        let ready_key = s.publish("net", &s.assess("net", &ready()).fields).key;
        let a = s.assess("net", &[("data", InputState::Pending("k1".into()))]);
        assert_eq!(a.status, Status::Run);
        assert!(a.fields.inputs.is_empty());
        assert_eq!(
            a.fields.pending,
            BTreeMap::from([("data".to_string(), "k1".to_string())])
        );
        assert_ne!(a.key, ready_key);
        assert_eq!(
            a.reasons,
            [MissReason::InputChanged {
                inputs: vec!["data".into()]
            }]
        );
    }

    #[test]
    fn a_param_change_names_the_path_with_both_values() {
        let s = setup();
        let mut old = s.assess("data", &[]).fields;
        old.params["test_size"] = json!(50);
        s.publish("data", &old);
        let a = s.assess("data", &[]);
        assert_eq!(a.status, Status::Run);
        assert_eq!(
            a.reasons,
            [MissReason::ParamChanged {
                path: "test_size".into(),
                old: Some(json!(50)),
                new: Some(json!(100)),
            }]
        );
    }
}
