//! Running pipelines, split by role: [`plan`] decides what is stale and why,
//! [`schedule`] orders and parallelises, [`execute`] runs one stage and publishes it,
//! [`events`] is what they report, and [`reporter`] is the only part that prints.

pub mod events;
pub mod execute;
pub mod materialize;
pub mod plan;
pub mod reporter;
pub mod schedule;
