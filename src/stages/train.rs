//! `kind: train`: trains one network on an upstream dataset and stores its weights,
//! its initial weights (for rewinding), and a per-epoch metrics table.
//!
//! Outputs: `weights.safetensors` (the kept model), `init.safetensors`, `model.json`
//! (model config, input shape, normalization: enough to rebuild the network) and
//! `metrics.csv` (epoch, train loss/accuracy, test loss/accuracy, validation
//! loss/accuracy). Wall time per epoch is not in the object, so that identical runs give
//! identical bytes (and early cutoff works); it is in the manifest as `epoch_seconds`.
//! The epoch loop and the params it shares with the other training kinds are in
//! [`super::training`].

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::nn::{checkpoint, Device, InitConfig, ModelConfig, Network, Optimizer, OptimizerConfig};
use crate::seeds;

use super::context::one_dataset;
use super::dataset::load_input;
use super::on_device::{on_device, OnDevice};
use super::params::ParamError;
use super::training::{fit, FitPlan, ModelCard, Prepared, Stopping, Training};
use super::{Error, Metrics, Result, StageContext, TypedStage, Upstream};

/// The kept weights, in a `train` stage's output.
pub const WEIGHTS: &str = "weights.safetensors";
/// The initial weights (for rewinding), in a `train` stage's output.
pub const INIT_WEIGHTS: &str = "init.safetensors";
/// The per-epoch table, in a `train` stage's output.
pub const METRICS_TABLE: &str = "metrics.csv";

/// Params of a `train` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainParams {
    /// Architecture.
    pub model: ModelConfig,
    /// Weight and bias initialization.
    pub init: InitConfig,
    /// Optimizer, epochs, batch sizes, normalization.
    #[serde(flatten)]
    pub training: Training,
    /// Early stopping and which epoch's weights to keep.
    #[serde(flatten)]
    pub stopping: Stopping,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            model: ModelConfig::Mlp {
                hidden: vec![300, 100],
            },
            init: InitConfig::default(),
            training: Training {
                optimizer: OptimizerConfig::Adam {
                    lr: 1.2e-3,
                    betas: [0.9, 0.999],
                    eps: 1e-8,
                    weight_decay: 0.0,
                },
                epochs: 10,
                batch_size: 60,
                eval_batch_size: 1000,
                normalize: None,
            },
            stopping: Stopping::default(),
        }
    }
}

/// The `train` stage kind.
pub struct TrainStage;

impl TypedStage for TrainStage {
    const NAME: &'static str = "train";
    // 2: matrix products on the AVX-512 kernel (another summation order).
    // 3: convolutions in tiles (another summation order).
    const VERSION: u32 = 3;
    type Params = TrainParams;

    fn check_inputs(_: &TrainParams, inputs: &[Upstream]) -> std::result::Result<(), ParamError> {
        one_dataset(inputs)
    }

    fn validate(p: &TrainParams) -> std::result::Result<(), ParamError> {
        p.training.validate()?;
        p.stopping.validate()
    }

    fn run(params: &TrainParams, ctx: &StageContext) -> Result<Metrics> {
        on_device(ctx.device, TrainJob { params, ctx })
    }
}

struct TrainJob<'a> {
    params: &'a TrainParams,
    ctx: &'a StageContext<'a>,
}

impl OnDevice for TrainJob<'_> {
    type Output = Metrics;
    fn run<D: Device<f32>>(self, dev: D) -> Result<Metrics> {
        train(dev, self.params, self.ctx)
    }
}

fn train<D: Device<f32>>(dev: D, params: &TrainParams, ctx: &StageContext) -> Result<Metrics> {
    let ds = load_input(ctx)?;
    let training = &params.training;
    let data = Prepared::new(&ds, training.normalize.as_ref())?;
    let mut net = Network::new(
        &params.model,
        data.shape,
        &params.init,
        seeds::derive(ctx.seed, "init", 0),
        &dev,
    )?;
    checkpoint::save(&net, &ctx.out_dir.join(INIT_WEIGHTS))?;
    let mut opt = Optimizer::new(training.optimizer.clone());
    let epochs = training.epochs;
    let history = fit(
        &mut net,
        &mut opt,
        &data,
        FitPlan {
            first_epoch: 1,
            epochs,
            batch_size: training.batch_size,
            eval_batch_size: training.eval_batch_size,
            early_stopping: params.stopping.early_stopping.as_ref(),
            keep: params.stopping.keep,
            seed: ctx.seed,
            snapshot_at: None,
            remember_best_test: false,
            augment: None,
            progress: &mut |epoch, batch, batches| {
                ctx.progress.update(
                    ((epoch - 1) * batches + batch) as u64,
                    (epochs * batches) as u64,
                    &format!("epoch {epoch}/{epochs}"),
                );
            },
        },
    )?;
    checkpoint::save(&net, &ctx.out_dir.join(WEIGHTS))?;
    ModelCard {
        model: params.model.clone(),
        shape: data.shape,
        normalize: data.normalize.clone(),
    }
    .write(&ctx.out_dir)?;
    crate::table::write_csv(&ctx.out_dir.join(METRICS_TABLE), &mut history.frame())
        .map_err(Error::Failed)?;
    let kept = &history.rows[history.kept];
    let samples = data.train_y.len() * history.rows.len();
    let seconds: f64 = history.rows.iter().map(|r| r.seconds).sum();
    Ok(Metrics::from([
        ("test_accuracy".into(), json!(kept.test_accuracy)),
        (
            "best_test_accuracy".into(),
            json!(history.best_test_accuracy()),
        ),
        ("kept_epoch".into(), json!(kept.epoch)),
        ("epochs_run".into(), json!(history.rows.len())),
        (
            "validation_accuracy".into(),
            json!(finite(kept.validation_accuracy)),
        ),
        (
            "epoch_seconds".into(),
            json!(history.rows.iter().map(|r| r.seconds).collect::<Vec<_>>()),
        ),
        (
            "train_samples_per_second".into(),
            json!(samples as f64 / seconds.max(1e-9)),
        ),
    ]))
}

/// NaN as JSON null.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
