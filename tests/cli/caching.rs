//! What reruns, and why: the freshness contract of `repro run` and `repro plan`.

use crate::util::{json_lines, with_status, Project};

const TWO_DATASETS: &str = "name: two
seed: 1
stages:
  a:
    kind: dataset
    params: { name: synthetic, train_size: 300, test_size: 100 }
  b:
    kind: dataset
    params: { name: synthetic, train_size: 200, test_size: 100, validation: 50 }
";

#[test]
fn second_run_is_all_cached_and_a_param_change_reruns_only_its_stage() {
    let p = Project::new();
    p.file("p.yaml", TWO_DATASETS);
    let first = p.statuses(&["run", "p.yaml", "--json"]);
    assert_eq!(with_status(&first, "ran"), ["a", "b"]);
    let second = p.statuses(&["run", "p.yaml", "--json"]);
    assert_eq!(with_status(&second, "cached"), ["a", "b"]);
    let plan = json_lines(&p.run(&["plan", "p.yaml", "--json", "--set", "b.test_size=50"]));
    let b = plan.iter().find(|l| l["stage"] == "b").unwrap();
    assert_eq!(b["status"], "run");
    assert_eq!(b["reason"], "param test_size changed: 100 -> 50");
    assert_eq!(
        b["reasons"],
        serde_json::json!([{"reason": "param_changed", "path": "test_size", "old": 100, "new": 50}])
    );
    let a = plan.iter().find(|l| l["stage"] == "a").unwrap();
    assert_eq!(a["reasons"], serde_json::json!([]));
    let third = json_lines(&p.run(&["run", "p.yaml", "--json", "--set", "b.test_size=50"]));
    let line = |stage: &str| third.iter().find(|l| l["stage"] == stage).unwrap();
    assert_eq!(line("a")["status"], "cached");
    assert_eq!(line("a")["reasons"], serde_json::json!([]));
    assert_eq!(line("b")["status"], "ran");
    assert_eq!(line("b")["reasons"], b["reasons"]);
}

#[test]
fn matrix_expands_to_named_stages_and_profiles_apply() {
    let p = Project::new();
    let text = format!("{TWO_DATASETS}    matrix: {{ seed: [0, 1], test_size: [10, 20] }}\nprofiles:\n  small: {{ b.matrix.seed: [5] }}\n");
    p.file("p.yaml", &text);
    let dag = p.run(&["dag", "p.yaml"]);
    let text = String::from_utf8_lossy(&dag.stdout);
    for name in [
        "b@seed=0,test_size=10",
        "b@seed=0,test_size=20",
        "b@seed=1,test_size=10",
        "b@seed=1,test_size=20",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    let small = p.statuses(&["run", "p.yaml", "--json", "--profile", "small"]);
    assert_eq!(
        with_status(&small, "ran"),
        ["a", "b@seed=5,test_size=10", "b@seed=5,test_size=20"]
    );
}

#[test]
fn a_changed_source_file_invalidates_the_dataset() {
    let p = Project::new();
    let dir = p.path().join("mini");
    write_mini_idx(&dir, 7);
    p.file(
        "p.yaml",
        "name: src\nstages:\n  d:\n    kind: dataset\n    params: { name: mnist, path: mini }\n",
    );
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
        ["d"]
    );
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "cached"),
        ["d"]
    );
    write_mini_idx(&dir, 8);
    let plan = json_lines(&p.run(&["plan", "p.yaml", "--json"]));
    assert_eq!(plan[0]["status"], "run");
    assert!(
        plan[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("source files changed"),
        "{}",
        plan[0]
    );
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
        ["d"]
    );
}

/// Writes a tiny MNIST-shaped dataset (IDX, uncompressed) whose pixels depend on `fill`.
pub fn write_mini_idx(dir: &std::path::Path, fill: u8) {
    std::fs::create_dir_all(dir).unwrap();
    let images = |n: u32| {
        let mut b = vec![0, 0, 8, 3];
        for d in [n, 28, 28] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend((0..n as usize * 784).map(|i| (i as u8).wrapping_mul(fill)));
        b
    };
    let labels = |n: u32| {
        let mut b = vec![0, 0, 8, 1];
        b.extend_from_slice(&n.to_be_bytes());
        b.extend((0..n).map(|i| (i % 10) as u8));
        b
    };
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(20)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(20)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(10)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(10)).unwrap();
}
