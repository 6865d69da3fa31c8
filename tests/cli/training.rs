//! The `train` stage end to end: accuracy, determinism, dependants, early cutoff,
//! crashes and concurrent runs.

use std::time::Duration;

use serde_json::Value;

use crate::util::{json_lines, stderr, with_status, Project};

const SYNTH: &str = "name: synth
seed: 3
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 2000, test_size: 500, validation: 200 }
  net:
    kind: train
    needs: [data]
    params:
      model: { type: mlp, hidden: [64] }
      optimizer: { type: adam, lr: 0.002 }
      epochs: 3
      batch_size: 50
";

fn show(p: &Project, pipeline: &str, stage: &str) -> Value {
    let out = p.run(&["show", pipeline, stage, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_small_mlp_learns_the_synthetic_dataset() {
    let p = Project::new();
    p.file("p.yaml", SYNTH);
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
        ["data", "net"]
    );
    let m = show(&p, "p.yaml", "net");
    let acc = m["metrics"]["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "synthetic test accuracy {acc}");
    assert_eq!(m["metrics"]["epochs_run"], 3);
    assert_eq!(m["seed"], 3);
    let dir = std::path::PathBuf::from(m["output_dir"].as_str().unwrap());
    for f in [
        "weights.safetensors",
        "init.safetensors",
        "metrics.csv",
        "model.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("epoch,train_loss,train_accuracy,test_loss,test_accuracy,validation_loss,validation_accuracy"));
    assert_eq!(csv.lines().count(), 4);
}

#[test]
fn the_same_pipeline_gives_the_same_bytes_in_two_stores() {
    let a = Project::new();
    let b = Project::new();
    a.file("p.yaml", SYNTH);
    b.file("p.yaml", SYNTH);
    a.statuses(&["run", "p.yaml", "--json"]);
    b.statuses(&["run", "p.yaml", "--json"]);
    assert_eq!(
        show(&a, "p.yaml", "net")["output"],
        show(&b, "p.yaml", "net")["output"]
    );
    assert_eq!(
        show(&a, "p.yaml", "net")["metrics"]["test_accuracy"],
        show(&b, "p.yaml", "net")["metrics"]["test_accuracy"]
    );
}

#[test]
fn dfdx_products_also_learn_and_the_manifest_names_the_products_used() {
    let p = Project::new();
    p.file("p.yaml", SYNTH);
    let out = p
        .cmd(&["run", "p.yaml", "--json"])
        .env("REPRO_CPU_KERNEL", "gemm")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let m = show(&p, "p.yaml", "net");
    assert_eq!(m["cpu_products"], "gemm");
    let acc = m["metrics"]["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "synthetic test accuracy with gemm {acc}");

    let q = Project::new();
    q.file("p.yaml", SYNTH);
    q.statuses(&["run", "p.yaml", "--json"]);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |flag: &str| cpuinfo.split_whitespace().any(|f| f == flag);
    let kernel_runs = has("avx512f") || (has("avx2") && has("fma"));
    let expected = if cfg!(target_arch = "x86_64") && kernel_runs {
        "repro-sgemm"
    } else {
        "gemm"
    };
    assert_eq!(show(&q, "p.yaml", "net")["cpu_products"], expected);
}

#[test]
fn changes_rerun_exactly_what_depends_on_them() {
    let p = Project::new();
    p.file("p.yaml", SYNTH);
    p.statuses(&["run", "p.yaml", "--json"]);
    let r = p.statuses(&["run", "p.yaml", "--json", "--set", "net.epochs=2"]);
    assert_eq!(
        (with_status(&r, "ran"), with_status(&r, "cached")),
        (vec!["net".to_string()], vec!["data".to_string()])
    );
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "cached"),
        ["data", "net"]
    );
    let plan = json_lines(&p.run(&["plan", "p.yaml", "--json", "--set", "data.validation=100"]));
    assert_eq!(plan[0]["reason"], "param validation changed: 200 -> 100");
    assert_eq!(plan[1]["status"], "run");
    assert_eq!(plan[1]["reason"], "input changed: data");
    let r = p.statuses(&["run", "p.yaml", "--json", "--set", "data.validation=100"]);
    assert_eq!(with_status(&r, "ran"), ["data", "net"]);
    let plan = json_lines(&p.run(&[
        "plan",
        "p.yaml",
        "--json",
        "--set",
        "data.validation=100",
        "--set",
        "net.seed=9",
    ]));
    assert_eq!(plan[1]["reason"], "seed changed: 3 -> 9");
}

#[test]
fn a_rerun_that_yields_the_same_bytes_leaves_dependants_cached() {
    let p = Project::new();
    p.file("p.yaml", SYNTH);
    p.statuses(&["run", "p.yaml", "--json"]);
    // `path` is ignored by the synthetic generator: the key changes, the output does not.
    let r = p.statuses(&["run", "p.yaml", "--json", "--set", "data.path=elsewhere"]);
    assert_eq!(with_status(&r, "ran"), ["data"]);
    assert_eq!(with_status(&r, "cached"), ["net"]);
}

#[test]
fn a_killed_run_leaves_a_clean_store_and_the_next_run_redoes_the_stage() {
    let p = Project::new();
    p.file("p.yaml", &SYNTH.replace("epochs: 3", "epochs: 400"));
    let mut child = p
        .cmd(&["run", "p.yaml"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let records = p.path().join("store/stages");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&records).map(|d| d.count()).unwrap_or(0) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dataset stage never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        std::fs::read_dir(&records).unwrap().count(),
        1,
        "only the dataset stage may have a record"
    );
    assert!(p.run(&["verify"]).status.success());
    let plan = json_lines(&p.run(&["plan", "p.yaml", "--json", "--set", "net.epochs=1"]));
    assert_eq!(plan[1]["status"], "run");
    let r = p.statuses(&["run", "p.yaml", "--json", "--set", "net.epochs=1"]);
    assert_eq!(with_status(&r, "ran"), ["net"]);
    let tmp: Vec<_> = std::fs::read_dir(p.path().join("store/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        tmp.iter().all(|n| n == "scratch"),
        "tmp not cleaned: {tmp:?}"
    );
    assert!(p.run(&["verify"]).status.success());
}

#[test]
fn two_concurrent_runs_do_not_corrupt_the_store() {
    let p = Project::new();
    p.file("p.yaml", SYNTH);
    let a = p
        .cmd(&["run", "p.yaml", "--json", "--wait", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = p
        .cmd(&["run", "p.yaml", "--json", "--wait", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let ran: usize = [a, b]
        .iter()
        .map(|o| {
            json_lines(o)
                .iter()
                .filter(|l| l["status"] == "ran")
                .count()
        })
        .sum();
    assert_eq!(ran, 2, "each stage runs exactly once across both runs");
    assert!(p.run(&["verify"]).status.success());
}

#[test]
fn a_failing_stage_exits_1_skips_its_dependants_and_keep_going_finishes_the_rest() {
    let p = Project::new();
    // Holding out more validation examples than there are training examples fails at run time.
    let text = format!(
        "{SYNTH}  bad:\n    kind: dataset\n    params: {{ name: synthetic, train_size: 100, validation: 500 }}\n  after_bad:\n    kind: train\n    needs: [bad]\n"
    );
    p.file("p.yaml", &text);
    let out = p.run(&["run", "p.yaml", "--json", "--keep-going"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("validation = 500"),
        "{}",
        stderr(&out)
    );
    let lines = json_lines(&out);
    let status = |s: &str| {
        lines
            .iter()
            .find(|l| l["stage"] == s)
            .map(|l| l["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("bad").as_deref(), Some("failed"));
    assert_eq!(status("after_bad").as_deref(), Some("skipped"));
    assert_eq!(status("net").as_deref(), Some("ran"));
    let out = p.run(&["run", "p.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn lenet_300_100_reaches_the_reference_accuracy_on_fashion_mnist_in_two_epochs() {
    assert!(
        std::path::Path::new("/usr/share/datasets/fashion-mnist").is_dir(),
        "this test needs Debian's dataset-fashion-mnist: apt-get install dataset-fashion-mnist"
    );
    let p = Project::new();
    p.file(
        "p.yaml",
        "name: fmnist
stages:
  data: { kind: dataset, params: { name: fashion-mnist } }
  net:
    kind: train
    needs: [data]
    params:
      model: { type: mlp, hidden: [300, 100] }
      init: { weight: xavier-normal, bias: zeros }
      optimizer: { type: adam, lr: 1.2e-3 }
      epochs: 2
      batch_size: 60
",
    );
    p.statuses(&["run", "p.yaml", "--json"]);
    let acc = show(&p, "p.yaml", "net")["metrics"]["test_accuracy"]
        .as_f64()
        .unwrap();
    assert!(
        acc >= 0.845,
        "LeNet-300-100 on Fashion-MNIST after 2 epochs: {acc} (PyTorch: about 0.857)"
    );
}
