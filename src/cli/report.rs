//! `repro report`: re-render a pipeline's reports from cached results only, and copy
//! them to `reports/<pipeline name>/`. Never trains: if a stage the report needs has no
//! valid cached result, it says which one and how to make it.

use std::time::Duration;

use crate::device::DeviceChoice;
use crate::run::materialize::check_targets;
use crate::run::reporter::Reporter;
use crate::run::schedule::{Local, RunOptions};
use crate::run::session::Session;
use crate::stages::report::ReportStage;
use crate::stages::TypedStage;
use crate::store::key::describe;

use super::common::{PipelineArgs, StoreArgs};
use super::{exit, CliError, CliResult};

/// Arguments of `repro report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Where reports are copied (as `<dir>/<pipeline name>/`).
    #[arg(long, default_value = "reports")]
    reports: std::path::PathBuf,
}

/// Runs `repro report`.
pub fn exec(args: Args) -> CliResult {
    let pipeline = args.pipeline.load()?;
    if !pipeline
        .stages
        .iter()
        .any(|s| s.kind.name() == ReportStage::NAME)
    {
        return Err(CliError::invalid(format!(
            "{} has no stage of kind `{}`",
            pipeline.file.display(),
            ReportStage::NAME
        )));
    }
    check_targets(&pipeline, &args.reports).map_err(CliError::invalid)?;
    let session = Session::open(args.store.open()?, &pipeline, Duration::ZERO)?;
    let missing: Vec<String> = session
        .missing_results(&pipeline)?
        .into_iter()
        .map(|(name, reasons)| format!("`{name}` ({})", describe(&reasons)))
        .collect();
    if !missing.is_empty() {
        let profile = pipeline
            .profile
            .as_ref()
            .map(|p| format!(" --profile {p}"))
            .unwrap_or_default();
        return Err(CliError::failed(format!(
            "the report needs results that are not in the store: {}. Run `repro run {}{profile}` first",
            missing.join(", "),
            pipeline.file.display()
        )));
    }
    let mut reporter = Reporter::new(false, pipeline.stages.len());
    let summary = session.execute(
        &pipeline,
        DeviceChoice::Cpu,
        RunOptions {
            jobs: 1,
            keep_going: false,
        },
        (&Local, None),
        &mut |e| reporter.event(e),
    )?;
    if summary.failed() {
        return Ok(exit::FAILED);
    }
    for dir in session.copy_reports(&pipeline, &args.reports)? {
        println!("{}", dir.join(crate::report::INDEX_HTML).display());
    }
    Ok(exit::OK)
}
