//! `repro bench`: training and evaluation throughput (samples/s) of the paper's
//! networks on random data, and the wall time of a no-op rerun of a cached pipeline.
//! Numbers are measured, never asserted: quote them, compare them across commits.

use std::time::Instant;

use crate::nn::{self, InputShape, ModelConfig};

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
}

const MNIST: InputShape = InputShape {
    channels: 1,
    height: 28,
    width: 28,
    classes: 10,
};

fn cases() -> Vec<(&'static str, ModelConfig, usize)> {
    let mlp = |h: &[usize]| ModelConfig::Mlp { hidden: h.to_vec() };
    vec![
        ("lenet-300-100", mlp(&[300, 100]), 60),
        ("lenet-300-100", mlp(&[300, 100]), 128),
        ("mlp-2048-2048", mlp(&[2048, 2048]), 128),
        ("mlp-2048-2048", mlp(&[2048, 2048]), 256),
        ("lenet5-conv", ModelConfig::Lenet5, 60),
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
    let repetitions = if args.quick { 3 } else { 5 };
    for (name, model, batch) in cases() {
        let budget = if args.quick { 2_000 } else { 10_000 };
        let steps = (budget / batch).max(3);
        let steps = if name.starts_with("lenet5") {
            steps / 20 + 2
        } else {
            steps
        };
        let train = Runs::measure(repetitions, || {
            nn::bench_training(&dev, &model, MNIST, batch, steps)
        })?;
        emit("train", name, batch, &train, "samples/s");
    }
    for (name, model, _) in cases().into_iter().step_by(2) {
        let steps = match (name.starts_with("lenet5"), args.quick) {
            (true, _) => 2,
            (false, true) => 4,
            (false, false) => 10,
        };
        let eval = Runs::measure(repetitions, || {
            nn::bench_evaluation(&dev, &model, MNIST, 1000, steps)
        })?;
        emit("evaluate", name, 1000, &eval, "samples/s");
    }
    emit("noop-rerun", "synthetic+mlp", 0, &noop_rerun_ms()?, "ms");
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
