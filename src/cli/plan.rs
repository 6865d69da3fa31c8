//! `repro plan`: the dry run. For each stage, cached or run, and why; a stage whose
//! dataset is not on this machine shows as to run, with a provisional key.

use crate::run::plan::{plan_with, MissingData, Status};
use crate::store::filecache::FileDigests;
use crate::store::key::describe;

use super::common::{PipelineArgs, StoreArgs};
use super::{exit, CliResult};

/// Arguments of `repro plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// One JSON object per stage on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `repro plan`.
pub fn exec(args: Args) -> CliResult {
    let pipeline = args.pipeline.load()?;
    let store = args.store.open()?;
    let files = FileDigests::load(&store);
    let assessments = plan_with(&store, &files, &pipeline, MissingData::Provisional)?;
    let _ = files.save(&store);
    let mut to_run = 0;
    for (name, a) in &assessments {
        let status = match a.status {
            Status::Cached => "cached",
            Status::Run => {
                to_run += 1;
                "run"
            }
        };
        let reason = describe(&a.reasons);
        if args.json {
            let line = serde_json::json!({
                "stage": name,
                "status": status,
                "key": a.key,
                "reason": reason,
                "reasons": a.reasons,
            });
            println!("{line}");
        } else if a.status == Status::Cached {
            println!("  cached  {name}");
        } else {
            println!("  run     {name}  ({reason})");
        }
    }
    if !args.json {
        println!("{to_run} of {} stages would run", assessments.len());
    }
    Ok(exit::OK)
}
