//! Store integrity: corrupt objects, killed runs, concurrent runs, gc.

use std::time::Duration;

use crate::util::{stderr, with_status, Project};

const PIPE: &str = "name: st
stages:
  a:
    kind: dataset
    params: { name: synthetic, train_size: 300, test_size: 100 }
";

fn objects(p: &Project) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let root = p.path().join("store/objects");
    for e in std::fs::read_dir(root).unwrap().flatten() {
        for f in std::fs::read_dir(e.path()).unwrap().flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    out
}

/// Flips the middle byte of an object file of more than 100 bytes; with `keep_mtime`,
/// restores its modification time (and read-only bit), so only a rehash can tell.
fn flip_a_byte(p: &Project, keep_mtime: bool) {
    let file = objects(p)
        .into_iter()
        .find(|f| f.metadata().unwrap().len() > 100)
        .unwrap();
    let mtime = file.metadata().unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let mut perms = file.metadata().unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms.clone()).unwrap();
    std::fs::write(&file, bytes).unwrap();
    if keep_mtime {
        let handle = std::fs::File::options().write(true).open(&file).unwrap();
        handle.set_modified(mtime).unwrap();
        perms.set_readonly(true);
        std::fs::set_permissions(&file, perms).unwrap();
    }
}

#[test]
fn a_flipped_byte_is_found_by_verify_and_redone_by_run() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    p.statuses(&["run", "p.yaml", "--json"]);
    assert!(p.run(&["verify"]).status.success());
    flip_a_byte(&p, false);
    let plan = p.run(&["plan", "p.yaml"]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("output corrupt"));
    let verify = p.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        report.contains("corrupt  object") && report.contains("(evicted)"),
        "{report}"
    );
    assert!(
        report.contains("evicted  object") && report.contains("stage `a`"),
        "{report}"
    );
    assert!(
        report.contains("1 problems"),
        "one corrupt object is one problem: {report}"
    );
    let plan = p.run(&["plan", "p.yaml"]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("output missing"));
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
        ["a"]
    );
    assert!(p.run(&["verify"]).status.success());
}

#[test]
fn a_deleted_object_is_a_miss() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    p.statuses(&["run", "p.yaml", "--json"]);
    let dir = objects(&p)[0].parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(dir).unwrap();
    let plan = p.run(&["plan", "p.yaml"]);
    assert!(String::from_utf8_lossy(&plan.stdout).contains("output missing"));
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
        ["a"]
    );
}

#[test]
fn a_live_lock_gives_exit_3_and_wait_succeeds() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    std::fs::create_dir_all(p.path().join("store")).unwrap();
    let lock = std::fs::File::create(p.path().join("store/lock")).unwrap();
    lock.lock().unwrap();
    let out = p.run(&["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    let waiter = p.cmd(&["run", "p.yaml", "--wait", "30"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(lock);
    assert!(waiter.wait_with_output().unwrap().status.success());
}

#[test]
fn gc_keeps_what_pipelines_reach_and_frees_the_rest() {
    let p = Project::new();
    p.file("pipelines/p.yaml", PIPE);
    p.statuses(&["run", "pipelines/p.yaml", "--json"]);
    p.statuses(&[
        "run",
        "pipelines/p.yaml",
        "--json",
        "--set",
        "a.test_size=50",
    ]);
    assert_eq!(
        objects(&p)
            .iter()
            .filter_map(|f| f.parent())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        2
    );
    let dry = p.run(&["gc", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("would remove 1 records and 1 objects"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    // Leftovers of an interrupted run of a stage no pipeline reaches any more.
    let store = p.path().join("store");
    let stale = store.join("tmp/scratch/0123abcd");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("round-3.safetensors"), b"weights").unwrap();
    let job = store.join("tmp/slurm/0123abcd");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(job.join("slurm-1.out"), b"log").unwrap();
    let gc = p.run(&["gc"]);
    let out = String::from_utf8_lossy(&gc.stdout);
    assert!(out.contains("removed 1 records and 1 objects"), "{out}");
    assert!(
        out.contains("removed 1 checkpoint folders and 1 Slurm job folders from tmp/"),
        "{out}"
    );
    assert!(!stale.exists() && !job.exists());
    assert_eq!(
        with_status(
            &p.statuses(&["run", "pipelines/p.yaml", "--json"]),
            "cached"
        ),
        ["a"]
    );
}

/// The record file of the only stage of `PIPE`, after one run.
fn only_record(p: &Project) -> std::path::PathBuf {
    let mut records: Vec<_> = std::fs::read_dir(p.path().join("store/stages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(records.len(), 1);
    records.pop().unwrap()
}

#[test]
fn a_damaged_record_is_a_miss_with_a_warning_and_verify_evicts_it() {
    type Damage = fn(&str) -> String;
    let damages: [(&str, Damage); 5] = [
        ("truncated", |t| t[..t.len() / 2].to_string()),
        ("garbage", |_| "\u{1}not json at all".to_string()),
        ("empty", |_| String::new()),
        ("wrong shape", |_| {
            "{\"key\": 3, \"output\": []}".to_string()
        }),
        ("another key", |t| {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            t.replace(v["key"].as_str().unwrap(), &"0".repeat(64))
        }),
    ];
    for (what, damage) in damages {
        let p = Project::new();
        p.file("p.yaml", PIPE);
        p.statuses(&["run", "p.yaml", "--json"]);
        let record = only_record(&p);
        let text = std::fs::read_to_string(&record).unwrap();
        std::fs::write(&record, damage(&text)).unwrap();
        let plan = p.run(&["plan", "p.yaml"]);
        assert!(plan.status.success(), "{what}: {}", stderr(&plan));
        assert!(
            String::from_utf8_lossy(&plan.stdout).contains("record corrupt"),
            "{what}: {}",
            String::from_utf8_lossy(&plan.stdout)
        );
        let verify = p.run(&["verify"]);
        assert_eq!(verify.status.code(), Some(1), "{what}");
        assert!(
            String::from_utf8_lossy(&verify.stdout).contains("corrupt  record"),
            "{what}"
        );
        assert_eq!(
            with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
            ["a"],
            "{what}"
        );
        assert_eq!(
            with_status(&p.statuses(&["run", "p.yaml", "--json"]), "cached"),
            ["a"],
            "{what}"
        );
        assert!(
            p.run(&["verify"]).status.success(),
            "{what}: the store heals"
        );
    }
}

#[test]
fn a_record_pointing_at_another_valid_object_is_a_miss() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    p.statuses(&["run", "p.yaml", "--json"]);
    let record = only_record(&p);
    let original = std::fs::read_to_string(&record).unwrap();
    p.statuses(&["run", "p.yaml", "--json", "--set", "a.test_size=50"]);
    let other_record = std::fs::read_dir(p.path().join("store/stages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|r| *r != record)
        .unwrap();
    let other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(other_record).unwrap()).unwrap();
    let mine: serde_json::Value = serde_json::from_str(&original).unwrap();
    let swapped = original.replace(
        mine["output"].as_str().unwrap(),
        other["output"].as_str().unwrap(),
    );
    std::fs::write(&record, swapped).unwrap();
    let plan = p.run(&["plan", "p.yaml"]);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("seal does not match"),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
        ["a"]
    );
}

#[test]
fn corruption_that_keeps_size_and_mtime_is_evicted_by_verify_and_redone_by_run() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    p.statuses(&["run", "p.yaml", "--json"]);
    flip_a_byte(&p, true);
    // The cheap check cannot see it; verify can, and its finding sticks.
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "cached"),
        ["a"]
    );
    assert_eq!(p.run(&["verify"]).status.code(), Some(1));
    assert_eq!(
        with_status(&p.statuses(&["run", "p.yaml", "--json"]), "ran"),
        ["a"]
    );
    assert!(p.run(&["verify"]).status.success());
}

#[test]
fn verify_reports_a_record_whose_object_folder_is_gone() {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    p.statuses(&["run", "p.yaml", "--json"]);
    let dir = objects(&p)[0].parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(dir).unwrap();
    let verify = p.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        out.contains("missing  object") && out.contains("stage `a`"),
        "{out}"
    );
    let json = p.run(&["verify", "--json"]);
    assert!(String::from_utf8_lossy(&json.stdout).contains("\"status\":\"object missing\""));
}
