//! Cached sha256 of external files (dataset sources), keyed by path, size and mtime.
//!
//! Hashing 30 MB of IDX files on every `repro plan` would make a no-op rerun slow, so
//! a file whose size and mtime are unchanged since it was last hashed keeps its digest.
//! The digest, never the mtime, is what enters a stage key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::canonical::sha256_file;
use super::object::FileStamp;
use super::{io_err, read_json, write_atomic, Result, Store};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: FileStamp,
    sha256: String,
}

/// A digest cache loaded from `files.json`; saved back with [`FileDigests::save`].
#[derive(Debug, Default)]
pub struct FileDigests {
    entries: Mutex<BTreeMap<String, Entry>>,
    dirty: Mutex<bool>,
}

impl FileDigests {
    /// Loads the cache of a store (empty if there is none or it is unreadable).
    pub fn load(store: &Store) -> FileDigests {
        let entries = read_json(&store.root().join("files.json"))
            .ok()
            .flatten()
            .unwrap_or_default();
        FileDigests {
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    /// The sha256 of a file, from the cache when its size and mtime are unchanged.
    pub fn digest(&self, path: &Path) -> Result<String> {
        let abs = std::fs::canonicalize(path).map_err(io_err("resolve", path))?;
        let name = abs.to_string_lossy().into_owned();
        let stamp = FileStamp::of(&abs).map_err(io_err("stat", &abs))?;
        if let Some(e) = self.entries.lock().expect("not poisoned").get(&name) {
            if e.stamp == stamp {
                return Ok(e.sha256.clone());
            }
        }
        let sha256 = sha256_file(&abs).map_err(io_err("hash", &abs))?;
        self.entries.lock().expect("not poisoned").insert(
            name,
            Entry {
                stamp,
                sha256: sha256.clone(),
            },
        );
        *self.dirty.lock().expect("not poisoned") = true;
        Ok(sha256)
    }

    /// Writes the cache back if anything was hashed.
    pub fn save(&self, store: &Store) -> Result<()> {
        if !*self.dirty.lock().expect("not poisoned") {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&*self.entries.lock().expect("not poisoned"))
            .expect("file digests serialize");
        write_atomic(store, &store.root().join("files.json"), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rehashes_only_when_the_file_changes() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(&root.path().join("s")).unwrap();
        let file = root.path().join("f.bin");
        std::fs::write(&file, b"abc").unwrap();
        let cache = FileDigests::load(&store);
        let d1 = cache.digest(&file).unwrap();
        cache.save(&store).unwrap();
        let cache = FileDigests::load(&store);
        assert_eq!(cache.digest(&file).unwrap(), d1);
        std::fs::write(&file, b"abcd").unwrap();
        assert_ne!(cache.digest(&file).unwrap(), d1);
    }
}
