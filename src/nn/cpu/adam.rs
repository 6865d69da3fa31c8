//! Adam on the host: `adam_update` is dfdx's Adam arithmetic run over a
//! parameter's host copy in fixed parallel chunks, and `for_each_moment_chunk`
//! is the chunked, wide-SIMD loop it shares with metaplastic Adam, which also
//! re-applies the parameter's mask in the same pass.

use dfdx::optim::{AdamConfig, WeightDecay};
use dfdx::prelude::*;
use rayon::prelude::*;

use super::op::{cpu_vec, grad_mut};
use super::par::PAR_MIN;
use super::simd::with_wide_simd;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel CPU Adam gives the same bits as dfdx's own kernel.
    #[test]
    fn parallel_adam_matches_dfdx_bit_for_bit() {
        let dev = Cpu::default();
        let n = 40_000; // several chunks
        let cfg = AdamConfig {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: Some(WeightDecay::L2(1e-4)),
        };
        let start: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(n,));
        let coef: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(n,));
        let (mut a, mut b) = (start.clone(), start.clone());
        let alloc = || Storage::<f32>::try_alloc_len(&dev, n).unwrap();
        let (mut am1, mut am2, mut bm1, mut bm2) = (alloc(), alloc(), alloc(), alloc());
        for t in 1..=3 {
            // A gradient that depends on the current values.
            let g: Vec<f32> = a
                .as_vec()
                .iter()
                .zip(coef.as_vec())
                .map(|(x, c)| x * c)
                .collect();
            let mut grads = Gradients::leaky();
            grads.get_or_alloc_mut(&a).unwrap().copy_from_slice(&g);
            let g = grads.get_or_alloc_mut(&a).unwrap().clone();
            cfg.try_update(t, &mut b, &mut bm1, &mut bm2, &g).unwrap();
            let mut p = a.as_vec();
            adam_update(&cfg, t, &a, &mut p, None, &mut am1, &mut am2, &mut grads).unwrap();
            a.copy_from(&p);
            let bits = |t: &Tensor<(usize,), f32, Cpu>| -> Vec<u32> {
                t.as_vec().into_iter().map(f32::to_bits).collect()
            };
            assert!(bits(&a) == bits(&b), "step {t}");
        }
    }
}
