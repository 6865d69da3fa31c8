//! The totals of a run: how many stages ran, were cached, failed or were skipped, the
//! wall and CPU time, and the verdicts of its reports. `repro run` ends with them, as a
//! line for people and, with `--json`, one final `{"summary": ...}` object.

use std::path::PathBuf;

use serde::Serialize;

use super::events::Outcome;
use super::schedule::RunSummary;
use crate::stages::report::ReportStage;
use crate::stages::TypedStage;

/// The verdict counts of the report stages of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictTally {
    /// Reference rows compared.
    pub comparisons: u64,
    /// Rows whose claim our run reproduced.
    pub reproduced: u64,
    /// Rows whose claim it did not reproduce (absent for reports made before the
    /// report stage counted them).
    pub not_reproduced: Option<u64>,
    /// Rows that cannot be compared (published-scale values under a reduced profile,
    /// missing values).
    pub not_comparable: Option<u64>,
}

/// What a finished run amounts to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunTotals {
    /// Stages that ran.
    pub ran: usize,
    /// Stages whose cached result was valid.
    pub cached: usize,
    /// Stages that failed.
    pub failed: usize,
    /// Stages skipped because a stage they need failed.
    pub skipped: usize,
    /// Slurm jobs submitted (retries included; 0 for a local run).
    pub submitted: usize,
    /// Slurm jobs that ended without a result and were submitted again.
    pub retried: usize,
    /// CPU seconds reserved by the Slurm jobs that published a result (their CPUs
    /// times their wall time); absent for a local run.
    pub job_cpu_seconds: Option<f64>,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// CPU seconds of this process (user + system, all threads), where known.
    pub cpu_seconds: Option<f64>,
    /// The verdicts of the report stages that have a result, if any.
    pub verdicts: Option<VerdictTally>,
    /// The report folders written.
    pub reports: Vec<PathBuf>,
}

impl RunTotals {
    /// Counts the outcomes of `summary` and the verdicts of its report stages.
    pub fn new(summary: &RunSummary, wall_seconds: f64, reports: Vec<PathBuf>) -> RunTotals {
        let mut totals = RunTotals {
            wall_seconds,
            cpu_seconds: cpu_seconds(),
            reports,
            submitted: summary.submitted,
            retried: summary.retried,
            ..RunTotals::default()
        };
        for (name, outcome) in &summary.outcomes {
            match outcome {
                Outcome::Ran => {
                    totals.ran += 1;
                    if summary.submitted > 0 {
                        let m = &summary.records[name].manifest;
                        *totals.job_cpu_seconds.get_or_insert(0.0) +=
                            m.threads as f64 * m.wall_seconds;
                    }
                }
                Outcome::Cached => totals.cached += 1,
                Outcome::Failed(_) => totals.failed += 1,
                Outcome::Skipped(_) => totals.skipped += 1,
            }
        }
        for record in summary.records.values() {
            if record.manifest.kind != ReportStage::NAME {
                continue;
            }
            let metric = |name: &str| record.manifest.metrics.get(name).and_then(|v| v.as_u64());
            let tally = totals.verdicts.get_or_insert_with(|| VerdictTally {
                not_reproduced: Some(0),
                not_comparable: Some(0),
                ..VerdictTally::default()
            });
            tally.comparisons += metric("comparisons").unwrap_or(0);
            tally.reproduced += metric("reproduced").unwrap_or(0);
            let add = |slot: &mut Option<u64>, v: Option<u64>| {
                *slot = slot.zip(v).map(|(a, b)| a + b);
            };
            add(&mut tally.not_reproduced, metric("not_reproduced"));
            add(&mut tally.not_comparable, metric("not_comparable"));
        }
        totals
    }

    /// The closing lines for people.
    pub fn describe(&self) -> String {
        let cpu = self
            .cpu_seconds
            .map(|c| format!(", {} CPU", duration(c)))
            .unwrap_or_default();
        let mut out = format!(
            "{} ran, {} cached, {} failed, {} skipped in {}{cpu}",
            self.ran,
            self.cached,
            self.failed,
            self.skipped,
            duration(self.wall_seconds)
        );
        if self.submitted > 0 {
            let hours = self.job_cpu_seconds.unwrap_or(0.0) / 3600.0;
            out.push_str(&format!(
                "\nslurm: {} jobs submitted, {} retried, {hours:.2} CPU-hours in the jobs that published",
                self.submitted, self.retried
            ));
        }
        if let Some(v) = &self.verdicts {
            out.push_str(&format!("\nverdicts: {} reproduced", v.reproduced));
            match (v.not_reproduced, v.not_comparable) {
                (Some(n), Some(c)) => {
                    out.push_str(&format!(", {n} not reproduced, {c} not comparable"))
                }
                _ => out.push_str(&format!(" of {} compared", v.comparisons)),
            }
        }
        for dir in &self.reports {
            out.push_str(&format!(
                "\nreport: {}",
                dir.join(crate::report::INDEX_HTML).display()
            ));
        }
        out
    }
}

/// `1h 02m`, `3m 05s` or `4.2s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, s as u64 % 60)
    } else {
        format!("{}h {:02}m", (s / 3600.0) as u64, (s as u64 % 3600) / 60)
    }
}

/// User plus system CPU seconds of this process, all threads.
fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: `getrusage` writes a `rusage` into the pointer it is given and
        // touches nothing else; it is read only when the call reports success.
        let usage = unsafe {
            if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
                return None;
            }
            usage.assume_init()
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(secs(usage.ru_utime) + secs(usage.ru_stime))
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(4.23), "4.2s");
        assert_eq!(duration(185.0), "3m 05s");
        assert_eq!(duration(3720.0), "1h 02m");
    }

    #[test]
    fn cpu_time_is_measured() {
        let spent: f64 = (0..2_000_000).map(|i| (i as f64).sqrt()).sum();
        assert!(spent > 0.0);
        assert!(cpu_seconds().is_some_and(|c| c > 0.0));
    }
}
