//! Task builders of the continual-learning experiments: how one dataset
//! becomes a sequence of tasks.
//!
//! - `permuted`: task 0 is the dataset itself, task t > 0 applies a seeded
//!   permutation to the pixels of every image; all tasks share the 10-way head.
//! - `split`: the classes are shuffled by seed and cut into tasks of
//!   `classes_per_task` classes, each relabelled 0..C-1 for a shared C-way
//!   head. Bain's split-CIFAR-100 code relabels in place on the shared
//!   targets, so classes collide and merge; this builds the intended split.
//! - `stream` (Laborieux et al.): the training set, shuffled by seed, cut
//!   into `subsets` equal parts learned one after another; every part is
//!   tested on the whole test set.
//! - `datasets`: each task is a whole dataset, in the order given (e.g.
//!   MNIST then Fashion-MNIST).

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
        /// Permute task 0 too (Laborieux et al.); by default it is the
        /// unpermuted dataset (Numenta, Bain).
        #[serde(default)]
        permute_first: bool,
    },
    /// `{stream: {subsets: 60}}`.
    Stream {
        /// Number of equal parts of the training set.
        subsets: usize,
    },
    /// `{datasets: [mnist, fmnist]}`: the dataset stages, one task each.
    Datasets(Vec<String>),
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
            TaskSpec::Permuted { count, .. } if !(1..=MAX_TASKS).contains(count) => {
                Err(ParamError::new(
                    "tasks.permuted.count",
                    format!("must be in 1..={MAX_TASKS} (each task keeps a permutation and a row of the accuracy matrix)"),
                ))
            }
            TaskSpec::Stream { subsets } if !(1..=MAX_TASKS).contains(subsets) => {
                Err(ParamError::new(
                    "tasks.stream.subsets",
                    format!("must be in 1..={MAX_TASKS}"),
                ))
            }
            TaskSpec::Datasets(d) if d.is_empty() => Err(ParamError::new(
                "tasks.datasets",
                "must name at least one dataset stage",
            )),
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

/// Most tasks a sequence may have: ten times the papers' largest (100 permuted tasks).
pub const MAX_TASKS: usize = 1000;

/// What tells one task's examples from another's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// One pixel permutation per task (`None`: the identity).
    Permuted(Vec<Option<Vec<u32>>>),
    /// The original classes of each task, in label order.
    Split(Vec<Vec<u8>>),
    /// The training examples of each task (indices into the training split).
    Stream(Vec<Vec<u32>>),
    /// Task t is the whole t-th dataset.
    Datasets(usize),
}

/// Which split of the data a task's examples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The training split.
    Train,
    /// The validation or test split.
    Held,
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
    /// Builds the tasks for a dataset with `classes` classes, `features`
    /// values per example and `train_len` training examples; permutations,
    /// class order and stream order come from `seed`.
    pub fn new(
        spec: &TaskSpec,
        classes: usize,
        features: usize,
        train_len: usize,
        seed: u64,
    ) -> Result<TaskSet, String> {
        match *spec {
            TaskSpec::Datasets(ref names) => Ok(TaskSet {
                kind: Kind::Datasets(names.len()),
                classes,
            }),
            TaskSpec::Stream { subsets } => {
                if subsets > train_len {
                    return Err(format!(
                        "tasks.stream: {subsets} subsets of {train_len} training examples would leave some empty"
                    ));
                }
                let mut order: Vec<u32> = (0..train_len as u32).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(seeds::derive(
                    seed, "stream", 0,
                )));
                let size = train_len / subsets;
                let parts = (0..subsets)
                    .map(|i| order[i * size..(i + 1) * size].to_vec())
                    .collect();
                Ok(TaskSet {
                    kind: Kind::Stream(parts),
                    classes,
                })
            }
            TaskSpec::Permuted {
                count,
                permute_first,
            } => {
                let perms = (0..count)
                    .map(|t| {
                        (t > 0 || permute_first).then(|| {
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
            Kind::Stream(s) => s.len(),
            Kind::Datasets(n) => *n,
        }
    }

    /// Whether every task is tested on the same examples (a stream), so
    /// that one evaluation serves them all.
    pub fn shares_test(&self) -> bool {
        matches!(self.kind, Kind::Stream(_))
    }

    /// Which dataset task `t` draws from (0 unless the tasks are datasets).
    pub fn source(&self, t: usize) -> usize {
        match self.kind {
            Kind::Datasets(_) => t,
            _ => 0,
        }
    }

    /// Width of the shared output head.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Task `t`'s examples among `x` (N × `features`) with labels `y`, from
    /// the split `part` of its source.
    pub fn task(&self, t: usize, part: Part, x: &[f32], y: &[u8], features: usize) -> TaskData {
        match &self.kind {
            Kind::Datasets(_) => TaskData {
                x: x.to_vec(),
                y: y.to_vec(),
            },
            Kind::Stream(parts) => match part {
                Part::Held => TaskData {
                    x: x.to_vec(),
                    y: y.to_vec(),
                },
                Part::Train => {
                    let mut out = TaskData {
                        x: Vec::with_capacity(parts[t].len() * features),
                        y: Vec::with_capacity(parts[t].len()),
                    };
                    for &i in &parts[t] {
                        let i = i as usize;
                        out.x
                            .extend_from_slice(&x[i * features..(i + 1) * features]);
                        out.y.push(y[i]);
                    }
                    out
                }
            },
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
        let spec = TaskSpec::Permuted {
            count: 3,
            permute_first: false,
        };
        let set = TaskSet::new(&spec, 10, 4, 2, 7).unwrap();
        let x = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0];
        let y = [3, 9];
        assert_eq!(set.task(0, Part::Train, &x, &y, 4).x, x);
        let t1 = set.task(1, Part::Train, &x, &y, 4);
        let t2 = set.task(2, Part::Held, &x, &y, 4);
        assert_eq!(t1.y, y);
        let mut sorted = t1.x[..4].to_vec();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, [0.0, 1.0, 2.0, 3.0]);
        // Both examples get the same permutation, different per task.
        assert_eq!(
            t1.x[4..].iter().map(|v| v - 10.0).collect::<Vec<_>>(),
            t1.x[..4]
        );
        assert_ne!(t1.x, t2.x);
        assert_eq!(set, TaskSet::new(&spec, 10, 4, 2, 7).unwrap());
    }

    #[test]
    fn split_tasks_partition_the_classes_and_relabel_without_collisions() {
        let spec = TaskSpec::Split {
            classes_per_task: 2,
            count: None,
        };
        let set = TaskSet::new(&spec, 10, 1, 10, 0).unwrap();
        assert_eq!((set.len(), set.classes()), (5, 2));
        let x: Vec<f32> = (0..10).map(|c| c as f32).collect();
        let y: Vec<u8> = (0..10).collect();
        let mut seen = Vec::new();
        for t in 0..5 {
            let d = set.task(t, Part::Train, &x, &y, 1);
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
        assert!(TaskSet::new(&too_many, 10, 1, 10, 0).is_err());
    }

    #[test]
    fn stream_parts_cover_the_training_set_once_and_share_the_test_set() {
        let set = TaskSet::new(&TaskSpec::Stream { subsets: 3 }, 10, 1, 6, 0).unwrap();
        assert!(set.shares_test());
        let x: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let y: Vec<u8> = (0..6).collect();
        let mut seen: Vec<u8> = (0..3)
            .flat_map(|t| set.task(t, Part::Train, &x, &y, 1).y)
            .collect();
        seen.sort();
        assert_eq!(seen, y);
        assert_eq!(set.task(1, Part::Held, &x, &y, 1).y, y);
        let first = TaskSpec::Permuted {
            count: 1,
            permute_first: true,
        };
        let set = TaskSet::new(&first, 10, 8, 1, 0).unwrap();
        let row: Vec<f32> = (0..8).map(|i| i as f32).collect();
        assert_ne!(set.task(0, Part::Train, &row, &[0], 8).x, row);
    }
}
