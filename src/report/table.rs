//! Tables for reports, and their construction from polars `DataFrame`s.

use polars::prelude::{AnyValue, DataFrame};

/// A table of text cells with a header row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Optional caption shown above the table.
    pub caption: Option<String>,
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows of cells; short rows are padded with empty cells when rendered.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headings and rows.
    pub fn new(columns: Vec<String>, rows: Vec<Vec<String>>) -> Self {
        Table {
            caption: None,
            columns,
            rows,
        }
    }

    /// Sets the caption.
    pub fn caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// The cells of `df`, floats through [`format_number`], nulls empty.
    pub fn from_dataframe(df: &DataFrame) -> Self {
        let columns: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let rows = (0..df.height())
            .map(|i| {
                df.columns()
                    .iter()
                    .map(|c| c.get(i).map(|v| format_value(&v)).unwrap_or_default())
                    .collect()
            })
            .collect();
        Table::new(columns, rows)
    }

    /// Number of columns rendered: the widest of the header and the rows.
    pub(crate) fn width(&self) -> usize {
        self.rows
            .iter()
            .map(Vec::len)
            .chain([self.columns.len()])
            .max()
            .unwrap_or(0)
    }

    /// Whether every non-empty cell of column `j` is a number (to right-align it).
    pub(crate) fn numeric(&self, j: usize) -> bool {
        let mut cells = self
            .rows
            .iter()
            .filter_map(|r| r.get(j))
            .filter(|c| !c.is_empty())
            .peekable();
        cells.peek().is_some()
            && cells.all(|c| c.trim_end_matches('%').parse::<f64>().is_ok() || c.contains(" ± "))
    }
}

fn format_value(v: &AnyValue<'_>) -> String {
    if v.is_null() {
        String::new()
    } else if let Some(s) = v.get_str() {
        s.to_string()
    } else if v.is_float() {
        v.extract::<f64>().map(format_number).unwrap_or_default()
    } else {
        v.to_string()
    }
}

/// A number with about four significant digits and no trailing zeros:
/// `0.98123 → "0.9812"`, `97.8125 → "97.81"`, `12345.6 → "12346"`, `3e-7 → "3.000e-7"`.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e7).contains(&a) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn numbers_are_short() {
        assert_eq!(format_number(0.98123), "0.9812");
        assert_eq!(format_number(97.8125), "97.81");
        assert_eq!(format_number(12345.6), "12346");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(3e-7), "3.000e-7");
        assert_eq!(format_number(f64::NAN), "NaN");
    }

    #[test]
    fn dataframe_to_table() {
        let df = df!(
            "model" => ["lenet", "mlp"],
            "acc" => [0.912345, 0.5],
            "epochs" => [10i64, 3],
        )
        .unwrap();
        let t = Table::from_dataframe(&df);
        assert_eq!(t.columns, vec!["model", "acc", "epochs"]);
        assert_eq!(t.rows[0], vec!["lenet", "0.9123", "10"]);
        assert_eq!(t.rows[1], vec!["mlp", "0.5", "3"]);
        assert!(t.numeric(1) && !t.numeric(0));
    }
}
