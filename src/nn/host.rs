//! CPU fast paths: custom dfdx ops whose forward and backward run as
//! rayon-parallel loops over host buffers, for the ops where dfdx 0.13's
//! generic kernels are slow (single-threaded `gather` and its scatter-add
//! backward, `max` over small windows, serial element-wise ops). The matrix
//! products live in `product`, which uses this module's helpers.
//!
//! dfdx has no public custom-op API, but `split_tape`, `Tape::add_backward_op`
//! and `Gradients::get_or_alloc_mut` are public, and on `Cpu` a gradient
//! buffer dereferences to `Vec<f32>`. Code generic over `D` checks `on_cpu::<D>()`
//! and only then calls into this module, which downcasts (`Any`) the device-
//! typed tensors and gradients to their `Cpu` types; every other device keeps
//! the generic dfdx path. Tensor data cross with `copy_into` (a memcpy of the
//! physical buffer, so inputs must be contiguous, which every layer output is)
//! and `tensor_from_vec` (a move).
//!
//! Every loop writes disjoint output ranges and sums in a fixed order, so the
//! results do not depend on the number of threads.

use std::any::{Any, TypeId};

use dfdx::optim::{AdamConfig, WeightDecay};
use dfdx::prelude::*;
use rayon::prelude::*;

use super::conv::Map;
use super::Matrix;

/// Below this many elements a loop runs on the calling thread: handing
/// work to rayon's pool costs microseconds (much more on a loaded machine).
pub(crate) const PAR_MIN: usize = 1 << 16;

/// `f(i, chunk)` for the `chunk`-sized pieces of `data`, in parallel when
/// `data` is large. Each call writes only its own chunk.
pub(super) fn for_each_chunk<F>(data: &mut [f32], chunk: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    if data.len() < PAR_MIN {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

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

fn cpu_grads<D: Device<f32>>(grads: &mut Gradients<f32, D>) -> &mut Gradients<f32, Cpu> {
    (grads as &mut dyn Any)
        .downcast_mut()
        .expect("CPU fast path on a non-CPU device")
}

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

pub(super) fn put_grad<S: Shape, D: Device<f32>>(
    grads: &mut Gradients<f32, D>,
    t: &Tensor<S, f32, D>,
    g: Vec<f32>,
) -> Result<(), D::Err> {
    *grad_mut(grads, t)? = g;
    Ok(())
}

/// Geometry of a stride-1, zero-padded convolution with square kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub(crate) input: Map,
    pub(crate) output: Map,
    pub(crate) kernel: usize,
    pub(crate) pad: usize,
}

impl ConvGeom {
    /// Input row and column read by output position (oy, ox) at kernel offset (ky, kx).
    fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy + ky).checked_sub(self.pad)?;
        let ix = (ox + kx).checked_sub(self.pad)?;
        (iy < self.input.height && ix < self.input.width).then_some((iy, ix))
    }
}

/// im2col of a (C·H·W, B) batch: rows (c, ky, kx), columns (oy, ox, b).
pub(super) fn im2col_kernel(x: &[f32], g: ConvGeom, batch: usize) -> Vec<f32> {
    let (k, out) = (g.kernel, g.output);
    let row = out.height * out.width * batch;
    let plane = g.input.height * g.input.width * batch;
    let mut cols = vec![0.0f32; g.input.channels * k * k * row];
    for_each_chunk(&mut cols, row, |r, dst| {
        let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
        let src = &x[c * plane..(c + 1) * plane];
        for oy in 0..out.height {
            for ox in 0..out.width {
                if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                    let s = (iy * g.input.width + ix) * batch;
                    let d = (oy * out.width + ox) * batch;
                    dst[d..d + batch].copy_from_slice(&src[s..s + batch]);
                }
            }
        }
    });
    cols
}

/// col2im, accumulated into `gx`: the adjoint of `im2col_kernel`.
pub(super) fn col2im_kernel(gcols: &[f32], gx: &mut [f32], g: ConvGeom, batch: usize) {
    let (k, out) = (g.kernel, g.output);
    let row = out.height * out.width * batch;
    let plane = g.input.height * g.input.width * batch;
    for_each_chunk(gx, plane, |c, dst| {
        for ky in 0..k {
            for kx in 0..k {
                let src = &gcols[((c * k + ky) * k + kx) * row..][..row];
                for oy in 0..out.height {
                    for ox in 0..out.width {
                        if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                            let d = (iy * g.input.width + ix) * batch;
                            let s = (oy * out.width + ox) * batch;
                            for (a, b) in dst[d..d + batch].iter_mut().zip(&src[s..s + batch]) {
                                *a += b;
                            }
                        }
                    }
                }
            }
        }
    });
}

/// im2col on the CPU: (C·H·W, B) -> (C·K·K, OH·OW·B), backward col2im.
pub(crate) fn im2col<D: Device<f32>, R: Tape<f32, D>>(
    x: Matrix<D, R>,
    geom: ConvGeom,
) -> Matrix<D, R> {
    let batch = x.shape().1;
    let (x, mut tape) = x.split_tape();
    let cols = im2col_kernel(&to_host(&x), geom, batch);
    let rows = geom.input.channels * geom.kernel * geom.kernel;
    let n = cols.len() / rows;
    let out = upload(x.device(), &cols, (rows, n));
    if R::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &y)?;
            col2im_kernel(&gy, grad_mut(grads, &x)?, geom, batch);
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}

/// 2x2/stride-2 max pooling forward: (C·H·W, B) -> (C·H/2·W/2, B).
fn pool_kernel(x: &[f32], input: Map, batch: usize) -> Vec<f32> {
    let (oh, ow) = (input.height / 2, input.width / 2);
    let plane = input.height * input.width * batch;
    let mut y = vec![0.0f32; input.channels * oh * ow * batch];
    for_each_chunk(&mut y, oh * ow * batch, |c, dst| {
        let src = &x[c * plane..(c + 1) * plane];
        for py in 0..oh {
            for px in 0..ow {
                let at = |dy: usize, dx: usize| {
                    let s = ((2 * py + dy) * input.width + 2 * px + dx) * batch;
                    &src[s..s + batch]
                };
                let (a, b, c, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                let o = (py * ow + px) * batch;
                for (j, v) in dst[o..o + batch].iter_mut().enumerate() {
                    // Same order as dfdx's max over the window axis.
                    *v = a[j].max(b[j]).max(c[j]).max(d[j]);
                }
            }
        }
    });
    y
}

/// Backward of `pool_kernel`, accumulated into `gx`: like dfdx's `max`,
/// every entry equal to its window's maximum receives the gradient.
fn pool_backward(x: &[f32], y: &[f32], gy: &[f32], gx: &mut [f32], input: Map, batch: usize) {
    let (oh, ow) = (input.height / 2, input.width / 2);
    let plane = input.height * input.width * batch;
    let oplane = oh * ow * batch;
    for_each_chunk(gx, plane, |c, dst| {
        let src = &x[c * plane..(c + 1) * plane];
        let (yc, gyc) = (&y[c * oplane..][..oplane], &gy[c * oplane..][..oplane]);
        for py in 0..oh {
            for px in 0..ow {
                let o = (py * ow + px) * batch;
                let (ym, gm) = (&yc[o..o + batch], &gyc[o..o + batch]);
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let s = ((2 * py + dy) * input.width + 2 * px + dx) * batch;
                    for j in 0..batch {
                        if src[s + j] == ym[j] {
                            dst[s + j] += gm[j];
                        }
                    }
                }
            }
        }
    });
}

/// 2x2 max pooling on the CPU.
pub(crate) fn max_pool2<D: Device<f32>, T: Tape<f32, D>>(
    x: Matrix<D, T>,
    input: Map,
) -> Matrix<D, T> {
    let batch = x.shape().1;
    let (x, mut tape) = x.split_tape();
    let xh = to_host(&x);
    let yh = pool_kernel(&xh, input, batch);
    let rows = yh.len() / batch;
    let out = upload(x.device(), &yh, (rows, batch));
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &y)?;
            pool_backward(&xh, &yh, &gy, grad_mut(grads, &x)?, input, batch);
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}

/// `z + b` (b broadcast along the columns), then ReLU if `relu`: the tail
/// of every linear and convolutional layer. On the CPU one parallel pass
/// forward and one backward; elsewhere dfdx's broadcast add and `relu`.
pub(crate) fn bias_act<D: Device<f32>, T: Tape<f32, D>>(
    z: Matrix<D, T>,
    b: Tensor<(usize,), f32, D, T>,
    relu: bool,
) -> Matrix<D, T> {
    let shape = *z.shape();
    if !on_cpu::<D>() {
        let y = z + b.broadcast_like::<_, Axis<1>>(&shape);
        return if relu { y.relu() } else { y };
    }
    let (rows, n) = shape;
    let (z, zt) = z.split_tape();
    let (b, bt) = b.split_tape();
    let mut tape = zt.merge(bt);
    let mut yh = to_host(&z);
    let bh = to_host(&b);
    for_each_chunk(&mut yh, n, |r, row| {
        let bias = bh[r];
        for v in row {
            // As dfdx: relu(s) = s.max(0), with derivative [s > 0].
            let s = *v + bias;
            *v = if relu { s.max(0.0) } else { s };
        }
    });
    let out = upload(z.device(), &yh, shape);
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            // y's gradient is not read again: mask it in place by the ReLU
            // derivative, then add it to z's and its row sums to b's.
            let mut gy = take_grad(grads, &y)?;
            if relu {
                for_each_chunk(&mut gy, n, |r, g| {
                    for (g, &v) in g.iter_mut().zip(&yh[r * n..]) {
                        if v <= 0.0 {
                            *g = 0.0;
                        }
                    }
                });
            }
            for_each_chunk(grad_mut(grads, &z)?, n, |r, a| {
                for (a, g) in a.iter_mut().zip(&gy[r * n..]) {
                    *a += g;
                }
            });
            let sums: Vec<f32> = gy.chunks(n).map(lane_sum).collect();
            debug_assert_eq!(sums.len(), rows);
            for (a, s) in grad_mut(grads, &b)?.iter_mut().zip(&sums) {
                *a += s;
            }
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}

/// The sum of `values` in a fixed order that vectorizes: 16 running sums
/// over interleaved lanes, added up in lane order at the end (a serial f32
/// sum cannot be vectorized, and was the bias gradient's bottleneck).
fn lane_sum(values: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    for (a, v) in acc.iter_mut().zip(rest) {
        *a += v;
    }
    acc.iter().sum()
}

fn cpu_vec<D: Device<f32>>(v: &mut <D as Storage<f32>>::Vec) -> &mut Vec<f32> {
    let v = (v as &mut dyn Any)
        .downcast_mut::<<Cpu as Storage<f32>>::Vec>()
        .expect("CPU fast path on a non-CPU device");
    v
}

/// `x ⊙ mask` for a constant host-side `mask` of x's size (a pruning mask,
/// the winners of a k-WTA): the gradient reaches x only where the mask is
/// non-zero. On the CPU one parallel pass forward and one backward (dfdx's
/// element-wise kernels are serial); elsewhere the mask is uploaded and
/// multiplied by dfdx.
pub(crate) fn mul_mask<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    mask: Vec<f32>,
) -> Tensor<S, f32, D, T> {
    const CHUNK: usize = 1 << 14;
    let shape = *x.shape();
    if !on_cpu::<D>() {
        let m = upload(x.device(), &mask, shape);
        return x * m;
    }
    let (x, mut tape) = x.split_tape();
    let mut out = to_host(&x);
    for_each_chunk(&mut out, CHUNK, |i, o| {
        for (o, &m) in o.iter_mut().zip(&mask[i * CHUNK..]) {
            *o *= m;
        }
    });
    let y = upload(x.device(), &out, shape);
    if T::OWNS_TAPE {
        let yc = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            for_each_chunk(grad_mut(grads, &x)?, CHUNK, |i, a| {
                let range = i * CHUNK..;
                for ((a, g), m) in a.iter_mut().zip(&gy[range.clone()]).zip(&mask[range]) {
                    *a += g * m;
                }
            });
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// `x` unchanged, with its gradient multiplied by the constant host-side 0/1
/// `mask` in place once every other op has added its part: W ⊙ M for a
/// weight whose masked entries are already ±0.0, without a pass over W.
/// The op is recorded before any consumer of `x`, so it runs after them all.
pub(crate) fn mask_gradient<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    mask: std::sync::Arc<Vec<f32>>,
) -> Tensor<S, f32, D, T> {
    const CHUNK: usize = 1 << 14;
    let (x, mut tape) = x.split_tape();
    if T::OWNS_TAPE {
        let xc = x.clone();
        tape.add_backward_op(move |grads| {
            for_each_chunk(grad_mut(grads, &xc)?, CHUNK, |i, g| {
                for (g, &m) in g.iter_mut().zip(&mask[i * CHUNK..]) {
                    *g *= m;
                }
            });
            Ok(())
        });
    }
    x.put_tape(tape)
}

/// Row `choice[u·batch + b]` of group `u` of `x` for every example `b`:
/// `x` is (groups·per_group, batch), the result (groups, batch), and the
/// gradient flows back only into the chosen rows (the winning dendritic
/// segments). On the CPU a parallel gather and scatter; elsewhere a 0/1
/// mask, a reshape and a sum over the group axis.
pub(crate) fn pick_in_groups<D: Device<f32>, T: Tape<f32, D>>(
    x: Matrix<D, T>,
    per_group: usize,
    choice: &[usize],
) -> Matrix<D, T> {
    let (rows, batch) = *x.shape();
    let groups = rows / per_group;
    if !on_cpu::<D>() {
        let mut mask = vec![0.0f32; rows * batch];
        for (i, &s) in choice.iter().enumerate() {
            let (u, b) = (i / batch, i % batch);
            mask[(u * per_group + s) * batch + b] = 1.0;
        }
        return mul_mask(x, mask)
            .reshape_like(&(groups, per_group, batch))
            .sum::<(usize, usize), Axis<1>>();
    }
    let (x, mut tape) = x.split_tape();
    let xh = to_host(&x);
    let source = |i: usize| {
        let (u, b) = (i / batch, i % batch);
        (u * per_group + choice[i]) * batch + b
    };
    let mut out = vec![0.0f32; groups * batch];
    for_each_chunk(&mut out, batch, |u, row| {
        for (b, o) in row.iter_mut().enumerate() {
            *o = xh[source(u * batch + b)];
        }
    });
    let y = upload(x.device(), &out, (groups, batch));
    if T::OWNS_TAPE {
        let yc = y.clone();
        let choice = choice.to_vec();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            // Each group's rows form one contiguous block of the gradient.
            for_each_chunk(grad_mut(grads, &x)?, per_group * batch, |u, block| {
                for b in 0..batch {
                    let i = u * batch + b;
                    block[choice[i] * batch + b] += gy[i];
                }
            });
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// `z ⊙ gate` with one gate value per channel and example: `z` is
/// (channels · positions, batch), `gate` (channels, batch), so whole feature
/// maps are gated. On the CPU one parallel pass each way; elsewhere dfdx's
/// broadcast and multiply.
pub(crate) fn gate_channels<D: Device<f32>, T: Tape<f32, D>>(
    z: Matrix<D, T>,
    gate: Matrix<D, T>,
    positions: usize,
) -> Matrix<D, T> {
    let (rows, batch) = *z.shape();
    let channels = rows / positions;
    if !on_cpu::<D>() {
        let full = (channels, positions, batch);
        return (z.reshape_like(&full) * gate.broadcast_like::<_, Axis<1>>(&full))
            .reshape_like(&(rows, batch));
    }
    let (z, zt) = z.split_tape();
    let (gate, gt) = gate.split_tape();
    let mut tape = zt.merge(gt);
    let zh = to_host(&z);
    let gh = to_host(&gate);
    let block = positions * batch;
    let mut out = zh.clone();
    for_each_chunk(&mut out, block, |c, o| {
        for (i, o) in o.iter_mut().enumerate() {
            *o *= gh[c * batch + i % batch];
        }
    });
    let y = upload(z.device(), &out, (rows, batch));
    if T::OWNS_TAPE {
        let yc = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &yc)?;
            for_each_chunk(grad_mut(grads, &z)?, block, |c, a| {
                for (i, a) in a.iter_mut().enumerate() {
                    *a += gy[c * block + i] * gh[c * batch + i % batch];
                }
            });
            let mut sums = vec![0.0f32; channels * batch];
            for_each_chunk(&mut sums, batch, |c, s| {
                for i in 0..block {
                    s[i % batch] += gy[c * block + i] * zh[c * block + i];
                }
            });
            for (a, s) in grad_mut(grads, &gate)?.iter_mut().zip(&sums) {
                *a += s;
            }
            put_grad(grads, &yc, gy)
        });
    }
    y.put_tape(tape)
}

/// dfdx's Adam update (`AdamConfig::try_update`, same f32 arithmetic, so
/// the same bits) of the host values `p` of `value`, split over rayon
/// threads in fixed chunks, followed in the same pass by the re-application
/// of the parameter's mask, if any.
#[allow(clippy::too_many_arguments)] // Adam's state, spelled out as dfdx does
pub(crate) fn adam_update<D: Device<f32>>(
    cfg: &AdamConfig,
    t: i32,
    value: &Tensor<(usize,), f32, D>,
    p: &mut [f32],
    mask: Option<&[f32]>,
    moment1: &mut <D as Storage<f32>>::Vec,
    moment2: &mut <D as Storage<f32>>::Vec,
    grads: &mut Gradients<f32, D>,
) -> Result<(), D::Err> {
    let (m, v) = (cpu_vec::<D>(moment1), cpu_vec::<D>(moment2));
    let g = grad_mut(grads, value)?;
    let [b1, b2] = cfg.betas.map(|b| b as f32);
    let (eps, lr) = (cfg.eps as f32, cfg.lr as f32);
    // Branch-free so that the loop vectorizes: a weight decay that is off is
    // 0.0, and adding 0.0 * p leaves every finite value's bits unchanged.
    let l2 = match cfg.weight_decay {
        Some(WeightDecay::L2(wd)) => wd as f32,
        _ => 0.0,
    };
    let decoupled = match cfg.weight_decay {
        Some(WeightDecay::Decoupled(wd)) => (wd * cfg.lr) as f32,
        _ => 0.0,
    };
    let c1 = (1.0 - b1.powi(t)).recip();
    let c2 = (1.0 - b2.powi(t)).recip();
    // Inlined into `for_each_moment_chunk`'s wide-SIMD (AVX-512 or AVX2) copy.
    for_each_moment_chunk(
        p,
        m,
        v,
        g,
        mask,
        #[inline(always)]
        |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
            for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                let g = g + l2 * *p;
                *m = *m * b1 + g * (1.0 - b1);
                *v = *v * b2 + g * g * (1.0 - b2);
                let m_hat = *m * c1;
                let v_hat = *v * c2;
                *p -= lr * m_hat / (v_hat.sqrt() + eps) + decoupled * *p;
            }
        },
    );
    Ok(())
}

/// Runs an Adam-style `update(p, m, v, g)` over values `p`, moments `m`, `v`
/// and gradient `g` in fixed chunks (in parallel when large), then zeroes
/// the masked entries again as `Param::reapply_mask` would (a weight pushed
/// by stale state becomes ±0.0). The chunks never depend on the thread count.
pub(crate) fn for_each_moment_chunk<F>(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    mask: Option<&[f32]>,
    update: F,
) where
    F: Fn(&mut [f32], &mut [f32], &mut [f32], &[f32]) + Sync,
{
    const CHUNK: usize = 1 << 14;
    let chunk = |i: usize, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
        let mask = mask.map(|mask| &mask[i * CHUNK..]);
        with_wide_simd(
            #[inline(always)]
            || {
                update(p, m, v, g);
                if let Some(mask) = mask {
                    for (p, &k) in p.iter_mut().zip(mask) {
                        *p *= k;
                    }
                }
            },
        )
    };
    if p.len() < PAR_MIN {
        chunk(0, p, m, v, g);
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .enumerate()
            .for_each(|(i, (((p, m), v), g))| chunk(i, p, m, v, g));
    }
}

/// Runs `f` compiled for AVX-512 or AVX2, the widest the CPU has (the build
/// targets plain x86-64, whose SSE loops do 4 lanes where AVX2 does 8 and
/// AVX-512 16), otherwise as is. Element-wise f32 arithmetic gives the same
/// bits either way: no operation is fused or reordered.
fn with_wide_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// `f`, inlined into a function compiled with AVX-512 enabled.
        #[target_feature(enable = "avx512f")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        /// `f`, inlined into a function compiled with AVX2 enabled.
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU was just checked to support AVX-512F.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to support AVX2.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// sign(x), with sign(0) = 0 as `torch.sign`.
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// sign(x) with a straight-through gradient, one parallel pass each way:
/// the gradient passes unchanged (binarized weights), or with `clip` only
/// where |x| <= 1 (the hardtanh estimator of binarized activations).
pub(crate) fn sign_ste<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
    x: Tensor<S, f32, D, T>,
    clip: bool,
) -> Tensor<S, f32, D, T> {
    const CHUNK: usize = 1 << 14;
    let (x, mut tape) = x.split_tape();
    let mut yh = to_host(&x);
    // Only the clipped estimator's backward pass needs the input.
    let kept = (clip && T::OWNS_TAPE).then(|| yh.clone());
    for_each_chunk(&mut yh, CHUNK, |_, c| {
        for v in c {
            *v = sign(*v);
        }
    });
    let out = upload(x.device(), &yh, *x.shape());
    if T::OWNS_TAPE {
        let y = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &y)?;
            for_each_chunk(grad_mut(grads, &x)?, CHUNK, |i, a| {
                let range = i * CHUNK..;
                let gy = &gy[range.clone()];
                match &kept {
                    Some(xh) => {
                        for ((a, g), v) in a.iter_mut().zip(gy).zip(&xh[range]) {
                            if v.abs() <= 1.0 {
                                *a += g;
                            }
                        }
                    }
                    None => a.iter_mut().zip(gy).for_each(|(a, g)| *a += g),
                }
            });
            put_grad(grads, &y, gy)
        });
    }
    out.put_tape(tape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_adds_every_value_including_the_remainder() {
        // Small integers add exactly in f32, in any order.
        for len in [0, 1, 15, 16, 17, 40] {
            let values: Vec<f32> = (1..=len).map(|v| v as f32).collect();
            assert_eq!(lane_sum(&values), (len * (len + 1) / 2) as f32, "len {len}");
        }
    }
}
