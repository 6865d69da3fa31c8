//! Pipeline files: parsing, overrides, matrix expansion, validation and the DAG.
//!
//! Two steps, like ripgrep's low and high args: [`raw`] holds what the file says;
//! [`Pipeline::load`] turns it into validated, expanded [`Stage`]s in dependency order,
//! with every kind's params resolved (defaults filled, unknown keys rejected). Nothing
//! here touches the store or runs anything; every error is a [`Error`] naming the file,
//! position, stage and key.

pub mod dag;
mod depth;
mod error;
mod locate;
pub mod names;
pub mod overrides;
pub mod raw;

pub use error::Error;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::stages::{self, StageKind, Upstream};
use crate::suggest::hint;
use locate::locate;
use overrides::Override;
use raw::{RawPipeline, RawStage, STAGE_FIELDS};

/// Most stages one pipeline may expand to: far above any real pipeline (paper.yaml
/// has about 60), low enough that expanding and planning them stays instant.
pub const MAX_EXPANSIONS: usize = 10_000;

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
    /// The profile applied, if any.
    pub profile: Option<String>,
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
        let source = read_source(path)
            .map_err(|e| Error::file(path, format!("cannot read the pipeline file: {e}")))?;
        Loader {
            path,
            source: &source,
        }
        .load(selection)
    }
}

/// Reads a pipeline file: a regular file of at most [`depth::MAX_BYTES`] bytes of UTF-8
/// (a FIFO or `/dev/zero` would otherwise block or never end).
fn read_source(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    if !std::fs::metadata(path)?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(depth::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > depth::MAX_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} bytes", depth::MAX_BYTES),
        ));
    }
    String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
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
        depth::check(self.source).map_err(|m| Error::file(self.path, m))?;
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
                msg.push_str(&hint(
                    field,
                    ["name", "description", "seed", "profiles", "stages"],
                ));
            }
            Error::file(self.path, format!("invalid pipeline file: {msg}")).at(pos)
        })?;
        names::check_component(&raw.name).map_err(|m| {
            Error::file(self.path, format!("the pipeline `name` {m}"))
                .at_key("name")
                .at(top_level_line(self.source, "name"))
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
        let mut budget = MAX_EXPANSIONS;
        for name in &names {
            expanded.extend(self.expand(
                name,
                &stages[name],
                kinds[name],
                raw.seed,
                &mut budget,
            )?);
        }
        link_needs(&mut expanded, &stages);
        self.check_inputs(&expanded)?;
        let ordered = dag::topological(&expanded);
        let stages = select(ordered, &selection.only).map_err(|m| Error::file(self.path, m))?;
        Ok(Pipeline {
            name: raw.name,
            file: self.path.to_path_buf(),
            profile: selection.profile.clone(),
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
                msg.push_str(&hint(field, STAGE_FIELDS.iter().copied()));
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
                    let hint = hint(profile, profiles.iter().map(String::as_str));
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
            let hint = hint(stage_name, names.iter().map(String::as_str));
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
            Some(field @ ("kind" | "needs"))
                if !stages::find_kind(&stage.kind)
                    .is_some_and(|k| k.param_keys().iter().any(|p| p == field)) =>
            {
                Err(Error::file(
                    self.path,
                    format!(
                        "{}: `{field}` is part of the stage's definition in the file, not a param; --set changes params ({stage_name}.KEY), seeds ({stage_name}.seed) and matrices ({stage_name}.matrix.KEY)",
                        o.origin
                    ),
                )
                .in_stage(stage_name)
                .at_key(field))
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
                let hint = hint(kind_name, all.iter().copied());
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
                    let hint = hint(need, names.iter().map(String::as_str));
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

    /// Lets each kind check what its `needs` give it, before anything runs.
    fn check_inputs(&self, expanded: &[Stage]) -> Result<(), Error> {
        for stage in expanded {
            let inputs: Vec<Upstream> = stage
                .needs
                .iter()
                .filter_map(|n| expanded.iter().find(|s| &s.name == n))
                .map(|s| Upstream {
                    stage: &s.name,
                    kind: s.kind.name(),
                    params: &s.params,
                })
                .collect();
            stage
                .kind
                .check_inputs(&stage.params, &inputs)
                .map_err(|e| {
                    let message = format!("stage `{}`: {}", stage.name, e.message);
                    self.err(&stage.base, &e.key, message)
                })?;
        }
        Ok(())
    }

    fn expand(
        &self,
        name: &str,
        raw: &RawStage,
        kind: &'static dyn StageKind,
        pipeline_seed: u64,
        budget: &mut usize,
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
                let hint = hint(top, keys.iter().map(String::as_str));
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
            for value in values {
                names::check_matrix_text(&scalar_text(value))
                    .map_err(|m| self.err(name, &format!("matrix.{key}"), m))?;
            }
            axes.push((key, values.clone()));
        }
        let count = axes
            .iter()
            .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()))
            .filter(|&n| n <= MAX_EXPANSIONS)
            .ok_or_else(|| {
                let sizes: Vec<String> = axes.iter().map(|(k, v)| format!("{k}: {}", v.len())).collect();
                self.err(
                    name,
                    "matrix",
                    format!(
                        "the matrix expands to more than {MAX_EXPANSIONS} stages ({}); split the pipeline or shorten the lists",
                        sizes.join(" x ")
                    ),
                )
            })?;
        *budget = budget.checked_sub(count).ok_or_else(|| {
            self.err(
                name,
                "matrix",
                format!("the pipeline expands to more than {MAX_EXPANSIONS} stages; split it or shorten the matrices"),
            )
        })?;
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
                names::expanded_name(name, &suffix)
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

/// A matrix value as it appears in a stage name: scalars as written, lists in flow
/// style (`[300,100]`).
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Sequence(items) => {
            let parts: Vec<String> = items.iter().map(scalar_text).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Mapping(_) => "{mapping}".into(),
        Value::Tagged(t) => scalar_text(&t.value),
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
            let names = stages
                .iter()
                .flat_map(|s| [s.base.as_str(), s.name.as_str()]);
            let hint = hint(o, names);
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

/// Line and column of a top-level key (`name:` at column 1), where present.
fn top_level_line(source: &str, key: &str) -> Option<(usize, usize)> {
    let prefix = format!("{key}:");
    source
        .lines()
        .position(|l| l.starts_with(&prefix))
        .map(|i| (i + 1, 1))
}

fn display_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two seeds of a trained network, one noise test per seed and one report over all.
    const MATRIX: &str = "
name: linking
stages:
  data:
    kind: dataset
    params: { name: synthetic }
  net:
    kind: train
    needs: [data]
    matrix: { seed: [0, 1] }
    params: { model: { type: mlp, hidden: [8] }, epochs: 1 }
  noise:
    kind: noise-eval
    needs: [data, net]
    matrix: { seed: [0, 1] }
  report:
    kind: report
    needs: [net, noise]
";

    fn load(only: &[&str]) -> Result<Pipeline, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, MATRIX).unwrap();
        let selection = Selection {
            only: only.iter().map(|s| s.to_string()).collect(),
            ..Selection::default()
        };
        Pipeline::load(&path, &selection)
    }

    fn needs(p: &Pipeline, stage: &str) -> Vec<String> {
        p.stage(stage).expect("stage exists").needs.clone()
    }

    #[test]
    fn matrix_stages_link_to_the_upstream_with_the_same_values() {
        let p = load(&[]).unwrap();
        assert_eq!(needs(&p, "net@seed=1"), ["data"]);
        assert_eq!(needs(&p, "noise@seed=1"), ["data", "net@seed=1"]);
        assert_eq!(
            needs(&p, "report"),
            ["net@seed=0", "net@seed=1", "noise@seed=0", "noise@seed=1"],
            "a stage without the matrix key needs every expansion"
        );
    }

    #[test]
    fn only_keeps_the_named_stages_and_everything_they_need() {
        let names = |p: &Pipeline| p.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let p = load(&["noise@seed=1"]).unwrap();
        assert_eq!(names(&p), ["data", "net@seed=1", "noise@seed=1"]);
        let p = load(&["net"]).unwrap();
        assert_eq!(names(&p), ["data", "net@seed=0", "net@seed=1"]);
        let err = load(&["nosie"]).unwrap_err().to_string();
        assert!(err.contains("--only nosie: no such stage"), "{err}");
        assert!(err.contains("did you mean"), "{err}");
    }
}
