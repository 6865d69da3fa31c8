//! One Slurm job's folder, `tmp/slurm/<key>/` in the store ([`JobDir`]), and what runs
//! inside the job ([`exec_stage`], the hidden `repro exec-stage DIR`).
//!
//! The coordinator writes `spec.json` ([`JobSpec`]: everything the stage needs, with
//! absolute paths) and `job.sh`, submits it and appends the job id to `jobs`. The job
//! claims the folder (`claim`, created exclusively, so a second job submitted for the
//! same key exits without computing; a requeued job keeps its id and its claim),
//! computes into `out/`, reports progress in `progress.json`, and writes `result.json`
//! ([`JobResult`]) last, by rename. A job never opens the store, never takes its lock
//! and never publishes: the coordinator rehashes `out/` against the result and
//! publishes it. Logs are `slurm-<job id>.out`. Nothing here prints.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::device::DeviceChoice;
use crate::run::events::Failure;
use crate::run::execute::{compute, Computed};
use crate::stages::{find_kind, Input, Progress, StageContext};
use crate::store::object::{remove_tree, tree_digest};
use crate::store::{read_json, Store};

use super::cluster::Resources;

/// Everything a job needs to compute its stage, written by the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    /// The stage key (also the folder's name).
    pub key: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The stage's expanded name.
    pub stage: String,
    /// Its kind.
    pub kind: String,
    /// The kind's code version the coordinator keyed it with.
    pub version: u32,
    /// Resolved params.
    pub params: Value,
    /// Its seed.
    pub seed: u64,
    /// Where it computes.
    pub device: DeviceChoice,
    /// Upstream results (their object folders, absolute).
    pub inputs: BTreeMap<String, Input>,
    /// External source files (absolute).
    pub sources: BTreeMap<String, PathBuf>,
    /// The stage's resumable scratch folder in the store (absolute).
    pub scratch_dir: PathBuf,
}

/// What a job leaves in `result.json`, written last.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum JobResult {
    /// The stage computed; `out/` hashes to `digest`.
    Done {
        /// The stage key.
        key: String,
        /// The job that computed it.
        job: String,
        /// [`tree_digest`] of `out/`.
        digest: String,
        /// Metrics and the facts of the machine.
        computed: Computed,
    },
    /// The stage's own code failed (rerunning it would fail again).
    Failed {
        /// The stage key.
        key: String,
        /// The job that ran it.
        job: String,
        /// Why.
        failure: Failure,
    },
}

impl JobResult {
    fn key(&self) -> &str {
        match self {
            JobResult::Done { key, .. } | JobResult::Failed { key, .. } => key,
        }
    }
}

/// A job's progress as its stage last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Units done.
    pub position: u64,
    /// Units in all.
    pub length: u64,
    /// E.g. `round 2/3`.
    pub message: String,
}

/// The folder of the job of one stage key.
#[derive(Debug, Clone)]
pub struct JobDir {
    root: PathBuf,
}

impl JobDir {
    /// The folder of `key`'s job in `store` (made absolute: jobs run elsewhere).
    pub fn of(store: &Store, key: &str) -> JobDir {
        let root = store.jobs_dir().join(key);
        JobDir {
            root: std::path::absolute(&root).unwrap_or(root),
        }
    }

    /// A folder given on the command line of `repro exec-stage`.
    pub fn at(root: &Path) -> JobDir {
        JobDir {
            root: root.to_path_buf(),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The job script.
    pub fn script(&self) -> PathBuf {
        self.file("job.sh")
    }

    /// Where the job writes the stage's outputs.
    pub fn out_dir(&self) -> PathBuf {
        self.file("out")
    }

    /// The log of job `id`.
    pub fn log(&self, id: &str) -> PathBuf {
        self.file(&format!("slurm-{id}.out"))
    }

    /// The spec, if the folder holds a readable one.
    pub fn spec(&self) -> Option<JobSpec> {
        read_json(&self.file("spec.json")).ok().flatten()
    }

    /// Readies the folder for a new submission: removes what an earlier attempt left
    /// (outputs, claim, result, progress; logs stay) and writes the spec and script.
    pub fn prepare(&self, spec: &JobSpec, script: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        for name in ["claim", "result.json", "progress.json"] {
            match std::fs::remove_file(self.file(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if self.out_dir().exists() {
            std::fs::remove_dir_all(self.out_dir())?;
        }
        let json = serde_json::to_vec_pretty(spec).expect("specs serialize");
        write_replacing(&self.file("spec.json"), &json)?;
        write_replacing(&self.script(), script.as_bytes())
    }

    /// Appends a submitted job's id to `jobs`.
    pub fn record_submission(&self, id: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file("jobs"))?;
        writeln!(f, "{id}")?;
        f.sync_all()
    }

    /// The ids of the jobs submitted for this folder, oldest first.
    pub fn submissions(&self) -> Vec<String> {
        std::fs::read_to_string(self.file("jobs"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The result file: `None` while there is none, an error when it is unusable.
    pub fn result(&self, key: &str) -> Option<Result<JobResult, String>> {
        let path = self.file("result.json");
        match read_json::<JobResult>(&path) {
            Ok(None) => None,
            Ok(Some(r)) if r.key() == key => Some(Ok(r)),
            Ok(Some(r)) => Some(Err(format!(
                "{} is the result of key {}, not {key}",
                path.display(),
                r.key()
            ))),
            Err(e) => Some(Err(e.to_string())),
        }
    }

    /// The last progress the job reported, if any.
    pub fn progress(&self) -> Option<JobProgress> {
        read_json(&self.file("progress.json")).ok().flatten()
    }

    /// Removes the folder (after its result is published).
    pub fn remove(&self) {
        let _ = remove_tree(&self.root);
    }
}

/// Writes a file whole through a temp file and a rename, so a reader on another
/// machine sees the old content or the new, never half of it.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Quotes a word for `sh`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The Slurm job name of a key: how a job is found again when `sbatch` timed out
/// after it did submit.
pub fn job_name(key: &str) -> String {
    format!("repro-{}", &key[..key.len().min(16)])
}

/// The batch script of a job: its resources as `#SBATCH` lines, its thread count, and
/// `repro exec-stage` on its folder. Submitting it again by hand is safe.
pub fn script(
    spec: &JobSpec,
    dir: &JobDir,
    resources: &Resources,
    exe: &Path,
    cwd: &Path,
) -> String {
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!(
        "# repro: stage `{}` of pipeline `{}` (key {}).\n# Computes into this folder; the `repro run` that submitted it verifies and publishes\n# the result. A second copy of this job exits without computing.\n",
        spec.stage, spec.pipeline, spec.key
    ));
    let mut flags = vec![
        format!("--job-name={}", job_name(&spec.key)),
        format!("--output={}", dir.path().join("slurm-%j.out").display()),
        "--open-mode=append".to_string(),
        "--requeue".to_string(),
        format!("--chdir={}", cwd.display()),
    ];
    flags.extend(resources.sbatch_flags());
    for flag in flags {
        s.push_str(&format!("#SBATCH {flag}\n"));
    }
    s.push_str(&format!("export RAYON_NUM_THREADS={}\n", resources.cpus));
    s.push_str(&format!(
        "exec {} exec-stage {}\n",
        sh_quote(&exe.display().to_string()),
        sh_quote(&dir.path().display().to_string())
    ));
    s
}

/// What `repro exec-stage` did.
#[derive(Debug)]
pub enum ExecOutcome {
    /// Computed the stage; its outputs hash to this digest.
    Done(String),
    /// The stage's code failed; the result file says so.
    StageFailed(Failure),
    /// Another job holds the folder: this one computed nothing.
    Duplicate {
        /// That job.
        holder: String,
    },
    /// The folder already holds a result: nothing to do.
    AlreadyDone,
}

/// The id of the job this process runs in: Slurm's, or the pid when run by hand.
fn this_job() -> String {
    std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| format!("pid-{}", std::process::id()))
}

/// Takes the folder's claim for `me`; `Ok(Some(holder))` when another job holds it.
fn claim(dir: &JobDir, me: &str) -> std::io::Result<Option<String>> {
    let path = dir.file("claim");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(me.as_bytes())?;
            f.sync_all()?;
            Ok(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let holder = std::fs::read_to_string(&path)?.trim().to_string();
            Ok((holder != me).then_some(holder))
        }
        Err(e) => Err(e),
    }
}

/// Writes a job's progress into its folder, at most every half second.
struct FileProgress {
    path: PathBuf,
    last: Mutex<Option<Instant>>,
}

impl Progress for FileProgress {
    fn update(&self, position: u64, length: u64, message: &str) {
        let mut last = self.last.lock().expect("not poisoned");
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) && position < length {
            return;
        }
        *last = Some(Instant::now());
        let p = JobProgress {
            position,
            length,
            message: message.to_string(),
        };
        let _ = write_replacing(&self.path, &serde_json::to_vec(&p).expect("serializes"));
    }
}

/// The body of `repro exec-stage DIR`: computes the stage of a job folder into its
/// `out/` and writes its result file last. The error says why the folder is unusable.
pub fn exec_stage(root: &Path) -> Result<ExecOutcome, String> {
    let dir = JobDir::at(root);
    let spec = dir.spec().ok_or_else(|| {
        format!(
            "{} holds no job spec: its result was published and the folder removed, or it is not a job folder",
            root.display()
        )
    })?;
    let kind = find_kind(&spec.kind)
        .ok_or_else(|| format!("this repro has no stage kind `{}`", spec.kind))?;
    if kind.version() != spec.version {
        return Err(format!(
            "this repro has version {} of stage kind `{}`, the run that submitted the job keyed it with version {}: run the same repro binary on the nodes",
            kind.version(),
            spec.kind,
            spec.version
        ));
    }
    let me = this_job();
    let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", root.display());
    if let Some(holder) = claim(&dir, &me).map_err(|e| io("claim", e))? {
        return Ok(ExecOutcome::Duplicate { holder });
    }
    if let Some(Ok(_)) = dir.result(&spec.key) {
        return Ok(ExecOutcome::AlreadyDone);
    }
    let out = dir.out_dir();
    if out.exists() {
        remove_tree(&out).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(&out).map_err(|e| io("create out/ in", e))?;
    let progress = FileProgress {
        path: dir.file("progress.json"),
        last: Mutex::new(None),
    };
    let ctx = StageContext {
        pipeline: spec.pipeline.clone(),
        stage: spec.stage.clone(),
        out_dir: out.clone(),
        scratch_dir: spec.scratch_dir.clone(),
        inputs: spec.inputs.clone(),
        sources: spec.sources.clone(),
        seed: spec.seed,
        device: spec.device,
        progress: &progress,
    };
    let host = crate::provenance::host_name();
    let (result, outcome) = match compute(kind, &spec.params, &ctx, &host) {
        Ok(computed) => {
            let digest = tree_digest(&out).map_err(|e| e.to_string())?;
            let result = JobResult::Done {
                key: spec.key.clone(),
                job: me,
                digest: digest.clone(),
                computed,
            };
            (result, ExecOutcome::Done(digest))
        }
        Err(failure) => {
            let result = JobResult::Failed {
                key: spec.key.clone(),
                job: me,
                failure: failure.clone(),
            };
            (result, ExecOutcome::StageFailed(failure))
        }
    };
    let json = serde_json::to_vec_pretty(&result).expect("results serialize");
    write_replacing(&dir.file("result.json"), &json).map_err(|e| io("write the result in", e))?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path) -> JobSpec {
        JobSpec {
            key: "k".repeat(64),
            pipeline: "p".into(),
            stage: "data".into(),
            kind: "dataset".into(),
            version: find_kind("dataset").unwrap().version(),
            params: crate::stages::find_kind("dataset")
                .unwrap()
                .resolve(
                    &serde_yaml::from_str("{ name: synthetic, train_size: 100, test_size: 50 }")
                        .unwrap(),
                )
                .unwrap(),
            seed: 0,
            device: DeviceChoice::Cpu,
            inputs: BTreeMap::new(),
            sources: BTreeMap::new(),
            scratch_dir: dir.join("scratch"),
        }
    }

    #[test]
    fn a_job_computes_once_and_a_duplicate_computes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = JobDir::at(&tmp.path().join("job"));
        let spec = spec(tmp.path());
        dir.prepare(&spec, "#!/bin/sh\n").unwrap();
        let digest = match exec_stage(dir.path()).unwrap() {
            ExecOutcome::Done(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(tree_digest(&dir.out_dir()).unwrap(), digest);
        match dir.result(&spec.key) {
            Some(Ok(JobResult::Done { digest: d, .. })) => assert_eq!(d, digest),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            exec_stage(dir.path()).unwrap(),
            ExecOutcome::AlreadyDone
        ));
        std::fs::write(dir.file("claim"), "other-job").unwrap();
        assert!(matches!(
            exec_stage(dir.path()).unwrap(),
            ExecOutcome::Duplicate { holder } if holder == "other-job"
        ));
        assert!(dir.result(&"x".repeat(64)).unwrap().is_err());
        dir.prepare(&spec, "#!/bin/sh\n").unwrap();
        assert!(dir.result(&spec.key).is_none() && !dir.out_dir().exists());
    }

    #[test]
    fn the_script_asks_for_the_resources_and_sets_the_thread_count() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = JobDir::at(&tmp.path().join("it's"));
        let resources = Resources {
            cpus: 3,
            ..Resources::default()
        };
        let s = script(
            &spec(tmp.path()),
            &dir,
            &resources,
            Path::new("/bin/repro"),
            Path::new("/work"),
        );
        assert!(s.contains("#SBATCH --cpus-per-task=3\n"), "{s}");
        assert!(s.contains(&format!("#SBATCH --job-name=repro-{}\n", "k".repeat(16))));
        assert!(s.contains("export RAYON_NUM_THREADS=3\n"));
        assert!(s.contains(r"exec '/bin/repro' exec-stage '"), "{s}");
        assert!(s.contains(r"it'\''s'"), "{s}");
    }
}
