//! The report page: a self-contained `index.html` and a `README.md` from one
//! structured [`Report`].
//!
//! Figures are referenced by relative path (the PNG shown, linking to its SVG), not
//! embedded, so the page stays small; the report folder is self-contained and opens
//! from `file://` with no network (all CSS is inline, nothing is fetched).
//! [`write_report`] refuses to write a page that references a missing file.

use super::figure::write_atomic;
use super::table::Table;
use super::verdict::Comparison;
use super::{ReportError, Result};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// A figure on the page: an image beside the page, optionally linking to its SVG.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRef {
    /// The raster image, relative to the report folder.
    pub image: PathBuf,
    /// The vector version, relative to the report folder.
    pub vector: Option<PathBuf>,
    /// Caption under the figure.
    pub caption: String,
}

impl FigureRef {
    /// `stem.png` linking to `stem.svg`, as written by [`super::render`];
    /// `stem` is relative to the report folder (e.g. `figures/accuracy`).
    pub fn from_stem(stem: &str, caption: impl Into<String>) -> Self {
        FigureRef {
            image: PathBuf::from(format!("{stem}.png")),
            vector: Some(PathBuf::from(format!("{stem}.svg"))),
            caption: caption.into(),
        }
    }
}

/// One piece of a section, in reading order.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Plain text (escaped in HTML; in Markdown verbatim but for `<`, so Markdown
    /// emphasis works there while no raw HTML gets through).
    Paragraph(String),
    /// A figure.
    Figure(FigureRef),
    /// A table.
    Table(Table),
    /// Our values against the paper's, with verdicts.
    Comparisons(Vec<Comparison>),
}

/// A section of the report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// Heading.
    pub heading: String,
    /// Content in reading order.
    pub blocks: Vec<Block>,
}

impl Section {
    /// An empty section.
    pub fn new(heading: impl Into<String>) -> Self {
        Section {
            heading: heading.into(),
            blocks: Vec::new(),
        }
    }

    /// Appends a paragraph.
    pub fn paragraph(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    /// Appends a figure.
    pub fn figure(mut self, figure: FigureRef) -> Self {
        self.blocks.push(Block::Figure(figure));
        self
    }

    /// Appends a table.
    pub fn table(mut self, table: Table) -> Self {
        self.blocks.push(Block::Table(table));
        self
    }

    /// Appends a comparison table with verdicts.
    pub fn comparisons(mut self, comparisons: Vec<Comparison>) -> Self {
        self.blocks.push(Block::Comparisons(comparisons));
        self
    }
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Page title.
    pub title: String,
    /// Paragraphs before the first section.
    pub intro: Vec<String>,
    /// Sections.
    pub sections: Vec<Section>,
}

impl Report {
    /// Every file the page references, relative to the report folder.
    pub fn files(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        for b in self.sections.iter().flat_map(|s| &s.blocks) {
            if let Block::Figure(f) = b {
                out.push(f.image.as_path());
                out.extend(f.vector.as_deref());
            }
        }
        out
    }

    /// The self-contained HTML page.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
            esc(&self.title),
            esc(&self.title)
        );
        for p in &self.intro {
            let _ = writeln!(h, "<p>{}</p>", esc(p));
        }
        for s in &self.sections {
            let _ = writeln!(h, "<section>\n<h2>{}</h2>", esc(&s.heading));
            for b in &s.blocks {
                match b {
                    Block::Paragraph(p) => {
                        let _ = writeln!(h, "<p>{}</p>", esc(p));
                    }
                    Block::Figure(f) => {
                        let img = format!(
                            "<img src=\"{}\" alt=\"{}\">",
                            esc(&url(&f.image)),
                            esc(&f.caption)
                        );
                        let body = match &f.vector {
                            Some(v) => format!("<a href=\"{}\">{img}</a>", esc(&url(v))),
                            None => img,
                        };
                        let _ = writeln!(
                            h,
                            "<figure>{body}<figcaption>{}</figcaption></figure>",
                            esc(&f.caption)
                        );
                    }
                    Block::Table(t) => html_table(&mut h, t),
                    Block::Comparisons(c) => html_table(&mut h, &comparison_table(c, true)),
                }
            }
            h.push_str("</section>\n");
        }
        h.push_str("</main>\n</body>\n</html>\n");
        h
    }

    /// The Markdown page (GitHub-flavoured tables).
    pub fn to_markdown(&self) -> String {
        let mut m = format!("# {}\n\n", one_line(&self.title));
        for p in &self.intro {
            let _ = write!(m, "{}\n\n", md_text(p));
        }
        for s in &self.sections {
            let _ = write!(m, "## {}\n\n", one_line(&s.heading));
            for b in &s.blocks {
                match b {
                    Block::Paragraph(p) => {
                        let _ = write!(m, "{}\n\n", md_text(p));
                    }
                    Block::Figure(f) => {
                        let cap = one_line(&f.caption).replace(['[', ']'], "");
                        let _ = writeln!(m, "![{cap}]({})\n", url(&f.image));
                        let _ = match &f.vector {
                            Some(v) => write!(m, "*{cap}* ([SVG]({}))\n\n", url(v)),
                            None => write!(m, "*{cap}*\n\n"),
                        };
                    }
                    Block::Table(t) => md_table(&mut m, t),
                    Block::Comparisons(c) => md_table(&mut m, &comparison_table(c, false)),
                }
            }
        }
        m
    }
}

/// The HTML page's file name in a report folder (what `repro report` prints).
pub const INDEX_HTML: &str = "index.html";
/// The Markdown page's file name in a report folder.
pub const README_MD: &str = "README.md";

/// Writes `dir/index.html` and `dir/README.md` for `report` and returns their paths.
///
/// Every referenced file must be a relative path inside `dir` that exists.
pub fn write_report(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    for f in report.files() {
        let inside = f.components().all(|c| matches!(c, Component::Normal(_)));
        if !inside || f.as_os_str().is_empty() {
            return Err(ReportError::Invalid(format!(
                "figure path {} must be relative to the report folder, without '..'",
                f.display()
            )));
        }
        if !dir.join(f).is_file() {
            return Err(ReportError::Invalid(format!(
                "the report references {}, which does not exist in {}",
                f.display(),
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.into(),
        source,
    })?;
    let html = dir.join(INDEX_HTML);
    let md = dir.join(README_MD);
    write_atomic(&html, report.to_html().as_bytes())?;
    write_atomic(&md, report.to_markdown().as_bytes())?;
    Ok(vec![html, md])
}

/// Comparisons as a table; in HTML the verdict cell carries a badge marker that
/// [`html_table`] turns into a coloured span.
fn comparison_table(cs: &[Comparison], html: bool) -> Table {
    let columns = ["metric", "ours", "paper", "tolerance", "verdict", "why"];
    let rows = cs
        .iter()
        .map(|c| {
            let verdict = if html {
                format!("{BADGE}{}:{}", c.verdict.css_class(), c.verdict.word())
            } else {
                match c.verdict {
                    super::Verdict::NotComparable(_) => format!("*{}*", c.verdict.word()),
                    _ => format!("**{}**", c.verdict.word()),
                }
            };
            vec![
                c.metric.clone(),
                c.ours.map(|o| o.display()).unwrap_or_else(|| "—".into()),
                c.paper
                    .map(super::format_number)
                    .unwrap_or_else(|| "—".into()),
                format!("± {}", super::format_number(c.tolerance)),
                verdict,
                c.explanation.clone(),
            ]
        })
        .collect();
    Table::new(columns.iter().map(|s| s.to_string()).collect(), rows)
}

/// Prefix of a cell rendered as a verdict badge (`BADGE class:word`); a control
/// character, so ordinary cell text never starts with it.
const BADGE: &str = "\u{1}badge:";

fn html_table(h: &mut String, t: &Table) {
    h.push_str("<table>\n");
    if let Some(c) = &t.caption {
        let _ = writeln!(h, "<caption>{}</caption>", esc(c));
    }
    let width = t.width();
    let align = |j: usize| if t.numeric(j) { " class=\"num\"" } else { "" };
    h.push_str("<thead><tr>");
    for j in 0..width {
        let _ = write!(
            h,
            "<th{}>{}</th>",
            align(j),
            esc(t.columns.get(j).map_or("", String::as_str))
        );
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        h.push_str("<tr>");
        for j in 0..width {
            let cell = r.get(j).map_or("", String::as_str);
            let body = match cell.strip_prefix(BADGE).and_then(|b| b.split_once(':')) {
                Some((class, word)) => {
                    format!("<span class=\"badge {}\">{}</span>", esc(class), esc(word))
                }
                None => esc(cell),
            };
            let _ = write!(h, "<td{}>{body}</td>", align(j));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
}

fn md_table(m: &mut String, t: &Table) {
    let width = t.width();
    if width == 0 {
        return;
    }
    if let Some(c) = &t.caption {
        let _ = write!(m, "**{}**\n\n", one_line(c));
    }
    let row = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<String> = cells.map(md_cell).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let get = |r: &[String], j: usize| r.get(j).map_or("", String::as_str).to_string();
    let header: Vec<String> = (0..width).map(|j| get(&t.columns, j)).collect();
    m.push_str(&row(&mut header.iter().map(String::as_str)));
    let rule: Vec<&str> = (0..width)
        .map(|j| if t.numeric(j) { "---:" } else { "---" })
        .collect();
    let _ = writeln!(m, "| {} |", rule.join(" | "));
    for r in &t.rows {
        let cells: Vec<String> = (0..width).map(|j| get(r, j)).collect();
        m.push_str(&row(&mut cells.iter().map(String::as_str)));
    }
    m.push('\n');
}

/// A Markdown table cell: pipes escaped, no line breaks, no raw HTML tags.
fn md_cell(s: &str) -> String {
    one_line(s).replace('|', "\\|").replace('<', "&lt;")
}

/// Markdown paragraph text: verbatim but for `<`, so no raw HTML gets through.
fn md_text(s: &str) -> String {
    s.replace('<', "&lt;")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// HTML-escapes text for element content and quoted attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A relative path as a URL path: `/` separators, reserved characters percent-encoded.
fn url(p: &Path) -> String {
    let mut o = String::new();
    for (i, c) in p.components().enumerate() {
        if i > 0 {
            o.push('/');
        }
        for b in c.as_os_str().to_string_lossy().bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                o.push(b as char);
            } else {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}

const CSS: &str = "\
body { margin: 0; background: #fafafa; color: #222; font: 16px/1.55 -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 1.9em; margin: 0.4em 0; }
h2 { font-size: 1.4em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
figure { margin: 1.2em 0; text-align: center; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.92em; color: #555; margin-top: 0.4em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.93em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fbfbfb; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; white-space: nowrap; }
.badge.ok { background: #1a7f37; }
.badge.bad { background: #cf222e; }
.badge.na { background: #6e7781; }
";
