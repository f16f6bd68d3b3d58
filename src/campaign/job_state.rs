//! A job's state: Slurm's words, parsed once where they enter (squeue, sacct, the job markers),
//! and sweep's own (`unsubmitted`, `rejected`, `lost`, `unknown`). Everywhere else compares these
//! typed values; state.json, the CSV tables and the JSON output carry the same words as before.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every job state code Slurm documents (squeue(1), sacct(1): JOB STATE CODES), then sweep's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobState {
    Pending,
    Running,
    Suspended,
    Completing,
    Configuring,
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    Requeued,
    RequeueHold,
    RequeueFed,
    Resizing,
    ResvDelHold,
    Revoked,
    Signaling,
    SpecialExit,
    StageOut,
    Stopped,
    /// sweep's: never submitted.
    Unsubmitted,
    /// sweep's: sbatch refused it (the message is kept as the job's reason).
    Rejected,
    /// sweep's: `submit --skip-flagged` left it unsubmitted for its plan-check errors (the
    /// reason is kept).
    Skipped,
    /// sweep's: left the queue with no finished marker and no accounting record, or its local
    /// run's sweep died and left no marker: nobody can account for it.
    Lost,
    /// sweep's: not known right now (Slurm did not answer, or an sbatch's outcome is pending).
    Unknown,
    /// A word sweep does not know (a newer Slurm's), kept as it came so that it is written back
    /// unchanged.
    Other(String),
}

/// (state, word) for every named state; `Other` is the word itself.
const WORDS: &[(JobState, &str)] = &[
    (JobState::Pending, "PENDING"),
    (JobState::Running, "RUNNING"),
    (JobState::Suspended, "SUSPENDED"),
    (JobState::Completing, "COMPLETING"),
    (JobState::Configuring, "CONFIGURING"),
    (JobState::Completed, "COMPLETED"),
    (JobState::Cancelled, "CANCELLED"),
    (JobState::Failed, "FAILED"),
    (JobState::Timeout, "TIMEOUT"),
    (JobState::NodeFail, "NODE_FAIL"),
    (JobState::Preempted, "PREEMPTED"),
    (JobState::BootFail, "BOOT_FAIL"),
    (JobState::Deadline, "DEADLINE"),
    (JobState::OutOfMemory, "OUT_OF_MEMORY"),
    (JobState::Requeued, "REQUEUED"),
    (JobState::RequeueHold, "REQUEUE_HOLD"),
    (JobState::RequeueFed, "REQUEUE_FED"),
    (JobState::Resizing, "RESIZING"),
    (JobState::ResvDelHold, "RESV_DEL_HOLD"),
    (JobState::Revoked, "REVOKED"),
    (JobState::Signaling, "SIGNALING"),
    (JobState::SpecialExit, "SPECIAL_EXIT"),
    (JobState::StageOut, "STAGE_OUT"),
    (JobState::Stopped, "STOPPED"),
    (JobState::Unsubmitted, "unsubmitted"),
    (JobState::Rejected, "rejected"),
    (JobState::Skipped, "skipped"),
    (JobState::Lost, "lost"),
    (JobState::Unknown, "unknown"),
];

impl JobState {
    /// The order `sweep status` counts states in; states not listed follow in the order met.
    pub(crate) const DISPLAY_ORDER: &[JobState] = &[
        JobState::Unsubmitted,
        JobState::Skipped,
        JobState::Rejected,
        JobState::Pending,
        JobState::Configuring,
        JobState::Running,
        JobState::Completing,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Timeout,
        JobState::OutOfMemory,
        JobState::NodeFail,
        JobState::Preempted,
        JobState::Requeued,
        JobState::BootFail,
        JobState::Deadline,
        JobState::Lost,
        JobState::Unknown,
    ];

    /// A state as Slurm's commands print it: sacct writes `CANCELLED by 0` and may append `+`
    /// to a truncated word.
    pub(crate) fn from_slurm(word: &str) -> JobState {
        JobState::from(normalize(word))
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            JobState::Other(s) => s,
            known => WORDS
                .iter()
                .find(|(s, _)| s == known)
                .map(|(_, w)| *w)
                .unwrap_or(""),
        }
    }

    /// The job has ended and will not run again by itself.
    pub(crate) fn is_terminal(&self) -> bool {
        match self {
            JobState::Completed
            | JobState::Failed
            | JobState::Cancelled
            | JobState::Timeout
            | JobState::OutOfMemory
            | JobState::NodeFail
            | JobState::Preempted
            | JobState::BootFail
            | JobState::Deadline
            | JobState::Revoked
            | JobState::SpecialExit
            | JobState::Lost => true,
            // A word that reached state.json unnormalized (by hand, say) still counts as the
            // state Slurm meant, as it always did.
            JobState::Other(s) => Self::normalized_other(s).is_some_and(|k| k.is_terminal()),
            _ => false,
        }
    }

    /// The job is still Slurm's business: it may run, or run again.
    pub(crate) fn is_active(&self) -> bool {
        match self {
            JobState::Pending
            | JobState::Configuring
            | JobState::Running
            | JobState::Completing
            | JobState::Suspended
            | JobState::Requeued
            | JobState::RequeueHold
            | JobState::RequeueFed
            | JobState::Resizing
            | JobState::ResvDelHold
            | JobState::Signaling
            | JobState::StageOut
            | JobState::Stopped => true,
            JobState::Other(s) => Self::normalized_other(s).is_some_and(|k| k.is_active()),
            _ => false,
        }
    }

    /// The named state an unnormalized word stands for (`None` when normalizing changes
    /// nothing, which also ends the recursion).
    fn normalized_other(s: &str) -> Option<JobState> {
        let n = normalize(s);
        (n != s).then(|| JobState::from(n))
    }
}

/// `CANCELLED by 0` -> `CANCELLED`, `RUNNING+` -> `RUNNING`.
fn normalize(s: &str) -> &str {
    s.split_whitespace()
        .next()
        .unwrap_or(s)
        .trim_end_matches('+')
}

impl From<&str> for JobState {
    /// Exact: the word is taken as written, an unknown one kept as `Other`.
    fn from(word: &str) -> JobState {
        WORDS
            .iter()
            .find(|(_, w)| *w == word)
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| JobState::Other(word.to_string()))
    }
}

impl FromStr for JobState {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<JobState, Self::Err> {
        Ok(JobState::from(s))
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for JobState {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for JobState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for JobState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JobState, D::Error> {
        let word = String::deserialize(d)?;
        Ok(JobState::from(word.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips() {
        for (s, w) in WORDS {
            assert_eq!(JobState::from(*w), *s);
            assert_eq!(s.to_string(), *w);
        }
        let odd = JobState::from("LAUNCH_FAILED");
        assert_eq!(odd, JobState::Other("LAUNCH_FAILED".into()));
        assert_eq!(odd.to_string(), "LAUNCH_FAILED");
        assert_eq!(
            serde_json::to_string(&JobState::from("CANCELLED by 0")).unwrap(),
            "\"CANCELLED by 0\""
        );
    }

    #[test]
    fn slurm_words_are_normalized_where_they_enter() {
        assert_eq!(JobState::from_slurm("CANCELLED by 0"), JobState::Cancelled);
        assert_eq!(JobState::from_slurm("RUNNING+"), JobState::Running);
        assert!(JobState::from("CANCELLED by 0").is_terminal());
        assert!(!JobState::Pending.is_terminal() && JobState::Pending.is_active());
        assert!(JobState::Lost.is_terminal() && !JobState::Lost.is_active());
        assert!(!JobState::Unsubmitted.is_terminal() && !JobState::Unsubmitted.is_active());
        assert!(!JobState::Other("LAUNCH_FAILED".into()).is_terminal());
    }
}
