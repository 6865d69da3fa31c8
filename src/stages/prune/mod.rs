//! `kind: prune`: iterative magnitude pruning with rewinding (lottery tickets).
//!
//! Round 0 trains the dense network; every later round removes `rate` of the surviving
//! prunable weights (smallest magnitude, per layer or globally, from the last or best
//! epoch's weights), rewinds the rest to their initial values (or to their values after
//! epoch E or iteration K of round 0), and trains again. Optional controls per round: a random ticket
//! (a fresh random mask of the same per-layer density, same initialization: Bain's
//! `--rlt`) and a reinitialized ticket (the winning mask, a new random init: Frankle &
//! Carbin's control).
//!
//! Each finished round is checkpointed in the stage's scratch folder, so a run killed at
//! round 17 resumes at round 17. Outputs: `rounds.csv` (one row per round and ticket
//! kind), `tickets.json` (every ticket's remaining fractions and weight file, to select
//! `w30`/`r30`/`w3` downstream), `model.json`, and `<kind>/rNN/weights.safetensors`
//! (weights with their masks).

pub mod masks;
pub mod tickets;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use polars::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::nn::{
    checkpoint, Device, InitConfig, Model, ModelConfig, Network, Optimizer, ParamKind,
};
use crate::seeds;

use super::context::one_dataset;
use super::dataset::load_input;
use super::files::{read_json, write_json};
use super::on_device::{on_device, OnDevice};
use super::params::ParamError;
use super::train::TrainParams;
use super::training::{fit, FitPlan, History, Keep, ModelCard, Prepared, Training};
use super::{io_err, Error, Metrics, Result, StageContext, TypedStage, Upstream};
use tickets::{Ticket, TicketKind, Tickets};

/// The table of every round and ticket kind, in a `prune` stage's output.
pub const ROUNDS_TABLE: &str = "rounds.csv";
/// Each ticket's weight file, inside its `<kind>/rNN/` folder.
pub const TICKET_WEIGHTS: &str = "weights.safetensors";
/// With `save_best`: the ticket's best test-accuracy epoch, beside its weights.
pub const TICKET_BEST_WEIGHTS: &str = "best.safetensors";

/// Whether pruning ranks weights within each layer or across all prunable layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Each layer loses `rate` of its survivors (Bain, Frankle & Carbin's FC nets).
    Layerwise,
    /// The smallest survivors over all prunable layers go.
    Global,
}

/// Kinds of weights that can be pruned (biases never are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightKind {
    /// Hidden fully connected layers.
    Fc,
    /// Convolutions.
    Conv,
    /// The output layer.
    Output,
}

impl WeightKind {
    fn matches(self, kind: ParamKind) -> bool {
        matches!(
            (self, kind),
            (WeightKind::Fc, ParamKind::FcWeight)
                | (WeightKind::Conv, ParamKind::ConvWeight)
                | (WeightKind::Output, ParamKind::OutputWeight)
        )
    }
}

/// Where surviving weights go back to before each round's training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rewind {
    /// Their initial values (Frankle & Carbin 2019; Bain).
    Init,
    /// Their values after this many epochs of round 0 (late rewinding).
    Epoch(usize),
    /// Their values after this many updates of round 0 (Frankle et al.'s rewinding to
    /// iteration K).
    Iteration(usize),
}

/// Which trained weights a random ticket keeps where the protocol does not rewind
/// (`no_rewind`): only differs from the winning ticket's when some weights are not
/// rewound, as LeNet5's convolutions in Bain's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RandomChain {
    /// The winning chain's last trained round (one chain of convolutions for both).
    #[default]
    Winning,
    /// The random tickets' own previous round (round 0, the dense network, is
    /// shared), as when `--rlt` runs as a separate IMP chain.
    Own,
}

impl RandomChain {
    fn is_default(&self) -> bool {
        *self == RandomChain::Winning
    }
}

/// Params of a `prune` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PruneParams {
    /// Architecture.
    pub model: ModelConfig,
    /// Initialization.
    pub init: InitConfig,
    /// How each round trains (a new optimizer every round; `epochs` per round).
    #[serde(flatten)]
    pub training: Training,
    /// Pruning rounds after the dense round 0.
    pub rounds: usize,
    /// Fraction of surviving weights removed per round.
    pub rate: f64,
    /// Per-layer rates by layer name (`out`, `fc1`, `conv1`), e.g. `{out: 0.0625}`.
    pub rate_overrides: BTreeMap<String, f64>,
    /// Layer-wise or global ranking.
    pub scope: Scope,
    /// Which weights are pruned.
    pub prunable: Vec<WeightKind>,
    /// Where survivors go back to each round.
    pub rewind: Rewind,
    /// Weights that are not rewound but keep their trained values (Bain's LeNet5 convs).
    pub no_rewind: Vec<WeightKind>,
    /// Which epoch's weights are pruned: the last (Bain) or the best.
    pub prune_from: Keep,
    /// Also train a random ticket at every round's density.
    pub random_tickets: bool,
    /// Where a random ticket's `no_rewind` weights (Bain's LeNet5 convolutions) come
    /// from: the winning chain's last round, or the random tickets' own previous round,
    /// as in Bain's separate `--rlt` runs. Left out of the params at its default.
    #[serde(default, skip_serializing_if = "RandomChain::is_default")]
    pub random_chain: RandomChain,
    /// Also train the winning mask from a new random initialization.
    pub reinit: bool,
    /// Also save each ticket's best test-accuracy epoch (`best.safetensors`), the
    /// checkpoint Bain's `noise.py` evaluates. Left out of the params when off, so keys
    /// from before it existed stay valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub save_best: bool,
}

impl Default for PruneParams {
    fn default() -> Self {
        let t = TrainParams::default();
        PruneParams {
            model: t.model,
            init: t.init,
            training: t.training,
            rounds: 35,
            rate: 0.125,
            rate_overrides: BTreeMap::new(),
            scope: Scope::Layerwise,
            prunable: vec![WeightKind::Fc, WeightKind::Output],
            rewind: Rewind::Init,
            no_rewind: Vec::new(),
            prune_from: Keep::Last,
            random_tickets: false,
            random_chain: RandomChain::Winning,
            reinit: false,
            save_best: false,
        }
    }
}

/// The `prune` stage kind.
pub struct PruneStage;

impl TypedStage for PruneStage {
    const NAME: &'static str = "prune";
    // 2: matrix products on the AVX-512 kernel (another summation order).
    // 3: weights below 20% density multiplied sparse; convolutions in tiles.
    const VERSION: u32 = 3;
    type Params = PruneParams;
    const OPTIONAL_KEYS: &'static [&'static str] = &["save_best", "random_chain"];

    fn check_inputs(_: &PruneParams, inputs: &[Upstream]) -> std::result::Result<(), ParamError> {
        one_dataset(inputs)
    }

    fn validate(p: &PruneParams) -> std::result::Result<(), ParamError> {
        p.training.validate()?;
        if p.rounds > MAX_ROUNDS {
            return Err(ParamError::new(
                "rounds",
                format!("must be at most {MAX_ROUNDS} (at 20% a round, 100 rounds leave 2e-10 of the weights)"),
            ));
        }
        let rate_ok = |r: f64| (0.0..1.0).contains(&r);
        if !rate_ok(p.rate) {
            return Err(ParamError::new(
                "rate",
                format!("must be in [0, 1), got {}", p.rate),
            ));
        }
        if let Some((name, r)) = p.rate_overrides.iter().find(|(_, r)| !rate_ok(**r)) {
            return Err(ParamError::new(
                format!("rate_overrides.{name}"),
                format!("must be in [0, 1), got {r}"),
            ));
        }
        if p.prunable.is_empty() {
            return Err(ParamError::new(
                "prunable",
                "name at least one of fc, conv, output",
            ));
        }
        if let Rewind::Epoch(e) = p.rewind {
            if e > p.training.epochs {
                return Err(ParamError::new(
                    "rewind.epoch",
                    format!("{e} is past the {} epochs of a round", p.training.epochs),
                ));
            }
        }
        Ok(())
    }

    fn run(params: &PruneParams, ctx: &StageContext) -> Result<Metrics> {
        on_device(ctx.device, PruneJob { params, ctx })
    }
}

/// Most pruning rounds a stage may run.
pub const MAX_ROUNDS: usize = 1000;

struct PruneJob<'a> {
    params: &'a PruneParams,
    ctx: &'a StageContext<'a>,
}

impl OnDevice for PruneJob<'_> {
    type Output = Metrics;
    fn run<D: Device<f32>>(self, dev: D) -> Result<Metrics> {
        Pruner::new(dev, self.params, self.ctx)?.run()
    }
}

/// One trained ticket's measurements, as stored in the scratch folder and the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RoundRow {
    round: usize,
    kind: TicketKind,
    remaining_prunable: f64,
    remaining_all: f64,
    best_test_accuracy: f64,
    final_test_accuracy: f64,
    pruned_from_test_accuracy: f64,
    early_stop_epoch: Option<usize>,
    early_stop_iteration: Option<usize>,
    seconds: f64,
}

struct Pruner<'a, D: Device<f32>> {
    dev: D,
    p: &'a PruneParams,
    ctx: &'a StageContext<'a>,
    data: Prepared,
    init_seed: u64,
    /// Names of the prunable parameters, in model order.
    prunable: Vec<String>,
    total_params: usize,
    total_prunable: usize,
}

impl<'a, D: Device<f32>> Pruner<'a, D> {
    fn new(dev: D, p: &'a PruneParams, ctx: &'a StageContext<'a>) -> Result<Self> {
        let ds = load_input(ctx)?;
        let data = Prepared::new(&ds, p.training.normalize.as_ref())?;
        let init_seed = seeds::derive(ctx.seed, "init", 0);
        let net = Network::new(&p.model, data.shape, &p.init, init_seed, &dev)?;
        let infos = net.param_infos();
        let prunable: Vec<String> = infos
            .iter()
            .filter(|i| p.prunable.iter().any(|k| k.matches(i.kind)))
            .map(|i| i.name.clone())
            .collect();
        let layers: Vec<String> = prunable.iter().map(|n| layer_of(n).to_string()).collect();
        if let Some(bad) = p.rate_overrides.keys().find(|k| !layers.contains(k)) {
            return Err(Error::InvalidInput(format!(
                "rate_overrides names layer `{bad}`, which is not a prunable layer of this model (prunable: {})",
                layers.join(", ")
            )));
        }
        if prunable.is_empty() {
            return Err(Error::InvalidInput(format!(
                "model `{}` has no weights of the kinds in `prunable`",
                p.model.type_name()
            )));
        }
        let total_prunable = infos
            .iter()
            .filter(|i| prunable.contains(&i.name))
            .map(|i| i.numel())
            .sum();
        Ok(Pruner {
            total_params: infos.iter().map(|i| i.numel()).sum(),
            total_prunable,
            dev,
            p,
            ctx,
            data,
            init_seed,
            prunable,
        })
    }

    fn fresh(&self, seed: u64) -> Result<Network<D>> {
        Ok(Network::new(
            &self.p.model,
            self.data.shape,
            &self.p.init,
            seed,
            &self.dev,
        )?)
    }

    fn scratch(&self, kind: TicketKind, round: usize) -> std::path::PathBuf {
        self.ctx
            .scratch_dir
            .join(kind.folder())
            .join(format!("r{round:02}"))
    }

    fn run(self) -> Result<Metrics> {
        let scratch = &self.ctx.scratch_dir;
        std::fs::create_dir_all(scratch).map_err(io_err("create", scratch))?;
        let init = self.fresh(self.init_seed)?;
        let mut rewind_to = init.clone();
        let mut masks: BTreeMap<String, Vec<f32>> = self
            .prunable
            .iter()
            .map(|n| (n.clone(), vec![1.0; numel(&init, n)]))
            .collect();
        let mut last_trained: Option<Network<D>> = None;
        // With `random_chain: own`, the random chain's last ticket (round 0 is shared).
        let mut last_random: Option<Network<D>> = None;
        let own_chain = self.p.random_chain == RandomChain::Own && self.p.random_tickets;
        let mut rows: Vec<RoundRow> = Vec::new();
        let mut round_seconds = Vec::new();
        let mut resumed_at = None;
        for round in 0..=self.p.rounds {
            let dir = self.scratch(TicketKind::Winning, round);
            if dir.join("done").is_file() {
                let mut trained = init.clone();
                checkpoint::load_into(&mut trained, &dir.join(TICKET_WEIGHTS))?;
                rows.extend(read_rows(&dir)?);
                if round == 0 {
                    if let Rewind::Epoch(_) | Rewind::Iteration(_) = self.p.rewind {
                        checkpoint::load_into(&mut rewind_to, &scratch.join("rewind.safetensors"))?;
                    }
                }
                masks = self.next_masks(&trained, masks)?;
                if own_chain && round > 0 {
                    let mut random = init.clone();
                    let path = self.scratch(TicketKind::Random, round).join(TICKET_WEIGHTS);
                    checkpoint::load_into(&mut random, &path)?;
                    last_random = Some(random);
                }
                last_trained = Some(trained);
                continue;
            }
            if round > 0 && round_seconds.is_empty() && resumed_at.is_none() {
                // Rounds before this one were loaded from the scratch checkpoints.
                resumed_at = Some(round);
            }
            let started = Instant::now();
            let mut round_rows = Vec::new();
            let mut net = self.rewound(&rewind_to, last_trained.as_ref(), &masks)?;
            let (history, trained) =
                self.train_round(&mut net, round, TicketKind::Winning, round == 0)?;
            if round == 0 {
                if let Some(snapshot) = trained.rewind {
                    checkpoint::save(&snapshot, &scratch.join("rewind.safetensors"))?;
                    rewind_to = snapshot;
                }
            }
            round_rows.push(self.row(round, TicketKind::Winning, &net, &history, started));
            self.save_ticket(&net, &history, &dir)?;
            if round > 0 && self.p.random_tickets {
                let t = Instant::now();
                let mut rng = ChaCha8Rng::seed_from_u64(seeds::derive(
                    self.ctx.seed,
                    "random-ticket",
                    round as u64,
                ));
                let random: BTreeMap<String, Vec<f32>> = masks
                    .iter()
                    .map(|(n, m)| {
                        (
                            n.clone(),
                            masks::random_mask(m.len(), masks::alive(m), &mut rng),
                        )
                    })
                    .collect();
                let kept_from = match (own_chain, &last_random) {
                    (true, Some(previous)) => Some(previous),
                    _ => last_trained.as_ref(),
                };
                let mut rnet = self.rewound(&rewind_to, kept_from, &random)?;
                let (h, _) = self.train_round(&mut rnet, round, TicketKind::Random, false)?;
                round_rows.push(self.row(round, TicketKind::Random, &rnet, &h, t));
                self.save_ticket(&rnet, &h, &self.scratch(TicketKind::Random, round))?;
                if own_chain {
                    last_random = Some(rnet);
                }
            }
            if round > 0 && self.p.reinit {
                let t = Instant::now();
                let fresh = self.fresh(seeds::derive(self.ctx.seed, "reinit", round as u64))?;
                let mut inet = self.rewound(&fresh, last_trained.as_ref(), &masks)?;
                let (h, _) = self.train_round(&mut inet, round, TicketKind::Reinit, false)?;
                round_rows.push(self.row(round, TicketKind::Reinit, &inet, &h, t));
                self.save_ticket(&inet, &h, &self.scratch(TicketKind::Reinit, round))?;
            }
            write_json(&dir.join("rows.json"), &round_rows)?;
            std::fs::write(dir.join("done"), b"").map_err(io_err("write", &dir))?;
            round_seconds.push(started.elapsed().as_secs_f64());
            rows.extend(round_rows);
            masks = self.next_masks(&net, masks)?;
            last_trained = Some(net);
        }
        self.publish(&rows)?;
        let mut metrics = self.metrics(&rows, round_seconds);
        metrics.insert("resumed_at_round".into(), json!(resumed_at));
        Ok(metrics)
    }

    /// A network holding `start`'s values, except weights listed in `no_rewind`, which
    /// keep the last round's trained values; masks applied.
    fn rewound(
        &self,
        start: &Network<D>,
        last: Option<&Network<D>>,
        masks: &BTreeMap<String, Vec<f32>>,
    ) -> Result<Network<D>> {
        let mut net = start.clone();
        if let Some(last) = last {
            for info in last.param_infos() {
                if self.p.no_rewind.iter().any(|k| k.matches(info.kind)) {
                    let values = last.param(&info.name)?.values();
                    net.param_mut(&info.name)?.set_values(&values)?;
                }
            }
        }
        for (name, mask) in masks {
            net.param_mut(name)?.set_mask(Some(mask))?;
        }
        Ok(net)
    }

    /// Trains one ticket with a new optimizer; in round 0 with late rewinding, also
    /// returns the weights after the rewind epoch.
    fn train_round(
        &self,
        net: &mut Network<D>,
        round: usize,
        kind: TicketKind,
        capture_rewind: bool,
    ) -> Result<(History, Trained<D>)> {
        let mut opt = Optimizer::new(self.p.training.optimizer.clone());
        let rounds = self.p.rounds;
        let epochs = self.p.training.epochs;
        let seed = seeds::derive(self.ctx.seed, kind.folder(), round as u64);
        let mut progress = |epoch: usize, batch: usize, batches: usize| {
            let done = (round * epochs + epoch - 1) * batches + batch;
            let msg = format!(
                "round {round}/{rounds} {} epoch {epoch}/{epochs}",
                kind.folder()
            );
            self.ctx
                .progress
                .update(done as u64, ((rounds + 1) * epochs * batches) as u64, &msg);
        };
        let split = match (capture_rewind, self.p.rewind) {
            (true, Rewind::Epoch(e)) => e,
            _ => 0,
        };
        let snapshot_at = match (capture_rewind, self.p.rewind) {
            (true, Rewind::Iteration(k)) => Some(k),
            _ => None,
        };
        let mut rewind = None;
        let mut history: Option<History> = None;
        if split > 0 {
            let plan = self.plan(1, split, Keep::Last, seed, &mut progress);
            history = Some(fit(net, &mut opt, &self.data, plan)?);
            rewind = Some(net.clone());
        }
        if split < epochs {
            let mut plan = self.plan(
                split + 1,
                epochs - split,
                self.p.prune_from,
                seed,
                &mut progress,
            );
            plan.snapshot_at = snapshot_at;
            let h = fit(net, &mut opt, &self.data, plan)?;
            history = Some(match history {
                Some(first) => first.then(h),
                None => h,
            });
        }
        if let Some(k) = snapshot_at {
            let values = history
                .as_mut()
                .and_then(|h| h.snapshot.take())
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "rewind.iteration = {k} is past the end of round 0's training"
                    ))
                })?;
            let mut at_k = net.clone();
            for (p, v) in at_k.params_mut().into_iter().zip(values) {
                p.set_values(&v)?;
            }
            rewind = Some(at_k);
        }
        let history = history.expect("at least one epoch runs");
        Ok((history, Trained { rewind }))
    }

    fn plan<'b>(
        &self,
        first_epoch: usize,
        epochs: usize,
        keep: Keep,
        seed: u64,
        progress: &'b mut dyn FnMut(usize, usize, usize),
    ) -> FitPlan<'b> {
        FitPlan {
            first_epoch,
            epochs,
            batch_size: self.p.training.batch_size,
            eval_batch_size: self.p.training.eval_batch_size,
            early_stopping: None,
            keep,
            seed,
            progress,
            snapshot_at: None,
            remember_best_test: self.p.save_best,
            augment: None,
        }
    }

    fn row(
        &self,
        round: usize,
        kind: TicketKind,
        net: &Network<D>,
        h: &History,
        started: Instant,
    ) -> RoundRow {
        let (alive_prunable, masked) = self.alive(net);
        let batches = self.data.train_y.len().div_ceil(self.p.training.batch_size);
        let early = h.min_validation_loss.map(|i| h.rows[i].epoch);
        RoundRow {
            round,
            kind,
            remaining_prunable: alive_prunable as f64 / self.total_prunable as f64,
            remaining_all: (self.total_params - masked) as f64 / self.total_params as f64,
            best_test_accuracy: h.best_test_accuracy(),
            final_test_accuracy: h.rows.last().map_or(f64::NAN, |r| r.test_accuracy),
            pruned_from_test_accuracy: h.rows[h.kept].test_accuracy,
            early_stop_epoch: early,
            early_stop_iteration: early.map(|e| e * batches),
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// (surviving prunable weights, pruned weights) of a network.
    fn alive(&self, net: &Network<D>) -> (usize, usize) {
        let mut alive = 0;
        let mut pruned = 0;
        for p in net.params() {
            if let Some(m) = p.mask() {
                let a = masks::alive(&m);
                pruned += m.len() - a;
                if self.prunable.contains(&p.info().name) {
                    alive += a;
                }
            } else if self.prunable.contains(&p.info().name) {
                alive += p.info().numel();
            }
        }
        (alive, pruned)
    }

    /// The masks of the next round, pruned from `trained`'s weights.
    fn next_masks(
        &self,
        trained: &Network<D>,
        mut masks: BTreeMap<String, Vec<f32>>,
    ) -> Result<BTreeMap<String, Vec<f32>>> {
        let weights: BTreeMap<String, Vec<f32>> = self
            .prunable
            .iter()
            .map(|n| trained.param(n).map(|p| (n.clone(), p.values())))
            .collect::<std::result::Result<_, _>>()?;
        match self.p.scope {
            Scope::Layerwise => {
                for (name, mask) in masks.iter_mut() {
                    let rate = self
                        .p
                        .rate_overrides
                        .get(layer_of(name))
                        .copied()
                        .unwrap_or(self.p.rate);
                    masks::prune_layer(&weights[name], mask, rate);
                }
            }
            Scope::Global => {
                let mut layers: Vec<(&[f32], &mut Vec<f32>)> = masks
                    .iter_mut()
                    .map(|(n, m)| (weights[n].as_slice(), m))
                    .collect();
                masks::prune_global(&mut layers, self.p.rate);
            }
        }
        Ok(masks)
    }

    /// Checkpoints a trained ticket: its weights and, with `save_best`, its best
    /// test-accuracy epoch's.
    fn save_ticket(&self, net: &Network<D>, history: &History, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        checkpoint::save(net, &dir.join(TICKET_WEIGHTS))?;
        if let Some((_, values)) = &history.best_test {
            let mut best = net.clone();
            for (p, v) in best.params_mut().into_iter().zip(values) {
                p.set_values(v)?;
            }
            checkpoint::save(&best, &dir.join(TICKET_BEST_WEIGHTS))?;
        }
        Ok(())
    }

    /// Moves the checkpointed rounds into the output and writes the tables.
    fn publish(&self, rows: &[RoundRow]) -> Result<()> {
        let out = &self.ctx.out_dir;
        let mut tickets = Tickets::default();
        for row in rows {
            let rel = tickets::weights_path(row.kind, row.round);
            let target = out.join(&rel);
            let parent = target.parent().expect("has a parent");
            std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
            let scratch = self.scratch(row.kind, row.round);
            let source = scratch.join(TICKET_WEIGHTS);
            std::fs::copy(&source, &target).map_err(io_err("copy", &source))?;
            let best_weights = if self.p.save_best {
                let rel = tickets::best_weights_path(row.kind, row.round);
                let source = scratch.join(TICKET_BEST_WEIGHTS);
                std::fs::copy(&source, out.join(&rel)).map_err(io_err("copy", &source))?;
                Some(rel)
            } else {
                None
            };
            tickets.tickets.push(Ticket {
                round: row.round,
                kind: row.kind,
                remaining_prunable: row.remaining_prunable,
                remaining_all: row.remaining_all,
                best_test_accuracy: row.best_test_accuracy,
                test_accuracy: row.pruned_from_test_accuracy,
                weights: rel,
                best_weights,
            });
        }
        tickets.write(out)?;
        ModelCard {
            model: self.p.model.clone(),
            shape: self.data.shape,
            normalize: self.data.normalize.clone(),
        }
        .write(out)?;
        crate::table::write_csv(&out.join(ROUNDS_TABLE), &mut rounds_frame(rows))
            .map_err(Error::Failed)
    }

    fn metrics(&self, rows: &[RoundRow], round_seconds: Vec<f64>) -> Metrics {
        let winning: Vec<&RoundRow> = rows
            .iter()
            .filter(|r| r.kind == TicketKind::Winning)
            .collect();
        let dense = winning.first().map_or(f64::NAN, |r| r.best_test_accuracy);
        let last = winning.last().expect("round 0 always runs");
        Metrics::from([
            ("dense_test_accuracy".into(), json!(dense)),
            ("test_accuracy".into(), json!(last.best_test_accuracy)),
            (
                "final_remaining_prunable".into(),
                json!(last.remaining_prunable),
            ),
            ("final_remaining_all".into(), json!(last.remaining_all)),
            ("rounds".into(), json!(self.p.rounds)),
            ("round_seconds".into(), json!(round_seconds)),
        ])
    }
}

struct Trained<D: Device<f32>> {
    rewind: Option<Network<D>>,
}

fn numel<D: Device<f32>>(net: &Network<D>, name: &str) -> usize {
    net.param(name).map(|p| p.info().numel()).unwrap_or(0)
}

/// `fc1.weight` -> `fc1`.
fn layer_of(param: &str) -> &str {
    param.split('.').next().unwrap_or(param)
}

fn read_rows(dir: &Path) -> Result<Vec<RoundRow>> {
    read_json(&dir.join("rows.json"))
}

fn rounds_frame(rows: &[RoundRow]) -> DataFrame {
    let f = |g: fn(&RoundRow) -> f64| rows.iter().map(g).collect::<Vec<f64>>();
    let opt = |g: fn(&RoundRow) -> Option<usize>| {
        rows.iter()
            .map(|r| g(r).map(|v| v as u32))
            .collect::<Vec<Option<u32>>>()
    };
    df!(
        "round" => rows.iter().map(|r| r.round as u32).collect::<Vec<u32>>(),
        "ticket" => rows.iter().map(|r| r.kind.folder()).collect::<Vec<&str>>(),
        "remaining_prunable" => f(|r| r.remaining_prunable),
        "remaining_all" => f(|r| r.remaining_all),
        "best_test_accuracy" => f(|r| r.best_test_accuracy),
        "final_test_accuracy" => f(|r| r.final_test_accuracy),
        "pruned_from_test_accuracy" => f(|r| r.pruned_from_test_accuracy),
        "early_stop_epoch" => opt(|r| r.early_stop_epoch),
        "early_stop_iteration" => opt(|r| r.early_stop_iteration),
    )
    .expect("columns have equal lengths")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resumed stage reads its finished rounds back from `rows.json`: every float
    /// must come back with the same bits, or `rounds.csv` differs in the last digit
    /// from an uninterrupted run (issue 14: 0.24010019083969467 came back changed).
    #[test]
    fn checkpointed_rows_read_back_bit_for_bit() {
        let total = 266_200usize;
        let rows: Vec<RoundRow> = (0..2000)
            .map(|i| {
                let alive = total - i * 97;
                RoundRow {
                    round: i,
                    kind: TicketKind::Winning,
                    remaining_prunable: alive as f64 / total as f64,
                    remaining_all: 0.24010019083969467 * (1.0 - i as f64 * 1e-4),
                    best_test_accuracy: (9000 + i) as f64 / 10_000.0,
                    final_test_accuracy: 1.0 / (i + 3) as f64,
                    pruned_from_test_accuracy: (i as f64).sqrt() / 50.0,
                    early_stop_epoch: None,
                    early_stop_iteration: None,
                    seconds: 0.0,
                }
            })
            .collect();
        let json = serde_json::to_vec(&rows).unwrap();
        let back: Vec<RoundRow> = serde_json::from_slice(&json).unwrap();
        for (a, b) in rows.iter().zip(&back) {
            for (x, y) in [
                (a.remaining_prunable, b.remaining_prunable),
                (a.remaining_all, b.remaining_all),
                (a.best_test_accuracy, b.best_test_accuracy),
                (a.final_test_accuracy, b.final_test_accuracy),
                (a.pruned_from_test_accuracy, b.pruned_from_test_accuracy),
            ] {
                assert_eq!(x.to_bits(), y.to_bits(), "{x} read back as {y}");
            }
        }
    }
}
