//! `kind: report`: the papers' figures re-made from upstream results, tables, and the
//! comparison with the papers' reference values, as `index.html` + `README.md` with
//! PNG and SVG figures beside them.
//!
//! It reads only upstream outputs (never trains). Reference values and their sources
//! live in the pipeline file (`references:`), so they are part of the key; `reduced:`
//! says what a profile cut. `repro run` and `repro report` copy the result to
//! `reports/<pipeline name>/`.

mod continual;
mod divergence;
mod lottery;
mod noise;

pub use divergence::Divergence;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{self, write_report, Comparison, Estimate, Provenance, Report, Section, Table};

use super::params::ParamError;
use super::{Error, Input, Metrics, Result, StageContext, TypedStage};

/// A claim of a paper that the report checks, with how "ours" is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// Best test accuracy of the dense network (round 0 of a prune stage), in percent.
    DenseAccuracy,
    /// Dense best test accuracy minus the winning ticket's nearest 3% of prunable
    /// weights, in percentage points (Bain: winning tickets "until around 3%").
    WinningDropAt3,
    /// Dense minus the random ticket nearest 30%, in points (Bain: random tickets "test
    /// as well as the fully dense network until around 30%").
    RandomDropAt30,
    /// Dense minus the random ticket nearest 3%, in points (random tickets degrade).
    RandomDropAt3,
    /// Remaining fraction of all parameters at the winning ticket nearest 3% of prunable
    /// weights, in percent (Bain's "33x fewer", 3.3% on FC1).
    RemainingAllAt3,
    /// Test accuracy averaged over all tasks after the last one, in percent
    /// (Iyer et al.: 94.55 after 10 permuted tasks).
    FinalMeanAccuracy,
    /// Test accuracy on the first task after the last one, in percent (forgetting).
    FinalFirstTaskAccuracy,
    /// Test accuracy on the last task right after training it, in percent.
    FinalLatestAccuracy,
}

impl Claim {
    /// What is compared, with units.
    pub fn describe(self) -> &'static str {
        match self {
            Claim::DenseAccuracy => "best test accuracy of the dense network (%)",
            Claim::WinningDropAt3 => {
                "dense minus winning ticket at ~3% of weights (test accuracy, points)"
            }
            Claim::RandomDropAt30 => {
                "dense minus random ticket at ~30% of weights (test accuracy, points)"
            }
            Claim::RandomDropAt3 => {
                "dense minus random ticket at ~3% of weights (test accuracy, points)"
            }
            Claim::RemainingAllAt3 => "weights remaining at the ~3% ticket, all parameters (%)",
            Claim::FinalMeanAccuracy => "mean test accuracy over all tasks after the last (%)",
            Claim::FinalFirstTaskAccuracy => "test accuracy on the first task after the last (%)",
            Claim::FinalLatestAccuracy => "test accuracy on the last task (%)",
        }
    }
}

/// A reference value of a paper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Which claim.
    pub claim: Claim,
    /// Which upstream stage (base name) it applies to, e.g. `fc1`.
    pub stage: String,
    /// Compare the difference `stage − versus` instead (per seed when both
    /// have the same seeds), e.g. an MLP's accuracy minus the dendritic network's.
    #[serde(default)]
    pub versus: Option<String>,
    /// The paper's value, in the claim's units.
    pub paper: f64,
    /// Absolute tolerance in the same units.
    pub tolerance: f64,
    /// Where the value comes from.
    pub source: String,
    /// The claim is a bound: ours reproduces it when `ours ≤ paper + tolerance`
    /// (e.g. "no loss of accuracy": a ticket better than dense also reproduces it).
    #[serde(default)]
    pub at_most: bool,
    /// Why the paper's value holds only at its published settings (e.g. a
    /// mean accuracy after 10 tasks of a 2048-2048 network means something
    /// else after 5 tasks of 256-256): under a profile that `reduced` them
    /// the verdict is "not comparable", with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_scale: Option<String>,
    /// This reference's stages add one of the authors' divergences to the
    /// runs named here: the verdict row then also says whether the
    /// divergence explains the paper's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explains: Option<Explains>,
}

/// The runs without the divergence that a reference's stages add.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explains {
    /// The stage (base name) run without it.
    pub stage: String,
    /// Its `versus`, when the claim is a difference.
    #[serde(default)]
    pub versus: Option<String>,
    /// The divergence, in words (e.g. "Bain's in-place relabelling").
    pub divergence: String,
}

/// Params of a `report` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportParams {
    /// Page title.
    pub title: String,
    /// Paragraphs before the first section.
    pub intro: Vec<String>,
    /// What the profile reduced, in words (empty for the published settings).
    pub reduced: String,
    /// The papers' reference values.
    pub references: Vec<Reference>,
    /// Log-scaled x axis for "% of weights remaining".
    pub log_x: bool,
    /// Settings where the run, the paper's text and the authors' code differ, shown
    /// in the "Divergences" section.
    pub divergences: Vec<Divergence>,
}

impl Default for ReportParams {
    fn default() -> Self {
        ReportParams {
            title: "repro report".into(),
            intro: Vec::new(),
            reduced: String::new(),
            references: Vec::new(),
            log_x: true,
            divergences: Vec::new(),
        }
    }
}

/// The `report` stage kind.
pub struct ReportStage;

impl TypedStage for ReportStage {
    const NAME: &'static str = "report";
    // 6: the Divergences section.
    const VERSION: u32 = 6;
    type Params = ReportParams;

    fn check_inputs(
        p: &ReportParams,
        inputs: &[super::Upstream],
    ) -> std::result::Result<(), ParamError> {
        divergence::check(&p.divergences, inputs)
    }

    fn validate(p: &ReportParams) -> std::result::Result<(), ParamError> {
        if let Some((i, r)) = p
            .references
            .iter()
            .enumerate()
            .find(|(_, r)| !(r.tolerance >= 0.0 && r.paper.is_finite()))
        {
            return Err(ParamError::new(
                format!("references[{i}]"),
                format!("{:?}: paper must be a number and tolerance ≥ 0", r.claim),
            ));
        }
        if let Some(i) = p.references.iter().position(|r| {
            r.published_scale
                .as_ref()
                .is_some_and(|w| w.trim().is_empty())
        }) {
            return Err(ParamError::new(
                format!("references[{i}].published_scale"),
                "say why the paper's value holds only at its published settings",
            ));
        }
        Ok(())
    }

    fn run(params: &ReportParams, ctx: &StageContext) -> Result<Metrics> {
        let figures = ctx.out_dir.join("figures");
        std::fs::create_dir_all(&figures).map_err(super::io_err("create", &figures))?;
        let mut sections = vec![provenance_section(ctx, params)];
        let mut comparisons: Vec<Comparison> = Vec::new();
        let mut ours = lottery::ClaimValues::new();
        let prune: Vec<&Input> = ctx.inputs_of_kind(super::prune::PruneStage::NAME);
        if !prune.is_empty() {
            let (section, values) = lottery::section(ctx, &prune, params)?;
            sections.push(section);
            ours.extend(values);
        }
        let continual: Vec<&Input> = ctx.inputs_of_kind(super::continual::ContinualStage::NAME);
        if !continual.is_empty() {
            let (more, values) = continual::sections(ctx, &continual)?;
            sections.extend(more);
            ours.extend(values);
        }
        for r in &params.references {
            comparisons.push(judge(r, &ours, !params.reduced.is_empty()));
        }
        let noise: Vec<&Input> = ctx.inputs_of_kind(super::noise::NoiseStage::NAME);
        for input in noise {
            sections.push(noise::section(ctx, input)?);
        }
        let reproduced = comparisons
            .iter()
            .filter(|c| c.verdict == report::Verdict::Reproduced)
            .count();
        let mut summary = Section::new("Reference comparison").paragraph(
            "Each row compares our value with the paper's, within the stated absolute tolerance. \
             `reduced` settings (see Provenance) can make a value not comparable in spirit even when a number is given.",
        );
        if !comparisons.is_empty() {
            summary = summary.comparisons(comparisons.clone());
        } else {
            summary = summary.paragraph("This pipeline lists no reference values.");
        }
        sections.insert(0, summary);
        if let Some(section) = divergence::section(ctx, &params.divergences) {
            sections.insert(1, section);
        }
        let report = Report {
            title: params.title.clone(),
            intro: params.intro.clone(),
            sections,
        };
        write_report(&report, &ctx.out_dir).map_err(|e| Error::Failed(e.to_string()))?;
        let count = |word: &str| {
            comparisons
                .iter()
                .filter(|c| c.verdict.word() == word)
                .count()
        };
        Ok(Metrics::from([
            ("comparisons".into(), serde_json::json!(comparisons.len())),
            ("reproduced".into(), serde_json::json!(reproduced)),
            (
                "not_reproduced".into(),
                serde_json::json!(count("not reproduced")),
            ),
            (
                "not_comparable".into(),
                serde_json::json!(count("not comparable")),
            ),
        ]))
    }
}

/// Our values for a reference: the stage's, or its differences from `versus`.
fn claim_value(ours: &lottery::ClaimValues, r: &Reference) -> Option<Vec<f64>> {
    let of = |stage: &str| ours.get(&(stage.to_string(), r.claim));
    let a = of(&r.stage)?;
    let Some(versus) = &r.versus else {
        return Some(a.clone());
    };
    let b = of(versus)?;
    if a.len() == b.len() {
        Some(a.iter().zip(b).map(|(x, y)| x - y).collect())
    } else {
        Some(vec![mean_std(a).0 - mean_std(b).0])
    }
}

/// Mean and sample standard deviation (0 for one value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The verdict row of reference `r` from the measured claim values, in a
/// run whose profile `reduced` the published settings or not.
fn judge(r: &Reference, ours: &lottery::ClaimValues, reduced: bool) -> Comparison {
    let value = claim_value(ours, r);
    let measured = value.is_some();
    let mut c = comparison(r, value);
    match (&r.published_scale, &r.explains) {
        (Some(why), _) if reduced && measured => {
            c.verdict = report::Verdict::NotComparable(format!(
                "the paper's value is for its published settings, which this run reduced (see Provenance): {why}"
            ));
            c.explanation = why.clone();
        }
        (_, Some(e)) => explain(&mut c, r, e, ours),
        _ => {}
    }
    c
}

fn comparison(r: &Reference, ours: Option<Vec<f64>>) -> Comparison {
    let subject = match &r.versus {
        Some(v) => format!("{} minus {v}", r.stage),
        None => r.stage.clone(),
    };
    let metric = format!("{subject}: {} [{}]", r.claim.describe(), r.source);
    let ours = ours.map(|v| Estimate::from_values(&v));
    let mut c = Comparison::new(metric, ours, Some(r.paper), r.tolerance);
    if let (true, Some(o)) = (r.at_most, ours) {
        if o.mean.is_finite() && o.mean <= r.paper + r.tolerance {
            c.verdict = report::Verdict::Reproduced;
            c.explanation = format!(
                "ours {} ≤ paper {} + tolerance {} (a bound)",
                o.display(),
                r.paper,
                r.tolerance
            );
        }
    }
    c
}

/// Says in `c` (the row of reference `r`, whose stages carry divergence
/// `e`) whether the divergence explains the paper's value: the paper's value
/// holds with it and not without it.
fn explain(c: &mut Comparison, r: &Reference, e: &Explains, ours: &lottery::ClaimValues) {
    let without = Reference {
        stage: e.stage.clone(),
        versus: e.versus.clone(),
        explains: None,
        ..r.clone()
    };
    let base = comparison(&without, claim_value(ours, &without));
    let subject = |r: &Reference| match &r.versus {
        Some(v) => format!("{} − {v}", r.stage),
        None => r.stage.clone(),
    };
    let value = |c: &Comparison| c.ours.map_or("no value".into(), |o| o.display());
    let (with, without_value) = (value(c), value(&base));
    let what = &e.divergence;
    let (a, b) = (subject(r), subject(&without));
    use report::Verdict::{NotComparable, NotReproduced, Reproduced};
    let answer = match (&c.verdict, &base.verdict) {
        (Reproduced, NotReproduced) => format!(
            "yes, {what} explains it: with it {a} = {with} agrees with the paper; without it {b} = {without_value} does not"
        ),
        (Reproduced, Reproduced) => format!(
            "nothing to explain: {a} = {with} with {what} and {b} = {without_value} without it both agree with the paper"
        ),
        (NotReproduced, _) => format!(
            "no, {what} does not explain it: with it {a} = {with}, outside the tolerance (without it {b} = {without_value})"
        ),
        (NotComparable(why), _) | (_, NotComparable(why)) => {
            format!("cannot tell whether {what} explains it: {why}")
        }
    };
    c.metric = format!("{} — does {what} explain it?", c.metric);
    c.explanation = format!("{answer}. {}", c.explanation);
}

/// Pipeline, profile reductions, stages with keys, seeds and wall time.
fn provenance_section(ctx: &StageContext, p: &ReportParams) -> Section {
    let mut s = Section::new("Provenance");
    if p.reduced.is_empty() {
        s = s.paragraph("Settings: as published (no reductions).");
    } else {
        s = s.paragraph(format!("Reduced settings: {}", p.reduced));
    }
    for d in ctx.inputs_of_kind(super::dataset::DatasetStage::NAME) {
        let name = d.params.get("name").and_then(|v| v.as_str()).unwrap_or("?");
        s = s.paragraph(format!("Dataset (stage `{}`): {name}.", d.stage));
    }
    let rows = ctx
        .inputs
        .values()
        .map(|i| {
            vec![
                i.stage.clone(),
                i.kind.clone(),
                i.key.chars().take(12).collect(),
                i.seed.to_string(),
                format!("{:.1}", i.wall_seconds),
            ]
        })
        .collect();
    let columns = ["stage", "kind", "key", "seed", "wall time (s)"]
        .map(String::from)
        .to_vec();
    s.paragraph(format!("Produced by repro {}; `repro show` prints each stage's manifest (threads, host, git commit).", env!("CARGO_PKG_VERSION")))
    .table(Table::new(columns, rows))
}

/// Provenance caption for a figure made from some inputs.
fn provenance(ctx: &StageContext, inputs: &[&Input]) -> Provenance {
    let pipeline = ctx.pipeline.clone();
    let mut seeds: Vec<u64> = inputs.iter().map(|i| i.seed).collect();
    seeds.sort();
    seeds.dedup();
    let mut datasets: Vec<String> = inputs.iter().flat_map(|i| i.datasets.clone()).collect();
    datasets.sort();
    datasets.dedup();
    Provenance {
        datasets,
        pipeline,
        stages: inputs
            .iter()
            .map(|i| (i.stage.clone(), i.key.clone()))
            .collect(),
        seeds,
    }
}

/// A link to a rendered figure whose caption ends with the data it was computed on.
fn figure_ref(stem: &str, caption: &str, prov: &Provenance) -> report::FigureRef {
    let caption = if prov.datasets.is_empty() {
        caption.to_string()
    } else {
        format!("{caption} (data: {})", prov.datasets.join(", "))
    };
    report::FigureRef::from_stem(stem, caption)
}

/// Inputs grouped by their stage's base name (`fc1@seed=0` -> `fc1`).
fn by_base<'a>(inputs: &[&'a Input]) -> BTreeMap<String, Vec<&'a Input>> {
    let mut out: BTreeMap<String, Vec<&Input>> = BTreeMap::new();
    for i in inputs {
        out.entry(crate::pipeline::names::base_name(&i.stage).to_string())
            .or_default()
            .push(i);
    }
    out
}

/// Reads a CSV output of an upstream stage.
fn read_table(input: &Input, file: &str) -> Result<polars::prelude::DataFrame> {
    crate::table::read_csv(&input.dir.join(file)).map_err(Error::Failed)
}

/// A numeric column of a table.
fn column(frame: &polars::prelude::DataFrame, name: &str) -> Result<Vec<f64>> {
    crate::table::f64_column(frame, name).map_err(Error::Failed)
}

/// A text column of a table.
fn text_column(frame: &polars::prelude::DataFrame, name: &str) -> Result<Vec<String>> {
    let col = frame
        .column(name)
        .map_err(|e| Error::Failed(format!("column `{name}`: {e}")))?;
    let s = col
        .str()
        .map_err(|e| Error::Failed(format!("column `{name}`: {e}")))?;
    Ok((0..s.len())
        .map(|i| s.get(i).unwrap_or("").to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split-CNN row: base CNN minus conv ADN, with Bain's relabelling
    /// (`*_bain`) and without.
    fn row(ours: &[(&str, f64)]) -> Comparison {
        let r = Reference {
            claim: Claim::FinalMeanAccuracy,
            stage: "cnn_bain".into(),
            versus: Some("adn_bain".into()),
            paper: 0.0,
            tolerance: 2.0,
            source: "nearly overlapping".into(),
            at_most: false,
            published_scale: None,
            explains: Some(Explains {
                stage: "cnn".into(),
                versus: Some("adn".into()),
                divergence: "the relabelling".into(),
            }),
        };
        let values: lottery::ClaimValues = ours
            .iter()
            .map(|(s, v)| ((s.to_string(), Claim::FinalMeanAccuracy), vec![*v]))
            .collect();
        let mut c = comparison(&r, claim_value(&values, &r));
        explain(&mut c, &r, r.explains.as_ref().unwrap(), &values);
        c
    }

    #[test]
    fn a_published_scale_row_says_its_own_reason_when_the_run_is_reduced() {
        let r = Reference {
            claim: Claim::FinalMeanAccuracy,
            stage: "adn_10".into(),
            versus: None,
            paper: 94.55,
            tolerance: 1.0,
            source: "Numenta".into(),
            at_most: false,
            published_scale: Some("10 tasks of 2048-2048".into()),
            explains: None,
        };
        let values: lottery::ClaimValues =
            [(("adn_10".to_string(), Claim::FinalMeanAccuracy), vec![94.0])].into();
        let reduced = judge(&r, &values, true);
        assert_eq!(reduced.explanation, "10 tasks of 2048-2048");
        assert!(
            matches!(&reduced.verdict, report::Verdict::NotComparable(w) if w.ends_with("10 tasks of 2048-2048"))
        );
        assert_eq!(
            judge(&r, &values, false).verdict,
            report::Verdict::Reproduced
        );
        let missing = judge(&r, &lottery::ClaimValues::new(), true);
        assert!(
            missing.explanation.contains("no result"),
            "{}",
            missing.explanation
        );
    }

    #[test]
    fn the_verdict_row_says_whether_the_divergence_explains_the_paper() {
        let yes = row(&[
            ("cnn_bain", 60.0),
            ("adn_bain", 61.0),
            ("cnn", 40.0),
            ("adn", 60.0),
        ]);
        assert_eq!(yes.verdict, report::Verdict::Reproduced);
        assert!(
            yes.explanation
                .starts_with("yes, the relabelling explains it"),
            "{}",
            yes.explanation
        );
        assert!(yes.metric.ends_with("does the relabelling explain it?"));
        let no = row(&[
            ("cnn_bain", 40.0),
            ("adn_bain", 60.0),
            ("cnn", 40.0),
            ("adn", 60.0),
        ]);
        assert!(
            no.explanation.starts_with("no, the relabelling does not"),
            "{}",
            no.explanation
        );
        let both = row(&[
            ("cnn_bain", 60.0),
            ("adn_bain", 61.0),
            ("cnn", 60.0),
            ("adn", 60.5),
        ]);
        assert!(
            both.explanation.starts_with("nothing to explain"),
            "{}",
            both.explanation
        );
        let missing = row(&[("cnn_bain", 60.0), ("adn_bain", 61.0)]);
        assert!(
            missing.explanation.starts_with("cannot tell"),
            "{}",
            missing.explanation
        );
    }
}
