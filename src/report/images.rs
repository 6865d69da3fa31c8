//! Drawing an [`ImageGrid`]: images at an integer scale, one labelled row each.
//!
//! Pixels are drawn as rectangles (runs of equal colour merged), so PNG and SVG
//! share the code and the SVG needs no embedded bitmap.

use super::figure::{draw_err, Image, ImageGrid};
use super::{font, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const TITLE_H: i32 = 44;
const HEAD_H: i32 = 30;
const GAP: i32 = 8;

/// Draws `g` into `area`.
pub(crate) fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, g: &ImageGrid) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let center = Pos::new(HPos::Center, VPos::Center);
    area.draw_text(
        &g.title,
        &font::text(font::size::TITLE).pos(center),
        (w / 2, TITLE_H / 2 + 4),
    )
    .map_err(draw_err)?;
    let label_style = font::text(font::size::TICK);
    let label_w = g
        .rows
        .iter()
        .map(|(l, _)| {
            area.estimate_text_size(l, &label_style)
                .map(|(w, _)| w as i32)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
        + 2 * GAP;
    let rows = g.rows.len().max(1) as i32;
    let cols = g
        .rows
        .iter()
        .map(|(_, r)| r.len())
        .chain([g.column_labels.len()])
        .max()
        .unwrap_or(0)
        .max(1) as i32;
    let head = if g.column_labels.is_empty() {
        0
    } else {
        HEAD_H
    };
    let top = TITLE_H + head;
    let cell_w = ((w - label_w - GAP) / cols).max(1);
    let cell_h = ((h - top - GAP) / rows).max(1);
    let (iw, ih) = g
        .rows
        .iter()
        .flat_map(|(_, r)| r.iter())
        .fold((1, 1), |(a, b), im| {
            (a.max(im.width as i32), b.max(im.height as i32))
        });
    let s = (((cell_w - GAP) / iw).min((cell_h - GAP) / ih)).max(1);

    for (j, l) in g.column_labels.iter().enumerate() {
        let cx = label_w + j as i32 * cell_w + cell_w / 2;
        area.draw_text(l, &label_style.pos(center), (cx, TITLE_H + HEAD_H / 2))
            .map_err(draw_err)?;
    }
    let right = Pos::new(HPos::Right, VPos::Center);
    for (i, (label, images)) in g.rows.iter().enumerate() {
        let cy = top + i as i32 * cell_h + cell_h / 2;
        area.draw_text(label, &label_style.pos(right), (label_w - GAP, cy))
            .map_err(draw_err)?;
        for (j, im) in images.iter().enumerate() {
            let x0 = label_w + j as i32 * cell_w + (cell_w - im.width as i32 * s) / 2;
            let y0 = cy - im.height as i32 * s / 2;
            draw_image(area, im, (x0, y0), s)?;
        }
    }
    Ok(())
}

/// Draws `im` with its upper left corner at `at`, each pixel `s`×`s`.
fn draw_image<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    im: &Image,
    at: (i32, i32),
    s: i32,
) -> Result<()> {
    for y in 0..im.height {
        let mut x = 0;
        while x < im.width {
            let c = im.pixel(x, y);
            let mut end = x + 1;
            while end < im.width && im.pixel(end, y) == c {
                end += 1;
            }
            let (px, py) = (at.0 + x as i32 * s, at.1 + y as i32 * s);
            let rect = Rectangle::new([(px, py), (at.0 + end as i32 * s, py + s)], c.filled());
            area.draw(&rect).map_err(draw_err)?;
            x = end;
        }
    }
    let frame = [
        (at.0 - 1, at.1 - 1),
        (at.0 + im.width as i32 * s, at.1 + im.height as i32 * s),
    ];
    area.draw(&Rectangle::new(
        frame,
        RGBColor(160, 160, 160).stroke_width(1),
    ))
    .map_err(draw_err)
}
