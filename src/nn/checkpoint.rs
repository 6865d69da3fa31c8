//! Saving and loading a model's parameters and masks as safetensors.
//!
//! Each parameter is stored as an F32 tensor under its name in PyTorch's
//! shape (`fc1.weight` [300, 784]); a mask, when set, is stored beside it as
//! `<name>_mask` (PyTorch's pruning convention), and each buffer (a batch
//! norm's running statistics) under its own name. The file has no metadata and
//! safetensors orders tensors by name, so identical weights give identical
//! bytes, which the content-addressed store relies on.

use std::collections::BTreeMap;
use std::path::Path;

use dfdx::prelude::*;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use super::config::{InitConfig, InputShape, ModelConfig};
use super::error::{Error, Result};
use super::model::Model;
use super::network::Network;

/// Suffix of the tensor that holds a parameter's mask.
const MASK_SUFFIX: &str = "_mask";

/// Serialises every parameter (and mask) of `model` to safetensors bytes.
pub fn to_bytes<D: Device<f32>, M: Model<D>>(model: &M) -> Result<Vec<u8>> {
    let mut buffers: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for p in model.params() {
        let info = p.info();
        buffers.insert(
            info.name.clone(),
            (info.shape.clone(), le_bytes(&p.values())),
        );
        if let Some(mask) = p.mask() {
            let name = format!("{}{MASK_SUFFIX}", info.name);
            buffers.insert(name, (info.shape.clone(), le_bytes(&mask)));
        }
    }
    for b in model.buffers() {
        let shape = vec![b.values.len()];
        buffers.insert(b.name, (shape, le_bytes(&b.values)));
    }
    let mut views = Vec::with_capacity(buffers.len());
    for (name, (shape, bytes)) in &buffers {
        let view =
            TensorView::new(StDtype::F32, shape.clone(), bytes).map_err(|e| Error::Checkpoint {
                path: "<memory>".into(),
                reason: format!("tensor `{name}`: {e}"),
            })?;
        views.push((name.as_str(), view));
    }
    safetensors::serialize(views, None).map_err(|e| Error::Checkpoint {
        path: "<memory>".into(),
        reason: e.to_string(),
    })
}

/// Writes `model` to `path` (see `to_bytes`).
pub fn save<D: Device<f32>, M: Model<D>>(model: &M, path: &Path) -> Result<()> {
    let bytes = to_bytes(model)?;
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}

/// Builds `config` for `shape` on `dev` and fills it from the file at `path`.
pub fn load<D: Device<f32>>(
    config: &ModelConfig,
    shape: InputShape,
    path: &Path,
    dev: &D,
) -> Result<Network<D>> {
    let mut net = Network::new(config, shape, &InitConfig::default(), 0, dev)?;
    load_into(&mut net, path)?;
    Ok(net)
}

/// Replaces every parameter, mask and buffer of `model` with those in the file at
/// `path`; the file must hold exactly the model's tensors.
pub fn load_into<D: Device<f32>, M: Model<D>>(model: &mut M, path: &Path) -> Result<()> {
    let bytes = read_file(path)?;
    let fail = corrupt(path);
    let file = SafeTensors::deserialize(&bytes).map_err(|e| fail(e.to_string()))?;
    let mut expected = 0;
    for p in model.params_mut() {
        let info = p.info().clone();
        let values = read_f32(&file, &info.name, &info.shape).map_err(&fail)?;
        let mask_name = format!("{}{MASK_SUFFIX}", info.name);
        let mask = match file.tensor(&mask_name) {
            Ok(_) => Some(read_f32(&file, &mask_name, &info.shape).map_err(&fail)?),
            Err(_) => None,
        };
        expected += 1 + usize::from(mask.is_some());
        p.set_mask(None)?;
        p.set_values(&values)?;
        p.set_mask(mask.as_deref())?;
    }
    for b in model.buffers() {
        let values = read_f32(&file, &b.name, &[b.values.len()]).map_err(&fail)?;
        model.set_buffer(&b.name, &values)?;
        expected += 1;
    }
    if file.len() != expected {
        let mut known: Vec<String> = model
            .params()
            .iter()
            .map(|p| p.info().name.clone())
            .collect();
        known.extend(model.buffers().into_iter().map(|b| b.name));
        let extra: Vec<&str> = file
            .names()
            .into_iter()
            .filter(|n| {
                !known
                    .iter()
                    .any(|k| *n == k.as_str() || n.strip_suffix(MASK_SUFFIX) == Some(k.as_str()))
            })
            .collect();
        return Err(fail(format!(
            "tensors the model does not have: {}",
            extra.join(", ")
        )));
    }
    Ok(())
}

/// Every F32 tensor in the file at `path` by name (masks included), for
/// reports that look at weights without rebuilding the model.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, Vec<f32>>> {
    let bytes = read_file(path)?;
    let fail = corrupt(path);
    let file = SafeTensors::deserialize(&bytes).map_err(|e| fail(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() == StDtype::F32 {
            let values = read_f32(&file, &name, view.shape()).map_err(&fail)?;
            out.insert(name, values);
        }
    }
    Ok(out)
}

/// The bytes of the checkpoint file at `path`.
fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}

/// Turns a reason into the error for an unusable checkpoint at `path`.
fn corrupt(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::Checkpoint {
        path: path.into(),
        reason,
    }
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Reads tensor `name`, which must be F32 with the given shape.
fn read_f32(
    file: &SafeTensors,
    name: &str,
    shape: &[usize],
) -> std::result::Result<Vec<f32>, String> {
    let view = file
        .tensor(name)
        .map_err(|_| format!("missing tensor `{name}`"))?;
    if view.dtype() != StDtype::F32 || view.shape() != shape {
        return Err(format!(
            "tensor `{name}` is {:?} {:?}, expected F32 {:?}",
            view.dtype(),
            view.shape(),
            shape
        ));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::train::tests::{adam, blobs, SHAPE};
    use crate::nn::train::train_epoch;

    fn trained(seed: u64) -> Network<Cpu> {
        let config = ModelConfig::Mlp {
            hidden: vec![16, 8],
        };
        let mut net = Network::new(
            &config,
            SHAPE,
            &InitConfig::default(),
            seed,
            &Cpu::default(),
        )
        .unwrap();
        let (x, y) = blobs(200, 9);
        let mut opt = adam(1e-2);
        train_epoch(&mut net, &mut opt, &x, &y, 32, seed, &mut |_, _| {}).unwrap();
        net
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let a = to_bytes(&trained(3)).unwrap();
        assert_eq!(a, to_bytes(&trained(3)).unwrap());
        assert_ne!(a, to_bytes(&trained(4)).unwrap());
    }

    #[test]
    fn save_and_load_round_trip_with_masks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.safetensors");
        let mut net = trained(1);
        let n = net.param("fc2.weight").unwrap().info().numel();
        let mask: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
        net.param_mut("fc2.weight")
            .unwrap()
            .set_mask(Some(&mask))
            .unwrap();
        save(&net, &path).unwrap();
        let loaded = load(net.config(), SHAPE, &path, &Cpu::default()).unwrap();
        for (a, b) in net.params().iter().zip(loaded.params()) {
            assert_eq!(a.info(), b.info());
            assert_eq!(a.values(), b.values());
            assert_eq!(a.mask(), b.mask());
        }
        assert_eq!(to_bytes(&loaded).unwrap(), std::fs::read(&path).unwrap());

        let other = ModelConfig::Mlp { hidden: vec![16] };
        let err = load(&other, SHAPE, &path, &Cpu::default()).unwrap_err();
        assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
        let missing = load(
            net.config(),
            SHAPE,
            &dir.path().join("nope"),
            &Cpu::default(),
        );
        assert!(matches!(missing, Err(Error::Io { .. })));
    }
}
