//! Seeded parameter initialisation on the host. `Initializer` draws every
//! weight and bias of a network, in layer order, from one ChaCha8 stream, so
//! the same `InitConfig` and seed give bit-identical parameters on any device.
//! It only produces `Vec<f32>`; uploading them is the network's business.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{BiasInit, InitConfig, WeightInit};

/// Draws initial parameter values in a fixed order from a seeded stream.
pub(crate) struct Initializer {
    config: InitConfig,
    rng: ChaCha8Rng,
}

impl Initializer {
    /// A stream for `config`, seeded with `seed`.
    pub(crate) fn new(config: InitConfig, seed: u64) -> Self {
        Self {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// `n` weights of a layer with the given fans (for a convolution, fans
    /// include the kernel area, as in PyTorch).
    pub(crate) fn weights(&mut self, n: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
        match self.config.weight {
            WeightInit::XavierNormal => {
                let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
                self.normal(n, std)
            }
            WeightInit::KaimingNormal => {
                let std = (2.0 / fan_in as f64).sqrt();
                self.normal(n, std)
            }
            WeightInit::Uniform { width } => self.uniform(n, width),
        }
    }

    /// `n` biases.
    pub(crate) fn biases(&mut self, n: usize) -> Vec<f32> {
        match self.config.bias {
            BiasInit::Zeros => vec![0.0; n],
            BiasInit::Normal => self.normal(n, 1.0),
            BiasInit::Uniform { width } => self.uniform(n, width),
        }
    }

    /// `n` draws of U(-width, width).
    fn uniform(&mut self, n: usize, width: f32) -> Vec<f32> {
        (0..n)
            .map(|_| self.rng.gen_range(-1.0f32..=1.0) * width)
            .collect()
    }

    /// `n` draws of N(0, std^2) by the Box-Muller transform.
    fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // 1 - U[0,1) lies in (0, 1], so the logarithm is finite.
            let u1: f64 = 1.0 - self.rng.gen::<f64>();
            let u2: f64 = self.rng.gen::<f64>();
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let theta = std::f64::consts::TAU * u2;
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn xavier_and_kaiming_have_the_right_spread() {
        let mut init = Initializer::new(InitConfig::default(), 1);
        let (mean, std) = moments(&init.weights(100_000, 300, 100));
        assert!(mean.abs() < 0.002, "{mean}");
        assert!((std - (2.0f64 / 400.0).sqrt()).abs() < 0.002, "{std}");
        let mut init = Initializer::new(
            InitConfig {
                weight: WeightInit::KaimingNormal,
                bias: BiasInit::Zeros,
            },
            1,
        );
        let (_, std) = moments(&init.weights(100_000, 50, 7));
        assert!((std - 0.2).abs() < 0.003, "{std}");
        assert!(init.biases(5).iter().all(|&b| b == 0.0));
    }

    #[test]
    fn uniform_stays_in_range_and_seeds_repeat() {
        let config = InitConfig {
            weight: WeightInit::Uniform { width: 0.5 },
            bias: BiasInit::Normal,
        };
        let a = Initializer::new(config, 7).weights(1000, 1, 1);
        assert!(a.iter().all(|x| x.abs() <= 0.5));
        assert_eq!(a, Initializer::new(config, 7).weights(1000, 1, 1));
        assert_ne!(a, Initializer::new(config, 8).weights(1000, 1, 1));
    }
}
