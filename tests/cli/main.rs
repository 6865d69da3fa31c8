//! Integration tests: the real `repro` binary on real (small) pipelines.
//!
//! - `validation`: invalid pipelines and arguments (exit 2, messages);
//! - `caching`: what reruns when something changes, and why;
//! - `store`: integrity, locking, gc;
//! - `training`: the train stage: accuracy, determinism, dependants, crashes.

mod caching;
mod store;
mod training;
mod util;
mod validation;
