//! `repro verify`: rehash every object; list the corrupt ones (exit 1 if any).

use crate::store::object::{all_objects, rehash, Health};

use super::common::StoreArgs;
use super::{exit, CliResult};

/// Arguments of `repro verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// One JSON object per object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `repro verify`.
pub fn exec(args: Args) -> CliResult {
    let store = args.store.open()?;
    let mut corrupt = 0;
    let objects = all_objects(&store)?;
    for digest in &objects {
        let health = rehash(&store, digest)?;
        let ok = health == Health::Intact;
        if !ok {
            corrupt += 1;
        }
        if args.json {
            println!(
                "{}",
                serde_json::json!({"object": digest, "status": if ok { "ok" } else { "corrupt" }})
            );
        } else if !ok {
            println!("corrupt  {}", store.object_dir(digest).display());
        }
    }
    if !args.json {
        println!("{} objects checked, {corrupt} corrupt", objects.len());
        if corrupt > 0 {
            println!("the next `repro run` redoes the stages whose objects are corrupt");
        }
    }
    Ok(if corrupt > 0 { exit::FAILED } else { exit::OK })
}
