//! Axis scales (linear, log10, reversed), tick placement, tick labels and colours.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::style::RGBColor;
use std::ops::Range;

/// A linear plot-coordinate axis over `[lo, hi]` with explicit tick positions.
///
/// plotters' own `f64` ranges pick their ticks themselves; this one draws exactly
/// the ticks we computed (e.g. decades of a log axis) and no light grid lines.
#[derive(Debug, Clone)]
pub(crate) struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ticked {
    /// An axis over `[lo, hi]` with `ticks` (those outside are dropped).
    pub fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        let ticks = ticks.into_iter().filter(|t| *t >= lo && *t <= hi).collect();
        Ticked { lo, hi, ticks }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if span.abs() < f64::MIN_POSITIVE || !v.is_finite() {
            return (limit.0 + limit.1) / 2;
        }
        let t = (v - self.lo) / span;
        limit.0 + (f64::from(limit.1 - limit.0) * t + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Maps data values onto the linear "plot" coordinate plotters draws in.
///
/// A log axis plots `log10(v)`; a reversed axis negates the plot coordinate, so
/// larger values sit further left (or lower).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AxisMap {
    pub log: bool,
    pub reversed: bool,
}

impl AxisMap {
    /// The plot coordinate of `v`, or `None` when it cannot be drawn (non-finite, or
    /// not positive on a log axis).
    pub fn fwd(self, v: f64) -> Option<f64> {
        if !v.is_finite() || (self.log && v <= 0.0) {
            return None;
        }
        let u = if self.log { v.log10() } else { v };
        Some(if self.reversed { -u } else { u })
    }

    /// The data value at plot coordinate `u`.
    pub fn inv(self, u: f64) -> f64 {
        let u = if self.reversed { -u } else { u };
        if self.log {
            10f64.powf(u)
        } else {
            u
        }
    }

    /// The plot-coordinate range for data in `[lo, hi]`, padded by `pad` of its span
    /// on each side, in increasing order.
    pub fn plot_range(self, lo: f64, hi: f64, pad: f64) -> (f64, f64) {
        let (a, b) = match (self.fwd(lo), self.fwd(hi)) {
            (Some(a), Some(b)) => (a.min(b), a.max(b)),
            _ => (0.0, 1.0),
        };
        let span = b - a;
        if span <= f64::EPSILON * a.abs().max(1.0) {
            let half = if self.log {
                0.5
            } else {
                a.abs().max(1.0) * 0.05
            };
            (a - half, b + half)
        } else {
            (a - pad * span, b + pad * span)
        }
    }

    /// Tick positions (plot coordinates) inside the plot range `[a, b]`.
    pub fn ticks(self, a: f64, b: f64) -> Vec<f64> {
        let (x0, x1) = {
            let (p, q) = (self.inv(a), self.inv(b));
            (p.min(q), p.max(q))
        };
        let values = if self.log {
            let t = log_ticks(x0, x1);
            if t.len() >= 2 {
                t
            } else {
                nice_ticks(x0, x1, 6)
            }
        } else {
            nice_ticks(x0, x1, 6)
        };
        let mut out: Vec<f64> = values.into_iter().filter_map(|v| self.fwd(v)).collect();
        out.sort_by(f64::total_cmp);
        out
    }
}

/// About `target` "nice" ticks (1, 2, 2.5 or 5 times a power of ten) in `[lo, hi]`.
pub(crate) fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return if lo.is_finite() { vec![lo] } else { Vec::new() };
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let exp = raw.log10().floor() as i32;
    let mag = 10f64.powi(exp);
    let m = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|m| m * mag >= raw)
        .unwrap_or(10.0);
    let step = m * mag;
    // k·m·10^exp, dividing by an exact power of ten so 3 × 0.2 is 0.6, not 0.6000000000000001.
    let at = |k: i64| {
        let km = k as f64 * m;
        if exp >= 0 {
            km * 10f64.powi(exp)
        } else {
            km / 10f64.powi(-exp)
        }
    };
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(at).collect()
}

/// Decade ticks in `[lo, hi]` (both positive), with 2 and 5 in between when the
/// range spans few decades.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi.is_finite() && hi >= lo) {
        return Vec::new();
    }
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mults: &[f64] = if d1 - d0 <= 4 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    for d in d0..=d1 {
        for m in mults {
            let v = m * 10f64.powi(d);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
    }
    out
}

/// A short tick label: no trailing zeros, no floating noise.
pub(crate) fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        return format!("{v:.0e}");
    }
    let s = format!("{:.6}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A colour-blind-safe qualitative palette (Okabe–Ito, then Tableau extras).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(140, 86, 75),   // brown
    RGBColor(127, 127, 127), // grey
    RGBColor(188, 189, 34),  // olive
];

/// The `i`-th palette colour (cycling).
pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Viridis anchor colours, evenly spaced on [0, 1].
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// The viridis colour at `t` in [0, 1] (clamped), by linear interpolation.
pub(crate) fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Whether text on `c` should be white (dark background) rather than black.
pub(crate) fn is_dark(c: RGBColor) -> bool {
    0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2) < 140.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_round() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(0.12, 0.31, 4), vec![0.15, 0.2, 0.25, 0.3]);
        assert!(nice_ticks(1.0, 1.0, 5).len() == 1);
    }

    #[test]
    fn log_ticks_and_reversed_axis() {
        assert_eq!(
            log_ticks(1.0, 100.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        let ax = AxisMap {
            log: true,
            reversed: true,
        };
        let u = ax.fwd(100.0).unwrap();
        assert!(u < ax.fwd(1.0).unwrap());
        assert!((ax.inv(u) - 100.0).abs() < 1e-9);
        assert_eq!(ax.fwd(0.0), None);
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(100.0), "100");
    }
}
