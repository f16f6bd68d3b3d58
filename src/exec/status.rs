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
use crate::reconcile::{AdoptRules, Inventory, adopt, same_dir, since_window};
use crate::slurm::{QueueJob, Slurm};
use crate::state::{Lock, State};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct JobStatus {
    pub id: String,
    pub stage: String,
    pub slurm_id: Option<String>,
    /// A Slurm state, or `unsubmitted`, `rejected`, `lost`, `unknown`.
    pub state: JobState,
    pub exit_code: Option<String>,
    pub reason: Option<String>,
    /// An srun step ran out of memory (the job's own state may still be COMPLETED/FAILED).
    pub step_oom: bool,
    /// Times Slurm requeued this id (node failure, preemption): its `started` marker's count.
    pub restarts: u32,
    /// Where the state came from: squeue, marker, sacct, state (last known).
    pub source: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusReport {
    pub campaign: String,
    pub jobs: Vec<JobStatus>,
    pub counts: IndexMap<JobState, usize>,
    /// `ok`, or why the controller could not be asked (then every state is the last known).
    pub controller: String,
    /// `ok`, `not needed`, or why accounting could not be asked.
    pub accounting: String,
    /// Problems talking to Slurm in this poll (the report is still as right as it can be).
    pub errors: Vec<String>,
    /// Slurm commands this poll ran.
    pub slurm_calls: usize,
    /// Whether what this poll learned was saved (`saved`, `nothing new`, or why not).
    pub saved: String,
    pub done: bool,
    /// Jobs that wait on a dependency Slurm says can never be satisfied, with why; when these
    /// are all that is left, `--watch` ends.
    pub blocked: Vec<(String, String)>,
}

impl StatusReport {
    /// Whether the controller answered this poll.
    pub(crate) fn controller_ok(&self) -> bool {
        self.controller == "ok"
    }

    /// Every job not yet ended waits on a dependency that can never be satisfied.
    pub(crate) fn all_blocked(&self) -> bool {
        !self.blocked.is_empty()
            && self
                .jobs
                .iter()
                .all(|j| !waiting(j) || self.blocked.iter().any(|(b, _)| b == &j.id))
    }
}

/// A job that has not ended and is Slurm's to run (one that left the queue while nothing
/// could say how is not waited for: polling again cannot tell more).
fn waiting(j: &JobStatus) -> bool {
    let settled = j.state.is_terminal()
        || matches!(
            j.state,
            JobState::Unsubmitted | JobState::Rejected | JobState::Skipped
        )
        || (j.state == JobState::Unknown && j.source == "none");
    !settled
}

/// One poll. Reads the state first and asks Slurm after, so every conclusion rests on evidence
/// newer than what it is compared with (a job submitted after the state was read is not looked
/// for, and cannot be taken for gone); saves only what it learned, only where no other process
/// changed the job meanwhile, and without waiting for the lock.
pub(crate) fn poll(dir: &Path, slurm: &Slurm) -> Result<StatusReport> {
    crate::state::ensure_campaign(dir)?;
    let m = Manifest::load(dir)?;
    let before = State::load(dir)?;
    let mut errors = before.warnings.clone();
    let mut calls = 0;
    let prefix = format!("{}:", m.campaign);
    // Jobs the local executor ran are not Slurm's: a campaign of only those asks Slurm nothing.
    let records: Vec<&crate::state::JobRecord> = before
        .jobs
        .values()
        .filter(|j| j.slurm_id.is_some() || j.pending_submit.is_some())
        .collect();
    let any_slurm = records.iter().any(|j| Executor::of(j).known_to_slurm());
    let only_local = !records.is_empty() && !any_slurm;
    let mut controller = "ok".to_string();
    let queue: Option<Vec<QueueJob>> = if only_local {
        Some(Vec::new())
    } else {
        calls += 1;
        match slurm.squeue(&prefix) {
            Ok(q) => Some(q),
            // Nothing was ever submitted to Slurm: no Slurm here is no news.
            Err(_) if !any_slurm => Some(Vec::new()),
            Err(e) => {
                controller = format!("unavailable: {e}");
                errors.push(format!("{e} (showing markers and last known states)"));
                None
            }
        }
    };
    let mut view = before.clone();
    let adopted = match &queue {
        Some(q) => {
            let inv = Inventory::new(q, None, None);
            adopt(dir, &m, &mut view, &inv, AdoptRules::STATUS)
        }
        None => Vec::new(),
    };
    let mut unrecorded = adopted.iter().filter(|a| a.unrecorded).count();
    if unrecorded > 0 {
        // A submit running beside this poll records each job before its sbatch: a job it
        // recorded after this poll read the state is not one the state lost.
        let after = State::load(dir).unwrap_or_default();
        unrecorded = adopted
            .iter()
            .filter(|a| {
                a.unrecorded
                    && after
                        .jobs
                        .get(&a.job)
                        .is_none_or(|r| r.slurm_id.is_none() && r.pending_submit.is_none())
            })
            .count();
    }
    if unrecorded > 0 {
        errors.push(format!(
            "the campaign state did not know {unrecorded} job(s) that Slurm has under this \
             campaign's name and directory (was {} deleted or reset?): shown with their ids; \
             `sweep status --rebuild` also recovers the jobs that have left the queue",
            crate::state::STATE
        ));
    }

    let mut out: Vec<JobStatus> = Vec::with_capacity(m.jobs.len());
    let mut need_acct: Vec<usize> = Vec::new();
    for job in &m.jobs {
        let js = view.jobs.get(&job.id).cloned().unwrap_or_default();
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
    learn(&mut view, &out);
    let saved = save_learned(dir, &before, &view, &m);
    if saved.starts_with("not saved") && !saved.contains("lock") {
        errors.push(saved.clone());
    }

    let counts = count_states(&out);
    let done = queue.is_some() && out.iter().all(|s| !waiting(s));
    let blocked = blocked_jobs(&m, &out);
    Ok(StatusReport {
        campaign: m.campaign,
        jobs: out,
        counts,
        controller,
        accounting,
        errors,
        slurm_calls: calls,
        saved,
        done,
        blocked,
    })
}

/// Jobs Slurm holds with `DependencyNeverSatisfied`, each with the stage it waits on and that
/// stage's jobs that did not end as the dependency needs.
fn blocked_jobs(m: &Manifest, out: &[JobStatus]) -> Vec<(String, String)> {
    let mut blocked = Vec::new();
    for (job, s) in m.jobs.iter().zip(out) {
        if s.state != JobState::Pending || s.reason.as_deref() != Some("DependencyNeverSatisfied") {
            continue;
        }
        let Some(stage) = m.stages.iter().find(|st| st.name == job.stage) else {
            continue;
        };
        let failed: Vec<String> = m
            .jobs
            .iter()
            .zip(out)
            .filter(|(j, o)| {
                stage.after.contains(&j.stage)
                    && stage.kind_of(&j.stage) != crate::spec::Dependency::Afterany
                    && o.state.is_terminal()
                    && o.state != JobState::Completed
            })
            .map(|(j, o)| format!("{} {}", j.id, o.state))
            .collect();
        blocked.push((
            job.id.clone(),
            format!(
                "--dependency={} can never be satisfied{}",
                stage.describe(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", failed.join(", "))
                }
            ),
        ));
    }
    blocked
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
        restarts: js.restarts.unwrap_or(0),
        source: source.to_string(),
    };
    let Some(sid) = js.slurm_id.clone() else {
        return (
            match (&js.last_error, &js.pending_submit) {
                (_, Some(_)) => base(JobState::Unknown, "state"),
                (None, None) if js.skipped.is_some() => {
                    let mut s = base(JobState::Skipped, "state");
                    s.reason = js.skipped.clone();
                    s
                }
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
    let started_restarts = crate::markers::started_restarts(&job_dir)
        .filter(|_| crate::markers::started_id(&job_dir).as_deref() == Some(sid.as_str()));
    let mut s = base(last_known(js), "state");
    s.restarts = s.restarts.max(started_restarts.unwrap_or(0));
    match (in_queue, &marker) {
        (Some(q), _) => {
            s.state = q.state.clone();
            // The controller's count: the only one where the failed attempt left no marker.
            s.restarts = s.restarts.max(q.restarts);
            s.reason = (!q.reason.is_empty() && q.reason != "None").then(|| q.reason.clone());
            s.source = "squeue".into();
            match &marker {
                // Back in the queue after an attempt ended (a requeue): that attempt's exit code
                // is not this one's, and the restart count is one more than it wrote.
                Some(f) if q.state.is_active() && q.state != JobState::Completing => {
                    s.exit_code = None;
                    s.step_oom = false;
                    s.restarts = s.restarts.max(f.restart_count + 1);
                }
                Some(f) => {
                    s.exit_code = Some(f.exit_code.to_string());
                    s.step_oom = state_from_marker(&job_dir, f).1;
                }
                None if q.state.is_active() => {
                    s.exit_code = None;
                }
                None => {}
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
                // Slurm did not answer: the last known state stands (shown as such).
                if js.state.is_none() {
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
                    // slurmdbd first records a job under the placeholder name `allocation`,
                    // with no working directory, and completes the record moments later: not
                    // yet evidence either way.
                    None if rows.iter().any(|r| r.id == sid && r.name == "allocation") => {
                        out[i].state = JobState::Unknown;
                        out[i].reason = Some(
                            "accounting's record of this id is not complete yet (name \
                             `allocation`); the next poll asks again"
                                .into(),
                        );
                        out[i].source = "sacct".into();
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
            // Gone from the queue with no marker, and accounting cannot say how it ended: not
            // known, which is not the same as lost (accounting may answer next time).
            for &i in need_acct {
                out[i].state = JobState::Unknown;
                out[i].reason = Some(
                    "left the queue with no finished marker; accounting unavailable (see below)"
                        .into(),
                );
                out[i].source = "none".into();
            }
            let one_line = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            errors.push(format!(
                "accounting unavailable, so {} job(s) that left the queue without a finished \
                 marker cannot be told apart from lost ones: {one_line}",
                need_acct.len()
            ));
            format!("unavailable: {one_line}")
        }
    }
}

/// Writes what this poll learned into `view`: only evidence (never `unknown`, never a last
/// known state shown again, `lost` only on accounting's answer).
fn learn(view: &mut State, out: &[JobStatus]) {
    for s in out {
        if s.slurm_id.is_none()
            || s.state == JobState::Unknown
            || s.source == "state"
            || s.source == "none"
        {
            continue;
        }
        let js = view.job(&s.id);
        js.state = Some(s.state.clone());
        js.exit_code = s.exit_code.clone();
        js.reason = s.reason.clone();
        js.step_oom = Some(s.step_oom);
        js.restarts = (s.restarts > 0).then_some(s.restarts);
    }
}

/// Saves the jobs whose records this poll changed, each only if no other process changed it
/// since the poll read it; without waiting for a lock a submit may hold for long, and
/// best-effort (a full disk does not stop status from showing what it knows).
fn save_learned(dir: &Path, before: &State, view: &State, m: &Manifest) -> String {
    let changed: Vec<&String> = m
        .jobs
        .iter()
        .map(|j| &j.id)
        .filter(|id| before.jobs.get(*id) != view.jobs.get(*id))
        .collect();
    if changed.is_empty() {
        return "nothing new".into();
    }
    let lock = match Lock::try_acquire(dir) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return format!(
                "not saved: the campaign lock is held by {} (a later poll saves it)",
                Lock::holder(dir)
            );
        }
        Err(e) => return format!("not saved: {e:#}"),
    };
    let mut now = match State::load(dir) {
        Ok(s) => s,
        Err(e) => return format!("not saved: {e:#}"),
    };
    let mut ids = Vec::new();
    for id in changed {
        if now.jobs.get(id) == before.jobs.get(id)
            && let Some(r) = view.jobs.get(id)
        {
            now.jobs.insert(id.clone(), r.clone());
            ids.push(id.clone());
        }
    }
    match now.record_many(&lock, dir, &ids) {
        Ok(()) => format!("saved ({} job(s))", ids.len()),
        Err(e) => format!("not saved: {e:#}"),
    }
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
            if j.restarts > 0 {
                note = format!(
                    "requeued {}x{}{note}",
                    j.restarts,
                    if note.is_empty() { "" } else { "; " }
                );
            }
            if !r.controller_ok() && j.source == "state" {
                note = format!(
                    "last known{}{note}",
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
    if !r.controller_ok() {
        s.push_str(&format!("controller: {}\n", r.controller));
    }
    if r.accounting.starts_with("unavailable") {
        s.push_str(&format!("accounting: {}\n", r.accounting));
    }
    if r.saved.starts_with("not saved") && r.saved.contains("lock") {
        s.push_str(&format!("note: {}\n", r.saved));
    }
    for (j, why) in &r.blocked {
        s.push_str(&format!("blocked: {j}: {why}\n"));
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
