//! `repro bench`: training and evaluation throughput (samples/s) of the paper's
//! networks on random data, and the wall time of a no-op rerun of a cached pipeline.
//! Numbers are measured, never asserted: quote them, compare them across commits.

use std::time::Instant;

use crate::nn::{
    self, ActiveInit, ActiveSpec, BenchNet, BinaryConfig, BinaryKernels, InputShape, ModelConfig,
    NormKind,
};

use super::{exit, CliError, CliResult};

/// Arguments of `repro bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fewer steps per measurement (a rough number in seconds instead of a minute).
    #[arg(long)]
    quick: bool,
    /// One JSON object per measurement on stdout.
    #[arg(long)]
    json: bool,
    /// Only the rows of these networks (comma-separated names, e.g.
    /// `lenet5-conv,bnn-1024`), or `noop-rerun`; `scripts/bench-pair.py`
    /// uses it to interleave repro's rows with PyTorch's.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

const MNIST: InputShape = InputShape {
    channels: 1,
    height: 28,
    width: 28,
    classes: 10,
};

/// Batches each evaluation run times at least (without `--quick`): at 2,
/// the costliest rows (bnn-4096's, about 50 ms a run) moved by 30% from
/// one run to the next. `scripts/pytorch_bench.py` uses the same.
const MIN_EVAL_BATCHES: usize = 5;

/// One network's measurements: the training batch sizes, whether it is
/// evaluated (at batch 1000), and how much costlier a step is than
/// LeNet-300-100's, which divides its number of steps. `scripts/pytorch_bench.py`
/// has the same table.
struct Case {
    name: &'static str,
    net: BenchNet,
    train_batches: &'static [usize],
    evaluate: bool,
    cost: usize,
}

fn cases() -> Vec<Case> {
    let mlp = |h: &[usize]| ModelConfig::Mlp { hidden: h.to_vec() };
    let bnn = |width: usize, kernels| {
        let config = BinaryConfig {
            hidden: vec![width, width],
            binary: true,
            init_width: 0.1,
            norm: NormKind::Batch,
            binarize_input: false,
        };
        BenchNet::Binary(config, kernels)
    };
    let active = |segments: usize, context: usize| {
        BenchNet::Active(ActiveSpec {
            conv: vec![],
            hidden: vec![2048, 2048],
            conv_percent_on: None,
            percent_on: Some(0.05),
            weight_sparsity: 0.5,
            sparse_output: false,
            segments,
            context,
            context_percent_on: 0.1,
            init: ActiveInit::Numenta,
        })
    };
    let case = |name, net, train_batches, evaluate, cost| Case {
        name,
        net,
        train_batches,
        evaluate,
        cost,
    };
    vec![
        case(
            "lenet-300-100",
            BenchNet::Dense(mlp(&[300, 100])),
            &[60, 128],
            true,
            1,
        ),
        case(
            "mlp-2048-2048",
            BenchNet::Dense(mlp(&[2048, 2048])),
            &[128, 256],
            true,
            1,
        ),
        case(
            "lenet5-conv",
            BenchNet::Dense(ModelConfig::Lenet5),
            &[60],
            true,
            20,
        ),
        case(
            "bnn-1024",
            bnn(1024, BinaryKernels::Packed),
            &[100],
            true,
            1,
        ),
        case(
            "bnn-4096",
            bnn(4096, BinaryKernels::Packed),
            &[100],
            true,
            10,
        ),
        // The float path of the same evaluation, to measure the packed one against.
        case(
            "bnn-4096-float",
            bnn(4096, BinaryKernels::Float),
            &[],
            true,
            10,
        ),
        // The 4096 x 4096 hidden layer's product alone, both paths.
        case(
            "bnn-4096-layer",
            BenchNet::BinaryLayer(4096, BinaryKernels::Packed),
            &[],
            true,
            10,
        ),
        case(
            "bnn-4096-layer-float",
            BenchNet::BinaryLayer(4096, BinaryKernels::Float),
            &[],
            true,
            10,
        ),
        case(
            "fc1-masked-3pct",
            BenchNet::Masked(mlp(&[300, 100]), 0.03),
            &[60],
            false,
            1,
        ),
        case("sparse-2048", active(0, 0), &[256], true, 2),
        case("adn-2048", active(10, 784), &[256], true, 2),
    ]
}

/// Runs `repro bench`.
pub fn exec(args: Args) -> CliResult {
    let dev = nn::cpu();
    let threads = rayon::current_num_threads();
    let emit = |what: &str, model: &str, batch: usize, runs: &Runs, unit: &str| {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"bench": what, "model": model, "batch_size": batch, "value": runs.median, "best": runs.best, "repetitions": runs.count, "unit": unit, "threads": threads})
            );
        } else {
            println!(
                "{what:<10} {model:<15} batch {batch:>4}  {:>10.1} {unit}  (best {:.1}, {} runs)",
                runs.median, runs.best, runs.count
            );
        }
    };
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let known: Vec<&str> = cases()
        .iter()
        .map(|c| c.name)
        .chain(["noop-rerun"])
        .collect();
    if let Some(unknown) = args.only.iter().find(|o| !known.contains(&o.as_str())) {
        return Err(CliError::invalid(format!(
            "--only: no benchmark `{unknown}`; known: {}",
            known.join(", ")
        )));
    }
    let repetitions = if args.quick { 3 } else { 5 };
    let budget = if args.quick { 2_000 } else { 10_000 };
    for case in cases().into_iter().filter(|c| wanted(c.name)) {
        for &batch in case.train_batches {
            let steps = (budget / (batch * case.cost)).max(3);
            let train = Runs::measure(repetitions, || {
                nn::on_pool(|| nn::bench_training(&dev, &case.net, MNIST, batch, steps))
            })?;
            emit("train", case.name, batch, &train, "samples/s");
        }
        if case.evaluate {
            let steps = if args.quick {
                (4 / case.cost).max(2)
            } else {
                (10 / case.cost).max(MIN_EVAL_BATCHES)
            };
            let eval = Runs::measure(repetitions, || {
                nn::on_pool(|| nn::bench_evaluation(&dev, &case.net, MNIST, 1000, steps))
            })?;
            emit("evaluate", case.name, 1000, &eval, "samples/s");
        }
    }
    if wanted("noop-rerun") {
        emit("noop-rerun", "synthetic+mlp", 0, &noop_rerun_ms()?, "ms");
    }
    Ok(exit::OK)
}

/// Repeated measurements of one quantity: this machine's timings vary by
/// 20-40% between runs, so each is repeated and the median reported (with
/// the best, for comparison with single-shot figures).
struct Runs {
    median: f64,
    best: f64,
    count: usize,
}

impl Runs {
    /// Takes `count` measurements of a throughput (higher is better).
    fn measure(count: usize, mut once: impl FnMut() -> nn::Result<f64>) -> Result<Runs, CliError> {
        let values = (0..count)
            .map(|_| once())
            .collect::<nn::Result<Vec<f64>>>()
            .map_err(CliError::failed)?;
        Ok(Runs::of(values, true))
    }

    /// Summarises measured `values`; the best is the highest or the lowest.
    fn of(mut values: Vec<f64>, highest_is_best: bool) -> Runs {
        values.sort_by(f64::total_cmp);
        let count = values.len();
        Runs {
            median: values[count / 2],
            best: if highest_is_best {
                values[count - 1]
            } else {
                values[0]
            },
            count,
        }
    }
}

/// Runs a small pipeline once, then times 5 fully cached `repro run`s, in ms.
fn noop_rerun_ms() -> Result<Runs, CliError> {
    let dir = tempfile::tempdir().map_err(CliError::failed)?;
    let pipeline = dir.path().join("bench.yaml");
    std::fs::write(
        &pipeline,
        "name: bench\nstages:\n  data: { kind: dataset, params: { name: synthetic, train_size: 500, test_size: 100 } }\n  net:\n    kind: train\n    needs: [data]\n    params: { model: { type: mlp, hidden: [16] }, epochs: 1 }\n    matrix: { seed: [0, 1, 2, 3] }\n",
    )
    .map_err(CliError::failed)?;
    let exe = std::env::current_exe().map_err(CliError::failed)?;
    let run = || {
        std::process::Command::new(&exe)
            .arg("run")
            .arg(&pipeline)
            .arg("--store")
            .arg(dir.path().join("store"))
            .stderr(std::process::Stdio::null())
            .status()
    };
    if !run().map_err(CliError::failed)?.success() {
        return Err(CliError::failed("the benchmark pipeline failed"));
    }
    let times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            run().map(|_| t.elapsed().as_secs_f64() * 1000.0)
        })
        .collect::<Result<_, _>>()
        .map_err(CliError::failed)?;
    Ok(Runs::of(times, false))
}
