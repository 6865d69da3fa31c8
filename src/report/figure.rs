//! Declarative figures and their rendering to PNG and SVG by one code path.
//!
//! A [`Figure`] is a grid of [`Panel`]s (line charts, heatmaps, image grids,
//! histograms) with an optional title and a caption (e.g. [`Provenance`]).
//! [`render`] writes `stem.png` and `stem.svg`; both come from the same drawing
//! code, generic over the plotters backend. Output bytes depend only on the input.

use super::{font, heatmap, histogram, images, line, png, ReportError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// The largest image, in pixels, a figure may have (guards against absurd sizes).
const MAX_PIXELS: u64 = 40_000_000;
/// Height of a figure title strip.
const TITLE_H: u32 = 48;
/// Height of one caption line.
const CAPTION_LINE_H: u32 = 24;

/// One point of a line series: the mean `y` at `x`, and the std drawn as a band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Position on the x axis.
    pub x: f64,
    /// Mean value.
    pub y: f64,
    /// Standard deviation; a shaded band of ±`std` is drawn when any is > 0.
    pub std: f64,
}

impl Point {
    /// A point without spread.
    pub fn new(x: f64, y: f64) -> Self {
        Point { x, y, std: 0.0 }
    }

    /// A point with a ±`std` band.
    pub fn with_std(x: f64, y: f64, std: f64) -> Self {
        Point { x, y, std }
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesStyle {
    /// A solid line.
    #[default]
    Line,
    /// A solid line with a marker at every point.
    LineMarkers,
    /// Markers only (e.g. values read off the paper).
    Markers,
    /// A dashed line (reference values).
    Dashed,
}

/// A named series of a [`LineChart`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points, in drawing order.
    pub points: Vec<Point>,
    /// Palette index; `None` uses the series' position in the chart.
    pub color: Option<usize>,
    /// Line, markers or dashes.
    pub style: SeriesStyle,
}

impl Series {
    /// A solid-line series.
    pub fn new(name: impl Into<String>, points: Vec<Point>) -> Self {
        Series {
            name: name.into(),
            points,
            color: None,
            style: SeriesStyle::Line,
        }
    }

    /// A horizontal dashed reference line at `y` from `x0` to `x1` (e.g. the paper's value).
    pub fn reference(name: impl Into<String>, y: f64, x0: f64, x1: f64) -> Self {
        Series {
            name: name.into(),
            points: vec![Point::new(x0, y), Point::new(x1, y)],
            color: None,
            style: SeriesStyle::Dashed,
        }
    }

    /// Sets the drawing style.
    pub fn style(mut self, style: SeriesStyle) -> Self {
        self.style = style;
        self
    }

    /// Sets the palette index.
    pub fn color(mut self, index: usize) -> Self {
        self.color = Some(index);
        self
    }
}

/// A line chart: mean lines with ±std bands, a legend, labelled axes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    /// Panel title.
    pub title: String,
    /// X axis description, with units.
    pub x_label: String,
    /// Y axis description, with units.
    pub y_label: String,
    /// Log10-scaled x axis (e.g. "% of weights remaining").
    pub x_log: bool,
    /// Larger x to the left (as in lottery-ticket plots, 100 % → 1 %).
    pub x_reversed: bool,
    /// Fixed x range (data units); `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    /// Fixed y range; `None` fits the data and its bands.
    pub y_range: Option<(f64, f64)>,
    /// The series.
    pub series: Vec<Series>,
}

/// An accuracy matrix (or any matrix) as coloured cells with their values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Panel title.
    pub title: String,
    /// Description of the rows (e.g. "after training on task").
    pub row_label: String,
    /// Description of the columns (e.g. "accuracy on task").
    pub col_label: String,
    /// Row names; empty gives 1, 2, 3, ...
    pub row_names: Vec<String>,
    /// Column names; empty gives 1, 2, 3, ...
    pub col_names: Vec<String>,
    /// `values[i][j]`; non-finite values are drawn as empty grey cells.
    pub values: Vec<Vec<f64>>,
    /// Colour scale range; `None` uses the finite min and max.
    pub range: Option<(f64, f64)>,
    /// Decimals of the value labels; `None` picks 2 for ranges within [-1, 1], else 1.
    pub decimals: Option<usize>,
}

/// A grayscale or RGB image, 8 bits per channel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (gray) or 3 (RGB, interleaved).
    pub channels: u8,
    /// `width * height * channels` bytes.
    pub data: Vec<u8>,
}

impl Image {
    /// A grayscale image.
    pub fn gray(width: u32, height: u32, data: Vec<u8>) -> Self {
        Image {
            width,
            height,
            channels: 1,
            data,
        }
    }

    /// An RGB image (interleaved).
    pub fn rgb(width: u32, height: u32, data: Vec<u8>) -> Self {
        Image {
            width,
            height,
            channels: 3,
            data,
        }
    }

    /// Checks the channel count and the buffer length.
    pub fn validate(&self) -> Result<()> {
        let want = self.width as u64 * self.height as u64 * self.channels as u64;
        if !matches!(self.channels, 1 | 3) {
            return Err(ReportError::Invalid(format!(
                "an image has {} channels; expected 1 or 3",
                self.channels
            )));
        }
        if self.data.len() as u64 != want || want == 0 {
            return Err(ReportError::Invalid(format!(
                "a {}x{}x{} image has {} bytes; expected {want} (and more than 0)",
                self.width,
                self.height,
                self.channels,
                self.data.len()
            )));
        }
        Ok(())
    }

    /// The RGB colour of pixel (`x`, `y`); the caller keeps it in bounds.
    pub(crate) fn pixel(&self, x: u32, y: u32) -> RGBColor {
        let i = (y as usize * self.width as usize + x as usize) * self.channels as usize;
        match self.data.get(i..i + self.channels as usize) {
            Some([g]) => RGBColor(*g, *g, *g),
            Some([r, g, b]) => RGBColor(*r, *g, *b),
            _ => RGBColor(0, 0, 0),
        }
    }
}

/// Example images in labelled rows (e.g. one row per noise level).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageGrid {
    /// Panel title.
    pub title: String,
    /// Column headings (may be empty).
    pub column_labels: Vec<String>,
    /// `(row label, images)`.
    pub rows: Vec<(String, Vec<Image>)>,
}

/// One distribution of a [`Histogram`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSeries {
    /// Legend text.
    pub name: String,
    /// The samples; non-finite ones are ignored.
    pub values: Vec<f64>,
    /// Palette index; `None` uses the series' position.
    pub color: Option<usize>,
}

/// Overlaid histograms (e.g. hidden-weight distributions) on common bins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Panel title.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description ("count" or "density").
    pub y_label: String,
    /// The distributions.
    pub series: Vec<HistogramSeries>,
    /// Number of bins (0 means 40).
    pub bins: usize,
    /// Bin range; `None` uses the finite min and max of all series.
    pub range: Option<(f64, f64)>,
    /// Normalise each series to unit area.
    pub density: bool,
}

/// One panel of a figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Panel {
    /// A line chart.
    Line(LineChart),
    /// A matrix of values.
    Heatmap(Heatmap),
    /// A grid of example images.
    Images(ImageGrid),
    /// Overlaid histograms.
    Histogram(Histogram),
}

impl From<LineChart> for Panel {
    fn from(c: LineChart) -> Self {
        Panel::Line(c)
    }
}
impl From<Heatmap> for Panel {
    fn from(c: Heatmap) -> Self {
        Panel::Heatmap(c)
    }
}
impl From<ImageGrid> for Panel {
    fn from(c: ImageGrid) -> Self {
        Panel::Images(c)
    }
}
impl From<Histogram> for Panel {
    fn from(c: Histogram) -> Self {
        Panel::Histogram(c)
    }
}

/// Where a figure's numbers come from; rendered as its caption.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Provenance {
    /// The datasets the numbers were computed on (e.g. `fashion-mnist`).
    pub datasets: Vec<String>,
    /// Pipeline name.
    pub pipeline: String,
    /// `(stage name, stage key)`; keys are shortened to 8 characters.
    pub stages: Vec<(String, String)>,
    /// Seeds of the runs shown.
    pub seeds: Vec<u64>,
}

impl Provenance {
    /// One line: `data D · pipeline P · stages a (1a2b3c4d), b (...) · seeds 0, 1, 2`.
    pub fn caption(&self) -> String {
        let mut parts = Vec::new();
        if !self.datasets.is_empty() {
            parts.push(format!("data {}", self.datasets.join(", ")));
        }
        parts.push(format!("pipeline {}", self.pipeline));
        if !self.stages.is_empty() {
            let stages: Vec<String> = self
                .stages
                .iter()
                .map(|(name, key)| format!("{name} ({})", key.chars().take(8).collect::<String>()))
                .collect();
            parts.push(format!("stages {}", stages.join(", ")));
        }
        if !self.seeds.is_empty() {
            let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
            parts.push(format!("seeds {}", seeds.join(", ")));
        }
        parts.join(" · ")
    }
}

/// A grid of panels with an optional title and caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Title above all panels.
    pub title: Option<String>,
    /// Panels, filled row by row.
    pub panels: Vec<Panel>,
    /// Panels per row (0 is treated as 1).
    pub columns: usize,
    /// Size of one panel in pixels (default 800×500).
    pub panel_size: (u32, u32),
    /// Text under the panels (provenance, notes); wrapped to the figure width.
    pub caption: Option<String>,
}

impl Figure {
    /// A figure of `panels`, `columns` per row, 800×500 pixels each.
    pub fn new(panels: Vec<Panel>, columns: usize) -> Self {
        Figure {
            title: None,
            panels,
            columns,
            panel_size: (800, 500),
            caption: None,
        }
    }

    /// A figure of one panel.
    pub fn single(panel: impl Into<Panel>) -> Self {
        Figure::new(vec![panel.into()], 1)
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Sets the caption.
    pub fn caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// Appends the provenance line to the caption.
    pub fn provenance(mut self, p: &Provenance) -> Self {
        let line = p.caption();
        self.caption = Some(match self.caption.take() {
            Some(c) if !c.is_empty() => format!("{c}\n{line}"),
            _ => line,
        });
        self
    }

    fn grid(&self) -> (usize, usize) {
        let cols = self.columns.clamp(1, self.panels.len().max(1));
        (self.panels.len().div_ceil(cols), cols)
    }

    /// The caption wrapped to `width` pixels.
    fn caption_lines(&self, width: u32) -> Vec<String> {
        match &self.caption {
            Some(c) => wrap(c, width.saturating_sub(32) as f64),
            None => Vec::new(),
        }
    }

    /// Width and height of the whole image in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        let w = self.panel_size.0.saturating_mul(cols as u32);
        let mut h = self.panel_size.1.saturating_mul(rows as u32);
        if self.title.is_some() {
            h = h.saturating_add(TITLE_H);
        }
        let lines = self.caption_lines(w).len() as u32;
        if lines > 0 {
            h = h.saturating_add(lines * CAPTION_LINE_H + 16);
        }
        (w, h)
    }

    fn validate(&self) -> Result<()> {
        if self.panels.is_empty() {
            return Err(ReportError::Invalid(
                "a figure needs at least one panel".into(),
            ));
        }
        let (w, h) = self.size();
        if self.panel_size.0 < 200 || self.panel_size.1 < 150 {
            return Err(ReportError::Invalid(format!(
                "panel size {:?} is too small (at least 200x150)",
                self.panel_size
            )));
        }
        if w as u64 * h as u64 > MAX_PIXELS {
            return Err(ReportError::Invalid(format!(
                "a {w}x{h} figure is too large"
            )));
        }
        for p in &self.panels {
            if let Panel::Images(g) = p {
                for (_, row) in &g.rows {
                    row.iter().try_for_each(Image::validate)?;
                }
            }
        }
        Ok(())
    }
}

/// Greedy word wrap of `text` (explicit newlines kept) to `width` pixels of caption text.
fn wrap(text: &str, width: f64) -> Vec<String> {
    let style = font::text(font::size::CAPTION);
    let measure = |s: &str| {
        style
            .font
            .box_size(s)
            .map(|(w, _)| w as f64)
            .unwrap_or(s.len() as f64 * 9.0)
    };
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && measure(&candidate) > width {
                out.push(std::mem::replace(&mut line, word.to_string()));
            } else {
                line = candidate;
            }
        }
        out.push(line);
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// Converts a plotters drawing error.
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> ReportError {
    ReportError::Draw(e.to_string())
}

/// Draws `fig` on any plotters backend: the one code path behind PNG and SVG.
fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure) -> Result<()> {
    root.fill(&WHITE).map_err(draw_err)?;
    let (w, _) = root.dim_in_pixel();
    let mut body = root.clone();
    if let Some(title) = &fig.title {
        let (top, rest) = body.split_vertically(TITLE_H);
        let style = font::text(font::size::TITLE + 2.0).pos(Pos::new(HPos::Center, VPos::Center));
        top.draw_text(title, &style, (w as i32 / 2, TITLE_H as i32 / 2))
            .map_err(draw_err)?;
        body = rest;
    }
    let (rows, cols) = fig.grid();
    let lines = fig.caption_lines(w);
    let (grid, caption) = body.split_vertically(fig.panel_size.1 * rows as u32);
    for (area, panel) in grid.split_evenly((rows, cols)).iter().zip(&fig.panels) {
        match panel {
            Panel::Line(c) => line::draw(area, c)?,
            Panel::Heatmap(h) => heatmap::draw(area, h)?,
            Panel::Images(g) => images::draw(area, g)?,
            Panel::Histogram(h) => histogram::draw(area, h)?,
        }
    }
    let style = font::text(font::size::CAPTION).color(&RGBColor(60, 60, 60));
    for (i, l) in lines.iter().enumerate() {
        let y = 8 + (i as u32 * CAPTION_LINE_H) as i32;
        caption.draw_text(l, &style, (16, y)).map_err(draw_err)?;
    }
    root.present().map_err(draw_err)
}

/// Renders `fig` as PNG bytes.
pub fn render_png(fig: &Figure) -> Result<Vec<u8>> {
    fig.validate()?;
    font::ensure_registered();
    let (w, h) = fig.size();
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root, fig)?;
    }
    png::encode_rgb(w, h, &buf).map_err(|e| ReportError::Draw(e.to_string()))
}

/// Renders `fig` as an SVG document.
pub fn render_svg(fig: &Figure) -> Result<String> {
    fig.validate()?;
    font::ensure_registered();
    let (w, h) = fig.size();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        draw(&root, fig)?;
    }
    Ok(s)
}

/// Writes `dir/stem.png` and `dir/stem.svg` (creating `dir`) and returns their paths.
///
/// Files are written to a temporary name and renamed, so a reader never sees half a file.
pub fn render(fig: &Figure, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    if stem.is_empty() || stem.contains(['/', '\\']) || stem.starts_with('.') {
        return Err(ReportError::Invalid(format!(
            "figure name {stem:?} must be a plain file name without extension"
        )));
    }
    let png = render_png(fig)?;
    let svg = render_svg(fig)?;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.into(),
        source,
    })?;
    let mut out = Vec::new();
    for (ext, bytes) in [("png", png.as_slice()), ("svg", svg.as_bytes())] {
        let path = dir.join(format!("{stem}.{ext}"));
        write_atomic(&path, bytes)?;
        out.push(path);
    }
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
