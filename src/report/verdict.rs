//! Our value against the paper's: reproduced or not, within a stated tolerance.
//!
//! The rule is deliberately simple and stated in every explanation: a result is
//! reproduced when `|our mean − paper| ≤ tolerance`, the tolerance being absolute, in
//! the metric's units, and chosen per comparison (the std and run count are shown
//! beside it so a reader can judge the noise).

use super::table::format_number;

/// Our measurement: mean and standard deviation over `n` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Mean over runs.
    pub mean: f64,
    /// Standard deviation over runs (0 for one run).
    pub std: f64,
    /// Number of runs.
    pub n: usize,
}

impl Estimate {
    /// Mean and sample standard deviation of `values` (non-finite ones skipped).
    pub fn from_values(values: &[f64]) -> Self {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        let mean = if n == 0 {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / n as f64
        };
        let std = if n < 2 {
            0.0
        } else {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Estimate { mean, std, n }
    }

    /// `mean ± std (n=N)`.
    pub fn display(&self) -> String {
        format!(
            "{} ± {} (n={})",
            format_number(self.mean),
            format_number(self.std),
            self.n
        )
    }
}

/// The outcome of a comparison with the paper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Our mean is within the tolerance of the paper's value.
    Reproduced,
    /// Our mean is outside the tolerance.
    NotReproduced,
    /// No comparison is possible; the reason says why.
    NotComparable(String),
}

impl Verdict {
    /// The word shown in reports.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::NotComparable(_) => "not comparable",
        }
    }

    /// The CSS class of its HTML badge.
    pub(crate) fn css_class(&self) -> &'static str {
        match self {
            Verdict::Reproduced => "ok",
            Verdict::NotReproduced => "bad",
            Verdict::NotComparable(_) => "na",
        }
    }
}

/// Judges `ours` against the paper's `paper` value with an absolute `tolerance`,
/// returning the verdict and a one-line explanation.
pub fn judge(ours: &Estimate, paper: f64, tolerance: f64) -> (Verdict, String) {
    let na = |why: &str| (Verdict::NotComparable(why.to_string()), why.to_string());
    if ours.n == 0 || !ours.mean.is_finite() {
        return na("no finite result of ours");
    }
    if !paper.is_finite() {
        return na("the paper's value is not a number");
    }
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return na("the tolerance is not a non-negative number");
    }
    let diff = ours.mean - paper;
    let (verdict, rel) = if diff.abs() <= tolerance {
        (Verdict::Reproduced, "≤")
    } else {
        (Verdict::NotReproduced, ">")
    };
    let line = format!(
        "ours {} vs paper {}: |Δ| = {} {rel} tolerance {}",
        ours.display(),
        format_number(paper),
        format_number(diff.abs()),
        format_number(tolerance)
    );
    (verdict, line)
}

/// One metric compared with the paper, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What is compared, with units (e.g. "test accuracy at 3.6 % weights, %").
    pub metric: String,
    /// Our value, if we have one.
    pub ours: Option<Estimate>,
    /// The paper's value, if it gives one.
    pub paper: Option<f64>,
    /// Absolute tolerance in the metric's units.
    pub tolerance: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// One line saying why.
    pub explanation: String,
}

impl Comparison {
    /// Compares `ours` with `paper` within `tolerance`; missing values are
    /// [`Verdict::NotComparable`].
    pub fn new(
        metric: impl Into<String>,
        ours: Option<Estimate>,
        paper: Option<f64>,
        tolerance: f64,
    ) -> Self {
        let (verdict, explanation) = match (ours, paper) {
            (Some(o), Some(p)) => judge(&o, p, tolerance),
            (None, _) => {
                let why = "we have no result for it".to_string();
                (Verdict::NotComparable(why.clone()), why)
            }
            (_, None) => {
                let why = "the paper reports no value".to_string();
                (Verdict::NotComparable(why.clone()), why)
            }
        };
        Comparison {
            metric: metric.into(),
            ours,
            paper,
            tolerance,
            verdict,
            explanation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let ours = Estimate::from_values(&[97.0, 98.0, 99.0]);
        assert_eq!(ours.n, 3);
        assert!((ours.std - 1.0).abs() < 1e-12);
        let (v, why) = judge(&ours, 98.4, 0.5);
        assert_eq!(v, Verdict::Reproduced);
        assert!(why.contains("≤") && why.contains("98.4"), "{why}");
        assert_eq!(judge(&ours, 99.0, 0.5).0, Verdict::NotReproduced);
        assert!(matches!(
            judge(&ours, f64::NAN, 0.5).0,
            Verdict::NotComparable(_)
        ));
        assert!(matches!(
            judge(&Estimate::from_values(&[]), 1.0, 0.5).0,
            Verdict::NotComparable(_)
        ));
        let c = Comparison::new("acc", None, Some(1.0), 0.1);
        assert_eq!(c.verdict.word(), "not comparable");
    }
}
