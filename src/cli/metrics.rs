//! `repro metrics`: every stage's metrics as one tidy table from the store, in a
//! terminal table, CSV, JSON or Parquet; and, with `--against`, the differences from
//! another store or profile, with an exit code a script can use.

use std::path::PathBuf;

use polars::prelude::*;

use crate::pipeline::{Pipeline, Selection};
use crate::run::metrics::{collect, compare, MetricDiff, MetricRow};
use crate::store::filecache::FileDigests;
use crate::store::Store;

use super::common::{PipelineArgs, StoreArgs};
use super::{exit, CliError, CliResult};

/// Output formats of `repro metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// CSV with a header.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// A Parquet file (needs --output).
    Parquet,
}

/// Arguments of `repro metrics`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    store: StoreArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write to this file instead of stdout (required for parquet).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Compare with the results of the same pipeline in another store.
    #[arg(long, value_name = "STORE", conflicts_with = "against_profile")]
    against: Option<PathBuf>,
    /// Compare with the same pipeline under another profile, in this store.
    #[arg(long, value_name = "PROFILE")]
    against_profile: Option<String>,
    /// Largest absolute difference still counted as equal (with --against).
    #[arg(long, default_value = "0", value_parser = parse_tolerance)]
    tolerance: f64,
}

fn parse_tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!("`{text}` is not a finite number ≥ 0")),
    }
}

/// Runs `repro metrics`.
pub fn exec(args: Args) -> CliResult {
    if args.format == Format::Parquet && args.output.is_none() {
        return Err(CliError::invalid("--format parquet needs --output FILE"));
    }
    let pipeline = args.pipeline.load()?;
    let store = args.store.open_existing()?;
    let ours = rows_of(&store, &pipeline)?;
    let theirs = match (&args.against, &args.against_profile) {
        (Some(other), _) => {
            let other = StoreArgs {
                store: other.clone(),
            }
            .open_existing()?;
            Some(rows_of(&other, &pipeline)?)
        }
        (None, Some(profile)) => {
            let selection = Selection {
                profile: Some(profile.clone()),
                sets: args.pipeline.sets.clone(),
                only: args.pipeline.only.clone(),
            };
            let other = Pipeline::load(&args.pipeline.pipeline, &selection)?;
            Some(rows_of(&store, &other)?)
        }
        (None, None) => None,
    };
    let Some(theirs) = theirs else {
        write_rows(&ours, args.format, args.output.as_ref())?;
        return Ok(exit::OK);
    };
    let diffs = compare(&ours, &theirs, args.tolerance);
    if diffs.is_empty() {
        return Err(CliError::failed(
            "the two sides have no metric in common (is the other side's pipeline run?)",
        ));
    }
    write_diffs(&diffs, args.format, args.output.as_ref())?;
    let beyond = diffs.iter().filter(|d| d.beyond).count();
    eprintln!(
        "{} metrics compared, {beyond} differ by more than {}",
        diffs.len(),
        args.tolerance
    );
    Ok(if beyond > 0 { exit::FAILED } else { exit::OK })
}

/// The rows of a pipeline in a store; stages without a result are named on stderr.
fn rows_of(store: &Store, pipeline: &Pipeline) -> Result<Vec<MetricRow>, CliError> {
    let files = FileDigests::load(store);
    let (rows, missing) = collect(store, &files, pipeline)?;
    if !missing.is_empty() {
        eprintln!(
            "note: {} stages have no result in {}: {}",
            missing.len(),
            store.root().display(),
            missing.join(", ")
        );
    }
    Ok(rows)
}

fn rows_frame(rows: &[MetricRow]) -> DataFrame {
    let col = |f: fn(&MetricRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    df!(
        "stage" => col(|r| &r.stage),
        "kind" => col(|r| &r.kind),
        "matrix" => col(|r| &r.matrix),
        "seed" => rows.iter().map(|r| r.seed).collect::<Vec<u64>>(),
        "metric" => col(|r| &r.metric),
        "value" => rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
    )
    .expect("columns have equal lengths")
}

fn diffs_frame(diffs: &[MetricDiff]) -> DataFrame {
    let f = |g: fn(&MetricDiff) -> f64| diffs.iter().map(g).collect::<Vec<f64>>();
    df!(
        "stage" => diffs.iter().map(|d| d.stage.as_str()).collect::<Vec<&str>>(),
        "metric" => diffs.iter().map(|d| d.metric.as_str()).collect::<Vec<&str>>(),
        "ours" => f(|d| d.ours),
        "theirs" => f(|d| d.theirs),
        "difference" => f(|d| d.difference),
        "beyond" => diffs.iter().map(|d| d.beyond).collect::<Vec<bool>>(),
    )
    .expect("columns have equal lengths")
}

fn write_rows(
    rows: &[MetricRow],
    format: Format,
    output: Option<&PathBuf>,
) -> Result<(), CliError> {
    let table = || {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.stage.clone(),
                    r.kind.clone(),
                    r.matrix.clone(),
                    r.seed.to_string(),
                    r.metric.clone(),
                    format_value(r.value),
                ]
            })
            .collect();
        aligned(
            &["stage", "kind", "matrix", "seed", "metric", "value"],
            &cells,
        )
    };
    emit(
        format,
        output,
        table,
        || serde_json::to_string_pretty(rows),
        rows_frame(rows),
    )
}

fn write_diffs(
    diffs: &[MetricDiff],
    format: Format,
    output: Option<&PathBuf>,
) -> Result<(), CliError> {
    let table = || {
        let cells: Vec<Vec<String>> = diffs
            .iter()
            .map(|d| {
                vec![
                    d.stage.clone(),
                    d.metric.clone(),
                    format_value(d.ours),
                    format_value(d.theirs),
                    format_value(d.difference),
                    if d.beyond {
                        "beyond".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        aligned(
            &["stage", "metric", "ours", "theirs", "difference", ""],
            &cells,
        )
    };
    emit(
        format,
        output,
        table,
        || serde_json::to_string_pretty(diffs),
        diffs_frame(diffs),
    )
}

/// Writes one of the renderings to `output` or stdout.
fn emit(
    format: Format,
    output: Option<&PathBuf>,
    table: impl FnOnce() -> String,
    json: impl FnOnce() -> serde_json::Result<String>,
    mut frame: DataFrame,
) -> Result<(), CliError> {
    let text = match format {
        Format::Table => table(),
        Format::Json => json().expect("metrics serialize") + "\n",
        Format::Csv => {
            let mut bytes = Vec::new();
            CsvWriter::new(&mut bytes)
                .include_header(true)
                .finish(&mut frame)
                .map_err(CliError::failed)?;
            String::from_utf8(bytes).expect("CSV is UTF-8")
        }
        Format::Parquet => {
            let path = output.expect("checked before");
            return crate::table::write_parquet(path, &mut frame).map_err(CliError::failed);
        }
    };
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| CliError::failed(format!("write {}: {e}", path.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// A value as the table shows it: up to 6 significant decimals.
fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}")
    }
}

/// Left-aligned columns separated by two spaces, headed by `header`.
fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
