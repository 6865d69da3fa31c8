//! `repro`: declarative, cached, content-hashed pipelines that reproduce papers
//! on biologically inspired deep learning.

pub mod nn;
