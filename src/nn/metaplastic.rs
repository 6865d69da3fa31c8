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
        // Inlined into `for_each_moment_chunk`'s wide-SIMD (AVX-512 or AVX2)
        // copy. The loops without tanh vectorize; a call to tanh inside them
        // would make the whole update scalar, so the metaplastic factor is
        // its own pass, over the weights whose step moves them toward zero.
        for_each_moment_chunk(
            p,
            m,
            v,
            &g,
            mask,
            #[inline(always)]
            |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
                for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                    let g = g + l2 * *p;
                    *m = *m * b1 + g * (1.0 - b1);
                    *v = *v * b2 + g * g * (1.0 - b2);
                }
                let mut m_used = m.to_vec();
                // meta = 0 makes the factor 1 - tanh²(0) = 1 exactly.
                if meta != 0.0 {
                    for ((u, &p), &m) in m_used.iter_mut().zip(p.iter()).zip(m.iter()) {
                        let toward_zero = (p > 0.0 && m > 0.0) || (p < 0.0 && m < 0.0);
                        if toward_zero {
                            let th = (meta * p.abs()).tanh();
                            *u = m * (1.0 - th * th);
                        }
                    }
                }
                for ((p, &u), &v) in p.iter_mut().zip(&m_used).zip(v.iter()) {
                    let m_hat = u * c1;
                    let v_hat = v * c2;
                    *p -= lr * m_hat / (v_hat.sqrt() + eps);
                }
            },
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::param::{ParamInfo, ParamKind};

    /// Laborieux's update as one loop over the weights (`Adam_meta`'s
    /// formula, the form this module had before its passes).
    fn one_loop(cfg: &AdamConfig, t: i32, meta: f32, state: [&mut [f32]; 3], g: &[f32]) {
        let [p, m, v] = state;
        let [b1, b2] = cfg.betas.map(|b| b as f32);
        let (eps, lr) = (cfg.eps as f32, cfg.lr as f32);
        let Some(WeightDecay::L2(l2)) = cfg.weight_decay else {
            unreachable!("the test decays by L2")
        };
        let l2 = l2 as f32;
        let (c1, c2) = ((1.0 - b1.powi(t)).recip(), (1.0 - b2.powi(t)).recip());
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
            *p -= lr * (m_used * c1) / ((*v * c2).sqrt() + eps);
        }
    }

    /// The update in passes (vectorized Adam, tanh apart) gives the bits of
    /// the one loop, over several parallel chunks, with meta 0 and 1.35,
    /// with and without weight decay, weights at 0 included.
    #[test]
    fn the_passes_give_the_bits_of_the_one_loop_update() {
        let dev = Cpu::default();
        let n = 40_000;
        let wave = |i: usize, f: f32| ((i as f32 * f).sin() * 1.7).clamp(-1.5, 1.5);
        let start: Vec<f32> = (0..n)
            .map(|i| if i % 11 == 0 { 0.0 } else { wave(i, 0.37) })
            .collect();
        let info = ParamInfo {
            name: "fc1.weight".into(),
            kind: ParamKind::FcWeight,
            shape: vec![200, 200],
        };
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for (meta, l2) in [(0.0, 0.0), (1.35, 0.0), (1.35, 1e-4), (0.0, 1e-4)] {
            let cfg = AdamConfig {
                lr: 5e-3,
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: Some(WeightDecay::L2(l2)),
            };
            let mut param = Param::new(info.clone(), start.clone(), &dev);
            let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
            let mut want = [start.clone(), vec![0.0; n], vec![0.0; n]];
            for t in 1..=3 {
                let g: Vec<f32> = (0..n).map(|i| wave(i, 0.11 * t as f32) * 0.3).collect();
                let mut grads = Gradients::leaky();
                grads
                    .get_or_alloc_mut(&param.value())
                    .unwrap()
                    .copy_from_slice(&g);
                adam_meta_update(&cfg, t, meta, &mut param, &mut m, &mut v, &mut grads).unwrap();
                let [p, wm, wv] = &mut want;
                one_loop(&cfg, t, meta, [p, wm, wv], &g);
                let what = format!("meta {meta}, L2 {l2}, step {t}");
                assert!(bits(&param.values()) == bits(p), "{what}: weights");
                assert!(
                    bits(&m) == bits(wm) && bits(&v) == bits(wv),
                    "{what}: moments"
                );
            }
        }
    }
}
