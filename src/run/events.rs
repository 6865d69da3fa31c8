//! The interface between the runner and the reporter: what happened, as data.
//!
//! Why a stage runs ([`MissReason`]s), why it failed ([`Failure`]), why it was
//! skipped ([`SkipCause`]) and why a Slurm job ended without a result ([`JobEnd`])
//! travel as values; only the reporter renders them to text.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::key::MissReason;

/// Why a stage failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Failure {
    /// The stage's own code returned an error.
    Stage {
        /// The stage error, rendered.
        message: String,
    },
    /// The stage's code panicked: a bug in repro.
    Panic {
        /// The panic's message.
        message: String,
    },
    /// Preparing its work folder or publishing its result in the store failed.
    Store {
        /// The store error, rendered.
        message: String,
    },
    /// `sbatch` refused its job.
    Submit {
        /// sbatch's words.
        message: String,
    },
    /// Its last Slurm job ended without a valid result, and no retry was left.
    Job {
        /// The job id.
        job: String,
        /// How it ended.
        end: JobEnd,
        /// Jobs submitted for it in all.
        attempts: u32,
        /// The job's log.
        log: PathBuf,
    },
    /// The run was interrupted (Ctrl-C) and its Slurm job, if any, cancelled.
    Interrupted {
        /// The cancelled job.
        job: Option<String>,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Stage { message } | Failure::Store { message } => write!(f, "{message}"),
            Failure::Panic { message } => write!(f, "internal error (a bug in repro): {message}"),
            Failure::Submit { message } => write!(
                f,
                "sbatch refused the job: {message}; check the partition, account and resources in the cluster file (`repro plan --executor slurm` shows what each job asks for)"
            ),
            Failure::Job {
                job,
                end,
                attempts,
                log,
            } => {
                let tries = if *attempts == 1 {
                    String::new()
                } else {
                    format!(" (the last of {attempts} attempts)")
                };
                write!(f, "Slurm job {job} {end}{tries}")?;
                match end {
                    JobEnd::TimedOut { .. } => {
                        write!(f, "; raise `time` for this stage in the cluster file")?
                    }
                    JobEnd::OutOfMemory { .. } => {
                        write!(f, "; raise `mem` for this stage in the cluster file")?
                    }
                    _ => {}
                }
                write!(f, "; its log: {}", log.display())
            }
            Failure::Interrupted { job: Some(job) } => {
                write!(f, "interrupted: its Slurm job {job} was cancelled")
            }
            Failure::Interrupted { job: None } => write!(f, "interrupted before it was submitted"),
        }
    }
}

/// How a Slurm job ended without leaving a valid result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEnd {
    /// Cancelled from outside this run (`scancel`, an administrator).
    Cancelled,
    /// Ran past its time limit.
    TimedOut {
        /// The limit, as Slurm writes it.
        limit: String,
    },
    /// Used more memory than it asked for.
    OutOfMemory {
        /// What it asked for, e.g. `4G`.
        asked: String,
    },
    /// Its node failed.
    NodeFailed {
        /// The node.
        node: String,
    },
    /// Preempted and not requeued.
    Preempted,
    /// Slurm says it completed, but no valid result appeared within the grace time.
    CompletedWithoutResult,
    /// It ended in another state (FAILED, BOOT_FAIL, ...) without a result.
    Ended {
        /// Slurm's state word.
        state: String,
    },
    /// Slurm stopped listing it and no result appeared within the grace time.
    Vanished {
        /// The grace time, in seconds.
        grace_seconds: u64,
    },
    /// It left a result that does not check out (outputs missing or changed).
    InvalidResult {
        /// What is wrong.
        why: String,
    },
}

impl std::fmt::Display for JobEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobEnd::Cancelled => write!(f, "was cancelled (scancel or an administrator)"),
            JobEnd::TimedOut { limit } => write!(f, "ran past its time limit of {limit}"),
            JobEnd::OutOfMemory { asked } => {
                write!(f, "ran out of memory (it asked for {asked})")
            }
            JobEnd::NodeFailed { node } => write!(f, "was lost with its node {node}"),
            JobEnd::Preempted => write!(f, "was preempted"),
            JobEnd::CompletedWithoutResult => {
                write!(f, "is COMPLETED for Slurm but left no valid result")
            }
            JobEnd::Ended { state } => write!(f, "ended as {state} without a result"),
            JobEnd::Vanished { grace_seconds } => write!(
                f,
                "left Slurm's queue without a result (waited {grace_seconds} s for one)"
            ),
            JobEnd::InvalidResult { why } => write!(f, "left an invalid result: {why}"),
        }
    }
}

/// Why a stage did not run.
#[derive(Debug, Clone, PartialEq)]
pub enum SkipCause {
    /// A stage it needs failed or was skipped.
    Upstream {
        /// That stage.
        stage: String,
    },
    /// The run stopped after a failure before this stage could start.
    Stopped,
}

impl std::fmt::Display for SkipCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipCause::Upstream { stage } => write!(f, "needs `{stage}`, which did not finish"),
            SkipCause::Stopped => write!(
                f,
                "the run stopped after a failure (use --keep-going to run independent stages)"
            ),
        }
    }
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its cached result was valid.
    Cached,
    /// It ran and published a result.
    Ran,
    /// It failed.
    Failed(Failure),
    /// It did not run because a stage it needs failed (or the run stopped).
    Skipped(SkipCause),
}

impl Outcome {
    /// The `status` word of `run --json`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Cached => "cached",
            Outcome::Ran => "ran",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }
}

/// One thing the runner reports.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A stage started running, and why.
    Started {
        /// Stage name.
        stage: String,
        /// Why it runs (never empty).
        reasons: Vec<MissReason>,
    },
    /// A running stage's progress.
    Progress {
        /// Stage name.
        stage: String,
        /// Units done.
        position: u64,
        /// Units in all.
        length: u64,
        /// E.g. `epoch 2/10`.
        message: String,
    },
    /// A stage's Slurm job was submitted.
    Submitted {
        /// Stage name.
        stage: String,
        /// The job id.
        job: String,
        /// 1 for the first job of the stage, 2 for its first retry, ...
        attempt: u32,
        /// What the job asks for, for people (`2 CPUs, 4G, 4:00:00`).
        resources: String,
    },
    /// A stage's Slurm job, submitted by an earlier run, is followed again.
    Reattached {
        /// Stage name.
        stage: String,
        /// The job id.
        job: String,
    },
    /// A stage's Slurm job changed state (or the reason it waits).
    Queued {
        /// Stage name.
        stage: String,
        /// The job id.
        job: String,
        /// Slurm's state, e.g. `pending` or `running`.
        state: String,
        /// Why it waits (`Resources`, `Priority`), or the node it runs on.
        detail: String,
    },
    /// A stage's Slurm job ended without a result and another is submitted.
    Retrying {
        /// Stage name.
        stage: String,
        /// The job that ended.
        job: String,
        /// How.
        end: JobEnd,
        /// The attempt about to start.
        attempt: u32,
        /// Attempts allowed in all.
        attempts: u32,
    },
    /// A stage's result was copied from the remote store instead of computed.
    Fetched {
        /// Stage name.
        stage: String,
        /// The remote store.
        remote: PathBuf,
    },
    /// The remote store has a result for a stage that this run may not use, or that
    /// could not be copied; the stage runs here.
    RemoteUnused {
        /// Stage name.
        stage: String,
        /// Why.
        why: String,
    },
    /// Polling Slurm's queue failed; the run goes on and polls again.
    PollFailed {
        /// What went wrong.
        message: String,
        /// Seconds until the next poll.
        retry_seconds: f64,
    },
    /// A stage ended.
    Finished {
        /// Stage name.
        stage: String,
        /// How.
        outcome: Outcome,
        /// Its key.
        key: String,
        /// Seconds spent (0 for cached).
        seconds: f64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_skips_render_for_people() {
        let panic = Failure::Panic {
            message: "index out of bounds".into(),
        };
        assert_eq!(
            panic.to_string(),
            "internal error (a bug in repro): index out of bounds"
        );
        let stage = Failure::Stage {
            message: "loss is NaN".into(),
        };
        assert_eq!(stage.to_string(), "loss is NaN");
        let skip = SkipCause::Upstream {
            stage: "data".into(),
        };
        assert_eq!(skip.to_string(), "needs `data`, which did not finish");
    }
}
