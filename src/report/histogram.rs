//! Drawing a [`Histogram`]: translucent bars and step outlines on common bins.

use super::figure::{draw_err, Histogram};
use super::legend::{self, Entry, Swatch};
use super::scale::{self, AxisMap, Ticked};
use super::{font, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Draws `h` into `area`.
pub(crate) fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, h: &Histogram) -> Result<()> {
    let bins = if h.bins == 0 { 40 } else { h.bins.min(10_000) };
    let finite = || {
        h.series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
    };
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
    let width = (hi - lo) / bins as f64;
    let heights: Vec<Vec<f64>> = h
        .series
        .iter()
        .map(|s| {
            let mut counts = vec![0.0; bins];
            let mut n = 0usize;
            for v in s
                .values
                .iter()
                .copied()
                .filter(|v| v.is_finite() && *v >= lo && *v <= hi)
            {
                let k = (((v - lo) / width) as usize).min(bins - 1);
                counts[k] += 1.0;
                n += 1;
            }
            if h.density && n > 0 {
                counts.iter_mut().for_each(|c| *c /= n as f64 * width);
            }
            counts
        })
        .collect();
    let top = heights.iter().flatten().copied().fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.08 } else { 1.0 };
    let xm = AxisMap {
        log: false,
        reversed: false,
    };
    let (xa, xb) = xm.plot_range(lo, hi, 0.02);

    let mut chart = ChartBuilder::on(area)
        .caption(&h.title, font::text(font::size::TITLE))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(62)
        .y_label_area_size(84)
        .build_cartesian_2d(
            Ticked::new(xa, xb, xm.ticks(xa, xb)),
            Ticked::new(0.0, top, scale::nice_ticks(0.0, top, 5)),
        )
        .map_err(draw_err)?;
    let fmt = |v: &f64| scale::tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(h.x_label.as_str())
        .y_desc(h.y_label.as_str())
        .axis_desc_style(font::text(font::size::AXIS))
        .label_style(font::text(font::size::TICK))
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .bold_line_style(RGBColor(225, 225, 225).stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(90, 90, 90).stroke_width(1))
        .draw()
        .map_err(draw_err)?;

    let (ox, oy) = {
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        (xr.start, yr.start)
    };
    let mut occupied = Vec::new();
    let mut entries = Vec::new();
    for (i, (s, counts)) in h.series.iter().zip(&heights).enumerate() {
        let color = scale::color(s.color.unwrap_or(i));
        let edge = |k: usize| lo + k as f64 * width;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0.0)
                    .map(|(k, c)| {
                        Rectangle::new(
                            [(edge(k), 0.0), (edge(k + 1), *c)],
                            color.mix(0.25).filled(),
                        )
                    }),
            )
            .map_err(draw_err)?;
        let mut step = vec![(lo, 0.0)];
        for (k, c) in counts.iter().enumerate() {
            step.push((edge(k), *c));
            step.push((edge(k + 1), *c));
        }
        step.push((hi, 0.0));
        let px: Vec<(i32, i32)> = step
            .iter()
            .map(|q| {
                let (x, y) = chart.backend_coord(q);
                (x - ox, y - oy)
            })
            .collect();
        legend::sample_path(&px, &mut occupied);
        // Everything under the outline counts as data too.
        for &(x, y) in px.iter().step_by(2) {
            let base = chart.backend_coord(&(lo, 0.0)).1 - oy;
            (y..base).step_by(6).for_each(|yy| occupied.push((x, yy)));
        }
        chart
            .draw_series(LineSeries::new(step, color.stroke_width(2)))
            .map_err(draw_err)?;
        if !s.name.is_empty() {
            entries.push(Entry {
                name: s.name.clone(),
                color,
                swatch: Swatch::Box,
            });
        }
    }
    legend::draw(
        &chart.plotting_area().strip_coord_spec(),
        &entries,
        &occupied,
    )
}
