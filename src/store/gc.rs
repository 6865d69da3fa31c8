//! Garbage collection: drop records and objects that no kept pipeline reaches.
//!
//! The caller (the CLI) decides which stage keys are live, by planning every kept
//! pipeline under every profile; this module only deletes what is not live and
//! counts the bytes freed. A dry run deletes nothing and reports the same numbers.

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
