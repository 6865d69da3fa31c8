//! Integration tests: the real `repro` binary on real (small) pipelines.
//!
//! - `validation`: invalid pipelines and arguments (exit 2, messages);
//! - `caching`: what reruns when something changes, and why;
//! - `store`: integrity, crashes, locking, gc.

mod caching;
mod store;
mod util;
mod validation;
