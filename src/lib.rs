//! `sweep`: benchmark campaigns on Slurm GPU clusters.
//!
//! The data's path, one module per stage: a sweep file ([`spec`]) and a cluster profile
//! ([`profile`]) are expanded into points ([`expand`]), rendered into job scripts ([`render`],
//! [`dsconfig`]) and written as a campaign directory ([`campaign`]) whose plan ([`plan`]) is
//! shown before anything runs. [`pipeline`] runs each command's steps in order, and [`cli`] is the
//! thin command-line layer over it.

pub mod analyze;
pub mod campaign;
pub mod check;
pub mod cli;
pub mod collect;
pub mod diag;
pub mod dsconfig;
pub mod executor;
pub mod expand;
pub mod job_state;
pub mod layout;
pub mod local;
pub mod markers;
pub mod model;
pub use sweep_logs as parsers;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod profile_import;
pub mod reconcile;
pub mod render;
pub mod report;
pub mod rows;
pub mod slurm;
pub mod spec;
pub mod state;
pub mod status;
pub mod submit;
pub mod values;
