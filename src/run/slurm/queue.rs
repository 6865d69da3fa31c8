//! Talking to Slurm through its commands: `sbatch` submits, one `squeue` per poll round
//! lists every job of this user (so jobs that ended or are unknown never make it fail),
//! `scancel` cancels by job id. [`JobState`] is squeue's state word as data.
//!
//! `sacct` is not used: many clusters (and the test set-up) have no accounting, and its
//! time window drops jobs. Each command runs with a time limit; nothing here prints.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A job's state as `squeue` words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for resources, priority, a dependency or a hold.
    Pending,
    /// Running (or starting, completing, suspended: it may still write its result).
    Running,
    /// Ended with exit code 0.
    Completed,
    /// Cancelled by `scancel` or an administrator.
    Cancelled,
    /// Ran past its time limit.
    Timeout,
    /// Killed for using more memory than it asked for.
    OutOfMemory,
    /// Its node failed.
    NodeFail,
    /// Preempted and not requeued.
    Preempted,
    /// Any other end: FAILED, BOOT_FAIL, DEADLINE, ... (the word).
    Ended(String),
}

impl JobState {
    /// Reads squeue's `%T` word.
    pub fn parse(word: &str) -> JobState {
        match word {
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" => {
                JobState::Pending
            }
            "RUNNING" | "CONFIGURING" | "COMPLETING" | "RESIZING" | "SUSPENDED" | "STOPPED"
            | "SIGNALING" | "STAGE_OUT" => JobState::Running,
            "COMPLETED" => JobState::Completed,
            "CANCELLED" => JobState::Cancelled,
            "TIMEOUT" => JobState::Timeout,
            "OUT_OF_MEMORY" => JobState::OutOfMemory,
            "NODE_FAIL" => JobState::NodeFail,
            "PREEMPTED" => JobState::Preempted,
            other => JobState::Ended(other.to_string()),
        }
    }

    /// Whether the job still runs or may run.
    pub fn is_alive(&self) -> bool {
        matches!(self, JobState::Pending | JobState::Running)
    }
}

/// One job as the last poll saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Its state.
    pub state: JobState,
    /// Why it waits (`Resources`, `Priority`, ...), or `None`.
    pub reason: String,
    /// The node it runs or ran on, if any.
    pub node: String,
}

/// The squeue format behind [`parse_squeue`].
const SQUEUE_FORMAT: &str = "%i|%T|%r|%N";

/// Parses `squeue --noheader --format=%i|%T|%r|%N` into entries by job id.
pub fn parse_squeue(text: &str) -> BTreeMap<String, QueueEntry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(4, '|');
            let id = parts.next()?.trim();
            let state = parts.next()?.trim();
            if id.is_empty() || state.is_empty() {
                return None;
            }
            Some((
                id.to_string(),
                QueueEntry {
                    state: JobState::parse(state),
                    reason: parts.next().unwrap_or("").trim().to_string(),
                    node: parts.next().unwrap_or("").trim().to_string(),
                },
            ))
        })
        .collect()
}

/// Reads sbatch's `--parsable` answer: `ID` or `ID;CLUSTER`.
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let first = stdout.lines().find(|l| !l.trim().is_empty())?;
    let id = first.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_')).then(|| id.to_string())
}

/// Why a Slurm command gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// It could not be started (not installed, not on `PATH`).
    #[error("cannot run `{command}`: {message}")]
    Spawn {
        /// The command.
        command: String,
        /// The operating system's words.
        message: String,
    },
    /// It took longer than allowed and was killed.
    #[error("`{command}` did not answer within {seconds} s")]
    Timeout {
        /// The command.
        command: String,
        /// The limit.
        seconds: u64,
    },
    /// It answered with an error.
    #[error("`{command}` failed: {message}")]
    Failed {
        /// The command.
        command: String,
        /// Its stderr (or exit status).
        message: String,
    },
}

/// Runs a command, killing it after `limit`; a non-zero exit is an error carrying
/// its stderr.
fn run(mut cmd: Command, limit: Duration) -> Result<Output, CommandError> {
    let command = format!("{cmd:?}").replace('"', "");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CommandError::Spawn {
            command: command.clone(),
            message: e.to_string(),
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let readers = (
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stdout.read_to_end(&mut b);
            b
        }),
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = stderr.read_to_end(&mut b);
            b
        }),
    );
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Timeout {
                    command,
                    seconds: limit.as_secs(),
                });
            }
        }
    };
    let output = Output {
        status,
        stdout: readers.0.join().unwrap_or_default(),
        stderr: readers.1.join().unwrap_or_default(),
    };
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(CommandError::Failed {
            command,
            message: if err.is_empty() {
                output.status.to_string()
            } else {
                err
            },
        });
    }
    Ok(output)
}

/// Limit of the quick commands (`squeue`, `scancel`).
const QUICK: Duration = Duration::from_secs(30);

/// Whether `sbatch` can be run here; the error says how to get it.
pub fn check_available() -> Result<(), String> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--version");
    run(cmd, QUICK).map(|_| ()).map_err(|e| {
        format!("--executor slurm needs the Slurm commands (sbatch, squeue, scancel) on PATH: {e}. On a Debian machine, scripts/slurm-setup.sh installs and starts a single-node Slurm")
    })
}

/// Submits a job script and returns the job id.
pub fn submit(script: &Path, limit: Duration) -> Result<String, CommandError> {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable").arg(script);
    let out = run(cmd, limit)?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_job_id(&text).ok_or_else(|| CommandError::Failed {
        command: "sbatch --parsable".into(),
        message: format!("answered `{}` instead of a job id", text.trim()),
    })
}

/// Every job of this user that Slurm still lists (running, queued, or ended within
/// its `MinJobAge`), by job id; optionally only those named `name`.
pub fn list(name: Option<&str>) -> Result<BTreeMap<String, QueueEntry>, CommandError> {
    let mut cmd = Command::new("squeue");
    cmd.args(["--me", "--noheader", "--states=all"])
        .arg(format!("--format={SQUEUE_FORMAT}"));
    if let Some(name) = name {
        cmd.arg(format!("--name={name}"));
    }
    let out = run(cmd, QUICK)?;
    Ok(parse_squeue(&String::from_utf8_lossy(&out.stdout)))
}

/// Cancels jobs by id (never by name or user: only this run's jobs).
pub fn cancel(ids: &[String]) -> Result<(), CommandError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("scancel");
    cmd.args(ids);
    run(cmd, QUICK).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_become_entries() {
        let text = "12|RUNNING|None|node1\n13|PENDING|Resources|\n14|OUT_OF_MEMORY|OutOfMemory|node2\n15|FAILED|NonZeroExitCode|node1\n\n";
        let q = parse_squeue(text);
        assert_eq!(q.len(), 4);
        assert_eq!(q["12"].state, JobState::Running);
        assert_eq!(q["12"].node, "node1");
        assert_eq!(q["13"].state, JobState::Pending);
        assert_eq!(q["13"].reason, "Resources");
        assert_eq!(q["14"].state, JobState::OutOfMemory);
        assert_eq!(q["15"].state, JobState::Ended("FAILED".into()));
        assert!(q["13"].state.is_alive() && !q["15"].state.is_alive());
        assert!(JobState::parse("COMPLETING").is_alive());
        assert!(JobState::parse("REQUEUED").is_alive());
    }

    #[test]
    fn sbatch_answers_are_read_with_or_without_a_cluster() {
        assert_eq!(parse_job_id("42\n"), Some("42".into()));
        assert_eq!(parse_job_id("42;cluster1\n"), Some("42".into()));
        assert_eq!(parse_job_id("Submitted batch job 42"), None);
        assert_eq!(parse_job_id(""), None);
    }

    #[test]
    fn a_command_that_hangs_is_killed_after_its_limit() {
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let start = std::time::Instant::now();
        let err = run(cmd, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
        let mut fails = Command::new("sh");
        fails.args(["-c", "echo nope >&2; exit 3"]);
        let err = run(fails, QUICK).unwrap_err();
        assert!(err.to_string().ends_with("failed: nope"), "{err}");
    }
}
