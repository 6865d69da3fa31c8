//! Copies the results of `report` stages out of the store into `reports/<pipeline>/`,
//! where people look for them. The store stays the source of truth: this folder is
//! replaced wholesale each time, never read back.

use std::path::{Path, PathBuf};

use crate::pipeline::Pipeline;
use crate::store::filecache::FileDigests;
use crate::store::object::list_files;
use crate::store::{io_err, Result, Store};

use super::plan::{plan, Status};

/// Copies every cached report stage of `pipeline` into `root/<pipeline name>/` (or
/// `root/<pipeline name>/<stage>/` when there are several), returning the folders.
pub fn materialize(
    store: &Store,
    files: &FileDigests,
    pipeline: &Pipeline,
    root: &Path,
) -> std::result::Result<Vec<PathBuf>, super::plan::Error> {
    let reports: Vec<_> = pipeline
        .stages
        .iter()
        .filter(|s| s.kind.name() == "report")
        .collect();
    let mut out = Vec::new();
    for (name, a) in plan(store, files, pipeline)? {
        let (Some(stage), Status::Cached, Some(record)) =
            (reports.iter().find(|s| s.name == name), a.status, a.record)
        else {
            continue;
        };
        let mut target = root.join(&pipeline.name);
        if reports.len() > 1 {
            target = target.join(stage.name.replace(['@', '=', ','], "_"));
        }
        copy_tree(&store.object_dir(&record.output), &target)?;
        out.push(target);
    }
    Ok(out)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(io_err("remove", to))?;
    }
    for rel in list_files(from)? {
        let (src, dst) = (from.join(&rel), to.join(&rel));
        let parent = dst.parent().expect("a file has a parent");
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        std::fs::copy(&src, &dst).map_err(io_err("copy", &src))?;
        let mut perms = std::fs::metadata(&dst)
            .map_err(io_err("stat", &dst))?
            .permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&dst, perms).map_err(io_err("chmod", &dst))?;
    }
    Ok(())
}
