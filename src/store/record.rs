//! Stage records (`stages/<key>.json`) and refs (`refs/<pipeline>/<stage>.json`).
//!
//! A record maps a stage key to the digest of its output object and carries the
//! manifest: everything needed to say where a result came from. A ref remembers the
//! key fields of the last run of a named stage, so the planner can explain a miss.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::sha256_hex;
use super::key::KeyFields;
use super::{read_json, write_atomic, Result, Store};

/// Provenance of one stage result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Pipeline name that produced it.
    pub pipeline: String,
    /// Stage name within that pipeline.
    pub stage: String,
    /// Stage kind.
    pub kind: String,
    /// Resolved params.
    pub params: Value,
    /// Upstream inputs: role -> output digest.
    pub inputs: BTreeMap<String, String>,
    /// Stage seed.
    pub seed: u64,
    /// What the stage measured (e.g. `test_accuracy` as a fraction).
    pub metrics: BTreeMap<String, Value>,
    /// Wall-clock seconds of the run.
    pub wall_seconds: f64,
    /// Peak resident memory of the process at the end of the stage, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Device the stage ran on (`cpu` or `cuda`).
    pub device: String,
    /// On the CPU, what computed the matrix products (`repro-sgemm`, called
    /// `avx512-kernel` before its AVX2 half existed, or `gemm`): the two sum
    /// in different orders, so results differ in bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_products: Option<String>,
    /// Worker threads available to the stage.
    pub threads: usize,
    /// Version of the `repro` crate that ran it.
    pub crate_version: String,
    /// Git commit of the working tree, when known.
    pub git_commit: Option<String>,
    /// Host name.
    pub host: String,
    /// When the stage finished (seconds since the Unix epoch).
    pub finished_at: u64,
}

#[cfg(test)]
impl Manifest {
    /// A manifest of a stage with no metrics, computed nowhere in particular.
    pub fn for_tests(pipeline: &str, stage: &str, fields: &KeyFields) -> Manifest {
        Manifest {
            pipeline: pipeline.to_string(),
            stage: stage.to_string(),
            kind: fields.kind.clone(),
            params: fields.params.clone(),
            inputs: fields.inputs.clone(),
            seed: fields.seed,
            metrics: BTreeMap::new(),
            wall_seconds: 0.0,
            peak_rss_bytes: None,
            device: "cpu".into(),
            cpu_products: None,
            threads: 1,
            crate_version: "test".into(),
            git_commit: None,
            host: "test".into(),
            finished_at: 0,
        }
    }
}

/// A published stage result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    /// The stage key (sha256 of `fields`).
    pub key: String,
    /// The key fields, kept to explain future misses.
    pub fields: KeyFields,
    /// Digest of the output object.
    pub output: String,
    /// Provenance.
    pub manifest: Manifest,
    /// sha256 binding `key` to `output` ([`seal`]), so that a record edited or
    /// damaged to point at another (valid) object is refused. Records written
    /// before seals existed have none and are checked on their key alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

impl StageRecord {
    /// A sealed record of `output` under `fields`' key.
    pub fn new(fields: KeyFields, output: String, manifest: Manifest) -> StageRecord {
        let key = fields.key();
        StageRecord {
            seal: Some(seal(&key, &output)),
            key,
            fields,
            output,
            manifest,
        }
    }

    /// Checks that this record is the one `stages/<key>.json` should hold: its key,
    /// the hash of its key fields and its seal all agree. The error says which not.
    pub fn check(&self, key: &str) -> std::result::Result<(), String> {
        if self.key != key {
            return Err(format!("it holds key {} instead", self.key));
        }
        if self.fields.key() != key {
            return Err("its key fields do not hash to its key".into());
        }
        match &self.seal {
            Some(s) if *s != seal(key, &self.output) => {
                Err("its seal does not match its key and output".into())
            }
            _ => Ok(()),
        }
    }
}

/// The seal of a record: sha256 of its key and output digest.
fn seal(key: &str, output: &str) -> String {
    sha256_hex(format!("repro-record\0{key}\0{output}").as_bytes())
}

/// What the record file of a key holds.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// No record.
    Absent,
    /// A record that passes [`StageRecord::check`].
    Found(Box<StageRecord>),
    /// A record file that cannot be used; the text says why. Treated as a cache
    /// miss: the stage reruns and overwrites it.
    Corrupt(String),
}

/// What a ref remembers about the last run of a named stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRef {
    /// The key of that run.
    pub key: String,
    /// Its key fields.
    pub fields: KeyFields,
}

/// Reads and checks the record of a key. Never fails on a damaged file: that is
/// [`Lookup::Corrupt`].
pub fn lookup(store: &Store, key: &str) -> Lookup {
    let path = store.record_path(key);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Absent,
        Err(e) => return Lookup::Corrupt(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice::<StageRecord>(&bytes) {
        Err(e) => Lookup::Corrupt(format!("{} is not a valid record: {e}", path.display())),
        Ok(record) => match record.check(key) {
            Ok(()) => Lookup::Found(Box::new(record)),
            Err(why) => Lookup::Corrupt(format!("{}: {why}", path.display())),
        },
    }
}

/// Publishes a record (atomically).
pub fn write_record(store: &Store, record: &StageRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).expect("records serialize");
    write_atomic(store, &store.record_path(&record.key), &json)
}

/// Reads the ref of a named stage of a pipeline, if any. A damaged ref only loses
/// the explanation of a miss, so it reads as none.
pub fn read_ref(store: &Store, pipeline: &str, stage: &str) -> Option<StageRef> {
    read_json(&store.ref_path(pipeline, stage)).ok().flatten()
}

/// Points the ref of a named stage at a key.
pub fn write_ref(store: &Store, pipeline: &str, stage: &str, fields: &KeyFields) -> Result<()> {
    let r = StageRef {
        key: fields.key(),
        fields: fields.clone(),
    };
    let json = serde_json::to_vec_pretty(&r).expect("refs serialize");
    write_atomic(store, &store.ref_path(pipeline, stage), &json)
}

/// Every record file in the store, by the key its file name gives, checked.
pub fn scan(store: &Store) -> Result<Vec<(String, Lookup)>> {
    let dir = store.root().join("stages");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(super::io_err("list", &dir))? {
        let path = entry.map_err(super::io_err("list", &dir))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(key) = name.as_deref().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        out.push((key.to_string(), lookup(store, key)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Every usable record in the store (damaged ones are left out).
pub fn all_records(store: &Store) -> Result<Vec<StageRecord>> {
    Ok(scan(store)?
        .into_iter()
        .filter_map(|(_, l)| match l {
            Lookup::Found(r) => Some(*r),
            _ => None,
        })
        .collect())
}
