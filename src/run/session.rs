//! A run session: what `repro run` and `repro report` do around executing stages.
//!
//! [`Session::open`] takes the store's lock, clears what interrupted runs left in
//! `tmp/`, loads the digest cache and describes the host; [`Session::execute`] runs the
//! stale stages through the scheduler; [`Session::close`] saves the digests and copies
//! the reports. The CLI parses arguments and renders; it holds none of this.

use std::path::Path;
use std::time::Duration;

use crate::device::DeviceChoice;
use crate::pipeline::Pipeline;
use crate::provenance::Host;
use crate::stages::report::ReportStage;
use crate::stages::TypedStage;
use crate::store::filecache::FileDigests;
use crate::store::key::MissReason;
use crate::store::lock::StoreLock;
use crate::store::Store;

use super::events::RunEvent;
use super::execute::ExecEnv;
use super::materialize::materialize;
use super::plan::{plan, Status};
use super::remote::Remote;
use super::schedule::{run, Executor, RunOptions, RunSummary};

/// An open store, locked for this run, with its digest cache and the host's facts.
pub struct Session {
    store: Store,
    files: FileDigests,
    host: Host,
    _lock: StoreLock,
}

impl Session {
    /// Locks the store (waiting up to `wait` for another run) and clears `tmp/`.
    pub fn open(store: Store, pipeline: &Pipeline, wait: Duration) -> crate::store::Result<Self> {
        let lock = StoreLock::acquire(&store, wait)?;
        store.clean_tmp(&lock);
        Ok(Session {
            files: FileDigests::load(&store),
            host: Host::gather(pipeline.file.parent().unwrap_or(Path::new("."))),
            store,
            _lock: lock,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The non-report stages that have no valid cached result, with why: what a
    /// report-only session cannot make.
    pub fn missing_results(
        &self,
        pipeline: &Pipeline,
    ) -> Result<Vec<(String, Vec<MissReason>)>, super::plan::Error> {
        Ok(plan(&self.store, &self.files, pipeline)?
            .into_iter()
            .filter(|(name, a)| {
                a.status == Status::Run
                    && pipeline
                        .stage(name)
                        .is_some_and(|s| s.kind.name() != ReportStage::NAME)
            })
            .map(|(name, a)| (name, a.reasons))
            .collect())
    }

    /// Runs every stale stage of `pipeline` on `device` through `executor` (fetching
    /// what `remote` has instead), sending events to `on_event`. The digest cache is
    /// saved whether or not the run succeeds.
    pub fn execute(
        &self,
        pipeline: &Pipeline,
        device: DeviceChoice,
        options: RunOptions,
        (executor, remote): (&dyn Executor, Option<&Remote>),
        on_event: &mut dyn FnMut(RunEvent),
    ) -> Result<RunSummary, super::plan::Error> {
        let env = ExecEnv {
            store: &self.store,
            pipeline,
            device,
            host: &self.host,
            remote,
        };
        let summary = run(&env, &self.files, options, executor, on_event);
        self.files.save(&self.store)?;
        summary
    }

    /// Copies the pipeline's reports under `reports` and returns their folders.
    pub fn copy_reports(
        &self,
        pipeline: &Pipeline,
        reports: &Path,
    ) -> Result<Vec<std::path::PathBuf>, super::plan::Error> {
        let dirs = materialize(&self.store, &self.files, pipeline, reports)?;
        self.files.save(&self.store)?;
        Ok(dirs)
    }
}
