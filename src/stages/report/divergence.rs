//! The report's "Divergences" section, generated from data: for each setting the
//! pipeline file lists (`divergences:`), what the paper's text says, what the authors'
//! code does, and the value this run used, read from the stage's own resolved params.
//! A reader sees whether a verdict was reached on the paper's protocol, the authors'
//! code, both (they agree) or neither.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::names::base_name;
use crate::report::{Section, Table};
use crate::stages::{Input, ParamError, StageContext, Upstream};

/// One setting where a stage's run, the paper's text and the authors' code may differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Divergence {
    /// The stage (base name) whose params hold the setting, e.g. `adn_10_bain`.
    pub stage: String,
    /// Dotted path of the setting in the stage's params: `reset_optimizer`,
    /// `model.context_percent_on`.
    pub param: String,
    /// What the paper's text says (absent: it does not say).
    #[serde(default)]
    pub paper: Option<Value>,
    /// What the authors' code does (absent: not known).
    #[serde(default)]
    pub code: Option<Value>,
    /// The value the kind uses when the param is not written in the stage's params
    /// (a param left out of the key at its default, such as `context_percent_on`).
    #[serde(default)]
    pub default: Option<Value>,
    /// Where the paper's and the code's values come from.
    pub source: String,
}

/// Checks at validation that each divergence whose stage is in `needs` names a param
/// that stage has (or gives its default). A stage that is not in `needs` (a profile
/// can empty its matrix) shows as "not run".
pub fn check(divergences: &[Divergence], inputs: &[Upstream]) -> Result<(), ParamError> {
    for (i, d) in divergences.iter().enumerate() {
        let matching: Vec<&Upstream> = inputs
            .iter()
            .filter(|u| u.stage == d.stage || u.base() == d.stage)
            .collect();
        if matching.is_empty() {
            continue;
        }
        if d.default.is_none() && matching.iter().all(|u| !has_path(u.params, &d.param)) {
            return Err(ParamError::new(
                format!("divergences[{i}].param"),
                format!(
                    "stage `{}` has no param `{}` (give `default:` if the kind leaves it out at its default)",
                    d.stage, d.param
                ),
            ));
        }
    }
    Ok(())
}

/// The section, or `None` when the pipeline lists no divergences.
pub fn section(ctx: &StageContext, divergences: &[Divergence]) -> Option<Section> {
    if divergences.is_empty() {
        return None;
    }
    let rows = divergences
        .iter()
        .map(|d| {
            let (cell, ours) = match ours(ctx, d) {
                None => ("(not run)".to_string(), None),
                Some(None) => ("(not set)".to_string(), None),
                Some(Some(v)) => (show(&v), Some(v)),
            };
            let follows = follows(ours.as_ref(), d.paper.as_ref(), d.code.as_ref());
            vec![
                d.stage.clone(),
                d.param.clone(),
                cell,
                d.paper.as_ref().map_or("—".into(), show),
                d.code.as_ref().map_or("—".into(), show),
                follows.into(),
                d.source.clone(),
            ]
        })
        .collect();
    let columns = [
        "stage",
        "setting",
        "ours",
        "paper's text",
        "authors' code",
        "ours follows",
        "source",
    ]
    .map(String::from)
    .to_vec();
    Some(
        Section::new("Divergences")
            .paragraph(
                "Where the paper's text, the authors' code and this run differ, setting by setting. \
                 `ours` is read from each stage's resolved params; `—` means the paper or the code does not say.",
            )
            .table(Table::new(columns, rows)),
    )
}

/// The run's value, from the first input of the stage (matrix expansions share it):
/// `None` when the stage is not an input, `Some(None)` when its params do not set it
/// and no default is given (e.g. early stopping switched off).
fn ours(ctx: &StageContext, d: &Divergence) -> Option<Option<Value>> {
    let input: &Input = ctx
        .inputs
        .values()
        .find(|i| i.stage == d.stage || base_name(&i.stage) == d.stage)?;
    Some(
        lookup(&input.params, &d.param)
            .filter(|v| !v.is_null())
            .cloned()
            .or_else(|| d.default.clone()),
    )
}

/// Whether the params hold the path, or a `null` on the way to it (a block switched
/// off, such as `early_stopping: null`).
fn has_path(params: &Value, path: &str) -> bool {
    let mut at = params;
    for key in path.split('.') {
        match at.get(key) {
            Some(Value::Null) => return true,
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

/// The value at a dotted path.
fn lookup<'a>(params: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(params, |v, key| v.get(key))
}

/// Which protocol the run's value follows.
fn follows(ours: Option<&Value>, paper: Option<&Value>, code: Option<&Value>) -> &'static str {
    let Some(ours) = ours else {
        return "—";
    };
    let same = |other: Option<&Value>| other.is_some_and(|o| values_equal(o, ours));
    match (same(paper), same(code)) {
        (true, true) => "both",
        (true, false) => "the paper",
        (false, true) => "the code",
        (false, false) => "neither",
    }
}

/// Numbers compare by value (`0.05` written in YAML and `5e-2` serialized are equal).
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A value as a table cell: strings bare, everything else as compact JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn follows_names_the_protocol_a_value_matches() {
        let (a, b) = (json!(0.05), json!(0.1));
        assert_eq!(follows(Some(&a), Some(&a), Some(&b)), "the paper");
        assert_eq!(follows(Some(&b), Some(&a), Some(&b)), "the code");
        assert_eq!(follows(Some(&a), Some(&a), Some(&a)), "both");
        assert_eq!(follows(Some(&json!(0.2)), Some(&a), None), "neither");
        assert_eq!(follows(None, Some(&a), None), "—");
        assert!(values_equal(&json!(5e-2), &json!(0.05)));
    }

    #[test]
    fn lookup_walks_dotted_paths() {
        let p = json!({"model": {"context_percent_on": 0.05}, "reset_optimizer": false});
        assert_eq!(lookup(&p, "reset_optimizer"), Some(&json!(false)));
        assert_eq!(lookup(&p, "model.context_percent_on"), Some(&json!(0.05)));
        assert_eq!(lookup(&p, "model.segments"), None);
        let off = json!({"early_stopping": null});
        assert!(has_path(&off, "early_stopping.metric"));
        assert!(!has_path(&p, "model.segments"));
        assert!(has_path(&p, "model.context_percent_on"));
    }
}
