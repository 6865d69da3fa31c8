//! `repro metrics` (every format, the comparison and its exit code) and the summary
//! that ends `repro run`.

use serde_json::Value;

use crate::util::{json_lines, stderr, summary, Project};

const PIPE: &str = "name: mx
profiles:
  longer: { net.epochs: 4 }
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 400, test_size: 100 }
  net:
    kind: train
    needs: [data]
    params: { model: { type: mlp, hidden: [24] }, epochs: 1, batch_size: 50 }
    matrix: { seed: [0, 1] }
  rep:
    kind: report
    needs: [net]
    params:
      references:
        - { claim: final_mean_accuracy, stage: net, paper: 90, tolerance: 1, source: test }
";

fn ran(p: &Project, args: &[&str]) -> std::process::Output {
    let out = p.run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    out
}

#[test]
fn run_ends_with_a_summary_line_and_json_object() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    let first = ran(&p, &["run", "p.yaml", "--json"]);
    assert_eq!(
        json_lines(&first).len(),
        4,
        "the per-stage lines stay as they are"
    );
    let s = summary(&first);
    assert_eq!(
        (s["ran"].as_u64(), s["cached"].as_u64()),
        (Some(4), Some(0))
    );
    assert_eq!(
        (s["failed"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(s["wall_seconds"].as_f64().unwrap() > 0.0);
    assert!(s["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(s["verdicts"]["comparisons"], 1);
    assert_eq!(s["verdicts"]["not_comparable"], 1);
    assert_eq!(s["reports"][0], "reports/mx");
    let err = stderr(&first);
    assert!(
        err.contains("4 ran, 0 cached, 0 failed, 0 skipped in"),
        "{err}"
    );
    assert!(
        err.contains("verdicts: 0 reproduced, 0 not reproduced, 1 not comparable"),
        "{err}"
    );
    assert!(err.contains("report: reports/mx/index.html"), "{err}");
    let second = summary(&ran(&p, &["run", "p.yaml", "--json"]));
    assert_eq!(
        (second["ran"].as_u64(), second["cached"].as_u64()),
        (Some(0), Some(4))
    );
}

#[test]
fn metrics_prints_one_tidy_table_in_every_format() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    ran(&p, &["run", "p.yaml"]);
    let table = String::from_utf8(ran(&p, &["metrics", "p.yaml"]).stdout).unwrap();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["stage", "kind", "matrix", "seed", "metric", "value"]
    );
    assert!(table
        .lines()
        .any(|l| l.starts_with("net@seed=1") && l.contains("test_accuracy")));

    let csv = String::from_utf8(ran(&p, &["metrics", "p.yaml", "--format", "csv"]).stdout).unwrap();
    assert_eq!(
        csv.lines().next().unwrap(),
        "stage,kind,matrix,seed,metric,value"
    );
    let accuracy: Vec<&str> = csv
        .lines()
        .filter(|l| l.starts_with("net@seed=0,train,seed=0,0,test_accuracy,"))
        .collect();
    assert_eq!(accuracy.len(), 1, "{csv}");

    let json: Value =
        serde_json::from_slice(&ran(&p, &["metrics", "p.yaml", "--format", "json"]).stdout)
            .unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(
        rows.len(),
        csv.lines().count() - 1,
        "json and csv hold the same rows"
    );
    let row = rows
        .iter()
        .find(|r| r["stage"] == "net@seed=0" && r["metric"] == "test_accuracy")
        .unwrap();
    let value = row["value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&value));
    let csv_value: f64 = accuracy[0].rsplit(',').next().unwrap().parse().unwrap();
    assert_eq!(value, csv_value);

    let out = p.run(&["metrics", "p.yaml", "--format", "parquet"]);
    assert_eq!(out.status.code(), Some(2), "parquet needs --output");
    ran(
        &p,
        &[
            "metrics",
            "p.yaml",
            "--format",
            "parquet",
            "--output",
            "m.parquet",
        ],
    );
    let file = std::fs::File::open(p.path().join("m.parquet")).unwrap();
    use polars::prelude::*;
    let frame = ParquetReader::new(file).finish().unwrap();
    assert_eq!(frame.height(), rows.len());
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        names,
        ["stage", "kind", "matrix", "seed", "metric", "value"]
    );
    let values = frame.column("value").unwrap().f64().unwrap().clone();
    let stages = frame.column("stage").unwrap().str().unwrap().clone();
    let metrics = frame.column("metric").unwrap().str().unwrap().clone();
    let i = (0..frame.height())
        .find(|&i| stages.get(i) == Some("net@seed=0") && metrics.get(i) == Some("test_accuracy"))
        .unwrap();
    assert_eq!(values.get(i), Some(value));
}

#[test]
fn comparisons_mark_differences_beyond_the_tolerance_and_exit_1() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    ran(&p, &["run", "p.yaml"]);
    ran(&p, &["run", "p.yaml", "--profile", "longer"]);
    let same = p.run(&[
        "metrics",
        "p.yaml",
        "--against-profile",
        "longer",
        "--tolerance",
        "10",
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    let out = p.run(&[
        "metrics",
        "p.yaml",
        "--against-profile",
        "longer",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let diffs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = diffs
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["stage"] == "net@seed=0" && d["metric"] == "test_accuracy")
        .unwrap();
    let (ours, theirs) = (
        acc["ours"].as_f64().unwrap(),
        acc["theirs"].as_f64().unwrap(),
    );
    assert_ne!(
        ours, theirs,
        "1 epoch and 4 epochs give different accuracies"
    );
    assert!((acc["difference"].as_f64().unwrap() - (ours - theirs)).abs() < 1e-12);
    assert_eq!(acc["beyond"], true);
    assert!(
        !diffs
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["metric"] == "train_samples_per_second"),
        "speeds are not compared"
    );
    // The same results in another store: within tolerance 0.
    let other = Project::new();
    other.file("p.yaml", PIPE);
    ran(&other, &["run", "p.yaml"]);
    let store = other.path().join("store");
    let store = store.to_str().unwrap();
    let across = p.run(&["metrics", "p.yaml", "--against", store]);
    assert_eq!(across.status.code(), Some(0), "{}", stderr(&across));
    assert!(
        stderr(&across).contains("0 differ by more than 0"),
        "{}",
        stderr(&across)
    );
    let missing = p.run(&["metrics", "p.yaml", "--against", "no-such-store"]);
    assert_eq!(missing.status.code(), Some(2));
}
