//! `sweep`: benchmark campaigns on Slurm GPU clusters.
//!
//! The data's path, one folder per stage: [`plan`] reads a sweep file and a cluster profile,
//! checks them and expands them into points; [`render`] turns a point into a job script (and a
//! DeepSpeed config); [`campaign`] is the campaign directory and its state; [`exec`] runs the
//! jobs (Slurm or the local executor) and follows them; [`results`] turns their logs into typed
//! tables ([`parsers`], the `sweep-logs` crate, reads the logs), analyses and a report.
//! [`pipeline`] runs each command's steps in order, and [`cli`] is the thin command-line layer
//! over it.

pub mod campaign;
pub mod cli;
pub mod exec;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod results;

pub use sweep_logs as parsers;

// Each module also by its short name (`crate::spec`, `sweep::collect`), as the code, the tests
// and the benches name them.
pub use campaign::{job_state, layout, state};
pub use exec::{executor, local, markers, reconcile, slurm, status, submit};
pub use plan::{
    check, diag, expand, model, profile, profile_import, schedule, spec, timing, values,
};
pub(crate) use plan::{params, sets};
pub use render::dsconfig;
pub use results::{analyze, collect, report, rows};
