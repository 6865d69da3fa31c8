//! Drawing a [`LineChart`]: bands, lines, markers, reference dashes and a legend.

use super::figure::{draw_err, LineChart, SeriesStyle};
use super::legend::{self, Entry, Swatch};
use super::scale::{self, AxisMap, Ticked};
use super::{font, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Draws `c` into `area`.
pub(crate) fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &LineChart) -> Result<()> {
    let xm = AxisMap {
        log: c.x_log,
        reversed: c.x_reversed,
    };
    let ym = AxisMap {
        log: false,
        reversed: false,
    };
    let visible = |x: f64, y: f64| xm.fwd(x).is_some() && y.is_finite();
    let pts = || {
        c.series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| visible(p.x, p.y))
    };

    let extent = |it: &mut dyn Iterator<Item = f64>| {
        it.fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((a, b)) => Some((a.min(v), b.max(v))),
        })
    };
    let (xa, xb) = match c
        .x_range
        .filter(|(a, b)| xm.fwd(*a).is_some() && xm.fwd(*b).is_some() && a != b)
    {
        Some((a, b)) => xm.plot_range(a, b, 0.0),
        None => match extent(&mut pts().map(|p| p.x)) {
            Some((a, b)) => xm.plot_range(a, b, 0.03),
            None => (0.0, 1.0),
        },
    };
    let spread = |s: f64| if s.is_finite() { s.abs() } else { 0.0 };
    let (ya, yb) = match c
        .y_range
        .filter(|(a, b)| a.is_finite() && b.is_finite() && a < b)
    {
        Some((a, b)) => (a, b),
        None => match extent(&mut pts().flat_map(|p| [p.y - spread(p.std), p.y + spread(p.std)])) {
            Some((a, b)) => ym.plot_range(a, b, 0.06),
            None => (0.0, 1.0),
        },
    };
    let xt = xm.ticks(xa, xb);
    let yt = ym.ticks(ya, yb);

    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, font::text(font::size::TITLE))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(62)
        .y_label_area_size(84)
        .build_cartesian_2d(Ticked::new(xa, xb, xt), Ticked::new(ya, yb, yt))
        .map_err(draw_err)?;
    let xfmt = |u: &f64| scale::tick_label(xm.inv(*u));
    let yfmt = |v: &f64| scale::tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .axis_desc_style(font::text(font::size::AXIS))
        .label_style(font::text(font::size::TICK))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .bold_line_style(RGBColor(225, 225, 225).stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(RGBColor(90, 90, 90).stroke_width(1))
        .draw()
        .map_err(draw_err)?;

    let clamp = |u: f64, y: f64| (u.clamp(xa, xb), y.clamp(ya, yb));
    let series_pts = |s: &super::figure::Series| -> Vec<(f64, f64, f64)> {
        s.points
            .iter()
            .filter_map(|p| Some((xm.fwd(p.x)?, p.y, spread(p.std))).filter(|_| p.y.is_finite()))
            .collect()
    };
    let mut entries = Vec::new();
    let mut occupied = Vec::new();
    let (ox, oy) = {
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        (xr.start, yr.start)
    };
    let to_px = |chart: &ChartContext<'_, DB, _>, u: f64, y: f64| {
        let (px, py) = chart.backend_coord(&clamp(u, y));
        (px - ox, py - oy)
    };

    // Bands first, so every line sits on top of every band.
    for (i, s) in c.series.iter().enumerate() {
        let p = series_pts(s);
        if p.len() < 2 || p.iter().all(|q| q.2 == 0.0) {
            continue;
        }
        let color = scale::color(s.color.unwrap_or(i));
        let mut poly: Vec<(f64, f64)> = p.iter().map(|(u, y, d)| clamp(*u, y + d)).collect();
        poly.extend(p.iter().rev().map(|(u, y, d)| clamp(*u, y - d)));
        let band: Vec<(i32, i32)> = poly.iter().map(|(u, y)| to_px(&chart, *u, *y)).collect();
        legend::sample_path(&band, &mut occupied);
        chart
            .draw_series(std::iter::once(Polygon::new(
                poly,
                color.mix(0.18).filled(),
            )))
            .map_err(draw_err)?;
    }
    for (i, s) in c.series.iter().enumerate() {
        let p = series_pts(s);
        let color = scale::color(s.color.unwrap_or(i));
        let xy: Vec<(f64, f64)> = p.iter().map(|(u, y, _)| clamp(*u, *y)).collect();
        let px: Vec<(i32, i32)> = xy.iter().map(|(u, y)| to_px(&chart, *u, *y)).collect();
        legend::sample_path(&px, &mut occupied);
        match s.style {
            SeriesStyle::Line | SeriesStyle::LineMarkers => {
                chart
                    .draw_series(LineSeries::new(xy.clone(), color.stroke_width(3)))
                    .map_err(draw_err)?;
            }
            SeriesStyle::Dashed => {
                chart
                    .draw_series(DashedLineSeries::new(
                        xy.clone(),
                        10,
                        7,
                        color.stroke_width(2),
                    ))
                    .map_err(draw_err)?;
            }
            SeriesStyle::Markers => {}
        }
        if matches!(s.style, SeriesStyle::LineMarkers | SeriesStyle::Markers) {
            chart
                .draw_series(xy.iter().map(|q| Circle::new(*q, 5, color.filled())))
                .map_err(draw_err)?;
        }
        if !s.name.is_empty() {
            let swatch = match s.style {
                SeriesStyle::Markers => Swatch::Marker,
                st => Swatch::Line {
                    dashed: st == SeriesStyle::Dashed,
                    marker: st == SeriesStyle::LineMarkers,
                    band: p.len() >= 2 && p.iter().any(|q| q.2 > 0.0),
                },
            };
            entries.push(Entry {
                name: s.name.clone(),
                color,
                swatch,
            });
        }
    }
    let plot = chart.plotting_area().strip_coord_spec();
    if pts().next().is_none() {
        let (w, h) = plot.dim_in_pixel();
        let style = font::text(font::size::AXIS)
            .pos(Pos::new(HPos::Center, VPos::Center))
            .color(&RGBColor(120, 120, 120));
        plot.draw_text("no data", &style, (w as i32 / 2, h as i32 / 2))
            .map_err(draw_err)?;
    }
    legend::draw(&plot, &entries, &occupied)
}
