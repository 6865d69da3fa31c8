//! Task builders of the continual-learning experiments: how one dataset
//! becomes a sequence of tasks.
//!
//! - `permuted`: task 0 is the dataset itself, task t > 0 applies a seeded
//!   permutation to the pixels of every image; all tasks share the 10-way head.
//! - `split`: the classes are shuffled by seed and cut into tasks of
//!   `classes_per_task` classes, each relabelled 0..C-1 for a shared C-way
//!   head (`relabel: intended`, the default). `relabel: bain-in-place`
//!   replays Bain's `datasets/splitCIFAR100.py` instead: the class order of
//!   Python's `random.Random(seed).shuffle` ([`PyRandom`]), then his
//!   remapping `targets[targets == k] = j` one class after another over the
//!   one label array that every task shares, so that a class remapped to j
//!   moves again when class j's own remapping comes, and classes collide and
//!   merge (seeds 0-4 on CIFAR-100: 37 to 50 of the 100 classes end up with
//!   another label than their place in their task, and tasks keep 2 to 10
//!   distinct labels). An optional `augment` applies to the training images.
//! - `stream` (Laborieux et al.): the training set, shuffled by seed, cut
//!   into `subsets` equal parts learned one after another; every part is
//!   tested on the whole test set.
//! - `datasets`: each task is a whole dataset, in the order given (e.g.
//!   MNIST then Fashion-MNIST).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::augment::Augment;
use crate::seeds;

use super::super::ParamError;
use super::pyrandom::PyRandom;

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
        /// How classes get their labels (left out of the key when `intended`).
        #[serde(default, skip_serializing_if = "Relabel::is_intended")]
        relabel: Relabel,
        /// Random flips and affine transforms of the training images, drawn
        /// anew every epoch (Bain's; none by default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        augment: Option<Augment>,
    },
}

/// How a split gives each task's classes their labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relabel {
    /// Class i of a task gets label i: C distinct labels per task.
    #[default]
    Intended,
    /// Bain's class order and sequential in-place remapping, with its collisions.
    BainInPlace,
}

impl Relabel {
    /// Whether this is the default (then it is not serialized, so the keys of
    /// stages written before the option existed stay as they were).
    fn is_intended(&self) -> bool {
        *self == Relabel::Intended
    }
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
            TaskSpec::Split {
                augment: Some(a), ..
            } => a
                .validate()
                .map_err(|e| ParamError::new("tasks.split.augment", e)),
            _ => Ok(()),
        }
    }

    /// The training-image augmentation, if any.
    pub fn augment(&self) -> Option<&Augment> {
        match self {
            TaskSpec::Split { augment, .. } => augment.as_ref(),
            _ => None,
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
    /// Bain's in-place relabelling: each task's original classes in his
    /// order, and the label each of them ends up with.
    SplitInPlace {
        /// Per task, its classes.
        classes: Vec<Vec<u8>>,
        /// Per task, the label of each of its classes.
        labels: Vec<Vec<u8>>,
    },
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
                relabel,
                ..
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
                let mut order: Vec<u8> = (0..classes).map(|c| c as u8).collect();
                let kind = match relabel {
                    Relabel::Intended => {
                        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seeds::derive(
                            seed, "split", 0,
                        )));
                        let groups = order.chunks(classes_per_task).take(count);
                        Kind::Split(groups.map(<[u8]>::to_vec).collect())
                    }
                    Relabel::BainInPlace => {
                        PyRandom::new(seed).shuffle(&mut order);
                        let groups: Vec<Vec<u8>> = order
                            .chunks_exact(classes_per_task)
                            .map(<[u8]>::to_vec)
                            .collect();
                        let mut labels = relabel_in_place(&groups, classes);
                        labels.truncate(count);
                        let mut classes = groups;
                        classes.truncate(count);
                        Kind::SplitInPlace { classes, labels }
                    }
                };
                Ok(TaskSet {
                    kind,
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
            Kind::SplitInPlace { classes, .. } => classes.len(),
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
            Kind::Split(groups) => split_task(&groups[t], None, x, y, features),
            Kind::SplitInPlace { classes, labels } => {
                split_task(&classes[t], Some(&labels[t]), x, y, features)
            }
        }
    }

    /// For Bain's in-place relabelling: how many of the tasks' classes carry
    /// another label than their place in their task, and how many distinct
    /// labels each task keeps (`None` for other task sets).
    pub fn collisions(&self) -> Option<(usize, Vec<usize>)> {
        let Kind::SplitInPlace { labels, .. } = &self.kind else {
            return None;
        };
        let wrong = labels
            .iter()
            .flat_map(|task| task.iter().enumerate().filter(|&(j, &l)| l as usize != j))
            .count();
        let distinct = labels
            .iter()
            .map(|task| {
                let mut d = task.clone();
                d.sort_unstable();
                d.dedup();
                d.len()
            })
            .collect();
        Some((wrong, distinct))
    }
}

/// The examples of a split task's classes `group`, each labelled with its
/// class's place in the group, or with `labels` of that place when given.
fn split_task(
    group: &[u8],
    labels: Option<&[u8]>,
    x: &[f32],
    y: &[u8],
    features: usize,
) -> TaskData {
    let mut out = TaskData {
        x: Vec::new(),
        y: Vec::new(),
    };
    for (row, &label) in x.chunks(features).zip(y) {
        if let Some(j) = group.iter().position(|&c| c == label) {
            out.x.extend_from_slice(row);
            out.y.push(labels.map_or(j as u8, |l| l[j]));
        }
    }
    out
}

/// Bain's remapping: for every task in order, for every class k at place j
/// of it, `targets[targets == k] = j` over the one label array all tasks
/// share (his `make_loaders` remaps every task before any trains). All
/// examples of a class carry one value throughout, so following one value
/// per class is the same; returns each group's classes' final labels.
fn relabel_in_place(groups: &[Vec<u8>], classes: usize) -> Vec<Vec<u8>> {
    let mut value: Vec<u8> = (0..classes).map(|c| c as u8).collect();
    for group in groups {
        for (j, &k) in group.iter().enumerate() {
            for v in value.iter_mut().filter(|v| **v == k) {
                *v = j as u8;
            }
        }
    }
    groups
        .iter()
        .map(|g| g.iter().map(|&c| value[c as usize]).collect())
        .collect()
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
            relabel: Relabel::Intended,
            augment: None,
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
            relabel: Relabel::Intended,
            augment: None,
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

    fn bain(classes_per_task: usize, count: Option<usize>) -> TaskSpec {
        TaskSpec::Split {
            classes_per_task,
            count,
            relabel: Relabel::BainInPlace,
            augment: None,
        }
    }

    /// Bain's loop replayed in Python (CPython 3.11.7, on a label array of 3
    /// examples per class), as in his `make_loaders`:
    /// `all_labels = list(range(10)); random.Random(seed).shuffle(all_labels)`,
    /// groups of 2, then for each group i and place j, class k:
    /// `targets = [j if t == k else t for t in targets]`. Seed 0 orders the
    /// classes 7 8 | 1 5 | 3 4 | 2 0 | 9 6; the remapping sends 7→0 and 8→1,
    /// then 1→0 takes class 8's examples (now at 1) along, and so on until
    /// 0→1 (class 0, second of task 4) moves everything then at 0 to 1: the
    /// first four tasks end with one label each.
    #[test]
    fn bain_in_place_relabelling_collides_as_his_loop_does() {
        let set = TaskSet::new(&bain(2, None), 10, 1, 10, 0).unwrap();
        let Kind::SplitInPlace { classes, labels } = &set.kind else {
            panic!("an in-place split");
        };
        assert_eq!(classes, &[[7, 8], [1, 5], [3, 4], [2, 0], [9, 6]]);
        assert_eq!(labels, &[[1, 1], [1, 1], [1, 1], [1, 1], [0, 1]]);
        assert_eq!(set.collisions(), Some((4, vec![1, 1, 1, 1, 2])));
        // Examples carry their class's final label.
        let x: Vec<f32> = (0..10).map(|c| c as f32).collect();
        let y: Vec<u8> = (0..10).collect();
        let task = set.task(4, Part::Train, &x, &y, 1);
        assert_eq!((task.x, task.y), (vec![6.0, 9.0], vec![1, 0]));
        // Seeds 1 and 2 (Python: the same loop).
        let of = |seed| TaskSet::new(&bain(2, None), 10, 1, 10, seed).unwrap();
        assert_eq!(of(1).collisions(), Some((4, vec![1, 1, 1, 1, 2])));
        assert_eq!(of(2).collisions(), Some((5, vec![1, 1, 1, 1, 1])));
        // `count` cuts the tasks trained, not the remapping of the others.
        let two = TaskSet::new(&bain(2, Some(2)), 10, 1, 10, 0).unwrap();
        assert_eq!(two.collisions(), Some((2, vec![1, 1])));
        let intended = TaskSpec::Split {
            classes_per_task: 2,
            count: None,
            relabel: Relabel::Intended,
            augment: None,
        };
        assert_eq!(
            TaskSet::new(&intended, 10, 1, 10, 0).unwrap().collisions(),
            None
        );
    }

    /// Split CIFAR-100 as Bain ran it (10 tasks of 10, seeds 0-4): the
    /// mislabelled classes and distinct labels per task that the Python
    /// replay of his loop gives (100 classes, 3 examples each).
    #[test]
    fn bain_in_place_on_cifar100_mislabels_37_to_50_classes() {
        let expected: [(usize, [usize; 10]); 5] = [
            (37, [6, 6, 6, 6, 6, 6, 8, 9, 9, 9]),
            (44, [5, 5, 5, 5, 6, 6, 6, 6, 7, 10]),
            (38, [2, 5, 6, 6, 6, 6, 7, 7, 8, 9]),
            (45, [4, 4, 4, 4, 4, 5, 6, 8, 8, 10]),
            (50, [5, 5, 5, 5, 5, 5, 6, 6, 8, 10]),
        ];
        for (seed, (wrong, distinct)) in expected.into_iter().enumerate() {
            let set = TaskSet::new(&bain(10, None), 100, 1, 100, seed as u64).unwrap();
            assert_eq!(
                set.collisions(),
                Some((wrong, distinct.to_vec())),
                "seed {seed}"
            );
        }
        let set = TaskSet::new(&bain(10, None), 100, 1, 100, 0).unwrap();
        let Kind::SplitInPlace { classes, labels } = &set.kind else {
            panic!("an in-place split");
        };
        assert_eq!(classes[0], [23, 8, 11, 7, 48, 13, 1, 91, 94, 54]);
        assert_eq!(labels[0], [7, 1, 6, 2, 2, 6, 1, 7, 8, 4]);
        assert_eq!(labels[9], [0, 1, 2, 3, 4, 6, 6, 7, 8, 9]);
    }
}
