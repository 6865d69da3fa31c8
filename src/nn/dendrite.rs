//! Active dendrites (Iyer et al. 2022, Numenta's `AbsoluteMaxGatingDendriticLayer`):
//! each unit has `segments` weight vectors over a context vector; the segment
//! whose activation has the largest absolute value (its sign kept) gates the
//! unit's feed-forward output through a sigmoid, y = z ⊙ σ(d*). The winning
//! segment is chosen on the host (dfdx has no argmax) and only it receives a
//! gradient, as with PyTorch's `gather` on the argmax.

use dfdx::prelude::*;

use super::cpu::{matmul_no_input_grad, pick_in_groups, to_host};
use super::init::Initializer;
use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// The segments of one layer's units.
#[derive(Debug, Clone)]
pub(crate) struct Dendrites<D: Device<f32>> {
    pub(crate) weight: Param<D>,
    units: usize,
    segments: usize,
    context: usize,
}

impl<D: Device<f32>> Dendrites<D> {
    /// `segments` segments over a `context`-long vector for each of `units`
    /// units, named `<name>.segments`, drawn from `init`.
    pub(crate) fn new(
        name: &str,
        units: usize,
        segments: usize,
        context: usize,
        init: &mut Initializer,
        dev: &D,
    ) -> Self {
        let weight = Param::new(
            ParamInfo {
                name: format!("{name}.segments"),
                kind: ParamKind::DendriteWeight,
                shape: vec![units * segments, context],
            },
            init.weights(units * segments * context, context, units * segments),
            dev,
        );
        Self {
            weight,
            units,
            segments,
            context,
        }
    }

    /// σ(d*) for every unit and example, (units, batch), from the contexts
    /// (context, batch).
    pub(crate) fn gate<T: Tape<f32, D>>(&self, context: Matrix<D>) -> Matrix<D, T> {
        let w = self
            .weight
            .effective::<T>()
            .reshape_like(&(self.units * self.segments, self.context));
        // The context is data: skip its gradient.
        let activations = matmul_no_input_grad(w, Some(&self.weight), context);
        let batch = activations.shape().1;
        let choice = strongest(&to_host(&activations), self.segments, batch);
        pick_in_groups(activations, self.segments, &choice).sigmoid()
    }
}

/// For each unit u and example b, the segment with the largest |activation|
/// (the first on ties, as `torch.max`), indexed `u · batch + b`; `values` is
/// (units · segments, batch) row-major.
fn strongest(values: &[f32], segments: usize, batch: usize) -> Vec<usize> {
    let units = values.len() / (segments * batch);
    let mut choice = vec![0; units * batch];
    for u in 0..units {
        for b in 0..batch {
            let at = |s: usize| values[(u * segments + s) * batch + b].abs();
            let mut best = 0;
            for s in 1..segments {
                if at(s) > at(best) {
                    best = s;
                }
            }
            choice[u * batch + b] = best;
        }
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::config::{InitConfig, WeightInit};

    fn layer(dev: &Cpu) -> Dendrites<Cpu> {
        let config = InitConfig {
            weight: WeightInit::Uniform { width: 1.0 },
            ..InitConfig::default()
        };
        Dendrites::new("fc1", 3, 4, 5, &mut Initializer::new(config, 7), dev)
    }

    #[test]
    fn the_segment_with_the_largest_magnitude_gates_with_its_sign() {
        let dev = Cpu::default();
        let d = layer(&dev);
        let ctx: Matrix<Cpu> = dev.sample_normal_like(&(5, 2));
        let gate = d.gate::<NoneTape>(ctx.clone()).as_vec();
        let w = d.weight.values();
        let c = ctx.as_vec();
        for u in 0..3 {
            for b in 0..2 {
                let acts: Vec<f32> = (0..4)
                    .map(|s| (0..5).map(|k| w[(u * 4 + s) * 5 + k] * c[k * 2 + b]).sum())
                    .collect();
                let best = acts
                    .iter()
                    .copied()
                    .fold(0.0f32, |m, a| if a.abs() > m.abs() { a } else { m });
                let want = 1.0 / (1.0 + (-best).exp());
                assert!((gate[u * 2 + b] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_and_reach_only_winning_segments() {
        let dev = Cpu::default();
        let mut d = layer(&dev);
        let ctx: Matrix<Cpu> = dev.sample_normal_like(&(5, 2));
        let r: Vec<f32> = (0..6).map(|i| (i as f32 * 0.7).sin()).collect();
        let loss = |d: &Dendrites<Cpu>| -> f64 {
            let g = d.gate::<NoneTape>(ctx.clone()).as_vec();
            g.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum()
        };
        let rt = dev.tensor_from_vec(r.clone(), (3, 2));
        let out = d.gate::<OwnedTape<f32, Cpu>>(ctx.clone());
        let grads = (out * rt).sum::<Rank0, _>().backward();
        let analytic = grads.get(d.weight.value()).as_vec();
        let w0 = d.weight.values();
        let eps = 1e-3;
        for i in 0..w0.len() {
            let mut w = w0.clone();
            w[i] += eps;
            d.weight.set_values(&w).unwrap();
            let up = loss(&d);
            w[i] -= 2.0 * eps;
            d.weight.set_values(&w).unwrap();
            let down = loss(&d);
            let numeric = (up - down) / (2.0 * eps as f64);
            assert!(
                (numeric - analytic[i] as f64).abs() < 2e-3,
                "weight {i}: {numeric} vs {}",
                analytic[i]
            );
        }
        // A unit's losing segments get no gradient at all.
        d.weight.set_values(&w0).unwrap();
        let winners = strongest(
            &to_host(&d.weight.value().clone().reshape_like(&(12, 5)).matmul(ctx)),
            4,
            2,
        );
        for u in 0..3 {
            for s in 0..4 {
                if winners[u * 2] != s && winners[u * 2 + 1] != s {
                    assert!(analytic[(u * 4 + s) * 5..(u * 4 + s + 1) * 5]
                        .iter()
                        .all(|&g| g == 0.0));
                }
            }
        }
    }
}
