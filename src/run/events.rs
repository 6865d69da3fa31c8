//! The interface between the runner and the reporter: what happened, as data.
//!
//! Why a stage runs ([`MissReason`]s), why it failed ([`Failure`]) and why it was
//! skipped ([`SkipCause`]) travel as values; only the reporter renders them to text.

use crate::store::key::MissReason;

/// Why a stage failed.
#[derive(Debug, Clone, PartialEq)]
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
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Stage { message } | Failure::Store { message } => write!(f, "{message}"),
            Failure::Panic { message } => write!(f, "internal error (a bug in repro): {message}"),
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
