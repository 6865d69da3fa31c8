//! `kind: dataset`: resolves (or generates) a dataset, applies the validation hold-out
//! and limits, and stores the prepared splits as the stage's output.
//!
//! The source files' sha256 enter the stage key (through [`TypedStage::sources`]), so
//! a changed file invalidates everything downstream; the prepared splits are stored as
//! uncompressed IDX files plus `meta.json`, which downstream stages load directly.

use std::path::PathBuf;

use serde_json::json;

use crate::data::{self, resolve, Dataset, DatasetParams};

use super::{Error, Metrics, Result, StageContext, TypedStage};

/// The `dataset` stage kind.
pub struct DatasetStage;

impl TypedStage for DatasetStage {
    const NAME: &'static str = "dataset";
    const VERSION: u32 = 1;
    type Params = DatasetParams;

    fn sources(params: &DatasetParams) -> Result<Vec<(String, PathBuf)>> {
        let Some(info) = params.name.info() else {
            return Ok(Vec::new());
        };
        let resolved = resolve::resolve(info, params.path.as_deref()).map_err(data_error)?;
        Ok(resolved
            .files
            .iter()
            .map(|f| {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, f.clone())
            })
            .collect())
    }

    fn run(params: &DatasetParams, ctx: &StageContext) -> Result<Metrics> {
        ctx.progress.update(0, 2, "reading");
        let dataset = data::prepare(params, ctx.seed).map_err(data_error)?;
        ctx.progress.update(1, 2, "writing");
        dataset.save(&ctx.out_dir).map_err(data_error)?;
        ctx.progress.update(2, 2, "done");
        Ok(Metrics::from([
            ("train_examples".to_string(), json!(dataset.train.len())),
            (
                "validation_examples".to_string(),
                json!(dataset.validation.as_ref().map_or(0, |v| v.len())),
            ),
            ("test_examples".to_string(), json!(dataset.test.len())),
            ("classes".to_string(), json!(dataset.classes)),
        ]))
    }
}

/// Loads the prepared dataset an upstream `dataset` stage stored.
pub fn load_input(ctx: &StageContext) -> Result<Dataset> {
    let inputs = ctx.inputs_of_kind(DatasetStage::NAME);
    match inputs.as_slice() {
        [one] => Dataset::load(&one.dir).map_err(data_error),
        [] => Err(Error::InvalidInput(format!(
            "stage `{}` needs a dataset stage (add one to its `needs`)",
            ctx.stage
        ))),
        many => Err(Error::InvalidInput(format!(
            "stage `{}` needs exactly one dataset stage, but has {}",
            ctx.stage,
            many.len()
        ))),
    }
}

/// Maps data errors: a dataset that cannot be found is the user's to fix (exit 2).
fn data_error(e: data::Error) -> Error {
    match e {
        data::Error::NotFound(ref missing) => Error::DatasetMissing {
            dataset: missing.dataset.clone(),
            message: e.to_string(),
        },
        data::Error::Offline { .. } | data::Error::Params(_) | data::Error::UnknownName { .. } => {
            Error::InvalidInput(e.to_string())
        }
        other => Error::Failed(other.to_string()),
    }
}
