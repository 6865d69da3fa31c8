//! The one epoch loop, [`fit`], shared by every kind that trains: train an epoch,
//! evaluate on test (and validation), early-stop, keep the last or best weights, and
//! return the [`History`] of [`EpochRow`]s. It reports progress through a callback and
//! never prints or writes files.

use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::nn::{evaluate, train_epoch, Device, Model, Optimizer};
use crate::seeds;
use crate::stages::Result;

use super::Prepared;

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
    /// With [`FitPlan::remember_best_test`]: the index into `rows` of the epoch with the
    /// best test accuracy and every parameter's values after it (the checkpoint Bain's
    /// code saves and evaluates).
    pub best_test: Option<(usize, Vec<Vec<f32>>)>,
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
        let best_test = match (self.best_test, later.best_test) {
            (Some(a), Some(b)) if self.rows[a.0].test_accuracy >= later.rows[b.0].test_accuracy => {
                Some(a)
            }
            (a, b) => b.map(|(i, v)| (i + offset, v)).or(a),
        };
        self.rows.extend(later.rows);
        History {
            rows: self.rows,
            kept: later.kept + offset,
            min_validation_loss,
            snapshot: self.snapshot.or(later.snapshot),
            best_test,
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
    /// Keep a copy of the best test-accuracy epoch's weights in [`History::best_test`]
    /// (whichever epoch's weights stay in the network).
    pub remember_best_test: bool,
    /// Makes each epoch's training rows from the prepared ones (random
    /// augmentation); `None` trains on the prepared rows.
    pub augment: Option<&'a Augmentation<'a>>,
}

/// Each epoch's training rows, from the prepared rows and the epoch.
pub type Augmentation<'a> = dyn Fn(&[f32], usize) -> Vec<f32> + 'a;

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
    let mut best_test: Option<(usize, Vec<Vec<f32>>)> = None;
    for epoch in plan.first_epoch..plan.first_epoch + plan.epochs {
        let start = Instant::now();
        let augmented = plan.augment.map(|a| a(&data.train_x, epoch));
        let stats = train_epoch(
            net,
            opt,
            augmented.as_deref().unwrap_or(&data.train_x),
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
        )?;
        let test = evaluate(net, &data.test_x, &data.test_y, plan.eval_batch_size)?;
        let val = match &data.validation {
            Some((x, y)) => Some(evaluate(net, x, y, plan.eval_batch_size)?),
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
        if plan.remember_best_test
            && best_test
                .as_ref()
                .is_none_or(|(b, _)| test.accuracy > rows[*b].test_accuracy)
        {
            best_test = Some((i, net.params().iter().map(|p| p.values()).collect()));
        }
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
            p.set_values(&v)?;
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
        best_test,
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::nn::{Cpu, InitConfig, InputShape, ModelConfig, Network, OptimizerConfig};
    use crate::stages::training::Normalize;

    /// A learnable training set (the label is the brightest of 4 inputs) and a
    /// validation set whose labels are noise, so validation stops improving soon.
    fn data() -> Prepared {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut split = |n: usize, noise: bool| {
            let x: Vec<f32> = (0..n * 4).map(|_| rng.gen::<f32>()).collect();
            let y: Vec<u8> = (0..n)
                .map(|i| {
                    if noise {
                        rng.gen_range(0..4)
                    } else {
                        let row = &x[i * 4..i * 4 + 4];
                        (0..4).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u8
                    }
                })
                .collect();
            (x, y)
        };
        let (train_x, train_y) = split(400, false);
        let (test_x, test_y) = split(100, false);
        let validation = Some(split(100, true));
        Prepared {
            shape: InputShape {
                channels: 1,
                height: 1,
                width: 4,
                classes: 4,
            },
            normalize: Normalize {
                mean: vec![0.0],
                std: vec![1.0],
            },
            train_x,
            train_y,
            test_x,
            test_y,
            validation,
        }
    }

    fn run(early_stopping: Option<&EarlyStopping>, keep: Keep) -> (History, Network<Cpu>) {
        let dev = Cpu::default();
        let data = data();
        let model = ModelConfig::Mlp { hidden: vec![32] };
        let mut net = Network::new(&model, data.shape, &InitConfig::default(), 3, &dev).unwrap();
        let mut opt = Optimizer::new(OptimizerConfig::Adam {
            lr: 0.02,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        });
        let history = fit(
            &mut net,
            &mut opt,
            &data,
            FitPlan {
                first_epoch: 1,
                epochs: 40,
                batch_size: 20,
                eval_batch_size: 100,
                early_stopping,
                keep,
                seed: 11,
                progress: &mut |_, _, _| {},
                snapshot_at: None,
                remember_best_test: true,
                augment: None,
            },
        )
        .unwrap();
        (history, net)
    }

    #[test]
    fn early_stopping_stops_patience_epochs_after_the_best_validation_loss() {
        let es = EarlyStopping {
            patience: 3,
            metric: StopMetric::ValidationLoss,
        };
        let (h, _) = run(Some(&es), Keep::Last);
        assert!(h.rows.len() < 40, "noise labels never keep improving");
        let best = h.min_validation_loss.expect("there is a validation split");
        assert_eq!(
            h.rows.len() - 1 - best,
            es.patience,
            "stops exactly `patience` epochs after the best one"
        );
        assert!(h.rows[best + 1..]
            .iter()
            .all(|r| r.validation_loss >= h.rows[best].validation_loss));
        let top = h
            .rows
            .iter()
            .map(|r| r.validation_accuracy)
            .fold(f64::MIN, f64::max);
        assert_eq!(
            h.rows[h.kept].validation_accuracy, top,
            "with early stopping the best epoch by validation accuracy is kept"
        );
    }

    #[test]
    fn keep_best_leaves_the_best_validation_epochs_weights_in_the_network() {
        let (h, net) = run(None, Keep::Best);
        assert_eq!(h.rows.len(), 40, "without early stopping every epoch runs");
        let best = h
            .rows
            .iter()
            .map(|r| r.validation_accuracy)
            .fold(f64::MIN, f64::max);
        let first_best = h
            .rows
            .iter()
            .position(|r| r.validation_accuracy == best)
            .unwrap();
        assert_eq!(
            h.kept, first_best,
            "the first epoch reaching the best is kept"
        );
        let data = data();
        let test = evaluate(&net, &data.test_x, &data.test_y, 100).unwrap();
        assert_eq!(
            test.accuracy, h.rows[h.kept].test_accuracy,
            "the network holds the kept epoch's weights"
        );
        let (last, last_net) = run(None, Keep::Last);
        assert_eq!(last.kept, 39);
        let (i, values) = last.best_test.as_ref().expect("remembered");
        let top = last
            .rows
            .iter()
            .map(|r| r.test_accuracy)
            .fold(f64::MIN, f64::max);
        assert_eq!(
            last.rows[*i].test_accuracy, top,
            "the best test epoch is remembered"
        );
        let mut at_best = last_net.clone();
        for (p, v) in at_best.params_mut().into_iter().zip(values) {
            p.set_values(v).unwrap();
        }
        let again = evaluate(&at_best, &data.test_x, &data.test_y, 100).unwrap();
        assert_eq!(again.accuracy, top, "its weights give that accuracy again");
    }
}
