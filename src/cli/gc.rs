//! `repro gc`: remove records and objects that no kept pipeline (every file in
//! `pipelines/`, or those given with `--keep`) reaches; see [`crate::run::live`].

use std::path::PathBuf;
use std::time::Duration;

use crate::run::live::live_keys;
use crate::run::slurm::job::JobDir;
use crate::run::slurm::queue;
use crate::store::filecache::FileDigests;
use crate::store::gc::{collect, collect_tmp};
use crate::store::lock::StoreLock;

use super::common::StoreArgs;
use super::{exit, CliError, CliResult};

/// Arguments of `repro gc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Pipelines whose results to keep (default: every *.yaml in pipelines/).
    #[arg(long, num_args = 1..)]
    keep: Vec<PathBuf>,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `repro gc`.
pub fn exec(args: Args) -> CliResult {
    let store = args.store.open_existing()?;
    let _lock = StoreLock::acquire(&store, Duration::ZERO)?;
    let keep = if args.keep.is_empty() {
        default_pipelines()?
    } else {
        args.keep.clone()
    };
    let files = FileDigests::load(&store);
    let live = live_keys(&store, &files, &keep)?;
    let summary = collect(&store, &live, args.dry_run)?;
    let listing = std::cell::OnceCell::new();
    let job_may_run = |dir: &std::path::Path| {
        let ids = JobDir::at(dir).submissions();
        if ids.is_empty() {
            return false;
        }
        // Without an answer from Slurm, a job may still be queued: keep its folder.
        let Ok(listing) = listing.get_or_init(|| queue::list(None)) else {
            return true;
        };
        ids.iter()
            .any(|id| listing.get(id).is_some_and(|e| e.state.is_alive()))
    };
    let tmp = collect_tmp(&store, &live, args.dry_run, &job_may_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "{verb} {} records and {} objects, {} bytes ({:.1} MiB); kept {} records reached by {} pipelines",
        summary.records,
        summary.objects,
        summary.bytes,
        summary.bytes as f64 / (1024.0 * 1024.0),
        live.len(),
        keep.len()
    );
    println!(
        "{verb} {} checkpoint folders and {} Slurm job folders from tmp/, {:.1} MiB{}",
        tmp.scratch,
        tmp.jobs,
        tmp.bytes as f64 / (1024.0 * 1024.0),
        if tmp.jobs_kept > 0 {
            format!(
                "; kept {} job folders whose jobs may still run (Slurm lists them, or did not answer)",
                tmp.jobs_kept
            )
        } else {
            String::new()
        }
    );
    Ok(exit::OK)
}

fn default_pipelines() -> Result<Vec<PathBuf>, CliError> {
    let dir = PathBuf::from("pipelines");
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        CliError::invalid(format!(
            "cannot list {}: {e}; run gc from the project folder or name pipelines with --keep",
            dir.display()
        ))
    })?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    out.sort();
    Ok(out)
}
