//! Image noise for robustness evaluation, applied to pixels in [0, 1] before
//! normalization, seeded, so every network sees identical noisy images.
//!
//! - `pixel` (Bain 2022's code): a fraction `level` of all C·H·W values, chosen without
//!   replacement, is set to `value` (Bain: 2·std of the dataset, 0.616 for MNIST; the
//!   paper's text says "2 std above the mean", which [`PixelValue::TwoStdAboveMean`] gives);
//! - `gaussian`: additive N(0, level²), clipped to [0, 1];
//! - `salt-pepper`: a fraction `level` of values set to 0 or 1 with equal odds;
//! - `uniform`: additive U(−level, level), clipped to [0, 1].

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// The value `pixel` noise writes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelValue {
    /// 2·std of the dataset (Bain's code).
    TwoStd,
    /// mean + 2·std (Bain's text).
    TwoStdAboveMean,
    /// A fixed value in [0, 1] units.
    Fixed(f32),
}

impl PixelValue {
    /// The value in [0, 1] pixel units, for a dataset's (single-channel-averaged) mean and std.
    pub fn resolve(self, mean: f32, std: f32) -> f32 {
        match self {
            PixelValue::TwoStd => 2.0 * std,
            PixelValue::TwoStdAboveMean => mean + 2.0 * std,
            PixelValue::Fixed(v) => v,
        }
    }
}

/// A noise model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseKind {
    /// Set a fraction of values to one value.
    Pixel,
    /// Additive Gaussian.
    Gaussian,
    /// Set a fraction of values to 0 or 1.
    SaltPepper,
    /// Additive uniform.
    Uniform,
}

impl NoiseKind {
    /// The name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            NoiseKind::Pixel => "pixel",
            NoiseKind::Gaussian => "gaussian",
            NoiseKind::SaltPepper => "salt-pepper",
            NoiseKind::Uniform => "uniform",
        }
    }
}

/// Applies noise in place to images (N × example_len values in [0, 1]); each image gets
/// its own draw from one seeded stream. `value` is used by `pixel` noise only.
pub fn apply(
    kind: NoiseKind,
    level: f32,
    value: f32,
    images: &mut [f32],
    example_len: usize,
    seed: u64,
) {
    if level <= 0.0 || example_len == 0 {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for image in images.chunks_mut(example_len) {
        match kind {
            NoiseKind::Pixel | NoiseKind::SaltPepper => {
                let count = ((level.min(1.0) as f64) * example_len as f64).round() as usize;
                for i in sample(&mut rng, example_len, count).into_iter() {
                    image[i] = match kind {
                        NoiseKind::Pixel => value,
                        _ => {
                            if rng.gen_bool(0.5) {
                                1.0
                            } else {
                                0.0
                            }
                        }
                    };
                }
            }
            NoiseKind::Gaussian => {
                let normal = Normal::new(0.0f32, level).expect("level is positive and finite");
                for x in image.iter_mut() {
                    *x = (*x + normal.sample(&mut rng)).clamp(0.0, 1.0);
                }
            }
            NoiseKind::Uniform => {
                for x in image.iter_mut() {
                    *x = (*x + rng.gen_range(-level..=level)).clamp(0.0, 1.0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: usize, len: usize) -> Vec<f32> {
        (0..n * len).map(|i| (i % 7) as f32 / 10.0).collect()
    }

    #[test]
    fn pixel_noise_hits_its_exact_fraction_and_value() {
        let clean = images(5, 100);
        let mut noisy = clean.clone();
        apply(NoiseKind::Pixel, 0.3, 0.616, &mut noisy, 100, 1);
        for (c, n) in clean.chunks(100).zip(noisy.chunks(100)) {
            let changed: Vec<usize> = (0..100)
                .filter(|&i| n[i] == 0.616 && c[i] != 0.616)
                .collect();
            let touched = (0..100).filter(|&i| n[i] != c[i]).count();
            assert_eq!(touched, changed.len());
            assert!(n.iter().filter(|&&v| v == 0.616).count() >= 30);
            assert!(touched <= 30);
        }
        let set: usize = noisy
            .chunks(100)
            .map(|n| n.iter().filter(|&&v| v == 0.616).count())
            .sum();
        assert_eq!(
            set,
            5 * 30,
            "no clean pixel equals 0.616 here, so exactly 30% per image are set"
        );
    }

    #[test]
    fn level_zero_changes_nothing_and_seeds_are_reproducible() {
        let clean = images(3, 50);
        for kind in [
            NoiseKind::Pixel,
            NoiseKind::Gaussian,
            NoiseKind::SaltPepper,
            NoiseKind::Uniform,
        ] {
            let mut x = clean.clone();
            apply(kind, 0.0, 0.5, &mut x, 50, 9);
            assert_eq!(x, clean);
            let (mut a, mut b) = (clean.clone(), clean.clone());
            apply(kind, 0.2, 0.5, &mut a, 50, 9);
            apply(kind, 0.2, 0.5, &mut b, 50, 9);
            assert_eq!(a, b);
            assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn salt_pepper_sets_zeros_and_ones() {
        let mut x = vec![0.5f32; 1000];
        apply(NoiseKind::SaltPepper, 0.2, 0.0, &mut x, 1000, 3);
        assert_eq!(x.iter().filter(|&&v| v != 0.5).count(), 200);
        assert!(x.iter().all(|&v| v == 0.5 || v == 0.0 || v == 1.0));
    }

    #[test]
    fn the_paper_and_code_values_differ() {
        assert!((PixelValue::TwoStd.resolve(0.1307, 0.3081) - 0.6162).abs() < 1e-4);
        assert!((PixelValue::TwoStdAboveMean.resolve(0.1307, 0.3081) - 0.7469).abs() < 1e-4);
    }
}
