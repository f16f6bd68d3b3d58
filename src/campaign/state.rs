//! Campaign state: which job has which Slurm id, attempts, last known state. `state.json` holds
//! it whole, written atomically (a file of its own, fsync, rename, fsync of the directory);
//! every change after that is one checksummed line appended to `state.journal` and fsynced, so
//! a job's record costs O(1) however large the campaign. Writers hold [`Lock`]; a write-ahead
//! record before every sbatch lets a crash between sbatch and the record be reconciled from
//! Slurm by job name instead of submitting twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::job_state::JobState;

pub use crate::layout::{JOURNAL, LOCK, STATE};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    #[serde(default = "format")]
    pub format: u32,
    #[serde(default)]
    pub jobs: BTreeMap<String, JobRecord>,
    /// Journal records applied on top of `state.json` (see [`State::record`]).
    #[serde(skip)]
    journal_records: usize,
    /// What loading had to set aside (a torn journal record), for the command to show.
    #[serde(skip)]
    pub warnings: Vec<String>,
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
    /// Why `submit --skip-flagged` left the job unsubmitted (its plan-check errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// `local` when the local executor ran the job (its id is then sweep's, not Slurm's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// Times Slurm requeued the current id (node failure, preemption), as status last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
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
    pub(crate) fn is_terminal(&self) -> bool {
        self.state.as_ref().is_some_and(JobState::is_terminal)
    }
}

/// An exclusive lock on the campaign, held by every process that writes its state (`submit`,
/// `cancel`, the local executor) for the whole of its work, and by `status` only to save.
///
/// `flock` on an open descriptor, with an identity check: a lock file deleted or replaced
/// while held would let a second writer lock a new file beside the first, so the holder checks
/// before every state write that the path still names the file it locked, and stops if not.
pub struct Lock {
    file: File,
    path: PathBuf,
    ident: (u64, u64),
}

impl Lock {
    /// Waits for the lock, saying who holds it.
    pub fn acquire(dir: &Path) -> Result<Lock> {
        match Self::take(dir, true)? {
            Some(l) => Ok(l),
            None => bail!("could not lock {}", dir.join(LOCK).display()),
        }
    }

    /// The lock if no one holds it, else `None` (read-only commands do not wait for a submit).
    pub(crate) fn try_acquire(dir: &Path) -> Result<Option<Lock>> {
        Self::take(dir, false)
    }

    fn take(dir: &Path, wait: bool) -> Result<Option<Lock>> {
        let path = dir.join(LOCK);
        let mut said = false;
        loop {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening lock file {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) if !wait => return Ok(None),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !said {
                        eprintln!(
                            "waiting for the campaign lock {}: held by {}",
                            path.display(),
                            holder_of(&mut file)
                        );
                        said = true;
                    }
                    file.lock()
                        .with_context(|| format!("locking {}", path.display()))?;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
            let ident = file_ident(&file.metadata()?);
            // Locked a file that was unlinked meanwhile: lock whatever the path names now.
            if std::fs::metadata(&path).map(|m| file_ident(&m)).ok() != Some(ident) {
                continue;
            }
            let me = format!(
                "pid {} on {}: {} (since {} UTC)\n",
                std::process::id(),
                hostname(),
                std::env::args().take(3).collect::<Vec<_>>().join(" "),
                now_utc()
            );
            // Who holds it, for the next one to wait; a failure to say so is no reason to stop.
            // At offset 0 whatever this descriptor read while it waited.
            let _ = file.set_len(0).and_then(|_| {
                use std::os::unix::fs::FileExt;
                file.write_all_at(me.as_bytes(), 0)
            });
            return Ok(Some(Lock { file, path, ident }));
        }
    }

    /// Who holds the campaign's lock, as the holder wrote it.
    pub(crate) fn holder(dir: &Path) -> String {
        match File::open(dir.join(LOCK)) {
            Ok(mut f) => holder_of(&mut f),
            Err(_) => "another sweep process".into(),
        }
    }

    /// Fails if the lock file was removed or replaced since it was locked: another process
    /// may then hold a lock of its own, and writing on would make two writers.
    pub(crate) fn check(&self) -> Result<()> {
        let now = std::fs::metadata(&self.path).map(|m| file_ident(&m)).ok();
        if now != Some(self.ident) {
            bail!(
                "the campaign lock {} was removed or replaced while this process held it; \
                 stopping so that two processes never write the campaign at once (everything \
                 done so far is recorded)",
                self.path.display()
            );
        }
        // The descriptor must stay open for the lock to last.
        let _ = &self.file;
        Ok(())
    }
}

/// Who holds a lock, from what the holder wrote into it.
fn holder_of(file: &mut File) -> String {
    use std::io::Read;
    let mut s = String::new();
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "another sweep process".into()
    } else {
        s.chars().filter(|c| !c.is_control()).collect()
    }
}

fn file_ident(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer outlives the call and its length is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Journal records before the state is written whole again: proportional to the campaign, so
/// each job's record costs O(1) amortised.
fn compact_after(jobs: usize) -> usize {
    (2 * jobs).max(1024)
}

impl State {
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(STATE)
    }

    pub(crate) fn journal_path(dir: &Path) -> PathBuf {
        dir.join(JOURNAL)
    }

    /// `state.json` with the journal's records applied. Needs no lock: a writer only appends
    /// to the journal or replaces files by rename, and the journal is opened before the state
    /// is read, so a concurrent compaction is seen (and the read done again) rather than
    /// mixing an old journal into a newer state.
    pub fn load(dir: &Path) -> Result<State> {
        let mut tries = 0;
        loop {
            let journal = match File::open(Self::journal_path(dir)) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("reading {}", Self::journal_path(dir).display()));
                }
            };
            let mut st = Self::load_snapshot(dir)?;
            let Some(mut f) = journal else {
                return Ok(st);
            };
            let ident = file_ident(&f.metadata()?);
            let mut bytes = Vec::new();
            {
                use std::io::Read;
                f.read_to_end(&mut bytes)
                    .with_context(|| format!("reading {}", Self::journal_path(dir).display()))?;
            }
            let still = std::fs::metadata(Self::journal_path(dir))
                .map(|m| file_ident(&m))
                .ok();
            tries += 1;
            if still != Some(ident) && tries < 20 {
                continue;
            }
            st.apply_journal(dir, &bytes)?;
            return Ok(st);
        }
    }

    fn load_snapshot(dir: &Path) -> Result<State> {
        let p = Self::path(dir);
        // Bytes, not text: random bytes get the same "corrupt" hint as bad JSON.
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is corrupt; it is written atomically, so this is not a crash of sweep. \
                     `sweep status --rebuild` moves it aside and rebuilds the state from Slurm \
                     and the job markers",
                    p.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                format: 1,
                ..State::default()
            }),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// Applies journal records in order. A torn last record (a crash mid-append) is dropped
    /// with a warning; a bad record with good ones after it is corruption, not a crash.
    fn apply_journal(&mut self, dir: &Path, bytes: &[u8]) -> Result<()> {
        let path = Self::journal_path(dir);
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        let torn_tail = !bytes.is_empty() && !bytes.ends_with(b"\n");
        if !torn_tail {
            lines.pop();
        }
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            match parse_record(line) {
                Some(r) => {
                    self.jobs.insert(r.job, r.record);
                    self.journal_records += 1;
                }
                None if i + 1 == n => {
                    self.warnings.push(format!(
                        "{}: dropped an incomplete last record (a write cut short by a crash or a \
                         full disk); the job it was about is reconciled with Slurm",
                        path.display()
                    ));
                }
                None => bail!(
                    "{}:{}: corrupt record (checksum or format) with good records after it; \
                     `sweep status --rebuild` rebuilds the state from Slurm and the job markers",
                    path.display(),
                    i + 1
                ),
            }
        }
        Ok(())
    }

    /// Records one job's record durably: one journal line and one fsync, O(1) however large
    /// the campaign; now and then the whole state is written and the journal started anew.
    pub(crate) fn record(&mut self, lock: &Lock, dir: &Path, job: &str) -> Result<()> {
        self.record_many(lock, dir, &[job.to_string()])
    }

    /// Records several jobs' records with one write and one fsync.
    pub(crate) fn record_many(&mut self, lock: &Lock, dir: &Path, jobs: &[String]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        lock.check()?;
        let mut lines = Vec::new();
        for job in jobs {
            let rec = JournalRecord {
                job: job.clone(),
                record: self.jobs.get(job).cloned().unwrap_or_default(),
            };
            let json = serde_json::to_vec(&rec)?;
            lines.extend_from_slice(format!("{:08x} ", crc32fast::hash(&json)).as_bytes());
            lines.extend_from_slice(&json);
            lines.push(b'\n');
        }
        let path = Self::journal_path(dir);
        let created = !path.exists();
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            let before = f.metadata()?.len();
            let done = f.write_all(&lines).and_then(|_| f.sync_data());
            if done.is_err() {
                // A part-written record followed by later good ones would read as corruption:
                // cut the journal back to where this write began.
                let _ = f.set_len(before);
            }
            done
        };
        write().with_context(|| {
            format!(
                "appending the record of {} to {} (the records before it are kept)",
                match jobs {
                    [one] => format!("job `{one}`"),
                    many => format!("{} jobs", many.len()),
                },
                path.display()
            )
        })?;
        if created {
            sync_dir(dir);
        }
        // Again after the write: a lock file removed while it was being written would let a
        // second writer read the state without this record.
        lock.check()?;
        self.journal_records += jobs.len();
        if self.journal_records > compact_after(self.jobs.len()) {
            self.save(lock, dir)?;
        }
        Ok(())
    }

    /// Writes the whole state and starts the journal anew. Atomic: a reader (or a crash) sees
    /// the old state or the new one; a crash between the two renames leaves an old journal
    /// whose records the new state already holds, and applying them again changes nothing.
    pub fn save(&mut self, lock: &Lock, dir: &Path) -> Result<()> {
        lock.check()?;
        let p = Self::path(dir);
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        write_atomically(dir, &p, &bytes)?;
        let j = Self::journal_path(dir);
        if self.journal_records > 0 || j.exists() {
            write_atomically(dir, &j, b"")?;
        }
        self.journal_records = 0;
        Ok(())
    }

    pub fn job(&mut self, id: &str) -> &mut JobRecord {
        self.jobs.entry(id.to_string()).or_default()
    }
}

#[derive(Serialize, Deserialize)]
struct JournalRecord {
    job: String,
    record: JobRecord,
}

/// `CRC32 JSON`: `None` when the line is torn, garbled or fails its checksum.
fn parse_record(line: &[u8]) -> Option<JournalRecord> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if line.get(8) != Some(&b' ') || crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Write to a file of its own (unique per process and moment), fsync, rename over `path`,
/// fsync the directory. The temporary file is removed if any step fails.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".{name}.tmp.{}.{nanos}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!(
                "writing {} (through {}; the previous version is intact)",
                path.display(),
                tmp.display()
            )
        });
    }
    sync_dir(dir);
    Ok(())
}

/// A rename or a new file is durable only once the directory entry is on disk.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// UTC now as `YYYY-MM-DDTHH:MM:SS`, the format sacct takes for `--starttime`.
pub(crate) fn now_utc() -> String {
    utc_from_unix(now_unix())
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn utc_from_unix(secs: u64) -> String {
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
pub(crate) fn ensure_campaign(dir: &Path) -> Result<()> {
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
        let lock = Lock::acquire(d.path()).unwrap();
        let mut s = State::load(d.path()).unwrap();
        s.job("a").slurm_id = Some("12".into());
        s.save(&lock, d.path()).unwrap();
        assert_eq!(State::load(d.path()).unwrap(), s);
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    fn record_job(st: &mut State, lock: &Lock, dir: &Path, job: &str, id: &str) {
        st.job(job).slurm_id = Some(id.into());
        st.record(lock, dir, job).unwrap();
    }

    #[test]
    fn journal_records_apply_over_the_state_in_order() {
        let d = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(d.path()).unwrap();
        let mut st = State::load(d.path()).unwrap();
        record_job(&mut st, &lock, d.path(), "a", "1");
        record_job(&mut st, &lock, d.path(), "b", "2");
        record_job(&mut st, &lock, d.path(), "a", "3");
        assert!(!State::path(d.path()).exists(), "no whole write yet");
        let back = State::load(d.path()).unwrap();
        assert_eq!(back.jobs["a"].slurm_id.as_deref(), Some("3"));
        assert_eq!(back.jobs["b"].slurm_id.as_deref(), Some("2"));
        assert!(back.warnings.is_empty());
        // A whole write empties the journal; loading again gives the same state.
        let mut back = back;
        back.save(&lock, d.path()).unwrap();
        assert_eq!(std::fs::read(State::journal_path(d.path())).unwrap(), b"");
        assert_eq!(State::load(d.path()).unwrap().jobs, st.jobs);
    }

    #[test]
    fn a_torn_last_record_is_dropped_with_a_warning_and_a_bad_middle_one_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(d.path()).unwrap();
        let mut st = State::load(d.path()).unwrap();
        record_job(&mut st, &lock, d.path(), "a", "1");
        record_job(&mut st, &lock, d.path(), "b", "2");
        let j = State::journal_path(d.path());
        let full = std::fs::read(&j).unwrap();
        // Cut mid-record, as a crash or a full disk would.
        std::fs::write(&j, &full[..full.len() - 10]).unwrap();
        let back = State::load(d.path()).unwrap();
        assert_eq!(back.jobs["a"].slurm_id.as_deref(), Some("1"));
        assert!(!back.jobs.contains_key("b"));
        assert_eq!(back.warnings.len(), 1, "{:?}", back.warnings);
        // One flipped byte in the first record, with a good one after it.
        let mut bad = full.clone();
        bad[20] ^= 1;
        std::fs::write(&j, &bad).unwrap();
        let err = format!("{:#}", State::load(d.path()).unwrap_err());
        assert!(
            err.contains("state.journal:1") && err.contains("--rebuild"),
            "{err}"
        );
    }

    #[test]
    fn records_are_compacted_into_the_state_after_a_number_proportional_to_the_campaign() {
        let d = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(d.path()).unwrap();
        let mut st = State::load(d.path()).unwrap();
        for i in 0..1100 {
            record_job(
                &mut st,
                &lock,
                d.path(),
                &format!("j{}", i % 10),
                &i.to_string(),
            );
        }
        // Compacted once after 1024 + 1 records; 75 records since.
        let lines = std::fs::read(State::journal_path(d.path()))
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        assert_eq!(lines, 75);
        let back = State::load(d.path()).unwrap();
        assert_eq!(back.jobs, st.jobs);
        assert_eq!(back.jobs["j9"].slurm_id.as_deref(), Some("1099"));
    }

    #[test]
    fn a_waiter_that_gets_the_lock_says_it_holds_it_from_the_first_byte() {
        let d = tempfile::tempdir().unwrap();
        let first = Lock::acquire(d.path()).unwrap();
        let dir = d.path().to_path_buf();
        let waiter = std::thread::spawn(move || Lock::acquire(&dir).map(|_| ()));
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(first);
        waiter.join().unwrap().unwrap();
        let held = std::fs::read(d.path().join(LOCK)).unwrap();
        assert!(held.starts_with(b"pid "), "{held:?}");
        assert!(!held.contains(&0), "no hole before the holder's line");
    }

    #[test]
    fn a_deleted_or_replaced_lock_file_stops_the_holder_and_a_second_lock_waits() {
        let d = tempfile::tempdir().unwrap();
        let lock = Lock::acquire(d.path()).unwrap();
        assert!(Lock::try_acquire(d.path()).unwrap().is_none());
        let held = std::fs::read_to_string(d.path().join(LOCK)).unwrap();
        assert!(
            held.contains(&format!("pid {}", std::process::id())),
            "{held}"
        );
        std::fs::remove_file(d.path().join(LOCK)).unwrap();
        // A newcomer now locks a new file ...
        let other = Lock::try_acquire(d.path()).unwrap().expect("new lock file");
        // ... and the first holder may no longer write.
        let mut st = State::load(d.path()).unwrap();
        st.job("a").slurm_id = Some("1".into());
        let err = format!("{:#}", st.record(&lock, d.path(), "a").unwrap_err());
        assert!(err.contains("removed or replaced"), "{err}");
        assert!(!State::journal_path(d.path()).exists());
        st.record(&other, d.path(), "a").unwrap();
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
        let mut s = s;
        s.save(&Lock::acquire(d.path()).unwrap(), d.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(State::path(d.path())).unwrap(),
            text
        );
    }
}
