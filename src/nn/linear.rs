//! The fully connected layer, `Linear`, on runtime-sized dfdx tensors.
//!
//! Activations flow through the whole network feature-major, shape
//! (features, batch), so a layer is `y = W x + b` with `W` stored [out, in]
//! as in PyTorch and no transposes; the tape comes from the parameters, so the
//! network input itself needs none. A sparse weight (pruned below
//! `SPARSE_BELOW` density, on the CPU) takes the products that skip its
//! masked entries.

use dfdx::prelude::*;

use super::cpu;
use super::init::Initializer;
use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// A fully connected layer `y = (W ⊙ M) x + b`.
#[derive(Debug, Clone)]
pub(crate) struct Linear<D: Device<f32>> {
    pub(crate) weight: Param<D>,
    pub(crate) bias: Param<D>,
    inputs: usize,
    outputs: usize,
}

impl<D: Device<f32>> Linear<D> {
    /// A layer named `name` (parameters `name.weight`, `name.bias`), drawing
    /// its weights then its biases from `init`.
    pub(crate) fn new(
        name: &str,
        kind: ParamKind,
        inputs: usize,
        outputs: usize,
        init: &mut Initializer,
        dev: &D,
    ) -> Self {
        let weight = Param::new(
            ParamInfo {
                name: format!("{name}.weight"),
                kind,
                shape: vec![outputs, inputs],
            },
            init.weights(outputs * inputs, inputs, outputs),
            dev,
        );
        let bias = Param::new(
            ParamInfo {
                name: format!("{name}.bias"),
                kind: ParamKind::Bias,
                shape: vec![outputs],
            },
            init.biases(outputs),
            dev,
        );
        Self {
            weight,
            bias,
            inputs,
            outputs,
        }
    }

    /// (inputs, batch) -> (outputs, batch).
    pub(crate) fn forward<T, R>(&self, x: Matrix<D, R>) -> Matrix<D, T>
    where
        T: Tape<f32, D> + Merge<R>,
        R: Tape<f32, D>,
    {
        self.forward_act(x, false)
    }

    /// `forward`, followed by a ReLU if `relu` (fused on the CPU).
    pub(crate) fn forward_act<T, R>(&self, x: Matrix<D, R>, relu: bool) -> Matrix<D, T>
    where
        T: Tape<f32, D> + Merge<R>,
        R: Tape<f32, D>,
    {
        let bias = self.bias.effective::<T>();
        match self.weight.sparse_layout() {
            Some(layout) => cpu::sparse_matmul_bias_act(&self.weight, layout, x, bias, relu),
            None => {
                cpu::matmul_bias_act(self.weight_matrix::<T>(), Some(&self.weight), x, bias, relu)
            }
        }
    }

    /// `forward_act` for the first layer: the input is data, so on the CPU
    /// the backward computes only the weight and bias gradients.
    pub(crate) fn forward_first<T: Tape<f32, D>>(&self, x: Matrix<D>, relu: bool) -> Matrix<D, T> {
        self.forward_act(x, relu)
    }

    /// W ⊙ M as an (outputs, inputs) matrix on tape `T`, for
    /// `matmul_bias_act`. Our kernel reads the weights from the parameter's
    /// host copy, so there the tensor only routes the gradient (`on_tape`).
    fn weight_matrix<T: Tape<f32, D>>(&self) -> Matrix<D, T> {
        let values = if cpu::on_kernel::<D>() {
            self.weight.on_tape::<T>()
        } else {
            self.weight.effective::<T>()
        };
        values.reshape_like(&(self.outputs, self.inputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::config::InitConfig;
    use crate::nn::cpu::SPARSE_BELOW;
    use rand::seq::index;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type Taped = OwnedTape<f32, Cpu>;

    /// y, dW, db and (for a later layer) dx of `l` on x against weights r.
    fn outputs_and_grads(
        l: &Linear<Cpu>,
        x: &Matrix<Cpu>,
        r: &Matrix<Cpu>,
        first: bool,
    ) -> Vec<Vec<f32>> {
        let y: Matrix<Cpu, Taped> = if first {
            l.forward_first(x.clone(), true)
        } else {
            l.forward_act(x.retaped::<Taped>(), true)
        };
        let yv = y.as_vec();
        let grads = (y * r.clone()).sum::<Rank0, _>().backward();
        let mut out = vec![
            yv,
            l.weight.gradient(&grads),
            grads.get(&l.bias.value()).as_vec(),
        ];
        if !first {
            out.push(grads.get(x).as_vec());
        }
        out
    }

    /// The products that skip masked weights give the dense masked path's
    /// outputs and gradients (weight, bias, input) to 1e-5, for a first and
    /// a later layer of an odd shape, from no kept weight through one, 3%
    /// and both sides of the threshold to 50%; the masked entries of dW are
    /// exactly 0.0. Run also with `REPRO_CPU_KERNEL=gemm`.
    #[test]
    fn sparse_products_match_the_dense_masked_path() {
        let dev = Cpu::default();
        let (inputs, outputs) = (70, 37);
        let n = inputs * outputs;
        let below = (SPARSE_BELOW * n as f64).ceil() as usize - 1;
        for kept in [0, 1, n * 3 / 100, below, below + 1, n / 2] {
            let mut init = Initializer::new(InitConfig::default(), 5);
            let mut l = Linear::new("fc", ParamKind::FcWeight, inputs, outputs, &mut init, &dev);
            let mut mask = vec![0.0; n];
            let mut rng = ChaCha8Rng::seed_from_u64(kept as u64);
            for i in index::sample(&mut rng, n, kept) {
                mask[i] = 1.0;
            }
            l.weight.set_mask(Some(&mask)).unwrap();
            assert_eq!(
                l.weight.sparse_layout().is_some(),
                kept <= below,
                "{kept} kept"
            );
            for batch in [1, 45, 64] {
                let x: Matrix<Cpu> = dev.sample_normal_like(&(inputs, batch));
                let r: Matrix<Cpu> = dev.sample_normal_like(&(outputs, batch));
                for first in [true, false] {
                    l.weight.force_layout(true);
                    let sparse = outputs_and_grads(&l, &x, &r, first);
                    l.weight.force_layout(false);
                    let dense = outputs_and_grads(&l, &x, &r, first);
                    for (what, (a, b)) in ["y", "dw", "db", "dx"]
                        .iter()
                        .zip(sparse.iter().zip(&dense))
                    {
                        assert_eq!(a.len(), b.len());
                        for (i, (p, q)) in a.iter().zip(b).enumerate() {
                            assert!(
                                (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                                "{what}[{i}] with {kept} kept, batch {batch}: {p} vs {q}"
                            );
                        }
                    }
                    for (g, m) in sparse[1].iter().zip(&mask) {
                        assert!(*m == 1.0 || g.to_bits() == 0, "masked dW {g}");
                    }
                }
            }
        }
    }

    #[test]
    fn first_layer_gradients_match_the_generic_path() {
        let dev = Cpu::default();
        let mut init = Initializer::new(InitConfig::default(), 5);
        let l = Linear::new("fc1", ParamKind::FcWeight, 7, 4, &mut init, &dev);
        let x: Matrix<Cpu> = dev.sample_normal_like(&(7, 3));
        let r: Matrix<Cpu> = dev.sample_normal_like(&(4, 3));
        let run = |first: bool| {
            let y: Matrix<Cpu, OwnedTape<f32, Cpu>> = if first {
                l.forward_first(x.clone(), false)
            } else {
                l.forward(x.retaped::<OwnedTape<f32, Cpu>>())
            };
            let yv = y.as_vec();
            let grads = (y * r.clone()).sum::<Rank0, _>().backward();
            (
                yv,
                grads.get(&l.weight.value()).as_vec(),
                grads.get(&l.bias.value()).as_vec(),
            )
        };
        let (a, b) = (run(true), run(false));
        for (u, v) in [(&a.0, &b.0), (&a.1, &b.1), (&a.2, &b.2)] {
            for (p, q) in u.iter().zip(v.iter()) {
                assert!((p - q).abs() < 1e-5, "{p} vs {q}");
            }
        }
    }
}
