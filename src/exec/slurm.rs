//! The Slurm client: `sbatch`, `squeue`, `sacct`, `scancel` run as commands, their output parsed,
//! transient failures (controller not answering) told apart from rejections.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::job_state::JobState;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SlurmError {
    /// The controller (or slurmdbd) did not answer; the same call may succeed later.
    #[error("{cmd}: Slurm is not answering: {message}")]
    Transient { cmd: String, message: String },
    /// Slurm answered no (bad partition, QOS limit, invalid dependency...).
    #[error("{cmd}: {message}")]
    Rejected { cmd: String, message: String },
    #[error("{cmd}: {message}")]
    Unavailable { cmd: String, message: String },
}

/// Messages that mean "try again": the controller or database did not answer in time.
const TRANSIENT: &[&str] = &[
    "Unable to contact slurm controller",
    "Socket timed out",
    "Slurm temporarily unable to accept job",
    "Resource temporarily unavailable",
    "Zero Bytes were transmitted or received",
    "Connection refused",
    "Transport endpoint is not connected",
    "slurm_persist_conn_open_without_init",
    "Unable to connect to database",
    "timed out after",
];

pub(crate) struct Slurm {
    pub timeout: Duration,
}

impl Default for Slurm {
    fn default() -> Self {
        Slurm {
            timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct QueueJob {
    pub id: String,
    pub name: String,
    pub state: JobState,
    pub reason: String,
    pub submit_time: String,
    /// The job's working directory: with the name, tells our job from a namesake elsewhere.
    pub work_dir: String,
    /// Times Slurm requeued the job (node failure, preemption): the controller's count, known
    /// even when the failed attempt could write no marker (its node died).
    pub restarts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AcctJob {
    pub id: String,
    pub name: String,
    pub state: JobState,
    pub exit_code: String,
    pub submit_time: String,
    /// States of the job's steps (`batch`, `0`, ...), where an OOM in a step shows.
    pub steps: Vec<(String, JobState, String)>,
    /// Only where asked for (by name, see [`Slurm::sacct_named`]).
    pub work_dir: String,
}

impl Slurm {
    fn run(&self, cmd: &str, args: &[String], cwd: Option<&Path>) -> Result<String, SlurmError> {
        let mut c = Command::new(cmd);
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        // A Slurm command must not outlive sweep: an sbatch orphaned by a killed sweep could
        // create its job after the next sweep looked for it by name, and be submitted twice.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = c.spawn().map_err(|e| SlurmError::Unavailable {
            cmd: cmd.into(),
            message: format!("cannot run `{cmd}`: {e} (is Slurm installed and SLURM_CONF set?)"),
        })?;
        let out = wait_timeout(child, self.timeout).map_err(|m| SlurmError::Transient {
            cmd: cmd.into(),
            message: m,
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            return Ok(stdout);
        }
        let message = if stderr.is_empty() {
            format!("exit status {}", out.status)
        } else {
            stderr
        };
        if TRANSIENT.iter().any(|t| message.contains(t)) {
            Err(SlurmError::Transient {
                cmd: cmd.into(),
                message,
            })
        } else {
            Err(SlurmError::Rejected {
                cmd: cmd.into(),
                message,
            })
        }
    }

    /// `sbatch --parsable ARGS SCRIPT` run in the job directory; returns the job id.
    pub(crate) fn sbatch(&self, job_dir: &Path, args: &[String]) -> Result<String, SlurmError> {
        let mut a = vec!["--parsable".to_string()];
        a.extend(args.iter().cloned());
        a.push("job.sbatch".into());
        let out = self.run("sbatch", &a, Some(job_dir))?;
        // `--parsable` prints `ID` or `ID;CLUSTER`, possibly after warnings on other lines.
        let id = out
            .lines()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .and_then(|l| l.split(';').next())
            .filter(|id| id.chars().all(|c| c.is_ascii_digit() || c == '_'))
            .map(String::from);
        id.ok_or_else(|| SlurmError::Rejected {
            cmd: "sbatch".into(),
            message: format!("unexpected output: {out:?}"),
        })
    }

    /// One `squeue` call for every job of the user in every state, filtered to names that start
    /// with `prefix` (the campaign's).
    pub(crate) fn squeue(&self, prefix: &str) -> Result<Vec<QueueJob>, SlurmError> {
        let args: Vec<String> = [
            "--me",
            "--noheader",
            "--states=all",
            "--array",
            // `--format`'s `%` letters have no restart count: the same fields by name
            // (`JobArrayID` is `%i`), each ended by `|` and never padded or cut.
            "--Format=JobArrayID:|,State:|,Reason:|,SubmitTime:|,WorkDir:|,RestartCnt:|,Name:",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = self.run("squeue", &args, None)?;
        Ok(parse_squeue(&out, prefix))
    }

    /// One `sacct` call for the given ids, steps included, bounded below by `since`.
    pub(crate) fn sacct(&self, ids: &[String], since: &str) -> Result<Vec<AcctJob>, SlurmError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let args = vec![
            "--noheader".to_string(),
            "--parsable2".into(),
            format!("--starttime={since}"),
            "--endtime=now".into(),
            format!("--jobs={}", ids.join(",")),
            "--format=JobID,JobName,State,ExitCode,Submit".into(),
        ];
        let out = self.run("sacct", &args, None);
        let out = match out {
            // Without slurmdbd a site may still keep a job completion log: `sacct -c` reads it.
            Err(SlurmError::Rejected { message, .. })
                if message.contains("accounting storage is disabled") =>
            {
                let mut a = args.clone();
                a.insert(0, "-c".into());
                a.retain(|x| !x.starts_with("--format"));
                a.push("--format=JobID,JobName,State,ExitCode".into());
                self.run("sacct", &a, None)
                    .map_err(|e| SlurmError::Unavailable {
                        cmd: "sacct".into(),
                        message: format!(
                            "accounting is disabled and the completion log is unreadable: {e}"
                        ),
                    })?
            }
            other => other?,
        };
        Ok(parse_sacct(&out))
    }

    /// Every job of this user whose name starts with `prefix` that accounting knows since
    /// `since` (allocations only): what a campaign has in Slurm when its state is gone.
    pub(crate) fn sacct_named(
        &self,
        prefix: &str,
        since: &str,
    ) -> Result<Vec<AcctJob>, SlurmError> {
        let args = vec![
            "--noheader".to_string(),
            "--parsable2".into(),
            "--allocations".into(),
            format!("--starttime={since}"),
            "--endtime=now".into(),
            "--format=JobID,JobName,State,ExitCode,Submit,WorkDir".into(),
        ];
        let out = self.run("sacct", &args, None)?;
        let mut jobs = parse_sacct(&out);
        jobs.retain(|j| j.name.starts_with(prefix));
        Ok(jobs)
    }

    pub(crate) fn scancel(&self, ids: &[String]) -> Result<(), SlurmError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.run("scancel", ids, None).map(|_| ())
    }
}

fn wait_timeout(
    mut child: std::process::Child,
    limit: Duration,
) -> Result<std::process::Output, String> {
    let start = Instant::now();
    // Drain pipes in threads so a chatty command cannot block on a full pipe.
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut v);
        }
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut v);
        }
        v
    });
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let stdout = t1.join().unwrap_or_default();
                let stderr = t2.join().unwrap_or_default();
                return Ok(std::process::Output {
                    status,
                    stdout,
                    stderr,
                });
            }
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

pub(crate) fn parse_squeue(out: &str, prefix: &str) -> Vec<QueueJob> {
    out.lines()
        .filter_map(|l| {
            // The name is last, so a `|` inside a foreign job's name cannot shift our fields.
            let mut f = l.trim().splitn(6, '|');
            let id = f.next()?.trim().to_string();
            let state = JobState::from_slurm(f.next()?.trim());
            let reason = f.next()?.trim().to_string();
            let submit_time = f.next()?.trim().to_string();
            let work_dir = f.next()?.trim().to_string();
            let rest = f.next()?.trim();
            // `RESTARTS|NAME` as sweep asks; a bare `NAME` as `--format=%i|%T|%r|%V|%Z|%j` gave.
            let (restarts, name) = match rest.split_once('|') {
                Some((n, name)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    (n.parse().unwrap_or(0), name.trim().to_string())
                }
                _ => (0, rest.to_string()),
            };
            name.starts_with(prefix).then_some(QueueJob {
                id,
                name,
                state,
                reason,
                submit_time,
                work_dir,
                restarts,
            })
        })
        .collect()
}

pub(crate) fn parse_sacct(out: &str) -> Vec<AcctJob> {
    let mut jobs: Vec<AcctJob> = Vec::new();
    for l in out.lines() {
        let f: Vec<&str> = l.trim().split('|').collect();
        if f.len() < 4 || f[0].is_empty() {
            continue;
        }
        let (id, state, exit) = (f[0], f[2], f[3]);
        match id.split_once('.') {
            Some((job, step)) => {
                if let Some(j) = jobs.iter_mut().rev().find(|j| j.id == job) {
                    j.steps.push((
                        step.to_string(),
                        JobState::from_slurm(state),
                        exit.to_string(),
                    ));
                }
            }
            None => jobs.push(AcctJob {
                id: id.to_string(),
                name: f[1].to_string(),
                state: JobState::from_slurm(state),
                exit_code: exit.to_string(),
                submit_time: f.get(4).map(|s| s.to_string()).unwrap_or_default(),
                steps: Vec::new(),
                work_dir: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            }),
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_squeue_text_filters_by_campaign_prefix() {
        let v = parse_squeue(&fixture("squeue-text-22.05.txt"), "fx:");
        assert_eq!(v.len(), 3);
        let oom = v.iter().find(|j| j.name == "fx:oom").unwrap();
        assert_eq!(
            (oom.id.as_str(), oom.state.as_str(), oom.work_dir.as_str()),
            ("4", "COMPLETED", "/tmp")
        );
        assert_eq!(
            parse_squeue(&fixture("squeue-text-22.05.txt"), "tl:")[0].state,
            "TIMEOUT"
        );
    }

    #[test]
    fn squeue_by_field_name_carries_the_restart_count() {
        // As `squeue --Format=JobArrayID:|,...,RestartCnt:|,Name:` printed it on 22.05 for a
        // job requeued after a node failure, and a foreign job with a `|` in its name.
        let out = "5017|PENDING|BeginTime|2026-12-07T12:02:45|/tmp/c/jobs/rq|1|rq:rq-n1\n\
                   5018|PENDING|None|2026-12-07T12:02:46|/tmp|0|other|name\n";
        let v = parse_squeue(out, "rq:");
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].id.as_str(), v[0].restarts, v[0].name.as_str()),
            ("5017", 1, "rq:rq-n1")
        );
        assert_eq!(parse_squeue(out, "other")[0].name, "other|name");
        assert!(
            parse_squeue(&fixture("squeue-text-22.05.txt"), "fx:")
                .iter()
                .all(|j| j.restarts == 0)
        );
    }

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/slurm")
            .join(name);
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn recorded_sacct_steps_attach_to_their_job() {
        let v = parse_sacct(&fixture("sacct-parsable2-22.05.txt"));
        assert_eq!(v.len(), 3);
        let oom = v.iter().find(|j| j.name == "fx:oom").unwrap();
        assert_eq!(oom.state, "COMPLETED");
        assert!(
            oom.steps.iter().any(|(step, state, exit)| step == "0"
                && state == "OUT_OF_MEMORY"
                && exit == "0:125")
        );
        assert_eq!(
            v.iter().find(|j| j.name == "fx:held").unwrap().state,
            "PENDING"
        );
        assert!(
            JobState::from_slurm("CANCELLED by 0").is_terminal()
                && !JobState::from_slurm("PENDING").is_terminal()
        );
    }
}
