//! The training layer shared by every kind that trains (`train`, `prune`, `continual`).
//!
//! [`Training`] is the params block they all embed (optimizer, epochs, batch sizes,
//! normalization), validated once; [`Stopping`] adds early stopping and which epoch to
//! keep for the kinds that choose (`train`, `continual`). [`Prepared`] is the data a run
//! trains on, [`fit`] the one epoch loop, [`ModelCard`] the file that says how to rebuild
//! a trained network. Nothing here touches the store or prints.

mod card;
mod fit;
mod prepared;

pub use card::{ModelCard, MODEL_CARD};
pub use fit::{fit, Augmentation, EarlyStopping, EpochRow, FitPlan, History, Keep, StopMetric};
pub use prepared::{Normalize, Prepared};

use serde::{Deserialize, Serialize};

use crate::nn::OptimizerConfig;

use super::ParamError;

/// Most epochs a stage may train: far beyond any paper (Bain's 35 per round), and
/// small enough that epoch and iteration counts never overflow.
pub const MAX_EPOCHS: usize = 100_000;

/// Largest batch accepted (a batch is held in memory as one tensor).
pub const MAX_BATCH: usize = 1 << 20;

/// How a network is trained, embedded (flattened) in the params of every kind that
/// trains, so its keys sit at the top level of a stage's params as before. Defaults
/// differ by kind, so each kind's `Default` builds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Optimizer (a new one per run; `prune` makes one per round, `continual` per task
    /// when it resets).
    pub optimizer: OptimizerConfig,
    /// Epochs (per round for `prune`, per task for `continual`; the most, with early
    /// stopping).
    pub epochs: usize,
    /// Training mini-batch size.
    pub batch_size: usize,
    /// Evaluation batch size (does not change results).
    pub eval_batch_size: usize,
    /// Input normalization; default: the dataset's mean and std.
    pub normalize: Option<Normalize>,
}

impl Training {
    /// The checks every kind that trains shares.
    pub fn validate(&self) -> Result<(), ParamError> {
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return Err(ParamError::new(
                "epochs",
                format!("must be in 1..={MAX_EPOCHS}"),
            ));
        }
        for (key, size) in [
            ("batch_size", self.batch_size),
            ("eval_batch_size", self.eval_batch_size),
        ] {
            if !(1..=MAX_BATCH).contains(&size) {
                return Err(ParamError::new(key, format!("must be in 1..={MAX_BATCH}")));
            }
        }
        Ok(())
    }
}

/// When a run stops and which epoch's weights it keeps; embedded (flattened) by the
/// kinds that choose (`train`, `continual`; a prune round trains all its epochs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Stopping {
    /// Optional early stopping on the validation split.
    pub early_stopping: Option<EarlyStopping>,
    /// Which weights to keep and report.
    pub keep: Keep,
}

impl Stopping {
    /// Checks the patience.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self
            .early_stopping
            .as_ref()
            .is_some_and(|e| e.patience == 0)
        {
            return Err(ParamError::new(
                "early_stopping.patience",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
