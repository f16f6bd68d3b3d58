//! `sweep status`: one `squeue` per poll for the whole campaign, merged with the started/finished
//! markers the jobs write (a normal job's exit code without asking Slurm) and, only for jobs that
//! left the queue without a finished marker, one date-bounded `sacct` call for all of them.

use std::path::Path;

use anyhow::Result;
use indexmap::IndexMap;
use serde::Serialize;

use crate::campaign::{Manifest, ManifestJob};
use crate::executor::Executor;
use crate::job_state::JobState;
use crate::markers::{read_finished, state_from_marker};
use crate::reconcile::{SETTLE_S, adopt_pending, same_dir};
use crate::slurm::{QueueJob, Slurm, SlurmError};
use crate::state::{Lock, State};

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub id: String,
    pub stage: String,
    pub slurm_id: Option<String>,
    /// A Slurm state, or `unsubmitted`, `rejected`, `lost`, `unknown`.
    pub state: JobState,
    pub exit_code: Option<String>,
    pub reason: Option<String>,
    /// An srun step ran out of memory (the job's own state may still be COMPLETED/FAILED).
    pub step_oom: bool,
    /// Where the state came from: squeue, marker, sacct, state (last known).
    pub source: String,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub campaign: String,
    pub jobs: Vec<JobStatus>,
    pub counts: IndexMap<JobState, usize>,
    /// `ok`, `not needed`, or why accounting could not be asked.
    pub accounting: String,
    /// Problems talking to Slurm in this poll (the report is still as right as it can be).
    pub errors: Vec<String>,
    /// Slurm commands this poll ran.
    pub slurm_calls: usize,
    pub done: bool,
}

/// One poll. Takes the campaign lock only to write what it learned.
pub(crate) fn poll(dir: &Path, slurm: &Slurm) -> Result<StatusReport> {
    crate::state::ensure_campaign(dir)?;
    let m = Manifest::load(dir)?;
    let mut errors = Vec::new();
    let mut calls = 0;
    let prefix = format!("{}:", m.campaign);
    // Jobs the local executor ran are not Slurm's: a campaign of only those asks Slurm nothing.
    let any_slurm = {
        let st = State::load(dir)?;
        st.jobs.values().any(|j| {
            (j.slurm_id.is_some() || j.pending_submit.is_some()) && Executor::of(j).known_to_slurm()
        })
    };
    let queue: Option<Vec<QueueJob>> = if !any_slurm {
        Some(Vec::new())
    } else {
        calls += 1;
        match slurm.squeue(&prefix) {
            Ok(q) => Some(q),
            Err(e) => {
                errors.push(format!("{e} (showing markers and last known states)"));
                None
            }
        }
    };
    let _lock = Lock::acquire(dir)?;
    let mut st = State::load(dir)?;
    if let Some(q) = &queue {
        adopt_pending(dir, &m, &mut st, q, SETTLE_S)?;
    }

    let mut out: Vec<JobStatus> = Vec::with_capacity(m.jobs.len());
    let mut need_acct: Vec<usize> = Vec::new();
    for job in &m.jobs {
        let js = st.jobs.get(&job.id).cloned().unwrap_or_default();
        let (s, needs_accounting) = job_status(dir, job, &js, queue.as_deref());
        if needs_accounting {
            need_acct.push(out.len());
        }
        out.push(s);
    }

    let accounting = if need_acct.is_empty() {
        "not needed".to_string()
    } else {
        calls += 1;
        ask_accounting(slurm, &m, &mut out, &need_acct, &mut errors)
    };

    // Remember what was learned; a later poll then needs no accounting for these jobs.
    if remember(&mut st, &out) {
        st.save(dir)?;
    }

    let counts = count_states(&out);
    let done = out.iter().all(|s| {
        s.state.is_terminal() || matches!(s.state, JobState::Unsubmitted | JobState::Rejected)
    });
    Ok(StatusReport {
        campaign: m.campaign,
        jobs: out,
        counts,
        accounting,
        errors,
        slurm_calls: calls,
        done,
    })
}

/// One job's status from the queue (`None`: Slurm did not answer), its finished marker and its
/// record; `true` where only accounting can tell what became of it.
fn job_status(
    dir: &Path,
    job: &ManifestJob,
    js: &crate::state::JobRecord,
    queue: Option<&[QueueJob]>,
) -> (JobStatus, bool) {
    let base = |state: JobState, source: &str| JobStatus {
        id: job.id.clone(),
        stage: job.stage.clone(),
        slurm_id: js.slurm_id.clone(),
        state,
        exit_code: js.exit_code.clone(),
        reason: js.reason.clone(),
        step_oom: js.step_oom.unwrap_or(false),
        source: source.to_string(),
    };
    let Some(sid) = js.slurm_id.clone() else {
        return (
            match (&js.last_error, &js.pending_submit) {
                (_, Some(_)) => base(JobState::Unknown, "state"),
                (Some(e), None) => {
                    let mut s = base(JobState::Rejected, "state");
                    s.reason = Some(e.clone());
                    s
                }
                (None, None) => base(JobState::Unsubmitted, "state"),
            },
            false,
        );
    };
    let job_dir = dir.join(&job.dir);
    let executor = Executor::of(js);
    if !executor.known_to_slurm() {
        // Only the executor that ran it knows it: its record, and its finished marker.
        let mut s = base(last_known(js), executor.name());
        if let Some(f) = read_finished(&job_dir).filter(|f| f.slurm_job_id == sid) {
            s.exit_code = Some(f.exit_code.to_string());
            if s.state == JobState::Running {
                s.state = state_from_marker(&job_dir, &f).0;
            }
        }
        return (s, false);
    }
    let in_queue = queue.and_then(|q| find_in_queue(q, &sid, job, &job_dir));
    let marker = read_finished(&job_dir).filter(|f| f.slurm_job_id == sid);
    let mut s = base(last_known(js), "state");
    match (in_queue, &marker) {
        (Some(q), _) => {
            s.state = q.state.clone();
            s.reason = (!q.reason.is_empty() && q.reason != "None").then(|| q.reason.clone());
            s.source = "squeue".into();
            if let Some(f) = &marker {
                s.exit_code = Some(f.exit_code.to_string());
                let (_, oom) = state_from_marker(&job_dir, f);
                s.step_oom = oom;
            }
        }
        (None, Some(f)) => {
            let (state, oom) = state_from_marker(&job_dir, f);
            s.state = state;
            s.step_oom = oom;
            s.exit_code = Some(f.exit_code.to_string());
            s.reason = None;
            s.source = "marker".into();
        }
        (None, None) => {
            if queue.is_none() {
                // Slurm did not answer: keep the last known state rather than guess.
                if !js.is_terminal() {
                    s.state = JobState::Unknown;
                }
            } else if js.is_terminal() && js.state != Some(JobState::Lost) {
                // Known from an earlier poll's accounting: no need to ask again.
            } else {
                return (s, true);
            }
        }
    }
    (s, false)
}

/// Asks accounting, in one `sacct` call, about the jobs at `need_acct` in `out`; returns how
/// that went for the report.
fn ask_accounting(
    slurm: &Slurm,
    m: &Manifest,
    out: &mut [JobStatus],
    need_acct: &[usize],
    errors: &mut Vec<String>,
) -> String {
    let ids: Vec<String> = need_acct
        .iter()
        .filter_map(|&i| out[i].slurm_id.clone())
        .collect();
    let since = since_window();
    match slurm.sacct(&ids, &since) {
        Ok(rows) => {
            for &i in need_acct {
                let sid = out[i].slurm_id.clone().unwrap_or_default();
                let job = &m.jobs[i];
                match rows
                    .iter()
                    .find(|r| r.id == sid && (r.name.is_empty() || r.name == job.slurm_name))
                {
                    Some(r) => {
                        out[i].state = r.state.clone();
                        out[i].exit_code = Some(r.exit_code.clone());
                        out[i].step_oom =
                            r.steps.iter().any(|(_, s, _)| *s == JobState::OutOfMemory);
                        out[i].source = "sacct".into();
                        out[i].reason = None;
                    }
                    None => {
                        out[i].state = JobState::Lost;
                        out[i].reason = Some(
                            "left the queue with no finished marker and no accounting record"
                                .into(),
                        );
                        out[i].source = "sacct".into();
                    }
                }
            }
            "ok".to_string()
        }
        Err(e) => {
            for &i in need_acct {
                out[i].state = JobState::Lost;
                out[i].reason = Some(format!(
                    "left the queue with no finished marker; accounting unavailable ({e})"
                ));
                out[i].source = "none".into();
            }
            if matches!(e, SlurmError::Transient { .. }) {
                errors.push(format!("{e}"));
            }
            format!("unavailable: {e}")
        }
    }
}

/// Writes what this poll learned into the campaign state; `true` where anything changed.
fn remember(st: &mut State, out: &[JobStatus]) -> bool {
    let mut changed = false;
    for s in out {
        if s.slurm_id.is_none() {
            continue;
        }
        let js = st.job(&s.id);
        let new = (
            Some(s.state.clone()),
            s.exit_code.clone(),
            s.reason.clone(),
            Some(s.step_oom),
        );
        if (
            js.state.clone(),
            js.exit_code.clone(),
            js.reason.clone(),
            js.step_oom,
        ) != new
        {
            js.state = new.0;
            js.exit_code = new.1;
            js.reason = new.2;
            js.step_oom = new.3;
            changed = true;
        }
    }
    changed
}

/// How many jobs are in each state, in display order, unlisted states last.
fn count_states(out: &[JobStatus]) -> IndexMap<JobState, usize> {
    let mut counts: IndexMap<JobState, usize> = IndexMap::new();
    for k in JobState::DISPLAY_ORDER {
        let n = out.iter().filter(|s| s.state == *k).count();
        if n > 0 {
            counts.insert(k.clone(), n);
        }
    }
    for s in out {
        if !JobState::DISPLAY_ORDER.contains(&s.state) {
            *counts.entry(s.state.clone()).or_default() += 1;
        }
    }
    counts
}

/// The state state.json last recorded, `unknown` where it has none.
fn last_known(js: &crate::state::JobRecord) -> JobState {
    js.state.clone().unwrap_or(JobState::Unknown)
}

fn find_in_queue<'q>(
    q: &'q [QueueJob],
    sid: &str,
    job: &ManifestJob,
    job_dir: &Path,
) -> Option<&'q QueueJob> {
    // Identity is id + name + directory: an id reused after a controller restart is not ours.
    q.iter().find(|e| {
        e.id == sid
            && e.name == job.slurm_name
            && (e.work_dir.is_empty() || same_dir(&e.work_dir, job_dir))
    })
}

/// sacct's default window is only today, which silently misses jobs submitted earlier: ask
/// for the last 30 days (the ids bound the query anyway).
fn since_window() -> String {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(30 * 86400))
        .unwrap_or(0);
    crate::state::utc_from_unix(start)
}

/// The `--watch` poll interval: 2 s after a change, doubling while nothing changes up to 60 s,
/// so an idle campaign costs at most two Slurm calls a minute once it has settled.
pub(crate) fn next_interval(prev: std::time::Duration, changed: bool) -> std::time::Duration {
    use std::time::Duration;
    if changed {
        Duration::from_secs(2)
    } else {
        (prev * 2).clamp(Duration::from_secs(2), Duration::from_secs(60))
    }
}

pub(crate) fn render(r: &StatusReport, all: bool) -> String {
    use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
    let mut s = String::new();
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["state", "jobs"]);
    for (k, v) in &r.counts {
        t.add_row(vec![k.to_string(), v.to_string()]);
    }
    s.push_str(&format!(
        "campaign {}: {} jobs\n{t}\n",
        r.campaign,
        r.jobs.len()
    ));
    if all || r.jobs.len() <= 100 {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(["job", "stage", "slurm id", "state", "exit", "note"]);
        for j in &r.jobs {
            let mut note = j.reason.clone().unwrap_or_default();
            if j.step_oom {
                note = format!(
                    "step OUT_OF_MEMORY{}{note}",
                    if note.is_empty() { "" } else { "; " }
                );
            }
            t.add_row(vec![
                j.id.clone(),
                j.stage.clone(),
                j.slurm_id.clone().unwrap_or_else(|| "-".into()),
                j.state.to_string(),
                j.exit_code.clone().unwrap_or_else(|| "-".into()),
                note,
            ]);
        }
        s.push_str(&format!("{t}\n"));
    }
    if r.accounting.starts_with("unavailable") {
        s.push_str(&format!("accounting: {}\n", r.accounting));
    }
    for e in &r.errors {
        s.push_str(&format!("warning: {e}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn watch_backs_off_to_two_polls_a_minute_when_idle() {
        let mut d = Duration::from_secs(2);
        let mut schedule = Vec::new();
        for _ in 0..7 {
            d = next_interval(d, false);
            schedule.push(d.as_secs());
        }
        // From the 4th idle poll on the gap is >= 32 s (>= 25.6 s with -20 % jitter).
        assert_eq!(schedule, vec![4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(next_interval(d, true), Duration::from_secs(2));
    }
}
