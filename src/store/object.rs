//! Content-addressed output trees: digest, publish, and integrity checks.
//!
//! An object is a folder of files. Its digest is the sha256 over the sorted list of
//! `relative/path\0<sha256 of file>\n` lines, so it depends on names and contents only.
//! Objects are published by renaming a finished temp folder into `objects/<digest>`,
//! and made read-only. A stamp (each file's size and mtime at publish time) lets the
//! planner accept an untouched object without rehashing it; a changed stamp forces a
//! full rehash, and `repro verify` always rehashes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::canonical::{sha256_file, sha256_hex};
use super::{io_err, read_json, write_atomic, Result, Store};

/// Size and modification time of one file, as seen at publish time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Length in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: u128,
}

impl FileStamp {
    /// Reads the stamp of a file.
    pub fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        let mtime_ns = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(FileStamp {
            size: meta.len(),
            mtime_ns,
        })
    }
}

/// Lists the files of a tree as sorted `/`-separated relative paths.
pub fn list_files(root: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(io_err("list", dir))? {
            let entry = entry.map_err(io_err("list", dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io_err("stat", &path))?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).expect("walked below root");
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

/// The digest of an output tree (files hashed in parallel).
pub fn tree_digest(root: &Path) -> Result<String> {
    let files = list_files(root)?;
    let hashes: Vec<Result<String>> = files
        .par_iter()
        .map(|rel| {
            let path = root.join(rel);
            sha256_file(&path).map_err(io_err("hash", &path))
        })
        .collect();
    let mut manifest = String::new();
    for (rel, hash) in files.iter().zip(hashes) {
        manifest.push_str(rel);
        manifest.push('\0');
        manifest.push_str(&hash?);
        manifest.push('\n');
    }
    Ok(sha256_hex(manifest.as_bytes()))
}

/// Total size in bytes of the files of a tree.
pub fn tree_size(root: &Path) -> Result<u64> {
    let mut total = 0;
    for rel in list_files(root)? {
        let path = root.join(rel);
        total += std::fs::metadata(&path)
            .map_err(io_err("stat", &path))?
            .len();
    }
    Ok(total)
}

fn stamps_of(root: &Path) -> Result<BTreeMap<String, FileStamp>> {
    list_files(root)?
        .into_iter()
        .map(|rel| {
            let path = root.join(&rel);
            FileStamp::of(&path)
                .map(|s| (rel, s))
                .map_err(io_err("stat", &path))
        })
        .collect()
}

fn set_read_only(root: &Path) -> Result<()> {
    for rel in list_files(root)? {
        let path = root.join(rel);
        let mut perms = std::fs::metadata(&path)
            .map_err(io_err("stat", &path))?
            .permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&path, perms).map_err(io_err("chmod", &path))?;
    }
    Ok(())
}

/// Publishes a finished temp folder as an object and returns its digest.
/// If an identical object already exists, the temp folder is removed instead.
pub fn publish(store: &Store, finished: &Path) -> Result<String> {
    let digest = tree_digest(finished)?;
    publish_as(store, finished, &digest)?;
    Ok(digest)
}

/// [`publish`] for a folder whose [`tree_digest`] the caller has just computed.
pub fn publish_as(store: &Store, finished: &Path, digest: &str) -> Result<()> {
    let target = store.object_dir(digest);
    if target.exists() && check(store, digest)? == Health::Intact {
        std::fs::remove_dir_all(finished).map_err(io_err("remove", finished))?;
        return Ok(());
    }
    if target.exists() {
        discard(store, digest)?;
    }
    set_read_only(finished)?;
    std::fs::rename(finished, &target).map_err(io_err("publish", &target))?;
    let stamps = stamps_of(&target)?;
    let json = serde_json::to_vec_pretty(&stamps).expect("stamps serialize");
    write_atomic(store, &store.stamp_path(digest), &json)
}

/// The state of an object on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Present and matching its digest.
    Intact,
    /// Not there.
    Missing,
    /// Present but its content does not match its digest.
    Corrupt,
}

/// Checks an object cheaply: trusts files whose size and mtime match the stamp,
/// rehashes the whole tree otherwise.
pub fn check(store: &Store, digest: &str) -> Result<Health> {
    let dir = store.object_dir(digest);
    if !dir.is_dir() {
        return Ok(Health::Missing);
    }
    // A damaged stamp only costs a rehash.
    let recorded: Option<BTreeMap<String, FileStamp>> =
        read_json(&store.stamp_path(digest)).ok().flatten();
    if let Some(recorded) = recorded {
        if stamps_of(&dir)? == recorded {
            return Ok(Health::Intact);
        }
    }
    rehash(store, digest)
}

/// Checks an object by rehashing every file.
pub fn rehash(store: &Store, digest: &str) -> Result<Health> {
    let dir = store.object_dir(digest);
    if !dir.is_dir() {
        return Ok(Health::Missing);
    }
    Ok(if tree_digest(&dir)? == digest {
        Health::Intact
    } else {
        Health::Corrupt
    })
}

/// Removes an object (e.g. a corrupt one) by moving it to tmp first, so a crash
/// never leaves a half-deleted object under its digest.
pub fn discard(store: &Store, digest: &str) -> Result<()> {
    let dir = store.object_dir(digest);
    if dir.exists() {
        let trash = store
            .tmp_dir()
            .join(format!("discard-{digest}-{}", std::process::id()));
        std::fs::rename(&dir, &trash).map_err(io_err("move", &dir))?;
        remove_tree(&trash)?;
    }
    let stamp = store.stamp_path(digest);
    if stamp.exists() {
        std::fs::remove_file(&stamp).map_err(io_err("remove", &stamp))?;
    }
    Ok(())
}

/// Copies the files of a tree into `to` (created), returning their relative paths.
pub fn copy_tree(from: &Path, to: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(to).map_err(io_err("create", to))?;
    let files = list_files(from)?;
    for rel in &files {
        let (src, dst) = (from.join(rel), to.join(rel));
        let parent = dst.parent().expect("a file has a parent");
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        std::fs::copy(&src, &dst).map_err(io_err("copy", &src))?;
    }
    Ok(files)
}

/// Removes a folder tree, including read-only files.
pub fn remove_tree(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).map_err(io_err("remove", dir))
}

/// Every object digest in the store.
pub fn all_objects(store: &Store) -> Result<Vec<String>> {
    let dir = store.root().join("objects");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io_err("list", &dir))? {
        let entry = entry.map_err(io_err("list", &dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// A path inside an object, for readers of stage outputs.
pub fn object_file(store: &Store, digest: &str, rel: &str) -> PathBuf {
    store.object_dir(digest).join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path, files: &[(&str, &str)]) {
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    #[test]
    fn digest_depends_on_names_and_contents_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        tree(a.path(), &[("x.txt", "1"), ("sub/y.txt", "2")]);
        tree(b.path(), &[("sub/y.txt", "2"), ("x.txt", "1")]);
        assert_eq!(
            tree_digest(a.path()).unwrap(),
            tree_digest(b.path()).unwrap()
        );
        std::fs::write(b.path().join("x.txt"), "3").unwrap();
        assert_ne!(
            tree_digest(a.path()).unwrap(),
            tree_digest(b.path()).unwrap()
        );
    }

    #[test]
    fn publish_check_and_detect_corruption() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let work = store.tmp_dir().join("w");
        tree(&work, &[("m.json", "{\"a\":1}"), ("w.bin", "abcdef")]);
        let digest = publish(&store, &work).unwrap();
        assert!(!work.exists());
        assert_eq!(check(&store, &digest).unwrap(), Health::Intact);
        let file = object_file(&store, &digest, "w.bin");
        let mut perms = std::fs::metadata(&file).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&file, perms).unwrap();
        std::fs::write(&file, "abcdeX").unwrap();
        assert_eq!(check(&store, &digest).unwrap(), Health::Corrupt);
        discard(&store, &digest).unwrap();
        assert_eq!(check(&store, &digest).unwrap(), Health::Missing);
    }
}
