//! `repro run`: run every stale stage of a pipeline, in parallel where the graph allows,
//! here or as Slurm jobs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::device::DeviceChoice;
use crate::run::materialize::check_targets;
use crate::run::remote::Remote;
use crate::run::reporter::Reporter;
use crate::run::schedule::{Executor, Local, RunOptions};
use crate::run::session::Session;
use crate::run::slurm::{queue, SlurmExecutor};
use crate::run::summary::RunTotals;

use super::common::{ExecutorArgs, PipelineArgs, StoreArgs};
use super::{exit, CliError, CliResult};

/// Arguments of `repro run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Stages running at once. Default 1 here: every training stage already uses all
    /// cores for its matrix products, so running two at once mostly makes both slower.
    /// With `--executor slurm`, default every stage whose inputs are ready.
    #[arg(long, short, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,
    #[command(flatten)]
    executor: ExecutorArgs,
    /// After a stage fails, still run the stages that do not depend on it.
    #[arg(long)]
    keep_going: bool,
    /// Where stages compute.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceChoice,
    /// Wait up to this many seconds for another run holding the store lock.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = super::common::parse_wait)]
    wait: Duration,
    /// One JSON object per stage on stdout.
    #[arg(long)]
    json: bool,
    /// Never download a missing dataset (also `REPRO_OFFLINE=1`).
    #[arg(long)]
    offline: bool,
    /// A store (e.g. on a shared file system) whose results are copied in, verified,
    /// instead of computing them again; `repro push` fills it. A folder, or a name
    /// from `.repro/config.yaml` or `~/.config/repro/config.yaml`.
    #[arg(long, value_name = "NAME|PATH")]
    remote: Option<String>,
    /// With --remote: also use results computed on another device or CPU kernel
    /// (they differ from this machine's in the last bits).
    #[arg(long, requires = "remote")]
    any_kernel: bool,
    /// Where report stages are copied (as `<dir>/<pipeline name>/`).
    #[arg(long, default_value = "reports")]
    reports: std::path::PathBuf,
}

/// Set by the first SIGINT (Ctrl-C) of a Slurm run; the second one ends the process.
static INTERRUPT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    if INTERRUPT.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(130) }
    }
}

/// Makes Ctrl-C set [`INTERRUPT`] instead of killing the process, so a Slurm run can
/// cancel its jobs and report before it ends. Other signals (SIGTERM at a time limit,
/// SIGHUP) end the process as usual and leave the jobs running: the same command run
/// again follows them.
fn cancel_on_interrupt() -> &'static AtomicBool {
    #[cfg(unix)]
    // SAFETY: the handler only swaps an atomic and may call `_exit`, both
    // async-signal-safe; installing it has no other effect on this process.
    unsafe {
        let handler = on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
    }
    &INTERRUPT
}

/// Runs `repro run`.
pub fn exec(args: Args) -> CliResult {
    args.device.ensure_available().map_err(CliError::invalid)?;
    let cluster = args.executor.cluster()?;
    let pipeline = args.pipeline.load()?;
    check_targets(&pipeline, &args.reports).map_err(CliError::invalid)?;
    super::data::provision(&pipeline, args.offline || super::data::offline_from_env())?;
    let jobs = match (args.jobs, &cluster) {
        (Some(n), _) => usize::from(n),
        (None, None) => 1,
        (None, Some(_)) => usize::MAX,
    };
    let executor: Box<dyn Executor> = match cluster {
        None => Box::new(Local),
        Some(cluster) => {
            queue::check_available().map_err(CliError::invalid)?;
            let slurm = SlurmExecutor::new(cluster, cancel_on_interrupt())
                .map_err(|e| CliError::failed(format!("cannot find this repro binary: {e}")))?;
            Box::new(slurm)
        }
    };
    let remote = args
        .remote
        .as_deref()
        .map(super::remote::remote_path)
        .transpose()?
        .map(|r| Remote::open(&r, args.any_kernel))
        .transpose()
        .map_err(CliError::invalid)?;
    let session = Session::open(args.store.open()?, &pipeline, args.wait)?;
    let started = std::time::Instant::now();
    let mut reporter = Reporter::new(args.json, pipeline.stages.len());
    let summary = session.execute(
        &pipeline,
        args.device,
        RunOptions {
            jobs,
            keep_going: args.keep_going,
        },
        (executor.as_ref(), remote.as_ref()),
        &mut |e| reporter.event(e),
    )?;
    let reports = session.copy_reports(&pipeline, &args.reports)?;
    reporter.finish(&RunTotals::new(
        &summary,
        started.elapsed().as_secs_f64(),
        reports,
    ));
    Ok(if summary.failed() {
        exit::FAILED
    } else {
        exit::OK
    })
}
