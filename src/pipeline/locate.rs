//! Finds where a stage or key is written in a pipeline's source text, so errors found
//! after parsing (unknown keys in params, bad needs) can still point at a line.

/// 1-based (line, column) of `key` inside the block of `stage` under `stages:`;
/// of the stage itself when `key` is empty. `None` when it is not written in the file
/// (for instance a value set with `--set`).
pub fn locate(source: &str, stage: &str, key: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = source.lines().collect();
    let stages_line = lines
        .iter()
        .position(|l| l.trim_start().starts_with("stages:") && indent(l) == 0)?;
    let (stage_idx, stage_indent) = lines
        .iter()
        .enumerate()
        .skip(stages_line + 1)
        .find(|(_, l)| {
            let t = l.trim_start();
            indent(l) > 0
                && (t.starts_with(&format!("{stage}:")) || t.starts_with(&format!("\"{stage}\":")))
        })
        .map(|(i, l)| (i, indent(l)))?;
    if key.is_empty() {
        return Some((stage_idx + 1, stage_indent + 1));
    }
    let last = key.rsplit('.').next().unwrap_or(key);
    let needle = format!("{last}:");
    let block_end = lines
        .iter()
        .enumerate()
        .skip(stage_idx + 1)
        .find(|(_, l)| !l.trim().is_empty() && indent(l) <= stage_indent)
        .map(|(i, _)| i)
        .unwrap_or(lines.len());
    (stage_idx..block_end).find_map(|i| {
        let line = lines[i];
        let from = if i == stage_idx {
            stage.len() + stage_indent + 1
        } else {
            0
        };
        find_key(&line[from.min(line.len())..], &needle).map(|c| (i + 1, from + c + 1))
    })
}

/// Column of `needle` in `line` where it starts a key (not a suffix of a longer name).
fn find_key(line: &str, needle: &str) -> Option<usize> {
    let mut start = 0;
    while let Some(pos) = line[start..].find(needle) {
        let at = start + pos;
        let prev = line[..at].chars().next_back();
        if prev.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.')) {
            return Some(at);
        }
        start = at + needle.len();
    }
    None
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::locate;

    const TEXT: &str = "name: x\nstages:\n  data:\n    kind: dataset\n    params: { name: synthetic, test_limt: 200 }\n  net:\n    kind: train\n    params:\n      epochs: 1\n";

    #[test]
    fn finds_stage_and_keys() {
        assert_eq!(locate(TEXT, "net", ""), Some((6, 3)));
        assert_eq!(locate(TEXT, "net", "epochs"), Some((9, 7)));
        assert_eq!(locate(TEXT, "data", "test_limt"), Some((5, 32)));
        assert_eq!(locate(TEXT, "data", "epochs"), None);
        assert_eq!(locate(TEXT, "data", "name"), Some((5, 15)));
    }
}
