//! `repro report`: re-render a pipeline's reports from cached results only, and copy
//! them to `reports/<pipeline name>/`. Never trains: if a stage the report needs has no
//! valid cached result, it says which one and how to make it.

use std::time::Duration;

use crate::provenance::Host;
use crate::run::execute::ExecEnv;
use crate::run::materialize::{check_targets, materialize};
use crate::run::plan::{plan, Status};
use crate::run::reporter::Reporter;
use crate::run::schedule::{run, RunOptions};
use crate::store::filecache::FileDigests;
use crate::store::key::describe;
use crate::store::lock::StoreLock;

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
    if !pipeline.stages.iter().any(|s| s.kind.name() == "report") {
        return Err(CliError::invalid(format!(
            "{} has no stage of kind `report`",
            pipeline.file.display()
        )));
    }
    check_targets(&pipeline, &args.reports).map_err(CliError::invalid)?;
    let store = args.store.open()?;
    let files = FileDigests::load(&store);
    let missing: Vec<String> = plan(&store, &files, &pipeline)?
        .into_iter()
        .filter(|(name, a)| {
            a.status == Status::Run
                && pipeline
                    .stage(name)
                    .is_some_and(|s| s.kind.name() != "report")
        })
        .map(|(name, a)| format!("`{name}` ({})", describe(&a.reasons)))
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
    let _lock = StoreLock::acquire(&store, Duration::ZERO)?;
    let host = Host::gather(pipeline.file.parent().unwrap_or(std::path::Path::new(".")));
    let env = ExecEnv {
        store: &store,
        pipeline: &pipeline,
        device: crate::device::DeviceChoice::Cpu,
        host: &host,
        threads: rayon::current_num_threads(),
    };
    let mut reporter = Reporter::new(false, pipeline.stages.len());
    let summary = run(
        &env,
        &files,
        RunOptions {
            jobs: 1,
            keep_going: false,
        },
        &mut |e| reporter.event(e),
    )?;
    if summary.failed() {
        return Ok(exit::FAILED);
    }
    for dir in materialize(&store, &files, &pipeline, &args.reports)? {
        println!("{}", dir.join(crate::report::INDEX_HTML).display());
    }
    files.save(&store)?;
    Ok(exit::OK)
}
