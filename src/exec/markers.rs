//! The markers a job script writes into its job directory, `started` when it begins and
//! `finished` (exit code, ending signal) when it ends, read together with the job's Slurm output:
//! how a job ended without asking Slurm. Slurm's and the local executor's jobs write the same
//! files, so status, the local executor and collect all read them here.

use std::path::Path;

use crate::job_state::JobState;

/// What a finished marker says: exit code and the signal that ended the script, if any.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finished {
    pub slurm_job_id: String,
    pub exit_code: i32,
    pub signal: String,
    /// Slurm's restart count of the attempt that wrote it (0 in markers of older templates).
    pub restart_count: u32,
}

pub(crate) fn read_finished(job_dir: &Path) -> Option<Finished> {
    let text = std::fs::read_to_string(job_dir.join("finished")).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|s| s.trim().to_string())
    };
    Some(Finished {
        slurm_job_id: get("slurm_job_id=")?,
        exit_code: get("exit_code=")?.parse().ok()?,
        signal: get("signal=").unwrap_or_default(),
        restart_count: get("restart_count=")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    })
}

/// What the job's Slurm output says about how it ended: slurmstepd's and srun's own messages.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LogVerdict {
    pub time_limit: bool,
    pub node_failure: bool,
    pub preempted: bool,
    pub batch_oom: bool,
    pub step_oom: bool,
}

pub(crate) fn scan_slurm_output(job_dir: &Path, slurm_id: &str) -> LogVerdict {
    use std::io::BufRead;
    let mut v = LogVerdict::default();
    let Ok(f) = std::fs::File::open(job_dir.join(format!("slurm-{slurm_id}.out"))) else {
        return v;
    };
    for line in std::io::BufReader::new(f)
        .split(b'\n')
        .map_while(|l| l.ok())
    {
        let l = String::from_utf8_lossy(&line);
        if l.contains("DUE TO TIME LIMIT") {
            v.time_limit = true;
        }
        if l.contains("DUE TO NODE FAILURE") || l.contains("srun: error: Node failure on") {
            v.node_failure = true;
        }
        if l.contains("DUE TO PREEMPTION") {
            v.preempted = true;
        }
        if l.contains("oom-kill event") {
            if l.contains(".batch") {
                v.batch_oom = true;
            } else {
                v.step_oom = true;
            }
        }
        if l.contains(": Out Of Memory") {
            v.step_oom = true;
        }
    }
    v
}

/// The job's end as its finished marker and its Slurm output tell it: (state, step OOM).
pub(crate) fn state_from_marker(job_dir: &Path, f: &Finished) -> (JobState, bool) {
    let v = scan_slurm_output(job_dir, &f.slurm_job_id);
    let state = if v.batch_oom {
        JobState::OutOfMemory
    } else if v.node_failure {
        JobState::NodeFail
    } else if v.time_limit {
        JobState::Timeout
    } else if v.preempted {
        JobState::Preempted
    } else if !f.signal.is_empty() {
        JobState::Cancelled
    } else if f.exit_code == 0 {
        JobState::Completed
    } else {
        JobState::Failed
    };
    (state, v.step_oom)
}

/// The Slurm id a job's `started` marker records, if the job got that far.
pub(crate) fn started_id(job_dir: &Path) -> Option<String> {
    started_field(job_dir, "slurm_job_id=")
}

/// Slurm's restart count of the attempt that last started (`SLURM_RESTART_COUNT`), if any.
pub(crate) fn started_restarts(job_dir: &Path) -> Option<u32> {
    started_field(job_dir, "restart_count=")?.parse().ok()
}

fn started_field(job_dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(job_dir.join("started")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_messages_decide_how_a_job_ended() {
        let dir = tempfile::tempdir().unwrap();
        let f = Finished {
            slurm_job_id: "7".into(),
            exit_code: 143,
            signal: "TERM".into(),
            restart_count: 0,
        };
        assert_eq!(state_from_marker(dir.path(), &f).0, "CANCELLED");
        let ok = Finished {
            slurm_job_id: "7".into(),
            exit_code: 0,
            signal: String::new(),
            restart_count: 0,
        };
        assert_eq!(state_from_marker(dir.path(), &ok).0, "COMPLETED");
    }
}
