//! The store: an on-disk, content-addressed home for every stage's outputs.
//!
//! Layout under the store root (default `./artifacts`):
//! - `objects/<digest>/…`: immutable output trees, named by their [`object::tree_digest`];
//! - `stamps/<digest>.json`: size and mtime of each file of an object at publish time,
//!   so a cheap check can tell an untouched object from one that needs rehashing;
//! - `stages/<key>.json`: a [`record::StageRecord`] mapping a stage key to its object and manifest;
//! - `refs/<pipeline>/<stage>.json`: the key fields of the last run of a named stage,
//!   used only to explain why a stage is stale;
//! - `tmp/`: work in progress; everything is published from here by rename (`tmp/scratch/`
//!   keeps resumable stages' checkpoints, `tmp/slurm/` Slurm jobs' folders);
//! - `files.json`: cached sha256 of external files (datasets) by path, size and mtime;
//! - `lock`: held by the one process allowed to publish.
//!
//! [`remote`] copies results between two stores. The store never runs stages and never
//! prints.

pub mod canonical;
pub mod filecache;
pub mod gc;
pub mod key;
pub mod lock;
pub mod object;
pub mod record;
pub mod remote;
pub mod remote_names;

use std::path::{Path, PathBuf};

/// Errors of the store; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the store could not be parsed.
    #[error("corrupt store file {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Another live process holds the store lock.
    #[error("the store {root} is locked by another repro process ({holder}); wait for it to finish, or pass --wait SECONDS")]
    Locked {
        /// The store root.
        root: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// A stage record refers to something that is not there.
    #[error("{0}")]
    Missing(String),
}

/// Result type of the store.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps an I/O error with the operation and path it concerns.
pub fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A store rooted at a folder; cheap to clone, creates its folders on open.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        for sub in ["objects", "stamps", "stages", "refs", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Folder of the object with this digest.
    pub fn object_dir(&self, digest: &str) -> PathBuf {
        self.root.join("objects").join(digest)
    }

    /// File holding the publish-time stamp of an object.
    pub fn stamp_path(&self, digest: &str) -> PathBuf {
        self.root.join("stamps").join(format!("{digest}.json"))
    }

    /// File holding the record of a stage key.
    pub fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("stages").join(format!("{key}.json"))
    }

    /// File holding the last key fields of a named stage of a pipeline.
    pub fn ref_path(&self, pipeline: &str, stage: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(sanitize(pipeline))
            .join(format!("{}.json", sanitize(stage)))
    }

    /// The temporary area; everything is written here first.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A per-key scratch folder that survives an interrupted run (for resumable stages).
    pub fn scratch_dir(&self, key: &str) -> PathBuf {
        self.tmp_dir().join(SCRATCH).join(key)
    }

    /// The folder of Slurm jobs' folders (`tmp/slurm/<key>/`): they outlive the run
    /// that submitted them, so that a restarted run finds its jobs again.
    pub fn jobs_dir(&self) -> PathBuf {
        self.tmp_dir().join(JOBS)
    }

    /// Removes what interrupted runs left in `tmp/`, but never the resumable scratch
    /// folders nor the Slurm jobs' folders (a job may still be running). Taking the lock
    /// as an argument proves that no live run owns anything there.
    pub fn clean_tmp(&self, _held: &lock::StoreLock) {
        let Ok(entries) = std::fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name() == SCRATCH || entry.file_name() == JOBS {
                continue;
            }
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// The folder of `tmp/` that holds resumable stages' checkpoints.
const SCRATCH: &str = "scratch";

/// The folder of `tmp/` that holds Slurm jobs' folders.
const JOBS: &str = "slurm";

/// Makes a stage or pipeline name safe as a file name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '\0' => '_',
            c => c,
        })
        .collect()
}

/// Writes `bytes` to `path` atomically: a temp file in the store's tmp folder, then rename.
pub fn write_atomic(store: &Store, path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    let tmp = tempfile::NamedTempFile::new_in(store.tmp_dir())
        .map_err(io_err("create temp in", &store.tmp_dir()))?;
    std::fs::write(tmp.path(), bytes).map_err(io_err("write", tmp.path()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        op: "publish",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Reads and parses a JSON file of the store; `Ok(None)` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}
