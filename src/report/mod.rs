//! Report rendering: figures, tables, verdicts and the HTML/Markdown page.
//!
//! Data in, files out: nothing here reads the store or trains anything. The report
//! stage gathers results, builds [`Figure`]s, [`Table`]s and [`Comparison`]s, and
//! calls [`render`] and [`write_report`].
//!
//! - [`figure`]: a declarative [`Figure`] of panels ([`LineChart`], [`Heatmap`],
//!   [`ImageGrid`], [`Histogram`]) rendered to PNG and SVG by one code path.
//! - [`table`]: [`Table`] and its construction from a polars `DataFrame`.
//! - [`verdict`]: our value against the paper's, within a stated tolerance.
//! - [`page`]: the self-contained `index.html` and `README.md`.
//!
//! Output is deterministic: identical inputs give identical bytes.

pub mod figure;
mod font;
mod heatmap;
mod histogram;
mod images;
mod legend;
mod line;
pub mod page;
mod png;
mod scale;
pub mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
pub mod verdict;

pub use figure::{
    render, render_png, render_svg, Figure, Heatmap, Histogram, HistogramSeries, Image, ImageGrid,
    LineChart, Panel, Point, Provenance, Series, SeriesStyle,
};
pub use page::{write_report, Block, FigureRef, Report, Section, INDEX_HTML};
pub use table::{format_number, Table};
pub use verdict::{judge, Comparison, Estimate, Verdict};

use std::path::PathBuf;

/// Why a figure or a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The input does not describe a drawable figure or a valid report.
    #[error("invalid report input: {0}")]
    Invalid(String),
    /// The plotting backend failed.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Shorthand for results of this module.
pub type Result<T> = std::result::Result<T, ReportError>;
