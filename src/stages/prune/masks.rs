//! Mask arithmetic of iterative magnitude pruning, on host vectors.
//!
//! Masks hold 1.0 (kept) and 0.0 (pruned). Pruning removes an exact count of surviving
//! weights, the smallest by magnitude (ties broken by position, so it is
//! deterministic), so after k rounds at rate p a layer keeps round-by-round
//! `round(n·(1-p))` of its weights: (1-p)^k of the original up to rounding.

use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

/// Number of survivors to remove from `alive` at `rate`.
fn to_remove(alive: usize, rate: f64) -> usize {
    ((alive as f64) * rate).round() as usize
}

/// Positions of surviving weights, sorted by (|w|, position).
fn ranked_alive(weights: &[f32], mask: &[f32]) -> Vec<usize> {
    let mut alive: Vec<usize> = (0..weights.len()).filter(|&i| mask[i] != 0.0).collect();
    alive.sort_by(|&a, &b| {
        weights[a]
            .abs()
            .total_cmp(&weights[b].abs())
            .then(a.cmp(&b))
    });
    alive
}

/// Removes the `rate` fraction of smallest-magnitude survivors of one layer.
pub fn prune_layer(weights: &[f32], mask: &mut [f32], rate: f64) {
    let ranked = ranked_alive(weights, mask);
    for &i in ranked.iter().take(to_remove(ranked.len(), rate)) {
        mask[i] = 0.0;
    }
}

/// Removes the `rate` fraction of smallest-magnitude survivors across all layers at once.
pub fn prune_global(layers: &mut [(&[f32], &mut Vec<f32>)], rate: f64) {
    let mut all: Vec<(f32, usize, usize)> = Vec::new();
    for (l, (w, m)) in layers.iter().enumerate() {
        all.extend(
            (0..w.len())
                .filter(|&i| m[i] != 0.0)
                .map(|i| (w[i].abs(), l, i)),
        );
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let k = to_remove(all.len(), rate);
    for &(_, l, i) in all.iter().take(k) {
        layers[l].1[i] = 0.0;
    }
}

/// A mask of `len` entries with exactly `alive` ones at random positions.
pub fn random_mask(len: usize, alive: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut mask = vec![0.0; len];
    for i in sample(rng, len, alive.min(len)).into_iter() {
        mask[i] = 1.0;
    }
    mask
}

/// Number of ones in a mask.
pub fn alive(mask: &[f32]) -> usize {
    mask.iter().filter(|&&m| m != 0.0).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn layerwise_removes_the_smallest_survivors() {
        let w = [0.5, -0.1, 0.3, -0.9, 0.05, 0.2, 0.7, -0.4];
        let mut m = vec![1.0; 8];
        prune_layer(&w, &mut m, 0.25);
        assert_eq!(m, [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
        prune_layer(&w, &mut m, 0.5);
        assert_eq!(m, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn remaining_fraction_follows_the_rate_per_round() {
        let n = 10_000;
        let w: Vec<f32> = (0..n).map(|i| ((i * 7919) % n) as f32 - 5000.0).collect();
        let mut m = vec![1.0; n];
        for k in 1..=20 {
            prune_layer(&w, &mut m, 0.125);
            let expected = 0.875f64.powi(k) * n as f64;
            assert!(
                (alive(&m) as f64 - expected).abs() <= k as f64,
                "round {k}: {} vs {expected}",
                alive(&m)
            );
        }
    }

    #[test]
    fn global_pruning_ranks_across_layers() {
        let a = [0.1f32, 0.9];
        let b = [0.2f32, 0.3, 0.8, 0.05];
        let (mut ma, mut mb) = (vec![1.0; 2], vec![1.0; 4]);
        prune_global(&mut [(&a[..], &mut ma), (&b[..], &mut mb)], 0.5);
        assert_eq!(ma, [0.0, 1.0]);
        assert_eq!(mb, [0.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn random_masks_have_the_exact_density_and_depend_on_the_seed() {
        let m1 = random_mask(1000, 300, &mut ChaCha8Rng::seed_from_u64(1));
        let m2 = random_mask(1000, 300, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(alive(&m1), 300);
        assert_ne!(m1, m2);
    }
}
