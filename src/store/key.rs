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
//! | `sources`  | for each external file a dataset stage reads (MNIST's and Fashion-MNIST's IDX files, CIFAR's binary batch files), by file name, its sha256 |
//! | `pending`  | only in a plan's provisional key: upstream stages still to run, by role, with their provisional keys; absent from the JSON when empty, so final keys hash the fields above alone |
//!
//! What never goes in, and why:
//! - the binary's hash or build time: a rebuild must not invalidate the cache
//!   (bump `version` instead when results change meaning);
//! - absolute paths and mtimes: moving a checkout or touching a file changes no result;
//!   external files enter by content only;
//! - thread count, device, host and CPU kernel (the AVX-512 or the portable gemm
//!   products, another summation order): recorded in the manifest for provenance
//!   (`threads`, `device`, `host`, `cpu_products`). Results are byte-identical for a
//!   given thread count and kernel and differ in the last digits across kernels, but a
//!   cache hit across machines is wanted, so a result computed on one is reused on the
//!   other.
//!
//! The fields are stored in full beside the hash (in the record and in `refs/`) only so
//! that [`KeyFields::compare`] can say *why* a stage is stale: a cache miss is data
//! ([`MissReason`], one fact per reason, with old and new values where there are two),
//! rendered to text only by the CLI and the run reporter ([`describe`]).
//!
//! A changed param is one [`MissReason::ParamChanged`] per dotted path rather than one
//! reason listing every path: each reason then stands alone with its own old and new
//! value (as cargo's `DirtyReason` does), and a script reading `plan --json` filters
//! reasons by `reason` without walking a nested list.

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
    /// Upstream stages that will run first, by role, with their provisional keys (a
    /// plan's view; they are not in `inputs`). Always empty in records and refs: a
    /// stage runs only once all its inputs are final. Left out of the JSON when empty,
    /// so a final key is the hash of the other fields alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, String>,
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
        if self.format != old.format {
            reasons.push(MissReason::FormatChanged {
                old: old.format,
                new: self.format,
            });
        }
        if self.kind != old.kind {
            reasons.push(MissReason::KindChanged {
                old: old.kind.clone(),
                new: self.kind.clone(),
            });
        } else if self.version != old.version {
            reasons.push(MissReason::VersionChanged {
                old: old.version,
                new: self.version,
            });
        }
        diff_params("", &old.params, &self.params, &mut reasons);
        if self.seed != old.seed {
            reasons.push(MissReason::SeedChanged {
                old: old.seed,
                new: self.seed,
            });
        }
        let mut inputs = changed_entries(&old.inputs, &self.inputs);
        inputs.extend(self.pending.keys().cloned());
        inputs.sort();
        inputs.dedup();
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

/// Pushes one [`MissReason::ParamChanged`] for each dotted path at which two JSON
/// values differ, in path order. Objects are compared key by key, and lists of
/// objects of the same length item by item (`references[3].paper`); anything else
/// (numbers, strings, other lists) as a whole.
fn diff_params(prefix: &str, old: &Value, new: &Value, out: &mut Vec<MissReason>) {
    match (old, new) {
        (Value::Array(a), Value::Array(b))
            if a.len() == b.len() && a.iter().chain(b).any(Value::is_object) =>
        {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_params(&format!("{prefix}[{i}]"), x, y, out);
            }
        }
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
                    (Some(x), Some(y)) => diff_params(&path, x, y, out),
                    (x, y) => out.push(MissReason::ParamChanged {
                        path,
                        old: x.cloned(),
                        new: y.cloned(),
                    }),
                }
            }
        }
        (a, b) if a != b => out.push(MissReason::ParamChanged {
            path: if prefix.is_empty() {
                "params".to_string()
            } else {
                prefix.to_string()
            },
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
        _ => {}
    }
}

/// Reads a present JSON field as `Some`, even when it is `null` (serde's own
/// `Option` would read `null` as absent, and a `null` param as no param).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Why a stage must run: a cache miss as data, rendered by the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MissReason {
    /// No record of this stage name and no cached result for its key.
    New,
    /// The key schema ([`KEY_FORMAT`]) changed since the last run.
    FormatChanged {
        /// Previous format.
        old: u32,
        /// Current format.
        new: u32,
    },
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
    /// One param differs; a change at several paths is one reason per path.
    ParamChanged {
        /// Dotted path of the param (`optimizer.lr`), or `params` when the params as a
        /// whole are not both objects.
        path: String,
        /// Its value in the last run; absent when the param did not exist then.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        old: Option<Value>,
        /// Its value now; absent when the param no longer exists.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        new: Option<Value>,
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
    /// (e.g. the way key fields are hashed changed).
    KeyChanged,
    /// A dataset the stage reads is not on this machine (a plan without data: the
    /// key is provisional until the files are there and hashed).
    DatasetMissing {
        /// The dataset's name.
        dataset: String,
    },
}

/// Longest rendering of a param value, in characters; longer ones are cut.
const VALUE_WIDTH: usize = 60;

/// A param value as compact JSON, cut to [`VALUE_WIDTH`] characters (ending in
/// `...`), or `(absent)` for a param that does not exist on that side.
fn render_value(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(absent)".to_string();
    };
    let text = value.to_string();
    if text.chars().count() <= VALUE_WIDTH {
        return text;
    }
    let mut cut: String = text.chars().take(VALUE_WIDTH - 3).collect();
    cut.push_str("...");
    cut
}

impl std::fmt::Display for MissReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MissReason::New => write!(f, "new"),
            MissReason::FormatChanged { old, new } => {
                write!(f, "key format changed: {old} -> {new}")
            }
            MissReason::KindChanged { old, new } => write!(f, "kind changed: {old} -> {new}"),
            MissReason::VersionChanged { old, new } => {
                write!(f, "version changed: {old} -> {new}")
            }
            MissReason::ParamChanged { path, old, new } => write!(
                f,
                "param {path} changed: {} -> {}",
                render_value(old.as_ref()),
                render_value(new.as_ref())
            ),
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

/// Joins several reasons into one line, as `plan` and `run` print them.
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
            pending: BTreeMap::new(),
        }
    }

    fn param(path: &str, old: Option<Value>, new: Option<Value>) -> MissReason {
        MissReason::ParamChanged {
            path: path.into(),
            old,
            new,
        }
    }

    #[test]
    fn lists_of_objects_are_compared_item_by_item() {
        let mut old = fields();
        old.params["references"] =
            json!([{"stage": "a", "paper": 1.0}, {"stage": "b", "paper": 2.0}]);
        let mut new = old.clone();
        new.params["references"][1]["paper"] = json!(3.0);
        assert_eq!(
            describe(&new.compare(&old)),
            "param references[1].paper changed: 2.0 -> 3.0"
        );
        new.params["references"] = json!([{"stage": "a", "paper": 1.0}]);
        assert!(describe(&new.compare(&old)).starts_with("param references changed: "));
    }

    #[test]
    fn same_fields_same_key_and_no_reason() {
        assert_eq!(fields().key(), fields().key());
        assert!(fields().compare(&fields()).is_empty());
    }

    #[test]
    fn a_final_key_hashes_the_fields_without_pending() {
        // The hash of the canonical JSON of these fields as keys were made before
        // `pending` existed: no final key may change.
        let text = serde_json::to_string(&fields()).unwrap();
        assert!(!text.contains("pending"), "{text}");
        assert_eq!(
            fields().key(),
            "455d7153dd3f82cd8565b966ffcf47fcf0ae9650e534e64525c7298c400dbce0"
        );
    }

    #[test]
    fn a_pending_input_makes_a_provisional_key_and_counts_as_changed() {
        let mut new = fields();
        new.inputs.clear();
        new.pending.insert("data".into(), "k1".into());
        assert_ne!(new.key(), fields().key());
        let mut other = new.clone();
        other.pending.insert("data".into(), "k2".into());
        assert_ne!(new.key(), other.key());
        assert_eq!(
            new.compare(&fields()),
            vec![MissReason::InputChanged {
                inputs: vec!["data".into()]
            }]
        );
    }

    #[test]
    fn nested_param_change_is_one_reason_per_path_with_values() {
        let mut new = fields();
        new.params["optimizer"]["lr"] = json!(0.01);
        new.params["epochs"] = json!(3);
        assert_ne!(new.key(), fields().key());
        let reasons = new.compare(&fields());
        assert_eq!(
            reasons,
            vec![
                param("epochs", Some(json!(2)), Some(json!(3))),
                param("optimizer.lr", Some(json!(0.001)), Some(json!(0.01))),
            ]
        );
        assert_eq!(
            describe(&reasons),
            "param epochs changed: 2 -> 3; param optimizer.lr changed: 0.001 -> 0.01"
        );
    }

    #[test]
    fn a_param_on_one_side_only_has_no_value_on_the_other() {
        let mut new = fields();
        new.params["optimizer"]["momentum"] = json!(0.9);
        new.params.as_object_mut().unwrap().remove("epochs");
        assert_eq!(
            new.compare(&fields()),
            vec![
                param("epochs", Some(json!(2)), None),
                param("optimizer.momentum", None, Some(json!(0.9))),
            ]
        );
    }

    #[test]
    fn a_format_change_is_not_a_version_change() {
        let mut new = fields();
        new.format = KEY_FORMAT + 1;
        assert_eq!(
            new.compare(&fields()),
            vec![MissReason::FormatChanged {
                old: KEY_FORMAT,
                new: KEY_FORMAT + 1
            }]
        );
        new.version = 2;
        assert_eq!(
            describe(&new.compare(&fields())),
            format!(
                "key format changed: {KEY_FORMAT} -> {}; version changed: 1 -> 2",
                KEY_FORMAT + 1
            )
        );
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
    fn a_long_value_is_cut_in_the_message_but_whole_in_the_json() {
        let long =
            json!([1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]);
        let r = param("model.hidden", Some(json!([8])), Some(long.clone()));
        let message = r.to_string();
        assert_eq!(
            message,
            "param model.hidden changed: [8] -> [1000,1000,1000,1000,1000,1000,1000,1000,1000,1000,1000,1..."
        );
        assert_eq!(render_value(Some(&long)).chars().count(), VALUE_WIDTH);
        assert_eq!(serde_json::to_value(&r).unwrap()["new"], long);
    }

    #[test]
    fn a_null_param_reads_back_as_present() {
        let r = param("limit", Some(Value::Null), Some(json!(5)));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"reason":"param_changed","path":"limit","old":null,"new":5}"#
        );
        assert_eq!(serde_json::from_str::<MissReason>(&text).unwrap(), r);
        assert_eq!(r.to_string(), "param limit changed: null -> 5");
    }

    #[test]
    fn every_reason_has_a_pinned_json_form_and_message() {
        let cases = [
            (MissReason::New, r#"{"reason":"new"}"#, "new"),
            (
                MissReason::FormatChanged { old: 1, new: 2 },
                r#"{"reason":"format_changed","old":1,"new":2}"#,
                "key format changed: 1 -> 2",
            ),
            (
                MissReason::KindChanged {
                    old: "train".into(),
                    new: "prune".into(),
                },
                r#"{"reason":"kind_changed","old":"train","new":"prune"}"#,
                "kind changed: train -> prune",
            ),
            (
                MissReason::VersionChanged { old: 1, new: 2 },
                r#"{"reason":"version_changed","old":1,"new":2}"#,
                "version changed: 1 -> 2",
            ),
            (
                param("optimizer.lr", Some(json!(0.001)), Some(json!(0.01))),
                r#"{"reason":"param_changed","path":"optimizer.lr","old":0.001,"new":0.01}"#,
                "param optimizer.lr changed: 0.001 -> 0.01",
            ),
            (
                param("optimizer.type", Some(json!("adam")), Some(json!("sgd"))),
                r#"{"reason":"param_changed","path":"optimizer.type","old":"adam","new":"sgd"}"#,
                r#"param optimizer.type changed: "adam" -> "sgd""#,
            ),
            (
                param("validation", None, Some(json!(50))),
                r#"{"reason":"param_changed","path":"validation","new":50}"#,
                "param validation changed: (absent) -> 50",
            ),
            (
                param("validation", Some(json!(50)), None),
                r#"{"reason":"param_changed","path":"validation","old":50}"#,
                "param validation changed: 50 -> (absent)",
            ),
            (
                MissReason::SeedChanged { old: 0, new: 1 },
                r#"{"reason":"seed_changed","old":0,"new":1}"#,
                "seed changed: 0 -> 1",
            ),
            (
                MissReason::InputChanged {
                    inputs: vec!["data".into(), "net".into()],
                },
                r#"{"reason":"input_changed","inputs":["data","net"]}"#,
                "input changed: data, net",
            ),
            (
                MissReason::SourceChanged {
                    files: vec!["train-images".into()],
                },
                r#"{"reason":"source_changed","files":["train-images"]}"#,
                "source files changed: train-images",
            ),
            (
                MissReason::OutputMissing,
                r#"{"reason":"output_missing"}"#,
                "output missing",
            ),
            (
                MissReason::OutputCorrupt,
                r#"{"reason":"output_corrupt"}"#,
                "output corrupt",
            ),
            (
                MissReason::RecordCorrupt {
                    why: "not JSON".into(),
                },
                r#"{"reason":"record_corrupt","why":"not JSON"}"#,
                "warning: record corrupt, ignored and rewritten (not JSON)",
            ),
            (
                MissReason::KeyChanged,
                r#"{"reason":"key_changed"}"#,
                "key changed",
            ),
            (
                MissReason::DatasetMissing {
                    dataset: "mnist".into(),
                },
                r#"{"reason":"dataset_missing","dataset":"mnist"}"#,
                "dataset not present: mnist",
            ),
        ];
        for (reason, json, message) in cases {
            assert_eq!(serde_json::to_string(&reason).unwrap(), json);
            assert_eq!(serde_json::from_str::<MissReason>(json).unwrap(), reason);
            assert_eq!(reason.to_string(), message);
        }
    }
}
