//! The stage graph: cycle detection, dependency order, and text/dot/mermaid views.

use std::collections::{BTreeMap, BTreeSet};

use super::{Pipeline, Stage};

/// Fails with the stages of a cycle (first one repeated at the end) if there is one.
pub fn check_acyclic(
    names: &[String],
    needs: impl Fn(&str) -> Vec<String>,
) -> Result<(), Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        n: &str,
        needs: &dyn Fn(&str) -> Vec<String>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_string());
                return Err(cycle);
            }
            None => {}
        }
        marks.insert(n.to_string(), Mark::Visiting);
        path.push(n.to_string());
        for m in needs(n) {
            visit(&m, needs, marks, path)?;
        }
        path.pop();
        marks.insert(n.to_string(), Mark::Done);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    for n in names {
        visit(n, &needs, &mut marks, &mut Vec::new())?;
    }
    Ok(())
}

/// Orders stages so every stage comes after what it needs, keeping file order otherwise.
/// The graph must be acyclic (checked before expansion).
pub fn topological(stages: &[Stage]) -> Vec<Stage> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(stages.len());
    while out.len() < stages.len() {
        let before = out.len();
        for s in stages {
            if !done.contains(&s.name) && s.needs.iter().all(|n| done.contains(n)) {
                done.insert(s.name.clone());
                out.push(s.clone());
            }
        }
        assert!(
            out.len() > before,
            "expanded stage graph has a cycle despite the check"
        );
    }
    out
}

/// Output formats of `repro dag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per stage with what it needs.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// Renders the graph of a pipeline.
pub fn render(pipeline: &Pipeline, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Text => {
            for s in &pipeline.stages {
                out.push_str(&format!("{} ({})", s.name, s.kind.name()));
                if !s.needs.is_empty() {
                    out.push_str(&format!(" <- {}", s.needs.join(", ")));
                }
                out.push('\n');
            }
        }
        Format::Dot => {
            out.push_str(&format!(
                "digraph \"{}\" {{\n  rankdir=LR;\n",
                pipeline.name
            ));
            for s in &pipeline.stages {
                out.push_str(&format!(
                    "  \"{}\" [label=\"{}\\n({})\"];\n",
                    s.name,
                    s.name,
                    s.kind.name()
                ));
                for n in &s.needs {
                    out.push_str(&format!("  \"{n}\" -> \"{}\";\n", s.name));
                }
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            let id = |name: &str| {
                pipeline
                    .stages
                    .iter()
                    .position(|s| s.name == name)
                    .map(|i| format!("s{i}"))
                    .unwrap_or_default()
            };
            for s in &pipeline.stages {
                out.push_str(&format!(
                    "  {}[\"{} ({})\"]\n",
                    id(&s.name),
                    s.name,
                    s.kind.name()
                ));
            }
            for s in &pipeline.stages {
                for n in &s.needs {
                    out.push_str(&format!("  {} --> {}\n", id(n), id(&s.name)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_is_named() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let needs = |n: &str| match n {
            "a" => vec!["b".to_string()],
            "b" => vec!["c".to_string()],
            "c" => vec!["a".to_string()],
            _ => vec![],
        };
        assert_eq!(
            check_acyclic(&names, needs).unwrap_err(),
            ["a", "b", "c", "a"]
        );
        assert!(check_acyclic(&names, |_| vec![]).is_ok());
    }
}
