//! Which names a pipeline file may give to things that become paths.
//!
//! The pipeline's `name` becomes the report folder `reports/<name>/` and the refs
//! folder of the store; expanded stage names (`dense@seed=1`) become file names there.
//! A pipeline file must never be able to point either outside its folder, so every
//! such name is checked here, at validation, to be one plain path component.

/// Longest accepted pipeline name or matrix value text, in characters.
pub const MAX_NAME_LEN: usize = 100;

/// Checks that `name` can be used as one folder name: letters, digits, `_`, `-` and
/// `.`, not starting with `.` (so never `.`, `..` or a hidden folder), at most
/// [`MAX_NAME_LEN`] characters. The error says what is allowed.
pub fn check_component(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if name.starts_with('.') {
        return Err(format!("`{name}` must not start with `.`"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "`{name}` contains {bad:?}; use only letters, digits, `_`, `-` and `.` (it names a folder)"
        ));
    }
    Ok(())
}

/// Checks the text a matrix value contributes to a stage name (`dense@seed=<text>`):
/// letters, digits and `_ - . + [ ] ,` only, so that the expanded name stays one
/// path component.
pub fn check_matrix_text(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("a matrix value must not be empty".into());
    }
    if text.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "a matrix value is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(bad) = text.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '[' | ']' | ','))
    }) {
        return Err(format!(
            "matrix value `{}` contains {bad:?}; matrix values name stages, so use only letters, digits and `_ - . + [ ] ,`",
            text.escape_debug()
        ));
    }
    Ok(())
}

/// The separator between a stage's base name and its matrix values (`dense@seed=1`).
pub const MATRIX_SEPARATOR: char = '@';

/// The name of one matrix expansion of stage `base`: `dense@seed=1` for the values
/// `["seed=1"]`, several joined with `,`.
pub fn expanded_name(base: &str, values: &[String]) -> String {
    format!("{base}{MATRIX_SEPARATOR}{}", values.join(","))
}

/// The stage's base name (the name in the pipeline file): `dense@seed=1` -> `dense`.
pub fn base_name(stage: &str) -> &str {
    stage
        .split_once(MATRIX_SEPARATOR)
        .map_or(stage, |(base, _)| base)
}

/// An expanded stage name as one file name: `@`, `=` and `,` become `_`, so
/// `report@seed=1` is stored as `report_seed_1`. Safe because stage names were
/// checked by [`check_matrix_text`] and the stage-name rule.
pub fn file_component(stage: &str) -> String {
    stage.replace(['@', '=', ','], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanded_names_split_back_into_their_base() {
        let name = expanded_name("dense", &["seed=1".into(), "lr=0.1".into()]);
        assert_eq!(name, "dense@seed=1,lr=0.1");
        assert_eq!(base_name(&name), "dense");
        assert_eq!(base_name("dense"), "dense");
        assert_eq!(file_component(&name), "dense_seed_1_lr_0.1");
    }

    #[test]
    fn components_that_escape_a_folder_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "/abs/path",
            "a/b",
            "a\\b",
            ".hidden",
            "a\0b",
        ] {
            assert!(check_component(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_component(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
        for good in ["paper", "lottery-quick", "v1.2", "a_b"] {
            assert!(check_component(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn matrix_texts_stay_inside_one_component() {
        for bad in ["", "../../etc", "a/b", "x y", "a\nb", "é"] {
            assert!(check_matrix_text(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["0", "1.2e-3", "[300,100]", "true", "adam-meta", "1e+3"] {
            assert!(check_matrix_text(good).is_ok(), "{good:?} was refused");
        }
        assert_eq!(file_component("report@seed=1,x=2"), "report_seed_1_x_2");
    }
}
