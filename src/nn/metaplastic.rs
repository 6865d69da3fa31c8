//! The metaplastic Adam update of Laborieux et al. 2021 (`Adam_meta`), on
//! the host for any device: gradients come down with `to_host`, the values
//! are the parameter's host copy (`Param::update_on_host`, which uploads the
//! result), and the moments live on the host.
//!
//! It is our Adam (`cpu::adam_update`: PyTorch's L2 weight decay, bias
//! correction, eps outside the root, the same f32 operations in the same
//! order) except that where sign(W_h) · m > 0 — the step moves the hidden
//! weight W_h toward zero — the step uses m · (1 - tanh²(meta · |W_h|)),
//! with W_h before the update; the stored moment m is not scaled, and with
//! meta = 0 the factor is exactly 1, so the bits equal Adam's. sign(0) = 0,
//! so a weight at exactly 0 is never attenuated.

use dfdx::optim::{AdamConfig, WeightDecay};
use dfdx::prelude::*;

use super::cpu::{for_each_moment_chunk, to_host};
use super::error::{device_error, Result};
use super::param::Param;

/// One metaplastic Adam step of `param` at step `t` (1-based) with
/// metaplasticity `meta`, moments `m` and `v`, then the mask re-applied.
pub(crate) fn adam_meta_update<D: Device<f32>>(
    cfg: &AdamConfig,
    t: i32,
    meta: f32,
    param: &mut Param<D>,
    m: &mut [f32],
    v: &mut [f32],
    grads: &mut Gradients<f32, D>,
) -> Result<()> {
    param.update_on_host(|value, p, mask| {
        grads.try_alloc_for(value).map_err(device_error)?;
        let g = to_host(&grads.get(value));
        let [b1, b2] = cfg.betas.map(|b| b as f32);
        let (eps, lr) = (cfg.eps as f32, cfg.lr as f32);
        let l2 = match cfg.weight_decay {
            Some(WeightDecay::L2(wd)) => wd as f32,
            _ => 0.0,
        };
        let c1 = (1.0 - b1.powi(t)).recip();
        let c2 = (1.0 - b2.powi(t)).recip();
        // Inlined into `for_each_moment_chunk`'s wide-SIMD (AVX-512 or AVX2) copy.
        for_each_moment_chunk(
            p,
            m,
            v,
            &g,
            mask,
            #[inline(always)]
            |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
                for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                    let g = g + l2 * *p;
                    *m = *m * b1 + g * (1.0 - b1);
                    *v = *v * b2 + g * g * (1.0 - b2);
                    let toward_zero = (*p > 0.0 && *m > 0.0) || (*p < 0.0 && *m < 0.0);
                    let m_used = if toward_zero {
                        let th = (meta * p.abs()).tanh();
                        *m * (1.0 - th * th)
                    } else {
                        *m
                    };
                    let m_hat = m_used * c1;
                    let v_hat = *v * c2;
                    *p -= lr * m_hat / (v_hat.sqrt() + eps);
                }
            },
        );
        Ok(())
    })
}
