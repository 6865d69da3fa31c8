//! Active dendrites (Iyer et al. 2022, Numenta's `AbsoluteMaxGatingDendriticLayer`):
//! each unit has `segments` weight vectors over a context vector; the segment
//! whose activation has the largest absolute value (its sign kept) gates the
//! unit's feed-forward output through a sigmoid, y = z ⊙ σ(d*). The winning
//! segment is chosen on the host (dfdx has no argmax) and only it receives a
//! gradient, as with PyTorch's `gather` on the argmax.
//!
//! On the CPU the segment activations, the choice and the sigmoid are
//! computed once per distinct context of the batch (`BatchContexts`) and the
//! gates then expanded to the examples; other devices compute them for
//! every example.

use dfdx::prelude::*;

use super::contexts::{BatchContexts, Distinct};
use super::cpu::{
    expand_columns, matmul_no_input_grad, mul_mask, segment_activations, to_host, winning_segments,
};
use super::init::Initializer;
use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// Up to this many distinct contexts in a batch, the segment activations are
/// dot products that read the segment weights once (`segment_activations`);
/// more go through the matrix product, which reuses what it reads.
const FEW_CONTEXTS: usize = 8;

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

    /// σ(d*) for every unit and example, (units, batch), from the batch's
    /// contexts.
    pub(crate) fn gate<T: Tape<f32, D>>(&self, contexts: &BatchContexts<D>) -> Matrix<D, T> {
        match contexts.distinct() {
            Some(distinct) => self.gate_distinct(distinct),
            None => self.gate_per_example(contexts.all().clone()),
        }
    }

    /// The segment weights as a (units · segments, context) matrix on tape `T`.
    fn weights<T: Tape<f32, D>>(&self) -> Matrix<D, T> {
        self.as_matrix(self.weight.effective::<T>())
    }

    /// `values`, the segment weights stored flat, as a (units · segments,
    /// context) matrix.
    fn as_matrix<T: Tape<f32, D>>(&self, values: Tensor<(usize,), f32, D, T>) -> Matrix<D, T> {
        values.reshape_like(&(self.units * self.segments, self.context))
    }

    /// The gates computed once per distinct context, then expanded (CPU).
    fn gate_distinct<T: Tape<f32, D>>(&self, distinct: &Distinct<D>) -> Matrix<D, T> {
        let columns = distinct.columns.shape().1;
        let (w, activations) = if columns <= FEW_CONTEXTS {
            // Read from the host copy: the tensor only routes the gradient.
            let activations =
                segment_activations(&self.weight.host_values(), &distinct.rows, self.context);
            (self.as_matrix(self.weight.on_tape::<T>()), activations)
        } else {
            let w = self.weights::<T>();
            let product = matmul_no_input_grad(
                w.retaped::<NoneTape>(),
                Some(&self.weight),
                distinct.columns.clone(),
            );
            (w, to_host(&product))
        };
        let (w, tape) = w.split_tape();
        let choice = strongest(&activations, self.segments, columns);
        let best = winning_segments(
            w.put_tape(tape),
            &activations,
            choice,
            distinct.rows.clone(),
        );
        expand_columns(best.sigmoid(), &distinct.of)
    }

    /// The gates computed for every example from the contexts (context,
    /// batch) with dfdx's ops: the path of devices other than the CPU.
    fn gate_per_example<T: Tape<f32, D>>(&self, context: Matrix<D>) -> Matrix<D, T> {
        // The context is data: skip its gradient.
        let activations = matmul_no_input_grad(self.weights::<T>(), Some(&self.weight), context);
        let batch = activations.shape().1;
        let choice = strongest(&to_host(&activations), self.segments, batch);
        pick_in_groups(activations, self.segments, &choice).sigmoid()
    }
}

/// Row `choice[u·batch + b]` of group `u` of `x` for every example `b`:
/// `x` is (groups·per_group, batch), the result (groups, batch), and the
/// gradient flows back only into the chosen rows: a 0/1 mask, a reshape and
/// a sum over the group axis.
fn pick_in_groups<D: Device<f32>, T: Tape<f32, D>>(
    x: Matrix<D, T>,
    per_group: usize,
    choice: &[usize],
) -> Matrix<D, T> {
    let (rows, batch) = *x.shape();
    let groups = rows / per_group;
    let mut mask = vec![0.0f32; rows * batch];
    for (i, &s) in choice.iter().enumerate() {
        let (u, b) = (i / batch, i % batch);
        mask[(u * per_group + s) * batch + b] = 1.0;
    }
    mul_mask(x, mask)
        .reshape_like(&(groups, per_group, batch))
        .sum::<(usize, usize), Axis<1>>()
}

/// For each unit u and example (or distinct context) b, the segment with the
/// largest |activation| (the first on ties, as `torch.max`), indexed
/// `u · batch + b`; `values` is (units · segments, batch) row-major.
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
    use crate::nn::testing::assert_close;

    type Taped = OwnedTape<f32, Cpu>;

    /// `units` units of `segments` segments over a `context`-long vector.
    fn sized(dev: &Cpu, units: usize, segments: usize, context: usize) -> Dendrites<Cpu> {
        let config = InitConfig {
            weight: WeightInit::Uniform { width: 1.0 },
            ..InitConfig::default()
        };
        let mut init = Initializer::new(config, 11);
        Dendrites::new("fc1", units, segments, context, &mut init, dev)
    }

    /// Contexts (context, batch) whose example b has the random column
    /// `pattern[b]`.
    fn contexts(dev: &Cpu, context: usize, pattern: &[usize]) -> Matrix<Cpu> {
        let kinds = pattern.iter().max().map_or(0, |&k| k + 1);
        let columns: Matrix<Cpu> = dev.sample_normal_like(&(context, kinds));
        let c = columns.as_vec();
        let mut all = vec![0.0f32; context * pattern.len()];
        for (b, &p) in pattern.iter().enumerate() {
            for k in 0..context {
                all[k * pattern.len() + b] = c[k * kinds + p];
            }
        }
        dev.tensor_from_vec(all, (context, pattern.len()))
    }

    /// The gates and the segment weights' gradient of Σ gate ⊙ r.
    fn gate_and_gradient(d: &Dendrites<Cpu>, gate: Matrix<Cpu, Taped>) -> (Vec<f32>, Vec<f32>) {
        let dev = d.weight.value().device().clone();
        let r: Vec<f32> = (0..gate.shape().num_elements())
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let r = dev.tensor_from_vec(r, *gate.shape());
        let values = gate.as_vec();
        let grads = (gate * r).sum::<Rank0, _>().backward();
        (values, grads.get(&d.weight.value()).as_vec())
    }

    /// The gates and gradient computed once per distinct context equal the
    /// per-example ones, on odd shapes, with one, several, many and only
    /// distinct contexts in a batch.
    #[test]
    fn distinct_contexts_give_the_per_example_gates_and_gradients() {
        let dev = Cpu::default();
        let d = sized(&dev, 7, 3, 5);
        // More than `FEW_CONTEXTS` distinct contexts take the matrix product.
        let patterns: [&[usize]; 5] = [
            &[0; 11],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            &[0, 1, 0, 2, 1, 1, 0, 2, 2, 0, 1],
            &[2, 2, 0, 1, 0, 2, 1],
            &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 5, 0],
        ];
        for pattern in patterns {
            let all = contexts(&dev, 5, pattern);
            let contexts = BatchContexts::new(all.clone());
            let distinct = contexts.distinct().unwrap().columns.shape().1;
            assert_eq!(distinct, pattern.iter().max().unwrap() + 1);
            let (gate, grad) = gate_and_gradient(&d, d.gate::<Taped>(&contexts));
            let (want_gate, want_grad) = gate_and_gradient(&d, d.gate_per_example::<Taped>(all));
            assert_close(&gate, &want_gate, "gate");
            assert_close(&grad, &want_grad, "segment gradient");
            assert!(grad.iter().any(|&g| g != 0.0));
        }
    }

    /// The distinct-context path gives the same bits on one thread and on
    /// two, with the gradient large enough to be split among threads.
    #[test]
    fn distinct_contexts_do_not_depend_on_the_thread_count() {
        let dev = Cpu::default();
        let d = sized(&dev, 37, 10, 200);
        let contexts = BatchContexts::new(contexts(&dev, 200, &[0, 1, 0, 2, 2, 1, 0, 0, 1]));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (gate, grad) = pool.install(|| gate_and_gradient(&d, d.gate::<Taped>(&contexts)));
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            (bits(gate), bits(grad))
        };
        assert!(run(1) == run(2), "threads changed the bits");
    }

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
        let gate = d
            .gate::<NoneTape>(&BatchContexts::new(ctx.clone()))
            .as_vec();
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
            let g = d
                .gate::<NoneTape>(&BatchContexts::new(ctx.clone()))
                .as_vec();
            g.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum()
        };
        let rt = dev.tensor_from_vec(r.clone(), (3, 2));
        let out = d.gate::<OwnedTape<f32, Cpu>>(&BatchContexts::new(ctx.clone()));
        let grads = (out * rt).sum::<Rank0, _>().backward();
        let analytic = grads.get(&d.weight.value()).as_vec();
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
