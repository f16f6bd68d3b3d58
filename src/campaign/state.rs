//! Campaign state (`state.json`): which job has which Slurm id, attempts, last known state.
//! Written atomically (write, fsync, rename, fsync of the directory) under an exclusive lock, with
//! a write-ahead record before every sbatch so that a crash between sbatch and the state write
//! is reconciled from Slurm by job name instead of submitting twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::job_state::JobState;

pub use crate::layout::{LOCK, STATE};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    #[serde(default = "format")]
    pub format: u32,
    #[serde(default)]
    pub jobs: BTreeMap<String, JobRecord>,
}

fn format() -> u32 {
    1
}

/// Everything known about one campaign job.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    /// The Slurm job id of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_id: Option<String>,
    /// Slurm's submit time of that id: with the id and the name, the job's identity (ids are
    /// reused after a controller restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_time: Option<String>,
    /// Write-ahead record: set before sbatch runs, cleared once its id is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_submit: Option<PendingSubmit>,
    #[serde(default)]
    pub attempts: u32,
    /// Last known Slurm state (PENDING, RUNNING, COMPLETED, ... or sweep's `lost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A step that ran out of memory (the job itself may still read COMPLETED or FAILED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_oom: Option<bool>,
    /// Slurm's message when sbatch rejected the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// `local` when the local executor ran the job (its id is then sweep's, not Slurm's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// Earlier attempts (a resubmitted job keeps their ids here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastAttempt>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingSubmit {
    /// When the record was written (UTC, `YYYY-MM-DDTHH:MM:SS`), bounding the reconcile query.
    pub since: String,
    pub name: String,
    /// The same moment in Unix seconds.
    #[serde(default)]
    pub at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PastAttempt {
    pub slurm_id: String,
    pub state: Option<JobState>,
}

impl JobRecord {
    pub fn is_terminal(&self) -> bool {
        self.state.as_ref().is_some_and(JobState::is_terminal)
    }
}

/// An exclusive lock on the campaign directory, held while state is read, changed and written.
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!("waiting for another sweep process on {} ...", dir.display());
                file.lock()
                    .with_context(|| format!("locking {}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        Ok(Lock { _file: file })
    }
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE)
    }

    pub fn load(dir: &Path) -> Result<State> {
        let p = Self::path(dir);
        // Bytes, not text: random bytes get the same "corrupt" hint as bad JSON.
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is corrupt; it was written atomically, so this is not a crash of sweep: inspect it by hand", p.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State { format: 1, jobs: BTreeMap::new() }),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// Atomic replace: a reader (or a crash) sees the old file or the new one, never a mix.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = Self::path(dir);
        let tmp = dir.join(format!(".{STATE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self)?;
        {
            let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
            f.write_all(&bytes)?;
            f.write_all(b"\n")?;
            f.sync_all()
                .with_context(|| format!("fsync {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &p)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        if let Ok(d) = File::open(dir) {
            // The rename is durable only once the directory entry is on disk.
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn job(&mut self, id: &str) -> &mut JobRecord {
        self.jobs.entry(id.to_string()).or_default()
    }
}

/// UTC now as `YYYY-MM-DDTHH:MM:SS`, the format sacct takes for `--starttime`.
pub fn now_utc() -> String {
    utc_from_unix(now_unix())
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn utc_from_unix(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Refuses to run against a directory that is not a campaign.
pub fn ensure_campaign(dir: &Path) -> Result<()> {
    if !dir.join(crate::layout::MANIFEST).exists() {
        bail!(
            "{} is not a campaign directory (no {}; run `sweep expand` first)",
            dir.display(),
            crate::layout::MANIFEST
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00");
        assert_eq!(utc_from_unix(1_795_000_000), "2026-11-18T11:06:40");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29T00:00:00");
    }

    #[test]
    fn save_is_atomic_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::load(d.path()).unwrap();
        s.job("a").slurm_id = Some("12".into());
        s.save(d.path()).unwrap();
        assert_eq!(State::load(d.path()).unwrap(), s);
        assert!(!d.path().join(".state.json.tmp").exists());
    }

    #[test]
    fn state_files_of_every_kind_of_state_are_written_back_byte_for_byte() {
        // Slurm's words, sweep's own, an unnormalized word and one no Slurm of today prints.
        let text = r#"{
  "format": 1,
  "jobs": {
    "a": {
      "slurm_id": "12",
      "attempts": 2,
      "state": "COMPLETED",
      "exit_code": "0:0",
      "history": [
        {
          "slurm_id": "11",
          "state": "NODE_FAIL"
        },
        {
          "slurm_id": "10",
          "state": null
        }
      ]
    },
    "b": {
      "slurm_id": "3",
      "attempts": 1,
      "state": "lost",
      "reason": "left the queue",
      "executor": "local"
    },
    "c": {
      "slurm_id": "4",
      "attempts": 1,
      "state": "CANCELLED by 0"
    },
    "d": {
      "slurm_id": "5",
      "attempts": 1,
      "state": "LAUNCH_FAILED"
    },
    "e": {
      "attempts": 0,
      "last_error": "sbatch: error: invalid partition"
    }
  }
}
"#;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(State::path(d.path()), text).unwrap();
        let s = State::load(d.path()).unwrap();
        assert_eq!(s.jobs["a"].state, Some(JobState::Completed));
        assert_eq!(s.jobs["b"].state, Some(JobState::Lost));
        assert!(s.jobs["c"].is_terminal() && !s.jobs["d"].is_terminal());
        s.save(d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(State::path(d.path())).unwrap(),
            text
        );
    }
}
