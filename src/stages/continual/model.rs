//! The `model:` of a continual stage: the baselines and active-dendrite
//! networks of Iyer et al. and Bain, named as in the papers, turned into an
//! [`ActiveSpec`] once the number of tasks and the context length are known.

use serde::{Deserialize, Serialize};

use crate::nn::{ActiveInit, ActiveSpec, BinaryConfig};

use super::super::ParamError;

fn yes() -> bool {
    true
}

/// Numenta's `context_percent_on`, the value before it was a parameter.
const NUMENTA_CONTEXT_PERCENT_ON: f64 = 0.1;

fn numenta_context_percent_on() -> f64 {
    NUMENTA_CONTEXT_PERCENT_ON
}

/// Leaves Numenta's value out of the params, so that stage keys from before the
/// parameter existed stay valid.
fn is_numenta_context_percent_on(p: &f64) -> bool {
    *p == NUMENTA_CONTEXT_PERCENT_ON
}

fn cnn_conv() -> Vec<usize> {
    vec![64, 32]
}

fn cnn_hidden() -> Vec<usize> {
    vec![256, 128]
}

/// Numenta's init is the default and is then left out of the key.
fn is_numenta(init: &ActiveInit) -> bool {
    *init == ActiveInit::Numenta
}

/// A plain ReLU MLP (the "3-layer MLP" baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Hidden widths.
    pub hidden: Vec<usize>,
}

/// k-WTA and fixed sparse weights, no dendrites ("sparse representations only").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseConfig {
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Fraction of units k-WTA keeps.
    pub percent_on: f64,
    /// Fraction of feed-forward weights fixed at zero.
    pub weight_sparsity: f64,
    /// Whether the output layer is sparse too.
    #[serde(default = "yes")]
    pub sparse_output: bool,
}

/// The active-dendrite network: sparse layers gated by dendritic segments, then k-WTA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DendriticConfig {
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Fraction of units k-WTA keeps.
    pub percent_on: f64,
    /// Fraction of feed-forward weights fixed at zero.
    pub weight_sparsity: f64,
    /// Segments per unit; default: one per task.
    #[serde(default)]
    pub segments: Option<usize>,
    /// Whether the output layer is sparse too.
    #[serde(default = "yes")]
    pub sparse_output: bool,
    /// The context density the segment weights' init assumes: U(±1/sqrt(p · context)).
    /// Numenta's code 0.1 (the default), Bain's 0.05; the context is dense either way.
    #[serde(
        default = "numenta_context_percent_on",
        skip_serializing_if = "is_numenta_context_percent_on"
    )]
    pub context_percent_on: f64,
}

/// Bain's split-CIFAR base CNN (conv 64, pool, conv 32, pool, FC 256, 128).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// Conv channels.
    #[serde(default = "cnn_conv")]
    pub conv: Vec<usize>,
    /// Hidden widths.
    #[serde(default = "cnn_hidden")]
    pub hidden: Vec<usize>,
}

/// The sparse CNN: k-WTA after the convs and in the sparse FC layers; dense output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseCnnConfig {
    /// Conv channels.
    #[serde(default = "cnn_conv")]
    pub conv: Vec<usize>,
    /// Hidden widths.
    #[serde(default = "cnn_hidden")]
    pub hidden: Vec<usize>,
    /// k-WTA fraction over each example's whole conv output.
    pub conv_percent_on: f64,
    /// k-WTA fraction of the FC layers.
    pub percent_on: f64,
    /// Fraction of FC weights fixed at zero.
    pub weight_sparsity: f64,
    /// `bain`: the init of Bain's `sparse_split_cifar.py` (see [`ActiveInit`]).
    #[serde(default, skip_serializing_if = "is_numenta")]
    pub init: ActiveInit,
}

/// The convolutional ADN: channel-wise dendritic gating on the convs, dendritic FC layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DendriticCnnConfig {
    /// Conv channels.
    #[serde(default = "cnn_conv")]
    pub conv: Vec<usize>,
    /// Hidden widths.
    #[serde(default = "cnn_hidden")]
    pub hidden: Vec<usize>,
    /// k-WTA fraction over each example's whole conv output.
    pub conv_percent_on: f64,
    /// k-WTA fraction of the FC layers.
    pub percent_on: f64,
    /// Fraction of FC weights fixed at zero.
    pub weight_sparsity: f64,
    /// Segments per unit or channel; default: one per task.
    #[serde(default)]
    pub segments: Option<usize>,
    /// The context density the segment weights' init assumes: U(±1/sqrt(p · context)).
    /// Numenta's code 0.1 (the default), Bain's 0.05; the context is dense either way.
    #[serde(
        default = "numenta_context_percent_on",
        skip_serializing_if = "is_numenta_context_percent_on"
    )]
    pub context_percent_on: f64,
    /// `bain`: PyTorch's default init, as Bain's `adn_split_cifar.py` has it.
    #[serde(default, skip_serializing_if = "is_numenta")]
    pub init: ActiveInit,
}

/// A continual-learning network: one config struct per model, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ContinualModel {
    /// Plain ReLU MLP.
    Mlp(MlpConfig),
    /// Sparse representations only.
    Sparse(SparseConfig),
    /// Active-dendrite network.
    Dendritic(DendriticConfig),
    /// The base CNN.
    Cnn(CnnConfig),
    /// The sparse CNN.
    SparseCnn(SparseCnnConfig),
    /// The convolutional ADN.
    DendriticCnn(DendriticCnnConfig),
    /// Laborieux et al.'s binarized network (`binary: false`: its
    /// full-precision twin), meant for the `adam-meta` optimizer.
    Bnn(BinaryConfig),
}

impl Default for ContinualModel {
    fn default() -> Self {
        ContinualModel::Dendritic(DendriticConfig {
            hidden: vec![2048, 2048],
            percent_on: 0.05,
            weight_sparsity: 0.5,
            segments: None,
            sparse_output: true,
            context_percent_on: NUMENTA_CONTEXT_PERCENT_ON,
        })
    }
}

impl ContinualModel {
    /// Checks fractions and widths.
    pub fn validate(&self) -> Result<(), ParamError> {
        let fraction = |key: &str, v: f64, open_top: bool| {
            let ok = v > 0.0 && (v < 1.0 || (!open_top && v == 1.0));
            if ok {
                Ok(())
            } else {
                Err(ParamError::new(
                    format!("model.{key}"),
                    format!(
                        "must be in (0, 1{}, got {v}",
                        if open_top { ")" } else { "]" }
                    ),
                ))
            }
        };
        let Some(spec) = self.spec(1, 1) else {
            return match self {
                ContinualModel::Bnn(c) if c.hidden.contains(&0) => {
                    Err(ParamError::new("model.hidden", "widths must be positive"))
                }
                _ => Ok(()),
            };
        };
        if spec.hidden.contains(&0) || spec.conv.contains(&0) {
            return Err(ParamError::new("model.hidden", "widths must be positive"));
        }
        if let Some(p) = spec.percent_on {
            fraction("percent_on", p, false)?;
        }
        if let Some(p) = spec.conv_percent_on {
            fraction("conv_percent_on", p, false)?;
        }
        if spec.weight_sparsity != 0.0 {
            fraction("weight_sparsity", spec.weight_sparsity, true)?;
        }
        if self.is_dendritic() {
            fraction("context_percent_on", spec.context_percent_on, false)?;
        }
        if matches!(
            self,
            ContinualModel::Dendritic(DendriticConfig {
                segments: Some(0),
                ..
            }) | ContinualModel::DendriticCnn(DendriticCnnConfig {
                segments: Some(0),
                ..
            })
        ) {
            return Err(ParamError::new("model.segments", "must be at least 1"));
        }
        Ok(())
    }

    /// Whether the network reads a context.
    pub fn is_dendritic(&self) -> bool {
        matches!(
            self,
            ContinualModel::Dendritic(_) | ContinualModel::DendriticCnn(_)
        )
    }

    /// The architecture for `tasks` tasks and a context of length `context`
    /// (`None` for the binarized network, which is not an `ActiveNet`).
    pub fn spec(&self, tasks: usize, context: usize) -> Option<ActiveSpec> {
        let plain = |conv: &[usize], hidden: &[usize]| ActiveSpec {
            conv: conv.to_vec(),
            hidden: hidden.to_vec(),
            conv_percent_on: None,
            percent_on: None,
            weight_sparsity: 0.0,
            sparse_output: false,
            segments: 0,
            context: 0,
            context_percent_on: NUMENTA_CONTEXT_PERCENT_ON,
            init: ActiveInit::Numenta,
        };
        Some(match self {
            ContinualModel::Bnn(_) => return None,
            ContinualModel::Mlp(MlpConfig { hidden }) => plain(&[], hidden),
            ContinualModel::Cnn(CnnConfig { conv, hidden }) => plain(conv, hidden),
            ContinualModel::Sparse(SparseConfig {
                hidden,
                percent_on,
                weight_sparsity,
                sparse_output,
            }) => ActiveSpec {
                percent_on: Some(*percent_on),
                weight_sparsity: *weight_sparsity,
                sparse_output: *sparse_output,
                ..plain(&[], hidden)
            },
            ContinualModel::Dendritic(DendriticConfig {
                hidden,
                percent_on,
                weight_sparsity,
                segments,
                sparse_output,
                context_percent_on,
            }) => ActiveSpec {
                percent_on: Some(*percent_on),
                weight_sparsity: *weight_sparsity,
                sparse_output: *sparse_output,
                segments: segments.unwrap_or(tasks),
                context,
                context_percent_on: *context_percent_on,
                ..plain(&[], hidden)
            },
            ContinualModel::SparseCnn(SparseCnnConfig {
                conv,
                hidden,
                conv_percent_on,
                percent_on,
                weight_sparsity,
                init,
            }) => ActiveSpec {
                conv_percent_on: Some(*conv_percent_on),
                percent_on: Some(*percent_on),
                weight_sparsity: *weight_sparsity,
                init: *init,
                ..plain(conv, hidden)
            },
            ContinualModel::DendriticCnn(DendriticCnnConfig {
                conv,
                hidden,
                conv_percent_on,
                percent_on,
                weight_sparsity,
                segments,
                context_percent_on,
                init,
            }) => ActiveSpec {
                conv_percent_on: Some(*conv_percent_on),
                percent_on: Some(*percent_on),
                weight_sparsity: *weight_sparsity,
                segments: segments.unwrap_or(tasks),
                context,
                context_percent_on: *context_percent_on,
                init: *init,
                ..plain(conv, hidden)
            },
        })
    }
}
