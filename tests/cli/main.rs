//! Integration tests: the real `repro` binary on real (small) pipelines.
//!
//! - `validation`: invalid pipelines and arguments (exit 2, messages);
//! - `caching`: what reruns when something changes, and why;
//! - `data`: planning without datasets, `repro data import`;
//! - `continual`: dendrites and metaplasticity, quick profiles and small settings;
//! - `science`: pruning and noise robustness on small settings;
//! - `store`: integrity, locking, gc;
//! - `training`: the train stage: accuracy, determinism, dependants, crashes.

mod caching;
mod continual;
mod data;
mod science;
mod store;
mod training;
mod util;
mod validation;
