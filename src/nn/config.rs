//! Serde types that describe a network: its architecture (`ModelConfig`), the
//! shape of its input (`InputShape`) and how its parameters start (`InitConfig`).
//! These are pure data, read from the pipeline YAML and hashed into stage keys;
//! building a network from them happens in `network.rs`, never here.

use serde::{Deserialize, Serialize};

/// The architecture of a network; layer sizes are decided at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelConfig {
    /// Fully connected ReLU network; LeNet-300-100 is `hidden: [300, 100]`.
    Mlp {
        /// Widths of the hidden layers, input side first (may be empty).
        hidden: Vec<usize>,
    },
    /// Bain's MNIST "LeNet5": conv 64, conv 64 (3x3, pad 1), max-pool 2,
    /// then FC 256, 256 and the output layer.
    Lenet5,
    /// The split-CIFAR base CNN: conv 64, pool, conv 32, pool (3x3, pad 1, as
    /// in Bain's `cnn_split_cifar.py`), then FC 256, 128 and the output layer.
    Cnn,
}

impl ModelConfig {
    /// The `type` name used in YAML, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ModelConfig::Mlp { .. } => "mlp",
            ModelConfig::Lenet5 => "lenet5",
            ModelConfig::Cnn => "cnn",
        }
    }
}

/// The shape of one input example and the number of classes, which together
/// with a `ModelConfig` fix every layer size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputShape {
    /// Image channels (1 for MNIST, 3 for CIFAR).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of output classes.
    pub classes: usize,
}

impl InputShape {
    /// Number of input values per example (channels x height x width).
    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl std::fmt::Display for InputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{}x{} ({} classes)",
            self.channels, self.height, self.width, self.classes
        )
    }
}

/// How weights and biases are initialised; all draws come from one seeded
/// ChaCha8 stream, so equal seeds give bit-identical networks.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// Distribution of the weights.
    #[serde(default)]
    pub weight: WeightInit,
    /// Distribution of the biases.
    #[serde(default)]
    pub bias: BiasInit,
}

/// Distribution of weight matrices and convolution kernels.
/// Written `xavier-normal`, `kaiming-normal` or `{uniform: {width: 0.05}}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum WeightInit {
    /// N(0, 2 / (fan_in + fan_out)), PyTorch's `xavier_normal_` (Bain's code).
    #[default]
    XavierNormal,
    /// N(0, 2 / fan_in), PyTorch's `kaiming_normal_` with its defaults.
    KaimingNormal,
    /// U(-width, width).
    Uniform {
        /// Half-width of the interval.
        width: f32,
    },
}

/// Distribution of biases.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BiasInit {
    /// All zero.
    Zeros,
    /// N(0, 1), as Bain's code initialises biases.
    #[default]
    Normal,
    /// U(-width, width); PyTorch's default for `Linear` and `Conv2d` uses
    /// width 1/sqrt(fan_in).
    Uniform {
        /// Half-width of the interval.
        width: f32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_config_reads_kebab_tags_and_rejects_unknown_keys() {
        let m: ModelConfig = serde_json::from_str(r#"{"type":"mlp","hidden":[300,100]}"#).unwrap();
        assert_eq!(
            m,
            ModelConfig::Mlp {
                hidden: vec![300, 100]
            }
        );
        let l: ModelConfig = serde_json::from_str(r#"{"type":"lenet5"}"#).unwrap();
        assert_eq!(l, ModelConfig::Lenet5);
        assert!(serde_json::from_str::<ModelConfig>(r#"{"type":"mlp","hiden":[1]}"#).is_err());
    }

    #[test]
    fn init_config_defaults_to_bain() {
        let i: InitConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(i.weight, WeightInit::XavierNormal);
        assert_eq!(i.bias, BiasInit::Normal);
        let u: InitConfig =
            serde_json::from_str(r#"{"weight":{"uniform":{"width":0.1}},"bias":"zeros"}"#).unwrap();
        assert_eq!(u.weight, WeightInit::Uniform { width: 0.1 });
        assert_eq!(u.bias, BiasInit::Zeros);
    }
}
