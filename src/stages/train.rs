//! `kind: train`: trains one network on an upstream dataset and stores its weights,
//! its initial weights (for rewinding), and a per-epoch metrics table.
//!
//! Outputs: `weights.safetensors` (the kept model), `init.safetensors`, `model.json`
//! (model config, input shape, normalization: enough to rebuild the network) and
//! `metrics.csv` (epoch, train loss/accuracy, test loss/accuracy, validation
//! loss/accuracy). Wall time per epoch is not in the object, so that identical runs give
//! identical bytes (and early cutoff works); it is in the manifest as `epoch_seconds`.
//! [`fit`] is the epoch loop shared with the other training stages.

use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::Dataset;
use crate::nn::{
    self, checkpoint, evaluate, train_epoch, Device, InitConfig, InputShape, Model, ModelConfig,
    Network, Optimizer, OptimizerConfig,
};
use crate::seeds;

use super::context::one_dataset;
use super::dataset::load_input;
use super::on_device::{on_device, OnDevice};
use super::params::ParamError;
use super::{Error, Metrics, Result, StageContext, TypedStage, Upstream};

/// Input normalization: `(x - mean) / std` per channel, on pixels in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// One value, or one per channel.
    pub mean: Vec<f32>,
    /// One value, or one per channel.
    pub std: Vec<f32>,
}

/// What early stopping watches on the validation split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopMetric {
    /// Lower is better.
    ValidationLoss,
    /// Higher is better.
    ValidationAccuracy,
}

/// Stop when the validation metric has not improved for `patience` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The watched metric.
    #[serde(default = "default_stop_metric")]
    pub metric: StopMetric,
}

fn default_stop_metric() -> StopMetric {
    StopMetric::ValidationLoss
}

/// Which weights a training run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The weights after the last epoch run.
    #[default]
    Last,
    /// The best epoch's weights: by validation accuracy when there is a validation
    /// split, else by test accuracy (Bain's protocol; optimistic, and said so in reports).
    Best,
}

/// Params of a `train` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainParams {
    /// Architecture.
    pub model: ModelConfig,
    /// Weight and bias initialization.
    pub init: InitConfig,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Epochs (the most, with early stopping).
    pub epochs: usize,
    /// Training mini-batch size.
    pub batch_size: usize,
    /// Evaluation batch size (does not change results).
    pub eval_batch_size: usize,
    /// Input normalization; default: the dataset's mean and std.
    pub normalize: Option<Normalize>,
    /// Optional early stopping on the validation split.
    pub early_stopping: Option<EarlyStopping>,
    /// Which weights to keep and report.
    pub keep: Keep,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            model: ModelConfig::Mlp {
                hidden: vec![300, 100],
            },
            init: InitConfig::default(),
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
            early_stopping: None,
            keep: Keep::Last,
        }
    }
}

/// Most epochs a stage may train: far beyond any paper (Bain's 35 per round), and
/// small enough that epoch and iteration counts never overflow.
pub const MAX_EPOCHS: usize = 100_000;

/// Largest batch accepted (a batch is held in memory as one tensor).
pub const MAX_BATCH: usize = 1 << 20;

/// Checks shared by every kind that trains.
pub fn validate_training(
    epochs: usize,
    batch_size: usize,
    eval_batch_size: usize,
) -> std::result::Result<(), ParamError> {
    if !(1..=MAX_EPOCHS).contains(&epochs) {
        return Err(ParamError::new(
            "epochs",
            format!("must be in 1..={MAX_EPOCHS}"),
        ));
    }
    for (key, size) in [
        ("batch_size", batch_size),
        ("eval_batch_size", eval_batch_size),
    ] {
        if !(1..=MAX_BATCH).contains(&size) {
            return Err(ParamError::new(key, format!("must be in 1..={MAX_BATCH}")));
        }
    }
    Ok(())
}

/// The `train` stage kind.
pub struct TrainStage;

impl TypedStage for TrainStage {
    const NAME: &'static str = "train";
    // 2: matrix products on the AVX-512 kernel (another summation order).
    const VERSION: u32 = 2;
    type Params = TrainParams;

    fn check_inputs(_: &TrainParams, inputs: &[Upstream]) -> std::result::Result<(), ParamError> {
        one_dataset(inputs)
    }

    fn validate(p: &TrainParams) -> std::result::Result<(), ParamError> {
        validate_training(p.epochs, p.batch_size, p.eval_batch_size)?;
        if p.early_stopping.as_ref().is_some_and(|e| e.patience == 0) {
            return Err(ParamError::new(
                "early_stopping.patience",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn run(params: &TrainParams, ctx: &StageContext) -> Result<Metrics> {
        on_device(ctx.device, TrainJob { params, ctx })
    }
}

/// Maps an nn error to a stage failure.
pub fn nn_error(e: nn::Error) -> Error {
    Error::Failed(e.to_string())
}

/// A dataset as normalized features, ready to train on.
pub struct Prepared {
    /// Shape of one example, and the number of classes.
    pub shape: InputShape,
    /// Normalization used.
    pub normalize: Normalize,
    /// Training features (N × features).
    pub train_x: Vec<f32>,
    /// Training labels.
    pub train_y: Vec<u8>,
    /// Test features.
    pub test_x: Vec<f32>,
    /// Test labels.
    pub test_y: Vec<u8>,
    /// Validation features and labels, when the dataset has a validation split.
    pub validation: Option<(Vec<f32>, Vec<u8>)>,
}

impl Prepared {
    /// Normalizes every split of a dataset.
    pub fn new(ds: &Dataset, normalize: Option<&Normalize>) -> Result<Prepared> {
        let normalize = normalize.cloned().unwrap_or_else(|| Normalize {
            mean: ds.mean.clone(),
            std: ds.std.clone(),
        });
        let f = |split| {
            ds.to_f32(split, &normalize.mean, &normalize.std)
                .map_err(|e| Error::InvalidInput(e.to_string()))
        };
        let validation = match &ds.validation {
            Some(v) => Some((f(v)?, v.labels.clone())),
            None => None,
        };
        Ok(Prepared {
            shape: InputShape {
                channels: ds.channels,
                height: ds.height,
                width: ds.width,
                classes: ds.classes,
            },
            train_x: f(&ds.train)?,
            train_y: ds.train.labels.clone(),
            test_x: f(&ds.test)?,
            test_y: ds.test.labels.clone(),
            validation,
            normalize,
        })
    }
}

/// One epoch's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (measured during the epoch).
    pub train_loss: f64,
    /// Training accuracy (measured during the epoch).
    pub train_accuracy: f64,
    /// Test loss after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Validation loss after the epoch (NaN without a validation split).
    pub validation_loss: f64,
    /// Validation accuracy after the epoch (NaN without a validation split).
    pub validation_accuracy: f64,
    /// Wall seconds of the epoch, evaluation included.
    pub seconds: f64,
}

/// What [`fit`] did.
#[derive(Debug, Clone)]
pub struct History {
    /// One row per epoch run.
    pub rows: Vec<EpochRow>,
    /// Index into `rows` of the kept epoch.
    pub kept: usize,
    /// Index into `rows` of the epoch with the lowest validation loss (the
    /// "early-stop iteration" of the lottery-ticket papers), if there is a validation split.
    pub min_validation_loss: Option<usize>,
    /// Every parameter's values at [`FitPlan::snapshot_at`], if training got that far.
    pub snapshot: Option<Vec<Vec<f32>>>,
}

impl History {
    /// The best test accuracy of any epoch.
    pub fn best_test_accuracy(&self) -> f64 {
        self.rows
            .iter()
            .map(|r| r.test_accuracy)
            .fold(f64::NAN, f64::max)
    }

    /// This history followed by a later one of the same network (continued training).
    pub fn then(mut self, later: History) -> History {
        let offset = self.rows.len();
        let min_validation_loss = match (self.min_validation_loss, later.min_validation_loss) {
            (Some(a), Some(b)) if self.rows[a].validation_loss <= later.rows[b].validation_loss => {
                Some(a)
            }
            (a, b) => b.map(|b| b + offset).or(a),
        };
        self.rows.extend(later.rows);
        History {
            rows: self.rows,
            kept: later.kept + offset,
            min_validation_loss,
            snapshot: self.snapshot.or(later.snapshot),
        }
    }

    /// The per-epoch table as a data frame.
    pub fn frame(&self) -> DataFrame {
        let col = |f: fn(&EpochRow) -> f64| self.rows.iter().map(f).collect::<Vec<f64>>();
        df!(
            "epoch" => self.rows.iter().map(|r| r.epoch as u32).collect::<Vec<u32>>(),
            "train_loss" => col(|r| r.train_loss),
            "train_accuracy" => col(|r| r.train_accuracy),
            "test_loss" => col(|r| r.test_loss),
            "test_accuracy" => col(|r| r.test_accuracy),
            "validation_loss" => col(|r| r.validation_loss),
            "validation_accuracy" => col(|r| r.validation_accuracy),
        )
        .expect("columns have equal lengths")
    }
}

/// How [`fit`] trains.
pub struct FitPlan<'a> {
    /// Number of the first epoch (1 unless continuing an earlier `fit`); it numbers the
    /// rows and seeds each epoch's shuffle.
    pub first_epoch: usize,
    /// Epochs (at most).
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Optional early stopping.
    pub early_stopping: Option<&'a EarlyStopping>,
    /// Which weights to keep.
    pub keep: Keep,
    /// Seed of the shuffling stream.
    pub seed: u64,
    /// Reports `(epoch, batch, batches)` after every batch.
    pub progress: &'a mut dyn FnMut(usize, usize, usize),
    /// Copies every parameter's values after this many updates (counted from the
    /// first epoch of this `fit`), for rewinding to an iteration.
    pub snapshot_at: Option<usize>,
}

/// The epoch loop: train, evaluate on test (and validation), early-stop, and leave
/// the kept weights in `net`.
pub fn fit<D: Device<f32>, M: Model<D>>(
    net: &mut M,
    opt: &mut Optimizer<D>,
    data: &Prepared,
    plan: FitPlan,
) -> Result<History> {
    let mut rows: Vec<EpochRow> = Vec::new();
    let mut best: Option<(usize, f64, Vec<Vec<f32>>)> = None;
    let mut stop_best: Option<(usize, f64)> = None;
    let mut updates = 0;
    let mut snapshot = None;
    for epoch in plan.first_epoch..plan.first_epoch + plan.epochs {
        let start = Instant::now();
        let stats = train_epoch(
            net,
            opt,
            &data.train_x,
            &data.train_y,
            plan.batch_size,
            seeds::derive(plan.seed, "shuffle", epoch as u64),
            &mut |b, net: &M| {
                updates += 1;
                if plan.snapshot_at == Some(updates) {
                    snapshot = Some(net.params().iter().map(|p| p.values()).collect());
                }
                (plan.progress)(epoch, b.batch, b.batches)
            },
        )
        .map_err(nn_error)?;
        let test =
            evaluate(net, &data.test_x, &data.test_y, plan.eval_batch_size).map_err(nn_error)?;
        let val = match &data.validation {
            Some((x, y)) => Some(evaluate(net, x, y, plan.eval_batch_size).map_err(nn_error)?),
            None => None,
        };
        rows.push(EpochRow {
            epoch,
            train_loss: stats.loss,
            train_accuracy: stats.accuracy,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            validation_loss: val.map_or(f64::NAN, |v| v.loss),
            validation_accuracy: val.map_or(f64::NAN, |v| v.accuracy),
            seconds: start.elapsed().as_secs_f64(),
        });
        let i = rows.len() - 1;
        if plan.keep == Keep::Best || plan.early_stopping.is_some() {
            let score = val.map_or(test.accuracy, |v| v.accuracy);
            if best.as_ref().is_none_or(|(_, s, _)| score > *s) {
                best = Some((i, score, net.params().iter().map(|p| p.values()).collect()));
            }
        }
        if let (Some(es), Some(v)) = (plan.early_stopping, val) {
            let score = match es.metric {
                StopMetric::ValidationLoss => -v.loss,
                StopMetric::ValidationAccuracy => v.accuracy,
            };
            if stop_best.is_none_or(|(_, s)| score > s) {
                stop_best = Some((i, score));
            } else if stop_best.is_some_and(|(b, _)| i - b >= es.patience) {
                break;
            }
        }
    }
    let mut kept = rows.len() - 1;
    if let Some((i, _, values)) = best {
        kept = i;
        for (p, v) in net.params_mut().into_iter().zip(values) {
            p.set_values(&v).map_err(nn_error)?;
        }
    }
    let min_validation_loss = (0..rows.len())
        .filter(|&i| !rows[i].validation_loss.is_nan())
        .min_by(|&a, &b| rows[a].validation_loss.total_cmp(&rows[b].validation_loss));
    Ok(History {
        rows,
        kept,
        min_validation_loss,
        snapshot,
    })
}

/// What a trained network's folder says about how to rebuild it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Architecture.
    pub model: ModelConfig,
    /// Input shape and classes.
    pub shape: InputShape,
    /// Input normalization.
    pub normalize: Normalize,
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
    let data = Prepared::new(&ds, params.normalize.as_ref())?;
    let mut net = Network::new(
        &params.model,
        data.shape,
        &params.init,
        seeds::derive(ctx.seed, "init", 0),
        &dev,
    )
    .map_err(nn_error)?;
    checkpoint::save(&net, &ctx.out_dir.join("init.safetensors")).map_err(nn_error)?;
    let mut opt = Optimizer::new(params.optimizer.clone());
    let epochs = params.epochs;
    let history = fit(
        &mut net,
        &mut opt,
        &data,
        FitPlan {
            first_epoch: 1,
            epochs,
            batch_size: params.batch_size,
            eval_batch_size: params.eval_batch_size,
            early_stopping: params.early_stopping.as_ref(),
            keep: params.keep,
            seed: ctx.seed,
            snapshot_at: None,
            progress: &mut |epoch, batch, batches| {
                ctx.progress.update(
                    ((epoch - 1) * batches + batch) as u64,
                    (epochs * batches) as u64,
                    &format!("epoch {epoch}/{epochs}"),
                );
            },
        },
    )?;
    checkpoint::save(&net, &ctx.out_dir.join("weights.safetensors")).map_err(nn_error)?;
    let card = ModelCard {
        model: params.model.clone(),
        shape: data.shape,
        normalize: data.normalize.clone(),
    };
    write_json(&ctx.out_dir.join("model.json"), &card)?;
    crate::table::write_csv(&ctx.out_dir.join("metrics.csv"), &mut history.frame())
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

/// Writes pretty JSON into a stage's output.
pub fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).expect("plain data serializes");
    std::fs::write(path, text).map_err(super::io_err("write", path))
}
