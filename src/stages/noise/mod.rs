//! `kind: noise-eval`: does weight sparsity alone make a network more robust to image
//! noise? (Bain 2022 rejects it.) Evaluates trained networks (the dense network and named
//! lottery tickets such as `w30`, `r30`, `w3` of every upstream `prune` stage, and every
//! upstream `train` stage) on test images with seeded noise at several levels.
//!
//! The same noisy images evaluate every network. Outputs: `noise.csv` (network, seed,
//! noise, level, noise_seed, accuracy, drop from level 0), `summary.csv` (mean, std and
//! 95% interval across training seeds), `verdict.csv` (for each sparse network and
//! level, the paired difference of its accuracy drop and the dense network's, over
//! seeds, with a 95% interval and a verdict in words), and `examples.idx` (noisy copies
//! of a few test images per level, for the figure).

pub mod stats;

use std::collections::BTreeMap;
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data::noise::{apply, NoiseKind, PixelValue};
use crate::data::{idx, Dataset};
use crate::nn::{checkpoint, evaluate, Device, Network};

use super::context::one_dataset;
use super::dataset::load_input;
use super::files::write_json;
use super::on_device::{on_device, OnDevice};
use super::params::ParamError;
use super::prune::tickets::{TicketKind, TicketName, Tickets};
use super::prune::PruneStage;
use super::train::{TrainStage, WEIGHTS};
use super::training::{ModelCard, Normalize};
use super::{Error, Input, Metrics, Result, StageContext, TypedStage, Upstream};
use crate::pipeline::names::base_name;
use stats::summarize;

/// Accuracy per network, noise kind and level (mean and interval over seeds), in a
/// `noise-eval` stage's output.
pub const SUMMARY_TABLE: &str = "summary.csv";
/// The robustness verdict per comparison.
pub const VERDICT_TABLE: &str = "verdict.csv";
/// Example images at each noise level (IDX), for the report's figure.
pub const EXAMPLES: &str = "examples.idx";

/// Params of a `noise-eval` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseParams {
    /// Networks taken from each upstream `prune` stage: `dense`, `w30`, `r30`, `w3`, ...
    pub networks: Vec<String>,
    /// Noise models.
    pub noise: Vec<NoiseKind>,
    /// Noise levels (fraction of values for pixel/salt-pepper, std or half-width otherwise).
    pub levels: Vec<f64>,
    /// The value `pixel` noise writes: `two_std` (Bain's code), `two_std_above_mean`
    /// (Bain's text) or `{fixed: v}`.
    pub value: PixelValue,
    /// Noise draws per level.
    pub noise_seeds: usize,
    /// Evaluation batch size.
    pub batch_size: usize,
    /// Test images per level kept as examples for the figure.
    pub examples: usize,
    /// Which weights of a `prune` stage's tickets are tested (a `train` stage's are the
    /// ones it kept). Left out of the params at `last`, so keys from before it existed
    /// stay valid.
    #[serde(default, skip_serializing_if = "Checkpoint::is_last")]
    pub checkpoint: Checkpoint,
}

/// Which checkpoint of a ticket the noise test evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// The weights the next round was pruned from (the last epoch's, by default).
    #[default]
    Last,
    /// The ticket's best test-accuracy epoch (`NN_model_lt.pth.tar` in Bain's
    /// `noise.py`); the prune stage must set `save_best: true`.
    Best,
}

impl Checkpoint {
    fn is_last(&self) -> bool {
        *self == Checkpoint::Last
    }
}

impl Default for NoiseParams {
    fn default() -> Self {
        NoiseParams {
            networks: ["dense", "w30", "r30", "w3"].map(String::from).to_vec(),
            noise: vec![NoiseKind::Pixel],
            levels: vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
            value: PixelValue::TwoStd,
            noise_seeds: 3,
            batch_size: 1000,
            examples: 6,
            checkpoint: Checkpoint::Last,
        }
    }
}

/// Most noise draws per level.
pub const MAX_NOISE_SEEDS: usize = 10_000;

/// Most example images kept per level.
pub const MAX_EXAMPLES: usize = 100;

/// The `noise-eval` stage kind.
pub struct NoiseStage;

impl TypedStage for NoiseStage {
    const NAME: &'static str = "noise-eval";
    // 2: matrix products on the AVX-512 kernel (another summation order).
    // 3: tickets below 20% density evaluated sparse; convolutions in tiles.
    const VERSION: u32 = 3;
    type Params = NoiseParams;
    const OPTIONAL_KEYS: &'static [&'static str] = &["checkpoint"];

    fn check_inputs(p: &NoiseParams, inputs: &[Upstream]) -> std::result::Result<(), ParamError> {
        one_dataset(inputs)?;
        let prunes: Vec<&Upstream> = inputs
            .iter()
            .filter(|i| i.kind == PruneStage::NAME)
            .collect();
        if prunes.is_empty() && !inputs.iter().any(|i| i.kind == TrainStage::NAME) {
            return Err(ParamError::new(
                "needs",
                "needs at least one `prune` or `train` stage to evaluate",
            ));
        }
        for prune in prunes {
            let flag = |key: &str| prune.params.get(key).and_then(serde_json::Value::as_bool);
            if p.checkpoint == Checkpoint::Best && flag("save_best") != Some(true) {
                return Err(ParamError::new(
                    "checkpoint",
                    format!(
                        "`best` tests each ticket's best epoch, which `{}` does not save: set `save_best: true` on it, or `checkpoint: last` here",
                        prune.stage
                    ),
                ));
            }
            let rounds = prune
                .params
                .get("rounds")
                .and_then(serde_json::Value::as_u64);
            for name in &p.networks {
                let TicketName::Nearest { kind, .. } =
                    TicketName::parse(name).map_err(|m| ParamError::new("networks", m))?
                else {
                    continue;
                };
                let (trained, key) = match kind {
                    TicketKind::Winning => (true, ""),
                    TicketKind::Random => (flag("random_tickets") == Some(true), "random_tickets"),
                    TicketKind::Reinit => (flag("reinit") == Some(true), "reinit"),
                };
                if !trained {
                    return Err(ParamError::new(
                        "networks",
                        format!("`{name}` asks for {} tickets, but prune stage `{}` trains none (set `{key}: true` there)", kind.folder(), prune.stage),
                    ));
                }
                if kind != TicketKind::Winning && rounds == Some(0) {
                    return Err(ParamError::new(
                        "networks",
                        format!("`{name}` asks for a pruned ticket, but prune stage `{}` has `rounds: 0`", prune.stage),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate(p: &NoiseParams) -> std::result::Result<(), ParamError> {
        if p.levels.first() != Some(&0.0) {
            return Err(ParamError::new(
                "levels",
                "must start with 0 (the clean reference every drop is measured from)",
            ));
        }
        if p.levels.iter().any(|l| !(0.0..=1.0).contains(l)) {
            return Err(ParamError::new("levels", "each level must be in [0, 1]"));
        }
        if let Some(m) = p.networks.iter().find_map(|n| TicketName::parse(n).err()) {
            return Err(ParamError::new("networks", m));
        }
        if p.noise_seeds > MAX_NOISE_SEEDS {
            return Err(ParamError::new(
                "noise_seeds",
                format!("must be at most {MAX_NOISE_SEEDS} (each draw evaluates every network on the whole test set)"),
            ));
        }
        if p.examples > MAX_EXAMPLES {
            return Err(ParamError::new(
                "examples",
                format!("must be at most {MAX_EXAMPLES} (they are images in the report)"),
            ));
        }
        if p.noise.is_empty() || p.noise_seeds == 0 || p.batch_size == 0 {
            return Err(ParamError::new(
                "noise",
                "needs at least one noise model, one noise seed and a positive batch size",
            ));
        }
        Ok(())
    }

    fn run(params: &NoiseParams, ctx: &StageContext) -> Result<Metrics> {
        on_device(ctx.device, NoiseJob { params, ctx })
    }
}

struct NoiseJob<'a> {
    params: &'a NoiseParams,
    ctx: &'a StageContext<'a>,
}

/// A network to evaluate.
struct Candidate<D: Device<f32>> {
    name: String,
    seed: u64,
    net: Network<D>,
    normalize: Normalize,
}

/// One measured accuracy.
struct Row {
    network: String,
    seed: u64,
    noise: NoiseKind,
    level: f64,
    noise_seed: usize,
    accuracy: f64,
}

impl OnDevice for NoiseJob<'_> {
    type Output = Metrics;
    fn run<D: Device<f32>>(self, dev: D) -> Result<Metrics> {
        let (p, ctx) = (self.params, self.ctx);
        let ds = load_input(ctx)?;
        let candidates = load_candidates(ctx, p, &dev)?;
        let example_len = ds.example_len();
        let clean: Vec<f32> = ds.test.images.iter().map(|&b| b as f32 / 255.0).collect();
        let value_mean = ds.mean.iter().sum::<f32>() / ds.mean.len() as f32;
        let value_std = ds.std.iter().sum::<f32>() / ds.std.len() as f32;
        let value = p.value.resolve(value_mean, value_std);
        let mut rows = Vec::new();
        let mut examples: Vec<u8> = Vec::new();
        let total = (p.noise.len() * p.levels.len() * p.noise_seeds) as u64;
        let mut done = 0;
        let started = Instant::now();
        for &noise in &p.noise {
            for (li, &level) in p.levels.iter().enumerate() {
                for s in 0..p.noise_seeds {
                    let mut noisy = clean.clone();
                    let seed = crate::seeds::derive(ctx.seed, noise.name(), (li * 1000 + s) as u64);
                    apply(noise, level as f32, value, &mut noisy, example_len, seed);
                    if noise == p.noise[0] && s == 0 {
                        let k = p.examples.min(ds.test.len());
                        examples.extend(
                            noisy[..k * example_len]
                                .iter()
                                .map(|&x| (x * 255.0).round().clamp(0.0, 255.0) as u8),
                        );
                    }
                    let mut normalized: BTreeMap<String, Vec<f32>> = BTreeMap::new();
                    for c in &candidates {
                        let key = format!("{:?}", c.normalize);
                        if !normalized.contains_key(&key) {
                            normalized.insert(key.clone(), normalize(&noisy, &ds, &c.normalize));
                        }
                        let stats =
                            evaluate(&c.net, &normalized[&key], &ds.test.labels, p.batch_size)?;
                        rows.push(Row {
                            network: c.name.clone(),
                            seed: c.seed,
                            noise,
                            level,
                            noise_seed: s,
                            accuracy: stats.accuracy,
                        });
                    }
                    done += 1;
                    ctx.progress
                        .update(done, total, &format!("{} level {level}", noise.name()));
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let evaluated = rows.len() * ds.test.len();
        let out = &ctx.out_dir;
        let k = p.examples.min(ds.test.len());
        idx::write(
            &out.join(EXAMPLES),
            &[p.levels.len() * k, ds.channels, ds.height, ds.width],
            &examples,
        )
        .map_err(|e| Error::Failed(e.to_string()))?;
        write_json(
            &out.join("examples.json"),
            &json!({"noise": p.noise[0], "levels": p.levels, "per_level": k}),
        )?;
        let drops = drops(&rows);
        crate::table::write_csv(&out.join("noise.csv"), &mut rows_frame(&rows, &drops))
            .map_err(Error::Failed)?;
        let (mut summary, mut verdicts, statements) = summaries(&rows, &drops, p);
        crate::table::write_csv(&out.join(SUMMARY_TABLE), &mut summary).map_err(Error::Failed)?;
        crate::table::write_csv(&out.join(VERDICT_TABLE), &mut verdicts).map_err(Error::Failed)?;
        Ok(Metrics::from([
            ("networks".into(), json!(candidates.len())),
            (
                "eval_samples_per_second".into(),
                json!(evaluated as f64 / seconds.max(1e-9)),
            ),
            ("verdicts".into(), json!(statements)),
        ]))
    }
}

fn normalize(images: &[f32], ds: &Dataset, n: &Normalize) -> Vec<f32> {
    let plane = ds.height * ds.width;
    let example = plane * ds.channels;
    images
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = (i % example) / plane;
            let mean = n.mean[c.min(n.mean.len() - 1)];
            let std = n.std[c.min(n.std.len() - 1)];
            (x - mean) / std
        })
        .collect()
}

fn load_candidates<D: Device<f32>>(
    ctx: &StageContext,
    p: &NoiseParams,
    dev: &D,
) -> Result<Vec<Candidate<D>>> {
    let mut out = Vec::new();
    let load = |input: &Input, weights: &str, name: String| -> Result<Candidate<D>> {
        let card = ModelCard::read(&input.dir)?;
        let net = checkpoint::load(&card.model, card.shape, &input.dir.join(weights), dev)?;
        Ok(Candidate {
            name,
            seed: input.seed,
            net,
            normalize: card.normalize,
        })
    };
    for input in ctx.inputs_of_kind(PruneStage::NAME) {
        let tickets = Tickets::read(&input.dir)?;
        for name in &p.networks {
            let t = tickets
                .select(name)
                .map_err(|e| Error::InvalidInput(format!("stage `{}`: {e}", input.stage)))?;
            let weights = match (p.checkpoint, &t.best_weights) {
                (Checkpoint::Last, _) => &t.weights,
                (Checkpoint::Best, Some(best)) => best,
                (Checkpoint::Best, None) => {
                    return Err(Error::InvalidInput(format!(
                        "stage `{}` saved no best-epoch weights (set `save_best: true` on it)",
                        input.stage
                    )))
                }
            };
            out.push(load(input, weights, name.clone())?);
        }
    }
    for input in ctx.inputs_of_kind(TrainStage::NAME) {
        out.push(load(input, WEIGHTS, base_name(&input.stage).to_string())?);
    }
    if out.is_empty() {
        return Err(Error::InvalidInput(format!(
            "stage `{}` needs at least one `prune` or `train` stage to evaluate",
            ctx.stage
        )));
    }
    Ok(out)
}

type Group = (String, NoiseKind, u64);

/// (network, noise, level as f64 bits).
type LevelKey = (String, NoiseKind, u64);

/// Per level key: a value per training seed.
type BySeed = BTreeMap<LevelKey, BTreeMap<u64, f64>>;

/// For every row, the drop from the same network's mean accuracy at level 0.
fn drops(rows: &[Row]) -> Vec<f64> {
    let mut clean: BTreeMap<Group, Vec<f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.level == 0.0) {
        clean
            .entry((r.network.clone(), r.noise, r.seed))
            .or_default()
            .push(r.accuracy);
    }
    rows.iter()
        .map(|r| {
            let c = &clean[&(r.network.clone(), r.noise, r.seed)];
            c.iter().sum::<f64>() / c.len() as f64 - r.accuracy
        })
        .collect()
}

fn rows_frame(rows: &[Row], drops: &[f64]) -> DataFrame {
    df!(
        "network" => rows.iter().map(|r| r.network.as_str()).collect::<Vec<_>>(),
        "seed" => rows.iter().map(|r| r.seed).collect::<Vec<u64>>(),
        "noise" => rows.iter().map(|r| r.noise.name()).collect::<Vec<_>>(),
        "level" => rows.iter().map(|r| r.level).collect::<Vec<f64>>(),
        "noise_seed" => rows.iter().map(|r| r.noise_seed as u32).collect::<Vec<u32>>(),
        "accuracy" => rows.iter().map(|r| r.accuracy).collect::<Vec<f64>>(),
        "drop" => drops.to_vec(),
    )
    .expect("columns have equal lengths")
}

/// Per (network, noise, level): mean over noise seeds for each training seed.
fn per_seed(rows: &[Row], values: &[f64]) -> BySeed {
    let mut acc: BTreeMap<LevelKey, BTreeMap<u64, (f64, usize)>> = BTreeMap::new();
    for (r, v) in rows.iter().zip(values) {
        let e = acc
            .entry((r.network.clone(), r.noise, r.level.to_bits()))
            .or_default()
            .entry(r.seed)
            .or_insert((0.0, 0));
        e.0 += v;
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(k, m)| {
            (
                k,
                m.into_iter()
                    .map(|(s, (sum, n))| (s, sum / n as f64))
                    .collect(),
            )
        })
        .collect()
}

fn summaries(rows: &[Row], drops: &[f64], p: &NoiseParams) -> (DataFrame, DataFrame, Vec<String>) {
    let accuracy: Vec<f64> = rows.iter().map(|r| r.accuracy).collect();
    let acc = per_seed(rows, &accuracy);
    let drop = per_seed(rows, drops);
    let (mut net, mut noise, mut level, mut n, mut mean, mut std, mut low, mut high, mut dmean) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for ((name, kind, bits), seeds) in &acc {
        let s = summarize(&seeds.values().copied().collect::<Vec<_>>());
        let d = summarize(
            &drop[&(name.clone(), *kind, *bits)]
                .values()
                .copied()
                .collect::<Vec<_>>(),
        );
        net.push(name.clone());
        noise.push(kind.name());
        level.push(f64::from_bits(*bits));
        n.push(s.n as u32);
        mean.push(s.mean);
        std.push(s.std);
        low.push(s.low);
        high.push(s.high);
        dmean.push(d.mean);
    }
    let summary = df!("network" => net, "noise" => noise, "level" => level, "seeds" => n, "accuracy_mean" => mean,
        "accuracy_std" => std, "accuracy_ci95_low" => low, "accuracy_ci95_high" => high, "drop_mean" => dmean)
    .expect("columns have equal lengths");
    let (mut vnet, mut vnoise, mut vlevel, mut vn, mut vmean, mut vlow, mut vhigh, mut words) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    let mut statements = Vec::new();
    for &kind in &p.noise {
        for name in p.networks.iter().filter(|n| n.as_str() != "dense") {
            for &lv in p.levels.iter().filter(|&&l| l > 0.0) {
                let (Some(sparse), Some(dense)) = (
                    drop.get(&(name.clone(), kind, lv.to_bits())),
                    drop.get(&("dense".to_string(), kind, lv.to_bits())),
                ) else {
                    continue;
                };
                let diffs: Vec<f64> = sparse
                    .iter()
                    .filter_map(|(s, d)| dense.get(s).map(|dd| d - dd))
                    .collect();
                let s = summarize(&diffs);
                let verdict = if s.n < 2 {
                    "not enough seeds for an interval"
                } else if s.high < 0.0 {
                    "more robust than dense"
                } else if s.low > 0.0 {
                    "less robust than dense"
                } else {
                    "no difference beyond seed-to-seed noise"
                };
                vnet.push(name.clone());
                vnoise.push(kind.name());
                vlevel.push(lv);
                vn.push(s.n as u32);
                vmean.push(s.mean);
                vlow.push(s.low);
                vhigh.push(s.high);
                words.push(verdict);
                statements.push(format!(
                    "{name} vs dense, {} noise at level {lv}: drop difference {:+.4} (95% CI {:+.4} to {:+.4}, {} seeds): {verdict}",
                    kind.name(),
                    s.mean,
                    s.low,
                    s.high,
                    s.n
                ));
            }
        }
    }
    let verdicts = df!("network" => vnet, "noise" => vnoise, "level" => vlevel, "seeds" => vn,
        "drop_minus_dense_mean" => vmean, "ci95_low" => vlow, "ci95_high" => vhigh, "verdict" => words)
    .expect("columns have equal lengths");
    (summary, verdicts, statements)
}
