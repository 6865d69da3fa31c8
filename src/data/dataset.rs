//! The in-memory [`Dataset`], its parameters, and its on-disk form.
//!
//! [`prepare`] turns [`DatasetParams`] into a `Dataset`: it resolves and reads
//! a registry dataset (or generates the synthetic one), then applies the
//! validation hold-out and the limits (see [`DatasetParams`] for the exact
//! rules). [`Dataset::save`] writes the result as uncompressed IDX files plus
//! a `meta.json`, byte-for-byte determined by the data, which is what the
//! store keeps as a dataset stage's output; [`Dataset::load`] reads it back.
//! [`Dataset::to_f32`] produces normalised features for training.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cifar;
use super::registry::{DatasetInfo, DatasetName, Layout};
use super::resolve::{self, Form, Resolved};
use super::{idx, synthetic, tar, Error, Result};

/// Images and labels of one split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// N×C×H×W bytes, row-major.
    pub images: Vec<u8>,
    /// N labels.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples at `indices`, in that order; `example_len` is C·H·W.
    fn select(&self, indices: &[usize], example_len: usize) -> Split {
        let mut images = Vec::with_capacity(indices.len() * example_len);
        for &i in indices {
            images.extend_from_slice(&self.images[i * example_len..(i + 1) * example_len]);
        }
        Split {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Keeps the first `n` examples (all of them when there are fewer).
    fn truncate(&mut self, n: usize, example_len: usize) {
        self.labels.truncate(n);
        self.images.truncate(n * example_len);
    }
}

/// A prepared image-classification dataset, held in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The dataset's name (`mnist`, `synthetic`, ...).
    pub name: String,
    /// Image channels.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes; every label is below it.
    pub classes: usize,
    /// Per-channel mean of pixels in [0, 1] (the dataset's conventional value).
    pub mean: Vec<f32>,
    /// Per-channel std of pixels in [0, 1].
    pub std: Vec<f32>,
    /// Training examples.
    pub train: Split,
    /// Examples held out of the training set, when asked for.
    pub validation: Option<Split>,
    /// Test examples.
    pub test: Split,
}

/// Parameters of a `dataset` stage.
///
/// Rules, applied in this order by [`prepare`]:
/// 1. `validation` examples are drawn from the full training set by a
///    shuffle seeded with the stage's seed and kept in their original order;
///    the rest stay the training set, also in original order.
/// 2. `train_limit` keeps the first N of the remaining training examples.
/// 3. `test_limit` keeps the first N test examples.
///
/// So a smoke profile can lower `train_limit` without changing the validation set.
/// `train_size`/`test_size` only apply to `synthetic`, which is generated at
/// that size before the rules above.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetParams {
    /// Which dataset (default `mnist`).
    pub name: DatasetName,
    /// A folder to look in before the standard places.
    pub path: Option<PathBuf>,
    /// Keep only the first N training examples (after the validation hold-out).
    pub train_limit: Option<usize>,
    /// Keep only the first N test examples.
    pub test_limit: Option<usize>,
    /// Number of training examples held out as a validation split (0: none).
    pub validation: usize,
    /// Training examples generated for `synthetic`.
    pub train_size: usize,
    /// Test examples generated for `synthetic`.
    pub test_size: usize,
}

impl Default for DatasetParams {
    fn default() -> Self {
        DatasetParams {
            name: DatasetName::default(),
            path: None,
            train_limit: None,
            test_limit: None,
            validation: 0,
            train_size: 6000,
            test_size: 1000,
        }
    }
}

/// Builds the dataset that `params` describe; `seed` drives the validation
/// hold-out and the synthetic generator.
pub fn prepare(params: &DatasetParams, seed: u64) -> Result<Dataset> {
    let raw = match params.name.info() {
        None => synthetic::generate(seed, params.train_size, params.test_size),
        Some(info) => load_resolved(&resolve::resolve(info, params.path.as_deref())?)?,
    };
    apply(raw, params, seed)
}

/// Applies the validation hold-out and limits of `params` (see [`DatasetParams`]).
pub fn apply(mut ds: Dataset, params: &DatasetParams, seed: u64) -> Result<Dataset> {
    let example_len = ds.example_len();
    let n = ds.train.len();
    if params.validation > 0 {
        if params.validation >= n {
            return Err(Error::Params(format!(
                "validation = {} but `{}` has only {n} training examples; hold out fewer",
                params.validation, ds.name
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut held = order[..params.validation].to_vec();
        let mut kept = order[params.validation..].to_vec();
        held.sort_unstable();
        kept.sort_unstable();
        ds.validation = Some(ds.train.select(&held, example_len));
        ds.train = ds.train.select(&kept, example_len);
    }
    if let Some(limit) = params.train_limit {
        ds.train.truncate(limit, example_len);
    }
    if let Some(limit) = params.test_limit {
        ds.test.truncate(limit, example_len);
    }
    Ok(ds)
}

/// Reads a resolved registry dataset in full.
pub fn load_resolved(resolved: &Resolved) -> Result<Dataset> {
    let info = resolved.info;
    let (train, test) = match (&info.layout, resolved.form) {
        (Layout::Idx { .. }, Form::Idx) => match resolved.files.as_slice() {
            [tri, trl, tei, tel] => {
                let (train, test) = rayon::join(
                    || read_idx_split(info, tri, trl),
                    || read_idx_split(info, tei, tel),
                );
                (train?, test?)
            }
            _ => return Err(resolved.layout_mismatch()),
        },
        (Layout::Cifar { variant, train, .. }, Form::CifarFiles) => {
            let (train_paths, test_paths) = resolved
                .files
                .split_at(train.len().min(resolved.files.len()));
            let read_all = |paths: &[PathBuf]| -> Result<Split> {
                let parts: Vec<Split> = paths
                    .par_iter()
                    .map(|p| cifar::read(p, *variant))
                    .collect::<Result<_>>()?;
                Ok(concat(parts))
            };
            (read_all(train_paths)?, read_all(test_paths)?)
        }
        (
            Layout::Cifar {
                variant,
                train,
                test,
                ..
            },
            Form::CifarArchive,
        ) => {
            let archive = resolved
                .files
                .first()
                .ok_or_else(|| resolved.layout_mismatch())?;
            let names: Vec<&str> = train.iter().chain(test.iter()).map(|f| f.name).collect();
            let members = tar::read_members(archive, &names)?;
            let parse =
                |bytes: &[u8], name: &str| cifar::parse(bytes, *variant, &archive.join(name));
            let splits: Vec<Split> = members
                .par_iter()
                .zip(names.par_iter())
                .map(|(bytes, name)| parse(bytes, name))
                .collect::<Result<_>>()?;
            let mut splits = splits.into_iter();
            let train_split = concat(splits.by_ref().take(train.len()).collect());
            (train_split, concat(splits.collect()))
        }
        _ => return Err(resolved.layout_mismatch()),
    };
    Ok(Dataset {
        name: info.name.to_string(),
        channels: info.channels,
        height: info.height,
        width: info.width,
        classes: info.classes,
        mean: info.mean.to_vec(),
        std: info.std.to_vec(),
        train,
        validation: None,
        test,
    })
}

fn concat(parts: Vec<Split>) -> Split {
    let mut out = Split::default();
    for p in parts {
        out.images.extend_from_slice(&p.images);
        out.labels.extend_from_slice(&p.labels);
    }
    out
}

/// Reads an IDX image file and its label file, checking shapes against the registry.
fn read_idx_split(info: &DatasetInfo, images: &Path, labels: &Path) -> Result<Split> {
    let (img, lab) = rayon::join(|| idx::read(images), || idx::read(labels));
    let (img, lab) = (img?, lab?);
    img.expect_rank(3, images)?;
    lab.expect_rank(1, labels)?;
    if img.dims[1..] != [info.height, info.width] {
        return Err(Error::format(
            images,
            "IDX",
            format!(
                "images are {}×{}, `{}` has {}×{}",
                img.dims[1], img.dims[2], info.name, info.height, info.width
            ),
        ));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(Error::format(
            labels,
            "IDX",
            format!(
                "{} labels for the {} images of {}",
                lab.dims[0],
                img.dims[0],
                images.display()
            ),
        ));
    }
    check_labels(&lab.data, info.classes, labels)?;
    Ok(Split {
        images: img.data,
        labels: lab.data,
    })
}

fn check_labels(labels: &[u8], classes: usize, path: &Path) -> Result<()> {
    match labels.iter().position(|&l| usize::from(l) >= classes) {
        None => Ok(()),
        Some(i) => Err(Error::format(
            path,
            "IDX",
            format!("label {} at index {i} is not below {classes}", labels[i]),
        )),
    }
}

/// The `meta.json` of a saved dataset.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format: u32,
    name: String,
    channels: usize,
    height: usize,
    width: usize,
    classes: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    train: usize,
    validation: Option<usize>,
    test: usize,
}

/// Version of the saved layout; bump when the files change meaning.
const SAVE_FORMAT: u32 = 1;
const META: &str = "meta.json";

fn split_files(split: &str) -> (String, String) {
    (format!("{split}-images.idx"), format!("{split}-labels.idx"))
}

impl Dataset {
    /// Bytes per example: C·H·W.
    pub fn example_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The splits present, with their names as used in saved files.
    fn named_splits(&self) -> Vec<(&'static str, &Split)> {
        let mut out = vec![("train", &self.train)];
        if let Some(v) = &self.validation {
            out.push(("validation", v));
        }
        out.push(("test", &self.test));
        out
    }

    /// Writes the dataset into `dir` (created if needed): `meta.json` and, per
    /// split, `<split>-images.idx` (N×C×H×W) and `<split>-labels.idx`.
    /// The bytes depend only on the data, so equal datasets hash equal.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
        let dims = [self.channels, self.height, self.width];
        for (name, split) in self.named_splits() {
            let (images, labels) = split_files(name);
            idx::write(
                &dir.join(images),
                &[split.len(), dims[0], dims[1], dims[2]],
                &split.images,
            )?;
            idx::write(&dir.join(labels), &[split.len()], &split.labels)?;
        }
        let meta = Meta {
            format: SAVE_FORMAT,
            name: self.name.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes,
            mean: self.mean.clone(),
            std: self.std.clone(),
            train: self.train.len(),
            validation: self.validation.as_ref().map(Split::len),
            test: self.test.len(),
        };
        let path = dir.join(META);
        let mut json = serde_json::to_string_pretty(&meta)
            .map_err(|e| Error::format(&path, "JSON", e.to_string()))?;
        json.push('\n');
        std::fs::write(&path, json).map_err(|e| Error::io("write", &path, e))
    }

    /// Reads a dataset written by [`save`](Self::save), checking every file
    /// against `meta.json`.
    pub fn load(dir: &Path) -> Result<Dataset> {
        let meta_path = dir.join(META);
        let text =
            std::fs::read_to_string(&meta_path).map_err(|e| Error::io("read", &meta_path, e))?;
        let meta: Meta = serde_json::from_str(&text)
            .map_err(|e| Error::format(&meta_path, "dataset meta.json", e.to_string()))?;
        if meta.format != SAVE_FORMAT {
            return Err(Error::format(
                &meta_path,
                "dataset meta.json",
                format!(
                    "format {} is not {SAVE_FORMAT}; prepare the dataset again",
                    meta.format
                ),
            ));
        }
        if meta.mean.len() != meta.channels || meta.std.len() != meta.channels {
            return Err(Error::format(
                &meta_path,
                "dataset meta.json",
                "mean and std need one value per channel",
            ));
        }
        let shape = [meta.channels, meta.height, meta.width];
        let read_split = |name: &str, count: usize| -> Result<Split> {
            let (images, labels) = split_files(name);
            let (ip, lp) = (dir.join(images), dir.join(labels));
            let img = idx::read(&ip)?;
            let lab = idx::read(&lp)?;
            if img.dims != [count, shape[0], shape[1], shape[2]] {
                return Err(Error::format(
                    &ip,
                    "IDX",
                    format!(
                        "dimensions {:?}, meta.json says [{count}, {shape:?}]",
                        img.dims
                    ),
                ));
            }
            if lab.dims != [count] {
                return Err(Error::format(
                    &lp,
                    "IDX",
                    format!("dimensions {:?}, meta.json says [{count}]", lab.dims),
                ));
            }
            check_labels(&lab.data, meta.classes, &lp)?;
            Ok(Split {
                images: img.data,
                labels: lab.data,
            })
        };
        let validation = meta
            .validation
            .map(|n| read_split("validation", n))
            .transpose()?;
        Ok(Dataset {
            train: read_split("train", meta.train)?,
            test: read_split("test", meta.test)?,
            validation,
            name: meta.name,
            channels: meta.channels,
            height: meta.height,
            width: meta.width,
            classes: meta.classes,
            mean: meta.mean,
            std: meta.std,
        })
    }

    /// Converts `split` to `f32` features `(x/255 - mean[c]) / std[c]`, laid
    /// out like the bytes (N×C×H×W). `mean`/`std` have one value per channel,
    /// or a single value for all channels; pass `&[0.0]`, `&[1.0]` for [0, 1] pixels.
    pub fn to_f32(&self, split: &Split, mean: &[f32], std: &[f32]) -> Result<Vec<f32>> {
        let c = self.channels;
        let per_channel = |v: &[f32], what: &str| -> Result<Vec<f32>> {
            match v.len() {
                1 => Ok(vec![v[0]; c]),
                n if n == c => Ok(v.to_vec()),
                n => Err(Error::Params(format!(
                    "normalisation {what} has {n} values; `{}` has {c} channels (give 1 or {c})",
                    self.name
                ))),
            }
        };
        let (mean, std) = (per_channel(mean, "mean")?, per_channel(std, "std")?);
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::Params(format!(
                "normalisation std {s} must be positive"
            )));
        }
        let luts: Vec<[f32; 256]> = mean
            .iter()
            .zip(&std)
            .map(|(m, s)| std::array::from_fn(|v| (v as f32 / 255.0 - m) / s))
            .collect();
        if split.images.len() != split.len() * self.example_len() {
            return Err(Error::Params(format!(
                "split has {} image bytes for {} examples of {} bytes",
                split.images.len(),
                split.len(),
                self.example_len()
            )));
        }
        let plane = self.height * self.width;
        let mut out = vec![0f32; split.images.len()];
        if out.is_empty() {
            return Ok(out);
        }
        out.par_chunks_mut(plane)
            .zip(split.images.par_chunks(plane))
            .enumerate()
            .for_each(|(i, (dst, src))| {
                let lut = &luts[i % c];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = lut[usize::from(s)];
                }
            });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn toy(n_train: usize, n_test: usize) -> Dataset {
        let make = |n: usize, offset: usize| Split {
            images: (0..n * 2 * 2 * 2)
                .map(|i| ((i + offset) % 256) as u8)
                .collect(),
            labels: (0..n).map(|i| ((i + offset) % 3) as u8).collect(),
        };
        Dataset {
            name: "toy".into(),
            channels: 2,
            height: 2,
            width: 2,
            classes: 3,
            mean: vec![0.5, 0.25],
            std: vec![0.5, 0.125],
            train: make(n_train, 0),
            validation: None,
            test: make(n_test, 7),
        }
    }

    /// Each example's first byte identifies it in `toy` (index·8 mod 256).
    fn ids(split: &Split) -> Vec<u8> {
        split.images.chunks(8).map(|c| c[0]).collect()
    }

    #[test]
    fn params_defaults_round_trip_and_reject_unknown_keys() {
        let p: DatasetParams =
            serde_json::from_str(r#"{"name":"fashion-mnist","validation":5000}"#).unwrap();
        assert_eq!(p.name, DatasetName::FashionMnist);
        assert_eq!(p.validation, 5000);
        assert_eq!(p.train_size, 6000);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<DatasetParams>(&json).unwrap(), p);
        let full = DatasetParams {
            name: DatasetName::Cifar100,
            path: Some("/x/y".into()),
            train_limit: Some(10),
            test_limit: Some(3),
            ..DatasetParams::default()
        };
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<DatasetParams>(&json).unwrap(), full);
        assert!(serde_json::from_str::<DatasetParams>(r#"{"nmae":"mnist"}"#).is_err());
        assert!(serde_json::from_str::<DatasetParams>(r#"{"name":"mnist2"}"#).is_err());
    }

    #[test]
    fn validation_is_seeded_disjoint_and_limits_keep_the_first_examples() {
        let params = DatasetParams {
            validation: 10,
            train_limit: Some(20),
            test_limit: Some(4),
            ..DatasetParams::default()
        };
        let a = apply(toy(32, 9), &params, 1).unwrap();
        let b = apply(toy(32, 9), &params, 1).unwrap();
        let c = apply(toy(32, 9), &params, 2).unwrap();
        assert_eq!(a, b);
        let val = a.validation.as_ref().unwrap();
        assert_ne!(Some(val), c.validation.as_ref());
        assert_eq!(val.len(), 10);
        assert_eq!(val.images.len(), 10 * 8);
        assert_eq!(a.train.len(), 20);
        assert_eq!(a.test.len(), 4);
        assert_eq!(a.test, {
            let mut t = toy(32, 9).test;
            t.truncate(4, 8);
            t
        });
        // Each example has a unique id; the two splits share none.
        let (v, t): (BTreeSet<u8>, BTreeSet<u8>) = (
            ids(val).into_iter().collect(),
            ids(&a.train).into_iter().collect(),
        );
        assert!(v.is_disjoint(&t));
        // Without a limit, validation ∪ train is the whole training set.
        let whole = apply(
            toy(32, 9),
            &DatasetParams {
                validation: 10,
                ..Default::default()
            },
            1,
        )
        .unwrap();
        let mut all: Vec<u8> = ids(whole.validation.as_ref().unwrap());
        all.extend(ids(&whole.train));
        all.sort_unstable();
        assert_eq!(all, ids(&toy(32, 9).train));
        // The validation set does not depend on train_limit.
        assert_eq!(whole.validation, a.validation);
        // Labels follow their images.
        for (img, &lab) in a.train.images.chunks(8).zip(&a.train.labels) {
            assert_eq!(usize::from(lab), (usize::from(img[0]) / 8) % 3);
        }
        let too_many = DatasetParams {
            validation: 32,
            ..Default::default()
        };
        assert!(matches!(
            apply(toy(32, 9), &too_many, 0),
            Err(Error::Params(_))
        ));
    }

    #[test]
    fn save_load_round_trip_is_byte_identical() {
        let ds = apply(
            toy(40, 9),
            &DatasetParams {
                validation: 5,
                ..Default::default()
            },
            3,
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        ds.save(&a).unwrap();
        let back = Dataset::load(&a).unwrap();
        assert_eq!(back, ds);
        back.save(&b).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names.len(), 7);
        for n in names {
            assert_eq!(
                std::fs::read(a.join(&n)).unwrap(),
                std::fs::read(b.join(&n)).unwrap()
            );
        }
        // Without validation there is no validation file, and load agrees.
        let plain = toy(4, 2);
        let c = tmp.path().join("c");
        plain.save(&c).unwrap();
        assert!(!c.join("validation-images.idx").exists());
        assert_eq!(Dataset::load(&c).unwrap(), plain);
    }

    #[test]
    fn load_rejects_inconsistent_folders_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        toy(4, 2).save(tmp.path()).unwrap();
        let meta = tmp.path().join("meta.json");
        let text = std::fs::read_to_string(&meta).unwrap();
        std::fs::write(&meta, text.replace("\"train\": 4", "\"train\": 5")).unwrap();
        let msg = Dataset::load(tmp.path()).unwrap_err().to_string();
        assert!(msg.contains("train-images.idx"), "{msg}");
        std::fs::write(&meta, "{").unwrap();
        assert!(Dataset::load(tmp.path())
            .unwrap_err()
            .to_string()
            .contains("meta.json"));
    }

    #[test]
    fn to_f32_normalises_per_channel() {
        let ds = toy(3, 1);
        let f = ds.to_f32(&ds.train, &ds.mean, &ds.std).unwrap();
        assert_eq!(f.len(), ds.train.images.len());
        for (i, (&x, &b)) in f.iter().zip(&ds.train.images).enumerate() {
            let c = (i / 4) % 2;
            let want = (f32::from(b) / 255.0 - ds.mean[c]) / ds.std[c];
            assert!((x - want).abs() < 1e-6);
        }
        let raw = ds.to_f32(&ds.train, &[0.0], &[1.0]).unwrap();
        assert_eq!(raw[1], 1.0 / 255.0);
        assert!(ds.to_f32(&ds.train, &[0.0; 3], &[1.0]).is_err());
        assert!(ds.to_f32(&ds.train, &[0.0], &[0.0]).is_err());
    }

    #[test]
    fn synthetic_prepare_applies_limits() {
        let p = DatasetParams {
            name: DatasetName::Synthetic,
            train_size: 300,
            test_size: 50,
            train_limit: Some(100),
            validation: 20,
            ..Default::default()
        };
        let ds = prepare(&p, 5).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (100, 50));
        assert_eq!(ds.validation.map(|v| v.len()), Some(20));
    }

    /// Writes a tiny fake registry dataset in each on-disk form and reads it.
    #[test]
    fn loads_idx_and_cifar_forms_from_disk() {
        use super::super::resolve::{resolve_in, SearchDir};
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        let at = |dir: &Path| {
            [SearchDir {
                dir: dir.to_owned(),
                origin: "test".into(),
            }]
        };

        // MNIST-shaped IDX: images gzip, labels plain.
        let mnist = DatasetName::Mnist.info().unwrap();
        let d = tmp.path().join("mnist");
        std::fs::create_dir_all(&d).unwrap();
        for (prefix, n) in [("train", 3usize), ("t10k", 2)] {
            let bytes = idx::encode(&[n, 28, 28], &vec![9u8; n * 784], Path::new("x")).unwrap();
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&bytes).unwrap();
            std::fs::write(
                d.join(format!("{prefix}-images-idx3-ubyte.gz")),
                enc.finish().unwrap(),
            )
            .unwrap();
            idx::write(
                &d.join(format!("{prefix}-labels-idx1-ubyte")),
                &[n],
                &vec![4u8; n],
            )
            .unwrap();
        }
        let ds = load_resolved(&resolve_in(mnist, &at(&d)).unwrap()).unwrap();
        assert_eq!((ds.train.len(), ds.test.len(), ds.classes), (3, 2, 10));
        assert_eq!(ds.mean, vec![0.1307]);
        // A label count that does not match the images is an error naming the label file.
        idx::write(&d.join("t10k-labels-idx1-ubyte"), &[3], &[1, 2, 3]).unwrap();
        let msg = load_resolved(&resolve_in(mnist, &at(&d)).unwrap())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");

        // CIFAR-10: unpacked batches, then the same as a tar.gz.
        let c10 = DatasetName::Cifar10.info().unwrap();
        let d = tmp.path().join("cifar10");
        let inner = d.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&inner).unwrap();
        let names = [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ];
        let mut members = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let mut rec = vec![i as u8];
            rec.extend(std::iter::repeat_n(i as u8, cifar::IMAGE_BYTES));
            std::fs::write(inner.join(n), &rec).unwrap();
            members.push((format!("cifar-10-batches-bin/{n}"), rec));
        }
        let unpacked = load_resolved(&resolve_in(c10, &at(&d)).unwrap()).unwrap();
        assert_eq!(unpacked.train.labels, vec![0, 1, 2, 3, 4]);
        assert_eq!(unpacked.test.labels, vec![5]);
        let refs: Vec<(&str, &[u8])> = members
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        tar::tests::write_tar_gz(&d.join("cifar-10-binary.tar.gz"), &refs);
        let resolved = resolve_in(c10, &at(&d)).unwrap();
        assert_eq!(resolved.form, Form::CifarArchive);
        assert_eq!(load_resolved(&resolved).unwrap(), unpacked);
    }
}

/// Reads the real Fashion-MNIST that Debian's `dataset-fashion-mnist` installs,
/// when present (CI installs it), and checks shapes and the registry's mean/std.
#[cfg(test)]
mod debian_tests {
    use super::*;

    #[test]
    fn debian_fashion_mnist_loads_and_matches_registry_statistics() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.join("train-images-idx3-ubyte.gz").exists() {
            println!(
                "SKIP: {} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)",
                dir.display()
            );
            return;
        }
        let params = DatasetParams {
            name: DatasetName::FashionMnist,
            path: Some(dir.to_owned()),
            validation: 5000,
            test_limit: Some(1000),
            ..DatasetParams::default()
        };
        let ds = prepare(&params, 0).unwrap();
        assert_eq!((ds.train.len(), ds.test.len()), (55_000, 1000));
        assert_eq!(ds.validation.as_ref().map(Split::len), Some(5000));
        let all = prepare(
            &DatasetParams {
                name: DatasetName::FashionMnist,
                path: Some(dir.to_owned()),
                ..DatasetParams::default()
            },
            0,
        )
        .unwrap();
        let f = all.to_f32(&all.train, &[0.0], &[1.0]).unwrap();
        let n = f.len() as f64;
        let mean = f.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = f
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((mean - f64::from(all.mean[0])).abs() < 5e-4, "mean {mean}");
        assert!(
            (var.sqrt() - f64::from(all.std[0])).abs() < 5e-4,
            "std {}",
            var.sqrt()
        );
    }
}
