//! The command line: argument types (clap derive) and one file per subcommand, each
//! with its `Args` and `exec`. No pipeline logic lives here; errors become [`CliError`]s
//! carrying the documented exit code.

mod bench;
mod common;
mod dag;
mod data;
mod exec_stage;
mod gc;
mod metrics;
mod plan;
mod remote;
mod report;
mod run;
mod show;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes, as documented in the README.
pub mod exit {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// A stage failed (or `verify` found corrupt objects).
    pub const FAILED: u8 = 1;
    /// Invalid input: pipeline, arguments, or a dataset that cannot be found.
    pub const INVALID: u8 = 2;
    /// The store is locked by another live run.
    pub const LOCKED: u8 = 3;
}

/// An error that ends the command, with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// The message shown on stderr.
    pub message: String,
}

impl CliError {
    /// Invalid input (exit 2).
    pub fn invalid(message: impl std::fmt::Display) -> CliError {
        CliError {
            code: exit::INVALID,
            message: message.to_string(),
        }
    }

    /// A failure (exit 1).
    pub fn failed(message: impl std::fmt::Display) -> CliError {
        CliError {
            code: exit::FAILED,
            message: message.to_string(),
        }
    }
}

impl From<crate::pipeline::Error> for CliError {
    fn from(e: crate::pipeline::Error) -> CliError {
        CliError::invalid(e)
    }
}

impl From<crate::store::Error> for CliError {
    fn from(e: crate::store::Error) -> CliError {
        match e {
            crate::store::Error::Locked { .. } => CliError {
                code: exit::LOCKED,
                message: e.to_string(),
            },
            other => CliError::failed(other),
        }
    }
}

impl From<crate::run::plan::Error> for CliError {
    fn from(e: crate::run::plan::Error) -> CliError {
        match e {
            crate::run::plan::Error::Store(s) => s.into(),
            crate::run::plan::Error::Stage {
                source:
                    crate::stages::Error::InvalidInput(_) | crate::stages::Error::DatasetMissing { .. },
                ..
            } => CliError::invalid(e),
            other => CliError::failed(other),
        }
    }
}

impl From<crate::run::live::Error> for CliError {
    fn from(e: crate::run::live::Error) -> CliError {
        match e {
            crate::run::live::Error::Pipeline(e) => e.into(),
            crate::run::live::Error::Plan(e) => e.into(),
        }
    }
}

/// Result type of subcommands.
pub type CliResult = Result<u8, CliError>;

/// repro: declarative, cached, content-hashed pipelines that reproduce papers on
/// biologically inspired deep learning.
#[derive(Debug, Parser)]
#[command(name = "repro", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline: every stage whose cached result is missing or stale.
    Run(run::Args),
    /// Dry run: show what would run, and why.
    Plan(plan::Args),
    /// Show the stage graph.
    Dag(dag::Args),
    /// Show a stage's manifest.
    Show(show::Args),
    /// Re-render reports from cached results only.
    Report(report::Args),
    /// Every stage's metrics as one table, or the differences from another run.
    Metrics(metrics::Args),
    /// Remove records and objects no pipeline reaches any more.
    Gc(gc::Args),
    /// Rehash every object in the store.
    Verify(verify::Args),
    /// Copy the results a pipeline reaches to a remote store.
    Push(remote::Args),
    /// Copy the results a pipeline reaches from a remote store.
    Pull(remote::Args),
    /// List, fetch and verify datasets.
    Data(data::Args),
    /// Measure training/evaluation throughput and the no-op rerun time.
    Bench(bench::Args),
    /// What a Slurm job runs: compute one stage into its job folder.
    #[command(hide = true)]
    ExecStage(exec_stage::Args),
}

/// A closed stdout (`repro verify --json | head -1`) ends the process quietly, as it
/// does for other Unix tools, instead of a panic in `println!`: the default action of
/// SIGPIPE, which Rust's runtime sets to "ignore", is restored. What a killed run
/// leaves in the store is what any crash leaves: nothing half-published.
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; resetting a
    // signal's disposition to its default has no other effect on this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    quiet_on_closed_stdout();
    crate::nn::keep_freed_buffers();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::exec(a),
        Command::Plan(a) => plan::exec(a),
        Command::Dag(a) => dag::exec(a),
        Command::Show(a) => show::exec(a),
        Command::Report(a) => report::exec(a),
        Command::Metrics(a) => metrics::exec(a),
        Command::Gc(a) => gc::exec(a),
        Command::Verify(a) => verify::exec(a),
        Command::Push(a) => remote::push(a),
        Command::Pull(a) => remote::pull(a),
        Command::Data(a) => data::exec(a),
        Command::Bench(a) => bench::exec(a),
        Command::ExecStage(a) => exec_stage::exec(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
