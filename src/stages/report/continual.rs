//! The continual-learning part of a report (Bain 2022 Figs. 8 and 9; Iyer et
//! al.'s accuracy-vs-tasks table): for each task sequence, the mean accuracy
//! over the tasks seen so far and the newest task's accuracy against the
//! number of tasks trained, one line per network (mean ± std across seeds),
//! the accuracy matrix of each network as a heat map, and a table of final
//! accuracies.

use std::collections::BTreeMap;

use crate::report::{
    format_number, render, Figure, FigureRef, Heatmap, LineChart, Panel, Point, Section, Series,
    Table,
};
use crate::stages::{Error, Input, Result, StageContext};

use super::lottery::ClaimValues;
use super::{by_base, column, mean_std, provenance, read_table, Claim};

/// The sections for the `continual` inputs, and our value of each claim per
/// stage base name (one value per seed).
pub fn sections(ctx: &StageContext, inputs: &[&Input]) -> Result<(Vec<Section>, ClaimValues)> {
    let mut ours = ClaimValues::new();
    // One figure per task sequence (same `tasks` params and dataset).
    let mut sequences: BTreeMap<String, Vec<(String, Vec<&Input>)>> = BTreeMap::new();
    for (base, runs) in by_base(inputs) {
        let tasks = runs[0].params.get("tasks").map(describe_tasks).unwrap_or_default();
        sequences.entry(tasks).or_default().push((base, runs));
    }
    let mut sections = Vec::new();
    for (n, (tasks, networks)) in sequences.iter().enumerate() {
        let mut mean_series = Vec::new();
        let mut latest_series = Vec::new();
        let mut rows = Vec::new();
        let mut heatmaps = Vec::new();
        for (color, (base, runs)) in networks.iter().enumerate() {
            let mut by_tasks: BTreeMap<u64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
            let mut finals: BTreeMap<Claim, Vec<f64>> = BTreeMap::new();
            for run in runs {
                let summary = read_table(run, "summary.csv")?;
                let trained = column(&summary, "tasks_trained")?;
                let mean = column(&summary, "mean_accuracy")?;
                let latest = column(&summary, "latest_accuracy")?;
                let first = column(&summary, "first_task_accuracy")?;
                for i in 0..trained.len() {
                    let e = by_tasks.entry(trained[i] as u64).or_default();
                    e.0.push(mean[i] * 100.0);
                    e.1.push(latest[i] * 100.0);
                }
                let last = trained.len().checked_sub(1).ok_or_else(|| {
                    Error::Failed(format!("stage `{}`: summary.csv is empty", run.stage))
                })?;
                finals.entry(Claim::FinalMeanAccuracy).or_default().push(mean[last] * 100.0);
                finals.entry(Claim::FinalFirstTaskAccuracy).or_default().push(first[last] * 100.0);
                finals.entry(Claim::FinalLatestAccuracy).or_default().push(latest[last] * 100.0);
            }
            let line = |pick: fn(&(Vec<f64>, Vec<f64>)) -> &Vec<f64>| {
                by_tasks
                    .iter()
                    .map(|(&t, v)| {
                        let (m, s) = mean_std(pick(v));
                        Point::with_std(t as f64, m, s)
                    })
                    .collect::<Vec<_>>()
            };
            let label = model_label(runs[0]);
            mean_series.push(Series::new(format!("{base} ({label})"), line(|v| &v.0)).color(color));
            latest_series.push(Series::new(format!("{base} ({label})"), line(|v| &v.1)).color(color));
            let cell = |c: Claim| {
                let (m, s) = mean_std(&finals[&c]);
                format!("{} ± {}", format_number(m), format_number(s))
            };
            rows.push(vec![
                base.clone(),
                label,
                runs.len().to_string(),
                cell(Claim::FinalMeanAccuracy),
                cell(Claim::FinalFirstTaskAccuracy),
                cell(Claim::FinalLatestAccuracy),
            ]);
            for (claim, values) in finals {
                ours.insert((base.clone(), claim), values);
            }
            heatmaps.push(Panel::Heatmap(heatmap(base, runs[0])?));
        }
        let chart = |title: &str, series: Vec<Series>| {
            Panel::Line(LineChart {
                title: title.into(),
                x_label: "tasks trained".into(),
                y_label: "test accuracy (%)".into(),
                series,
                ..LineChart::default()
            })
        };
        let all: Vec<&Input> = networks.iter().flat_map(|(_, r)| r.iter().copied()).collect();
        let figures = ctx.out_dir.join("figures");
        let stem = format!("continual_{n}");
        let fig = Figure::new(
            vec![
                chart("Mean accuracy over the tasks seen", mean_series),
                chart("Accuracy on the newest task", latest_series),
            ],
            2,
        )
        .title(format!("Continual learning: {tasks}"))
        .provenance(&provenance(ctx, &all));
        render(&fig, &figures, &stem).map_err(|e| Error::Failed(e.to_string()))?;
        let columns = heatmaps.len().min(3);
        let matrix_stem = format!("{stem}_matrix");
        let fig = Figure::new(heatmaps, columns)
            .title("Accuracy matrix: test accuracy (%) on task j after training task i (first seed)");
        render(&fig, &figures, &matrix_stem).map_err(|e| Error::Failed(e.to_string()))?;
        let table = Table::new(
            ["stage", "network", "seeds", "final mean acc. (%)", "first task at end (%)", "newest task (%)"]
                .map(String::from)
                .to_vec(),
            rows,
        );
        sections.push(
            Section::new(format!("Continual learning (Bain 2022 Figs. 8–9): {tasks}"))
                .paragraph(
                    "After each task, the test accuracy averaged over every task trained so far, \
                     and the accuracy on the task just trained, for each network (mean ± std across \
                     seeds). Forgetting shows as a falling mean while the newest task stays high.",
                )
                .figure(FigureRef::from_stem(&format!("figures/{stem}"), "Accuracy against tasks trained"))
                .figure(FigureRef::from_stem(&format!("figures/{matrix_stem}"), "Accuracy matrices"))
                .table(table),
        );
    }
    Ok((sections, ours))
}

/// "permuted, 10 tasks" or "split, 5 tasks of 2 classes" from the `tasks` params.
fn describe_tasks(tasks: &serde_json::Value) -> String {
    if let Some(p) = tasks.get("permuted") {
        return format!("permuted, {} tasks", p["count"]);
    }
    if let Some(s) = tasks.get("split") {
        let count = s.get("count").filter(|c| !c.is_null()).map_or("all".into(), |c| c.to_string());
        return format!("split, {count} tasks of {} classes", s["classes_per_task"]);
    }
    tasks.to_string()
}

/// The model's `type` and, for dendritic ones, the context.
fn model_label(input: &Input) -> String {
    let kind = input.params["model"]["type"].as_str().unwrap_or("?").to_string();
    if kind.starts_with("dendritic") {
        let context = input.params["context"].as_str().unwrap_or("?");
        format!("{kind}, {context} context")
    } else {
        kind
    }
}

/// The accuracy matrix of one run.
fn heatmap(base: &str, input: &Input) -> Result<Heatmap> {
    let frame = read_table(input, "accuracy.csv")?;
    let after = column(&frame, "after_task")?;
    let task = column(&frame, "task")?;
    let acc = column(&frame, "accuracy")?;
    let rows: Vec<u64> = {
        let mut r: Vec<u64> = after.iter().map(|&a| a as u64).collect();
        r.dedup();
        r
    };
    let cols = task.iter().fold(0.0f64, |m, &t| m.max(t)) as usize + 1;
    let mut values = vec![vec![f64::NAN; cols]; rows.len()];
    for i in 0..after.len() {
        let r = rows.iter().position(|&a| a == after[i] as u64).unwrap_or(0);
        values[r][task[i] as usize] = acc[i] * 100.0;
    }
    Ok(Heatmap {
        title: base.to_string(),
        row_label: "after training task".into(),
        col_label: "accuracy on task".into(),
        row_names: rows.iter().map(|r| (r + 1).to_string()).collect(),
        col_names: (1..=cols).map(|c| c.to_string()).collect(),
        values,
        range: Some((0.0, 100.0)),
        decimals: Some(0),
    })
}
