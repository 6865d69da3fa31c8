//! The continual-learning part of a report (Bain 2022 Figs. 8 and 9; Iyer et
//! al.'s accuracy-vs-tasks table): for each task sequence, the mean accuracy
//! over the tasks seen so far and the newest task's accuracy against the
//! number of tasks trained, one line per network (mean ± std across seeds),
//! the accuracy matrix of each network as a heat map, and a table of final
//! accuracies; for splits made with Bain's in-place relabelling, what it did
//! to each task's labels and what the dataset used can show of it.

use std::collections::BTreeMap;

use crate::report::{
    format_number, render, Figure, Heatmap, Histogram, HistogramSeries, LineChart, Panel, Point,
    Section, Series, Table,
};
use crate::stages::continual::{ACCURACY_TABLE, EPOCH_ACCURACY_TABLE, SUMMARY_TABLE, WEIGHTS};
use crate::stages::{Error, Input, Result, StageContext};

use super::lottery::ClaimValues;
use super::{by_base, column, figure_ref, mean_std, provenance, read_table, Claim};

/// The sections for the `continual` inputs, and our value of each claim per
/// stage base name (one value per seed).
pub fn sections(ctx: &StageContext, inputs: &[&Input]) -> Result<(Vec<Section>, ClaimValues)> {
    let mut ours = ClaimValues::new();
    // One figure per task sequence (same `tasks` params and dataset).
    let mut sequences: BTreeMap<String, Vec<(String, Vec<&Input>)>> = BTreeMap::new();
    for (base, runs) in by_base(inputs) {
        let tasks = runs[0]
            .params
            .get("tasks")
            .map(describe_tasks)
            .unwrap_or_default();
        sequences.entry(tasks).or_default().push((base, runs));
    }
    let mut sections = Vec::new();
    for (n, (tasks, networks)) in sequences.iter().enumerate() {
        let mut mean_series = Vec::new();
        let mut latest_series = Vec::new();
        let mut rows = Vec::new();
        let mut heatmaps = Vec::new();
        for (color, (base, runs)) in networks.iter().enumerate() {
            // Per number of tasks trained: [mean accuracies, latest accuracies] over seeds.
            let mut by_tasks: BTreeMap<u64, [Vec<f64>; 2]> = BTreeMap::new();
            let mut finals: BTreeMap<Claim, Vec<f64>> = BTreeMap::new();
            for run in runs {
                let summary = read_table(run, SUMMARY_TABLE)?;
                let trained = column(&summary, "tasks_trained")?;
                let mean = column(&summary, "mean_accuracy")?;
                let latest = column(&summary, "latest_accuracy")?;
                let first = column(&summary, "first_task_accuracy")?;
                for i in 0..trained.len() {
                    let e = by_tasks.entry(trained[i] as u64).or_default();
                    e[0].push(mean[i] * 100.0);
                    e[1].push(latest[i] * 100.0);
                }
                let last = trained.len().checked_sub(1).ok_or_else(|| {
                    Error::Failed(format!("stage `{}`: {SUMMARY_TABLE} is empty", run.stage))
                })?;
                finals
                    .entry(Claim::FinalMeanAccuracy)
                    .or_default()
                    .push(mean[last] * 100.0);
                finals
                    .entry(Claim::FinalFirstTaskAccuracy)
                    .or_default()
                    .push(first[last] * 100.0);
                finals
                    .entry(Claim::FinalLatestAccuracy)
                    .or_default()
                    .push(latest[last] * 100.0);
            }
            let line = |which: usize| {
                by_tasks
                    .iter()
                    .map(|(&t, v)| {
                        let (m, s) = mean_std(&v[which]);
                        Point::with_std(t as f64, m, s)
                    })
                    .collect::<Vec<_>>()
            };
            let label = model_label(runs[0]);
            mean_series.push(Series::new(format!("{base} ({label})"), line(0)).color(color));
            latest_series.push(Series::new(format!("{base} ({label})"), line(1)).color(color));
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
        // A run with one evaluation (e.g. the whole training set at once) is
        // drawn as a level line across the others.
        let longest = mean_series
            .iter()
            .map(|s| s.points.len())
            .max()
            .unwrap_or(0);
        for series in [&mut mean_series, &mut latest_series] {
            for s in series.iter_mut() {
                if s.points.len() == 1 && longest > 1 {
                    let y = s.points[0].y;
                    *s = Series::reference(s.name.clone(), y, 1.0, longest as f64);
                }
            }
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
        let all: Vec<&Input> = networks
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect();
        let figures = ctx.out_dir.join("figures");
        let stem = format!("continual_{n}");
        let prov = provenance(ctx, &all);
        let fig = Figure::new(
            vec![
                chart("Mean accuracy over the tasks seen", mean_series),
                chart("Accuracy on the newest task", latest_series),
            ],
            2,
        )
        .title(format!("Continual learning: {tasks}"))
        .provenance(&prov);
        render(&fig, &figures, &stem).map_err(|e| Error::Failed(e.to_string()))?;
        let columns = heatmaps.len().min(3);
        let matrix_stem = format!("{stem}_matrix");
        let fig = Figure::new(heatmaps, columns)
            .title(
                "Accuracy matrix: test accuracy (%) on task j after training task i (first seed)",
            )
            .provenance(&prov);
        render(&fig, &figures, &matrix_stem).map_err(|e| Error::Failed(e.to_string()))?;
        let table = Table::new(
            [
                "stage",
                "network",
                "seeds",
                "final mean acc. (%)",
                "first task at end (%)",
                "newest task (%)",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        );
        sections.push(
            Section::new(format!("Continual learning: {tasks}"))
                .paragraph(
                    "After each task, the test accuracy averaged over every task trained so far, \
                     and the accuracy on the task just trained, for each network (mean ± std across \
                     seeds): Bain 2022 Figs. 8-9 for the active-dendrite networks. Forgetting shows \
                     as a falling mean while the newest task stays high. In a stream every subset \
                     is tested on the whole test set, so both panels show that accuracy.",
                )
                .figure(figure_ref(&format!("figures/{stem}"), "Accuracy against tasks trained", &prov))
                .figure(figure_ref(&format!("figures/{matrix_stem}"), "Accuracy matrices", &prov))
                .table(table),
        );
    }
    if let Some(section) = relabel_section(inputs) {
        sections.push(section);
    }
    if let Some(section) = per_epoch_section(ctx, inputs)? {
        sections.push(section);
    }
    if let Some(section) = hidden_weights_section(ctx, inputs)? {
        sections.push(section);
    }
    Ok((sections, ours))
}

/// Bain's split (`relabel: bain-in-place`): per run, the classes his
/// in-place remapping mislabels and the distinct labels each task keeps
/// (from the manifests' metrics), and, when the split is not of CIFAR-100,
/// what such an analogue can and cannot show.
fn relabel_section(inputs: &[&Input]) -> Option<Section> {
    let runs: Vec<&Input> = inputs
        .iter()
        .copied()
        .filter(|i| i.metrics.contains_key("mislabelled_classes"))
        .collect();
    if runs.is_empty() {
        return None;
    }
    let mut single = (0, 0);
    let mut analogues: Vec<String> = Vec::new();
    let rows = runs
        .iter()
        .map(|run| {
            let distinct: Vec<u64> = run.metrics["distinct_labels_per_task"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
                .unwrap_or_default();
            single.0 += distinct.iter().filter(|&&d| d == 1).count();
            single.1 += distinct.len();
            let dataset = run.datasets.join(", ");
            if !run.datasets.iter().any(|d| d.starts_with("cifar100")) {
                analogues.push(dataset.clone());
            }
            let tasks = run.params.get("tasks").map(describe_tasks);
            vec![
                run.stage.clone(),
                dataset,
                tasks.unwrap_or_default(),
                run.metrics["mislabelled_classes"].to_string(),
                distinct
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    let table = Table::new(
        [
            "stage",
            "data",
            "tasks",
            "classes mislabelled",
            "distinct labels per task",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    );
    let mut section = Section::new("Bain's split: labels after his in-place remapping")
        .paragraph(
            "Bain's datasets/splitCIFAR100.py orders the classes with Python's \
             random.Random(seed).shuffle, cuts them into tasks, then, task by task and class by \
             class, sets every label equal to class k to k's place j in its task, on the one label \
             array that all tasks share. A class already moved to j moves again when class j's own \
             turn comes, so classes merge: on CIFAR-100 (10 tasks of 10) seeds 0-4 leave 37 to 50 \
             of the 100 classes with another label than their place, and tasks with 2 to 10 \
             distinct labels instead of 10. A task with fewer labels is easier, and it hides \
             differences between networks. The stages below replay his split exactly (order and \
             collisions; tasks.json lists every task's classes and labels); the others use the \
             intended split, and the reference comparison says whether the relabelling explains \
             his \"nearly overlapping\" curves.",
        )
        .table(table);
    if !analogues.is_empty() {
        analogues.sort();
        analogues.dedup();
        section = section.paragraph(format!(
            "These runs split {} instead of CIFAR-100: an offline analogue with 10 classes \
             (Fashion-MNIST's), so tasks of a few classes instead of 10 tasks of 10. The same \
             remapping then degenerates in another way: {} of the {} tasks above keep a single \
             label, which a network learns by always answering it (100% right after training \
             that task). The analogue can show the \
             mechanism (merged labels lift accuracies and make the networks look alike) and its \
             size on these tasks. It cannot show its size on CIFAR-100, whose tasks keep 2 to 10 \
             labels, so it neither confirms nor refutes Bain's Fig. 9: that needs the default \
             settings on CIFAR-100.",
            analogues.join("; "),
            single.0,
            single.1
        ));
    }
    Some(section)
}

/// Laborieux et al. Fig. 2: each task's test accuracy after every epoch of
/// the whole sequence, one panel per network (first seed), for the runs made
/// with `eval_each_epoch`.
fn per_epoch_section(ctx: &StageContext, inputs: &[&Input]) -> Result<Option<Section>> {
    let mut panels = Vec::new();
    let mut used = Vec::new();
    for (base, runs) in by_base(inputs) {
        let run = runs[0];
        if !run.dir.join(EPOCH_ACCURACY_TABLE).exists() {
            continue;
        }
        let frame = read_table(run, EPOCH_ACCURACY_TABLE)?;
        let after = column(&frame, "after_task")?;
        let epoch = column(&frame, "epoch")?;
        let task = column(&frame, "task")?;
        let acc = column(&frame, "accuracy")?;
        let per_task = run.params["epochs"].as_f64().unwrap_or(1.0);
        let mut lines: BTreeMap<u64, Vec<Point>> = BTreeMap::new();
        for i in 0..after.len() {
            let x = after[i] * per_task + epoch[i];
            lines
                .entry(task[i] as u64)
                .or_default()
                .push(Point::new(x, acc[i] * 100.0));
        }
        panels.push(Panel::Line(LineChart {
            title: format!("{base} ({})", optimizer_label(run)),
            x_label: "epoch of the whole sequence".into(),
            y_label: "test accuracy (%)".into(),
            y_range: Some((0.0, 100.0)),
            series: lines
                .into_iter()
                .map(|(t, points)| Series::new(format!("task {}", t + 1), points).color(t as usize))
                .collect(),
            ..LineChart::default()
        }));
        used.push(run);
    }
    if panels.is_empty() {
        return Ok(None);
    }
    let stem = "continual_epochs";
    let prov = provenance(ctx, &used);
    let columns = panels.len().min(2);
    let fig = Figure::new(panels, columns)
        .title("Test accuracy of every task learned so far, after every epoch")
        .provenance(&prov);
    render(&fig, &ctx.out_dir.join("figures"), stem).map_err(|e| Error::Failed(e.to_string()))?;
    Ok(Some(
        Section::new("Accuracy of each task through the sequence (Laborieux et al. 2021, Fig. 2)")
            .paragraph(
                "Each line is one task's test accuracy, from the epoch its training starts to the \
                 end of the sequence (first seed). A non-metaplastic network (m = 0) forgets: early \
                 tasks fall as later ones are learned. Metaplasticity (m > 0) keeps them higher.",
            )
            .figure(figure_ref(&format!("figures/{stem}"), "Per-task accuracy through the sequence", &prov)),
    ))
}

/// Laborieux et al. Fig. 2g-h: the distribution of the hidden weights W_h
/// of each layer at the end of the sequence, one panel per binarized
/// network (first seed). Metaplastic networks grow heavier tails.
fn hidden_weights_section(ctx: &StageContext, inputs: &[&Input]) -> Result<Option<Section>> {
    let mut panels = Vec::new();
    let mut used = Vec::new();
    for (base, runs) in by_base(inputs) {
        let run = runs[0];
        if run.params["model"]["type"].as_str() != Some("bnn") {
            continue;
        }
        let path = run.dir.join(WEIGHTS);
        let tensors = crate::nn::checkpoint::read_tensors(&path)?;
        let series = tensors
            .iter()
            .filter(|(name, _)| name.ends_with(".weight") && !name.starts_with("bn"))
            .enumerate()
            .map(|(i, (name, values))| HistogramSeries {
                name: name.trim_end_matches(".weight").to_string(),
                values: values.iter().map(|&v| v as f64).collect(),
                color: Some(i),
            })
            .collect();
        panels.push(Panel::Histogram(Histogram {
            title: format!("{base} ({})", optimizer_label(run)),
            x_label: "hidden weight W_h".into(),
            y_label: "density".into(),
            series,
            bins: 60,
            range: None,
            density: true,
        }));
        used.push(run);
    }
    if panels.is_empty() {
        return Ok(None);
    }
    let stem = "hidden_weights";
    let prov = provenance(ctx, &used);
    let columns = panels.len().min(3);
    let fig = Figure::new(panels, columns)
        .title("Hidden weights of each layer after the last task")
        .provenance(&prov);
    render(&fig, &ctx.out_dir.join("figures"), stem).map_err(|e| Error::Failed(e.to_string()))?;
    Ok(Some(
        Section::new("Hidden-weight distributions (Laborieux et al. 2021, Fig. 2g-h)")
            .paragraph(
                "The binarized networks use sign(W_h); W_h itself is the metaplastic variable. \
                 With m > 0, updates that would shrink a large |W_h| are attenuated, so the \
                 distributions grow wider tails: those weights are consolidated.",
            )
            .figure(figure_ref(
                &format!("figures/{stem}"),
                "Distribution of W_h per layer",
                &prov,
            )),
    ))
}

/// `adam-meta, m = [1.35]` or the optimizer's type.
fn optimizer_label(input: &Input) -> String {
    let opt = &input.params["optimizer"];
    let kind = opt["type"].as_str().unwrap_or("?");
    match opt.get("meta") {
        Some(m) => format!("{kind}, m = {m}"),
        None => kind.to_string(),
    }
}

/// "permuted, 10 tasks", "split, 5 tasks of 2 classes", "stream learning"
/// (every subset count together, so the whole-set run sits beside the
/// stream) or "datasets mnist → fmnist", from the `tasks` params.
fn describe_tasks(tasks: &serde_json::Value) -> String {
    if let Some(p) = tasks.get("permuted") {
        return format!("permuted, {} tasks", p["count"]);
    }
    if let Some(s) = tasks.get("split") {
        let count = s
            .get("count")
            .filter(|c| !c.is_null())
            .map_or("all".into(), |c| c.to_string());
        return format!("split, {count} tasks of {} classes", s["classes_per_task"]);
    }
    if tasks.get("stream").is_some() {
        return "stream learning (subsets of one training set, one after another)".into();
    }
    if let Some(serde_json::Value::Array(names)) = tasks.get("datasets") {
        let names: Vec<&str> = names.iter().filter_map(|n| n.as_str()).collect();
        return format!("datasets in sequence: {}", names.join(" → "));
    }
    tasks.to_string()
}

/// The model's `type` and, for dendritic ones, the context.
fn model_label(input: &Input) -> String {
    let kind = input.params["model"]["type"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    if kind.starts_with("dendritic") {
        format!(
            "{kind}, {} context",
            context_label(&input.params["context"])
        )
    } else {
        kind
    }
}

/// A `context` param as a reader names it: `prototype`, or Bain's
/// `task sum / 6000 (oracle at test)`.
fn context_label(context: &serde_json::Value) -> String {
    if let Some(name) = context.as_str() {
        return name.to_string();
    }
    let sum = &context["task_sum"];
    match (sum["divisor"].as_u64(), sum["test"].as_str()) {
        (Some(divisor), Some(test)) => format!("task sum / {divisor} ({test} at test)"),
        _ => context.to_string(),
    }
}

/// The accuracy matrix of one run.
fn heatmap(base: &str, input: &Input) -> Result<Heatmap> {
    let frame = read_table(input, ACCURACY_TABLE)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_named_for_readers() {
        assert_eq!(context_label(&serde_json::json!("onehot")), "onehot");
        let bain = serde_json::json!({"task_sum": {"divisor": 6000, "test": "oracle"}});
        assert_eq!(context_label(&bain), "task sum / 6000 (oracle at test)");
    }
}
