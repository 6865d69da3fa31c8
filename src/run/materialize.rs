//! Copies the results of `report` stages out of the store into `reports/<pipeline>/`,
//! where people look for them. The store stays the source of truth: this folder is
//! replaced wholesale each time, never read back.
//!
//! Replacing never removes anything repro did not write: each report folder carries a
//! [`MARKER`] file, a folder in the way without one is refused (before any stage runs,
//! through [`check_targets`]), and the new copy is written beside the old one and
//! swapped in by rename, so a crash leaves either the old report or the new one.

use std::path::{Path, PathBuf};

use crate::pipeline::names::file_component;
use crate::pipeline::Pipeline;
use crate::stages::report::ReportStage;
use crate::stages::TypedStage;
use crate::store::filecache::FileDigests;
use crate::store::object::{self, remove_tree};
use crate::store::{io_err, Result, Store};

use super::plan::{plan, Status};

/// The file that marks a folder as a report repro wrote (and may replace).
pub const MARKER: &str = ".repro-report";

/// What the marker file says, for a person who finds it.
const MARKER_TEXT: &str =
    "This folder is a report written by repro; `repro run` and `repro report` replace it.\n";

/// The folder each report stage of `pipeline` is copied to: `root/<pipeline name>/`,
/// or `root/<pipeline name>/<stage>/` when there are several.
pub fn targets(pipeline: &Pipeline, root: &Path) -> Vec<(String, PathBuf)> {
    let reports: Vec<_> = pipeline
        .stages
        .iter()
        .filter(|s| s.kind.name() == ReportStage::NAME)
        .collect();
    reports
        .iter()
        .map(|stage| {
            let mut target = root.join(&pipeline.name);
            if reports.len() > 1 {
                target = target.join(file_component(&stage.name));
            }
            (stage.name.clone(), target)
        })
        .collect()
}

/// Refuses report folders that exist but were not written by repro, so that a run
/// stops before doing anything rather than replace someone's files.
pub fn check_targets(pipeline: &Pipeline, root: &Path) -> std::result::Result<(), String> {
    for (_, target) in targets(pipeline, root) {
        let foreign = target.exists() && !target.join(MARKER).is_file();
        let not_a_folder = target.exists() && !target.is_dir();
        if foreign || not_a_folder {
            return Err(format!(
                "{} exists and is not a report written by repro (it has no {MARKER} file); move it away, or pass --reports DIR to write reports elsewhere",
                target.display()
            ));
        }
    }
    Ok(())
}

/// Copies every cached report stage of `pipeline` to its folder (see [`targets`]),
/// returning the folders.
pub fn materialize(
    store: &Store,
    files: &FileDigests,
    pipeline: &Pipeline,
    root: &Path,
) -> std::result::Result<Vec<PathBuf>, super::plan::Error> {
    let targets = targets(pipeline, root);
    let mut out = Vec::new();
    for (name, a) in plan(store, files, pipeline)? {
        let (Some((_, target)), Status::Cached, Some(record)) =
            (targets.iter().find(|(s, _)| *s == name), a.status, a.record)
        else {
            continue;
        };
        replace_tree(&store.object_dir(&record.output), target)?;
        out.push(target.clone());
    }
    Ok(out)
}

/// Writes a copy of `from` beside `to`, then swaps it in; the old copy is removed
/// only when it carries the marker.
fn replace_tree(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fresh = parent.join(format!(".{name}.new-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if fresh.exists() {
        remove_tree(&fresh)?;
    }
    copy_tree(from, &fresh)?;
    if to.exists() {
        if !to.join(MARKER).is_file() {
            remove_tree(&fresh)?;
            return Err(crate::store::Error::Missing(format!(
                "{} is not a report written by repro (no {MARKER} file); left as it is",
                to.display()
            )));
        }
        std::fs::rename(to, &old).map_err(io_err("move", to))?;
    }
    std::fs::rename(&fresh, to).map_err(io_err("move", &fresh))?;
    if old.exists() {
        remove_tree(&old)?;
    }
    Ok(())
}

/// Copies a tree, files readable by all and writable by their owner only, and marks it.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for rel in object::copy_tree(from, to)? {
        owner_writable(&to.join(rel))?;
    }
    let marker = to.join(MARKER);
    std::fs::write(&marker, MARKER_TEXT).map_err(io_err("write", &marker))
}

/// Mode 0644: objects are read-only, their copies are the user's to edit.
fn owner_writable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(io_err("chmod", path))
    }
    #[cfg(not(unix))]
    {
        let mut perms = std::fs::metadata(path)
            .map_err(io_err("stat", path))?
            .permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(path, perms).map_err(io_err("chmod", path))
    }
}
