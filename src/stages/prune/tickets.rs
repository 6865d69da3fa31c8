//! The tickets a `prune` stage produced, and how stages downstream name them:
//! `dense` (round 0), `wNN` (the winning ticket whose remaining fraction of prunable
//! weights is nearest NN%), `rNN` (the random ticket nearest NN%), `iNN` (reinit).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::stages::files::{read_json, write_json};
use crate::stages::Result as StageResult;

/// The ticket list's file name in a `prune` stage's output.
pub const TICKETS: &str = "tickets.json";

/// Where a ticket's weights are, relative to the stage's output: `winning/r03/weights.safetensors`.
pub fn weights_path(kind: TicketKind, round: usize) -> String {
    format!("{}/r{round:02}/{}", kind.folder(), super::TICKET_WEIGHTS)
}

/// Where a ticket's best test-accuracy epoch is (with `save_best`).
pub fn best_weights_path(kind: TicketKind, round: usize) -> String {
    format!(
        "{}/r{round:02}/{}",
        kind.folder(),
        super::TICKET_BEST_WEIGHTS
    )
}

/// What kind of ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// IMP's mask and the rewound weights.
    Winning,
    /// A random mask of the same per-layer density, same initialization.
    Random,
    /// The winning mask with a new random initialization.
    Reinit,
}

impl TicketKind {
    /// The folder (and table value) of this kind.
    pub fn folder(self) -> &'static str {
        match self {
            TicketKind::Winning => "winning",
            TicketKind::Random => "random",
            TicketKind::Reinit => "reinit",
        }
    }
}

/// One trained ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Pruning round (0 = dense).
    pub round: usize,
    /// Kind.
    pub kind: TicketKind,
    /// Fraction of prunable weights remaining.
    pub remaining_prunable: f64,
    /// Fraction of all parameters remaining (Bain's x-axis).
    pub remaining_all: f64,
    /// Best test accuracy over the round's epochs.
    pub best_test_accuracy: f64,
    /// Test accuracy of the saved weights (the epoch pruning started from).
    pub test_accuracy: f64,
    /// Weight file, relative to the stage's output.
    pub weights: String,
    /// The best test-accuracy epoch's weight file, when the stage saved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_weights: Option<String>,
}

/// Every ticket of a `prune` stage (`tickets.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tickets {
    /// In round order, winning first within a round.
    pub tickets: Vec<Ticket>,
}

impl Tickets {
    /// Reads the ticket list of a `prune` stage's output folder.
    pub fn read(dir: &Path) -> StageResult<Tickets> {
        read_json(&dir.join(TICKETS))
    }

    /// Writes the ticket list into a `prune` stage's output folder.
    pub fn write(&self, dir: &Path) -> StageResult<()> {
        write_json(&dir.join(TICKETS), self)
    }
}

/// A parsed ticket name: `dense`, or a kind and a target fraction of prunable weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TicketName {
    /// Round 0.
    Dense,
    /// The ticket of `kind` whose remaining fraction is nearest `target`.
    Nearest {
        /// Which kind of ticket.
        kind: TicketKind,
        /// Remaining fraction of prunable weights, in (0, 1].
        target: f64,
    },
}

impl TicketName {
    /// Parses `dense`, `w30`, `r30`, `i3.5` (percent of prunable weights remaining).
    pub fn parse(name: &str) -> Result<TicketName, String> {
        if name == "dense" {
            return Ok(TicketName::Dense);
        }
        let bad = || {
            format!("ticket name `{name}`: use `dense`, or w/r/i and a percentage of remaining weights in (0, 100] (w30, r30, w3)")
        };
        let mut chars = name.chars();
        let kind = match chars.next() {
            Some('w') => TicketKind::Winning,
            Some('r') => TicketKind::Random,
            Some('i') => TicketKind::Reinit,
            _ => return Err(bad()),
        };
        let pct: f64 = chars.as_str().parse().map_err(|_| bad())?;
        if !(pct > 0.0 && pct <= 100.0) {
            return Err(bad());
        }
        Ok(TicketName::Nearest {
            kind,
            target: pct / 100.0,
        })
    }
}

impl Tickets {
    /// Finds a named ticket: `dense`, `w30`, `r30`, `i30` (percent of prunable weights).
    pub fn select(&self, name: &str) -> Result<&Ticket, String> {
        let (kind, target) = match TicketName::parse(name)? {
            TicketName::Dense => {
                return self
                    .tickets
                    .iter()
                    .find(|t| t.round == 0)
                    .ok_or_else(|| "no dense round in this prune stage".to_string())
            }
            TicketName::Nearest { kind, target } => (kind, target),
        };
        self.tickets
            .iter()
            .filter(|t| t.kind == kind && (kind == TicketKind::Winning || t.round > 0))
            .min_by(|a, b| {
                (a.remaining_prunable - target)
                    .abs()
                    .total_cmp(&(b.remaining_prunable - target).abs())
            })
            .ok_or_else(|| {
                format!(
                    "ticket `{name}`: this prune stage trained no {} tickets",
                    kind.folder()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tickets() -> Tickets {
        let mut v = Vec::new();
        for round in 0..30 {
            let f = 0.875f64.powi(round as i32);
            for kind in [TicketKind::Winning, TicketKind::Random] {
                if kind == TicketKind::Random && round == 0 {
                    continue;
                }
                v.push(Ticket {
                    round,
                    kind,
                    remaining_prunable: f,
                    remaining_all: f,
                    best_test_accuracy: 0.9,
                    test_accuracy: 0.9,
                    weights: weights_path(kind, round),
                    best_weights: None,
                });
            }
        }
        Tickets { tickets: v }
    }

    #[test]
    fn names_select_the_nearest_round() {
        let t = tickets();
        assert_eq!(t.select("dense").unwrap().round, 0);
        assert_eq!(t.select("w30").unwrap().round, 9);
        assert_eq!(t.select("r30").unwrap().kind, TicketKind::Random);
        assert_eq!(t.select("r30").unwrap().round, 9);
        assert_eq!(t.select("w3").unwrap().round, 26);
        assert!(t.select("x30").is_err());
        assert!(t.select("i30").is_err());
    }
}
