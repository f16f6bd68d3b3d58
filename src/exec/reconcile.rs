//! Reconciliation with Slurm: a job whose sbatch may have run but whose Slurm id never reached
//! the state (sweep crashed, sbatch timed out, the state file was deleted or reset) is looked up
//! by name and working directory in squeue, in accounting and in its `started` marker, and
//! adopted; so that no job is submitted twice and no id is lost, lock or no lock.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::campaign::{Manifest, ManifestJob};
use crate::job_state::JobState;
use crate::slurm::{AcctJob, QueueJob, Slurm};
use crate::state::{JobRecord, Lock, State};

/// Seconds a write-ahead record must age before "not in the queue" means "never submitted".
pub(crate) const SETTLE_S: u64 = 2;

/// What Slurm holds under the campaign's name: the queue, and accounting where it answers.
pub(crate) struct Inventory {
    /// Why accounting could not be asked, where it could not (then the queue and the markers
    /// are all there is to go on).
    pub(crate) accounting_error: Option<String>,
    /// Job name -> (id, submit time, working directory), from both.
    by_name: HashMap<String, Vec<(String, String, String)>>,
}

impl Inventory {
    /// One squeue and one sacct call for the whole campaign (sacct over the last 30 days).
    pub(crate) fn fetch(m: &Manifest, slurm: &Slurm, with_accounting: bool) -> Result<Inventory> {
        let prefix = format!("{}:", m.campaign);
        let queue = slurm.squeue(&prefix)?;
        let (accounting, accounting_error) = if with_accounting {
            match slurm.sacct_named(&prefix, &since_window()) {
                Ok(a) => (Some(a), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        Ok(Inventory::new(&queue, accounting, accounting_error))
    }

    pub(crate) fn new(
        queue: &[QueueJob],
        accounting: Option<Vec<AcctJob>>,
        accounting_error: Option<String>,
    ) -> Inventory {
        let mut by_name: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
        let acct = accounting.iter().flatten();
        for (id, name, submit, dir) in queue
            .iter()
            .map(|q| (&q.id, &q.name, &q.submit_time, &q.work_dir))
            .chain(acct.map(|a| (&a.id, &a.name, &a.submit_time, &a.work_dir)))
        {
            let e = by_name.entry(name.clone()).or_default();
            if !e.iter().any(|(i, _, _)| i == id) {
                e.push((id.clone(), submit.clone(), dir.clone()));
            }
        }
        Inventory {
            accounting_error,
            by_name,
        }
    }

    /// Every Slurm id this inventory has for the job (name and working directory both ours),
    /// with its submit time, newest first.
    fn ids_of(&self, job: &ManifestJob, job_dir: &Path) -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = self
            .by_name
            .get(&job.slurm_name)
            .into_iter()
            .flatten()
            .filter(|(_, _, d)| same_dir(d, job_dir))
            .map(|(i, s, _)| (i.clone(), s.clone()))
            .collect();
        ids.sort_by_key(|(i, _)| std::cmp::Reverse(job_number(i)));
        ids
    }
}

/// sacct's default window is only today, which silently misses jobs submitted earlier: ask
/// for the last 30 days (the ids or the names bound the query anyway).
pub(crate) fn since_window() -> String {
    crate::state::utc_from_unix(crate::state::now_unix().saturating_sub(30 * 86400))
}

fn job_number(id: &str) -> u64 {
    id.split('_')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// For `submit` and `cancel`, holding the lock: adopts what Slurm has for every job whose
/// write-ahead record is pending or that has no id at all, and drops write-ahead records that
/// Slurm does not know (that sbatch never created a job). Returns the adopted `(job, id)`s.
pub(crate) fn reconcile(
    lock: &Lock,
    dir: &Path,
    m: &Manifest,
    st: &mut State,
    slurm: &Slurm,
) -> Result<Vec<(String, String)>> {
    if let Some(youngest) = st
        .jobs
        .values()
        .filter_map(|j| j.pending_submit.as_ref().map(|p| p.at))
        .max()
    {
        // An sbatch that was in flight when its sweep died lands within moments (it dies with
        // sweep, but its request may already be on the wire): give it time before looking.
        let age = crate::state::now_unix().saturating_sub(youngest);
        if age < SETTLE_S {
            std::thread::sleep(Duration::from_secs(SETTLE_S - age));
        }
    }
    let unknown = m
        .jobs
        .iter()
        .filter(|j| st.jobs.get(&j.id).is_none_or(|r| r.slurm_id.is_none()))
        .count();
    if unknown == 0 {
        return Ok(Vec::new());
    }
    let inv = Inventory::fetch(m, slurm, true)?;
    let changed = adopt(dir, m, st, &inv, AdoptRules::LOCK_HOLDER);
    let ids: Vec<String> = changed.iter().map(|c| c.job.clone()).collect();
    st.record_many(lock, dir, &ids)?;
    Ok(changed
        .into_iter()
        .filter_map(|c| c.slurm_id.map(|s| (c.job, s)))
        .collect())
}

/// A change [`adopt`] made to one job's record.
pub(crate) struct Adopted {
    pub job: String,
    /// The id adopted; `None` where a write-ahead record was dropped.
    pub slurm_id: Option<String>,
    /// The job had no record of any submission: the state had lost it.
    pub unrecorded: bool,
}

/// Who may conclude what in [`adopt`].
pub(crate) struct AdoptRules {
    /// Clear write-ahead records Slurm does not know. Only the lock holder may: an sbatch of
    /// its own is then the only one that could still be in flight, and it has none.
    pub drop_unfound: bool,
    /// Adopt from a `started` marker for a job with no record at all (a job directory of an
    /// earlier life of the campaign has one too, so only where the state is being rebuilt).
    pub unrecorded_from_markers: bool,
}

impl AdoptRules {
    /// `submit`, `cancel`, `status --rebuild`: holding the lock.
    pub(crate) const LOCK_HOLDER: AdoptRules = AdoptRules {
        drop_unfound: true,
        unrecorded_from_markers: true,
    };
    /// A read-only `status`: adopts what the queue shows, concludes nothing from absence.
    pub(crate) const STATUS: AdoptRules = AdoptRules {
        drop_unfound: false,
        unrecorded_from_markers: false,
    };
}

/// The part of [`reconcile`] that works on an inventory already fetched: for each job without
/// an id whose sbatch may have run (a write-ahead record) or that has no record at all, the
/// newest id Slurm or its `started` marker has that is not an earlier attempt.
pub(crate) fn adopt(
    dir: &Path,
    m: &Manifest,
    st: &mut State,
    inv: &Inventory,
    rules: AdoptRules,
) -> Vec<Adopted> {
    let mut changed = Vec::new();
    for job in &m.jobs {
        let rec = st.jobs.get(&job.id).cloned().unwrap_or_default();
        if rec.slurm_id.is_some() {
            continue;
        }
        let pending = rec.pending_submit.as_ref();
        let job_dir = dir.join(&job.dir);
        let known = known_ids(&rec);
        let mut found: Vec<(String, String)> = inv
            .ids_of(job, &job_dir)
            .into_iter()
            .filter(|(i, _)| !known.contains(i))
            .collect();
        if found.is_empty()
            && (pending.is_some() || rules.unrecorded_from_markers)
            && let Some(i) = crate::markers::started_id(&job_dir).filter(|i| !known.contains(i))
        {
            found.push((i, String::new()));
        }
        if found.is_empty() {
            if rules.drop_unfound && pending.is_some() {
                st.job(&job.id).pending_submit = None;
                changed.push(Adopted {
                    job: job.id.clone(),
                    slurm_id: None,
                    unrecorded: false,
                });
            }
            continue;
        }
        let js = st.job(&job.id);
        // Older ids found (a state rebuilt from nothing) are earlier attempts.
        for (old, _) in found.iter().skip(1).rev() {
            js.history.push(crate::state::PastAttempt {
                slurm_id: old.clone(),
                state: None,
            });
        }
        let (sid, submit) = found.swap_remove(0);
        js.pending_submit = None;
        js.slurm_id = Some(sid.clone());
        js.submit_time = (!submit.is_empty()).then_some(submit);
        js.attempts += found.len() as u32 + 1;
        js.state = Some(JobState::Pending);
        changed.push(Adopted {
            job: job.id.clone(),
            slurm_id: Some(sid),
            unrecorded: pending.is_none() && rec.last_error.is_none(),
        });
    }
    changed
}

fn known_ids(rec: &JobRecord) -> Vec<String> {
    let mut known: Vec<String> = rec.history.iter().map(|h| h.slurm_id.clone()).collect();
    known.extend(rec.slurm_id.clone());
    known
}

/// Whether a directory Slurm reports is the job directory we mean (either may be reached
/// through a symlink).
pub(crate) fn same_dir(reported: &str, ours: &Path) -> bool {
    let a = std::fs::canonicalize(reported).unwrap_or_else(|_| reported.into());
    let b = std::fs::canonicalize(ours).unwrap_or_else(|_| ours.to_path_buf());
    a == b
}

/// What `status --rebuild` did.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Rebuilt {
    /// Where an unreadable state was moved (kept for inspection, never deleted).
    pub set_aside: Vec<String>,
    /// `(job, Slurm id)` adopted.
    pub adopted: Vec<(String, String)>,
    /// Jobs of the manifest nothing in Slurm or in their directory speaks of.
    pub not_found: usize,
    /// Jobs the state already knew.
    pub known: usize,
    /// `ok`, or why accounting could not be asked (then jobs that left the queue are found
    /// only through their markers).
    pub accounting: String,
}

impl Rebuilt {
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        for p in &self.set_aside {
            s.push_str(&format!("kept the unreadable state as {p}\n"));
        }
        for (j, id) in &self.adopted {
            s.push_str(&format!("adopted {j} -> Slurm job {id}\n"));
        }
        s.push_str(&format!(
            "rebuilt: {} adopted, {} already known, {} never submitted (nothing in Slurm or \
             their markers); accounting: {}\n",
            self.adopted.len(),
            self.known,
            self.not_found,
            self.accounting
        ));
        s
    }
}

/// `status --rebuild`: under the lock, a state that cannot be read is moved aside, then every
/// job the state has no id for is looked up in the queue, in accounting (30 days) and in its
/// `started` marker by name and working directory; the newest id found is the current attempt,
/// older ones its history. The lookup the state's writers make anyway, made for every job.
pub(crate) fn rebuild(dir: &Path, slurm: &Slurm) -> Result<Rebuilt> {
    crate::state::ensure_campaign(dir)?;
    let m = Manifest::load(dir)?;
    let lock = Lock::acquire(dir)?;
    let mut out = Rebuilt::default();
    let mut st = match State::load(dir) {
        Ok(s) => s,
        Err(_) => {
            let stamp = crate::state::now_utc().replace(':', "");
            for name in [crate::state::STATE, crate::state::JOURNAL] {
                let from = dir.join(name);
                if from.exists() {
                    let to = dir.join(format!("{name}.unreadable-{stamp}"));
                    std::fs::rename(&from, &to).with_context(|| {
                        format!("moving {} aside to {}", from.display(), to.display())
                    })?;
                    out.set_aside.push(to.display().to_string());
                }
            }
            State::default()
        }
    };
    out.known = m
        .jobs
        .iter()
        .filter(|j| st.jobs.get(&j.id).is_some_and(|r| r.slurm_id.is_some()))
        .count();
    let inv = Inventory::fetch(&m, slurm, true)?;
    out.accounting = match &inv.accounting_error {
        None => "ok".into(),
        Some(e) => format!("unavailable: {e}"),
    };
    let changed = adopt(dir, &m, &mut st, &inv, AdoptRules::LOCK_HOLDER);
    out.adopted = changed
        .iter()
        .filter_map(|c| c.slurm_id.clone().map(|s| (c.job.clone(), s)))
        .collect();
    out.not_found = m.jobs.len() - out.known - out.adopted.len();
    // Written whole: a rebuilt state starts a journal of its own.
    st.save(&lock, dir)?;
    Ok(out)
}
