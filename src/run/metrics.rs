//! Every stage's metrics as one tidy table (stage, kind, matrix, seed, metric, value),
//! read from the store only, and the comparison of two such tables.
//!
//! Only numeric metrics enter the table (lists such as per-epoch wall times are left
//! out: they are timings, not results). Nothing here trains or writes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::pipeline::Pipeline;
use crate::store::filecache::FileDigests;
use crate::store::Store;

use super::plan::{plan, Error, Status};

/// One metric of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// Expanded stage name (`dense@seed=1`).
    pub stage: String,
    /// The stage's kind.
    pub kind: String,
    /// The matrix values of the expansion, as `key=value` joined by `,` (empty if none).
    pub matrix: String,
    /// The stage's seed.
    pub seed: u64,
    /// Metric name (`test_accuracy`).
    pub metric: String,
    /// Its value.
    pub value: f64,
}

/// The metrics of every stage of `pipeline` that has a valid result in `store`, in
/// pipeline order, and the names of the stages that have none.
pub fn collect(
    store: &Store,
    files: &FileDigests,
    pipeline: &Pipeline,
) -> Result<(Vec<MetricRow>, Vec<String>), Error> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (name, a) in plan(store, files, pipeline)? {
        let (Status::Cached, Some(record)) = (a.status, a.record) else {
            missing.push(name);
            continue;
        };
        let stage = pipeline.stage(&name).expect("planned stages exist");
        let matrix: Vec<String> = stage
            .matrix
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for (metric, value) in &record.manifest.metrics {
            let Some(value) = value.as_f64() else {
                continue;
            };
            rows.push(MetricRow {
                stage: name.clone(),
                kind: stage.kind.name().to_string(),
                matrix: matrix.join(","),
                seed: stage.seed,
                metric: metric.clone(),
                value,
            });
        }
    }
    Ok((rows, missing))
}

/// One metric present on both sides of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDiff {
    /// Expanded stage name.
    pub stage: String,
    /// Metric name.
    pub metric: String,
    /// This side's value.
    pub ours: f64,
    /// The other side's value.
    pub theirs: f64,
    /// `ours - theirs`.
    pub difference: f64,
    /// Whether `|difference|` exceeds the tolerance (NaN on one side only counts).
    pub beyond: bool,
}

/// Whether a metric is a speed or a time (`train_samples_per_second`,
/// `round_seconds`): those differ between machines and minutes by nature, so they
/// are listed but never compared.
pub fn is_timing(metric: &str) -> bool {
    metric.ends_with("_per_second") || metric.ends_with("seconds")
}

/// Pairs the metrics present in both tables by (stage, metric), in `ours`' order,
/// leaving out timings ([`is_timing`]).
pub fn compare(ours: &[MetricRow], theirs: &[MetricRow], tolerance: f64) -> Vec<MetricDiff> {
    let index: BTreeMap<(&str, &str), f64> = theirs
        .iter()
        .map(|r| ((r.stage.as_str(), r.metric.as_str()), r.value))
        .collect();
    ours.iter()
        .filter(|r| !is_timing(&r.metric))
        .filter_map(|r| {
            let theirs = *index.get(&(r.stage.as_str(), r.metric.as_str()))?;
            let difference = r.value - theirs;
            let both_nan = r.value.is_nan() && theirs.is_nan();
            let beyond = !both_nan && (difference.is_nan() || difference.abs() > tolerance);
            Some(MetricDiff {
                stage: r.stage.clone(),
                metric: r.metric.clone(),
                ours: r.value,
                theirs,
                difference,
                beyond,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stage: &str, metric: &str, value: f64) -> MetricRow {
        MetricRow {
            stage: stage.into(),
            kind: "train".into(),
            matrix: String::new(),
            seed: 0,
            metric: metric.into(),
            value,
        }
    }

    #[test]
    fn compare_pairs_common_metrics_and_marks_those_beyond_the_tolerance() {
        let ours = [
            row("a", "acc", 0.9),
            row("a", "loss", 0.5),
            row("b", "acc", f64::NAN),
        ];
        let theirs = [
            row("a", "acc", 0.89),
            row("a", "loss", 0.7),
            row("c", "acc", 1.0),
        ];
        let d = compare(&ours, &theirs, 0.05);
        assert_eq!(d.len(), 2);
        assert!(!d[0].beyond && (d[0].difference - 0.01).abs() < 1e-12);
        assert!(d[1].beyond);
        let nan = compare(&[row("a", "x", f64::NAN)], &[row("a", "x", 1.0)], 1.0);
        assert!(nan[0].beyond, "a value that became NaN is a difference");
        let both = compare(&[row("a", "x", f64::NAN)], &[row("a", "x", f64::NAN)], 0.0);
        assert!(!both[0].beyond);
        let speed = [row("a", "train_samples_per_second", 1.0)];
        assert!(compare(&speed, &[row("a", "train_samples_per_second", 2.0)], 0.0).is_empty());
    }
}
