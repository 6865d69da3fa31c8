//! Test helpers: a temp project folder and a way to run the real `repro` binary in it.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A temporary project: pipeline files and a store live here.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A `repro` command running in the project folder with its own store.
    pub fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_repro"));
        c.current_dir(self.path())
            .env("REPRO_STORE", self.path().join("store"))
            .env("REPRO_OFFLINE", "1")
            .env_remove("REPRO_DATA")
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("repro runs")
    }

    /// Runs with `--json` and returns stage -> status.
    pub fn statuses(&self, args: &[&str]) -> Vec<(String, String)> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "repro {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out)
            .into_iter()
            .map(|v| {
                (
                    v["stage"].as_str().unwrap().to_string(),
                    v["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// Every JSON line of stdout.
fn all_json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// The per-stage JSON lines of `run --json` or `plan --json`.
pub fn json_lines(out: &Output) -> Vec<Value> {
    all_json_lines(out)
        .into_iter()
        .filter(|v| v.get("stage").is_some())
        .collect()
}

/// The closing `{"summary": ...}` object of `run --json`, which must be the last line.
pub fn summary(out: &Output) -> Value {
    let lines = all_json_lines(out);
    let last = lines.last().expect("run --json printed lines");
    last.get("summary")
        .unwrap_or_else(|| panic!("the last line is not the summary: {last}"))
        .clone()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stages with a given status.
pub fn with_status(statuses: &[(String, String)], status: &str) -> Vec<String> {
    let mut v: Vec<String> = statuses
        .iter()
        .filter(|(_, s)| s == status)
        .map(|(n, _)| n.clone())
        .collect();
    v.sort();
    v
}

/// Rows (header first) of the CSV file `file` in the output of the stage whose
/// `repro show --json` manifest is `manifest`.
pub fn output_csv(manifest: &Value, file: &str) -> Vec<Vec<String>> {
    let dir = PathBuf::from(manifest["output_dir"].as_str().expect("output_dir"));
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

/// Rounds of the prune stages of a store whose checkpoint is complete.
pub fn done_rounds(store: &Path) -> usize {
    std::fs::read_dir(store.join("tmp/scratch"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|key| key.path().join("winning"))
        .flat_map(|w| std::fs::read_dir(w).into_iter().flatten().flatten())
        .filter(|r| r.path().join("done").is_file())
        .count()
}
