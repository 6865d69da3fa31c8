//! Garbage collection: drop records and objects that no kept pipeline reaches.
//!
//! The caller (the CLI) decides which stage keys are live, by planning every kept
//! pipeline under every profile; this module only deletes what is not live and
//! counts the bytes freed. A dry run deletes nothing and reports the same numbers.
//! [`collect_tmp`] does the same for `tmp/`: the resumable checkpoints and the Slurm
//! job folders of stages that no kept pipeline reaches, or that already have a result.

use std::collections::BTreeSet;

use super::object::{all_objects, discard, tree_size};
use super::record::{scan, Lookup};
use super::{io_err, Result, Store};

/// What a collection removed (or would remove, for a dry run).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcSummary {
    /// Stage records removed.
    pub records: usize,
    /// Objects removed.
    pub objects: usize,
    /// Bytes of object files freed.
    pub bytes: u64,
}

/// What [`collect_tmp`] removed (or would remove) from `tmp/`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TmpSummary {
    /// Resumable checkpoint folders (`tmp/scratch/<key>`) removed.
    pub scratch: usize,
    /// Slurm job folders (`tmp/slurm/<key>`) removed.
    pub jobs: usize,
    /// Job folders that would go but were kept because their job may still run.
    pub jobs_kept: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// Removes the checkpoint and Slurm job folders in `tmp/` whose key is not in
/// `live_keys` or already has a record (the stage finished: nothing resumes from
/// them). A job folder goes only when `job_may_run(folder)` says its job cannot
/// still be queued or running (the caller asks Slurm). With `dry_run`, only counts.
pub fn collect_tmp(
    store: &Store,
    live_keys: &BTreeSet<String>,
    dry_run: bool,
    job_may_run: &dyn Fn(&std::path::Path) -> bool,
) -> Result<TmpSummary> {
    let mut summary = TmpSummary::default();
    let scratch_root = store.scratch_dir("");
    for (root, is_jobs) in [(scratch_root.as_path(), false), (&store.jobs_dir(), true)] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let key = entry.file_name().to_string_lossy().into_owned();
            let finished = store.record_path(&key).is_file();
            if !path.is_dir() || (live_keys.contains(&key) && !finished) {
                continue;
            }
            if is_jobs && job_may_run(&path) {
                summary.jobs_kept += 1;
                continue;
            }
            summary.bytes += tree_size(&path)?;
            if is_jobs {
                summary.jobs += 1;
            } else {
                summary.scratch += 1;
            }
            if !dry_run {
                std::fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
            }
        }
    }
    Ok(summary)
}

/// Removes every record whose key is not in `live_keys` (and every damaged one), then every object no
/// remaining record points to. With `dry_run`, only counts.
pub fn collect(store: &Store, live_keys: &BTreeSet<String>, dry_run: bool) -> Result<GcSummary> {
    let mut summary = GcSummary::default();
    let mut live_objects = BTreeSet::new();
    for (key, lookup) in scan(store)? {
        match lookup {
            Lookup::Found(record) if live_keys.contains(&key) => {
                live_objects.insert(record.output);
            }
            // Not live, or damaged (which no run can use): removed.
            _ => {
                summary.records += 1;
                if !dry_run {
                    let path = store.record_path(&key);
                    std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
                }
            }
        }
    }
    for digest in all_objects(store)? {
        if live_objects.contains(&digest) {
            continue;
        }
        summary.objects += 1;
        summary.bytes += tree_size(&store.object_dir(&digest))?;
        if !dry_run {
            discard(store, &digest)?;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &std::path::Path) {
        std::fs::create_dir_all(path).unwrap();
        std::fs::write(path.join("state"), b"12345").unwrap();
    }

    #[test]
    fn tmp_keeps_only_what_a_live_unfinished_stage_resumes_from() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for key in ["live", "dead", "done"] {
            folder(&store.scratch_dir(key));
            folder(&store.jobs_dir().join(key));
        }
        folder(&store.jobs_dir().join("queued"));
        let record = store.record_path("done");
        std::fs::create_dir_all(record.parent().unwrap()).unwrap();
        std::fs::write(&record, b"{}").unwrap();
        let live: BTreeSet<String> = ["live", "done"].map(String::from).into();
        let may_run = |p: &std::path::Path| p.ends_with("queued");

        let dry = collect_tmp(&store, &live, true, &may_run).unwrap();
        assert_eq!(
            (dry.scratch, dry.jobs, dry.jobs_kept, dry.bytes),
            (2, 2, 1, 20)
        );
        assert!(
            store.scratch_dir("dead").exists(),
            "a dry run removes nothing"
        );

        assert_eq!(collect_tmp(&store, &live, false, &may_run).unwrap(), dry);
        assert!(store.scratch_dir("live").exists());
        assert!(store.jobs_dir().join("live").exists());
        assert!(store.jobs_dir().join("queued").exists());
        for gone in ["dead", "done"] {
            assert!(!store.scratch_dir(gone).exists(), "{gone}");
            assert!(!store.jobs_dir().join(gone).exists(), "{gone}");
        }
    }
}
