//! Stage records (`stages/<key>.json`) and refs (`refs/<pipeline>/<stage>.json`).
//!
//! A record maps a stage key to the digest of its output object and carries the
//! manifest: everything needed to say where a result came from. A ref remembers the
//! key fields of the last run of a named stage, so the planner can explain a miss.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// On the CPU, what computed the matrix products (`avx512-kernel` or
    /// `gemm`): they sum in different orders, so results differ in bits.
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
}

/// What a ref remembers about the last run of a named stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRef {
    /// The key of that run.
    pub key: String,
    /// Its key fields.
    pub fields: KeyFields,
}

/// Reads the record of a key, if any.
pub fn read_record(store: &Store, key: &str) -> Result<Option<StageRecord>> {
    read_json(&store.record_path(key))
}

/// Publishes a record (atomically).
pub fn write_record(store: &Store, record: &StageRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).expect("records serialize");
    write_atomic(store, &store.record_path(&record.key), &json)
}

/// Reads the ref of a named stage of a pipeline, if any.
pub fn read_ref(store: &Store, pipeline: &str, stage: &str) -> Result<Option<StageRef>> {
    read_json(&store.ref_path(pipeline, stage))
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

/// Every record in the store.
pub fn all_records(store: &Store) -> Result<Vec<StageRecord>> {
    let dir = store.root().join("stages");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(super::io_err("list", &dir))? {
        let path = entry.map_err(super::io_err("list", &dir))?.path();
        if let Some(rec) = read_json::<StageRecord>(&path)? {
            out.push(rec);
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
