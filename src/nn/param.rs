//! One learnable tensor of a network and its optional pruning mask.
//!
//! `Param` keeps the invariant the pruning experiments rely on: wherever the
//! mask is 0 the weight is exactly 0.0. The forward pass uses W ⊙ M, so masked
//! entries get zero gradient; setting a mask or new values zeroes the masked
//! entries, and the optimizer re-applies the mask after every update so that
//! no optimizer state can revive them. Values cross to the host as `Vec<f32>`
//! (row-major, PyTorch layout) for the pruning stage.
//!
//! A `Param` also keeps a host copy of its values once asked for one: the
//! CPU matrix products read it, and the host optimizers update it in place,
//! so no step copies a weight matrix off its tensor. The update reaches the
//! tensor when something reads the tensor's values (`effective`), not
//! before: ops that read the host copy and use the tensor only to route the
//! gradient (`on_tape`) never pay for that upload.
//!
//! On the CPU, a weight whose mask keeps less than `SPARSE_BELOW` of its
//! entries is sparse: it stores only its kept values (row-major order, as
//! its mask's `SparseLayout` lists them), so its gradient and optimizer
//! state have one entry per kept weight too, and a step costs what the kept
//! weights cost. `values` and `effective` still give every entry.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::cpu::{self, on_cpu, SparseLayout};
use super::error::{Error, Result};

/// What a parameter is, which decides whether pruning may touch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// Weight matrix of a hidden fully connected layer, shape [out, in].
    FcWeight,
    /// Kernel of a convolution, shape [out, in, k, k].
    ConvWeight,
    /// Weight matrix of the output layer, shape [classes, in].
    OutputWeight,
    /// Bias vector of any layer, shape [out].
    Bias,
    /// Dendritic segment weights, shape [units · segments, context].
    DendriteWeight,
    /// Scale γ or shift β of a normalization layer, shape [features]; a
    /// binarized network's per-task state, never pruned or masked.
    Norm,
}

impl ParamKind {
    /// Whether this parameter may carry a mask (every weight; never a bias
    /// or a normalization parameter).
    pub fn is_prunable(self) -> bool {
        !matches!(self, ParamKind::Bias | ParamKind::Norm)
    }
}

/// Name, kind and shape of a parameter, e.g. `fc1.weight`, `FcWeight`, `[300, 784]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// Unique name, `<layer>.weight` or `<layer>.bias`.
    pub name: String,
    /// What the parameter is.
    pub kind: ParamKind,
    /// Shape in PyTorch's layout.
    pub shape: Vec<usize>,
}

impl ParamInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A flat tensor of `f32` on device `D`, as parameters and masks are stored.
type Vector<D> = Tensor<(usize,), f32, D>;

/// A learnable tensor (stored flat) with an optional 0/1 mask of the same size.
#[derive(Debug)]
pub struct Param<D: Device<f32>> {
    info: ParamInfo,
    /// The stored values: every entry, or for a sparse parameter (whose
    /// mask has a layout) the kept ones only. Behind a lock so that a
    /// reader with `&self` can upload a pending host update.
    value: Mutex<Stored<D>>,
    mask: Option<Mask<D>>,
    /// The stored values on the host, equal to `value`'s whenever set, and
    /// the newer of the two while `value` is behind; cleared by every
    /// change made to `value` other than through `update_on_host`.
    host: OnceLock<Arc<Vec<f32>>>,
}

/// A parameter's tensor and whether the host copy holds newer values.
#[derive(Debug, Clone)]
struct Stored<D: Device<f32>> {
    tensor: Vector<D>,
    /// `update_on_host` changed the host copy since the last upload.
    behind: bool,
}

impl<D: Device<f32>> Clone for Param<D> {
    fn clone(&self) -> Self {
        Self {
            info: self.info.clone(),
            value: Mutex::new(self.stored().clone()),
            mask: self.mask.clone(),
            host: self.host.clone(),
        }
    }
}

/// A 0/1 mask on the device (for dfdx's element-wise ops) and on the host
/// (read by the CPU fast paths and the host optimizers without a copy per
/// step), with the layout of its kept entries if the parameter is sparse.
#[derive(Debug, Clone)]
struct Mask<D: Device<f32>> {
    device: Tensor<(usize,), f32, D>,
    host: Arc<Vec<f32>>,
    layout: Option<Arc<SparseLayout>>,
}

impl<D: Device<f32>> Param<D> {
    /// A dense parameter holding `values` (which must match `info.shape`).
    pub(crate) fn new(info: ParamInfo, values: Vec<f32>, dev: &D) -> Self {
        debug_assert_eq!(values.len(), info.numel());
        let n = values.len();
        Self {
            info,
            value: Mutex::new(Stored {
                tensor: dev.tensor_from_vec(values, (n,)),
                behind: false,
            }),
            mask: None,
            host: OnceLock::new(),
        }
    }

    /// Name, kind and shape.
    pub fn info(&self) -> &ParamInfo {
        &self.info
    }

    /// Current values, row-major, every entry.
    pub fn values(&self) -> Vec<f32> {
        match self.sparse_layout() {
            Some(layout) => layout.expand(&self.host_values()),
            None => self.host_values().to_vec(),
        }
    }

    /// Replaces the values; entries under a 0 in the mask are stored as 0.0.
    pub fn set_values(&mut self, values: &[f32]) -> Result<()> {
        self.check_len(values.len())?;
        let stored = match &self.mask {
            Some(Mask {
                layout: Some(layout),
                ..
            }) => layout.gather(values),
            Some(mask) => values
                .iter()
                .zip(mask.host.iter())
                .map(|(&v, &m)| if m == 0.0 { 0.0 } else { v })
                .collect(),
            None => values.to_vec(),
        };
        self.store(stored);
        Ok(())
    }

    /// Makes `stored` the stored values.
    fn store(&mut self, stored: Vec<f32>) {
        let n = stored.len();
        let tensor = self.device().tensor_from_vec(stored, (n,));
        *self.stored_mut() = Stored {
            tensor,
            behind: false,
        };
        self.host = OnceLock::new();
    }

    /// The mask, or `None` while the parameter is dense.
    pub fn mask(&self) -> Option<Vec<f32>> {
        self.mask.as_ref().map(|m| m.host.to_vec())
    }

    /// Sets (or with `None` removes) the mask. Every entry must be 0.0 or 1.0;
    /// weights under a 0 become exactly 0.0 now and stay so while training.
    /// On the CPU, a mask keeping less than `SPARSE_BELOW` of the entries
    /// makes the parameter sparse.
    pub fn set_mask(&mut self, mask: Option<&[f32]>) -> Result<()> {
        self.set_mask_as(mask, |m| on_cpu::<D>() && SparseLayout::is_sparse(m))
    }

    /// `set_mask`, sparse if `sparse(mask)` says so.
    fn set_mask_as(
        &mut self,
        mask: Option<&[f32]>,
        sparse: impl FnOnce(&[f32]) -> bool,
    ) -> Result<()> {
        let Some(mask) = mask else {
            let dense = self.sparse_layout().map(|_| self.values());
            self.mask = None;
            if let Some(values) = dense {
                self.store(values);
            }
            return Ok(());
        };
        if !self.info.kind.is_prunable() {
            return Err(Error::Mask {
                name: self.info.name.clone(),
                reason: "biases and normalization parameters cannot be masked".into(),
            });
        }
        self.check_len(mask.len())?;
        if let Some(bad) = mask.iter().find(|&&m| m != 0.0 && m != 1.0) {
            return Err(Error::Mask {
                name: self.info.name.clone(),
                reason: format!("entries must be 0 or 1, found {bad}"),
            });
        }
        let n = self.info.numel();
        let dev = self.device();
        let values: Vec<f32> = self
            .values()
            .iter()
            .zip(mask)
            .map(|(&v, &m)| if m == 0.0 { 0.0 } else { v })
            .collect();
        let rows = self.info.shape.first().copied().unwrap_or(1);
        let layout = sparse(mask).then(|| Arc::new(SparseLayout::new(mask, rows)));
        let stored = match &layout {
            Some(layout) => layout.gather(&values),
            None => values,
        };
        self.mask = Some(Mask {
            device: dev.tensor_from_vec(mask.to_vec(), (n,)),
            host: Arc::new(mask.to_vec()),
            layout,
        });
        self.store(stored);
        Ok(())
    }

    /// Where the mask keeps weights, if the parameter is sparse: it then
    /// stores (and has gradients and optimizer state for) those entries
    /// only, in this order, seen as a (shape[0], rest) matrix.
    pub(crate) fn sparse_layout(&self) -> Option<Arc<SparseLayout>> {
        self.mask.as_ref()?.layout.clone()
    }

    /// Makes a masked parameter sparse (`true`) or dense (`false`) whatever
    /// its mask's density, to compare the two paths in tests.
    #[cfg(test)]
    pub(crate) fn force_layout(&mut self, sparse: bool) {
        let mask = self.mask().expect("a masked parameter");
        self.set_mask_as(Some(&mask), |_| sparse)
            .expect("the mask was valid");
    }

    /// This parameter's gradient in `grads`, every entry (0.0 where a sparse
    /// parameter's mask is).
    #[cfg(test)]
    pub(crate) fn gradient(&self, grads: &Gradients<f32, D>) -> Vec<f32> {
        // Not `as_vec`: it panics on a tensor of no entries (no kept weight).
        let g = cpu::to_host(&grads.get(&self.value()));
        match self.sparse_layout() {
            Some(layout) => layout.expand(&g),
            None => g,
        }
    }

    /// The value as used by the forward pass (W ⊙ M when masked, every
    /// entry), on tape `T`.
    ///
    /// Masked entries of the value are exactly ±0.0 at all times, so W ⊙ M has
    /// the bits of W: on the CPU the forward pass uses W as it is and only the
    /// gradient is multiplied by M (in place, after every other contribution).
    /// A sparse parameter's kept values are expanded, their gradients gathered.
    pub(crate) fn effective<T: Tape<f32, D>>(&self) -> Tensor<(usize,), f32, D, T> {
        let value = self.uploaded().retaped::<T>();
        match &self.mask {
            Some(Mask {
                layout: Some(layout),
                ..
            }) => cpu::expand_kept(value, Arc::clone(layout)),
            Some(mask) if on_cpu::<D>() => cpu::mask_gradient(value, Arc::clone(&mask.host)),
            Some(mask) => value * mask.device.clone(),
            None => value,
        }
    }

    /// The stored value (a sparse parameter's kept entries), for optimizers
    /// that update it in place.
    pub(crate) fn value_mut(&mut self) -> &mut Tensor<(usize,), f32, D> {
        self.upload();
        self.host = OnceLock::new();
        &mut self.stored_mut().tensor
    }

    /// The value on tape `T` for a CPU op that reads the values from
    /// `host_values` and uses the tensor only to route the gradient: the
    /// tensor's own values may be behind (a host update not yet uploaded).
    /// A masked parameter's is `effective`, whose gradient the mask shapes.
    pub(crate) fn on_tape<T: Tape<f32, D>>(&self) -> Tensor<(usize,), f32, D, T> {
        match self.mask {
            Some(_) => self.effective(),
            None => self.stored().tensor.retaped(),
        }
    }

    /// The stored values (a sparse parameter's kept entries) on the host,
    /// row-major: the kept copy, made on first use.
    pub(crate) fn host_values(&self) -> Arc<Vec<f32>> {
        Arc::clone(
            self.host
                .get_or_init(|| Arc::new(cpu::to_host(&self.stored().tensor))),
        )
    }

    /// The stored value, for gradient lookup (a sparse parameter's gradient
    /// has one entry per kept weight); its values may be behind the host
    /// copy's, so read them through `values` or `effective`.
    pub(crate) fn value(&self) -> Tensor<(usize,), f32, D> {
        self.stored().tensor.clone()
    }

    /// The device the parameter lives on.
    pub(crate) fn device(&self) -> D {
        self.stored().tensor.device().clone()
    }

    /// Number of stored values (and of gradient and optimizer state entries).
    pub(crate) fn stored_len(&self) -> usize {
        self.stored().tensor.shape().0
    }

    /// The stored tensor, locked (no lock is held across calls, so this
    /// never waits on itself).
    fn stored(&self) -> MutexGuard<'_, Stored<D>> {
        self.value
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored tensor, without locking.
    fn stored_mut(&mut self) -> &mut Stored<D> {
        self.value
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored tensor with a pending host update uploaded.
    fn uploaded(&self) -> Vector<D> {
        let mut stored = self.stored();
        if stored.behind {
            if let Some(host) = self.host.get() {
                stored.tensor.copy_from(host);
            }
            stored.behind = false;
        }
        stored.tensor.clone()
    }

    /// Uploads a pending host update.
    fn upload(&mut self) {
        let host = self.host.get().cloned();
        let stored = self.stored_mut();
        if std::mem::take(&mut stored.behind) {
            if let Some(host) = host {
                stored.tensor.copy_from(&host);
            }
        }
    }

    /// Zeroes the masked entries again after an optimizer update. Without
    /// stale optimizer state they are already +0.0; a weight that stale state
    /// pushed negative becomes -0.0, which compares equal to 0.0. A sparse
    /// parameter stores no masked entry.
    pub(crate) fn reapply_mask(&mut self) {
        if let Some(mask) = self.mask.as_ref().filter(|m| m.layout.is_none()) {
            let masked = self.uploaded() * mask.device.clone();
            self.stored_mut().tensor = masked;
            self.host = OnceLock::new();
        }
    }

    /// Runs an update on the host: `update(value, values, mask)` changes
    /// `values` (the host copy, taken without a copy when nothing else holds
    /// it) and may look up `value`'s gradient; the result is kept as the new
    /// host copy, and reaches the tensor when its values are next read
    /// (`effective`, `value_mut`). For optimizers that update the values and
    /// re-apply the mask in one pass on the host; a sparse parameter, whose
    /// stored values are all kept, gets no mask.
    pub(crate) fn update_on_host<E>(
        &mut self,
        update: impl FnOnce(&Vector<D>, &mut [f32], Option<&[f32]>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let tensor = self.value();
        let mut values = match self.host.take() {
            Some(kept) => Arc::try_unwrap(kept).unwrap_or_else(|shared| shared.to_vec()),
            None => cpu::to_host(&tensor),
        };
        let mask = self.mask.as_ref().filter(|m| m.layout.is_none());
        let result = update(&tensor, &mut values, mask.map(|m| m.host.as_slice()));
        // Whether or not the update finished, the host copy is the newest.
        self.host = OnceLock::from(Arc::new(values));
        self.stored_mut().behind = true;
        result
    }

    fn check_len(&self, got: usize) -> Result<()> {
        if got == self.info.numel() {
            Ok(())
        } else {
            Err(Error::Length {
                name: self.info.name.clone(),
                expected: self.info.numel(),
                got,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weight(dev: &Cpu) -> Param<Cpu> {
        let info = ParamInfo {
            name: "fc1.weight".into(),
            kind: ParamKind::FcWeight,
            shape: vec![2, 2],
        };
        Param::new(info, vec![1.0, 2.0, 3.0, 4.0], dev)
    }

    #[test]
    fn masks_zero_weights_and_reject_bad_input() {
        let dev = Cpu::default();
        let mut p = weight(&dev);
        p.set_mask(Some(&[1.0, 0.0, 0.0, 1.0])).unwrap();
        assert_eq!(p.values(), vec![1.0, 0.0, 0.0, 4.0]);
        p.set_values(&[5.0, 6.0, 7.0, 8.0]).unwrap();
        assert_eq!(p.values(), vec![5.0, 0.0, 0.0, 8.0]);
        assert!(matches!(
            p.set_mask(Some(&[1.0, 0.5, 0.0, 1.0])),
            Err(Error::Mask { .. })
        ));
        assert!(matches!(p.set_values(&[1.0]), Err(Error::Length { .. })));
        p.set_mask(None).unwrap();
        assert_eq!(p.mask(), None);
        let mut bias = Param::new(
            ParamInfo {
                name: "fc1.bias".into(),
                kind: ParamKind::Bias,
                shape: vec![1],
            },
            vec![0.0],
            &dev,
        );
        assert!(bias.set_mask(Some(&[1.0])).is_err());
    }

    #[test]
    fn masked_gradient_is_zero_with_several_consumers_and_values_unchanged() {
        let dev = Cpu::default();
        let mut p = weight(&dev);
        p.set_mask(Some(&[1.0, 0.0, 1.0, 0.0])).unwrap();
        let c: Tensor<(usize,), f32, Cpu> = dev.tensor_from_vec(vec![0.5, -1.5, 2.0, -3.0], (4,));
        // Two uses of the weight on one tape: x·c + x², as a layer used twice.
        let x = p.effective::<OwnedTape<f32, Cpu>>();
        assert_eq!(x.as_vec(), vec![1.0, 0.0, 3.0, 0.0]);
        let y = p.effective::<OwnedTape<f32, Cpu>>();
        let loss = (x * c.clone()).sum::<Rank0, _>() + (y.square()).sum::<Rank0, _>();
        let grads = loss.backward();
        // d/dx = c + 2x where unmasked, 0 where masked.
        assert_eq!(grads.get(&p.value()).as_vec(), vec![2.5, 0.0, 8.0, 0.0]);
    }

    /// A host update reaches the tensor when the tensor's values are read
    /// (`effective`, `value_mut`, `reapply_mask`, a clone's), not through
    /// `on_tape`, whose tensor still routes the gradient to `value`.
    #[test]
    fn host_updates_reach_the_tensor_when_it_is_read() {
        let dev = Cpu::default();
        let bump = |p: &mut Param<Cpu>| {
            p.update_on_host(|_, values, _| {
                values.iter_mut().for_each(|v| *v += 1.0);
                Ok::<(), ()>(())
            })
            .unwrap()
        };
        let tensor = |p: &Param<Cpu>| p.effective::<NoneTape>().as_vec();
        let mut p = weight(&dev);
        bump(&mut p);
        let routed = p.on_tape::<OwnedTape<f32, Cpu>>();
        assert!(p.stored().behind, "on_tape uploads nothing");
        let grads = routed.sum::<Rank0, _>().backward();
        assert_eq!(grads.get(&p.value()).as_vec(), vec![1.0; 4]);
        let copy = p.clone();
        assert_eq!(tensor(&p), vec![2.0, 3.0, 4.0, 5.0]);
        assert!(!p.stored().behind);
        assert_eq!(tensor(&copy), vec![2.0, 3.0, 4.0, 5.0]);
        bump(&mut p);
        assert_eq!(p.value_mut().as_vec(), vec![3.0, 4.0, 5.0, 6.0]);
        p.set_mask(Some(&[1.0, 0.0, 1.0, 1.0])).unwrap();
        bump(&mut p);
        assert_eq!(p.values(), vec![4.0, 1.0, 6.0, 7.0]);
        p.reapply_mask();
        assert_eq!(tensor(&p), vec![4.0, 0.0, 6.0, 7.0]);
        assert_eq!(p.values(), vec![4.0, 0.0, 6.0, 7.0]);
    }

    #[test]
    fn host_copy_follows_every_change_of_the_values() {
        let dev = Cpu::default();
        let mut p = weight(&dev);
        let host = |p: &Param<Cpu>| p.host_values().to_vec();
        assert_eq!(host(&p), p.values());
        p.set_values(&[5.0, 6.0, 7.0, 8.0]).unwrap();
        assert_eq!(host(&p), vec![5.0, 6.0, 7.0, 8.0]);
        p.set_mask(Some(&[1.0, 0.0, 1.0, 1.0])).unwrap();
        assert_eq!(host(&p), vec![5.0, 0.0, 7.0, 8.0]);
        p.value_mut().copy_from(&[1.0, 0.0, 1.0, 1.0]);
        assert_eq!(host(&p), vec![1.0, 0.0, 1.0, 1.0]);
        // A host update sees the mask, is uploaded, and becomes the host copy;
        // a copy still held elsewhere is left as it was.
        let held = p.host_values();
        p.update_on_host(|_, values, mask| {
            assert_eq!(mask, Some(&[1.0, 0.0, 1.0, 1.0][..]));
            values.iter_mut().for_each(|v| *v += 1.0);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(p.values(), vec![2.0, 1.0, 2.0, 2.0]);
        assert_eq!(host(&p), p.values());
        assert_eq!(*held, vec![1.0, 0.0, 1.0, 1.0]);
    }
}
