//! The Slurm executor: every stage that must run becomes one Slurm job, submitted as
//! soon as its inputs are final; the coordinating `repro run` alone publishes.
//!
//! - [`cluster`]: the cluster file (resources per kind and stage, polling, retries);
//! - [`job`]: a job's folder under the store's `tmp/slurm/<key>/`, and what runs in the
//!   job (`repro exec-stage`), which computes through the same code as a local run;
//! - [`queue`]: `sbatch`, one batched `squeue` per poll round, `scancel`;
//! - [`SlurmExecutor`]: submits, follows, retries and publishes.
//!
//! Success is a verified result file, never only what Slurm says. Nothing here prints.

pub mod cluster;
mod executor;
pub mod job;
pub mod queue;

pub use executor::SlurmExecutor;
