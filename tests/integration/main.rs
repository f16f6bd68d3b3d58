//! The integration tests, one binary (as ripgrep's `tests/tests.rs`): one link of the crate and
//! its dependencies instead of one per file, and one place for the helpers they share.
//!
//! The real-Slurm tests are `slurm::*` (`cargo test --test integration slurm::`, as
//! `tests/run-all.sh` runs them against a cluster without accounting).

mod util;

mod check;
mod collect;
mod errors;
mod expand;
mod hostile;
mod local;
mod parsers_fuzz;
mod public_fixtures;
mod report;
mod slurm;
mod state_faults;
mod tables;
