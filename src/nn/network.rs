//! `Network`: the feed-forward classifiers named by `ModelConfig` (MLP,
//! Bain's LeNet5, the split-CIFAR CNN), built for an `InputShape` with seeded
//! initialisation. It checks that the input fits the architecture and derives
//! the size of the first fully connected layer from the feature maps.
//! Layer naming follows PyTorch: `conv1`, `fc1`, ..., `out`.

use dfdx::prelude::*;
use rand::seq::index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::{InitConfig, InputShape, ModelConfig};
use super::conv::{Conv2d, Map, MaxPool2};
use super::cpu;
use super::error::{Error, Result};
use super::init::Initializer;
use super::linear::Linear;
use super::model::Model;
use super::param::{Param, ParamKind};
use super::Matrix;

/// Without a tape, a batch of a convolutional network larger than this runs
/// in slices of this many examples: LeNet5's feature maps take 200 MB each
/// at batch 1000, a slice's a quarter of that.
const EVAL_SLICE: usize = 256;

/// One stage of a `Network`.
#[derive(Debug, Clone)]
enum Layer<D: Device<f32>> {
    Linear(Linear<D>),
    Conv(Conv2d<D>),
    Relu,
    Pool(MaxPool2<D>),
}

impl<D: Device<f32>> Layer<D> {
    fn forward<T: Tape<f32, D>>(&self, x: Matrix<D, T>) -> Matrix<D, T> {
        match self {
            Layer::Linear(l) => l.forward(x),
            Layer::Conv(c) => c.forward(x),
            Layer::Relu => x.relu(),
            Layer::Pool(p) => p.forward(x),
        }
    }
}

/// A feed-forward classifier described by a `ModelConfig`.
#[derive(Debug, Clone)]
pub struct Network<D: Device<f32>> {
    config: ModelConfig,
    shape: InputShape,
    layers: Vec<Layer<D>>,
    dev: D,
}

impl<D: Device<f32>> Network<D> {
    /// Builds `config` for inputs of `shape`, drawing parameters from `init`
    /// seeded with `seed` (layer by layer, weight before bias).
    pub fn new(
        config: &ModelConfig,
        shape: InputShape,
        init: &InitConfig,
        seed: u64,
        dev: &D,
    ) -> Result<Self> {
        let fail = |reason: String| Error::Shape {
            model: config.type_name().into(),
            shape: shape.to_string(),
            reason,
        };
        if shape.features() == 0 || shape.classes == 0 {
            return Err(fail(
                "every dimension and the class count must be positive".into(),
            ));
        }
        let mut init = Initializer::new(*init, seed);
        let mut layers = Vec::new();
        let (hidden, maps): (Vec<usize>, &[(usize, bool)]) = match config {
            ModelConfig::Mlp { hidden } => (hidden.clone(), &[]),
            ModelConfig::Lenet5 => (vec![256, 256], &[(64, false), (64, true)]),
            ModelConfig::Cnn => (vec![256, 128], &[(64, true), (32, true)]),
        };
        if hidden.contains(&0) {
            return Err(fail("hidden layer widths must be positive".into()));
        }
        let mut map = Map {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        };
        for (i, &(channels, pool)) in maps.iter().enumerate() {
            let conv = Conv2d::new(
                &format!("conv{}", i + 1),
                map,
                channels,
                3,
                1,
                &mut init,
                dev,
            );
            map = conv.output();
            layers.push(Layer::Conv(conv));
            layers.push(Layer::Relu);
            if pool {
                if map.height < 2 || map.width < 2 {
                    return Err(fail(format!(
                        "feature map {}x{} is too small to pool",
                        map.height, map.width
                    )));
                }
                let p = MaxPool2::new(map, dev);
                map = p.output();
                layers.push(Layer::Pool(p));
            }
        }
        let mut inputs = map.len();
        for (i, &width) in hidden.iter().enumerate() {
            let name = format!("fc{}", i + 1);
            let l = Linear::new(&name, ParamKind::FcWeight, inputs, width, &mut init, dev);
            layers.push(Layer::Linear(l));
            layers.push(Layer::Relu);
            inputs = width;
        }
        let out = Linear::new(
            "out",
            ParamKind::OutputWeight,
            inputs,
            shape.classes,
            &mut init,
            dev,
        );
        layers.push(Layer::Linear(out));
        Ok(Self {
            config: config.clone(),
            shape,
            layers,
            dev: dev.clone(),
        })
    }

    /// The configuration this network was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The forward pass of the whole batch at once. The input is data: the
    /// first layer takes it without a tape, so that (on the CPU) no gradient
    /// is computed for it. A ReLU right after a linear or convolutional layer
    /// is fused into it, and so is a pool right after a convolution (and its ReLU).
    fn forward_all<T: Tape<f32, D>>(&self, x: Matrix<D>) -> Matrix<D, T> {
        let layers = &self.layers;
        let relu_after = |i: usize| matches!(layers.get(i + 1), Some(Layer::Relu));
        let skip = |i: usize| if relu_after(i) { 2 } else { 1 };
        let pool_at = |i: usize| match layers.get(i) {
            Some(Layer::Pool(p)) => Some(p),
            _ => None,
        };
        // A convolution at `i`: its ReLU, the pool after it, the layers used.
        let conv_tail = |i: usize| {
            let pool = pool_at(i + skip(i));
            (relu_after(i), pool, skip(i) + usize::from(pool.is_some()))
        };
        let (mut h, mut i): (Matrix<D, T>, usize) = match layers.first() {
            Some(Layer::Linear(l)) => (l.forward_first(x, relu_after(0)), skip(0)),
            Some(Layer::Conv(c)) => {
                let (relu, pool, used) = conv_tail(0);
                (c.forward_fused(x, relu, pool), used)
            }
            _ => (x.put_tape(T::default()), 0),
        };
        while let Some(layer) = layers.get(i) {
            (h, i) = match layer {
                Layer::Linear(l) => (l.forward_act(h, relu_after(i)), i + skip(i)),
                Layer::Conv(c) => {
                    let (relu, pool, used) = conv_tail(i);
                    (c.forward_fused(h, relu, pool), i + used)
                }
                Layer::Relu | Layer::Pool(_) => (layer.forward(h), i + 1),
            };
        }
        h
    }

    /// Masks every fully connected weight matrix (hidden and output layers,
    /// the ones the lottery stages prune) to `round(keep · n)` of its n
    /// entries at random positions drawn from `seed`: a pruned ticket's
    /// density without the pruning, to measure what training at that density
    /// costs (e.g. FC1 at `keep` 0.03, Bain's 3% ticket: he prunes every layer
    /// at the same rate).
    pub(crate) fn mask_fc_randomly(&mut self, keep: f64, seed: u64) -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for p in self.params_mut() {
            if matches!(p.info().kind, ParamKind::FcWeight | ParamKind::OutputWeight) {
                let n = p.info().numel();
                let kept = ((keep.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
                let mut mask = vec![0.0; n];
                for i in index::sample(&mut rng, n, kept) {
                    mask[i] = 1.0;
                }
                p.set_mask(Some(&mask))?;
            }
        }
        Ok(())
    }
}

impl<D: Device<f32>> Model<D> for Network<D> {
    fn input_shape(&self) -> InputShape {
        self.shape
    }

    fn device(&self) -> &D {
        &self.dev
    }

    fn forward<T: Tape<f32, D>>(&self, x: Matrix<D>) -> Matrix<D, T> {
        let batch = x.shape().1;
        let convolutional = self.layers.iter().any(|l| matches!(l, Layer::Conv(_)));
        if T::OWNS_TAPE || !convolutional || batch <= EVAL_SLICE {
            return self.forward_all(x);
        }
        let mut slices = (0..batch).step_by(EVAL_SLICE).map(|b0| {
            let b1 = (b0 + EVAL_SLICE).min(batch);
            self.forward_all::<T>(x.clone().slice((.., b0..b1)))
        });
        let first = slices.next().expect("the batch is not empty");
        slices.fold(first, |acc, y| (acc, y).concat_along(Axis::<1>))
    }

    /// On our kernel, for a network of linear layers (each maybe followed
    /// by a ReLU) that store every weight: `cpu::dense_logits`.
    fn host_logits(&self, examples: &[f32], n: usize) -> Option<Vec<f32>> {
        let mut dense = Vec::new();
        let mut layers = self.layers.iter().peekable();
        while let Some(layer) = layers.next() {
            let Layer::Linear(l) = layer else {
                return None;
            };
            if l.weight.sparse_layout().is_some() || l.bias.sparse_layout().is_some() {
                return None;
            }
            dense.push(cpu::DenseLayer {
                weight: l.weight.host_values(),
                bias: l.bias.host_values(),
                relu: layers.next_if(|l| matches!(l, Layer::Relu)).is_some(),
            });
        }
        cpu::dense_logits::<D>(&dense, examples, n)
    }

    fn params(&self) -> Vec<&Param<D>> {
        let mut out = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::Linear(l) => out.extend([&l.weight, &l.bias]),
                Layer::Conv(c) => out.extend([&c.weight, &c.bias]),
                Layer::Relu | Layer::Pool(_) => {}
            }
        }
        out
    }

    fn params_mut(&mut self) -> Vec<&mut Param<D>> {
        let mut out = Vec::new();
        for layer in &mut self.layers {
            match layer {
                Layer::Linear(l) => out.extend([&mut l.weight, &mut l.bias]),
                Layer::Conv(c) => out.extend([&mut c.weight, &mut c.bias]),
                Layer::Relu | Layer::Pool(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::optim::{Optimizer, OptimizerConfig};
    use crate::nn::train::train_epoch;

    fn shape(channels: usize, side: usize) -> InputShape {
        InputShape {
            channels,
            height: side,
            width: side,
            classes: 10,
        }
    }

    fn shapes(net: &Network<Cpu>) -> Vec<(String, Vec<usize>)> {
        net.param_infos()
            .into_iter()
            .map(|i| (i.name, i.shape))
            .collect()
    }

    #[test]
    fn architectures_have_bains_layer_sizes() {
        let dev = Cpu::default();
        let init = InitConfig::default();
        let mlp = ModelConfig::Mlp {
            hidden: vec![300, 100],
        };
        let net = Network::new(&mlp, shape(1, 28), &init, 0, &dev).unwrap();
        let names: Vec<_> = shapes(&net).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "fc1.weight",
                "fc1.bias",
                "fc2.weight",
                "fc2.bias",
                "out.weight",
                "out.bias"
            ]
        );
        assert_eq!(
            net.param("fc1.weight").unwrap().info().shape,
            vec![300, 784]
        );
        assert_eq!(
            net.param("out.weight").unwrap().info().kind,
            ParamKind::OutputWeight
        );

        let net = Network::new(&ModelConfig::Lenet5, shape(1, 28), &init, 0, &dev).unwrap();
        let s = shapes(&net);
        assert_eq!(s[0], ("conv1.weight".into(), vec![64, 1, 3, 3]));
        assert_eq!(s[2], ("conv2.weight".into(), vec![64, 64, 3, 3]));
        assert_eq!(s[4], ("fc1.weight".into(), vec![256, 12544]));
        assert_eq!(s[8], ("out.weight".into(), vec![10, 256]));

        let net = Network::new(&ModelConfig::Cnn, shape(3, 32), &init, 0, &dev).unwrap();
        let s = shapes(&net);
        assert_eq!(s[2], ("conv2.weight".into(), vec![32, 64, 3, 3]));
        assert_eq!(s[4], ("fc1.weight".into(), vec![256, 2048]));
        assert_eq!(s[6], ("fc2.weight".into(), vec![128, 256]));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let dev = Cpu::default();
        let init = InitConfig::default();
        let err = Network::new(&ModelConfig::Cnn, shape(3, 3), &init, 0, &dev).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{err}");
        let zero = ModelConfig::Mlp { hidden: vec![0] };
        assert!(Network::new(&zero, shape(1, 4), &init, 0, &dev).is_err());
        let net = Network::new(&zero_free(), shape(1, 4), &init, 0, &dev).unwrap();
        assert!(matches!(
            net.param("fc9.weight"),
            Err(Error::UnknownParam { .. })
        ));
    }

    fn zero_free() -> ModelConfig {
        ModelConfig::Mlp { hidden: vec![] }
    }

    const MNIST: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    };

    /// FC1 (784-300-100-10), Bain's initialization.
    fn fc1(seed: u64) -> Network<Cpu> {
        let mlp = ModelConfig::Mlp {
            hidden: vec![300, 100],
        };
        Network::new(&mlp, MNIST, &InitConfig::default(), seed, &Cpu::default()).unwrap()
    }

    /// Seeded random images in [-1, 1) and labels for `n` examples of `shape`.
    fn random_data(shape: InputShape, n: usize) -> (Vec<f32>, Vec<u8>) {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let images = (0..n * shape.features())
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let labels = (0..n)
            .map(|_| rng.gen_range(0..shape.classes) as u8)
            .collect();
        (images, labels)
    }

    fn adam() -> Optimizer<Cpu> {
        Optimizer::new(OptimizerConfig::Adam {
            lr: 1.2e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 1e-4,
        })
    }

    /// Gives every masked weight of `net` a sparse layout or none.
    fn force_layouts(net: &mut Network<Cpu>, sparse: bool) {
        for p in net.params_mut() {
            if p.mask().is_some() {
                p.force_layout(sparse);
            }
        }
    }

    #[test]
    fn random_fc_masks_keep_the_asked_fraction_of_every_weight_matrix() {
        let mut net = fc1(0);
        net.mask_fc_randomly(0.03, 1).unwrap();
        for p in net.params() {
            let kept = p.mask().map(|m| m.iter().filter(|&&m| m == 1.0).count());
            match p.info().kind {
                ParamKind::Bias => assert_eq!(kept, None),
                _ => {
                    let want = (0.03 * p.info().numel() as f64).round() as usize;
                    assert_eq!(kept, Some(want), "{}", p.info().name);
                    assert!(p.sparse_layout().is_some());
                }
            }
        }
    }

    /// FC1 with 3% of its weights trains on the products that skip the
    /// masked weights as on the dense masked ones (up to summation order):
    /// the same weights after two epochs, masked weights exactly 0.0, and
    /// the same bits with one thread as with two.
    #[test]
    fn sparse_fc1_trains_as_the_dense_masked_path_whatever_the_threads() {
        let (images, labels) = random_data(MNIST, 300);
        let train = |sparse: bool, threads: usize| {
            let mut net = fc1(0);
            net.mask_fc_randomly(0.03, 1).unwrap();
            force_layouts(&mut net, sparse);
            let mut opt = adam();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for epoch in 0..2 {
                    train_epoch(
                        &mut net,
                        &mut opt,
                        &images,
                        &labels,
                        60,
                        epoch,
                        &mut |_, _| {},
                    )
                    .unwrap();
                }
            });
            net
        };
        let (sparse, dense) = (train(true, 2), train(false, 2));
        for (p, q) in sparse.params().iter().zip(dense.params()) {
            let (a, b) = (p.values(), q.values());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let name = &p.info().name;
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{name}[{i}]: {x} vs {y}"
                );
            }
            if let Some(mask) = p.mask() {
                assert!(a
                    .iter()
                    .zip(&mask)
                    .all(|(v, m)| *m == 1.0 || v.to_bits() == 0));
            }
        }
        let one = train(true, 1);
        for (p, q) in sparse.params().iter().zip(one.params()) {
            assert!(
                p.values() == q.values(),
                "{}: threads changed the bits",
                p.info().name
            );
        }
    }

    /// CPU seconds this process has used, all threads.
    fn cpu_seconds() -> f64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec for the call to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }

    /// Wall and CPU seconds per training epoch (6000 examples) of FC1 at
    /// batch 60 (Adam), dense and with every weight matrix masked to each
    /// density, sparse and dense masked, interleaved, twice: what
    /// `SPARSE_BELOW` was chosen from. Other settings: `REPRO_TIMING_KEEP`
    /// (densities, e.g. `0.3,0.03`), `REPRO_TIMING_BATCH` (e.g. `256`) and
    /// `REPRO_TIMING_HIDDEN` (e.g. `2048,2048`). Run with
    /// `cargo test --lib masked_fc1_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn masked_fc1_timing() {
        let env = |name: &str, default: &str| -> Vec<f64> {
            let v = std::env::var(name).unwrap_or_else(|_| default.into());
            v.split(',').map(|x| x.parse().expect("numbers")).collect()
        };
        let keeps = env("REPRO_TIMING_KEEP", "0.5,0.3,0.2,0.15,0.1,0.05,0.03,0.01");
        let batch = env("REPRO_TIMING_BATCH", "60")[0] as usize;
        let hidden: Vec<usize> = env("REPRO_TIMING_HIDDEN", "300,100")
            .into_iter()
            .map(|h| h as usize)
            .collect();
        let build = || {
            let mlp = ModelConfig::Mlp {
                hidden: hidden.clone(),
            };
            Network::new(&mlp, MNIST, &InitConfig::default(), 0, &Cpu::default()).unwrap()
        };
        let (images, labels) = random_data(MNIST, 6000);
        let seconds = |net: &mut Network<Cpu>| {
            let mut opt = adam();
            let warm = batch * MNIST.features();
            train_epoch(
                net,
                &mut opt,
                &images[..warm],
                &labels[..batch],
                batch,
                0,
                &mut |_, _| {},
            )
            .unwrap();
            let (wall, cpu) = (std::time::Instant::now(), cpu_seconds());
            train_epoch(net, &mut opt, &images, &labels, batch, 1, &mut |_, _| {}).unwrap();
            (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu)
        };
        println!("hidden {hidden:?}, batch {batch}");
        for round in 1..=2 {
            let dense = seconds(&mut build());
            println!(
                "round {round}: dense: {:.3} s wall, {:.3} s CPU",
                dense.0, dense.1
            );
            for &keep in &keeps {
                let mut times = [(0.0, 0.0); 2];
                for (t, sparse) in times.iter_mut().zip([true, false]) {
                    let mut net = build();
                    net.mask_fc_randomly(keep, 1).unwrap();
                    force_layouts(&mut net, sparse);
                    *t = seconds(&mut net);
                }
                let [(sw, sc), (dw, dc)] = times;
                println!(
                    "round {round}: keep {keep:>4}: sparse {sw:.3} s wall, {sc:.3} s CPU; \
                     dense masked {dw:.3} s wall, {dc:.3} s CPU; \
                     sparse/dense masked {:.2}x wall, {:.2}x CPU; sparse/dense {:.2}x wall, {:.2}x CPU",
                    dw / sw,
                    dc / sc,
                    dense.0 / sw,
                    dense.1 / sc
                );
            }
        }
    }

    #[test]
    fn forward_gives_logits_per_example() {
        let dev = Cpu::default();
        let net = Network::new(
            &ModelConfig::Cnn,
            shape(3, 8),
            &InitConfig::default(),
            1,
            &dev,
        )
        .unwrap();
        let x: Matrix<Cpu> = dev.sample_normal_like(&(3 * 8 * 8, 5));
        let y = net.forward::<NoneTape>(x);
        assert_eq!(*y.shape(), (10, 5));
        assert!(y.as_vec().iter().all(|v| v.is_finite()));
    }

    /// The logits of `net` on `images` (n examples, one after another)
    /// through the tensor path: transposed to (features, n), then `forward`.
    fn tensor_logits(net: &Network<Cpu>, images: &[f32], n: usize) -> Vec<f32> {
        let features = images.len() / n;
        let mut x = vec![0.0f32; images.len()];
        for (i, v) in images.iter().enumerate() {
            x[(i % features) * n + i / features] = *v;
        }
        let x: Matrix<Cpu> = net.dev.tensor_from_vec(x, (features, n));
        net.forward::<NoneTape>(x).as_vec()
    }

    /// The host path gives the tensor path's bits: at a batch off every
    /// tile size and at one large enough to split over threads, with masked
    /// weights, with an input and a hidden layer mostly zero (which take the
    /// products that skip zeros). A sparse-layout weight or a convolution
    /// leaves it to the tensor path.
    #[test]
    fn host_logits_have_the_tensor_paths_bits() {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let mut net = fc1(5);
        let (images, _) = random_data(MNIST, 1000);
        if cpu::cpu_products() != "repro-sgemm" {
            assert!(net.host_logits(&images, 1000).is_none());
            println!("SKIP host_logits_have_the_tensor_paths_bits: the CPU products do not run on our kernel here");
            return;
        }
        let check = |net: &Network<Cpu>, images: &[f32], n: usize, what: &str| {
            let got = net
                .host_logits(images, n)
                .expect("a dense network on the kernel");
            assert_eq!(got.len(), 10 * n, "{what}");
            assert!(bits(&got) == bits(&tensor_logits(net, images, n)), "{what}");
        };
        check(&net, &images[..37 * 784], 37, "dense, 37 examples");
        check(&net, &images, 1000, "dense, 1000 examples");
        let mostly_zero: Vec<f32> = images
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 23 == 0 { *v } else { 0.0 })
            .collect();
        check(&net, &mostly_zero, 1000, "an input 4% nonzero");
        let silent: Vec<f32> = (0..300)
            .map(|i| if i % 20 == 0 { 0.5 } else { -50.0 })
            .collect();
        net.param_mut("fc1.bias")
            .unwrap()
            .set_values(&silent)
            .unwrap();
        check(&net, &images[..333 * 784], 333, "a hidden layer 5% active");
        net.mask_fc_randomly(0.5, 2).unwrap();
        force_layouts(&mut net, false);
        check(&net, &images[..129 * 784], 129, "masked weights");
        force_layouts(&mut net, true);
        assert!(net.host_logits(&images, 1000).is_none());
        let cnn = Network::new(
            &ModelConfig::Cnn,
            shape(1, 4),
            &InitConfig::default(),
            2,
            &net.dev,
        );
        assert!(cnn.unwrap().host_logits(&[0.0; 16], 1).is_none());
    }

    #[test]
    fn tapeless_batches_run_in_slices_with_the_same_logits() {
        let dev = Cpu::default();
        let net = Network::new(
            &ModelConfig::Cnn,
            shape(1, 4),
            &InitConfig::default(),
            2,
            &dev,
        )
        .unwrap();
        let batch = 2 * EVAL_SLICE + 7;
        let x: Matrix<Cpu> = dev.sample_normal_like(&(16, batch));
        let sliced = net.forward::<NoneTape>(x.clone()).as_vec();
        let whole = net.forward_all::<NoneTape>(x).as_vec();
        crate::nn::testing::assert_close(&sliced, &whole, "logits");
    }

    /// Evaluation speed and peak RSS of LeNet5 at batch 1000; run alone
    /// (the peak is the process's) with
    /// `cargo test --lib lenet5_evaluation_peak_rss -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn lenet5_evaluation_peak_rss() {
        let rate = crate::nn::bench_evaluation(
            &Cpu::default(),
            &crate::nn::BenchNet::Dense(ModelConfig::Lenet5),
            shape(1, 28),
            1000,
            3,
        )
        .unwrap();
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage writes a rusage into the pointer it is given.
        let usage = unsafe {
            assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
            usage.assume_init()
        };
        println!(
            "evaluate lenet5 batch 1000: {rate:.1} samples/s, peak RSS {} MB",
            usage.ru_maxrss / 1024
        );
    }
}
