//! The local executor: runs one stage in a temp folder and publishes its result.
//!
//! The stage writes into `tmp/run-<key>-<pid>/`; only when it returns Ok is the folder
//! published as an object (by rename) and the record written (by rename). A process
//! killed at any point leaves at most a temp folder, which the next run removes.
//! The two halves, [`compute`] (run the stage's code into a folder) and
//! [`publish_computed`] (record a published output), are also what a Slurm job and its
//! coordinator call (see [`super::slurm`]): there is one way to compute a stage.
//! Executors never print: progress goes out as [`RunEvent`]s.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::device::DeviceChoice;
use crate::pipeline::{Pipeline, Stage};
use crate::provenance::Host;
use crate::stages::dataset::DatasetStage;
use crate::stages::{Input, Metrics, Progress, StageContext, StageKind, TypedStage};
use crate::store::object::{object_file, publish, remove_tree};
use crate::store::record::{write_record, write_ref, Manifest, StageRecord};
use crate::store::{io_err, Store};

use super::events::{Failure, RunEvent};
use super::plan::Assessment;

struct ChannelProgress<'a> {
    stage: &'a str,
    tx: std::sync::Mutex<Sender<RunEvent>>,
}

impl Progress for ChannelProgress<'_> {
    fn update(&self, position: u64, length: u64, message: &str) {
        let _ = self
            .tx
            .lock()
            .expect("not poisoned")
            .send(RunEvent::Progress {
                stage: self.stage.to_string(),
                position,
                length,
                message: message.to_string(),
            });
    }
}

/// The datasets stage `name` depends on, itself included, described by their
/// `name` param and any limits, so a report can say which data each figure used.
fn datasets_behind(pipeline: &Pipeline, name: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![name.to_string()];
    let mut out = Vec::new();
    while let Some(current) = todo.pop() {
        if !seen.insert(current.clone()) {
            continue;
        }
        let Some(stage) = pipeline.stage(&current) else {
            continue;
        };
        if stage.kind.name() == DatasetStage::NAME {
            out.push(describe_dataset(&stage.params));
        }
        todo.extend(stage.needs.iter().cloned());
    }
    out.sort();
    out.dedup();
    out
}

/// `fashion-mnist`, with `(train N, test M)` when the params limit the splits.
fn describe_dataset(params: &serde_json::Value) -> String {
    let name = params["name"].as_str().unwrap_or("dataset").to_string();
    let limits: Vec<String> = [("train", "train_limit"), ("test", "test_limit")]
        .iter()
        .filter_map(|(label, key)| params[*key].as_u64().map(|n| format!("{label} {n}")))
        .collect();
    if limits.is_empty() {
        name
    } else {
        format!("{name} ({})", limits.join(", "))
    }
}

/// Everything the executor needs besides the stage itself.
pub struct ExecEnv<'a> {
    /// The store.
    pub store: &'a Store,
    /// The pipeline the stage belongs to.
    pub pipeline: &'a Pipeline,
    /// Device for the stage.
    pub device: DeviceChoice,
    /// Host facts for manifests.
    pub host: &'a Host,
    /// A store whose results are fetched instead of computing them again.
    pub remote: Option<&'a super::remote::Remote>,
}

/// What computing a stage yields besides its output folder: its metrics and the facts
/// of the process and machine that computed it, for the manifest. A Slurm job writes
/// it into its result file; a local run hands it straight to [`publish_computed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Computed {
    /// What the stage measured.
    pub metrics: Metrics,
    /// Wall-clock seconds of the computation.
    pub wall_seconds: f64,
    /// Peak resident memory of the computing process, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// On the CPU, what computed the matrix products.
    pub cpu_products: Option<String>,
    /// Worker threads of the global pool the stage computed on.
    pub threads: usize,
    /// The machine that computed it.
    pub host: String,
    /// When it finished (seconds since the Unix epoch).
    pub finished_at: u64,
}

/// The inputs of a stage: the published results of the stages it needs, by name.
pub fn stage_inputs(
    env: &ExecEnv,
    upstream: &BTreeMap<String, StageRecord>,
) -> BTreeMap<String, Input> {
    upstream
        .iter()
        .map(|(name, r)| {
            (
                name.clone(),
                Input {
                    stage: name.clone(),
                    kind: r.fields.kind.clone(),
                    dir: object_file(env.store, &r.output, ""),
                    digest: r.output.clone(),
                    key: r.key.clone(),
                    wall_seconds: r.manifest.wall_seconds,
                    params: r.fields.params.clone(),
                    seed: r.fields.seed,
                    metrics: r.manifest.metrics.clone(),
                    datasets: datasets_behind(env.pipeline, name),
                },
            )
        })
        .collect()
}

/// Runs a stage's code into `ctx.out_dir` on this process's global pool; a stage
/// error or a panic is a [`Failure`], and the output folder is then removed.
pub fn compute(
    kind: &dyn StageKind,
    params: &serde_json::Value,
    ctx: &StageContext,
    host: &str,
) -> Result<Computed, Failure> {
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::nn::on_pool(|| kind.run(params, ctx))
    }));
    let failure = match result {
        Ok(Ok(metrics)) => {
            return Ok(Computed {
                metrics,
                wall_seconds: started.elapsed().as_secs_f64(),
                peak_rss_bytes: crate::provenance::peak_rss_bytes(),
                cpu_products: (ctx.device == DeviceChoice::Cpu)
                    .then(|| crate::nn::cpu_products().to_string()),
                threads: rayon::current_num_threads(),
                host: host.to_string(),
                finished_at: crate::provenance::unix_now(),
            })
        }
        Ok(Err(e)) => Failure::Stage {
            message: e.to_string(),
        },
        Err(panic) => Failure::Panic {
            message: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into()),
        },
    };
    let _ = remove_tree(&ctx.out_dir);
    Err(failure)
}

/// A store error as the failure of the stage it happened to.
pub fn store_failure(e: crate::store::Error) -> Failure {
    Failure::Store {
        message: e.to_string(),
    }
}

/// Runs a stage whose assessment says it must run, on this machine, and publishes its
/// result. `upstream` holds the records of the stages it needs.
pub fn execute(
    env: &ExecEnv,
    stage: &Stage,
    assessment: &Assessment,
    upstream: &BTreeMap<String, StageRecord>,
    tx: Sender<RunEvent>,
) -> Result<StageRecord, Failure> {
    let store = env.store;
    let work = store.tmp_dir().join(format!(
        "run-{}-{}",
        &assessment.key[..16],
        std::process::id()
    ));
    if work.exists() {
        remove_tree(&work).map_err(store_failure)?;
    }
    std::fs::create_dir_all(&work)
        .map_err(io_err("create", &work))
        .map_err(store_failure)?;
    let progress = ChannelProgress {
        stage: &stage.name,
        tx: std::sync::Mutex::new(tx),
    };
    let ctx = StageContext {
        pipeline: env.pipeline.name.clone(),
        stage: stage.name.clone(),
        out_dir: work.clone(),
        scratch_dir: store.scratch_dir(&assessment.key),
        inputs: stage_inputs(env, upstream),
        sources: assessment.sources.clone(),
        seed: stage.seed,
        device: env.device,
        progress: &progress,
    };
    let computed = compute(stage.kind, &stage.params, &ctx, &env.host.name)?;
    let output = publish(store, &work).map_err(store_failure)?;
    publish_computed(env, stage, assessment, output, computed)
}

/// Records a computed stage whose output is published as object `output`: writes its
/// record and ref, and removes its scratch folder. Local and Slurm runs both end here.
pub fn publish_computed(
    env: &ExecEnv,
    stage: &Stage,
    assessment: &Assessment,
    output: String,
    computed: Computed,
) -> Result<StageRecord, Failure> {
    let store = env.store;
    let record = StageRecord::new(
        assessment.fields.clone(),
        output,
        Manifest {
            pipeline: env.pipeline.name.clone(),
            stage: stage.name.clone(),
            kind: stage.kind.name().to_string(),
            params: stage.params.clone(),
            inputs: assessment.fields.inputs.clone(),
            seed: stage.seed,
            metrics: computed.metrics,
            wall_seconds: computed.wall_seconds,
            peak_rss_bytes: computed.peak_rss_bytes,
            device: env.device.name().to_string(),
            cpu_products: computed.cpu_products,
            threads: computed.threads,
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: env.host.git_commit.clone(),
            host: computed.host,
            finished_at: computed.finished_at,
        },
    );
    write_record(store, &record).map_err(store_failure)?;
    write_ref(store, &env.pipeline.name, &stage.name, &record.fields).map_err(store_failure)?;
    let scratch = store.scratch_dir(&assessment.key);
    if scratch.exists() {
        let _ = remove_tree(&scratch);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Selection;

    #[test]
    fn a_stage_is_traced_back_to_every_dataset_behind_it_with_its_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        let text = "name: lineage
stages:
  small:
    kind: dataset
    params: { name: synthetic, train_size: 300, test_size: 100, train_limit: 200 }
  whole:
    kind: dataset
    params: { name: synthetic, train_size: 300, test_size: 100 }
  net:
    kind: train
    needs: [small]
    params: { model: { type: mlp, hidden: [8] }, epochs: 1 }
  report:
    kind: report
    needs: [net, whole]
";
        std::fs::write(&path, text).unwrap();
        let p = Pipeline::load(&path, &Selection::default()).unwrap();
        assert_eq!(datasets_behind(&p, "net"), ["synthetic (train 200)"]);
        assert_eq!(datasets_behind(&p, "small"), ["synthetic (train 200)"]);
        assert_eq!(
            datasets_behind(&p, "report"),
            ["synthetic", "synthetic (train 200)"]
        );
    }
}
