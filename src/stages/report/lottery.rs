//! The lottery-ticket part of a report (Bain 2022 Fig. 6): test accuracy against the
//! percentage of weights remaining, winning against random (and reinitialized) tickets,
//! one panel per pruned network; the early-stop iteration; and the claims' values.

use std::collections::BTreeMap;

use crate::report::{render, Figure, LineChart, Panel, Point, Section, Series, Table};

use super::{
    by_base, column, figure_ref, mean_std, provenance, read_table, text_column, Claim, ReportParams,
};
use crate::stages::prune::ROUNDS_TABLE;
use crate::stages::{Error, Input, Result, StageContext};

/// One seed's rounds table.
struct Rounds {
    round: Vec<f64>,
    ticket: Vec<String>,
    remaining_prunable: Vec<f64>,
    remaining_all: Vec<f64>,
    best: Vec<f64>,
    early: Vec<f64>,
}

impl Rounds {
    fn read(input: &Input) -> Result<Rounds> {
        let f = read_table(input, ROUNDS_TABLE)?;
        Ok(Rounds {
            round: column(&f, "round")?,
            ticket: text_column(&f, "ticket")?,
            remaining_prunable: column(&f, "remaining_prunable")?,
            remaining_all: column(&f, "remaining_all")?,
            best: column(&f, "best_test_accuracy")?,
            early: column(&f, "early_stop_iteration")?,
        })
    }

    fn rows(&self, ticket: &str) -> impl Iterator<Item = usize> + '_ {
        let t = ticket.to_string();
        (0..self.round.len()).filter(move |&i| {
            self.ticket[i] == t
                || (t == "random" && self.round[i] == 0.0 && self.ticket[i] == "winning")
        })
    }

    /// The row of `ticket` whose remaining prunable fraction is nearest `target`.
    fn nearest(&self, ticket: &str, target: f64) -> Option<usize> {
        (0..self.round.len())
            .filter(|&i| self.ticket[i] == ticket)
            .min_by(|&a, &b| {
                (self.remaining_prunable[a] - target)
                    .abs()
                    .total_cmp(&(self.remaining_prunable[b] - target).abs())
            })
    }

    fn dense(&self) -> Option<f64> {
        (0..self.round.len())
            .find(|&i| self.round[i] == 0.0)
            .map(|i| self.best[i])
    }
}

/// Mean ± std over seeds, per round, of `value` for a ticket kind; x = mean % remaining.
fn curve(
    seeds: &[Rounds],
    ticket: &str,
    value: impl Fn(&Rounds, usize) -> f64,
) -> Vec<(f64, f64, f64, usize)> {
    let mut by_round: BTreeMap<u64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for s in seeds {
        for i in s.rows(ticket) {
            let e = by_round.entry(s.round[i] as u64).or_default();
            e.0.push(s.remaining_all[i] * 100.0);
            e.1.push(value(s, i));
        }
    }
    by_round
        .into_values()
        .map(|(x, y)| {
            let (ym, ys) = mean_std(&y);
            (mean_std(&x).0, ym, ys, y.len())
        })
        .collect()
}

/// Our values of each claim, per stage base name: one value per seed.
pub type ClaimValues = BTreeMap<(String, Claim), Vec<f64>>;

/// The section, and our value of each claim per stage base name (one value per seed).
pub fn section(
    ctx: &StageContext,
    prune: &[&Input],
    p: &ReportParams,
) -> Result<(Section, ClaimValues)> {
    let mut accuracy_panels = Vec::new();
    let mut early_panels = Vec::new();
    let mut ours: ClaimValues = BTreeMap::new();
    let mut section = Section::new("Lottery tickets (Bain 2022, Fig. 6)").paragraph(
        "Best test accuracy of each pruning round against the share of all parameters remaining, \
         for winning tickets (IMP, rewound to init), random tickets of the same per-layer density \
         from the same init, and reinitialized tickets where trained. Mean ± std across seeds. \
         Note: like Bain, the best epoch is chosen on test accuracy, which is optimistic.",
    );
    for (base, inputs) in by_base(prune) {
        let seeds: Vec<Rounds> = inputs
            .iter()
            .map(|i| Rounds::read(i))
            .collect::<Result<_>>()?;
        let mut acc_series = Vec::new();
        let mut early_series = Vec::new();
        for (ticket, color) in [("winning", 3), ("random", 0), ("reinit", 2)] {
            let acc = curve(&seeds, ticket, |s, i| s.best[i] * 100.0);
            if acc.len() < 2 {
                continue;
            }
            let points = acc
                .iter()
                .map(|&(x, y, sd, _)| Point::with_std(x, y, sd))
                .collect();
            acc_series.push(Series::new(format!("{ticket} tickets"), points).color(color));
            let early = curve(&seeds, ticket, |s, i| s.early[i]);
            let points: Vec<Point> = early
                .iter()
                .filter(|e| e.1.is_finite())
                .map(|&(x, y, sd, _)| Point::with_std(x, y, sd))
                .collect();
            if points.len() > 1 {
                early_series.push(Series::new(format!("{ticket} tickets"), points).color(color));
            }
        }
        let chart = |title: String, y_label: &str, series: Vec<Series>| LineChart {
            title,
            x_label: "weights remaining (% of all parameters, log scale)".into(),
            y_label: y_label.into(),
            x_log: p.log_x,
            x_reversed: true,
            series,
            ..LineChart::default()
        };
        accuracy_panels.push(Panel::Line(chart(
            format!("{base} ({} seeds)", seeds.len()),
            "test accuracy (%)",
            acc_series,
        )));
        if !early_series.is_empty() {
            early_panels.push(Panel::Line(chart(
                format!("{base}: early stop"),
                "iteration of minimum validation loss",
                early_series,
            )));
        }
        for s in &seeds {
            let Some(dense) = s.dense() else { continue };
            let mut push = |claim: Claim, v: Option<f64>| {
                if let Some(v) = v {
                    ours.entry((base.clone(), claim)).or_default().push(v);
                }
            };
            push(Claim::DenseAccuracy, Some(dense * 100.0));
            push(
                Claim::WinningDropAt3,
                s.nearest("winning", 0.03)
                    .map(|i| (dense - s.best[i]) * 100.0),
            );
            push(
                Claim::RandomDropAt30,
                s.nearest("random", 0.30)
                    .map(|i| (dense - s.best[i]) * 100.0),
            );
            push(
                Claim::RandomDropAt3,
                s.nearest("random", 0.03)
                    .map(|i| (dense - s.best[i]) * 100.0),
            );
            push(
                Claim::RemainingAllAt3,
                s.nearest("winning", 0.03)
                    .map(|i| s.remaining_all[i] * 100.0),
            );
        }
        section = section.table(rounds_table(&base, &seeds));
    }
    let prov = provenance(ctx, prune);
    let cols = accuracy_panels.len().min(3);
    let fig = Figure::new(accuracy_panels, cols)
        .title("Test accuracy vs weights remaining")
        .provenance(&prov);
    render(&fig, &ctx.out_dir.join("figures"), "lottery_accuracy")
        .map_err(|e| Error::Failed(e.to_string()))?;
    section = section.figure(figure_ref(
        "figures/lottery_accuracy",
        "Winning vs random tickets (Bain Fig. 6)",
        &prov,
    ));
    if !early_panels.is_empty() {
        let cols = early_panels.len().min(3);
        let fig = Figure::new(early_panels, cols)
            .title("Early-stop iteration vs weights remaining")
            .provenance(&prov);
        render(&fig, &ctx.out_dir.join("figures"), "lottery_early_stop")
            .map_err(|e| Error::Failed(e.to_string()))?;
        section = section.figure(figure_ref(
            "figures/lottery_early_stop",
            "Iteration of minimum validation loss per round",
            &prov,
        ));
    }
    for ((base, claim), v) in &ours {
        let (m, sd) = mean_std(v);
        section = section.paragraph(format!(
            "{base}: {} = {m:.2} ± {sd:.2} over {} seeds.",
            claim.describe(),
            v.len()
        ));
    }
    Ok((section, ours))
}

fn rounds_table(base: &str, seeds: &[Rounds]) -> Table {
    let winning = curve(seeds, "winning", |s, i| s.best[i] * 100.0);
    let random = curve(seeds, "random", |s, i| s.best[i] * 100.0);
    let rows = winning
        .iter()
        .enumerate()
        .map(|(r, &(x, y, sd, n))| {
            let rnd = if r == 0 {
                "—".to_string()
            } else {
                random
                    .get(r)
                    .map_or("—".into(), |&(_, y, sd, _)| format!("{y:.2} ± {sd:.2}"))
            };
            vec![
                r.to_string(),
                format!("{x:.1}"),
                format!("{y:.2} ± {sd:.2}"),
                rnd,
                n.to_string(),
            ]
        })
        .collect();
    let columns = [
        "round",
        "% weights remaining",
        "winning acc (%)",
        "random acc (%)",
        "seeds",
    ]
    .map(String::from)
    .to_vec();
    Table::new(columns, rows).caption(format!(
        "{base}: best test accuracy per round, mean ± std over seeds"
    ))
}
