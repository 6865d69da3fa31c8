//! `repro`: declarative, cached, content-hashed pipelines that reproduce papers on
//! biologically inspired deep learning.
//!
//! Data flows `pipeline` (what to run) → `run` (what is stale, in what order) →
//! `stages` (the science, on `data` and `nn`) → `store` (immutable results) →
//! `report` (figures and tables). `cli` is the thin shell around it.
#![warn(missing_docs)]

pub mod cli;
pub mod data;
pub mod device;
pub mod nn;
pub mod pipeline;
pub mod provenance;
pub mod report;
pub mod run;
pub mod seeds;
pub mod stages;
pub mod store;
pub mod suggest;
pub mod table;
