//! `repro push` and `repro pull`: copy the results a pipeline reaches to or from a
//! remote store (a path, e.g. on a shared file system), objects before records, each
//! object rehashed after the copy (see [`crate::store::remote`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::run::remote::{transfer, Remote, Transfer};
use crate::store::filecache::FileDigests;
use crate::store::lock::StoreLock;
use crate::store::remote_names::RemoteNames;
use crate::store::Store;

use super::common::{PipelineArgs, StoreArgs};
use super::{exit, CliError, CliResult};

/// Arguments of `repro push` and `repro pull`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// The remote store: its folder, or a name from `.repro/config.yaml` or
    /// `~/.config/repro/config.yaml` (`remotes: {lab: /shared/store}`).
    #[arg(long, value_name = "NAME|PATH")]
    remote: String,
    /// Pull: the device this store's runs compute on; results of another device, or
    /// of another CPU kernel, are refused (they differ in the last bits).
    #[arg(long, value_enum, default_value = "cpu")]
    device: crate::device::DeviceChoice,
    /// Pull: take results computed on another device or CPU kernel too.
    #[arg(long)]
    any_kernel: bool,
    /// One JSON object per stage on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `repro push`: local results to the remote (created if needed).
pub fn push(args: Args) -> CliResult {
    let pipeline = args.pipeline.load()?;
    let local = args.store.open_existing()?;
    let path = remote_path(&args.remote)?;
    let remote = Store::open(&path).map_err(|e| {
        CliError::invalid(format!(
            "cannot use {} as the remote store: {e}",
            path.display()
        ))
    })?;
    let files = FileDigests::load(&local);
    let outcomes = transfer(&local, &remote, &files, &pipeline, &|_| None)?;
    let _ = files.save(&local);
    render(&outcomes, args.json, &format!("to {}", path.display()))
}

/// Runs `repro pull`: the remote's results into the local store (locked meanwhile).
pub fn pull(args: Args) -> CliResult {
    let pipeline = args.pipeline.load()?;
    let path = remote_path(&args.remote)?;
    let remote = Remote::open(&path, args.any_kernel).map_err(CliError::invalid)?;
    let local = args.store.open()?;
    let _lock = StoreLock::acquire(&local, Duration::ZERO)?;
    let files = FileDigests::load(&local);
    let outcomes = transfer(&remote.store, &local, &files, &pipeline, &|m| {
        remote.refuses(m, args.device)
    })?;
    let _ = files.save(&local);
    render(&outcomes, args.json, &format!("from {}", path.display()))
}

/// The folder of the remote store `arg` names (a path, or a configured name).
pub fn remote_path(arg: &str) -> Result<PathBuf, CliError> {
    RemoteNames::of_this_process()
        .resolve(arg)
        .map_err(CliError::invalid)
}

/// One line per stage and a count; exit 1 when a copy failed.
fn render(outcomes: &[(String, Transfer)], json: bool, whence: &str) -> CliResult {
    let mut counts = [0usize; 5];
    for (stage, outcome) in outcomes {
        let (i, word, why) = match outcome {
            Transfer::Copied => (0, "copied", None),
            Transfer::Present => (1, "present", None),
            Transfer::Absent => (2, "absent", None),
            Transfer::Refused { why } => (3, "refused", Some(why)),
            Transfer::Failed { why } => (4, "failed", Some(why)),
        };
        counts[i] += 1;
        if json {
            let mut line = serde_json::to_value(outcome).expect("outcomes serialize");
            line["stage"] = stage.clone().into();
            println!("{line}");
        } else {
            let why = why.map(|w| format!(": {w}")).unwrap_or_default();
            println!("  {word:<7} {stage}{why}");
        }
    }
    if !json {
        let [copied, present, absent, refused, failed] = counts;
        println!("{copied} copied {whence}, {present} already there, {absent} without a result to copy, {refused} refused, {failed} failed");
    }
    Ok(if counts[4] > 0 {
        exit::FAILED
    } else {
        exit::OK
    })
}
