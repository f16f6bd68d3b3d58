//! `sweep submit` and `sweep cancel`: sbatch each job not yet submitted, stage dependencies as
//! `--dependency`, a write-ahead record before every sbatch and reconciliation by job name after
//! any crash or ambiguous failure, so no job is ever submitted twice and no Slurm id is lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::campaign::{Manifest, ManifestJob};
use crate::executor::Executor;
use crate::job_state::JobState;
use crate::slurm::{Slurm, SlurmError};
use crate::state::{Lock, PendingSubmit, State, now_utc};

#[derive(Debug, Default, Clone)]
pub(crate) struct SubmitOptions {
    pub stages: Vec<String>,
    pub max_in_flight: Option<usize>,
    pub dry_run: bool,
    /// `sbatch --hold`: submitted jobs wait for `scontrol release`.
    pub hold: bool,
    /// Retries of a transient sbatch failure (after reconciling by name each time).
    pub retries: u32,
    /// Jobs with error-level plan-check findings, each with them (empty with `--force`).
    pub flagged: BTreeMap<String, String>,
    /// Submit the rest and record the flagged jobs as skipped, instead of refusing.
    pub skip_flagged: bool,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct SubmitReport {
    pub submitted: Vec<(String, String)>,
    pub already: usize,
    pub reconciled: Vec<(String, String)>,
    pub rejected: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
    /// Jobs left unsubmitted for their plan-check errors (`--skip-flagged`), with them.
    pub flagged: Vec<(String, String)>,
    /// The exact sbatch command lines (dry run).
    pub commands: Vec<String>,
    /// What the campaign state needed mending for (a torn journal record, jobs it had lost).
    pub warnings: Vec<String>,
}

pub(crate) fn submit(dir: &Path, opts: &SubmitOptions, slurm: &Slurm) -> Result<SubmitReport> {
    crate::state::ensure_campaign(dir)?;
    let m = Manifest::load(dir)?;
    for s in &opts.stages {
        if !m.stages.iter().any(|x| &x.name == s) {
            bail!(
                "no stage `{s}` in campaign `{}` (stages: {})",
                m.campaign,
                m.stages
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let lock = Lock::acquire(dir)?;
    let mut st = State::load(dir)?;
    let mut report = SubmitReport {
        warnings: std::mem::take(&mut st.warnings),
        ..SubmitReport::default()
    };
    if !opts.dry_run {
        report.reconciled = reconcile_loudly(&lock, dir, &m, &mut st, slurm, &mut report.warnings)?;
    }
    let order = m.stage_order();
    let mut jobs: Vec<&ManifestJob> = m
        .jobs
        .iter()
        .filter(|j| opts.stages.is_empty() || opts.stages.contains(&j.stage))
        .collect();
    jobs.sort_by_key(|j| order.get(j.stage.as_str()).copied().unwrap_or(usize::MAX));
    let unsubmitted = |id: &str| st.jobs.get(id).is_none_or(|s| s.slurm_id.is_none());
    let flagged: Vec<(String, String)> = jobs
        .iter()
        .filter(|j| unsubmitted(&j.id))
        .filter_map(|j| opts.flagged.get(&j.id).map(|f| (j.id.clone(), f.clone())))
        .collect();
    if !flagged.is_empty() && !opts.skip_flagged {
        bail!(
            "{} job(s) have error-level plan-check findings and were not submitted (nothing was):\n{}\n\
             `sweep check {}` says more and what would fit; --skip-flagged submits the rest and \
             records these as skipped; --force submits them anyway",
            flagged.len(),
            flagged
                .iter()
                .take(10)
                .map(|(id, f)| format!("  {id}: {f}"))
                .chain((flagged.len() > 10).then(|| format!("  ... {} more", flagged.len() - 10)))
                .collect::<Vec<_>>()
                .join("\n"),
            dir.display()
        );
    }
    if !opts.dry_run {
        // Recorded once: a later `submit --skip-flagged` writes nothing for an unchanged reason.
        let mut changed = Vec::new();
        for (id, f) in &flagged {
            let why = Some(format!("plan check: {f}"));
            let js = st.job(id);
            if js.skipped != why {
                js.skipped = why;
                changed.push(id.clone());
            }
        }
        st.record_many(&lock, dir, &changed)?;
    }
    let is_flagged = |id: &str| flagged.iter().any(|(f, _)| f == id);

    let mut in_flight = st
        .jobs
        .values()
        .filter(|j| j.slurm_id.is_some() && !j.is_terminal())
        .count();
    // Slurm ids by stage, for dependencies (grows as this run submits).
    let mut stage_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut stage_unsubmitted: BTreeMap<String, usize> = BTreeMap::new();
    for j in &m.jobs {
        match st.jobs.get(&j.id).and_then(|s| s.slurm_id.clone()) {
            Some(id) => stage_ids.entry(j.stage.clone()).or_default().push(id),
            // A job skipped for its plan-check errors is never submitted: nothing waits for it.
            None if is_flagged(&j.id) => {}
            None => *stage_unsubmitted.entry(j.stage.clone()).or_default() += 1,
        }
    }
    for job in jobs {
        if st.jobs.get(&job.id).is_some_and(|s| s.slurm_id.is_some()) {
            report.already += 1;
            continue;
        }
        if let Some((_, f)) = flagged.iter().find(|(f, _)| f == &job.id) {
            report.flagged.push((job.id.clone(), f.clone()));
            continue;
        }
        if let Some(max) = opts.max_in_flight
            && in_flight >= max
        {
            report
                .skipped
                .push((job.id.clone(), format!("--max-in-flight {max} reached")));
            continue;
        }
        let Some(stage) = m.stages.iter().find(|s| s.name == job.stage) else {
            continue;
        };
        // Slurm ids by kind of dependency, in the order the kinds first appear.
        let mut deps: Vec<(&str, Vec<String>)> = Vec::new();
        let mut blocked = None;
        for after in &stage.after {
            // In a dry run, jobs of earlier stages count as if submitted.
            let waiting = stage_unsubmitted.get(after).copied().unwrap_or(0);
            if waiting > 0 && !opts.dry_run {
                blocked = Some(format!(
                    "stage `{after}` has {waiting} job(s) not submitted; submit it first"
                ));
                break;
            }
            let kind = stage.kind_of(after).as_str();
            let mut ids = stage_ids.get(after).cloned().unwrap_or_default();
            if opts.dry_run && waiting > 0 {
                ids.push(format!("<{after}>"));
            }
            if ids.is_empty() {
                continue;
            }
            match deps.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, v)) => v.extend(ids),
                None => deps.push((kind, ids)),
            }
        }
        if let Some(why) = blocked {
            report.skipped.push((job.id.clone(), why));
            continue;
        }
        let mut args = Vec::new();
        if !deps.is_empty() {
            // `,` joins the kinds: every one must hold.
            args.push(format!(
                "--dependency={}",
                deps.iter()
                    .map(|(k, ids)| format!("{k}:{}", ids.join(":")))
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        if opts.hold {
            args.push("--hold".into());
        }
        if opts.dry_run {
            report.commands.push(format!(
                "(cd {} && sbatch --parsable {}{}job.sbatch)",
                crate::render::shell_quote(&dir.join(&job.dir).display().to_string()),
                args.iter()
                    .map(|a| crate::render::shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" "),
                if args.is_empty() { "" } else { " " }
            ));
            continue;
        }
        let to = SubmitTo {
            lock: &lock,
            dir,
            manifest: &m,
            slurm,
            retries: opts.retries,
        };
        let done = submit_one(&to, &mut st, job, &args).with_context(|| {
            format!(
                "stopped at job `{}`: {} job(s) submitted by this run before it, each recorded \
                 in the campaign state ({} already submitted before); run `sweep submit` again \
                 to go on, nothing will be submitted twice",
                job.id,
                report.submitted.len(),
                report.already
            )
        })?;
        match done {
            Ok(id) => {
                stage_ids
                    .entry(job.stage.clone())
                    .or_default()
                    .push(id.clone());
                *stage_unsubmitted.entry(job.stage.clone()).or_default() -= 1;
                in_flight += 1;
                report.submitted.push((job.id.clone(), id));
            }
            Err(msg) => report.rejected.push((job.id.clone(), msg)),
        }
    }
    Ok(report)
}

/// Reconciles before submitting, and says so loudly where Slurm had jobs the state did not
/// know at all (a deleted or reset state), not only ones a crash left a write-ahead record of.
fn reconcile_loudly(
    lock: &Lock,
    dir: &Path,
    m: &Manifest,
    st: &mut State,
    slurm: &Slurm,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, String)>> {
    let before: Vec<bool> = m
        .jobs
        .iter()
        .map(|j| {
            st.jobs
                .get(&j.id)
                .is_some_and(|r| r.pending_submit.is_some())
        })
        .collect();
    let reconciled = crate::reconcile::reconcile(lock, dir, m, st, slurm)?;
    let unrecorded = reconciled
        .iter()
        .filter(|(j, _)| {
            m.jobs
                .iter()
                .position(|x| &x.id == j)
                .is_some_and(|i| !before[i])
        })
        .count();
    if unrecorded > 0 {
        warnings.push(format!(
            "the campaign state did not know {unrecorded} job(s) that Slurm or their markers \
             have under this campaign's name and directory (was {} deleted or reset?): their \
             ids were adopted and they were not submitted again",
            crate::state::STATE
        ));
    }
    Ok(reconciled)
}

/// The campaign a job is submitted from and the Slurm it goes to: the same for every job of
/// one `submit`.
struct SubmitTo<'a> {
    lock: &'a Lock,
    dir: &'a Path,
    manifest: &'a Manifest,
    slurm: &'a Slurm,
    /// Retries of a transient sbatch failure before giving up.
    retries: u32,
}

/// One job: write-ahead record, sbatch, record the id. `Ok(Err(msg))` is a rejection by Slurm.
fn submit_one(
    to: &SubmitTo,
    st: &mut State,
    job: &ManifestJob,
    args: &[String],
) -> Result<std::result::Result<String, String>> {
    let SubmitTo {
        lock,
        dir,
        manifest: m,
        slurm,
        retries,
    } = *to;
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        {
            let js = st.job(&job.id);
            js.pending_submit = Some(PendingSubmit {
                since: now_utc(),
                name: job.slurm_name.clone(),
                at: crate::state::now_unix(),
            });
            js.last_error = None;
            js.skipped = None;
        }
        st.record(lock, dir, &job.id)?;
        if std::env::var_os("SWEEP_TEST_CRASH_AFTER_WAL").is_some() {
            // Test hook: die between the write-ahead record and sbatch.
            std::process::abort();
        }
        match slurm.sbatch(&dir.join(&job.dir), args) {
            Ok(id) => {
                if std::env::var_os("SWEEP_TEST_CRASH_AFTER_SBATCH").is_some() {
                    // Test hook: die after sbatch created the job, before its id is recorded.
                    std::process::abort();
                }
                let js = st.job(&job.id);
                if let Some(old) = js.slurm_id.take() {
                    js.history.push(crate::state::PastAttempt {
                        slurm_id: old,
                        state: js.state.clone(),
                    });
                }
                js.pending_submit = None;
                js.slurm_id = Some(id.clone());
                js.attempts += 1;
                js.state = Some(JobState::Pending);
                js.exit_code = None;
                js.step_oom = None;
                st.record(lock, dir, &job.id)?;
                return Ok(Ok(id));
            }
            Err(e @ SlurmError::Transient { .. }) => {
                // The job may exist although sbatch failed: look for it by name before retrying.
                match crate::reconcile::reconcile(lock, dir, m, st, slurm) {
                    Ok(adopted) => {
                        if let Some((_, id)) = adopted.into_iter().find(|(j, _)| j == &job.id) {
                            return Ok(Ok(id));
                        }
                    }
                    Err(re) => {
                        // Cannot tell whether the job exists: keep the record, stop submitting.
                        bail!(
                            "{e}; and looking the job up by name failed too: {re:#}. State kept; run `sweep submit` again when Slurm answers."
                        );
                    }
                }
                attempt += 1;
                if attempt > retries {
                    st.job(&job.id).last_error = Some(e.to_string());
                    st.record(lock, dir, &job.id)?;
                    bail!(
                        "{e} (gave up after {retries} retries; nothing was submitted twice, run `sweep submit` again later)"
                    );
                }
                std::thread::sleep(jitter(delay));
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                let js = st.job(&job.id);
                js.pending_submit = None;
                js.last_error = Some(e.to_string());
                st.record(lock, dir, &job.id)?;
                return Ok(Err(e.to_string()));
            }
        }
    }
}

/// +-20 % so that many clients backing off do not retry in lockstep.
pub(crate) fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|x| x.subsec_nanos())
        .unwrap_or(0);
    let f = 0.8 + (nanos % 1000) as f64 / 1000.0 * 0.4;
    d.mul_f64(f)
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct CancelReport {
    pub cancelled: Vec<(String, String)>,
    pub not_active: Vec<String>,
}

pub(crate) fn cancel(
    dir: &Path,
    stages: &[String],
    only: &[String],
    slurm: &Slurm,
) -> Result<CancelReport> {
    crate::state::ensure_campaign(dir)?;
    let m = Manifest::load(dir)?;
    let lock = Lock::acquire(dir)?;
    let mut st = State::load(dir)?;
    crate::reconcile::reconcile(&lock, dir, &m, &mut st, slurm)?;
    for id in only {
        if !m.jobs.iter().any(|j| &j.id == id) {
            bail!("no job `{id}` in campaign `{}`", m.campaign);
        }
    }
    let mut report = CancelReport::default();
    let mut ids = Vec::new();
    // What Slurm says now, read after the state: a job a killed earlier cancel already ended
    // is not cancelled (and reported) again, and its end is recorded.
    let queue = slurm.squeue(&format!("{}:", m.campaign))?;
    let mut learned = Vec::new();
    for j in &m.jobs {
        if (!stages.is_empty() && !stages.contains(&j.stage))
            || (!only.is_empty() && !only.contains(&j.id))
        {
            continue;
        }
        let Some(s) = st.jobs.get(&j.id) else {
            report.not_active.push(j.id.clone());
            continue;
        };
        let Some(sid) = s.slurm_id.clone() else {
            report.not_active.push(j.id.clone());
            continue;
        };
        if !Executor::of(s).known_to_slurm() || s.is_terminal() {
            report.not_active.push(j.id.clone());
            continue;
        }
        let job_dir = dir.join(&j.dir);
        let in_queue = queue.iter().find(|q| {
            q.id == sid
                && q.name == j.slurm_name
                && (q.work_dir.is_empty() || crate::reconcile::same_dir(&q.work_dir, &job_dir))
        });
        match in_queue {
            Some(q) if q.state.is_active() => {
                ids.push(sid.clone());
                report.cancelled.push((j.id.clone(), sid));
            }
            Some(q) => {
                let js = st.job(&j.id);
                js.state = Some(q.state.clone());
                learned.push(j.id.clone());
                report.not_active.push(j.id.clone());
            }
            // Left the queue: status finds out how it ended.
            None => report.not_active.push(j.id.clone()),
        }
    }
    st.record_many(&lock, dir, &learned)?;
    slurm.scancel(&ids)?;
    Ok(report)
}
