//! [`SlurmExecutor`]: one Slurm job per stage, followed by one shared poller.
//!
//! Each stage runs on its own scheduler thread: it writes its job folder, submits, and
//! then follows the job through the [`Board`], which the poller thread
//! ([`SlurmExecutor::watch`]) refreshes with one `squeue` per round, backing off while
//! nothing changes and tolerating a failed poll. A stage ends when a valid result file
//! appears (verified by rehashing the outputs, then published exactly as a local run
//! publishes); a job that Slurm says ended, or stops listing, without one is given
//! [`super::cluster::Policy::grace`] for its files to show up, then counts as failed and
//! is retried (memory doubled after running out of it, a failed node excluded). Ctrl-C
//! (the `interrupt` flag) cancels this run's jobs by id. A job folder found with a live
//! job of an earlier run is followed again instead of submitting a second job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::pipeline::Stage;
use crate::run::events::{Failure, JobEnd, RunEvent};
use crate::run::execute::{publish_computed, stage_inputs, store_failure, Computed, ExecEnv};
use crate::run::plan::Assessment;
use crate::run::schedule::Executor;
use crate::store::object::{publish_as, tree_digest};
use crate::store::record::StageRecord;

use super::cluster::{format_time, Cluster, Resources};
use super::job::{job_name, script, JobDir, JobProgress, JobResult, JobSpec};
use super::queue::{self, JobState, QueueEntry};

/// What the poller knows of one job.
#[derive(Debug, Clone, Default)]
struct Watch {
    /// Its entry in the last poll that listed it.
    entry: Option<QueueEntry>,
    /// Since when polls no longer list it.
    missing_since: Option<Instant>,
}

/// The jobs being followed, as the last poll saw them.
#[derive(Debug, Default)]
struct Board {
    jobs: BTreeMap<String, Watch>,
    /// Poll rounds done (failed ones included).
    round: u64,
    /// The run is over: the poller ends.
    stopped: bool,
    /// After Ctrl-C: the jobs the poller cancelled.
    cancelled: Option<BTreeSet<String>>,
}

/// How following a job ended.
enum Followed {
    /// A result that checks out (or the stage's own failure).
    Result(JobResult),
    /// No valid result: the job failed, was cancelled from outside, or was lost.
    Lost(JobEnd),
    /// The run was interrupted and the job cancelled.
    Interrupted,
}

/// Runs stages as Slurm jobs; see the module doc.
pub struct SlurmExecutor {
    cluster: Cluster,
    /// The `repro` binary the jobs run (it must be visible at this path on the nodes).
    exe: PathBuf,
    /// The folder jobs start in (where relative paths of the pipeline resolve).
    cwd: PathBuf,
    interrupt: &'static AtomicBool,
    board: Mutex<Board>,
    changed: Condvar,
}

/// How often a following stage looks at its job's folder for a result and progress,
/// at most (more often when the cluster file polls more often).
const LOOK: Duration = Duration::from_secs(1);

impl SlurmExecutor {
    /// An executor for `cluster`; setting `interrupt` cancels the run's jobs.
    pub fn new(cluster: Cluster, interrupt: &'static AtomicBool) -> std::io::Result<Self> {
        Ok(SlurmExecutor {
            cluster,
            exe: std::env::current_exe()?,
            cwd: std::env::current_dir()?,
            interrupt,
            board: Mutex::new(Board::default()),
            changed: Condvar::new(),
        })
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().expect("not poisoned")
    }

    fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// The last job of an earlier run for this key, when it is still queued or
    /// running, or left a result: following it again saves a second job.
    fn reattach(&self, dir: &JobDir, key: &str) -> Option<String> {
        let spec = dir.spec().filter(|s| s.key == key)?;
        let last = dir.submissions().pop()?;
        if let Some(Ok(JobResult::Done { .. })) = dir.result(&spec.key) {
            return Some(last);
        }
        let listing = queue::list(None).ok()?;
        listing
            .get(&last)
            .filter(|e| e.state.is_alive())
            .map(|_| last)
    }

    /// Writes the job folder and submits its script; returns the job id.
    fn submit(
        &self,
        env: &ExecEnv,
        stage: &Stage,
        assessment: &Assessment,
        upstream: &BTreeMap<String, StageRecord>,
        dir: &JobDir,
        resources: &Resources,
    ) -> Result<String, Failure> {
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or(p.to_path_buf());
        let mut inputs = stage_inputs(env, upstream);
        for input in inputs.values_mut() {
            input.dir = absolute(&input.dir);
        }
        let spec = JobSpec {
            key: assessment.key.clone(),
            pipeline: env.pipeline.name.clone(),
            stage: stage.name.clone(),
            kind: stage.kind.name().to_string(),
            version: stage.kind.version(),
            params: stage.params.clone(),
            seed: stage.seed,
            device: env.device,
            inputs,
            sources: assessment
                .sources
                .iter()
                .map(|(n, p)| (n.clone(), absolute(p)))
                .collect(),
            scratch_dir: absolute(&env.store.scratch_dir(&assessment.key)),
        };
        let text = script(&spec, dir, resources, &self.exe, &self.cwd);
        dir.prepare(&spec, &text).map_err(|e| Failure::Store {
            message: format!("cannot write the job folder {}: {e}", dir.path().display()),
        })?;
        let id = match queue::submit(&dir.script(), self.cluster.policy.submit_timeout) {
            Ok(id) => id,
            // sbatch may have submitted before it failed or stopped answering (a busy
            // controller times out): look for the job by its name first.
            Err(e) => {
                let known = dir.submissions();
                queue::list(Some(&job_name(&assessment.key)))
                    .ok()
                    .and_then(|l| {
                        l.into_iter()
                            .find(|(id, q)| q.state.is_alive() && !known.contains(id))
                            .map(|(id, _)| id)
                    })
                    .ok_or(Failure::Submit {
                        message: e.to_string(),
                    })?
            }
        };
        dir.record_submission(&id).map_err(|e| Failure::Store {
            message: format!("cannot record job {id} in {}: {e}", dir.path().display()),
        })?;
        Ok(id)
    }

    /// Waits for the next poll round (or `timeout`); returns what the board says of
    /// `id`, and whether the run was interrupted (cancelling `id` if the poller
    /// did not).
    fn next_round(&self, id: &str, timeout: Duration) -> (Watch, bool) {
        let deadline = Instant::now() + timeout;
        let mut b = self.board();
        let round = b.round;
        while b.round == round && b.cancelled.is_none() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            b = self
                .changed
                .wait_timeout(b, deadline - now)
                .expect("not poisoned")
                .0;
        }
        let watch = b.jobs.get(id).cloned().unwrap_or_default();
        match &b.cancelled {
            Some(done) if !done.contains(id) => {
                drop(b);
                let _ = queue::cancel(&[id.to_string()]);
                (watch, true)
            }
            Some(_) => (watch, true),
            None => (watch, false),
        }
    }

    /// Follows job `id` until it leaves a valid result, ends without one, or the run is
    /// interrupted, sending its state changes and progress to `tx`.
    fn follow(
        &self,
        dir: &JobDir,
        key: &str,
        id: &str,
        stage: &str,
        resources: &Resources,
        tx: &Sender<RunEvent>,
    ) -> Followed {
        self.board().jobs.entry(id.to_string()).or_default();
        let grace = self.cluster.policy.grace;
        let mut ended: Option<Instant> = None;
        let mut shown: Option<(String, String)> = None;
        let mut progress: Option<JobProgress> = None;
        let mut invalid: Option<String> = None;
        let outcome = loop {
            let checked = match dir.result(key) {
                Some(Ok(r)) => match &r {
                    JobResult::Done { digest, .. } => verify(dir, digest).map(|()| Some(r)),
                    JobResult::Failed { .. } => Ok(Some(r)),
                },
                Some(Err(why)) => Err(why),
                None => Ok(None),
            };
            match checked {
                Ok(Some(r)) => break Followed::Result(r),
                Ok(None) => {}
                Err(why) => invalid = Some(why),
            }
            let (watch, cancelled) = self.next_round(id, LOOK.min(self.cluster.policy.poll_min));
            if cancelled {
                break Followed::Interrupted;
            }
            if let Some(e) = &watch.entry {
                let now = describe(e);
                if shown.as_ref() != Some(&now) {
                    let _ = tx.send(RunEvent::Queued {
                        stage: stage.to_string(),
                        job: id.to_string(),
                        state: now.0.clone(),
                        detail: now.1.clone(),
                    });
                    shown = Some(now);
                }
            }
            if let Some(p) = dir.progress().filter(|p| progress.as_ref() != Some(p)) {
                let _ = tx.send(RunEvent::Progress {
                    stage: stage.to_string(),
                    position: p.position,
                    length: p.length,
                    message: p.message.clone(),
                });
                progress = Some(p);
            }
            let gone = watch.missing_since.is_some()
                || watch.entry.as_ref().is_some_and(|e| !e.state.is_alive());
            if !gone {
                ended = None;
                continue;
            }
            if ended.get_or_insert_with(Instant::now).elapsed() >= grace {
                break Followed::Lost(end_of(&watch, invalid, resources, grace));
            }
        };
        self.board().jobs.remove(id);
        outcome
    }

    /// Publishes a job's verified outputs and records them as a local run does, then
    /// removes the job's folder.
    fn publish(
        &self,
        env: &ExecEnv,
        stage: &Stage,
        assessment: &Assessment,
        dir: &JobDir,
        digest: String,
        computed: Computed,
    ) -> Result<StageRecord, Failure> {
        publish_as(env.store, &dir.out_dir(), &digest).map_err(store_failure)?;
        let record = publish_computed(env, stage, assessment, digest, computed)?;
        dir.remove();
        Ok(record)
    }
}

/// Checks that a job's outputs hash to the digest its result file gives.
fn verify(dir: &JobDir, digest: &str) -> Result<(), String> {
    match tree_digest(&dir.out_dir()) {
        Ok(d) if d == digest => Ok(()),
        Ok(d) => Err(format!(
            "its outputs hash to {d}, its result file says {digest}"
        )),
        Err(e) => Err(format!("its outputs cannot be read: {e}")),
    }
}

/// A job's state for people: (`pending`, `Resources`), (`running`, `node1`).
fn describe(e: &QueueEntry) -> (String, String) {
    let reason = if e.reason == "None" {
        String::new()
    } else {
        e.reason.clone()
    };
    match e.state {
        JobState::Pending => ("pending".into(), reason),
        JobState::Running => ("running".into(), e.node.clone()),
        _ => ("ended".into(), reason),
    }
}

/// Why a job that ended (or vanished) left no valid result.
fn end_of(
    watch: &Watch,
    invalid: Option<String>,
    resources: &Resources,
    grace: Duration,
) -> JobEnd {
    if let Some(why) = invalid {
        return JobEnd::InvalidResult { why };
    }
    let Some(entry) = watch.entry.as_ref().filter(|e| !e.state.is_alive()) else {
        return JobEnd::Vanished {
            grace_seconds: grace.as_secs(),
        };
    };
    match &entry.state {
        JobState::Completed => JobEnd::CompletedWithoutResult,
        JobState::Cancelled => JobEnd::Cancelled,
        JobState::Timeout => JobEnd::TimedOut {
            limit: format_time(resources.time_seconds),
        },
        JobState::OutOfMemory => JobEnd::OutOfMemory {
            asked: format!("{}M", resources.mem_mb),
        },
        JobState::NodeFail => JobEnd::NodeFailed {
            node: entry.node.clone(),
        },
        JobState::Preempted => JobEnd::Preempted,
        JobState::Ended(state) => JobEnd::Ended {
            state: state.clone(),
        },
        JobState::Pending | JobState::Running => unreachable!("filtered above"),
    }
}

/// What the next attempt asks for after `end`: twice the memory after running out of
/// it, the failed node excluded after a node failure, the same otherwise.
fn after(end: &JobEnd, mut resources: Resources) -> Resources {
    match end {
        JobEnd::OutOfMemory { .. } => resources.mem_mb *= 2,
        JobEnd::NodeFailed { node } if !node.is_empty() => resources.exclude.push(node.clone()),
        _ => {}
    }
    resources
}

impl Executor for SlurmExecutor {
    fn execute(
        &self,
        env: &ExecEnv,
        stage: &Stage,
        assessment: &Assessment,
        upstream: &BTreeMap<String, StageRecord>,
        tx: Sender<RunEvent>,
    ) -> Result<StageRecord, Failure> {
        if self.interrupted() {
            return Err(Failure::Interrupted { job: None });
        }
        let dir = JobDir::of(env.store, &assessment.key);
        let attempts = self.cluster.policy.retries + 1;
        let mut resources = self.cluster.resources(stage);
        let mut attempt = 1;
        let mut job = self.reattach(&dir, &assessment.key);
        if let Some(id) = &job {
            let _ = tx.send(RunEvent::Reattached {
                stage: stage.name.clone(),
                job: id.clone(),
            });
        }
        loop {
            let id = match job.take() {
                Some(id) => id,
                None => {
                    let id = self.submit(env, stage, assessment, upstream, &dir, &resources)?;
                    let _ = tx.send(RunEvent::Submitted {
                        stage: stage.name.clone(),
                        job: id.clone(),
                        attempt,
                        resources: resources.describe(),
                    });
                    id
                }
            };
            match self.follow(&dir, &assessment.key, &id, &stage.name, &resources, &tx) {
                Followed::Result(JobResult::Done {
                    digest, computed, ..
                }) => return self.publish(env, stage, assessment, &dir, digest, computed),
                Followed::Result(JobResult::Failed { failure, .. }) => return Err(failure),
                Followed::Interrupted => return Err(Failure::Interrupted { job: Some(id) }),
                Followed::Lost(end) if attempt >= attempts => {
                    return Err(Failure::Job {
                        log: dir.log(&id),
                        job: id,
                        end,
                        attempts: attempt,
                    })
                }
                Followed::Lost(end) => {
                    resources = after(&end, resources);
                    attempt += 1;
                    let _ = tx.send(RunEvent::Retrying {
                        stage: stage.name.clone(),
                        job: id,
                        end,
                        attempt,
                        attempts,
                    });
                }
            }
        }
    }

    fn watch(&self, report: &mut dyn FnMut(RunEvent)) {
        let policy = &self.cluster.policy;
        let mut interval = policy.poll_min;
        loop {
            let deadline = Instant::now() + interval;
            let mut b = self.board();
            loop {
                if b.stopped {
                    return;
                }
                let now = Instant::now();
                if (self.interrupted() && b.cancelled.is_none())
                    || (now >= deadline && !b.jobs.is_empty())
                {
                    break;
                }
                let slice = deadline
                    .saturating_duration_since(now)
                    .clamp(Duration::from_millis(10), Duration::from_millis(100));
                b = self.changed.wait_timeout(b, slice).expect("not poisoned").0;
            }
            if self.interrupted() && b.cancelled.is_none() {
                let ids: Vec<String> = b.jobs.keys().cloned().collect();
                drop(b);
                if let Err(e) = queue::cancel(&ids) {
                    report(RunEvent::PollFailed {
                        message: e.to_string(),
                        retry_seconds: 0.0,
                    });
                }
                self.board().cancelled = Some(ids.into_iter().collect());
                self.changed.notify_all();
                continue;
            }
            drop(b);
            let listing = queue::list(None);
            let mut b = self.board();
            match listing {
                Ok(listing) => {
                    let now = Instant::now();
                    let mut changed = false;
                    for (id, w) in b.jobs.iter_mut() {
                        match listing.get(id) {
                            Some(e) => {
                                changed |= w.entry.as_ref() != Some(e) || w.missing_since.is_some();
                                w.entry = Some(e.clone());
                                w.missing_since = None;
                            }
                            None if w.missing_since.is_none() => {
                                changed = true;
                                w.missing_since = Some(now);
                            }
                            None => {}
                        }
                    }
                    interval = if changed {
                        policy.poll_min
                    } else {
                        interval.mul_f64(1.5).min(policy.poll_max)
                    };
                }
                Err(e) => {
                    interval = (interval * 2).min(policy.poll_max);
                    report(RunEvent::PollFailed {
                        message: e.to_string(),
                        retry_seconds: interval.as_secs_f64(),
                    });
                }
            }
            b.round += 1;
            drop(b);
            self.changed.notify_all();
        }
    }

    fn stop_watching(&self) {
        self.board().stopped = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(state: &str, node: &str) -> Watch {
        Watch {
            entry: Some(QueueEntry {
                state: JobState::parse(state),
                reason: "None".into(),
                node: node.into(),
            }),
            missing_since: None,
        }
    }

    #[test]
    fn jobs_that_end_without_a_result_are_told_apart() {
        let r = Resources {
            time_seconds: 10,
            ..Resources::default()
        };
        let g = Duration::from_secs(5);
        assert_eq!(
            end_of(&watch("TIMEOUT", "n1"), None, &r, g),
            JobEnd::TimedOut {
                limit: "0:00:10".into()
            }
        );
        assert_eq!(
            end_of(&watch("COMPLETED", "n1"), None, &r, g),
            JobEnd::CompletedWithoutResult
        );
        assert_eq!(
            end_of(&watch("NODE_FAIL", "n1"), None, &r, g),
            JobEnd::NodeFailed { node: "n1".into() }
        );
        let lost = Watch {
            missing_since: Some(Instant::now()),
            ..watch("RUNNING", "n1")
        };
        assert_eq!(
            end_of(&lost, None, &r, g),
            JobEnd::Vanished { grace_seconds: 5 }
        );
        assert!(matches!(
            end_of(&watch("COMPLETED", ""), Some("bad".into()), &r, g),
            JobEnd::InvalidResult { .. }
        ));
    }

    #[test]
    fn a_retry_after_running_out_of_memory_asks_for_twice_as_much() {
        let r = Resources::default();
        let more = after(
            &JobEnd::OutOfMemory {
                asked: "4096M".into(),
            },
            r.clone(),
        );
        assert_eq!(more.mem_mb, 2 * r.mem_mb);
        let elsewhere = after(&JobEnd::NodeFailed { node: "n7".into() }, r.clone());
        assert_eq!(elsewhere.exclude, ["n7"]);
        assert!(elsewhere
            .sbatch_flags()
            .contains(&"--exclude=n7".to_string()));
        assert_eq!(after(&JobEnd::Cancelled, r.clone()), r);
    }
}
