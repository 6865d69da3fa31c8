//! A cheap bound on how deeply a pipeline file nests, checked before YAML parsing.
//!
//! The YAML parser's time grows faster than linearly with nesting depth (a 120 KB file
//! nested 60,000 deep took 6 s), and no real pipeline nests more than a handful of
//! levels. This scan over the text refuses absurd depths in linear time, with the line
//! where the limit was passed.

/// Deepest nesting accepted (flow brackets, block sequences and indentation levels).
pub const MAX_DEPTH: usize = 64;

/// Largest pipeline file accepted, in bytes.
pub const MAX_BYTES: usize = 4 << 20;

/// Checks the size and nesting depth of a pipeline file's text; the error names the
/// line where a limit was passed.
pub fn check(source: &str) -> Result<(), String> {
    if source.len() > MAX_BYTES {
        return Err(format!(
            "the file is {} bytes; pipeline files are limited to {MAX_BYTES} bytes",
            source.len()
        ));
    }
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (index, line) in source.lines().enumerate() {
        let too_deep = |what: &str| {
            Err(format!(
                "line {}: {what} nest more than {MAX_DEPTH} levels deep; pipeline files never need that",
                index + 1
            ))
        };
        if quote.is_none() && flow == 0 {
            let indent = line.len() - line.trim_start_matches(' ').len();
            // Block nesting: two columns per level at the least, `- ` markers included.
            let rest = &line[indent..];
            let dashes = rest
                .as_bytes()
                .chunks(2)
                .take_while(|c| c == b"- " || c == b"-")
                .count();
            if indent / 2 + dashes > MAX_DEPTH {
                return too_deep("indentation and `- ` markers");
            }
        }
        let mut prev = ' ';
        let mut escaped = false;
        for c in line.chars() {
            match quote {
                Some('"') if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev.is_whitespace() => break,
                    '"' | '\'' if prev.is_whitespace() || "[{,:".contains(prev) => quote = Some(c),
                    '[' | '{' => {
                        flow += 1;
                        if flow > MAX_DEPTH {
                            return too_deep("brackets");
                        }
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
        // A quoted scalar may span lines: `quote` carries over to the next one.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_pipelines_pass() {
        for file in ["paper", "lottery", "dendrites", "metaplasticity"] {
            let path = format!("{}/pipelines/{file}.yaml", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(check(&text), Ok(()), "{path}");
        }
    }

    #[test]
    fn deep_flow_block_and_indentation_are_refused_quickly() {
        let deep = 100_000;
        let flow = format!(
            "name: x\nstages: {}{}\n",
            "[".repeat(deep),
            "]".repeat(deep)
        );
        assert!(check(&flow).unwrap_err().contains("line 2"));
        let block = format!("name: x\nstages:\n  {}x\n", "- ".repeat(deep));
        assert!(check(&block).is_err());
        let mut indented = String::from("name: x\nstages:\n");
        for i in 0..200 {
            indented.push_str(&format!("{}k{i}:\n", " ".repeat(i * 2)));
        }
        assert!(check(&indented).is_err());
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let text = format!(
            "name: x # {}\ndescription: \"{}\"\nstages: {{}}\n",
            "[".repeat(500),
            "{".repeat(500)
        );
        assert_eq!(check(&text), Ok(()));
    }
}
