//! The one consumer of [`RunEvent`]s: an overall progress line and per-stage bars and
//! log lines on stderr, the `--json` lines on stdout, and the closing summary. It alone
//! renders the events' miss reasons, failures and skip causes to text.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::store::key::{describe, MissReason};

use super::events::{Outcome, RunEvent};
use super::job_groups::JobGroups;
use super::summary::{duration, RunTotals};

/// Renders run events for people (stderr) and, optionally, scripts (stdout).
pub struct Reporter {
    json: bool,
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    /// Why each started stage runs, until it finishes (for its `--json` line).
    reasons: BTreeMap<String, Vec<MissReason>>,
    /// The line above the stage bars: stages done of total, and an ETA.
    overall: ProgressBar,
    /// Seconds of each stage that ran to completion, for the ETA of those not started.
    ran_seconds: Vec<f64>,
    /// Slurm jobs by stage group, shown as one line per group.
    jobs: JobGroups,
    /// Each group's line (under the overall line) and its last text.
    group_lines: BTreeMap<String, (ProgressBar, String)>,
    /// Stages whose job waits in Slurm's queue: their bars are off screen until it runs.
    queued: BTreeSet<String>,
}

impl Reporter {
    /// A reporter of a run of `stages` stages; with `json`, one JSON object per
    /// finished stage goes to stdout, and a summary object at the end.
    pub fn new(json: bool, stages: usize) -> Reporter {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let overall = multi.add(ProgressBar::new(stages as u64));
        overall.set_style(
            ProgressStyle::with_template("{pos}/{len} stages done{msg}")
                .expect("template is valid"),
        );
        Reporter {
            json,
            multi,
            bars: BTreeMap::new(),
            reasons: BTreeMap::new(),
            overall,
            ran_seconds: Vec::new(),
            jobs: JobGroups::default(),
            group_lines: BTreeMap::new(),
            queued: BTreeSet::new(),
        }
    }

    /// Time left: the running stages' own estimates, plus the mean time of the stages
    /// that ran so far for each stage not started; `None` until some stage reported.
    fn eta(&self) -> Option<Duration> {
        let running: Vec<Duration> = self
            .bars
            .values()
            .filter(|b| b.position() > 0)
            .map(|b| b.eta())
            .collect();
        let waiting =
            self.overall.length().unwrap_or(0) - self.overall.position() - self.bars.len() as u64;
        let per_stage = (!self.ran_seconds.is_empty())
            .then(|| self.ran_seconds.iter().sum::<f64>() / self.ran_seconds.len() as f64);
        if running.is_empty() && per_stage.is_none() {
            return None;
        }
        let started = running.iter().max().copied().unwrap_or_default();
        let rest = per_stage.unwrap_or(0.0) * waiting as f64;
        Some(started + Duration::from_secs_f64(rest))
    }

    fn update_overall(&self) {
        let msg = self
            .eta()
            .map(|e| format!(", ETA {}", duration(e.as_secs_f64())))
            .unwrap_or_default();
        self.overall.set_message(msg);
    }

    /// Ends the run: clears the progress line, prints the totals on stderr, and with
    /// `--json` one `{"summary": ...}` object as the last line on stdout.
    pub fn finish(&self, totals: &RunTotals) {
        for (line, _) in self.group_lines.values() {
            line.finish_and_clear();
        }
        self.overall.finish_and_clear();
        self.log(totals.describe());
        if self.json {
            let line = serde_json::json!({ "summary": totals });
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn log(&self, line: String) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// Shows a Slurm job's state on its stage's bar until the stage reports progress,
    /// and the bar itself only while the job runs.
    fn job_state(&mut self, stage: &str, job: &str, state: &str) {
        let Some(bar) = self.bars.get(stage) else {
            return;
        };
        if bar.position() == 0 {
            bar.set_message(format!("job {job} {state}"));
        }
        let waits = state != "running" && !state.starts_with("running ");
        if waits && self.queued.insert(stage.to_string()) {
            self.multi.remove(bar);
        } else if !waits && self.queued.remove(stage) {
            self.multi.add(bar.clone());
        }
    }

    /// Redraws `group`'s line; without a terminal, logs it when it changed.
    fn show_group(&mut self, group: &str) {
        let text = self.jobs.line(group);
        let hidden = self.multi.is_hidden();
        let (line, shown) = self
            .group_lines
            .entry(group.to_string())
            .or_insert_with(|| {
                let line = self.multi.insert_after(&self.overall, ProgressBar::new(0));
                line.set_style(ProgressStyle::with_template("  {msg}").expect("template is valid"));
                (line, String::new())
            });
        if *shown == text {
            return;
        }
        line.set_message(text.clone());
        *shown = text.clone();
        if hidden {
            self.log(format!("  slurm   {text}"));
        }
    }

    /// Handles one event.
    pub fn event(&mut self, event: RunEvent) {
        match event {
            RunEvent::Started { stage, reasons } => {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} [{bar:30}] {pos}/{len} {msg} (ETA {eta})",
                    )
                    .expect("template is valid")
                    .progress_chars("=> "),
                );
                bar.set_prefix(stage.clone());
                bar.enable_steady_tick(Duration::from_millis(250));
                self.log(format!("  run     {stage} ({})", describe(&reasons)));
                self.reasons.insert(stage.clone(), reasons);
                self.bars.insert(stage, bar);
            }
            RunEvent::Submitted {
                stage,
                job,
                attempt,
                resources,
            } => {
                let what = if attempt == 1 { "submit" } else { "resubmit" };
                self.log(format!("  {what:<7} {stage} (job {job}: {resources})"));
                self.job_state(&stage, &job, "submitted");
                let group = self.jobs.submitted(&stage);
                self.show_group(&group);
            }
            RunEvent::Reattached { stage, job } => {
                self.log(format!(
                    "  attach  {stage} (job {job}, submitted by an earlier run)"
                ));
                self.job_state(&stage, &job, "queued");
                let group = self.jobs.submitted(&stage);
                self.show_group(&group);
            }
            RunEvent::Queued {
                stage,
                job,
                state,
                detail,
            } => {
                let group = self.jobs.queued(&stage, &state, &detail);
                let text = match (state.as_str(), detail.is_empty()) {
                    (_, true) => state,
                    ("running", false) => format!("running on {detail}"),
                    (_, false) => format!("{state} ({detail})"),
                };
                self.job_state(&stage, &job, &text);
                self.show_group(&group);
            }
            RunEvent::Retrying {
                stage,
                job,
                end,
                attempt,
                attempts,
            } => self.log(format!(
                "  retry   {stage}: job {job} {end}; attempt {attempt} of {attempts}"
            )),
            RunEvent::Fetched { stage, remote } => {
                self.log(format!("  fetched {stage} (from {})", remote.display()))
            }
            RunEvent::RemoteUnused { stage, why } => {
                self.log(format!("  remote  {stage}: not used, {why}"))
            }
            RunEvent::PollFailed {
                message,
                retry_seconds,
            } => self.log(format!(
                "  warning polling Slurm failed ({message}); next poll in {retry_seconds:.0} s"
            )),
            RunEvent::Progress {
                stage,
                position,
                length,
                message,
            } => {
                if let Some(bar) = self.bars.get(&stage) {
                    if self.queued.remove(&stage) {
                        self.multi.add(bar.clone());
                    }
                    bar.set_length(length);
                    bar.set_position(position);
                    bar.set_message(message);
                }
                self.update_overall();
            }
            RunEvent::Finished {
                stage,
                outcome,
                key,
                seconds,
            } => {
                if let Some(bar) = self.bars.remove(&stage) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                self.queued.remove(&stage);
                let reasons = self.reasons.remove(&stage).unwrap_or_default();
                if outcome == Outcome::Ran {
                    self.ran_seconds.push(seconds);
                }
                self.overall.inc(1);
                self.update_overall();
                let detail = match &outcome {
                    Outcome::Cached => String::new(),
                    Outcome::Ran => format!(" {seconds:.2}s"),
                    Outcome::Failed(failure) => {
                        format!(" {seconds:.2}s\n          error: {failure}")
                    }
                    Outcome::Skipped(cause) => format!(" ({cause})"),
                };
                self.log(format!("  {:<7} {stage}{detail}", outcome.word()));
                if let Some(group) = self.jobs.finished(&stage, outcome == Outcome::Ran) {
                    self.show_group(&group);
                }
                if self.json {
                    let line = serde_json::json!({
                        "stage": stage,
                        "status": outcome.word(),
                        "key": key,
                        "seconds": seconds,
                        "reasons": reasons,
                    });
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
    }
}
