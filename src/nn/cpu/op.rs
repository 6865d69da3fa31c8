//! The plumbing of our custom dfdx ops on `Cpu`: `on_cpu` decides whether a
//! fast path applies, `to_host` and `upload` move tensor data, and
//! `grad_mut`, `take_grad` and `put_grad` reach gradient buffers.
//!
//! dfdx has no public custom-op API, but `split_tape`, `Tape::add_backward_op`
//! and `Gradients::get_or_alloc_mut` are public, and on `Cpu` a gradient
//! buffer dereferences to `Vec<f32>`. Code generic over `D` checks `on_cpu::<D>()`
//! and only then calls into these helpers, which downcast (`Any`) the device-
//! typed tensors and gradients to their `Cpu` types; every other device keeps
//! the generic dfdx path. Tensor data cross with `copy_into` (a memcpy of the
//! physical buffer, so inputs must be contiguous, which every layer output is)
//! and `copy_from` into a buffer from dfdx's allocation cache.

use std::any::{Any, TypeId};

use dfdx::prelude::*;

/// Whether `D` is dfdx's `Cpu`, i.e. whether the fast paths apply.
pub(crate) fn on_cpu<D: Device<f32>>() -> bool {
    TypeId::of::<D>() == TypeId::of::<Cpu>()
}

/// The physical data of a contiguous tensor, copied to the host.
pub(crate) fn to_host<S: Shape, D: Device<f32>, T>(t: &Tensor<S, f32, D, T>) -> Vec<f32> {
    let mut v = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

/// A tensor holding `data`. Its buffer comes from dfdx's allocation cache
/// (and returns there when dropped), unlike `tensor_from_vec`, whose buffers
/// would join the cache without ever having left it and make it grow every step.
pub(crate) fn upload<S: Shape, D: Device<f32>>(
    dev: &D,
    data: &[f32],
    shape: S,
) -> Tensor<S, f32, D> {
    let mut t = dev.zeros_like(&shape);
    t.copy_from(data);
    t
}

/// `grads` as the `Cpu` gradients it is; panics on any other device.
fn cpu_grads<D: Device<f32>>(grads: &mut Gradients<f32, D>) -> &mut Gradients<f32, Cpu> {
    (grads as &mut dyn Any)
        .downcast_mut()
        .expect("CPU fast path on a non-CPU device")
}

/// `t` as the `Cpu` tensor it is; panics on any other device.
fn cpu_tensor<S: Shape, D: Device<f32>>(t: &Tensor<S, f32, D>) -> &Tensor<S, f32, Cpu> {
    (t as &dyn Any)
        .downcast_ref()
        .expect("CPU fast path on a non-CPU device")
}

/// The gradient buffer of `t` (allocated zeroed if absent) on the host.
/// `try_alloc_for` is called generically first, so allocation errors come
/// back as `D::Err`; the lookup after it cannot fail.
pub(super) fn grad_mut<'a, S: Shape, D: Device<f32>>(
    grads: &'a mut Gradients<f32, D>,
    t: &Tensor<S, f32, D>,
) -> Result<&'a mut Vec<f32>, D::Err> {
    grads.try_alloc_for(t)?;
    let g = cpu_grads(grads)
        .get_or_alloc_mut(cpu_tensor(t))
        .expect("gradient was just allocated");
    Ok(&mut **g)
}

/// Takes the gradient of `t` out of `grads` (for reading while another
/// gradient is written); give it back with `put_grad`.
pub(super) fn take_grad<S: Shape, D: Device<f32>>(
    grads: &mut Gradients<f32, D>,
    t: &Tensor<S, f32, D>,
) -> Result<Vec<f32>, D::Err> {
    Ok(std::mem::take(grad_mut(grads, t)?))
}

/// Gives back a gradient taken with `take_grad`.
pub(super) fn put_grad<S: Shape, D: Device<f32>>(
    grads: &mut Gradients<f32, D>,
    t: &Tensor<S, f32, D>,
    g: Vec<f32>,
) -> Result<(), D::Err> {
    *grad_mut(grads, t)? = g;
    Ok(())
}

/// A device buffer (an optimizer moment) as the host `Vec` it is on `Cpu`;
/// panics on any other device.
pub(super) fn cpu_vec<D: Device<f32>>(v: &mut <D as Storage<f32>>::Vec) -> &mut Vec<f32> {
    let v = (v as &mut dyn Any)
        .downcast_mut::<<Cpu as Storage<f32>>::Vec>()
        .expect("CPU fast path on a non-CPU device");
    v
}
