//! Integration tests: the real `repro` binary on real (small) pipelines.
//!
//! - `validation`: invalid pipelines and arguments (exit 2, messages);
//! - `caching`: what reruns when something changes, and why;
//! - `data`: planning without datasets, `repro data import`;
//! - `continual`: dendrites and metaplasticity, quick profiles and small settings;
//! - `fuzz`: seeded mutations of pipeline, IDX and CIFAR files (no panic, exit 0/1/2);
//! - `kill`: SIGKILLs at every prune round boundary and at random moments;
//! - `metrics`: `repro metrics` in every format, comparisons, and the run summary;
//! - `remote`: `repro push`, `repro pull` and `run --remote` (a shared cache);
//! - `safety`: inputs from the fault campaign that once deleted files or crashed;
//! - `science`: pruning and noise robustness on small settings;
//! - `slurm`: `--executor slurm` on a real single-node Slurm (skipped without one);
//! - `store`: integrity, locking, gc;
//! - `training`: the train stage: accuracy, determinism, dependants, crashes.

mod caching;
mod continual;
mod data;
mod fuzz;
mod kill;
mod metrics;
mod remote;
mod safety;
mod science;
mod slurm;
mod store;
mod training;
mod util;
mod validation;
