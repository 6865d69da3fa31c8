//! The interface between the runner and the reporter: what happened, as data.

/// How a stage ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its cached result was valid.
    Cached,
    /// It ran and published a result.
    Ran,
    /// It failed; the message says why.
    Failed(String),
    /// It did not run because a stage it needs failed (or the run stopped).
    Skipped(String),
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
        /// Why it runs, rendered.
        reason: String,
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
