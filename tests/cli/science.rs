//! The experiments on small settings: pruning (lottery tickets) and noise robustness.

use std::time::Duration;

use serde_json::Value;

use crate::util::{done_rounds, json_lines, output_csv, stderr, with_status, Project};

const LOTTERY: &str = "name: lt
seed: 1
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 1500, test_size: 400, validation: 200 }
  imp:
    kind: prune
    needs: [data]
    params:
      model: { type: mlp, hidden: [40, 20] }
      optimizer: { type: adam, lr: 0.002 }
      epochs: 2
      batch_size: 50
      rounds: 4
      rate: 0.125
      random_tickets: true
    matrix: { seed: [0, 1] }
  noise:
    kind: noise-eval
    needs: [data, imp]
    params: { networks: [dense, w70, r70], levels: [0, 0.2, 0.4], noise_seeds: 2 }
";

fn manifest(p: &Project, stage: &str) -> Value {
    let out = p.run(&["show", "p.yaml", stage, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn csv(p: &Project, stage: &str, file: &str) -> Vec<Vec<String>> {
    output_csv(&manifest(p, stage), file)
}

#[test]
fn imp_prunes_at_the_stated_rate_and_masked_weights_stay_zero() {
    let p = Project::new();
    p.file("p.yaml", LOTTERY);
    p.statuses(&["run", "p.yaml", "--json"]);
    let rows = csv(&p, "imp@seed=0", "rounds.csv");
    assert_eq!(
        rows[0][..4],
        ["round", "ticket", "remaining_prunable", "remaining_all"]
    );
    for row in rows[1..].iter().filter(|r| r[1] == "winning") {
        let k: i32 = row[0].parse().unwrap();
        let remaining: f64 = row[2].parse().unwrap();
        assert!(
            (remaining - 0.875f64.powi(k)).abs() < 0.01,
            "round {k}: {remaining}"
        );
    }
    assert_eq!(rows.iter().filter(|r| r[1] == "random").count(), 4);
    let dir = std::path::PathBuf::from(
        manifest(&p, "imp@seed=0")["output_dir"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let bytes = std::fs::read(dir.join("winning/r04/weights.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let floats = |name: &str| -> Vec<f32> {
        tensors
            .tensor(name)
            .unwrap()
            .data()
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let mut masked = 0;
    for name in ["fc1.weight", "fc2.weight", "out.weight"] {
        let (w, m) = (floats(name), floats(&format!("{name}_mask")));
        for (w, m) in w.iter().zip(&m) {
            if *m == 0.0 {
                assert_eq!(*w, 0.0, "{name}: a masked weight is {w}");
                masked += 1;
            }
        }
    }
    assert!(masked > 1000, "only {masked} masked weights");
}

#[test]
fn noise_level_zero_is_the_clean_accuracy_and_levels_rerun_only_noise() {
    let p = Project::new();
    p.file("p.yaml", LOTTERY);
    p.statuses(&["run", "p.yaml", "--json"]);
    let tickets_dir = std::path::PathBuf::from(
        manifest(&p, "imp@seed=0")["output_dir"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let tickets: Value =
        serde_json::from_slice(&std::fs::read(tickets_dir.join("tickets.json")).unwrap()).unwrap();
    let dense = tickets["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["round"] == 0)
        .unwrap()["test_accuracy"]
        .as_f64()
        .unwrap();
    let rows = csv(&p, "noise", "noise.csv");
    let clean: Vec<f64> = rows[1..]
        .iter()
        .filter(|r| r[0] == "dense" && r[1] == "0" && r[3] == "0.0")
        .map(|r| r[5].parse().unwrap())
        .collect();
    assert_eq!(
        clean,
        [dense, dense],
        "level 0 must reproduce the clean test accuracy exactly, for every noise seed"
    );
    let verdicts = csv(&p, "noise", "verdict.csv");
    assert_eq!(verdicts.len(), 1 + 2 * 2, "w70 and r70 at two noisy levels");
    let r = p.statuses(&["run", "p.yaml", "--json", "--set", "noise.levels=[0, 0.3]"]);
    assert_eq!(with_status(&r, "ran"), ["noise"]);
    let r = p.statuses(&["run", "p.yaml", "--json", "--set", "imp.rounds=3"]);
    assert_eq!(
        with_status(&r, "ran"),
        ["imp@seed=0", "imp@seed=1", "noise"]
    );
    assert_eq!(with_status(&r, "cached"), ["data"]);
}

#[test]
fn an_interrupted_prune_stage_resumes_at_its_last_finished_round() {
    let reference = Project::new();
    reference.file("p.yaml", LOTTERY);
    reference.statuses(&[
        "run",
        "p.yaml",
        "--json",
        "--only",
        "imp@seed=0",
        "--set",
        "imp.rounds=8",
    ]);
    let p = Project::new();
    p.file("p.yaml", LOTTERY);
    let mut child = p
        .cmd(&[
            "run",
            "p.yaml",
            "--only",
            "imp@seed=0",
            "--set",
            "imp.rounds=8",
        ])
        .spawn()
        .unwrap();
    let store = p.path().join("store");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done_rounds(&store) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "rounds never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = p.run(&[
        "run",
        "p.yaml",
        "--json",
        "--only",
        "imp@seed=0",
        "--set",
        "imp.rounds=8",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_lines(&out)
            .iter()
            .filter(|l| l["status"] == "ran")
            .count(),
        1
    );
    let show = |p: &Project| {
        let out = p.run(&[
            "show",
            "p.yaml",
            "imp@seed=0",
            "--json",
            "--set",
            "imp.rounds=8",
        ]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let resumed = show(&p);
    assert!(
        resumed["metrics"]["resumed_at_round"].as_u64().unwrap() >= 3,
        "{}",
        resumed["metrics"]
    );
    assert_eq!(
        resumed["output"],
        show(&reference)["output"],
        "a resumed run must give the same bytes as an uninterrupted one"
    );
}

#[test]
fn rewinding_to_an_iteration_differs_from_init_and_checks_its_bound() {
    let p = Project::new();
    p.file("p.yaml", LOTTERY);
    let base = [
        "run",
        "p.yaml",
        "--json",
        "--only",
        "imp@seed=0",
        "--set",
        "imp.rounds=1",
    ];
    p.statuses(&base);
    let show = p.run(&[
        "show",
        "p.yaml",
        "imp@seed=0",
        "--json",
        "--set",
        "imp.rounds=1",
    ]);
    let init = serde_json::from_slice::<Value>(&show.stdout).unwrap()["output"].clone();
    assert!(init.is_string());
    let mut late = base.to_vec();
    late.extend(["--set", "imp.rewind={iteration: 5}"]);
    p.statuses(&late);
    let show = p.run(&[
        "show",
        "p.yaml",
        "imp@seed=0",
        "--json",
        "--set",
        "imp.rounds=1",
        "--set",
        "imp.rewind={iteration: 5}",
    ]);
    let rewound: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_ne!(rewound["output"], init);
    let mut past = base.to_vec();
    past.extend(["--set", "imp.rewind={iteration: 100000}"]);
    let out = p.run(&past);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("past the end of round 0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_report_renders_from_the_cache_and_references_only_files_that_exist() {
    let p = Project::new();
    let text = format!(
        "{LOTTERY}  report:\n    kind: report\n    needs: [data, imp, noise]\n    params:\n      title: t\n      references:\n        - {{ claim: winning_drop_at3, stage: imp, paper: 0.0, tolerance: 1.0, at_most: true, source: test }}\n"
    );
    p.file("p.yaml", &text);
    let out = p.run(&["report", "p.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`imp@seed=0`") && stderr(&out).contains("repro run p.yaml"),
        "{}",
        stderr(&out)
    );
    p.statuses(&["run", "p.yaml", "--json"]);
    let dir = p.path().join("reports/lt");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let mut referenced = 0;
    for part in html
        .split("src=\"")
        .skip(1)
        .chain(html.split("href=\"").skip(1))
    {
        let target = &part[..part.find('"').unwrap()];
        if target.starts_with('#') || target.starts_with("http") {
            continue;
        }
        assert!(
            dir.join(target).is_file(),
            "index.html references missing {target}"
        );
        referenced += 1;
    }
    assert!(referenced >= 4, "only {referenced} files referenced");
    let png = std::fs::read(dir.join("figures/lottery_accuracy.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = std::fs::read_to_string(dir.join("figures/lottery_accuracy.svg")).unwrap();
    assert!(
        svg.contains("winning tickets")
            && svg.contains("random tickets")
            && svg.trim_end().ends_with("</svg>")
    );
    assert!(std::fs::read_to_string(dir.join("README.md"))
        .unwrap()
        .contains("| imp: dense minus winning ticket"));
    let r = p.statuses(&["run", "p.yaml", "--json", "--set", "report.log_x=false"]);
    assert_eq!(with_status(&r, "ran"), ["report"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let out = p.run(&["report", "p.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("index.html").is_file());
}

/// Bain's LeNet5 keeps its convolutions trained from round to round (`no_rewind`); his
/// random tickets ran as a separate `--rlt` chain, so their kept weights come from the
/// random chain's previous round (`random_chain: own`), not the winning chain's.
#[test]
fn random_tickets_can_keep_their_own_chain_of_unrewound_weights() {
    let p = Project::new();
    p.file(
        "p.yaml",
        &LOTTERY.replace(
            "      random_tickets: true\n",
            "      random_tickets: true\n      prunable: [output]\n      no_rewind: [fc]\n",
        ),
    );
    let own = ["--set", "imp.random_chain=own"];
    p.statuses(&["run", "p.yaml", "--json", "--only", "imp"]);
    p.statuses(&["run", "p.yaml", "--json", "--only", "imp", own[0], own[1]]);
    let weights = |extra: &[&str], ticket: &str| -> Vec<Vec<u8>> {
        let mut args = vec!["show", "p.yaml", "imp@seed=0", "--json"];
        args.extend(extra);
        let out = p.run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let m: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = std::path::PathBuf::from(m["output_dir"].as_str().unwrap());
        (1..=4)
            .map(|r| {
                std::fs::read(dir.join(format!("{ticket}/r{r:02}/weights.safetensors"))).unwrap()
            })
            .collect()
    };
    assert_eq!(
        weights(&[], "winning"),
        weights(&own, "winning"),
        "the winning chain does not depend on it"
    );
    let (shared, chained) = (weights(&[], "random"), weights(&own, "random"));
    assert_eq!(
        shared[0], chained[0],
        "round 1's random ticket starts from the dense round 0 in both"
    );
    for r in 1..4 {
        assert_ne!(
            shared[r],
            chained[r],
            "round {}'s random ticket keeps the random chain's trained layers",
            r + 1
        );
    }
}
