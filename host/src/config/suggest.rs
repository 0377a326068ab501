//! "Did you mean …?" for keys the configuration does not know. serde
//! names the unknown key and the expected ones; this picks the nearest.

/// The known key closest to `word`, if one is close enough to be a typo.
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(word, k), k))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Adds a suggestion to serde's "unknown field `x`, expected one of `a`,
/// `b`" (or "expected `a` or `b`"); any other message is returned as is.
pub fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.split_once("unknown field `").map(|(_, r)| r) else {
        return message.to_owned();
    };
    let Some((word, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    // The expected keys are the backquoted words that follow.
    let expected = expected.split(" at line ").next().unwrap_or(expected);
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match nearest(word, known) {
        Some(key) => format!("{message} (did you mean `{key}`?)"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_key() {
        let m = "unknown field `agregation_minutes`, expected one of `pce_addr`, `aggregation_minutes`, `aggregation_seconds` at line 3 column 1";
        assert!(
            with_suggestion(m).ends_with("(did you mean `aggregation_minutes`?)"),
            "{}",
            with_suggestion(m)
        );
        let m =
            "unknown field `conector`, expected one of `name`, `connectors`, `connector`, `parser`";
        assert!(with_suggestion(m).contains("did you mean `connector`?"));
        let m = "unknown field `zzzz`, expected `name` or `parser`";
        assert_eq!(with_suggestion(m), m, "nothing close");
        assert_eq!(
            nearest("pce_address", ["pce_addr", "org_id"]),
            Some("pce_addr")
        );
    }
}
