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
}

impl ContextKind {
    /// Length of the context vector.
    pub fn len(self, features: usize, tasks: usize) -> usize {
        match self {
            ContextKind::Prototype => features,
            ContextKind::Onehot | ContextKind::Zeros => tasks,
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
        match self.kind {
            ContextKind::Prototype => {
                let n = (x.len() / self.features).max(1);
                let mut mean = vec![0.0f64; self.features];
                for row in x.chunks(self.features) {
                    for (m, &v) in mean.iter_mut().zip(row) {
                        *m += v as f64;
                    }
                }
                let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
                self.prototypes.push(mean.clone());
                mean
            }
            ContextKind::Onehot => self.onehot(t),
            ContextKind::Zeros => vec![0.0; self.len()],
        }
    }

    /// The context of a test example of task `t`; for prototypes the nearest
    /// one, whatever `t` is. Also returns the task the context stands for.
    pub fn infer(&self, t: usize, example: &[f32]) -> (Vec<f32>, usize) {
        match self.kind {
            ContextKind::Prototype => {
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
    fn onehot_and_zero_contexts_follow_the_task() {
        let mut c = Contexts::new(ContextKind::Onehot, 784, 3);
        assert_eq!(c.learn(1, &[]), [0.0, 1.0, 0.0]);
        assert_eq!(c.infer(2, &[]).0, [0.0, 0.0, 1.0]);
        let z = Contexts::new(ContextKind::Zeros, 784, 3);
        assert_eq!(z.infer(2, &[]).0, [0.0; 3]);
    }
}
