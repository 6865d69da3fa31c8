//! The one font every figure uses: DejaVu Sans, embedded and registered once.
//!
//! plotters' `ab_glyph` backend has no system font lookup, so the font file ships in
//! `assets/` (Bitstream Vera license, see `assets/DejaVu-LICENSE.txt`).

use plotters::style::{FontStyle, IntoFont, TextStyle};
use std::sync::Once;

/// The family name figures ask for; SVG output names it too, so viewers fall back
/// to their own sans-serif font.
pub(crate) const FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Registers the embedded font with plotters (idempotent, thread-safe).
pub(crate) fn ensure_registered() {
    REGISTER.call_once(|| {
        // The bytes are a valid TrueType file compiled into the binary; a failure here
        // would only make text invisible, which the tests catch.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS);
    });
}

/// Font sizes (plotters units; SVG text is `size / 1.24` px) tuned for 800×500 panels.
pub(crate) mod size {
    /// Figure and panel titles.
    pub const TITLE: f64 = 24.0;
    /// Axis descriptions.
    pub const AXIS: f64 = 20.0;
    /// Tick labels, legend entries, cell values.
    pub const TICK: f64 = 18.0;
    /// Captions (provenance) under a figure.
    pub const CAPTION: f64 = 18.0;
}

/// A text style of the embedded font.
pub(crate) fn text(size: f64) -> TextStyle<'static> {
    ensure_registered();
    (FAMILY, size).into_font().into()
}
