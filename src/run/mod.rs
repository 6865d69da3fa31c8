//! Running pipelines, split by role: [`plan`] decides what is stale and why,
//! [`schedule`] orders and parallelises, [`execute`] runs one stage and publishes it,
//! [`events`] is what they report, and [`reporter`] is the only part that prints
//! ([`job_groups`] sums up a Slurm run's jobs for it).
//! [`materialize`] copies reports out of the store, [`metrics`] reads every stage's
//! metrics back as one table, [`summary`] totals a run, and [`session`] is what
//! `repro run` and `repro report` do around the stages (lock, `tmp/`, digests, reports).
//! [`live`] is the set of keys `repro gc` keeps. [`slurm`] runs stages as Slurm jobs,
//! and [`remote`] uses another store's results.

pub mod events;
pub mod execute;
pub mod job_groups;
pub mod live;
pub mod materialize;
pub mod metrics;
pub mod plan;
pub mod remote;
pub mod reporter;
pub mod schedule;
pub mod session;
pub mod slurm;
pub mod summary;
