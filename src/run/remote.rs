//! A remote store used as a cache by `repro run --remote` and `repro pull`: which of its
//! results this machine may use, and fetching them ([`Remote`]).
//!
//! A result computed on another device or with another CPU kernel differs from ours in
//! the last bits, so it is used only when the user allows it (`--any-kernel`). Copying
//! itself (objects first, verified) is [`crate::store::remote::copy_result`].

use std::path::Path;

use serde::Serialize;

use crate::device::DeviceChoice;
use crate::pipeline::Pipeline;
use crate::store::filecache::FileDigests;
use crate::store::record::{lookup, Lookup, Manifest, StageRecord};
use crate::store::remote::{copy_result, Copied};
use crate::store::Store;

use super::plan::{plan_with, MissingData, Status};

/// A remote store, and whether results of other kernels may be used.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The remote store.
    pub store: Store,
    /// Use results computed with another device or CPU kernel.
    pub any_kernel: bool,
}

impl Remote {
    /// The remote store at `root`, which must exist (a mistyped path is an error, not
    /// a new empty cache).
    pub fn open(root: &Path, any_kernel: bool) -> Result<Remote, String> {
        if !root.join("objects").is_dir() {
            return Err(format!(
                "there is no store at {} (no objects/ folder); name a store that `repro push` wrote, or a `--store` folder",
                root.display()
            ));
        }
        let store = Store::open(root).map_err(|e| e.to_string())?;
        Ok(Remote { store, any_kernel })
    }

    /// Why a result computed as `manifest` says may not be used by a run on `device`
    /// here, if it may not.
    pub fn refuses(&self, manifest: &Manifest, device: DeviceChoice) -> Option<String> {
        if self.any_kernel {
            return None;
        }
        if manifest.device != device.name() {
            return Some(format!(
                "computed on {}, this run computes on {} (--any-kernel uses it anyway)",
                manifest.device,
                device.name()
            ));
        }
        let here = crate::nn::cpu_products();
        match &manifest.cpu_products {
            Some(there) if device == DeviceChoice::Cpu && !crate::nn::same_products(there, here) => Some(format!(
                "its products ran on {there}, this machine's run on {here}, which differ in the last bits (--any-kernel uses it anyway)"
            )),
            _ => None,
        }
    }

    /// The remote's result for `key`, copied into `local`: `Ok(None)` when the remote
    /// has none, `Err` with the reason when it has one this run may not use or that
    /// could not be copied.
    pub fn fetch(
        &self,
        local: &Store,
        key: &str,
        device: DeviceChoice,
    ) -> Result<Option<StageRecord>, String> {
        let Lookup::Found(record) = lookup(&self.store, key) else {
            return Ok(None);
        };
        if let Some(why) = self.refuses(&record.manifest, device) {
            return Err(why);
        }
        copy_result(&self.store, local, &record).map_err(|e| e.to_string())?;
        Ok(Some(*record))
    }
}

/// What a push or pull did with one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Transfer {
    /// Its result was copied.
    Copied,
    /// The target already had it.
    Present,
    /// The source has no valid result for it (under this selection).
    Absent,
    /// Not copied: computed with another device or kernel (see [`Remote::refuses`]).
    Refused {
        /// Why.
        why: String,
    },
    /// Copying it failed (the source object is damaged, the disk is full, ...).
    Failed {
        /// Why.
        why: String,
    },
}

/// Copies the results `pipeline` reaches in `from` into `to`, stage by stage, in
/// pipeline order; `refuses` may veto a record (pull checks kernels, push does not).
pub fn transfer(
    from: &Store,
    to: &Store,
    files: &FileDigests,
    pipeline: &Pipeline,
    refuses: &dyn Fn(&Manifest) -> Option<String>,
) -> Result<Vec<(String, Transfer)>, super::plan::Error> {
    Ok(plan_with(from, files, pipeline, MissingData::Provisional)?
        .into_iter()
        .map(|(name, a)| {
            let outcome = match (a.status, a.record) {
                (Status::Cached, Some(record)) => match refuses(&record.manifest) {
                    Some(why) => Transfer::Refused { why },
                    None => match copy_result(from, to, &record) {
                        Ok(Copied::Copied) => Transfer::Copied,
                        Ok(Copied::AlreadyThere) => Transfer::Present,
                        Err(e) => Transfer::Failed { why: e.to_string() },
                    },
                },
                _ => Transfer::Absent,
            };
            (name, outcome)
        })
        .collect())
}
