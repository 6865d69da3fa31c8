//! The one consumer of [`RunEvent`]s: progress bars and log lines on stderr, and the
//! `--json` lines on stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Outcome, RunEvent};

/// Renders run events for people (stderr) and, optionally, scripts (stdout).
pub struct Reporter {
    json: bool,
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
}

impl Reporter {
    /// A reporter; with `json`, one JSON object per finished stage goes to stdout.
    pub fn new(json: bool) -> Reporter {
        Reporter {
            json,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)),
            bars: BTreeMap::new(),
        }
    }

    fn log(&self, line: String) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// Handles one event.
    pub fn event(&mut self, event: RunEvent) {
        match event {
            RunEvent::Started { stage, reason } => {
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
                self.log(format!("  run     {stage} ({reason})"));
                self.bars.insert(stage, bar);
            }
            RunEvent::Progress {
                stage,
                position,
                length,
                message,
            } => {
                if let Some(bar) = self.bars.get(&stage) {
                    bar.set_length(length);
                    bar.set_position(position);
                    bar.set_message(message);
                }
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
                let detail = match &outcome {
                    Outcome::Cached => String::new(),
                    Outcome::Ran => format!(" {seconds:.2}s"),
                    Outcome::Failed(m) => format!(" {seconds:.2}s\n          error: {m}"),
                    Outcome::Skipped(m) => format!(" ({m})"),
                };
                self.log(format!("  {:<7} {stage}{detail}", outcome.word()));
                if self.json {
                    let line = serde_json::json!({
                        "stage": stage,
                        "status": outcome.word(),
                        "key": key,
                        "seconds": seconds,
                    });
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
    }
}
