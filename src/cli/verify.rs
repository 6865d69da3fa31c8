//! `repro verify`: rehash every object and check every record; evict what is corrupt
//! so that the next `repro run` redoes the stages behind it (exit 1 if anything was
//! wrong).

use std::time::Duration;

use crate::store::lock::StoreLock;
use crate::store::object::{all_objects, check, discard, rehash, Health};
use crate::store::record::{scan, Lookup};

use super::common::StoreArgs;
use super::{exit, CliResult};

/// Arguments of `repro verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// One JSON object per object and per record on stdout.
    #[arg(long)]
    json: bool,
    /// Wait up to this many seconds for a run holding the store lock.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = super::common::parse_wait)]
    wait: Duration,
}

/// Runs `repro verify`.
pub fn exec(args: Args) -> CliResult {
    let store = args.store.open_existing()?;
    // Evicting needs the lock: a live run may be publishing.
    let _lock = StoreLock::acquire(&store, args.wait)?;
    let mut problems = 0;
    let mut evicted = std::collections::BTreeSet::new();
    let objects = all_objects(&store)?;
    for digest in &objects {
        let ok = rehash(&store, digest)? == Health::Intact;
        if !ok {
            problems += 1;
            discard(&store, digest)?;
            evicted.insert(digest.clone());
        }
        if args.json {
            let status = if ok { "ok" } else { "corrupt" };
            println!(
                "{}",
                serde_json::json!({"object": digest, "status": status})
            );
        } else if !ok {
            println!(
                "corrupt  object {} (evicted)",
                store.object_dir(digest).display()
            );
        }
    }
    let records = scan(&store)?;
    for (key, lookup) in &records {
        let status = match lookup {
            Lookup::Absent => continue,
            Lookup::Found(record) if evicted.contains(&record.output) => "object evicted",
            Lookup::Found(record) => match check(&store, &record.output)? {
                Health::Intact => "ok",
                _ => "object missing",
            },
            Lookup::Corrupt(why) => {
                let path = store.record_path(key);
                std::fs::remove_file(&path).map_err(crate::store::io_err("remove", &path))?;
                if !args.json {
                    println!("corrupt  record {why} (evicted)");
                }
                "corrupt"
            }
        };
        // A record whose object was just evicted is the same problem, counted once.
        if status != "ok" && status != "object evicted" {
            problems += 1;
        }
        if args.json {
            println!("{}", serde_json::json!({"record": key, "status": status}));
        } else if let Lookup::Found(record) = lookup {
            let what = match status {
                "object missing" => "missing ",
                "object evicted" => "evicted ",
                _ => continue,
            };
            println!(
                "{what} object {} of stage `{}` (record {key})",
                record.output, record.manifest.stage
            );
        }
    }
    if !args.json {
        println!(
            "{} objects and {} records checked, {problems} problems",
            objects.len(),
            records.len()
        );
        if problems > 0 {
            println!(
                "the next `repro run` redoes the stages whose results were corrupt or missing"
            );
        }
    }
    Ok(if problems > 0 { exit::FAILED } else { exit::OK })
}
