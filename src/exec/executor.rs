//! Who runs a campaign's jobs: Slurm (`sweep submit`) or sweep's local executor (`sweep submit
//! --executor local`). The one home of the executor's name: it is read from a job's record here
//! and nowhere else, so submit, status and cancel ask the job's executor what it is, never
//! compare names.

use crate::state::JobRecord;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executor {
    Slurm,
    Local,
}

impl Executor {
    /// The executor that ran a job, as its record tells it. Slurm's jobs record none (their
    /// records predate the field), and a name sweep does not know is Slurm's too, as it was.
    pub(crate) fn of(record: &JobRecord) -> Executor {
        match record.executor.as_deref() {
            Some(n) if n == Executor::Local.name() => Executor::Local,
            _ => Executor::Slurm,
        }
    }

    /// The name a job's record (state.json's `executor`) and its `SWEEP_EXECUTOR` carry, the
    /// same word `--executor` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Executor::Slurm => "slurm",
            Executor::Local => "local",
        }
    }

    /// Whether Slurm knows the job: squeue and sacct can tell its state and scancel can stop
    /// it. A local job is known only to the sweep process that runs it (Ctrl-C there stops it).
    pub(crate) fn known_to_slurm(self) -> bool {
        match self {
            Executor::Slurm => true,
            Executor::Local => false,
        }
    }
}
