//! The active-dendrite ops: `pick_in_groups` selects each unit's winning
//! segment (a gather forward, a scatter backward), and `gate_channels`
//! multiplies whole feature maps by one gate per channel and example.

use dfdx::prelude::*;

use super::mask::mul_mask;
use super::op::{grad_mut, on_cpu, put_grad, take_grad, to_host, upload};
use super::par::for_each_chunk;
use crate::nn::Matrix;

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
