//! Stage keys: what makes a stage's cached result valid, and why it is not.
//!
//! A stage key is the sha256 of the canonical JSON of [`KeyFields`]:
//!
//! | field      | why it is in the key |
//! |------------|----------------------|
//! | `format`   | the layout of this struct; bumped if the key schema changes |
//! | `kind`     | which stage code runs |
//! | `version`  | the kind's `VERSION`, bumped by hand when its results change meaning |
//! | `params`   | the fully resolved params (defaults filled in), canonical JSON |
//! | `seed`     | the stage's seed, a first-class input |
//! | `inputs`   | for each upstream stage (by role), the digest of its output tree |
//! | `sources`  | for each external file (a dataset's IDX files), its sha256 |
//!
//! What never goes in, and why:
//! - the binary's hash or build time: a rebuild must not invalidate the cache
//!   (bump `version` instead when results change meaning);
//! - absolute paths and mtimes: moving a checkout or touching a file changes no result;
//!   external files enter by content only;
//! - thread count, device and host: recorded in the manifest for provenance; results are
//!   deterministic for a given thread count, but a cache hit across machines is wanted.
//!
//! The fields are stored in full beside the hash (in the record and in `refs/`) only so
//! that [`KeyFields::compare`] can say *why* a stage is stale: a cache miss is data
//! ([`MissReason`]), rendered to text at the CLI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::hash_value;

/// Version of the key schema itself.
pub const KEY_FORMAT: u32 = 1;

/// Everything that determines a stage's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyFields {
    /// Key schema version ([`KEY_FORMAT`]).
    pub format: u32,
    /// Stage kind name.
    pub kind: String,
    /// The kind's code version.
    pub version: u32,
    /// Resolved params.
    pub params: Value,
    /// Stage seed.
    pub seed: u64,
    /// Output digest of each upstream stage, by role (the upstream stage's name).
    pub inputs: BTreeMap<String, String>,
    /// sha256 of each external source file, by a stable name.
    pub sources: BTreeMap<String, String>,
}

impl KeyFields {
    /// The stage key: hex sha256 of the canonical JSON of the fields.
    pub fn key(&self) -> String {
        hash_value(&serde_json::to_value(self).expect("key fields are plain JSON"))
    }

    /// Explains what differs from an older set of fields of the same stage.
    /// Returns an empty list when nothing differs.
    pub fn compare(&self, old: &KeyFields) -> Vec<MissReason> {
        let mut reasons = Vec::new();
        if self.kind != old.kind {
            reasons.push(MissReason::KindChanged {
                old: old.kind.clone(),
                new: self.kind.clone(),
            });
        } else if self.version != old.version || self.format != old.format {
            reasons.push(MissReason::VersionChanged {
                old: old.version,
                new: self.version,
            });
        }
        let mut keys = Vec::new();
        diff_paths("", &old.params, &self.params, &mut keys);
        if !keys.is_empty() {
            reasons.push(MissReason::ParamsChanged { keys });
        }
        if self.seed != old.seed {
            reasons.push(MissReason::SeedChanged {
                old: old.seed,
                new: self.seed,
            });
        }
        let inputs = changed_entries(&old.inputs, &self.inputs);
        if !inputs.is_empty() {
            reasons.push(MissReason::InputChanged { inputs });
        }
        let sources = changed_entries(&old.sources, &self.sources);
        if !sources.is_empty() {
            reasons.push(MissReason::SourceChanged { files: sources });
        }
        reasons
    }
}

/// Names present in only one map or with different values.
fn changed_entries(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    names.extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
    names.sort();
    names
}

/// Collects the dotted paths at which two JSON values differ.
fn diff_paths(prefix: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_paths(&path, x, y, out),
                    _ => out.push(path),
                }
            }
        }
        (a, b) if a != b => out.push(if prefix.is_empty() {
            "params".to_string()
        } else {
            prefix.to_string()
        }),
        _ => {}
    }
}

/// Why a stage must run: a cache miss as data, rendered by the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MissReason {
    /// No record of this stage name and no cached result for its key.
    New,
    /// The stage's kind changed.
    KindChanged {
        /// Previous kind.
        old: String,
        /// Current kind.
        new: String,
    },
    /// The kind's code version changed.
    VersionChanged {
        /// Previous version.
        old: u32,
        /// Current version.
        new: u32,
    },
    /// Some params differ (dotted paths).
    ParamsChanged {
        /// The changed keys.
        keys: Vec<String>,
    },
    /// The seed differs.
    SeedChanged {
        /// Previous seed.
        old: u64,
        /// Current seed.
        new: u64,
    },
    /// Upstream outputs differ (or upstream stages will run first).
    InputChanged {
        /// The upstream stages whose output changed.
        inputs: Vec<String>,
    },
    /// External source files differ.
    SourceChanged {
        /// The changed files.
        files: Vec<String>,
    },
    /// The record exists but its object is gone.
    OutputMissing,
    /// The record exists but its object fails its digest.
    OutputCorrupt,
    /// The record file is damaged or does not match its key; it is ignored and
    /// overwritten when the stage reruns.
    RecordCorrupt {
        /// What is wrong with it.
        why: String,
    },
    /// The key differs from the last run, for no reason this stage alone can name
    /// (e.g. the last run used a different key format).
    KeyChanged,
    /// A dataset the stage reads is not on this machine (a plan without data: the
    /// key is provisional until the files are there and hashed).
    DatasetMissing {
        /// The dataset's name.
        dataset: String,
    },
}

impl std::fmt::Display for MissReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MissReason::New => write!(f, "new"),
            MissReason::KindChanged { old, new } => write!(f, "kind changed: {old} -> {new}"),
            MissReason::VersionChanged { old, new } => {
                write!(f, "version changed: {old} -> {new}")
            }
            MissReason::ParamsChanged { keys } => write!(f, "params changed: {}", keys.join(", ")),
            MissReason::SeedChanged { old, new } => write!(f, "seed changed: {old} -> {new}"),
            MissReason::InputChanged { inputs } => {
                write!(f, "input changed: {}", inputs.join(", "))
            }
            MissReason::SourceChanged { files } => {
                write!(f, "source files changed: {}", files.join(", "))
            }
            MissReason::OutputMissing => write!(f, "output missing"),
            MissReason::OutputCorrupt => write!(f, "output corrupt"),
            MissReason::RecordCorrupt { why } => {
                write!(f, "warning: record corrupt, ignored and rewritten ({why})")
            }
            MissReason::KeyChanged => write!(f, "key changed"),
            MissReason::DatasetMissing { dataset } => write!(f, "dataset not present: {dataset}"),
        }
    }
}

/// Joins several reasons into one line, as `plan` prints them.
pub fn describe(reasons: &[MissReason]) -> String {
    reasons
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> KeyFields {
        KeyFields {
            format: KEY_FORMAT,
            kind: "train".into(),
            version: 1,
            params: json!({"epochs": 2, "optimizer": {"lr": 0.001, "type": "adam"}}),
            seed: 0,
            inputs: BTreeMap::from([("data".to_string(), "aa".to_string())]),
            sources: BTreeMap::new(),
        }
    }

    #[test]
    fn same_fields_same_key_and_no_reason() {
        assert_eq!(fields().key(), fields().key());
        assert!(fields().compare(&fields()).is_empty());
    }

    #[test]
    fn nested_param_change_is_named_by_path() {
        let mut new = fields();
        new.params["optimizer"]["lr"] = json!(0.01);
        new.params["epochs"] = json!(3);
        assert_ne!(new.key(), fields().key());
        let reasons = new.compare(&fields());
        assert_eq!(
            reasons,
            vec![MissReason::ParamsChanged {
                keys: vec!["epochs".into(), "optimizer.lr".into()]
            }]
        );
        assert_eq!(describe(&reasons), "params changed: epochs, optimizer.lr");
    }

    #[test]
    fn input_and_seed_changes_are_reported() {
        let mut new = fields();
        new.inputs.insert("data".into(), "bb".into());
        new.seed = 4;
        assert_eq!(
            describe(&new.compare(&fields())),
            "seed changed: 0 -> 4; input changed: data"
        );
    }

    #[test]
    fn miss_reason_json_form_is_pinned() {
        let r = MissReason::ParamsChanged {
            keys: vec!["epochs".into()],
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"reason":"params_changed","keys":["epochs"]}"#
        );
        assert_eq!(
            serde_json::to_string(&MissReason::New).unwrap(),
            r#"{"reason":"new"}"#
        );
        let missing = MissReason::DatasetMissing {
            dataset: "mnist".into(),
        };
        assert_eq!(
            serde_json::to_string(&missing).unwrap(),
            r#"{"reason":"dataset_missing","dataset":"mnist"}"#
        );
        assert_eq!(missing.to_string(), "dataset not present: mnist");
    }
}
