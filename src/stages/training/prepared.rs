//! The data a training run reads: every split of a dataset normalized into `f32`
//! features ([`Prepared`]), with the [`Normalize`] it used, which the model card keeps
//! so that a downstream stage normalizes its inputs the same way.

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::nn::InputShape;

use crate::stages::{Error, Result};

/// Input normalization: `(x - mean) / std` per channel, on pixels in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// One value, or one per channel.
    pub mean: Vec<f32>,
    /// One value, or one per channel.
    pub std: Vec<f32>,
}

/// A dataset as normalized features, ready to train on.
pub struct Prepared {
    /// Shape of one example, and the number of classes.
    pub shape: InputShape,
    /// Normalization used.
    pub normalize: Normalize,
    /// Training features (N × features).
    pub train_x: Vec<f32>,
    /// Training labels.
    pub train_y: Vec<u8>,
    /// Test features.
    pub test_x: Vec<f32>,
    /// Test labels.
    pub test_y: Vec<u8>,
    /// Validation features and labels, when the dataset has a validation split.
    pub validation: Option<(Vec<f32>, Vec<u8>)>,
}

impl Prepared {
    /// Normalizes every split of a dataset.
    pub fn new(ds: &Dataset, normalize: Option<&Normalize>) -> Result<Prepared> {
        let normalize = normalize.cloned().unwrap_or_else(|| Normalize {
            mean: ds.mean.clone(),
            std: ds.std.clone(),
        });
        let f = |split| {
            ds.to_f32(split, &normalize.mean, &normalize.std)
                .map_err(|e| Error::InvalidInput(e.to_string()))
        };
        let validation = match &ds.validation {
            Some(v) => Some((f(v)?, v.labels.clone())),
            None => None,
        };
        Ok(Prepared {
            shape: InputShape {
                channels: ds.channels,
                height: ds.height,
                width: ds.width,
                classes: ds.classes,
            },
            train_x: f(&ds.train)?,
            train_y: ds.train.labels.clone(),
            test_x: f(&ds.test)?,
            test_y: ds.test.labels.clone(),
            validation,
            normalize,
        })
    }
}
