//! Typed parsing of stage params with errors that name the key and suggest a fix.

use serde::de::DeserializeOwned;

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
pub fn parse_typed<T: DeserializeOwned>(raw: &serde_yaml::Value) -> Result<T, ParamError> {
    // Through JSON, so that enums read as one-key maps (`rewind: {epoch: 3}`): serde_yaml's
    // own deserializer wants YAML tags (`!epoch 3`) for them.
    let raw = match raw {
        serde_yaml::Value::Null => serde_json::Value::Object(Default::default()),
        other => serde_json::to_value(other)
            .map_err(|e| ParamError::new("", format!("params must be plain data: {e}")))?,
    };
    serde_path_to_error::deserialize(raw).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = err.into_inner().to_string();
        match unknown_key(&inner) {
            Some((field, expected)) => {
                // serde_path_to_error's path already ends at the unknown key.
                let key = if path.is_empty() { field.clone() } else { path };
                let hint = crate::suggest::hint(&field, expected.iter().map(String::as_str));
                let valid = if expected.is_empty() {
                    String::new()
                } else {
                    format!(" (valid: {})", expected.join(", "))
                };
                ParamError::new(key, format!("unknown key `{field}`{hint}{valid}"))
            }
            None => ParamError::new(path, inner),
        }
    })
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        lr: f64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        epochs: usize,
        optimizer: Inner,
    }

    fn parse(text: &str) -> Result<Outer, ParamError> {
        parse_typed(&serde_yaml::from_str(text).unwrap())
    }

    #[test]
    fn unknown_key_names_path_and_suggests() {
        let err = parse("{epochs: 1, optimizer: {lrr: 0.1}}").unwrap_err();
        assert_eq!(err.key, "optimizer.lrr");
        assert!(
            err.message.contains("did you mean `lr`?"),
            "{}",
            err.message
        );
    }

    #[test]
    fn type_mismatch_names_path() {
        let err = parse("{epochs: many, optimizer: {lr: 0.1}}").unwrap_err();
        assert_eq!(err.key, "epochs");
        assert!(err.message.contains("invalid type"), "{}", err.message);
    }
}
