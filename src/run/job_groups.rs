//! What a Slurm run's jobs are doing, one line per stage group (the stages of one
//! pipeline entry, `fc1@seed=0` to `fc1@seed=7`): how many ran, failed, run and wait,
//! and why Slurm keeps them waiting. The reporter shows these lines instead of one
//! bar per waiting job, so that a run of hundreds of jobs stays readable.

use std::collections::BTreeMap;

use crate::pipeline::names::base_name;

/// Where one stage's job is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JobStage {
    /// Submitted or queued; Slurm's reason (`Resources`, `Priority`), if it gave one.
    Pending(String),
    Running,
    Ran,
    Failed,
}

/// The job state of every stage that went to Slurm, by group.
#[derive(Debug, Default)]
pub struct JobGroups {
    groups: BTreeMap<String, BTreeMap<String, JobStage>>,
}

impl JobGroups {
    /// `stage`'s job was submitted (or reattached): it waits. Returns its group.
    pub fn submitted(&mut self, stage: &str) -> String {
        self.set(stage, JobStage::Pending(String::new()))
    }

    /// Slurm reported `state` (`pending`, `running`, `ended`) and its `detail` (the
    /// pending reason, or the node); returns the stage's group.
    pub fn queued(&mut self, stage: &str, state: &str, detail: &str) -> String {
        match state {
            "pending" => self.set(stage, JobStage::Pending(detail.to_string())),
            "running" => self.set(stage, JobStage::Running),
            _ => base_name(stage).to_string(),
        }
    }

    /// `stage` finished; returns its group if it went to Slurm.
    pub fn finished(&mut self, stage: &str, ran: bool) -> Option<String> {
        let group = base_name(stage);
        let jobs = self.groups.get_mut(group)?;
        let job = jobs.get_mut(stage)?;
        *job = if ran { JobStage::Ran } else { JobStage::Failed };
        Some(group.to_string())
    }

    fn set(&mut self, stage: &str, state: JobStage) -> String {
        let group = base_name(stage).to_string();
        self.groups
            .entry(group.clone())
            .or_default()
            .insert(stage.to_string(), state);
        group
    }

    /// `fc1: 8 jobs, 2 ran, 3 running, 3 pending (Resources: 2, Priority: 1)`.
    pub fn line(&self, group: &str) -> String {
        let Some(jobs) = self.groups.get(group) else {
            return String::new();
        };
        let count = |want: &JobStage| jobs.values().filter(|j| *j == want).count();
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        let mut pending = 0;
        for job in jobs.values() {
            if let JobStage::Pending(reason) = job {
                pending += 1;
                if !reason.is_empty() {
                    *reasons.entry(reason).or_default() += 1;
                }
            }
        }
        let mut parts = vec![format!(
            "{} job{}",
            jobs.len(),
            if jobs.len() == 1 { "" } else { "s" }
        )];
        for (n, word) in [
            (count(&JobStage::Ran), "ran"),
            (count(&JobStage::Failed), "failed"),
            (count(&JobStage::Running), "running"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        if pending > 0 {
            let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            parts.push(if why.is_empty() {
                format!("{pending} pending")
            } else {
                format!("{pending} pending ({})", why.join(", "))
            });
        }
        format!("{group}: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_line_counts_its_jobs_and_why_they_wait() {
        let mut g = JobGroups::default();
        for seed in 0..4 {
            assert_eq!(g.submitted(&format!("fc1@seed={seed}")), "fc1");
        }
        g.submitted("data");
        assert_eq!(g.line("fc1"), "fc1: 4 jobs, 4 pending");
        g.queued("fc1@seed=0", "running", "node1");
        g.queued("fc1@seed=1", "pending", "Resources");
        g.queued("fc1@seed=2", "pending", "Resources");
        g.queued("fc1@seed=3", "pending", "Priority");
        assert_eq!(
            g.line("fc1"),
            "fc1: 4 jobs, 1 running, 3 pending (Priority: 1, Resources: 2)"
        );
        assert_eq!(g.finished("fc1@seed=0", true).as_deref(), Some("fc1"));
        assert_eq!(g.finished("fc1@seed=1", false).as_deref(), Some("fc1"));
        assert_eq!(
            g.line("fc1"),
            "fc1: 4 jobs, 1 ran, 1 failed, 2 pending (Priority: 1, Resources: 1)"
        );
        assert_eq!(g.line("data"), "data: 1 job, 1 pending");
    }

    #[test]
    fn stages_that_never_went_to_slurm_have_no_line() {
        let mut g = JobGroups::default();
        assert_eq!(g.finished("report", true), None);
        assert_eq!(g.line("report"), "");
    }
}
