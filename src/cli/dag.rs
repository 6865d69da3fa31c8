//! `repro dag`: the stage graph as text, Graphviz dot, or Mermaid.

use crate::pipeline::dag::{render, Format};

use super::common::PipelineArgs;
use super::{exit, CliResult};

/// Arguments of `repro dag`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Runs `repro dag`.
pub fn exec(args: Args) -> CliResult {
    let pipeline = args.pipeline.load()?;
    print!("{}", render(&pipeline, args.format));
    Ok(exit::OK)
}
