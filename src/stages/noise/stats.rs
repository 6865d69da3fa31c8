//! Small statistics for comparing networks across seeds: mean, sample std, and a 95%
//! confidence interval of the mean from Student's t.

/// Mean, sample standard deviation and 95% interval of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for n < 2).
    pub std: f64,
    /// Lower end of the 95% interval of the mean (the mean itself for n < 2).
    pub low: f64,
    /// Upper end of the 95% interval of the mean.
    pub high: f64,
}

/// Two-sided 95% quantile of Student's t with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.960)
}

/// Summarizes a sample.
pub fn summarize(xs: &[f64]) -> Summary {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return Summary {
            n,
            mean,
            std: 0.0,
            low: mean,
            high: mean,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half = t95(n - 1) * std / (n as f64).sqrt();
    Summary {
        n,
        mean,
        std,
        low: mean - half,
        high: mean + half,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sample() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.std - 1.2909944).abs() < 1e-6);
        assert!((s.high - (2.5 + 3.182 * 1.2909944 / 2.0)).abs() < 1e-6);
        assert_eq!(summarize(&[0.7]).low, 0.7);
    }
}
