//! Task contexts for dendritic networks: what the dendrites see besides the
//! image.
//!
//! - `prototype` (Iyer et al.): while training task t, the mean of task t's
//!   normalized training inputs; at test time each example gets the stored
//!   prototype nearest to it (Euclidean), so no task label is given.
//! - `onehot`: the task id as a one-hot vector, training and test (Bain's
//!   convolutional ADN).
//! - `zeros`: a constant zero vector, so every gate is σ(0) = 0.5 (Bain's
//!   "0s context" control).
//! - `task_sum: {divisor, test}` (Bain's `adn_pmnist.py`, average-image version):
//!   the sum of the task's normalized training inputs divided by a fixed count
//!   (his 6000, "hardcoded for mnist train": 10× the mean of 60,000 images); at test
//!   time the true task's context (`oracle`, as his script does) or the nearest one
//!   (`nearest`, as Numenta's inference).

use serde::{Deserialize, Serialize};

/// Which context a dendritic network gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextKind {
    /// The task's mean input; inferred by nearest prototype at test time.
    #[default]
    Prototype,
    /// The task id, one-hot.
    Onehot,
    /// All zeros.
    Zeros,
    /// The task's input sum over `divisor`, with a choice of test-time context.
    TaskSum {
        /// What the sum is divided by (Bain: 6000).
        divisor: u32,
        /// The context a test example gets.
        test: TestContext,
    },
}

/// The context a test example of a prototype-like kind gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestContext {
    /// The stored context nearest to the example (no task label used).
    Nearest,
    /// The true task's context (the task label is given: an upper bound).
    Oracle,
}

impl ContextKind {
    /// Length of the context vector.
    pub fn len(self, features: usize, tasks: usize) -> usize {
        match self {
            ContextKind::Prototype | ContextKind::TaskSum { .. } => features,
            ContextKind::Onehot | ContextKind::Zeros => tasks,
        }
    }

    /// Checks the divisor.
    pub fn validate(self) -> Result<(), crate::stages::ParamError> {
        match self {
            ContextKind::TaskSum { divisor: 0, .. } => Err(crate::stages::ParamError::new(
                "context.task_sum.divisor",
                "must be at least 1",
            )),
            _ => Ok(()),
        }
    }
}

/// The contexts known so far: one per trained task.
pub struct Contexts {
    kind: ContextKind,
    features: usize,
    tasks: usize,
    prototypes: Vec<Vec<f32>>,
}

impl Contexts {
    /// No task seen yet.
    pub fn new(kind: ContextKind, features: usize, tasks: usize) -> Contexts {
        Contexts {
            kind,
            features,
            tasks,
            prototypes: Vec::new(),
        }
    }

    /// Length of each context vector.
    pub fn len(&self) -> usize {
        self.kind.len(self.features, self.tasks)
    }

    /// Starts task `t` with its training inputs `x`; returns the context every
    /// training example of the task gets.
    pub fn learn(&mut self, t: usize, x: &[f32]) -> Vec<f32> {
        let divisor = match self.kind {
            ContextKind::Prototype => (x.len() / self.features).max(1) as f64,
            ContextKind::TaskSum { divisor, .. } => f64::from(divisor),
            ContextKind::Onehot => return self.onehot(t),
            ContextKind::Zeros => return vec![0.0; self.len()],
        };
        let mut sum = vec![0.0f64; self.features];
        for row in x.chunks(self.features) {
            for (m, &v) in sum.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        let context: Vec<f32> = sum.iter().map(|m| (m / divisor) as f32).collect();
        self.prototypes.push(context.clone());
        context
    }

    /// The context of a test example of task `t`; for prototypes the nearest
    /// one, whatever `t` is. Also returns the task the context stands for.
    pub fn infer(&self, t: usize, example: &[f32]) -> (Vec<f32>, usize) {
        match self.kind {
            ContextKind::TaskSum {
                test: TestContext::Oracle,
                ..
            } => (self.prototypes[t].clone(), t),
            ContextKind::Prototype
            | ContextKind::TaskSum {
                test: TestContext::Nearest,
                ..
            } => {
                let distance = |p: &Vec<f32>| -> f64 {
                    p.iter()
                        .zip(example)
                        .map(|(a, b)| ((a - b) as f64).powi(2))
                        .sum()
                };
                let (best, _) = self.prototypes.iter().map(distance).enumerate().fold(
                    (0, f64::INFINITY),
                    |acc, (i, d)| if d < acc.1 { (i, d) } else { acc },
                );
                (self.prototypes[best].clone(), best)
            }
            ContextKind::Onehot => (self.onehot(t), t),
            ContextKind::Zeros => (vec![0.0; self.len()], t),
        }
    }

    fn onehot(&self, t: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.len()];
        v[t] = 1.0;
        v
    }
}

/// `x` (N × features) with `context(i)` appended to example i.
pub fn append(
    x: &[f32],
    features: usize,
    mut context: impl FnMut(usize, &[f32]) -> Vec<f32>,
) -> Vec<f32> {
    let n = x.len() / features;
    let mut out = Vec::with_capacity(x.len() + n);
    for (i, row) in x.chunks(features).enumerate() {
        out.extend_from_slice(row);
        out.extend(context(i, row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototypes_are_task_means_and_test_examples_get_the_nearest() {
        let mut c = Contexts::new(ContextKind::Prototype, 2, 3);
        assert_eq!(c.learn(0, &[0.0, 0.0, 2.0, 2.0]), [1.0, 1.0]);
        assert_eq!(c.learn(1, &[10.0, 10.0]), [10.0, 10.0]);
        assert_eq!(c.infer(0, &[9.0, 8.0]), (vec![10.0, 10.0], 1));
        assert_eq!(c.infer(1, &[0.0, 1.0]), (vec![1.0, 1.0], 0));
        let x = append(&[5.0, 6.0, 7.0, 8.0], 2, |i, _| vec![i as f32]);
        assert_eq!(x, [5.0, 6.0, 0.0, 7.0, 8.0, 1.0]);
    }

    #[test]
    fn task_sums_divide_by_the_fixed_count_and_the_oracle_gives_the_true_task() {
        let kind = |test| ContextKind::TaskSum { divisor: 4, test };
        let mut oracle = Contexts::new(kind(TestContext::Oracle), 2, 2);
        assert_eq!(oracle.learn(0, &[0.0, 0.0, 2.0, 2.0]), [0.5, 0.5]);
        assert_eq!(oracle.learn(1, &[40.0, 40.0]), [10.0, 10.0]);
        assert_eq!(
            oracle.infer(0, &[40.0, 40.0]),
            (vec![0.5, 0.5], 0),
            "the oracle ignores how the example looks"
        );
        let mut nearest = Contexts::new(kind(TestContext::Nearest), 2, 2);
        nearest.learn(0, &[0.0, 0.0, 2.0, 2.0]);
        nearest.learn(1, &[40.0, 40.0]);
        assert_eq!(nearest.infer(0, &[9.0, 9.0]), (vec![10.0, 10.0], 1));
        assert!(kind(TestContext::Oracle).validate().is_ok());
        let zero = ContextKind::TaskSum {
            divisor: 0,
            test: TestContext::Oracle,
        };
        assert_eq!(zero.validate().unwrap_err().key, "context.task_sum.divisor");
        assert_eq!(
            serde_json::to_value(kind(TestContext::Oracle)).unwrap(),
            serde_json::json!({"task_sum": {"divisor": 4, "test": "oracle"}})
        );
        assert_eq!(
            serde_json::to_value(ContextKind::Prototype).unwrap(),
            serde_json::json!("prototype"),
            "the plain kinds keep their form, so existing keys stay valid"
        );
    }

    #[test]
    fn onehot_and_zero_contexts_follow_the_task() {
        let mut c = Contexts::new(ContextKind::Onehot, 784, 3);
        assert_eq!(c.learn(1, &[]), [0.0, 1.0, 0.0]);
        assert_eq!(c.infer(2, &[]).0, [0.0, 0.0, 1.0]);
        let z = Contexts::new(ContextKind::Zeros, 784, 3);
        assert_eq!(z.infer(2, &[]).0, [0.0; 3]);
    }
}
