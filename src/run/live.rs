//! The live set of `repro gc`: every key that a kept pipeline reaches.
//!
//! A key is live when some kept pipeline, under its default settings or any of its
//! profiles, plans to that key with a valid record. Reading only: [`crate::store::gc`]
//! removes the rest.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::pipeline::{Pipeline, Selection};
use crate::store::filecache::FileDigests;
use crate::store::Store;

use super::plan::plan;

/// Errors while finding the live set.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kept pipeline does not load.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::Error),
    /// Planning one failed.
    #[error(transparent)]
    Plan(#[from] super::plan::Error),
}

/// The keys with valid records that `pipelines` reach under any of their profiles.
pub fn live_keys(
    store: &Store,
    files: &FileDigests,
    pipelines: &[PathBuf],
) -> Result<BTreeSet<String>, Error> {
    let mut live = BTreeSet::new();
    for path in pipelines {
        let base = Pipeline::load(path, &Selection::default())?;
        let mut selections = vec![Selection::default()];
        selections.extend(base.profiles.iter().map(|p| Selection {
            profile: Some(p.clone()),
            ..Selection::default()
        }));
        for selection in selections {
            let pipeline = Pipeline::load(path, &selection)?;
            for (_, a) in plan(store, files, &pipeline)? {
                if let Some(r) = a.record {
                    live.insert(r.key);
                }
            }
        }
    }
    Ok(live)
}
