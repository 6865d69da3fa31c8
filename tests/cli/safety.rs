//! Regression tests of the fault campaign (issue 14): inputs that once deleted files,
//! crashed, or validated and then failed in `run`. Each gives a clear exit 2, or is
//! handled, and changes nothing on disk.

use std::io::Read;
use std::process::Stdio;

use crate::util::{stderr, Project};

const DATA: &str = "  data:
    kind: dataset
    params: { name: synthetic, train_size: 200, test_size: 100 }
";

const REPORT: &str = "  rep:
    kind: report
    needs: [data]
";

/// Runs `args` and asserts exit 2 with every needle in stderr.
fn invalid(p: &Project, args: &[&str], needles: &[&str]) -> String {
    let out = p.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: message lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_pipeline_name_that_leaves_the_reports_folder_is_refused_and_deletes_nothing() {
    for name in ["..", "/tmp/repro-victim", "a/b", ".", "", "../x"] {
        let p = Project::new();
        p.file("keep.txt", "mine");
        p.file("reports/keep.txt", "mine too");
        let text = format!("name: \"{name}\"\nstages:\n{DATA}{REPORT}");
        p.file("p.yaml", &text);
        for _ in 0..2 {
            invalid(&p, &["run", "p.yaml"], &["p.yaml", "`name`"]);
        }
        assert_eq!(
            std::fs::read_to_string(p.path().join("keep.txt")).unwrap(),
            "mine"
        );
        assert!(p.path().join("reports/keep.txt").is_file());
        assert!(
            !p.path().join("store/objects").exists(),
            "nothing may be published"
        );
    }
}

#[test]
fn a_matrix_value_that_is_a_path_is_refused() {
    let p = Project::new();
    let text = format!(
        "name: m\nstages:\n{DATA}  rep:\n    kind: report\n    needs: [data]\n    matrix: {{ title: [\"../../etc\", \"b\"] }}\n"
    );
    p.file("p.yaml", &text);
    invalid(
        &p,
        &["plan", "p.yaml"],
        &["p.yaml", "matrix.title", "`rep`"],
    );
}

#[test]
fn a_folder_in_the_way_of_a_report_is_left_alone_and_reports_are_0644() {
    let p = Project::new();
    p.file("reports/r/notes.txt", "not a report");
    p.file("p.yaml", &format!("name: r\nstages:\n{DATA}{REPORT}"));
    invalid(&p, &["run", "p.yaml"], &["reports/r", "--reports"]);
    assert!(p.path().join("reports/r/notes.txt").is_file());
    assert!(!p.path().join("store/objects").exists());
    std::fs::remove_dir_all(p.path().join("reports/r")).unwrap();
    for _ in 0..2 {
        let out = p.run(&["run", "p.yaml"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let index = p.path().join("reports/r/index.html");
    assert!(index.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = index.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
    let leftovers: Vec<_> = std::fs::read_dir(p.path().join("reports"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["r"], "the swap leaves no temporary folders");
}

#[test]
fn huge_matrices_and_numbers_are_bounded_with_the_reason() {
    let p = Project::new();
    let values: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    let list = values.join(", ");
    p.file(
        "m.yaml",
        &format!(
            "name: m\nstages:\n{DATA}    matrix: {{ seed: [{list}], train_size: [{list}] }}\n"
        ),
    );
    invalid(
        &p,
        &["plan", "m.yaml"],
        &["m.yaml", "more than 10000 stages"],
    );
    let net = |params: &str| {
        format!("name: n\nstages:\n{DATA}  net:\n    kind: train\n    needs: [data]\n    params: {{ {params} }}\n")
    };
    p.file("e.yaml", &net("epochs: 9223372036854775807"));
    invalid(&p, &["plan", "e.yaml"], &["e.yaml", "epochs", "1..=100000"]);
    p.file(
        "n.yaml",
        &format!(
            "name: n\nstages:\n{DATA}  net:\n    kind: train\n    needs: [data]\n  noise:\n    kind: noise-eval\n    needs: [data, net]\n    params: {{ networks: [], noise_seeds: 18446744073709551615 }}\n"
        ),
    );
    invalid(
        &p,
        &["plan", "n.yaml"],
        &["n.yaml", "noise_seeds", "at most"],
    );
}

#[test]
fn bad_wait_and_jobs_are_refused() {
    let p = Project::new();
    p.file("p.yaml", &format!("name: w\nstages:\n{DATA}"));
    for wait in ["inf", "1e30", "NaN", "-1", "soon"] {
        invalid(
            &p,
            &["run", "p.yaml", &format!("--wait={wait}")],
            &["--wait"],
        );
    }
    invalid(&p, &["run", "p.yaml", "--jobs", "0"], &["--jobs"]);
    assert!(!p.path().join("store").exists());
}

#[test]
fn a_closed_stdout_ends_verify_quietly() {
    let p = Project::new();
    p.file("p.yaml", &format!("name: w\nstages:\n{DATA}"));
    assert!(p.run(&["run", "p.yaml"]).status.success());
    let mut child = p
        .cmd(&["verify", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn pipelines_that_cannot_run_fail_validation_before_anything_runs() {
    let cases = [
        (
            "  net:\n    kind: train\n",
            vec!["stage `net`", "needs a dataset stage"],
        ),
        (
            "  noise:\n    kind: noise-eval\n    needs: [data]\n",
            vec!["stage `noise`", "at least one `prune` or `train`"],
        ),
        (
            "  imp:\n    kind: prune\n    needs: [data]\n    params: { rounds: 1, epochs: 1 }\n  noise:\n    kind: noise-eval\n    needs: [data, imp]\n    params: { networks: [dense, w30, r30] }\n",
            vec!["stage `noise`", "`r30`", "random_tickets: true"],
        ),
        (
            "  imp:\n    kind: prune\n    needs: [data]\n    params: { rounds: 1, epochs: 1 }\n  noise:\n    kind: noise-eval\n    needs: [data, imp]\n    params: { networks: [x30] }\n",
            vec!["stage `noise`", "ticket name `x30`"],
        ),
        (
            "  imp:\n    kind: prune\n    needs: [data]\n    params: { rounds: 1, epochs: 1 }\n  noise:\n    kind: noise-eval\n    needs: [data, imp]\n    params: { networks: [\"é3\", \"\"] }\n",
            vec!["stage `noise`", "ticket name"],
        ),
        (
            "  seq:\n    kind: continual\n    needs: [data]\n    params: { tasks: { datasets: [data, other] } }\n",
            vec!["stage `seq`", "`other`"],
        ),
    ];
    for (stages, needles) in cases {
        let p = Project::new();
        p.file("p.yaml", &format!("name: v\nstages:\n{DATA}{stages}"));
        let mut all = vec!["p.yaml"];
        all.extend(needles.iter().copied());
        invalid(&p, &["plan", "p.yaml"], &all);
        invalid(&p, &["run", "p.yaml"], &all);
        assert!(
            !p.path().join("store/objects").exists() || {
                std::fs::read_dir(p.path().join("store/objects"))
                    .unwrap()
                    .count()
                    == 0
            }
        );
    }
}

#[test]
fn store_arguments_that_name_no_store_are_invalid() {
    let p = Project::new();
    p.file("p.yaml", &format!("name: s\nstages:\n{DATA}"));
    p.file("afile", "x");
    invalid(
        &p,
        &["run", "p.yaml", "--store", "afile"],
        &["afile", "not a folder"],
    );
    invalid(&p, &["verify", "--store", "typo"], &["typo", "no store"]);
    assert!(
        !p.path().join("typo").exists(),
        "verify must not create a store"
    );
}

#[test]
fn set_of_a_stage_field_says_it_is_not_a_param() {
    let p = Project::new();
    p.file("p.yaml", &format!("name: s\nstages:\n{DATA}"));
    invalid(
        &p,
        &["plan", "p.yaml", "--set", "data.kind=train"],
        &["p.yaml", "`kind` is part of the stage's definition"],
    );
}

#[test]
fn deep_nesting_is_refused_quickly() {
    let p = Project::new();
    let deep = 100_000;
    p.file(
        "p.yaml",
        &format!(
            "name: d\nstages: {}{}\n",
            "[".repeat(deep),
            "]".repeat(deep)
        ),
    );
    let started = std::time::Instant::now();
    invalid(&p, &["plan", "p.yaml"], &["p.yaml", "nest more than"]);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

#[test]
fn a_missing_dataset_names_the_pipeline_file() {
    let p = Project::new();
    p.file(
        "p.yaml",
        "name: m\nstages:\n  data:\n    kind: dataset\n    params: { name: kmnist }\n",
    );
    let out = p
        .cmd(&["run", "p.yaml"])
        .env("REPRO_DATA", p.path().join("nodata"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("p.yaml") && err.contains("kmnist"), "{err}");
}
