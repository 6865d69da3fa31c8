//! Legends drawn inside the plot area, in the corner that covers the least data.

use super::figure::draw_err;
use super::{font, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// What the legend shows beside an entry's name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Swatch {
    /// A line sample, possibly dashed, with a marker, over a band.
    Line {
        dashed: bool,
        marker: bool,
        band: bool,
    },
    /// A marker alone.
    Marker,
    /// A filled box (histograms).
    Box,
}

/// One legend entry.
pub(crate) struct Entry {
    pub name: String,
    pub color: RGBColor,
    pub swatch: Swatch,
}

const ROW_H: i32 = 26;
const SWATCH_W: i32 = 36;
const PAD: i32 = 8;
const INSET: i32 = 10;

/// Draws `entries` on the plotting `area` (pixel coordinates relative to it), in the
/// corner whose box contains the fewest of the `occupied` pixels.
pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    occupied: &[(i32, i32)],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let style = font::text(font::size::TICK);
    let text_w = entries
        .iter()
        .map(|e| {
            area.estimate_text_size(&e.name, &style)
                .map(|(w, _)| w as i32)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let (aw, ah) = area.dim_in_pixel();
    let (aw, ah) = (aw as i32, ah as i32);
    let bw = PAD * 3 + SWATCH_W + text_w;
    let bh = PAD * 2 + ROW_H * entries.len() as i32;
    // Upper right, upper left, lower right, lower left: the first emptiest wins.
    let corners = [
        (aw - INSET - bw, INSET),
        (INSET, INSET),
        (aw - INSET - bw, ah - INSET - bh),
        (INSET, ah - INSET - bh),
    ];
    let cost = |&(x, y): &(i32, i32)| {
        occupied
            .iter()
            .filter(|(px, py)| {
                *px >= x - 4 && *px <= x + bw + 4 && *py >= y - 4 && *py <= y + bh + 4
            })
            .count()
    };
    let (x0, y0) = corners
        .iter()
        .enumerate()
        .min_by_key(|(i, c)| (cost(c), *i))
        .map(|(_, c)| *c)
        .unwrap_or(corners[0]);

    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + bw, y0 + bh)],
        WHITE.mix(0.85).filled(),
    ))
    .map_err(draw_err)?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + bw, y0 + bh)],
        RGBColor(170, 170, 170).stroke_width(1),
    ))
    .map_err(draw_err)?;
    let text_style = style.pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().enumerate() {
        let cy = y0 + PAD + ROW_H * i as i32 + ROW_H / 2;
        let (sx0, sx1) = (x0 + PAD, x0 + PAD + SWATCH_W);
        match e.swatch {
            Swatch::Line {
                dashed,
                marker,
                band,
            } => {
                if band {
                    area.draw(&Rectangle::new(
                        [(sx0, cy - 8), (sx1, cy + 8)],
                        e.color.mix(0.2).filled(),
                    ))
                    .map_err(draw_err)?;
                }
                let stroke = e.color.stroke_width(if dashed { 2 } else { 3 });
                if dashed {
                    for k in 0..3 {
                        let a = sx0 + k * 13;
                        area.draw(&PathElement::new(
                            vec![(a, cy), ((a + 8).min(sx1), cy)],
                            stroke,
                        ))
                        .map_err(draw_err)?;
                    }
                } else {
                    area.draw(&PathElement::new(vec![(sx0, cy), (sx1, cy)], stroke))
                        .map_err(draw_err)?;
                }
                if marker {
                    area.draw(&Circle::new(((sx0 + sx1) / 2, cy), 5, e.color.filled()))
                        .map_err(draw_err)?;
                }
            }
            Swatch::Marker => {
                area.draw(&Circle::new(((sx0 + sx1) / 2, cy), 5, e.color.filled()))
                    .map_err(draw_err)?;
            }
            Swatch::Box => {
                area.draw(&Rectangle::new(
                    [(sx0 + 6, cy - 8), (sx1 - 6, cy + 8)],
                    e.color.mix(0.35).filled(),
                ))
                .map_err(draw_err)?;
                area.draw(&Rectangle::new(
                    [(sx0 + 6, cy - 8), (sx1 - 6, cy + 8)],
                    e.color.stroke_width(2),
                ))
                .map_err(draw_err)?;
            }
        }
        area.draw_text(&e.name, &text_style.color(&BLACK), (sx1 + PAD, cy))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Pixels along the polyline `pts`, every few pixels, for legend placement.
pub(crate) fn sample_path(pts: &[(i32, i32)], out: &mut Vec<(i32, i32)>) {
    if let [only] = pts {
        out.push(*only);
    }
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) / 4).max(1);
        for k in 0..=len {
            let t = k as f64 / len as f64;
            out.push((
                a.0 + ((b.0 - a.0) as f64 * t).round() as i32,
                a.1 + ((b.1 - a.1) as f64 * t).round() as i32,
            ));
        }
    }
}
