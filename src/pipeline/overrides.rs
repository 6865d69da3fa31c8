//! `--set` and profile overrides: `STAGE.KEY.SUBKEY=VALUE` with VALUE parsed as YAML.
//!
//! `seed=N` sets the pipeline seed, `STAGE.seed=N` a stage's seed,
//! `STAGE.matrix.KEY=[..]` a stage's matrix; anything else sets a param.

use serde_yaml::{Mapping, Value};

/// One override: where it goes, the value, and where it came from (for errors).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted path: `seed`, or `STAGE.…`.
    pub path: Vec<String>,
    /// The new value.
    pub value: Value,
    /// `--set dense.epochs=2` or `profile smoke`.
    pub origin: String,
}

/// Parses a `--set` argument.
pub fn parse_set(arg: &str) -> Result<Override, String> {
    let (path, value) = arg.split_once('=').ok_or_else(|| {
        format!("--set {arg}: expected STAGE.KEY=VALUE (for example --set dense.epochs=2)")
    })?;
    let value: Value = serde_yaml::from_str(value)
        .map_err(|e| format!("--set {arg}: the value is not valid YAML: {e}"))?;
    Ok(Override {
        path: split_path(path, arg)?,
        value,
        origin: format!("--set {arg}"),
    })
}

fn split_path(path: &str, origin: &str) -> Result<Vec<String>, String> {
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("{origin}: empty segment in key `{path}`"));
    }
    Ok(parts)
}

/// Reads the overrides of a profile (a mapping of dotted keys to values).
pub fn from_profile(name: &str, profile: &Value) -> Result<Vec<Override>, String> {
    let map = profile
        .as_mapping()
        .ok_or_else(|| format!("profile `{name}` must be a mapping of STAGE.KEY: VALUE"))?;
    map.iter()
        .map(|(k, v)| {
            let key = k.as_str().ok_or_else(|| {
                format!("profile `{name}`: keys must be strings like dense.epochs")
            })?;
            Ok(Override {
                path: split_path(key, &format!("profile `{name}`"))?,
                value: v.clone(),
                origin: format!("profile `{name}`"),
            })
        })
        .collect()
}

/// Sets `value` at a dotted path inside a mapping, creating mappings on the way.
pub fn set_path(target: &mut Value, path: &[String], value: Value) {
    if path.is_empty() {
        *target = value;
        return;
    }
    if !target.is_mapping() {
        *target = Value::Mapping(Mapping::new());
    }
    let map = target.as_mapping_mut().expect("made a mapping above");
    let key = Value::String(path[0].clone());
    let slot = map.entry(key).or_insert(Value::Null);
    set_path(slot, &path[1..], value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_values_and_nested_paths() {
        let o = parse_set("dense.optimizer.lr=1e-3").unwrap();
        assert_eq!(o.path, ["dense", "optimizer", "lr"]);
        assert_eq!(o.value, Value::from(0.001));
        let o = parse_set("dense.model.hidden=[10, 20]").unwrap();
        assert_eq!(o.value, serde_yaml::from_str::<Value>("[10, 20]").unwrap());
        assert!(parse_set("dense.epochs")
            .unwrap_err()
            .contains("expected STAGE.KEY=VALUE"));
    }

    #[test]
    fn set_path_creates_and_replaces() {
        let mut v: Value = serde_yaml::from_str("{a: 1, b: {c: 2}}").unwrap();
        set_path(&mut v, &["b".into(), "c".into()], Value::from(3));
        set_path(&mut v, &["d".into(), "e".into()], Value::from(4));
        assert_eq!(
            v,
            serde_yaml::from_str::<Value>("{a: 1, b: {c: 3}, d: {e: 4}}").unwrap()
        );
    }
}
