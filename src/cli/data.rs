//! `repro data list | fetch NAME | verify NAME`, and the fetch that `repro run` does by
//! itself for a missing registry dataset.

use indicatif::{ProgressBar, ProgressStyle};

use crate::data::fetch::fetch;
use crate::data::registry::{DatasetName, REGISTRY};
use crate::data::resolve::{self, default_fetch_dir, repro_data_env, Check};
use crate::data::DatasetParams;
use crate::pipeline::Pipeline;

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
    /// Download a dataset from its public mirrors, verifying the pinned sha256.
    Fetch {
        /// Dataset name (see `repro data list`).
        name: String,
    },
    /// Hash a dataset's files and compare them with the pinned values.
    Verify {
        /// Dataset name.
        name: String,
    },
}

/// Whether downloads are forbidden (`--offline` or `REPRO_OFFLINE=1`).
pub fn offline_from_env() -> bool {
    std::env::var("REPRO_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn parse_name(name: &str) -> Result<DatasetName, CliError> {
    name.parse::<DatasetName>().map_err(CliError::invalid)
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
            let name = parse_name(&name)?;
            let info = name
                .info()
                .ok_or_else(|| CliError::invalid("`synthetic` is generated, not downloaded"))?;
            let dir = default_fetch_dir(name, repro_data_env().as_deref());
            download(info, &dir, offline_from_env())?;
            println!("{} is in {}", name.as_str(), dir.display());
            Ok(exit::OK)
        }
        Command::Verify { name } => {
            let name = parse_name(&name)?;
            let info = name
                .info()
                .ok_or_else(|| CliError::invalid("`synthetic` has no files to verify"))?;
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

fn download(
    info: &'static crate::data::registry::DatasetInfo,
    dir: &std::path::Path,
    offline: bool,
) -> Result<(), CliError> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("fetch {prefix} [{bar:30}] {bytes}/{total_bytes} (ETA {eta})")
            .expect("template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(info.name.as_str());
    let result = fetch(info, dir, offline, &mut |done, total| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    });
    bar.finish_and_clear();
    result.map(|_| ()).map_err(|e| match e {
        crate::data::Error::Offline { .. } => CliError::invalid(e),
        other => CliError::failed(other),
    })
}

/// Before a run: fetches every registry dataset the pipeline needs that is not on
/// this machine, unless offline. Datasets that are present are left alone.
pub fn provision(pipeline: &Pipeline, offline: bool) -> Result<(), CliError> {
    for stage in &pipeline.stages {
        if stage.kind.name() != "dataset" {
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
