//! `repro run`: run every stale stage of a pipeline, in parallel where the graph allows.

use std::time::Duration;

use crate::device::DeviceChoice;
use crate::run::materialize::check_targets;
use crate::run::reporter::Reporter;
use crate::run::schedule::RunOptions;
use crate::run::session::Session;
use crate::run::summary::RunTotals;

use super::common::{PipelineArgs, StoreArgs};
use super::{exit, CliError, CliResult};

/// Arguments of `repro run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Stages running at once. Default 1: every training stage already uses all cores
    /// for its matrix products, so running two at once mostly makes both slower.
    #[arg(long, short, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
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
    /// Where report stages are copied (as `<dir>/<pipeline name>/`).
    #[arg(long, default_value = "reports")]
    reports: std::path::PathBuf,
}

/// Runs `repro run`.
pub fn exec(args: Args) -> CliResult {
    args.device.ensure_available().map_err(CliError::invalid)?;
    let pipeline = args.pipeline.load()?;
    check_targets(&pipeline, &args.reports).map_err(CliError::invalid)?;
    super::data::provision(&pipeline, args.offline || super::data::offline_from_env())?;
    let session = Session::open(args.store.open()?, &pipeline, args.wait)?;
    let started = std::time::Instant::now();
    let mut reporter = Reporter::new(args.json, pipeline.stages.len());
    let summary = session.execute(
        &pipeline,
        args.device,
        RunOptions {
            jobs: usize::from(args.jobs),
            keep_going: args.keep_going,
        },
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
