//! Typed parsing of stage params with errors that name the key and suggest a fix.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// A params error: the dotted key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// Dotted path of the offending key (`optimizer.lr`), or empty for the whole block.
    pub key: String,
    /// Human-readable message, with a suggestion where one exists.
    pub message: String,
}

impl ParamError {
    /// An error about a given key.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ParamError {
        ParamError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Deserializes typed params, turning serde's message into a [`ParamError`]
/// that names the key path and, for an unknown key, the nearest valid name.
///
/// The user's top-level keys are checked against the keys of the serialized defaults
/// and laid over them before serde sees them. Serde cannot reject unknown keys of a
/// struct that embeds another with `#[serde(flatten)]` (as the training kinds embed
/// [`crate::stages::training::Training`]), and the overlay gives each kind its own
/// defaults for the embedded fields. Nested blocks keep their own
/// `deny_unknown_fields`. `optional` names top-level keys that the serialized defaults
/// leave out (see [`crate::stages::TypedStage::OPTIONAL_KEYS`]).
pub fn parse_typed<T: DeserializeOwned + Serialize + Default>(
    raw: &serde_yaml::Value,
    optional: &[&str],
) -> Result<T, ParamError> {
    // Through JSON, so that enums read as one-key maps (`rewind: {epoch: 3}`): serde_yaml's
    // own deserializer wants YAML tags (`!epoch 3`) for them.
    let given = match raw {
        serde_yaml::Value::Null => Map::new(),
        serde_yaml::Value::Mapping(_) => match serde_json::to_value(raw) {
            Ok(Value::Object(map)) => map,
            Ok(_) => unreachable!("a YAML mapping becomes a JSON object"),
            Err(e) => {
                return Err(ParamError::new(
                    "",
                    format!("params must be plain data: {e}"),
                ))
            }
        },
        other => {
            return Err(ParamError::new(
                "",
                format!(
                    "params must be a mapping of keys to values, got {}",
                    yaml_type(other)
                ),
            ))
        }
    };
    let Ok(Value::Object(defaults)) = serde_json::to_value(T::default()) else {
        unreachable!("params structs serialize to JSON objects");
    };
    let known = |k: &str| defaults.contains_key(k) || optional.contains(&k);
    if let Some(unknown) = given.keys().find(|k| !known(k)) {
        let mut valid: Vec<&str> = defaults.keys().map(String::as_str).collect();
        valid.extend(optional);
        valid.sort();
        let hint = crate::suggest::hint(unknown, valid.iter().copied());
        return Err(ParamError::new(
            unknown.clone(),
            format!(
                "unknown key `{unknown}`{hint} (valid: {})",
                valid.join(", ")
            ),
        ));
    }
    let overlay = |keys: &mut dyn Iterator<Item = (&String, &Value)>| {
        let mut merged = defaults.clone();
        merged.extend(keys.map(|(k, v)| (k.clone(), v.clone())));
        serde_path_to_error::deserialize::<_, T>(Value::Object(merged))
    };
    let err = match overlay(&mut given.iter()) {
        Ok(typed) => return Ok(typed),
        Err(err) => err,
    };
    if !err.path().to_string().trim_start_matches('.').is_empty() {
        return Err(param_error(err));
    }
    // Serde loses the path inside a flattened block: find the key whose value alone
    // fails, and name it.
    for (key, value) in &given {
        if let Err(e) = overlay(&mut std::iter::once((key, value))) {
            let mut found = param_error(e);
            if found.key.is_empty() {
                found.key = key.clone();
            } else if !found.key.starts_with(key.as_str()) {
                found.key = format!("{key}.{}", found.key);
            }
            return Err(found);
        }
    }
    Err(param_error(err))
}

/// A serde error with its path as a [`ParamError`].
fn param_error(err: serde_path_to_error::Error<serde_json::Error>) -> ParamError {
    let path = err.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let inner = err.into_inner().to_string();
    match unknown_key(&inner) {
        Some((field, expected)) => {
            // serde_path_to_error's path already ends at the unknown key.
            let key = if path.is_empty() { field.clone() } else { path };
            let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
            unknown_key_error(key, &field, &expected)
        }
        None => ParamError::new(path, inner),
    }
}

/// "unknown key `x`, did you mean `y`? (valid: ...)" at `key`.
fn unknown_key_error(key: String, field: &str, valid: &[&str]) -> ParamError {
    let hint = crate::suggest::hint(field, valid.iter().copied());
    let valid = if valid.is_empty() {
        String::new()
    } else {
        format!(" (valid: {})", valid.join(", "))
    };
    ParamError::new(key, format!("unknown key `{field}`{hint}{valid}"))
}

/// A YAML value's kind, for messages.
fn yaml_type(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// Reads serde's "unknown field/variant `x`, expected one of `a`, `b`" message.
fn unknown_key(message: &str) -> Option<(String, Vec<String>)> {
    if !(message.starts_with("unknown field") || message.starts_with("unknown variant")) {
        return None;
    }
    let mut quoted = message.split('`').skip(1).step_by(2).map(str::to_string);
    let field = quoted.next()?;
    Some((field, quoted.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        lr: f64,
    }

    /// Embedded like `Training`: its defaults come from the outer struct.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Shared {
        optimizer: Inner,
        batch_size: usize,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Outer {
        epochs: usize,
        #[serde(flatten)]
        shared: Shared,
    }

    impl Default for Outer {
        fn default() -> Self {
            Outer {
                epochs: 3,
                shared: Shared {
                    optimizer: Inner { lr: 0.5 },
                    batch_size: 60,
                },
            }
        }
    }

    fn parse(text: &str) -> Result<Outer, ParamError> {
        parse_typed(&serde_yaml::from_str(text).unwrap(), &[])
    }

    #[test]
    fn unknown_key_names_path_and_suggests() {
        let err = parse("{epochs: 1, optimizer: {lrr: 0.1}}").unwrap_err();
        assert_eq!(err.key, "optimizer.lrr");
        assert!(err.message.contains("unknown key `lrr`"), "{}", err.message);
        assert!(
            err.message.contains("did you mean `lr`?"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_top_level_key_is_refused_although_a_block_is_flattened() {
        let err = parse("{epochs: 1, batch_sise: 10}").unwrap_err();
        assert_eq!(err.key, "batch_sise");
        assert!(
            err.message.contains("did you mean `batch_size`?"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("(valid: batch_size, epochs, optimizer)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn type_mismatch_names_path_inside_and_outside_the_flattened_block() {
        let err = parse("{epochs: many}").unwrap_err();
        assert_eq!(err.key, "epochs");
        assert!(err.message.contains("invalid type"), "{}", err.message);
        let err = parse("{epochs: 2, batch_size: many}").unwrap_err();
        assert_eq!(err.key, "batch_size");
        assert!(err.message.contains("invalid type"), "{}", err.message);
    }

    #[test]
    fn the_outer_default_fills_the_flattened_block() {
        assert_eq!(parse("{}").unwrap(), Outer::default());
        let p = parse("{batch_size: 7}").unwrap();
        assert_eq!(p.shared.batch_size, 7);
        assert_eq!(p.shared.optimizer, Inner { lr: 0.5 });
        assert_eq!(p.epochs, 3);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"epochs": 3, "batch_size": 7, "optimizer": {"lr": 0.5}}),
            "the embedded block serializes flat, so stage keys keep their shape"
        );
    }

    #[test]
    fn params_that_are_not_a_mapping_are_refused() {
        let err = parse("[1, 2]").unwrap_err();
        assert!(err.message.contains("a list"), "{}", err.message);
    }
}
