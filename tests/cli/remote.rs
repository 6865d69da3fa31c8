//! A remote store as a shared cache: `repro push`, `repro pull` and `repro run --remote`
//! copy objects before records, verified, and refuse results of another CPU kernel
//! unless asked.

use serde_json::Value;

use crate::util::{json_lines, stderr, with_status, Project};

const PIPE: &str = "name: shared
seed: 2
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 600, test_size: 200 }
  net:
    kind: train
    needs: [data]
    params:
      model: { type: mlp, hidden: [16] }
      epochs: 1
      batch_size: 50
";

/// A project that ran [`PIPE`] and pushed it to `remote/` (relative to its folder).
fn pushed() -> Project {
    let p = Project::new();
    p.file("p.yaml", PIPE);
    p.statuses(&["run", "p.yaml", "--json"]);
    let push = p.run(&["push", "p.yaml", "--remote", "remote", "--json"]);
    assert!(push.status.success(), "{}", stderr(&push));
    let lines = json_lines(&push);
    assert!(lines.iter().all(|l| l["status"] == "copied"), "{lines:?}");
    p
}

/// The record file, in the remote store, of stage `stage`.
fn record_file(p: &Project, stage: &str) -> std::path::PathBuf {
    let show = p.run(&["show", "p.yaml", stage, "--json"]);
    let m: Value = serde_json::from_slice(&show.stdout).unwrap();
    p.path()
        .join("remote/stages")
        .join(format!("{}.json", m["key"].as_str().unwrap()))
}

#[test]
fn pushed_results_are_pulled_and_then_cached() {
    let p = pushed();
    let again = p.run(&["push", "p.yaml", "--remote", "remote"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 copied"));
    let fresh = p
        .cmd(&["pull", "p.yaml", "--remote", "remote", "--json"])
        .env("REPRO_STORE", p.path().join("fresh"))
        .output()
        .unwrap();
    assert!(fresh.status.success(), "{}", stderr(&fresh));
    assert_eq!(json_lines(&fresh).len(), 2);
    let run = p
        .cmd(&["run", "p.yaml", "--json"])
        .env("REPRO_STORE", p.path().join("fresh"))
        .output()
        .unwrap();
    let statuses: Vec<_> = json_lines(&run)
        .iter()
        .map(|l| {
            (
                l["stage"].as_str().unwrap().to_string(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(with_status(&statuses, "cached"), ["data", "net"]);
}

#[test]
fn run_with_a_remote_fetches_verified_results_and_recomputes_damaged_ones() {
    let p = pushed();
    let net = record_file(&p, "net");
    let record: Value = serde_json::from_slice(&std::fs::read(&net).unwrap()).unwrap();
    // Damage the net's object in the remote: its copy fails verification.
    let object = p
        .path()
        .join("remote/objects")
        .join(record["output"].as_str().unwrap());
    let file = std::fs::read_dir(&object)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_file())
        .unwrap()
        .path();
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, "damaged").unwrap();
    let out = p
        .cmd(&["run", "p.yaml", "--json", "--remote", "remote"])
        .env("REPRO_STORE", p.path().join("fresh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("fetched data (from remote)"), "{err}");
    assert!(
        err.contains("remote  net: not used") && err.contains("after copying it"),
        "{err}"
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["status"], "cached");
    assert_eq!(lines[1]["status"], "ran");
    let verify = p
        .cmd(&["verify"])
        .env("REPRO_STORE", p.path().join("fresh"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn a_result_of_another_cpu_kernel_is_pulled_only_when_allowed() {
    let p = pushed();
    let net = record_file(&p, "net");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&net).unwrap()).unwrap();
    record["manifest"]["cpu_products"] = "another-kernel".into();
    std::fs::write(&net, serde_json::to_vec(&record).unwrap()).unwrap();
    let fresh = p.path().join("fresh");
    let pull = p
        .cmd(&["pull", "p.yaml", "--remote", "remote"])
        .env("REPRO_STORE", &fresh)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&pull.stdout);
    assert!(
        text.contains("refused net: its products ran on another-kernel"),
        "{text}"
    );
    assert!(text.contains("1 copied"), "{text}");
    let any = p
        .cmd(&["pull", "p.yaml", "--remote", "remote", "--any-kernel"])
        .env("REPRO_STORE", &fresh)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&any.stdout);
    assert!(
        text.contains("copied  net") && text.contains("present data"),
        "{text}"
    );
}

#[test]
fn remotes_are_named_in_the_project_or_user_config() {
    let p = pushed();
    p.file(".repro/config.yaml", "remotes:\n  lab: remote\n");
    let user = p.path().join("user-config");
    let pull = |name: &str| {
        p.cmd(&["pull", "p.yaml", "--remote", name])
            .env("REPRO_STORE", p.path().join("fresh"))
            .env("XDG_CONFIG_HOME", &user)
            .output()
            .unwrap()
    };
    let named = pull("lab");
    assert!(named.status.success(), "{}", stderr(&named));
    let out = String::from_utf8_lossy(&named.stdout);
    assert!(out.contains("2 copied from ./remote"), "{out}");

    let typo = pull("labb");
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
    let err = stderr(&typo);
    assert!(
        err.contains("no remote of that name (defined: lab)") && err.contains(".repro/config.yaml"),
        "{err}"
    );
    assert!(
        !p.path().join("labb").exists(),
        "a mistyped name creates nothing"
    );
}
