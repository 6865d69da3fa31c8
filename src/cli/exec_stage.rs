//! `repro exec-stage DIR` (hidden): what a Slurm job runs. Computes the stage of a job
//! folder written by `repro run --executor slurm` into it, without the store's lock and
//! without publishing; its one line goes to the job's log.

use std::path::PathBuf;

use crate::run::slurm::job::{exec_stage, ExecOutcome};

use super::{exit, CliError, CliResult};

/// Arguments of `repro exec-stage`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The job's folder (`tmp/slurm/<key>/` in the store).
    dir: PathBuf,
}

/// Runs `repro exec-stage`.
pub fn exec(args: Args) -> CliResult {
    let line = |text: String| eprintln!("repro exec-stage {}: {text}", args.dir.display());
    match exec_stage(&args.dir).map_err(CliError::invalid)? {
        ExecOutcome::Done(digest) => {
            line(format!("computed; outputs {digest}"));
            Ok(exit::OK)
        }
        ExecOutcome::StageFailed(failure) => {
            line(format!("the stage failed: {failure}"));
            Ok(exit::FAILED)
        }
        ExecOutcome::Duplicate { holder } => {
            line(format!(
                "job {holder} already computes this folder; this duplicate exits without computing"
            ));
            Ok(exit::OK)
        }
        ExecOutcome::AlreadyDone => {
            line("the folder already holds a result; nothing to do".into());
            Ok(exit::OK)
        }
    }
}
