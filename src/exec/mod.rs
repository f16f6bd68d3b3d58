//! Running the jobs: Slurm or the local executor, submission, status, reconciliation and the
//! jobs' markers.

pub mod executor;
pub mod local;
pub mod markers;
pub mod reconcile;
pub mod slurm;
pub mod status;
pub mod submit;
