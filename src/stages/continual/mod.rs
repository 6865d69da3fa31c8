//! `kind: continual`: learns a sequence of tasks one after another with one
//! network and measures forgetting (Iyer et al. 2022; Bain 2022, section 3).
//!
//! Per task: build the task's data (`tasks`), give dendritic networks their
//! context (`context`), reset the optimizer if asked, train with the shared
//! epoch loop [`fit`] (early stopping on the task's validation examples when
//! the dataset has a validation split), then test every task seen so far.
//!
//! With `eval_each_epoch` (Laborieux et al.'s protocol) every task seen so
//! far is also tested after every epoch, into `epoch_accuracy.csv`. A split
//! with `augment` trains each epoch on freshly flipped and warped images.
//!
//! Outputs: `accuracy.csv` (the accuracy matrix, long form: after_task, task,
//! accuracy: test accuracy on task j after training task i), `summary.csv`
//! (per number of tasks trained: mean accuracy over them, latest task's
//! accuracy, first task's accuracy), `epochs.csv` (every epoch of every task),
//! `tasks.json` (the task set) and `weights.safetensors` (the final network).

mod context;
mod model;
mod pyrandom;
mod tasks;

pub use context::ContextKind;
pub use model::ContinualModel;
pub use tasks::{Relabel, TaskSpec};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::augment::Geometry;
use crate::data::Dataset;
use crate::nn::{
    checkpoint, evaluate, ActiveNet, BinaryNet, Device, InputShape, Model, Optimizer,
    OptimizerConfig,
};
use crate::pipeline::names::base_name;
use crate::seeds;

use super::context::one_dataset;
use super::dataset::{load_input, DatasetStage};
use super::files::write_json;
use super::on_device::{on_device, OnDevice};
use super::params::ParamError;
use super::training::{
    fit, Augmentation, EpochRow, FitPlan, History, Keep, Prepared, Stopping, Training,
};
use super::{Error, Metrics, Result, StageContext, TypedStage, Upstream};
use context::Contexts;
use tasks::{Part, TaskSet};

/// The accuracy matrix (after_task, task, accuracy), in a `continual` stage's output.
pub const ACCURACY_TABLE: &str = "accuracy.csv";
/// Mean, latest and first task's accuracy per number of tasks trained.
pub const SUMMARY_TABLE: &str = "summary.csv";
/// Every epoch of every task.
pub const EPOCHS_TABLE: &str = "epochs.csv";
/// Every seen task tested after every epoch (only with `eval_each_epoch`).
pub const EPOCH_ACCURACY_TABLE: &str = "epoch_accuracy.csv";
/// The task set.
pub const TASKS: &str = "tasks.json";
/// The final network's weights.
pub const WEIGHTS: &str = "weights.safetensors";

/// Params of a `continual` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContinualParams {
    /// How the dataset becomes tasks.
    pub tasks: TaskSpec,
    /// The network.
    pub model: ContinualModel,
    /// The context of dendritic networks (ignored by the others).
    pub context: ContextKind,
    /// How each task trains (`epochs` per task).
    #[serde(flatten)]
    pub training: Training,
    /// Forget the optimizer's state at the start of every task (Numenta's default).
    pub reset_optimizer: bool,
    /// Early stopping on the current task's validation examples, and which epoch's
    /// weights a task keeps (`best`: by validation accuracy).
    #[serde(flatten)]
    pub stopping: Stopping,
    /// Test the seen tasks after every n-th task (and always after the last).
    pub eval_every: usize,
    /// Test every task after every epoch (into `epoch_accuracy.csv`).
    pub eval_each_epoch: bool,
}

impl Default for ContinualParams {
    fn default() -> Self {
        ContinualParams {
            tasks: TaskSpec::Permuted {
                count: 10,
                permute_first: false,
            },
            model: ContinualModel::default(),
            context: ContextKind::Prototype,
            training: Training {
                optimizer: OptimizerConfig::Adam {
                    lr: 5e-4,
                    betas: [0.9, 0.999],
                    eps: 1e-8,
                    weight_decay: 0.0,
                },
                epochs: 3,
                batch_size: 256,
                eval_batch_size: 1000,
                normalize: None,
            },
            reset_optimizer: true,
            stopping: Stopping::default(),
            eval_every: 1,
            eval_each_epoch: false,
        }
    }
}

/// The `continual` stage kind.
pub struct ContinualStage;

impl TypedStage for ContinualStage {
    const NAME: &'static str = "continual";
    // 2: matrix products on the AVX-512 kernel (another summation order).
    // 3: convolutions in tiles; segment activations once per distinct context;
    // fused batch norm and sign, bit-packed binarized evaluation.
    const VERSION: u32 = 3;
    type Params = ContinualParams;

    fn check_inputs(
        p: &ContinualParams,
        inputs: &[Upstream],
    ) -> std::result::Result<(), ParamError> {
        let TaskSpec::Datasets(names) = &p.tasks else {
            return one_dataset(inputs);
        };
        for name in names {
            if !inputs
                .iter()
                .any(|i| i.kind == DatasetStage::NAME && (i.stage == name || i.base() == name))
            {
                return Err(ParamError::new(
                    "tasks.datasets",
                    format!("names `{name}`, which is not a dataset stage in `needs`"),
                ));
            }
        }
        Ok(())
    }

    fn validate(p: &ContinualParams) -> std::result::Result<(), ParamError> {
        p.training.validate()?;
        p.stopping.validate()?;
        p.tasks.validate()?;
        p.model.validate()?;
        p.context.validate()?;
        if p.eval_every == 0 {
            return Err(ParamError::new("eval_every", "must be at least 1"));
        }
        if let (ContinualModel::Bnn(net), OptimizerConfig::AdamMeta { meta, .. }) =
            (&p.model, &p.training.optimizer)
        {
            let layers = net.hidden.len() + 1;
            if meta.len() != 1 && meta.len() != layers {
                return Err(ParamError::new(
                    "optimizer.meta",
                    format!(
                        "give one value for all layers or {layers} values (one per weight layer); got {}",
                        meta.len()
                    ),
                ));
            }
        }
        if p.eval_each_epoch
            && (p.stopping.early_stopping.is_some() || p.stopping.keep == Keep::Best)
        {
            return Err(ParamError::new(
                "eval_each_epoch",
                "tests after every epoch of plain training: it cannot be combined with early_stopping or keep: best",
            ));
        }
        Ok(())
    }

    fn run(params: &ContinualParams, ctx: &StageContext) -> Result<Metrics> {
        on_device(ctx.device, Job { params, ctx })
    }
}

struct Job<'a> {
    params: &'a ContinualParams,
    ctx: &'a StageContext<'a>,
}

impl OnDevice for Job<'_> {
    type Output = Metrics;
    fn run<D: Device<f32>>(self, dev: D) -> Result<Metrics> {
        let (p, ctx) = (self.params, self.ctx);
        let sources = load_sources(p, ctx)?;
        let first = &sources[0];
        if p.stopping.early_stopping.is_some() && first.validation.is_none() {
            return Err(Error::InvalidInput(format!(
                "stage `{}`: early_stopping needs a validation split; set `validation:` on the dataset stage",
                ctx.stage
            )));
        }
        let features = first.shape.features();
        let tasks = TaskSet::new(
            &p.tasks,
            first.shape.classes,
            features,
            first.train_y.len(),
            ctx.seed,
        )
        .map_err(Error::InvalidInput)?;
        let shape = InputShape {
            classes: tasks.classes(),
            ..first.shape
        };
        let contexts = Contexts::new(p.context, features, tasks.len());
        let seed = seeds::derive(ctx.seed, "init", 0);
        let invalid = |e: crate::nn::Error| Error::InvalidInput(e.to_string());
        let learner = Learner {
            p,
            ctx,
            sources: &sources,
            tasks: &tasks,
            contexts: p.model.is_dendritic().then_some(contexts),
        };
        match (
            &p.model,
            p.model
                .spec(tasks.len(), p.context.len(features, tasks.len())),
        ) {
            (ContinualModel::Bnn(config), _) => {
                learner.run(BinaryNet::new(config, shape, seed, &dev).map_err(invalid)?)
            }
            (_, Some(spec)) => {
                learner.run(ActiveNet::new(&spec, shape, seed, &dev).map_err(invalid)?)
            }
            (_, None) => unreachable!("every model but bnn has an ActiveSpec"),
        }
    }
}

/// The upstream datasets, normalized: the one `needs` names, or for
/// `tasks: {datasets: [...]}` each named stage in order, all of one shape.
fn load_sources(p: &ContinualParams, ctx: &StageContext) -> Result<Vec<Prepared>> {
    let TaskSpec::Datasets(names) = &p.tasks else {
        return Ok(vec![Prepared::new(
            &load_input(ctx)?,
            p.training.normalize.as_ref(),
        )?]);
    };
    let mut out: Vec<Prepared> = Vec::new();
    for name in names {
        // A dataset stage expanded by a matrix is `name@seed=0`: match its base name.
        let base = |stage: &str| base_name(stage).to_string();
        let input = ctx
            .inputs
            .values()
            .find(|i| i.kind == DatasetStage::NAME && (i.stage == *name || base(&i.stage) == *name))
            .ok_or_else(|| {
            Error::InvalidInput(format!(
                "stage `{}`: tasks.datasets names `{name}`, which is not a dataset stage in its `needs`",
                ctx.stage
            ))
        })?;
        let ds = Dataset::load(&input.dir).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let prepared = Prepared::new(&ds, p.training.normalize.as_ref())?;
        if let Some(first) = out.first() {
            if first.shape != prepared.shape {
                return Err(Error::InvalidInput(format!(
                    "stage `{}`: dataset `{name}` is {}, the first is {}; sequential tasks need one shape",
                    ctx.stage, prepared.shape, first.shape
                )));
            }
        }
        out.push(prepared);
    }
    Ok(out)
}

/// One pass through the task sequence.
struct Learner<'a> {
    p: &'a ContinualParams,
    ctx: &'a StageContext<'a>,
    sources: &'a [Prepared],
    tasks: &'a TaskSet,
    contexts: Option<Contexts>,
}

/// Test accuracy of every seen task after one task's training.
struct Evaluation {
    after_task: usize,
    /// 1-based epoch within the task (only with `eval_each_epoch`).
    epoch: usize,
    accuracies: Vec<f64>,
    /// Fraction of test examples whose inferred prototype is their own task's.
    prototype_hits: Option<f64>,
}

impl Learner<'_> {
    fn run<D: Device<f32>, M: Model<D>>(mut self, mut net: M) -> Result<Metrics> {
        let count = self.tasks.len();
        let mut opt = Optimizer::new(self.p.training.optimizer.clone());
        let mut evaluations = Vec::new();
        let mut per_epoch = Vec::new();
        let mut epochs: Vec<(usize, EpochRow)> = Vec::new();
        for t in 0..count {
            net.select_task(self.state_of(t));
            let task = self.task_data(t)?;
            if self.p.reset_optimizer {
                opt.reset();
            }
            // With per-epoch tests, one `fit` per epoch; otherwise one per task.
            let (chunks, chunk) = match self.p.eval_each_epoch {
                true => (self.p.training.epochs, 1),
                false => (1, self.p.training.epochs),
            };
            for c in 0..chunks {
                let history = self.fit_task(&mut net, &mut opt, &task, t, 1 + c * chunk, chunk)?;
                epochs.extend(history.rows.into_iter().map(|r| (t, r)));
                if self.p.eval_each_epoch {
                    per_epoch.push(self.evaluate(&mut net, t, c + 1, t)?);
                }
            }
            if (t + 1) % self.p.eval_every == 0 || t + 1 == count {
                evaluations.push(self.evaluate(&mut net, t, self.p.training.epochs, t)?);
            }
        }
        checkpoint::save(&net, &self.ctx.out_dir.join(WEIGHTS))?;
        write_json(&self.ctx.out_dir.join(TASKS), self.tasks)?;
        self.write_tables(&evaluations, &per_epoch, &epochs)?;
        let mut metrics = metrics(&evaluations, &epochs);
        if let Some((wrong, distinct)) = self.tasks.collisions() {
            metrics.insert("mislabelled_classes".into(), json!(wrong));
            metrics.insert("distinct_labels_per_task".into(), json!(distinct));
        }
        Ok(metrics)
    }

    /// Which per-task model state (e.g. normalization parameters) task `t`
    /// uses: its own, except in a stream, where every part is the same task.
    fn state_of(&self, t: usize) -> usize {
        if self.tasks.shares_test() {
            0
        } else {
            t
        }
    }

    /// Trains task `t` for `epochs` epochs starting at epoch `first`.
    fn fit_task<D: Device<f32>, M: Model<D>>(
        &self,
        net: &mut M,
        opt: &mut Optimizer<D>,
        task: &Prepared,
        t: usize,
        first: usize,
        epochs: usize,
    ) -> Result<History> {
        let (p, ctx, count) = (self.p, self.ctx, self.tasks.len());
        let shape = task.shape;
        let image = Geometry {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        };
        // Pixels from outside the image are black (0) before normalization.
        let fill: Vec<f32> = (0..shape.channels)
            .map(|c| {
                let at = |v: &[f32]| v[c.min(v.len() - 1)];
                -at(&task.normalize.mean) / at(&task.normalize.std)
            })
            .collect();
        let stride = task.train_x.len() / task.train_y.len();
        let augment_seed = seeds::derive(ctx.seed, "augment", t as u64);
        let augment = p.tasks.augment().map(|a| {
            move |rows: &[f32], epoch: usize| {
                let seed = seeds::derive(augment_seed, "epoch", epoch as u64);
                a.apply(rows, stride, image, &fill, seed)
            }
        });
        fit(
            net,
            opt,
            task,
            FitPlan {
                first_epoch: first,
                epochs,
                batch_size: p.training.batch_size,
                eval_batch_size: p.training.eval_batch_size,
                early_stopping: p.stopping.early_stopping.as_ref(),
                keep: p.stopping.keep,
                seed: seeds::derive(ctx.seed, "task", t as u64),
                snapshot_at: None,
                remember_best_test: false,
                augment: augment.as_ref().map(|a| a as &Augmentation),
                progress: &mut |epoch, batch, batches| {
                    let done = (t * p.training.epochs + epoch - 1) * batches + batch;
                    ctx.progress.update(
                        done as u64,
                        (count * p.training.epochs * batches) as u64,
                        &format!("task {}/{count} epoch {epoch}/{}", t + 1, p.training.epochs),
                    );
                },
            },
        )
    }

    /// Task `t`'s training data (with its context), its validation examples
    /// and its test examples (for per-epoch monitoring).
    fn task_data(&mut self, t: usize) -> Result<Prepared> {
        let d = &self.sources[self.tasks.source(t)];
        let features = d.shape.features();
        let train = self
            .tasks
            .task(t, Part::Train, &d.train_x, &d.train_y, features);
        let test = self
            .tasks
            .task(t, Part::Held, &d.test_x, &d.test_y, features);
        let validation = d
            .validation
            .as_ref()
            .map(|(x, y)| self.tasks.task(t, Part::Held, x, y, features));
        if train.y.is_empty() || test.y.is_empty() {
            return Err(Error::InvalidInput(format!(
                "task {t} has no training or no test examples"
            )));
        }
        let with_context = |x: Vec<f32>, c: &Option<Vec<f32>>| match c {
            Some(c) => context::append(&x, features, |_, _| c.clone()),
            None => x,
        };
        let c = self.contexts.as_mut().map(|c| c.learn(t, &train.x));
        Ok(Prepared {
            shape: d.shape,
            normalize: d.normalize.clone(),
            train_x: with_context(train.x, &c),
            train_y: train.y,
            test_x: with_context(test.x, &c),
            test_y: test.y,
            validation: validation.map(|v| (with_context(v.x, &c), v.y)),
        })
    }

    /// After `epoch` of task `t`, tests tasks 0..=last (only task 0 when
    /// all tasks share one test set), each with the context it would get at
    /// test time.
    fn evaluate<D: Device<f32>, M: Model<D>>(
        &self,
        net: &mut M,
        t: usize,
        epoch: usize,
        last: usize,
    ) -> Result<Evaluation> {
        let last = if self.tasks.shares_test() { 0 } else { last };
        let mut accuracies = Vec::new();
        let (mut hits, mut total) = (0usize, 0usize);
        for j in 0..=last {
            net.select_task(self.state_of(j));
            let d = &self.sources[self.tasks.source(j)];
            let features = d.shape.features();
            let test = self
                .tasks
                .task(j, Part::Held, &d.test_x, &d.test_y, features);
            let x = match &self.contexts {
                Some(c) => context::append(&test.x, features, |_, row| {
                    let (v, inferred) = c.infer(j, row);
                    hits += usize::from(inferred == j);
                    total += 1;
                    v
                }),
                None => test.x,
            };
            let stats = evaluate(net, &x, &test.y, self.p.training.eval_batch_size)?;
            accuracies.push(stats.accuracy);
        }
        net.select_task(self.state_of(t));
        Ok(Evaluation {
            after_task: t,
            epoch,
            accuracies,
            prototype_hits: (total > 0).then(|| hits as f64 / total as f64),
        })
    }

    fn write_tables(
        &self,
        evaluations: &[Evaluation],
        per_epoch: &[Evaluation],
        epochs: &[(usize, EpochRow)],
    ) -> Result<()> {
        let out = &self.ctx.out_dir;
        let mut matrix = long_table(evaluations);
        if !per_epoch.is_empty() {
            crate::table::write_csv(&out.join(EPOCH_ACCURACY_TABLE), &mut long_table(per_epoch))
                .map_err(Error::Failed)?;
        }
        let mut summary = df!(
            "tasks_trained" => evaluations.iter().map(|e| e.after_task as u32 + 1).collect::<Vec<_>>(),
            "mean_accuracy" => evaluations.iter().map(|e| mean(&e.accuracies)).collect::<Vec<_>>(),
            "latest_accuracy" => evaluations.iter().map(|e| *e.accuracies.last().expect("one task")).collect::<Vec<_>>(),
            "first_task_accuracy" => evaluations.iter().map(|e| e.accuracies[0]).collect::<Vec<_>>(),
        )
        .expect("equal lengths");
        let col = |f: fn(&EpochRow) -> f64| epochs.iter().map(|(_, r)| f(r)).collect::<Vec<f64>>();
        let mut per_epoch = df!(
            "task" => epochs.iter().map(|(t, _)| *t as u32).collect::<Vec<_>>(),
            "epoch" => epochs.iter().map(|(_, r)| r.epoch as u32).collect::<Vec<_>>(),
            "train_loss" => col(|r| r.train_loss),
            "train_accuracy" => col(|r| r.train_accuracy),
            "test_accuracy" => col(|r| r.test_accuracy),
            "validation_accuracy" => col(|r| r.validation_accuracy),
        )
        .expect("equal lengths");
        for (name, frame) in [
            (ACCURACY_TABLE, &mut matrix),
            (SUMMARY_TABLE, &mut summary),
            (EPOCHS_TABLE, &mut per_epoch),
        ] {
            crate::table::write_csv(&out.join(name), frame).map_err(Error::Failed)?;
        }
        Ok(())
    }
}

/// Evaluations in long form: after_task, epoch, task, accuracy.
fn long_table(evaluations: &[Evaluation]) -> DataFrame {
    let (mut after, mut epoch, mut task, mut acc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in evaluations {
        for (j, &a) in e.accuracies.iter().enumerate() {
            after.push(e.after_task as u32);
            epoch.push(e.epoch as u32);
            task.push(j as u32);
            acc.push(a);
        }
    }
    df!("after_task" => after, "epoch" => epoch, "task" => task, "accuracy" => acc)
        .expect("equal lengths")
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The manifest's metrics: final mean, latest and first-task accuracy, and
/// the mean accuracy after each evaluated task.
fn metrics(evaluations: &[Evaluation], epochs: &[(usize, EpochRow)]) -> Metrics {
    let last = evaluations
        .last()
        .expect("the last task is always evaluated");
    let seconds: f64 = epochs.iter().map(|(_, r)| r.seconds).sum();
    Metrics::from([
        ("test_accuracy".into(), json!(mean(&last.accuracies))),
        ("final_mean_accuracy".into(), json!(mean(&last.accuracies))),
        (
            "final_latest_accuracy".into(),
            json!(last.accuracies.last()),
        ),
        (
            "final_first_task_accuracy".into(),
            json!(last.accuracies[0]),
        ),
        ("tasks".into(), json!(last.after_task + 1)),
        (
            "mean_accuracy_by_tasks".into(),
            json!(evaluations
                .iter()
                .map(|e| mean(&e.accuracies))
                .collect::<Vec<_>>()),
        ),
        (
            "prototype_inference_accuracy".into(),
            json!(last.prototype_hits),
        ),
        ("training_seconds".into(), json!(seconds)),
    ])
}
