//! "Did you mean" suggestions for misspelled names.

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean `x`?` for the nearest candidate, or nothing: the one way every
/// error message of repro suggests a name.
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(word, candidates)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_close_names_only() {
        let names = ["test_limit", "train_limit", "validation"];
        assert_eq!(super::nearest("test_limt", names), Some("test_limit"));
        assert_eq!(super::nearest("zzz", names), None);
        assert_eq!(
            super::hint("validaton", names),
            "; did you mean `validation`?"
        );
        assert_eq!(super::hint("zzz", names), "");
    }
}
