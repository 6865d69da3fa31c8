//! Pipeline files: parsing, overrides, matrix expansion, validation and the DAG.
//!
//! Two steps, like ripgrep's low and high args: [`raw`] holds what the file says;
//! [`Pipeline::load`] turns it into validated, expanded [`Stage`]s in dependency order,
//! with every kind's params resolved (defaults filled, unknown keys rejected). Nothing
//! here touches the store or runs anything; every error is a [`Error`] naming the file,
//! position, stage and key.

pub mod dag;
mod error;
mod locate;
pub mod overrides;
pub mod raw;

pub use error::Error;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::stages::{self, StageKind};
use crate::suggest::nearest;
use locate::locate;
use overrides::Override;
use raw::{RawPipeline, RawStage, STAGE_FIELDS};

/// What the user selected on the command line.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A profile to apply first.
    pub profile: Option<String>,
    /// `--set` arguments, applied after the profile.
    pub sets: Vec<String>,
    /// `--only` stage names (with their upstream stages); empty means all.
    pub only: Vec<String>,
}

/// One expanded, validated stage.
#[derive(Clone)]
pub struct Stage {
    /// Unique name, e.g. `dense@seed=1`.
    pub name: String,
    /// The stage name as written in the file (`dense`).
    pub base: String,
    /// Its kind.
    pub kind: &'static dyn StageKind,
    /// Resolved params (defaults filled in).
    pub params: serde_json::Value,
    /// Its seed.
    pub seed: u64,
    /// Names of the expanded stages it needs.
    pub needs: Vec<String>,
    /// The matrix values that made this expansion, as written.
    pub matrix: BTreeMap<String, String>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("kind", &self.kind.name())
            .field("params", &self.params)
            .field("seed", &self.seed)
            .field("needs", &self.needs)
            .finish()
    }
}

/// A validated pipeline: stages expanded and in dependency order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline's name.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Its description, if any.
    pub description: Option<String>,
    /// The profile applied, if any.
    pub profile: Option<String>,
    /// Every override applied (profile first, then `--set`), for reports.
    pub overrides: Vec<Override>,
    /// The names of the profiles the file defines.
    pub profiles: Vec<String>,
    /// Stages in dependency order.
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// Finds a stage by its expanded name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Loads, overrides, expands and validates a pipeline file.
    pub fn load(path: &Path, selection: &Selection) -> Result<Pipeline, Error> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read the pipeline file: {e}")))?;
        Loader {
            path,
            source: &source,
        }
        .load(selection)
    }
}

struct Loader<'a> {
    path: &'a Path,
    source: &'a str,
}

impl Loader<'_> {
    fn err(&self, stage: &str, key: &str, message: impl Into<String>) -> Error {
        Error::file(self.path, message)
            .in_stage(stage)
            .at_key(key)
            .at(locate(self.source, stage, key))
    }

    fn load(&self, selection: &Selection) -> Result<Pipeline, Error> {
        let mut raw: RawPipeline = serde_yaml::from_str(self.source).map_err(|e| {
            let pos = e.location().map(|l| (l.line(), l.column()));
            let mut msg = e.to_string();
            if let Some(cut) = msg.find(" at line ") {
                msg.truncate(cut);
            }
            if let Some((field, _)) = msg
                .strip_prefix("unknown field `")
                .and_then(|r| r.split_once('`'))
            {
                if let Some(s) =
                    nearest(field, ["name", "description", "seed", "profiles", "stages"])
                {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
            }
            Error::file(self.path, format!("invalid pipeline file: {msg}")).at(pos)
        })?;
        let mut names = Vec::new();
        let mut stages: BTreeMap<String, RawStage> = BTreeMap::new();
        for (k, v) in &raw.stages {
            let name = k
                .as_str()
                .ok_or_else(|| Error::file(self.path, "stage names must be strings"))?
                .to_string();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return Err(self.err(
                    &name,
                    "",
                    "stage names may contain only letters, digits, `_` and `-`",
                ));
            }
            stages.insert(name.clone(), self.parse_stage(&name, v)?);
            names.push(name);
        }
        let profiles: Vec<String> = raw
            .profiles
            .keys()
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
        let overrides = self.collect_overrides(&raw, &profiles, selection)?;
        for o in &overrides {
            self.apply(&mut raw.seed, &mut stages, &names, o)?;
        }
        let kinds = self.kinds(&stages, &names)?;
        self.check_needs(&stages, &names)?;
        dag::check_acyclic(&names, |n| stages[n].needs.clone()).map_err(|cycle| {
            Error::file(
                self.path,
                format!("the stages form a cycle: {}", cycle.join(" -> ")),
            )
        })?;
        let mut expanded = Vec::new();
        for name in &names {
            expanded.extend(self.expand(name, &stages[name], kinds[name], raw.seed)?);
        }
        link_needs(&mut expanded, &stages);
        let ordered = dag::topological(&expanded);
        let stages = select(ordered, &selection.only).map_err(|m| Error::file(self.path, m))?;
        Ok(Pipeline {
            name: raw.name,
            file: self.path.to_path_buf(),
            description: raw.description,
            profile: selection.profile.clone(),
            overrides,
            profiles,
            stages,
        })
    }

    fn parse_stage(&self, name: &str, value: &Value) -> Result<RawStage, Error> {
        // YAML merge keys (`params: {<<: *base, lr: ...}`) share settings between stages.
        let mut value = value.clone();
        value
            .apply_merge()
            .map_err(|e| self.err(name, "", format!("invalid merge key (`<<`): {e}")))?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let mut key = if path == "." { String::new() } else { path };
            let mut msg = inner.clone();
            if let Some((field, _)) = inner
                .strip_prefix("unknown field `")
                .and_then(|r| r.split_once('`'))
            {
                key = field.to_string();
                msg = format!(
                    "unknown stage field `{field}` (valid: {})",
                    STAGE_FIELDS.join(", ")
                );
                if let Some(s) = nearest(field, STAGE_FIELDS.iter().copied()) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
            }
            self.err(name, &key, msg)
        })
    }

    fn collect_overrides(
        &self,
        raw: &RawPipeline,
        profiles: &[String],
        selection: &Selection,
    ) -> Result<Vec<Override>, Error> {
        let mut out = Vec::new();
        if let Some(profile) = &selection.profile {
            let value = raw
                .profiles
                .get(Value::String(profile.clone()))
                .ok_or_else(|| {
                    let hint = nearest(profile, profiles.iter().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    Error::file(
                        self.path,
                        format!(
                            "no profile `{profile}` (profiles: {}){hint}",
                            display_list(profiles)
                        ),
                    )
                })?;
            out.extend(
                overrides::from_profile(profile, value).map_err(|m| Error::file(self.path, m))?,
            );
        }
        for set in &selection.sets {
            out.push(overrides::parse_set(set).map_err(|m| Error::file(self.path, m))?);
        }
        Ok(out)
    }

    fn apply(
        &self,
        seed: &mut u64,
        stages: &mut BTreeMap<String, RawStage>,
        names: &[String],
        o: &Override,
    ) -> Result<(), Error> {
        let as_seed = |v: &Value| {
            v.as_u64().ok_or_else(|| {
                Error::file(
                    self.path,
                    format!("{}: a seed must be a non-negative integer", o.origin),
                )
            })
        };
        if o.path.len() == 1 && o.path[0] == "seed" {
            *seed = as_seed(&o.value)?;
            return Ok(());
        }
        let stage_name = &o.path[0];
        let Some(stage) = stages.get_mut(stage_name) else {
            let hint = nearest(stage_name, names.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(Error::file(
                self.path,
                format!(
                    "{}: no stage `{stage_name}` (stages: {}){hint}",
                    o.origin,
                    display_list(names)
                ),
            ));
        };
        match o.path.get(1).map(String::as_str) {
            None => Err(Error::file(
                self.path,
                format!(
                    "{}: name a key after the stage, e.g. {stage_name}.epochs",
                    o.origin
                ),
            )),
            Some("seed") if o.path.len() == 2 => {
                stage.seed = Some(as_seed(&o.value)?);
                Ok(())
            }
            Some("matrix") if o.path.len() > 2 => {
                stage
                    .matrix
                    .insert(Value::String(o.path[2..].join(".")), o.value.clone());
                Ok(())
            }
            Some(_) => {
                overrides::set_path(&mut stage.params, &o.path[1..], o.value.clone());
                Ok(())
            }
        }
    }

    fn kinds(
        &self,
        stages: &BTreeMap<String, RawStage>,
        names: &[String],
    ) -> Result<BTreeMap<String, &'static dyn StageKind>, Error> {
        let mut out = BTreeMap::new();
        for name in names {
            let kind_name = &stages[name].kind;
            let kind = stages::find_kind(kind_name).ok_or_else(|| {
                let all: Vec<&str> = stages::KINDS.iter().map(|k| k.name()).collect();
                let hint = nearest(kind_name, all.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                self.err(
                    name,
                    "kind",
                    format!(
                        "unknown kind `{kind_name}` (kinds: {}){hint}",
                        all.join(", ")
                    ),
                )
            })?;
            out.insert(name.clone(), kind);
        }
        Ok(out)
    }

    fn check_needs(
        &self,
        stages: &BTreeMap<String, RawStage>,
        names: &[String],
    ) -> Result<(), Error> {
        for name in names {
            for need in &stages[name].needs {
                if !stages.contains_key(need) {
                    let hint = nearest(need, names.iter().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(self.err(
                        name,
                        "needs",
                        format!("needs `{need}`, but no stage has that name{hint}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn expand(
        &self,
        name: &str,
        raw: &RawStage,
        kind: &'static dyn StageKind,
        pipeline_seed: u64,
    ) -> Result<Vec<Stage>, Error> {
        let keys = kind.param_keys();
        let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
        for (k, v) in &raw.matrix {
            let key = k
                .as_str()
                .ok_or_else(|| self.err(name, "matrix", "matrix keys must be strings"))?
                .to_string();
            let top = key.split('.').next().unwrap_or_default();
            if key != "seed" && !keys.iter().any(|p| p == top) {
                let hint = nearest(top, keys.iter().map(String::as_str))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(self.err(
                    name,
                    &format!("matrix.{key}"),
                    format!("matrix over `{key}`, but kind `{}` has no param `{top}` (params: seed, {}){hint}", kind.name(), keys.join(", ")),
                ));
            }
            let values = v.as_sequence().ok_or_else(|| {
                self.err(
                    name,
                    &format!("matrix.{key}"),
                    "a matrix entry must be a list of values (an empty list leaves the stage out)",
                )
            })?;
            axes.push((key, values.clone()));
        }
        let mut out = Vec::new();
        for combo in product(&axes) {
            let mut params = raw.params.clone();
            let mut seed = raw.seed;
            let mut matrix = BTreeMap::new();
            let mut suffix = Vec::new();
            for (key, value) in &combo {
                let text = scalar_text(value);
                suffix.push(format!("{key}={text}"));
                matrix.insert(key.clone(), text);
                if key == "seed" {
                    seed = Some(value.as_u64().ok_or_else(|| {
                        self.err(name, "matrix.seed", "seeds must be non-negative integers")
                    })?);
                } else {
                    let path: Vec<String> = key.split('.').map(String::from).collect();
                    overrides::set_path(&mut params, &path, value.clone());
                }
            }
            if let Some(map) = params.as_mapping_mut() {
                if let Some(v) = map.remove("seed") {
                    let s = v.as_u64().ok_or_else(|| {
                        self.err(name, "seed", "a seed must be a non-negative integer")
                    })?;
                    seed = seed.or(Some(s));
                }
            }
            let resolved = kind
                .resolve(&params)
                .map_err(|e| self.err(name, &e.key, e.message))?;
            let full = if suffix.is_empty() {
                name.to_string()
            } else {
                format!("{name}@{}", suffix.join(","))
            };
            out.push(Stage {
                name: full,
                base: name.to_string(),
                kind,
                params: resolved,
                seed: seed.unwrap_or(pipeline_seed),
                needs: Vec::new(),
                matrix,
            });
        }
        Ok(out)
    }
}

/// Every combination of the axes' values, in order.
fn product(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

/// A YAML scalar as it appears in a stage name.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Resolves base-name needs to expanded names: a need on a matrix stage means all its
/// expansions, narrowed to those that agree on matrix keys both stages share.
fn link_needs(expanded: &mut [Stage], raw: &BTreeMap<String, RawStage>) {
    let snapshot: Vec<(String, String, BTreeMap<String, String>)> = expanded
        .iter()
        .map(|s| (s.name.clone(), s.base.clone(), s.matrix.clone()))
        .collect();
    for stage in expanded.iter_mut() {
        let mut needs = Vec::new();
        for need in &raw[&stage.base].needs {
            for (name, base, matrix) in &snapshot {
                let agrees = matrix
                    .iter()
                    .all(|(k, v)| stage.matrix.get(k).is_none_or(|mine| mine == v));
                if base == need && agrees {
                    needs.push(name.clone());
                }
            }
        }
        stage.needs = needs;
    }
}

/// Keeps the stages named by `--only` (base or expanded names) and everything they need.
fn select(stages: Vec<Stage>, only: &[String]) -> Result<Vec<Stage>, String> {
    if only.is_empty() {
        return Ok(stages);
    }
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for o in only {
        let matched: Vec<&Stage> = stages
            .iter()
            .filter(|s| &s.name == o || &s.base == o)
            .collect();
        if matched.is_empty() {
            let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
            let hint = nearest(o, names.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(format!("--only {o}: no such stage{hint}"));
        }
        keep.extend(matched.into_iter().map(|s| s.name.clone()));
    }
    for s in stages.iter().rev() {
        if keep.contains(&s.name) {
            keep.extend(s.needs.iter().cloned());
        }
    }
    Ok(stages
        .into_iter()
        .filter(|s| keep.contains(&s.name))
        .collect())
}

fn display_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
