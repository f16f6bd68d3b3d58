//! Reconciliation of write-ahead records: a job whose sbatch may have run but whose Slurm id
//! never reached state.json (sweep crashed, or sbatch timed out) is looked up by name in squeue
//! and adopted, or its record dropped, so that no job is submitted twice and no id is lost.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::campaign::Manifest;
use crate::job_state::JobState;
use crate::slurm::{QueueJob, Slurm};
use crate::state::State;

/// Adopts Slurm ids of jobs whose sbatch ran but whose id never reached the state file (a crash
/// or a timed-out sbatch), looking them up by job name in squeue, then in the job's markers.
/// A pending record that Slurm does not know is cleared: that sbatch never created a job.
pub fn reconcile(
    dir: &Path,
    m: &Manifest,
    st: &mut State,
    slurm: &Slurm,
) -> Result<Vec<(String, String)>> {
    let Some(youngest) = st
        .jobs
        .values()
        .filter_map(|j| j.pending_submit.as_ref().map(|p| p.at))
        .max()
    else {
        return Ok(Vec::new());
    };
    // An sbatch that was in flight when its sweep died lands within moments (it dies with
    // sweep, but its request may already be on the wire): give it time before looking.
    let age = crate::state::now_unix().saturating_sub(youngest);
    if age < SETTLE_S {
        std::thread::sleep(Duration::from_secs(SETTLE_S - age));
    }
    let queue = slurm.squeue(&format!("{}:", m.campaign))?;
    adopt_pending(dir, m, st, &queue, 0)
}

/// Seconds a write-ahead record must age before "not in the queue" means "never submitted".
pub const SETTLE_S: u64 = 2;

/// The part of [`reconcile`] that works on a queue listing already fetched (status reuses its
/// one squeue call).
pub fn adopt_pending(
    dir: &Path,
    m: &Manifest,
    st: &mut State,
    queue: &[QueueJob],
    min_age: u64,
) -> Result<Vec<(String, String)>> {
    let now = crate::state::now_unix();
    let pending: Vec<String> = st
        .jobs
        .iter()
        .filter(|(_, j)| {
            j.pending_submit
                .as_ref()
                .is_some_and(|p| now.saturating_sub(p.at) >= min_age)
        })
        .map(|(k, _)| k.clone())
        .collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let mut adopted = Vec::new();
    for id in pending {
        let Some(job) = m.jobs.iter().find(|j| j.id == id) else {
            continue;
        };
        let mut known: Vec<String> = st.jobs[&id]
            .history
            .iter()
            .map(|h| h.slurm_id.clone())
            .collect();
        known.extend(st.jobs[&id].slurm_id.clone());
        let job_dir = dir.join(&job.dir);
        // The newest queue entry with our name and our job directory that is not an earlier
        // attempt (the same campaign expanded twice elsewhere has the same names).
        let found = queue
            .iter()
            .filter(|q| {
                q.name == job.slurm_name
                    && !known.contains(&q.id)
                    && same_dir(&q.work_dir, &job_dir)
            })
            .max_by_key(|q| q.id.parse::<u64>().unwrap_or(0))
            .map(|q| (q.id.clone(), q.submit_time.clone()))
            .or_else(|| {
                crate::markers::started_id(&job_dir)
                    .filter(|i| !known.contains(i))
                    .map(|i| (i, String::new()))
            });
        let js = st.job(&id);
        js.pending_submit = None;
        if let Some((sid, submit)) = found {
            if let Some(old) = js.slurm_id.take() {
                js.history.push(crate::state::PastAttempt {
                    slurm_id: old,
                    state: js.state.clone(),
                });
            }
            js.slurm_id = Some(sid.clone());
            js.submit_time = (!submit.is_empty()).then_some(submit);
            js.attempts += 1;
            js.state = Some(JobState::Pending);
            adopted.push((id.clone(), sid));
        }
    }
    st.save(dir)?;
    Ok(adopted)
}

/// Whether a directory Slurm reports is the job directory we mean (either may be reached
/// through a symlink).
pub fn same_dir(reported: &str, ours: &Path) -> bool {
    let a = std::fs::canonicalize(reported).unwrap_or_else(|_| reported.into());
    let b = std::fs::canonicalize(ours).unwrap_or_else(|_| ours.to_path_buf());
    a == b
}
