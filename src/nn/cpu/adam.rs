//! Adam on the host: `adam_update` is dfdx's Adam arithmetic run over a
//! parameter's host copy in fixed parallel chunks, and `for_each_moment_chunk`
//! is the chunked, wide-SIMD loop it shares with metaplastic Adam, which also
//! re-applies the parameter's mask in the same pass, or, for a weight pruned
//! below `SPARSE_BELOW`, visits only its kept entries.

use dfdx::optim::{AdamConfig, WeightDecay};
use dfdx::prelude::*;
use rayon::prelude::*;

use super::op::{cpu_vec, grad_mut};
use super::par::PAR_MIN;
use super::simd::with_wide_simd;

/// dfdx's Adam update (`AdamConfig::try_update`, same f32 arithmetic, so
/// the same bits) of the host values `p` of `value`, split over rayon
/// threads in fixed chunks, followed in the same pass by the re-application
/// of the parameter's mask, if any; with `kept` (the kept positions of a
/// sparse mask), over those entries only (see `for_each_moment_chunk`).
#[allow(clippy::too_many_arguments)] // Adam's state, spelled out as dfdx does
pub(crate) fn adam_update<D: Device<f32>>(
    cfg: &AdamConfig,
    t: i32,
    value: &Tensor<(usize,), f32, D>,
    p: &mut [f32],
    mask: Option<&[f32]>,
    kept: Option<&[u32]>,
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
        kept,
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
///
/// With `kept` (ascending positions, a sparse mask's kept entries), `update`
/// sees only those entries, gathered into blocks, so a kept weight and its
/// moments get the same bits as in the dense pass, and masked entries and
/// their moments are left as they are: exactly 0.0 for a weight and, for an
/// optimizer started after the mask was set, for its moments (the dense pass
/// would leave them so too; stale moments it would decay, unseen).
pub(crate) fn for_each_moment_chunk<F>(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    mask: Option<&[f32]>,
    kept: Option<&[u32]>,
    update: F,
) where
    F: Fn(&mut [f32], &mut [f32], &mut [f32], &[f32]) + Sync,
{
    const CHUNK: usize = 1 << 14;
    if let Some(kept) = kept {
        return for_kept_in_blocks(p, m, v, g, kept, update);
    }
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

/// `for_each_moment_chunk` over the `kept` positions only: chunks of the
/// kept list (each owning the disjoint range of positions up to the next
/// chunk's first) in parallel when large, each in blocks gathered into
/// buffers for `update` and scattered back.
fn for_kept_in_blocks<F>(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    kept: &[u32],
    update: F,
) where
    F: Fn(&mut [f32], &mut [f32], &mut [f32], &[f32]) + Sync,
{
    const CHUNK: usize = 1 << 12;
    const BLOCK: usize = 256;
    // The kept positions `kept` of `p`, `m`, `v` (which start at `offset`).
    let run = |kept: &[u32], offset: usize, p: &mut [f32], m: &mut [f32], v: &mut [f32]| {
        let mut buf = [[0.0f32; BLOCK]; 4];
        for block in kept.chunks(BLOCK) {
            let len = block.len();
            let [bp, bm, bv, bg] = &mut buf;
            for (e, &k) in block.iter().enumerate() {
                let (k, i) = (k as usize, k as usize - offset);
                (bp[e], bm[e], bv[e], bg[e]) = (p[i], m[i], v[i], g[k]);
            }
            with_wide_simd(
                #[inline(always)]
                || update(&mut bp[..len], &mut bm[..len], &mut bv[..len], &bg[..len]),
            );
            for (e, &k) in block.iter().enumerate() {
                let i = k as usize - offset;
                (p[i], m[i], v[i]) = (bp[e], bm[e], bv[e]);
            }
        }
    };
    if kept.len() < PAR_MIN {
        return run(kept, 0, p, m, v);
    }
    let mut parts = Vec::with_capacity(kept.len().div_ceil(CHUNK));
    let (mut p, mut m, mut v, mut offset) = (p, m, v, 0);
    for (c, chunk) in kept.chunks(CHUNK).enumerate() {
        let end = kept
            .get((c + 1) * CHUNK)
            .map_or(p.len() + offset, |&k| k as usize);
        let (ph, pt) = std::mem::take(&mut p).split_at_mut(end - offset);
        let (mh, mt) = std::mem::take(&mut m).split_at_mut(end - offset);
        let (vh, vt) = std::mem::take(&mut v).split_at_mut(end - offset);
        parts.push((chunk, offset, ph, mh, vh));
        (p, m, v, offset) = (pt, mt, vt, end);
    }
    parts
        .into_par_iter()
        .for_each(|(chunk, offset, p, m, v)| run(chunk, offset, p, m, v));
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
            adam_update(
                &cfg, t, &a, &mut p, None, None, &mut am1, &mut am2, &mut grads,
            )
            .unwrap();
            a.copy_from(&p);
            let bits = |t: &Tensor<(usize,), f32, Cpu>| -> Vec<u32> {
                t.as_vec().into_iter().map(f32::to_bits).collect()
            };
            assert!(bits(&a) == bits(&b), "step {t}");
        }
    }

    /// Adam over the kept entries of a sparse mask gives the bits of the
    /// dense masked pass, values and moments, whatever the thread count.
    #[test]
    fn kept_only_adam_matches_the_dense_masked_pass_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let cfg = AdamConfig {
            lr: 1e-2,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: Some(WeightDecay::L2(1e-4)),
        };
        // 300k entries at 30%: the kept list is long enough to run in parallel.
        for (n, density) in [(1000, 0.0), (1000, 0.001), (5003, 0.03), (300_000, 0.3)] {
            let mask: Vec<f32> = (0..n)
                .map(|_| (rng.gen::<f64>() < density) as u8 as f32)
                .collect();
            let kept: Vec<u32> = (0..n as u32).filter(|&k| mask[k as usize] != 0.0).collect();
            let start: Vec<f32> = mask
                .iter()
                .map(|&m| {
                    if m == 0.0 {
                        0.0
                    } else {
                        rng.gen_range(-1.0..1.0)
                    }
                })
                .collect();
            let value: Tensor<(usize,), f32, Cpu> = dev.tensor_from_vec(start.clone(), (n,));
            let run = |kept: Option<&[u32]>, threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let alloc = || Storage::<f32>::try_alloc_len(&dev, n).unwrap();
                let (mut m1, mut m2, mut p) = (alloc(), alloc(), start.clone());
                for t in 1..=3 {
                    let mut grads = Gradients::leaky();
                    let g = grads.get_or_alloc_mut(&value).unwrap();
                    for (k, g) in g.iter_mut().enumerate() {
                        *g = if mask[k] == 0.0 {
                            0.0
                        } else {
                            p[k] - 0.3 * t as f32
                        };
                    }
                    pool.install(|| {
                        adam_update(
                            &cfg,
                            t,
                            &value,
                            &mut p,
                            Some(&mask),
                            kept,
                            &mut m1,
                            &mut m2,
                            &mut grads,
                        )
                    })
                    .unwrap();
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&p), bits(&m1), bits(&m2))
            };
            let dense = run(None, 2);
            assert!(run(Some(&kept), 2) == dense, "{n} at {density}");
            assert!(run(Some(&kept), 1) == dense, "{n} at {density}, one thread");
        }
    }
}
