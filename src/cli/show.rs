//! `repro show`: the manifest of one stage's cached result.

use crate::run::plan::{plan, Status};
use crate::store::filecache::FileDigests;
use crate::store::key::describe;
use crate::suggest::hint;

use super::common::{PipelineArgs, StoreArgs};
use super::{exit, CliError, CliResult};

/// Arguments of `repro show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The stage (expanded name, e.g. `dense@seed=1`).
    stage: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `repro show`.
pub fn exec(args: Args) -> CliResult {
    let pipeline = args.pipeline.load()?;
    if pipeline.stage(&args.stage).is_none() {
        let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
        let hint = hint(&args.stage, names.iter().copied());
        return Err(CliError::invalid(format!(
            "no stage `{}` in {} (stages: {}){hint}",
            args.stage,
            pipeline.file.display(),
            names.join(", ")
        )));
    }
    let store = args.store.open()?;
    let files = FileDigests::load(&store);
    let assessments = plan(&store, &files, &pipeline)?;
    let (_, a) = assessments
        .into_iter()
        .find(|(n, _)| n == &args.stage)
        .expect("the stage exists in the plan");
    let record = match (a.status, a.record) {
        (Status::Cached, Some(r)) => r,
        _ => {
            return Err(CliError::failed(format!(
                "stage `{}` has no valid result ({}); run `repro run {} --only {}` first",
                args.stage,
                describe(&a.reasons),
                pipeline.file.display(),
                args.stage
            )))
        }
    };
    let mut manifest = serde_json::to_value(&record.manifest).expect("manifests serialize");
    manifest["key"] = record.key.clone().into();
    manifest["output"] = record.output.clone().into();
    manifest["output_dir"] = store
        .object_dir(&record.output)
        .display()
        .to_string()
        .into();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&manifest).expect("JSON prints")
        );
    } else {
        println!("stage     {}", args.stage);
        println!("key       {}", record.key);
        println!("output    {}", store.object_dir(&record.output).display());
        println!("seed      {}", record.manifest.seed);
        let products = record
            .manifest
            .cpu_products
            .as_deref()
            .map(|p| format!(", products: {p}"))
            .unwrap_or_default();
        println!(
            "wall      {:.2}s on {} ({} threads{products}, {})",
            record.manifest.wall_seconds,
            record.manifest.device,
            record.manifest.threads,
            record.manifest.host
        );
        println!("params    {}", record.manifest.params);
        for (k, v) in &record.manifest.metrics {
            println!("metric    {k} = {v}");
        }
    }
    Ok(exit::OK)
}
