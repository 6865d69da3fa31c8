//! Drawing a [`Heatmap`]: coloured cells with value labels and a colour bar.

use super::figure::{draw_err, Heatmap};
use super::scale::{self, viridis, Ticked};
use super::{font, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const TITLE_H: u32 = 44;
const BAR_W: u32 = 110;
const X_AREA: u32 = 62;

/// Draws `h` into `area`.
pub(crate) fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, h: &Heatmap) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (top, body) = area.split_vertically(TITLE_H);
    let center = Pos::new(HPos::Center, VPos::Center);
    top.draw_text(
        &h.title,
        &font::text(font::size::TITLE).pos(center),
        (w as i32 / 2, TITLE_H as i32 / 2 + 4),
    )
    .map_err(draw_err)?;
    let (main, bar) = body.split_horizontally(w.saturating_sub(BAR_W));

    let rows = h.values.len().max(1);
    let cols = h.values.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let finite = || h.values.iter().flatten().copied().filter(|v| v.is_finite());
    let (lo, hi) = match h
        .range
        .filter(|(a, b)| a.is_finite() && b.is_finite() && a < b)
    {
        Some(r) => r,
        None => {
            let lo = finite().fold(f64::INFINITY, f64::min);
            let hi = finite().fold(f64::NEG_INFINITY, f64::max);
            match (lo.is_finite(), hi > lo) {
                (true, true) => (lo, hi),
                (true, false) => (lo - 0.5, lo + 0.5),
                _ => (0.0, 1.0),
            }
        }
    };
    let decimals = h
        .decimals
        .unwrap_or(if lo >= -1.0 && hi <= 1.0 { 2 } else { 1 });
    let name =
        |names: &[String], i: usize| names.get(i).cloned().unwrap_or_else(|| (i + 1).to_string());

    // Row i spans y in [-(i+1), -i], so row 0 is on top.
    let xt: Vec<f64> = (0..cols).map(|j| j as f64 + 0.5).collect();
    let yt: Vec<f64> = (0..rows).map(|i| -(i as f64) - 0.5).collect();
    let mut chart = ChartBuilder::on(&main)
        .margin(12)
        .margin_top(4)
        .x_label_area_size(X_AREA)
        .y_label_area_size(84)
        .build_cartesian_2d(
            Ticked::new(0.0, cols as f64, xt),
            Ticked::new(-(rows as f64), 0.0, yt),
        )
        .map_err(draw_err)?;
    let xfmt = |v: &f64| name(&h.col_names, v.floor().max(0.0) as usize);
    let yfmt = |v: &f64| name(&h.row_names, (-v).floor().max(0.0) as usize);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(h.col_label.as_str())
        .y_desc(h.row_label.as_str())
        .axis_desc_style(font::text(font::size::AXIS))
        .label_style(font::text(font::size::TICK))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .draw()
        .map_err(draw_err)?;

    let (pw, ph) = chart.plotting_area().dim_in_pixel();
    let show_text = pw as usize / cols >= 44 && ph as usize / rows >= 22;
    let t = |v: f64| (v - lo) / (hi - lo);
    for (i, row) in h.values.iter().enumerate() {
        for j in 0..cols {
            let v = row.get(j).copied().unwrap_or(f64::NAN);
            let (x0, y0) = (j as f64, -(i as f64));
            let color = if v.is_finite() {
                viridis(t(v))
            } else {
                RGBColor(235, 235, 235)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x0 + 1.0, y0 - 1.0)],
                    color.filled(),
                )))
                .map_err(draw_err)?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x0 + 1.0, y0 - 1.0)],
                    WHITE.stroke_width(1),
                )))
                .map_err(draw_err)?;
            if show_text && v.is_finite() {
                let ink = if scale::is_dark(color) { WHITE } else { BLACK };
                let style = font::text(font::size::TICK).pos(center).color(&ink);
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{v:.decimals$}"),
                        (x0 + 0.5, y0 - 0.5),
                        style,
                    )))
                    .map_err(draw_err)?;
            }
        }
    }

    // Colour bar beside the cells, spanning the same pixel rows, labels on its right.
    let (_, yr) = chart.plotting_area().get_pixel_range();
    let base_y = bar.get_base_pixel().1;
    let (top_px, bottom_px) = (yr.start - base_y, yr.end - base_y);
    let (x0, x1) = (16, 36);
    const STEPS: i32 = 64;
    let span = (bottom_px - top_px).max(1);
    for k in 0..STEPS {
        let ya = bottom_px - span * k / STEPS;
        let yb = bottom_px - span * (k + 1) / STEPS;
        let c = viridis((f64::from(k) + 0.5) / f64::from(STEPS));
        bar.draw(&Rectangle::new([(x0, yb), (x1, ya)], c.filled()))
            .map_err(draw_err)?;
    }
    bar.draw(&Rectangle::new(
        [(x0, top_px), (x1, bottom_px)],
        RGBColor(90, 90, 90).stroke_width(1),
    ))
    .map_err(draw_err)?;
    let left = Pos::new(HPos::Left, VPos::Center);
    for v in scale::nice_ticks(lo, hi, 5) {
        let y = bottom_px - ((v - lo) / (hi - lo) * f64::from(span)).round() as i32;
        bar.draw(&PathElement::new(
            vec![(x1, y), (x1 + 5, y)],
            RGBColor(90, 90, 90).stroke_width(1),
        ))
        .map_err(draw_err)?;
        bar.draw_text(
            &scale::tick_label(v),
            &font::text(font::size::TICK).pos(left),
            (x1 + 9, y),
        )
        .map_err(draw_err)?;
    }
    Ok(())
}
