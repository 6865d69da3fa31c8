//! `repro plan`: the dry run. For each stage, cached or run, and why; a stage whose
//! dataset is not on this machine shows as to run, with a provisional key. With
//! `--executor slurm`, each stage to run also shows what its job asks for.

use crate::run::plan::{plan_with, MissingData, Status};
use crate::store::filecache::FileDigests;
use crate::store::key::describe;

use super::common::{ExecutorArgs, PipelineArgs, StoreArgs};
use super::{exit, CliResult};

/// Arguments of `repro plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    executor: ExecutorArgs,
    /// One JSON object per stage on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `repro plan`.
pub fn exec(args: Args) -> CliResult {
    let cluster = args.executor.cluster()?;
    let pipeline = args.pipeline.load()?;
    let store = args.store.open()?;
    let files = FileDigests::load(&store);
    let assessments = plan_with(&store, &files, &pipeline, MissingData::Provisional)?;
    let _ = files.save(&store);
    let mut to_run = 0;
    let mut cpu_hours = 0.0;
    for (name, a) in &assessments {
        let status = match a.status {
            Status::Cached => "cached",
            Status::Run => {
                to_run += 1;
                "run"
            }
        };
        let job = cluster
            .as_ref()
            .filter(|_| a.status == Status::Run)
            .and_then(|c| pipeline.stage(name).map(|s| c.resources(s)));
        if let Some(r) = &job {
            cpu_hours += f64::from(r.cpus) * r.time_seconds as f64 / 3600.0;
        }
        let reason = describe(&a.reasons);
        if args.json {
            let mut line = serde_json::json!({
                "stage": name,
                "status": status,
                "key": a.key,
                "reason": reason,
                "reasons": a.reasons,
            });
            if let Some(r) = &job {
                line["job"] = serde_json::to_value(r).expect("resources serialize");
            }
            println!("{line}");
        } else if a.status == Status::Cached {
            println!("  cached  {name}");
        } else if let Some(r) = &job {
            println!("  run     {name}  ({reason})  [job: {}]", r.describe());
        } else {
            println!("  run     {name}  ({reason})");
        }
    }
    if !args.json {
        let jobs = if cluster.is_some() {
            format!(" as Slurm jobs, asking for at most {cpu_hours:.1} CPU-hours")
        } else {
            String::new()
        };
        println!("{to_run} of {} stages would run{jobs}", assessments.len());
    }
    Ok(exit::OK)
}
