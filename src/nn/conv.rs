//! 3x3-style convolution (`Conv2d`) and 2x2 max pooling (`MaxPool2`), because
//! dfdx 0.13's own conv and pool are nightly-only and nightly does not build.
//!
//! Activations are feature-major, (C·H·W, batch). A convolution is im2col to
//! (C·K·K, OH·OW·batch) and one product with the [O, C·K·K] kernel; its output
//! (O·OH·OW, batch) is already the next layer's input layout, and flattening
//! for the fully connected head is a no-op. On the CPU, `cpu::conv2d` runs
//! the convolution, its bias, a fused ReLU and (`forward_fused`) a fused 2x2
//! max pool as one op, in tiles of examples and output rows with bounded
//! im2col columns; a pool on its own is `cpu::max_pool2`. On other devices the generic path uses
//! stable, device-generic dfdx ops: im2col is one `gather` along axis 0 with a
//! precomputed index (zero padding points at one extra zero row appended to
//! the input) and a free reshape, then `matmul`; pooling gathers the four
//! window entries next to each other and takes `max` over them. Both drop an
//! odd last row or column like PyTorch's `MaxPool2d(2)`.

use dfdx::prelude::*;

use super::cpu::{self, on_cpu, ConvGeom};
use super::init::Initializer;
use super::param::{Param, ParamInfo, ParamKind};
use super::Matrix;

/// Channels, height and width of a feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Map {
    pub(crate) channels: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
}

impl Map {
    /// Number of values per example.
    pub(crate) fn len(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// A stride-1 convolution with square kernels and zero padding.
#[derive(Debug, Clone)]
pub(crate) struct Conv2d<D: Device<f32>> {
    pub(crate) weight: Param<D>,
    pub(crate) bias: Param<D>,
    input: Map,
    output: Map,
    kernel: usize,
    pad: usize,
    padded: bool,
    index: Tensor<(usize,), usize, D>,
}

impl<D: Device<f32>> Conv2d<D> {
    /// A convolution `input.channels -> out_channels` named `name`; the caller
    /// has checked that the kernel fits the padded input, and the padding is
    /// less than the kernel's side (as the CPU backward pass needs).
    pub(crate) fn new(
        name: &str,
        input: Map,
        out_channels: usize,
        kernel: usize,
        pad: usize,
        init: &mut Initializer,
        dev: &D,
    ) -> Self {
        debug_assert!(pad < kernel, "padding of a kernel's side or more");
        let output = Map {
            channels: out_channels,
            height: input.height + 2 * pad + 1 - kernel,
            width: input.width + 2 * pad + 1 - kernel,
        };
        let patch = input.channels * kernel * kernel;
        let weight = Param::new(
            ParamInfo {
                name: format!("{name}.weight"),
                kind: ParamKind::ConvWeight,
                shape: vec![out_channels, input.channels, kernel, kernel],
            },
            init.weights(out_channels * patch, patch, out_channels * kernel * kernel),
            dev,
        );
        let bias = Param::new(
            ParamInfo {
                name: format!("{name}.bias"),
                kind: ParamKind::Bias,
                shape: vec![out_channels],
            },
            init.biases(out_channels),
            dev,
        );
        let index = im2col_index(input, output, kernel, pad);
        let padded = index.iter().any(|&i| i == input.len());
        let n = index.len();
        Self {
            weight,
            bias,
            input,
            output,
            kernel,
            pad,
            padded,
            index: dev.tensor_from_vec(index, (n,)),
        }
    }

    /// Shape of the output feature map.
    pub(crate) fn output(&self) -> Map {
        self.output
    }

    /// The geometry the CPU kernels take.
    pub(crate) fn geom(&self) -> ConvGeom {
        ConvGeom {
            input: self.input,
            output: self.output,
            kernel: self.kernel,
            pad: self.pad,
        }
    }

    /// (C·H·W, batch) -> (O·OH·OW, batch); on the CPU through `cpu::conv2d`
    /// (in tiles on the host), elsewhere through dfdx's `gather` and `matmul`.
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
        self.forward_fused(x, relu, None)
    }

    /// `forward`, a ReLU if `relu`, then `pool` if given (whose input map
    /// must be this layer's output): on the CPU one op, in tiles that never
    /// hold the whole unpooled output of a tapeless batch.
    pub(crate) fn forward_fused<T, R>(
        &self,
        x: Matrix<D, R>,
        relu: bool,
        pool: Option<&MaxPool2<D>>,
    ) -> Matrix<D, T>
    where
        T: Tape<f32, D> + Merge<R>,
        R: Tape<f32, D>,
    {
        debug_assert!(pool.is_none_or(|p| p.input == self.output));
        if !on_cpu::<D>() {
            let y = self.forward_generic(x);
            let y = if relu { y.relu() } else { y };
            return match pool {
                Some(p) => p.forward_generic(y),
                None => y,
            };
        }
        cpu::conv2d(
            self.kernel_matrix::<T>(),
            Some(&self.weight),
            self.bias.effective::<T>(),
            x,
            self.geom(),
            relu,
            pool.is_some(),
        )
    }

    /// `forward_act` for the first layer, whose input is data: on the CPU
    /// `conv2d` sees an input without a tape and skips its gradient.
    pub(crate) fn forward_first<T: Tape<f32, D>>(&self, x: Matrix<D>, relu: bool) -> Matrix<D, T> {
        self.forward_act(x, relu)
    }

    /// The (O, C·K·K) kernel matrix W ⊙ M on tape `T`.
    fn kernel_matrix<T: Tape<f32, D>>(&self) -> Matrix<D, T> {
        let patch = self.input.channels * self.kernel * self.kernel;
        self.weight
            .effective::<T>()
            .reshape_like(&(self.output.channels, patch))
    }

    /// The device-generic path.
    pub(crate) fn forward_generic<T, R>(&self, x: Matrix<D, R>) -> Matrix<D, T>
    where
        T: Tape<f32, D> + Merge<R>,
        R: Tape<f32, D>,
    {
        let batch = x.shape().1;
        let x = if self.padded {
            let zero: Matrix<D> = x.device().zeros_like(&(1, batch));
            (x, zero).concat_along(Axis::<0>)
        } else {
            x
        };
        let patch = self.input.channels * self.kernel * self.kernel;
        let positions = self.output.height * self.output.width;
        let cols: Matrix<D, R> = x.gather(self.index.clone());
        let cols = cols.reshape_like(&(patch, positions * batch));
        let w = self
            .weight
            .effective::<T>()
            .reshape_like(&(self.output.channels, patch));
        let b = self
            .bias
            .effective::<T>()
            .broadcast_like::<_, Axis<1>>(&(self.output.channels, positions * batch));
        (w.matmul(cols) + b).reshape_like(&(self.output.len(), batch))
    }
}

/// Row of the (padded) input read by each im2col row, ordered
/// (channel, ky, kx, oy, ox); out-of-image reads point at the zero row `input.len()`.
fn im2col_index(input: Map, output: Map, kernel: usize, pad: usize) -> Vec<usize> {
    let zero_row = input.len();
    let mut index = Vec::with_capacity(input.channels * kernel * kernel * output.len());
    for c in 0..input.channels {
        for ky in 0..kernel {
            for kx in 0..kernel {
                for oy in 0..output.height {
                    for ox in 0..output.width {
                        let iy = (oy + ky).checked_sub(pad).filter(|&y| y < input.height);
                        let ix = (ox + kx).checked_sub(pad).filter(|&x| x < input.width);
                        index.push(match (iy, ix) {
                            (Some(y), Some(x)) => (c * input.height + y) * input.width + x,
                            _ => zero_row,
                        });
                    }
                }
            }
        }
    }
    index
}

/// 2x2 max pooling with stride 2.
#[derive(Debug, Clone)]
pub(crate) struct MaxPool2<D: Device<f32>> {
    pub(crate) input: Map,
    output: Map,
    index: Tensor<(usize,), usize, D>,
}

impl<D: Device<f32>> MaxPool2<D> {
    /// Pooling for inputs shaped `input`.
    pub(crate) fn new(input: Map, dev: &D) -> Self {
        let output = Map {
            channels: input.channels,
            height: input.height / 2,
            width: input.width / 2,
        };
        let mut index = Vec::with_capacity(output.len() * 4);
        for c in 0..output.channels {
            for py in 0..output.height {
                for px in 0..output.width {
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let (y, x) = (2 * py + dy, 2 * px + dx);
                        index.push((c * input.height + y) * input.width + x);
                    }
                }
            }
        }
        let n = index.len();
        Self {
            input,
            output,
            index: dev.tensor_from_vec(index, (n,)),
        }
    }

    /// Shape of the output feature map.
    pub(crate) fn output(&self) -> Map {
        self.output
    }

    /// (C·H·W, batch) -> (C·H/2·W/2, batch).
    pub(crate) fn forward<T: Tape<f32, D>>(&self, x: Matrix<D, T>) -> Matrix<D, T> {
        if on_cpu::<D>() {
            cpu::max_pool2(x, self.input)
        } else {
            self.forward_generic(x)
        }
    }

    /// The device-generic path.
    pub(crate) fn forward_generic<T: Tape<f32, D>>(&self, x: Matrix<D, T>) -> Matrix<D, T> {
        let batch = x.shape().1;
        let windows: Matrix<D, T> = x.gather(self.index.clone());
        windows
            .reshape_like(&(self.output.len(), 4, batch))
            .max::<(usize, usize), Axis<1>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::config::InitConfig;
    use crate::nn::testing::assert_close;

    const INPUT: Map = Map {
        channels: 2,
        height: 5,
        width: 4,
    };
    const BATCH: usize = 3;

    fn conv(pad: usize) -> Conv2d<Cpu> {
        let mut init = Initializer::new(InitConfig::default(), 3);
        Conv2d::new("conv1", INPUT, 3, 3, pad, &mut init, &Cpu::default())
    }

    /// Direct convolution on the host, same layouts as `Conv2d`.
    fn naive(conv: &Conv2d<Cpu>, x: &[f32], pad: usize) -> Vec<f32> {
        let (w, b) = (conv.weight.values(), conv.bias.values());
        let out = conv.output();
        let mut y = vec![0.0; out.len() * BATCH];
        for o in 0..out.channels {
            for oy in 0..out.height {
                for ox in 0..out.width {
                    for n in 0..BATCH {
                        let mut acc = b[o];
                        for c in 0..INPUT.channels {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = (oy + ky, ox + kx);
                                    if iy < pad || ix < pad {
                                        continue;
                                    }
                                    let (iy, ix) = (iy - pad, ix - pad);
                                    if iy >= INPUT.height || ix >= INPUT.width {
                                        continue;
                                    }
                                    let xi =
                                        ((c * INPUT.height + iy) * INPUT.width + ix) * BATCH + n;
                                    acc += w[((o * INPUT.channels + c) * 3 + ky) * 3 + kx] * x[xi];
                                }
                            }
                        }
                        y[((o * out.height + oy) * out.width + ox) * BATCH + n] = acc;
                    }
                }
            }
        }
        y
    }

    fn input(dev: &Cpu) -> Matrix<Cpu> {
        dev.sample_normal_like(&(INPUT.len(), BATCH))
    }

    #[test]
    fn matches_direct_convolution_with_and_without_padding() {
        let dev = Cpu::default();
        for pad in [0, 1] {
            let conv = conv(pad);
            let x = input(&dev);
            let y = conv.forward::<NoneTape, NoneTape>(x.clone()).as_vec();
            let expected = naive(&conv, &x.as_vec(), pad);
            assert_eq!(y.len(), expected.len());
            for (a, b) in y.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "pad {pad}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Cpu::default();
        let mut conv = conv(1);
        let x = input(&dev);
        let r: Matrix<Cpu> = dev.sample_normal_like(&(conv.output().len(), BATCH));
        let loss_of = |conv: &Conv2d<Cpu>, x: &Matrix<Cpu>| -> f64 {
            let y = conv.forward::<NoneTape, NoneTape>(x.clone()).as_vec();
            y.iter()
                .zip(r.as_vec())
                .map(|(a, b)| (*a as f64) * b as f64)
                .sum()
        };
        let y = conv.forward::<OwnedTape<f32, Cpu>, OwnedTape<f32, Cpu>>(x.retaped());
        let grads = (y * r.clone()).sum::<Rank0, _>().backward();
        let gw = grads.get(&conv.weight.value()).as_vec();
        let gb = grads.get(&conv.bias.value()).as_vec();
        let gx = grads.get(&x).as_vec();

        let eps = 1e-2;
        let w0 = conv.weight.values();
        for i in (0..w0.len()).step_by(7) {
            let mut w = w0.clone();
            w[i] += eps;
            conv.weight.set_values(&w).unwrap();
            let up = loss_of(&conv, &x);
            w[i] -= 2.0 * eps;
            conv.weight.set_values(&w).unwrap();
            let down = loss_of(&conv, &x);
            let fd = (up - down) / (2.0 * eps as f64);
            assert!(
                (fd - gw[i] as f64).abs() < 2e-2 * (1.0 + fd.abs()),
                "w[{i}]: {fd} vs {}",
                gw[i]
            );
        }
        conv.weight.set_values(&w0).unwrap();
        let b0 = conv.bias.values();
        for i in 0..b0.len() {
            let mut b = b0.clone();
            b[i] += eps;
            conv.bias.set_values(&b).unwrap();
            let up = loss_of(&conv, &x);
            b[i] -= 2.0 * eps;
            conv.bias.set_values(&b).unwrap();
            let down = loss_of(&conv, &x);
            let fd = (up - down) / (2.0 * eps as f64);
            assert!(
                (fd - gb[i] as f64).abs() < 2e-2 * (1.0 + fd.abs()),
                "b[{i}]: {fd} vs {}",
                gb[i]
            );
        }
        conv.bias.set_values(&b0).unwrap();
        let x0 = x.as_vec();
        for i in (0..x0.len()).step_by(5) {
            let mut xs = x0.clone();
            xs[i] += eps;
            let up = loss_of(
                &conv,
                &dev.tensor_from_vec(xs.clone(), (INPUT.len(), BATCH)),
            );
            xs[i] -= 2.0 * eps;
            let down = loss_of(&conv, &dev.tensor_from_vec(xs, (INPUT.len(), BATCH)));
            let fd = (up - down) / (2.0 * eps as f64);
            assert!(
                (fd - gx[i] as f64).abs() < 2e-2 * (1.0 + fd.abs()),
                "x[{i}]: {fd} vs {}",
                gx[i]
            );
        }
    }

    type Taped = OwnedTape<f32, Cpu>;

    #[test]
    fn cpu_fast_path_matches_generic_path() {
        let dev = Cpu::default();
        for (pad, relu) in [(0, false), (1, false), (1, true)] {
            let conv = conv(pad);
            let x = input(&dev);
            let r: Matrix<Cpu> = dev.sample_normal_like(&(conv.output().len(), BATCH));
            let run = |fast: bool| {
                let xt = x.retaped::<Taped>();
                let y: Matrix<Cpu, Taped> = if fast {
                    conv.forward_act(xt, relu)
                } else {
                    let y = conv.forward_generic(xt);
                    if relu {
                        y.relu()
                    } else {
                        y
                    }
                };
                let yv = y.as_vec();
                let grads = (y * r.clone()).sum::<Rank0, _>().backward();
                let g = |t: &Tensor<(usize,), f32, Cpu>| grads.get(t).as_vec();
                (
                    yv,
                    g(&conv.weight.value()),
                    g(&conv.bias.value()),
                    grads.get(&x).as_vec(),
                )
            };
            let (fast, generic) = (run(true), run(false));
            assert_close(&fast.0, &generic.0, "y");
            assert_close(&fast.1, &generic.1, "dw");
            assert_close(&fast.2, &generic.2, "db");
            assert_close(&fast.3, &generic.3, "dx");

            // The first layer skips the input gradient but not the others.
            let y: Matrix<Cpu, Taped> = conv.forward_first(x.clone(), relu);
            assert_close(&y.as_vec(), &generic.0, "first y");
            let grads = (y * r.clone()).sum::<Rank0, _>().backward();
            assert_close(
                &grads.get(&conv.weight.value()).as_vec(),
                &generic.1,
                "first dw",
            );
            assert_close(
                &grads.get(&conv.bias.value()).as_vec(),
                &generic.2,
                "first db",
            );
        }
    }

    #[test]
    fn cpu_max_pool_matches_generic_path_with_ties() {
        let dev = Cpu::default();
        let map = Map {
            channels: 3,
            height: 5,
            width: 4,
        };
        let pool = MaxPool2::new(map, &dev);
        // Rounded values make ties common; ties all receive the gradient.
        let x: Matrix<Cpu> = dev.sample_normal_like(&(map.len(), BATCH));
        let x = dev.tensor_from_vec(
            x.as_vec().iter().map(|v| (v * 2.0).round()).collect(),
            (map.len(), BATCH),
        );
        let r: Matrix<Cpu> = dev.sample_normal_like(&(pool.output().len(), BATCH));
        let run = |fast: bool| {
            let xt = x.retaped::<Taped>();
            let y = if fast {
                pool.forward(xt)
            } else {
                pool.forward_generic(xt)
            };
            let yv = y.as_vec();
            let grads = (y * r.clone()).sum::<Rank0, _>().backward();
            (yv, grads.get(&x).as_vec())
        };
        let (fast, generic) = (run(true), run(false));
        assert_eq!(fast.0, generic.0);
        assert_close(&fast.1, &generic.1, "dx");
    }

    #[test]
    fn max_pool_takes_window_maxima_and_drops_odd_edges() {
        let dev = Cpu::default();
        let map = Map {
            channels: 1,
            height: 3,
            width: 5,
        };
        let pool = MaxPool2::new(map, &dev);
        assert_eq!(pool.output().len(), 2);
        // One example: rows 0..3 of width 5, values 0..15.
        let x: Matrix<Cpu> = dev.tensor_from_vec((0..15).map(|v| v as f32).collect(), (15, 1));
        let y = pool.forward(x.retaped::<OwnedTape<f32, Cpu>>());
        assert_eq!(y.as_vec(), vec![6.0, 8.0]);
        let grads = y.sum::<Rank0, _>().backward();
        let g = grads.get(&x).as_vec();
        let mut expected = vec![0.0; 15];
        expected[6] = 1.0;
        expected[8] = 1.0;
        assert_eq!(g, expected);
    }
}
