//! The scheduler: starts ready stages in parallel up to `jobs`, in dependency order.
//!
//! A stage is assessed again the moment its inputs are final (so a rerun upstream that
//! produced the same bytes leaves it cached: early cutoff). Running stages execute on
//! their own threads, at most `jobs` at once; the calling thread only schedules and
//! forwards events.
//! A failed stage skips its dependants; without `keep_going` no new stage starts.
//! Where a stage computes is its [`Executor`]'s business: [`Local`] here, or Slurm jobs
//! ([`super::slurm::SlurmExecutor`]).

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Sender};
use std::time::Instant;

use crate::pipeline::{Pipeline, Stage};
use crate::store::filecache::FileDigests;
use crate::store::record::{write_ref, StageRecord};

use super::events::{Failure, Outcome, RunEvent, SkipCause};
use super::execute::{execute, ExecEnv};
use super::plan::{assess, Assessment, InputState, Status};

/// Computes stages that must run and publishes their results.
pub trait Executor: Sync {
    /// Runs one stage whose inputs are final and publishes its result; called on its own
    /// thread, with `tx` for its events. `upstream` holds the records of its needs.
    fn execute(
        &self,
        env: &ExecEnv,
        stage: &Stage,
        assessment: &Assessment,
        upstream: &BTreeMap<String, StageRecord>,
        tx: Sender<RunEvent>,
    ) -> Result<StageRecord, Failure>;

    /// Runs beside the stages for the whole run (e.g. to poll a queue), on its own
    /// thread, until [`Executor::stop_watching`]; `report` goes to the reporter.
    fn watch(&self, _report: &mut dyn FnMut(RunEvent)) {}

    /// Ends [`Executor::watch`]: no stage runs any more.
    fn stop_watching(&self) {}
}

/// Computes every stage in this process ([`execute`]).
pub struct Local;

impl Executor for Local {
    fn execute(
        &self,
        env: &ExecEnv,
        stage: &Stage,
        assessment: &Assessment,
        upstream: &BTreeMap<String, StageRecord>,
        tx: Sender<RunEvent>,
    ) -> Result<StageRecord, Failure> {
        execute(env, stage, assessment, upstream, tx)
    }
}

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Stages running at once.
    pub jobs: usize,
    /// Let independent stages finish after a failure.
    pub keep_going: bool,
}

/// The result of a run.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Final outcome per stage, in pipeline order.
    pub outcomes: Vec<(String, Outcome)>,
    /// The records of the stages that ran or were cached, by stage name.
    pub records: BTreeMap<String, StageRecord>,
    /// Slurm jobs submitted (retries included).
    pub submitted: usize,
    /// Slurm jobs that ended without a result and were submitted again.
    pub retried: usize,
}

impl RunSummary {
    /// Whether any stage failed.
    pub fn failed(&self) -> bool {
        self.outcomes
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Failed(_)))
    }
}

enum Msg {
    Event(RunEvent),
    Done(String, Box<Result<StageRecord, Failure>>, f64),
}

/// Runs a pipeline on `executor`, sending every event to `report`. Errors are store or
/// planning errors that stop everything; stage failures are in the summary.
pub fn run(
    env: &ExecEnv,
    files: &FileDigests,
    options: RunOptions,
    executor: &dyn Executor,
    report: &mut dyn FnMut(RunEvent),
) -> Result<RunSummary, super::plan::Error> {
    let pipeline: &Pipeline = env.pipeline;
    let mut records: BTreeMap<String, StageRecord> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut running: BTreeMap<String, String> = BTreeMap::new();
    let mut stop = false;
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut result = Ok(());
    let (mut submitted, mut retried) = (0, 0);
    // Plain threads, not a rayon pool: the stages' own rayon work (matrix products,
    // data preparation) must run on the global pool with every core, and rayon calls
    // made inside a pool stay in that pool.
    std::thread::scope(|scope| {
        let watcher = {
            let tx = tx.clone();
            scope.spawn(move || {
                executor.watch(&mut |e| {
                    let _ = tx.send(Msg::Event(e));
                })
            })
        };
        loop {
            for stage in &pipeline.stages {
                if outcomes.contains_key(&stage.name) || running.contains_key(&stage.name) {
                    continue;
                }
                if let Some(bad) = stage.needs.iter().find(|n| {
                    matches!(
                        outcomes.get(*n),
                        Some(Outcome::Failed(_) | Outcome::Skipped(_))
                    )
                }) {
                    let cause = SkipCause::Upstream { stage: bad.clone() };
                    finish(
                        report,
                        &mut outcomes,
                        &stage.name,
                        Outcome::Skipped(cause),
                        String::new(),
                        0.0,
                    );
                    continue;
                }
                if stop || running.len() >= options.jobs.max(1) {
                    continue;
                }
                if !stage.needs.iter().all(|n| records.contains_key(n)) {
                    continue;
                }
                let inputs = stage
                    .needs
                    .iter()
                    .map(|n| (n.clone(), InputState::Ready(records[n].output.clone())))
                    .collect();
                let a = match assess(env.store, files, pipeline, stage, &inputs) {
                    Ok(a) => from_remote(env, stage, a, report),
                    Err(e) => {
                        result = Err(e);
                        stop = true;
                        continue;
                    }
                };
                if a.status == Status::Cached {
                    let record = a.record.expect("cached assessments carry their record");
                    if let Err(e) =
                        write_ref(env.store, &pipeline.name, &stage.name, &record.fields)
                    {
                        result = Err(e.into());
                        stop = true;
                        continue;
                    }
                    finish(
                        report,
                        &mut outcomes,
                        &stage.name,
                        Outcome::Cached,
                        record.key.clone(),
                        0.0,
                    );
                    records.insert(stage.name.clone(), record);
                    continue;
                }
                report(RunEvent::Started {
                    stage: stage.name.clone(),
                    reasons: a.reasons.clone(),
                });
                running.insert(stage.name.clone(), a.key.clone());
                let upstream: BTreeMap<String, StageRecord> = stage
                    .needs
                    .iter()
                    .map(|n| (n.clone(), records[n].clone()))
                    .collect();
                let tx = tx.clone();
                scope.spawn(move || {
                    let start = Instant::now();
                    let (etx, erx) = mpsc::channel();
                    let forward = {
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            for e in erx {
                                if tx.send(Msg::Event(e)).is_err() {
                                    break;
                                }
                            }
                        })
                    };
                    let r = executor.execute(env, stage, &a, &upstream, etx);
                    let _ = forward.join();
                    let _ = tx.send(Msg::Done(
                        stage.name.clone(),
                        Box::new(r),
                        start.elapsed().as_secs_f64(),
                    ));
                });
            }
            if running.is_empty() {
                break;
            }
            match rx.recv().expect("a running stage always reports back") {
                Msg::Event(e) => {
                    match &e {
                        RunEvent::Submitted { .. } => submitted += 1,
                        RunEvent::Retrying { .. } => retried += 1,
                        _ => {}
                    }
                    report(e)
                }
                Msg::Done(name, r, seconds) => {
                    let key = running.remove(&name).unwrap_or_default();
                    match *r {
                        Ok(record) => {
                            finish(
                                report,
                                &mut outcomes,
                                &name,
                                Outcome::Ran,
                                record.key.clone(),
                                seconds,
                            );
                            records.insert(name, record);
                        }
                        Err(failure) => {
                            finish(
                                report,
                                &mut outcomes,
                                &name,
                                Outcome::Failed(failure),
                                key,
                                seconds,
                            );
                            if !options.keep_going {
                                stop = true;
                            }
                        }
                    }
                }
            }
        }
        executor.stop_watching();
        let _ = watcher.join();
    });
    result?;
    for stage in &pipeline.stages {
        if !outcomes.contains_key(&stage.name) {
            finish(
                report,
                &mut outcomes,
                &stage.name,
                Outcome::Skipped(SkipCause::Stopped),
                String::new(),
                0.0,
            );
        }
    }
    Ok(RunSummary {
        outcomes: pipeline
            .stages
            .iter()
            .map(|s| (s.name.clone(), outcomes[&s.name].clone()))
            .collect(),
        records,
        submitted,
        retried,
    })
}

/// A stage to run whose result the remote store has (and this run may use) becomes
/// cached: the result is copied in first.
fn from_remote(
    env: &ExecEnv,
    stage: &Stage,
    mut a: Assessment,
    report: &mut dyn FnMut(RunEvent),
) -> Assessment {
    let Some(remote) = env.remote.filter(|_| a.status == Status::Run) else {
        return a;
    };
    match remote.fetch(env.store, &a.key, env.device) {
        Ok(None) => {}
        Ok(Some(record)) => {
            report(RunEvent::Fetched {
                stage: stage.name.clone(),
                remote: remote.store.root().to_path_buf(),
            });
            a.status = Status::Cached;
            a.reasons.clear();
            a.record = Some(record);
        }
        Err(why) => report(RunEvent::RemoteUnused {
            stage: stage.name.clone(),
            why,
        }),
    }
    a
}

fn finish(
    report: &mut dyn FnMut(RunEvent),
    outcomes: &mut BTreeMap<String, Outcome>,
    stage: &str,
    outcome: Outcome,
    key: String,
    seconds: f64,
) {
    outcomes.insert(stage.to_string(), outcome.clone());
    report(RunEvent::Finished {
        stage: stage.to_string(),
        outcome,
        key,
        seconds,
    });
}
