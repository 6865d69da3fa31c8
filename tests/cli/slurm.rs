//! `repro run --executor slurm` against a real Slurm: the single-node one that
//! `scripts/slurm-setup.sh` installs and starts (`.ci/run` does). Where `sinfo` is
//! absent or fails, each test prints `SKIP: <reason>` and returns.
//!
//! The tests take one lock: the test cluster is one node, and one test's jobs must not
//! queue behind another's. Jobs ask for 1 CPU, so a reference run with
//! `RAYON_NUM_THREADS=1` computes the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{done_rounds, json_lines, stderr, summary, Project};

static SLURM: Mutex<()> = Mutex::new(());

/// The cluster lock, or `None` (after printing why) where there is no Slurm.
fn slurm() -> Option<MutexGuard<'static, ()>> {
    let up = Command::new("sinfo")
        .arg("--noheader")
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        println!("SKIP: no Slurm here (`sinfo` is absent or fails); scripts/slurm-setup.sh starts a single-node one");
        return None;
    }
    Some(SLURM.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Quick polling and a short grace time, so failures show within seconds.
const CLUSTER: &str = "defaults: { cpus: 1, mem: 1G, time: 10 }
grace_seconds: 3
poll_seconds: 0.5
poll_max_seconds: 2
";

/// A dataset and one training stage of about ten seconds.
const TRAIN: &str = "name: slurm
seed: 3
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 2400, test_size: 300, validation: 100 }
  net:
    kind: train
    needs: [data]
    params:
      model: { type: mlp, hidden: [64, 32] }
      epochs: 250
      batch_size: 50
";

/// A prune stage of eight rounds of a second or two, each checkpointed.
const PRUNE: &str = "name: slurm-prune
seed: 3
stages:
  data:
    kind: dataset
    params: { name: synthetic, train_size: 2400, test_size: 300, validation: 100 }
  imp:
    kind: prune
    needs: [data]
    params:
      model: { type: mlp, hidden: [60, 30] }
      epochs: 30
      batch_size: 50
      rounds: 8
      rate: 0.2
";

/// A project with `pipeline` as `p.yaml` and [`CLUSTER`] plus `extra` lines (at least
/// `retries`) as `cluster.yaml`.
fn project(pipeline: &str, extra: &str) -> Project {
    let p = Project::new();
    p.file("p.yaml", pipeline);
    p.file("cluster.yaml", &format!("{CLUSTER}{extra}"));
    p
}

const SLURM_RUN: [&str; 7] = [
    "run",
    "p.yaml",
    "--json",
    "--executor",
    "slurm",
    "--cluster",
    "cluster.yaml",
];

/// `repro run` on one thread, as the jobs compute.
fn local(p: &Project, args: &[&str]) -> Output {
    p.cmd(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("repro runs")
}

/// Stage -> (key, output digest) of the stages a `run --json` printed.
fn digests(p: &Project, out: &Output, extra: &[&str]) -> BTreeMap<String, (String, String)> {
    assert!(out.status.success(), "{}", stderr(out));
    json_lines(out)
        .iter()
        .map(|l| {
            let stage = l["stage"].as_str().unwrap().to_string();
            let mut args = vec!["show", "p.yaml", &stage, "--json"];
            args.extend_from_slice(extra);
            let show = p.run(&args);
            let m: Value = serde_json::from_slice(&show.stdout).unwrap();
            let key = l["key"].as_str().unwrap().to_string();
            (stage, (key, m["output"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// The job folders of a project's store and the job ids each recorded, oldest first.
fn jobs(p: &Project) -> Vec<(PathBuf, Vec<String>)> {
    let root = p.path().join("store/tmp/slurm");
    let mut out: Vec<(PathBuf, Vec<String>)> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let ids = std::fs::read_to_string(e.path().join("jobs"))
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect();
            (e.path(), ids)
        })
        .collect();
    out.sort();
    out
}

/// Slurm's state word for a job (empty once Slurm forgot it).
fn state(id: &str) -> String {
    let out = Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%T", "--jobs", id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `probe` until it gives a value, panicking after `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job of `stage` once it runs: its folder and id.
fn running_job(p: &Project, child: &mut Child, stage: &str) -> (PathBuf, String) {
    wait_for("a running job", Duration::from_secs(120), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before a job was seen running");
        }
        jobs(p).into_iter().find_map(|(dir, ids)| {
            let spec: Value =
                serde_json::from_slice(&std::fs::read(dir.join("spec.json")).ok()?).ok()?;
            if spec["stage"] != stage {
                return None;
            }
            let id = ids.last()?.clone();
            let running = state(&id) == "RUNNING" && dir.join("claim").is_file();
            running.then_some((dir, id))
        })
    })
}

/// The pid of `repro exec-stage` in job `id`, from `scontrol listpids`.
fn stage_process(id: &str) -> Option<String> {
    let out = Command::new("scontrol")
        .args(["listpids", id])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("exec-stage"))
        })
        .map(String::from)
}

/// Waits for a spawned run to end and returns its output.
fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn spawn(p: &Project, args: &[&str]) -> Child {
    p.cmd(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn the_quick_profile_through_slurm_gives_the_local_keys_and_digests_and_then_submits_nothing() {
    let Some(_cluster) = slurm() else { return };
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/lottery.yaml");
    let quick = ["--profile", "quick"];
    let reference = Project::new();
    reference.file("p.yaml", &std::fs::read_to_string(&pipeline).unwrap());
    let mut args = vec!["run", "p.yaml", "--json"];
    args.extend(quick);
    let mut expected = digests(&reference, &local(&reference, &args), &quick);

    let p = project(&std::fs::read_to_string(&pipeline).unwrap(), "retries: 1\n");
    let mut args = SLURM_RUN.to_vec();
    args.extend(quick);
    let first = p.run(&args);
    let mut got = digests(&p, &first, &quick);
    // The report shows every stage's wall time, so its bytes differ from run to run
    // (two local runs too); its key, and every other stage's bytes, must not.
    let (report, local_report) = (
        got.remove("report").unwrap(),
        expected.remove("report").unwrap(),
    );
    assert_eq!(report.0, local_report.0, "the report's key");
    assert_eq!(got, expected, "{}", stderr(&first));
    assert_eq!(
        summary(&first)["submitted"],
        expected.len() + 1,
        "one job per stage"
    );
    assert_eq!(summary(&first)["retried"], 0);
    let log = stderr(&first);
    assert!(
        log.contains("  slurm   fc1: 2 jobs, 2 ran\n"),
        "one line per stage group: {log}"
    );
    let again = p.run(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(summary(&again)["submitted"], 0);
    assert_eq!(summary(&again)["cached"], expected.len() + 1);
    assert!(
        jobs(&p).is_empty(),
        "published jobs' folders are removed: {:?}",
        jobs(&p)
    );
}

#[test]
fn a_job_cancelled_from_outside_is_retried() {
    let Some(_cluster) = slurm() else { return };
    let p = project(TRAIN, "retries: 1\n");
    let mut child = spawn(&p, &SLURM_RUN);
    let (_, id) = running_job(&p, &mut child, "net");
    assert!(Command::new("scancel").arg(&id).status().unwrap().success());
    let out = finish(child);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["retried"], 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("job {id} was cancelled")),
        "{}",
        stderr(&out)
    );
    let reference = Project::new();
    reference.file("p.yaml", TRAIN);
    let expected = digests(
        &reference,
        &local(&reference, &["run", "p.yaml", "--json"]),
        &[],
    );
    assert_eq!(
        digests(&p, &out, &[]),
        expected,
        "the retried job's bytes are a local run's"
    );
}

#[test]
fn a_job_over_its_time_limit_is_reported_as_such() {
    let Some(_cluster) = slurm() else { return };
    let slow = TRAIN.replace("epochs: 250", "epochs: 100000");
    let p = project(&slow, "retries: 0\nstages: { net: { time: \"0:05\" } }\n");
    let out = p.run(&SLURM_RUN);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ran past its time limit of 0:01:00")
            && err.contains("raise `time` for this stage in the cluster file"),
        "{err}"
    );
    let net = json_lines(&out)
        .into_iter()
        .find(|l| l["stage"] == "net")
        .unwrap();
    assert_eq!(net["status"], "failed");
    assert!(!p
        .path()
        .join(format!(
            "store/stages/{}.json",
            net["key"].as_str().unwrap()
        ))
        .exists());
}

#[test]
fn a_job_whose_process_is_killed_leaves_no_record() {
    let Some(_cluster) = slurm() else { return };
    let p = project(TRAIN, "retries: 0\n");
    let mut child = spawn(&p, &SLURM_RUN);
    let (_, id) = running_job(&p, &mut child, "net");
    let pid = wait_for("the job's process", Duration::from_secs(30), || {
        stage_process(&id)
    });
    let killed = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(killed.success());
    let out = finish(child);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ended as FAILED without a result"),
        "{}",
        stderr(&out)
    );
    let stages: Vec<_> = std::fs::read_dir(p.path().join("store/stages"))
        .unwrap()
        .collect();
    assert_eq!(stages.len(), 1, "only the dataset has a record");
    let verify = p.run(&["verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    let again = p.run(&SLURM_RUN);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(summary(&again)["ran"], 1);
}

#[test]
fn a_second_job_for_one_stage_computes_nothing_and_a_restarted_run_follows_the_first() {
    let Some(_cluster) = slurm() else { return };
    let p = project(TRAIN, "retries: 1\n");
    let mut child = spawn(&p, &SLURM_RUN);
    let (dir, first) = running_job(&p, &mut child, "net");
    // The coordinator dies; its job runs on.
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(dir.join("job.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let log = dir.join(format!("slurm-{second}.out"));
    let text = wait_for("the duplicate to end", Duration::from_secs(60), || {
        let s = state(&second);
        (s == "COMPLETED").then(|| std::fs::read_to_string(&log).unwrap_or_default())
    });
    assert!(
        text.contains(&format!("job {first} already computes this folder")),
        "{text}"
    );
    let out = p.run(&SLURM_RUN);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("attach  net (job {first}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        summary(&out)["submitted"],
        0,
        "the first job was followed again"
    );
}

#[test]
fn ctrl_c_cancels_this_runs_jobs_and_no_other() {
    let Some(_cluster) = slurm() else { return };
    let p = project(TRAIN, "retries: 1\n");
    let other = Command::new("sbatch")
        .args([
            "--parsable",
            "--cpus-per-task=1",
            "--output=/dev/null",
            "--wrap",
            "sleep 60",
        ])
        .output()
        .unwrap();
    let other = String::from_utf8_lossy(&other.stdout).trim().to_string();
    let mut child = spawn(&p, &SLURM_RUN);
    let (_, id) = running_job(&p, &mut child, "net");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = finish(child);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("interrupted: its Slurm job {id} was cancelled")),
        "{}",
        stderr(&out)
    );
    wait_for("the job to be cancelled", Duration::from_secs(30), || {
        (state(&id) == "CANCELLED").then_some(())
    });
    let still = state(&other);
    let _ = Command::new("scancel").arg(&other).status();
    assert!(
        still == "RUNNING" || still == "PENDING",
        "another job was touched: {still}"
    );
}

#[test]
fn a_requeued_prune_job_resumes_from_its_checkpoints_with_the_same_digest() {
    let Some(_cluster) = slurm() else { return };
    let reference = Project::new();
    reference.file("p.yaml", PRUNE);
    let expected = digests(
        &reference,
        &local(&reference, &["run", "p.yaml", "--json"]),
        &[],
    );

    let p = project(PRUNE, "retries: 1\n");
    let mut child = spawn(&p, &SLURM_RUN);
    let (_, id) = running_job(&p, &mut child, "imp");
    wait_for("a checkpointed round", Duration::from_secs(120), || {
        (done_rounds(&p.path().join("store")) >= 2).then_some(())
    });
    let requeue = Command::new("scontrol")
        .args(["requeue", &id])
        .status()
        .unwrap();
    assert!(requeue.success());
    let out = finish(child);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["retried"], 0, "a requeue is the same job");
    let job = Command::new("scontrol")
        .args(["show", "job", &id])
        .output()
        .unwrap();
    let job = String::from_utf8_lossy(&job.stdout);
    assert!(job.contains("Restarts=1"), "the job ran twice: {job}");
    assert_eq!(digests(&p, &out, &[]), expected);
}
