//! Task builders of the continual-learning experiments: how one dataset
//! becomes a sequence of tasks.
//!
//! - `permuted`: task 0 is the dataset itself, task t > 0 applies a seeded
//!   permutation to the pixels of every image; all tasks share the 10-way head.
//! - `split`: the classes are shuffled by seed and cut into tasks of
//!   `classes_per_task` classes, each relabelled 0..C-1 for a shared C-way
//!   head. Bain's split-CIFAR-100 code relabels in place on the shared
//!   targets, so classes collide and merge; this builds the intended split.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::seeds;

use super::super::ParamError;

/// How the tasks are made (`tasks:` in the pipeline file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum TaskSpec {
    /// `{permuted: {count: 10}}`.
    Permuted {
        /// Number of tasks.
        count: usize,
    },
    /// `{split: {classes_per_task: 2}}`.
    Split {
        /// Classes in each task (the width of the shared head).
        classes_per_task: usize,
        /// Number of tasks; default: as many as the classes allow.
        #[serde(default)]
        count: Option<usize>,
    },
}

impl TaskSpec {
    /// Checks what can be checked without the dataset.
    pub fn validate(&self) -> Result<(), ParamError> {
        match self {
            TaskSpec::Permuted { count: 0 } => {
                Err(ParamError::new("tasks.permuted.count", "must be at least 1"))
            }
            TaskSpec::Split {
                classes_per_task: 0,
                ..
            } => Err(ParamError::new(
                "tasks.split.classes_per_task",
                "must be at least 1",
            )),
            TaskSpec::Split { count: Some(0), .. } => {
                Err(ParamError::new("tasks.split.count", "must be at least 1"))
            }
            _ => Ok(()),
        }
    }
}

/// What tells one task's examples from another's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// One pixel permutation per task (`None`: the identity).
    Permuted(Vec<Option<Vec<u32>>>),
    /// The original classes of each task, in label order.
    Split(Vec<Vec<u8>>),
}

/// A task sequence built for one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSet {
    kind: Kind,
    classes: usize,
}

/// Examples of one task: features (N × features) and labels.
pub struct TaskData {
    /// Features, row-major.
    pub x: Vec<f32>,
    /// Labels below [`TaskSet::classes`].
    pub y: Vec<u8>,
}

impl TaskSet {
    /// Builds the tasks for a dataset with `classes` classes and `features`
    /// values per example; the permutations or class order come from `seed`.
    pub fn new(
        spec: &TaskSpec,
        classes: usize,
        features: usize,
        seed: u64,
    ) -> Result<TaskSet, String> {
        match *spec {
            TaskSpec::Permuted { count } => {
                let perms = (0..count)
                    .map(|t| {
                        (t > 0).then(|| {
                            let mut p: Vec<u32> = (0..features as u32).collect();
                            let s = seeds::derive(seed, "permutation", t as u64);
                            p.shuffle(&mut ChaCha8Rng::seed_from_u64(s));
                            p
                        })
                    })
                    .collect();
                Ok(TaskSet {
                    kind: Kind::Permuted(perms),
                    classes,
                })
            }
            TaskSpec::Split {
                classes_per_task,
                count,
            } => {
                let most = classes / classes_per_task;
                let count = count.unwrap_or(most);
                if count > most || count == 0 {
                    return Err(format!(
                        "tasks.split: {count} tasks of {classes_per_task} classes need {} classes, \
                         the dataset has {classes}",
                        count * classes_per_task
                    ));
                }
                let mut order: Vec<u8> = (0..classes as u8).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(seeds::derive(
                    seed, "split", 0,
                )));
                let groups = order
                    .chunks(classes_per_task)
                    .take(count)
                    .map(<[u8]>::to_vec)
                    .collect();
                Ok(TaskSet {
                    kind: Kind::Split(groups),
                    classes: classes_per_task,
                })
            }
        }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Permuted(p) => p.len(),
            Kind::Split(g) => g.len(),
        }
    }

    /// Width of the shared output head.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Task `t`'s examples among `x` (N × `features`) with labels `y`.
    pub fn task(&self, t: usize, x: &[f32], y: &[u8], features: usize) -> TaskData {
        match &self.kind {
            Kind::Permuted(perms) => match &perms[t] {
                None => TaskData {
                    x: x.to_vec(),
                    y: y.to_vec(),
                },
                Some(p) => {
                    let mut out = Vec::with_capacity(x.len());
                    for row in x.chunks(features) {
                        out.extend(p.iter().map(|&i| row[i as usize]));
                    }
                    TaskData {
                        x: out,
                        y: y.to_vec(),
                    }
                }
            },
            Kind::Split(groups) => {
                let group = &groups[t];
                let mut out = TaskData {
                    x: Vec::new(),
                    y: Vec::new(),
                };
                for (row, &label) in x.chunks(features).zip(y) {
                    if let Some(new) = group.iter().position(|&c| c == label) {
                        out.x.extend_from_slice(row);
                        out.y.push(new as u8);
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_tasks_keep_task_zero_and_permute_the_others() {
        let spec = TaskSpec::Permuted { count: 3 };
        let set = TaskSet::new(&spec, 10, 4, 7).unwrap();
        let x = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0];
        let y = [3, 9];
        assert_eq!(set.task(0, &x, &y, 4).x, x);
        let t1 = set.task(1, &x, &y, 4);
        let t2 = set.task(2, &x, &y, 4);
        assert_eq!(t1.y, y);
        let mut sorted = t1.x[..4].to_vec();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, [0.0, 1.0, 2.0, 3.0]);
        // Both examples get the same permutation, different per task.
        assert_eq!(t1.x[4..].iter().map(|v| v - 10.0).collect::<Vec<_>>(), t1.x[..4]);
        assert_ne!(t1.x, t2.x);
        assert_eq!(set, TaskSet::new(&spec, 10, 4, 7).unwrap());
    }

    #[test]
    fn split_tasks_partition_the_classes_and_relabel_without_collisions() {
        let spec = TaskSpec::Split {
            classes_per_task: 2,
            count: None,
        };
        let set = TaskSet::new(&spec, 10, 1, 0).unwrap();
        assert_eq!((set.len(), set.classes()), (5, 2));
        let x: Vec<f32> = (0..10).map(|c| c as f32).collect();
        let y: Vec<u8> = (0..10).collect();
        let mut seen = Vec::new();
        for t in 0..5 {
            let d = set.task(t, &x, &y, 1);
            // Each task has both of its classes, relabelled 0 and 1.
            let mut labels = d.y.clone();
            labels.sort();
            assert_eq!(labels, [0, 1]);
            seen.extend(d.x.iter().map(|&v| v as u8));
        }
        seen.sort();
        assert_eq!(seen, y);
        let too_many = TaskSpec::Split {
            classes_per_task: 3,
            count: Some(4),
        };
        assert!(TaskSet::new(&too_many, 10, 1, 0).is_err());
    }
}
