//! The local executor: runs a campaign's single-node jobs on this machine without Slurm.
//!
//! Each job script runs as `bash job.sbatch` in its job directory, one job at a time (a job
//! owns the whole node, as `--exclusive` would), with the variables a one-node allocation has
//! (`SLURM_JOB_ID`, `SLURM_JOB_NODELIST`, `SLURM_NTASKS`, ...) and a directory on `PATH` whose
//! `srun` and `scontrol` run sweep's own stand-ins ([`srun`], [`scontrol`]): `srun` starts the
//! step's tasks locally with `SLURM_PROCID`/`SLURM_LOCALID`, one `CUDA_VISIBLE_DEVICES` per task
//! from `--gpu-bind=map_gpu:`, and applies `--cpu-bind=mask_cpu:`/`map_cpu:` for real with
//! `sched_setaffinity`. The script's `started`/`finished` markers, per-rank logs and the
//! nvidia-smi sampler work as under Slurm, so `status` and `collect` read the same files.
//!
//! State: the job's "Slurm id" is a local number recorded in `state.json` with `executor =
//! "local"`, written before the job starts (state RUNNING) and after it ends, under the campaign
//! lock. A job whose sweep died while it ran is found RUNNING with no finished marker on the next
//! run and reported `lost`; it is never started twice without `--rerun`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::campaign::{Manifest, ManifestJob};
use crate::executor::Executor;
use crate::job_state::JobState;
use crate::state::{Lock, State};

const BIN_DIR: &str = ".local-bin";

#[derive(Debug, Default, Clone)]
pub(crate) struct LocalOptions {
    pub stages: Vec<String>,
    pub dry_run: bool,
    /// Run again jobs that already ran (their earlier ids go to the job's history).
    pub rerun: bool,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct LocalReport {
    /// (job, local id, final state, exit code)
    pub ran: Vec<(String, String, JobState, i32)>,
    pub already: usize,
    pub skipped: Vec<(String, String)>,
    pub commands: Vec<String>,
}

/// This machine's short host name: the node name jobs see.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).to_string()
    } else {
        "localhost".into()
    };
    name.split('.').next().unwrap_or("localhost").to_string()
}

/// CPUs this process may run on (its affinity), in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1))
                .collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Writes the `srun`/`scontrol` stand-ins that call this very binary.
fn write_shims(dir: &Path) -> Result<PathBuf> {
    let bin = dir.join(BIN_DIR);
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let exe = std::env::current_exe().context("finding sweep's own executable")?;
    let exe = crate::render::shell_quote(&exe.display().to_string());
    for (name, sub) in [("srun", "srun"), ("scontrol", "scontrol")] {
        let p = bin.join(name);
        let text = format!(
            "#!/bin/sh\n# sweep's local executor: {name} without Slurm.\nexec {exe} local-exec {sub} \"$@\"\n"
        );
        crate::campaign::write_if_changed(&p, text.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(bin)
}

/// Reads `point.json`'s batch/slurm numbers the environment of an allocation needs.
fn job_shape(job_dir: &Path) -> (u32, u32, u32) {
    let point: serde_json::Value = std::fs::read_to_string(job_dir.join("point.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let get = |k: &str| {
        point
            .get("params")
            .and_then(|p| p.get(k))
            .and_then(|v| v.as_u64())
    };
    let gpn = get("gpus_per_node").unwrap_or(0) as u32;
    let tpn = point
        .get("slurm")
        .and_then(|s| s.get("ntasks_per_node"))
        .and_then(|v| v.as_u64())
        .map(|v| v as u32)
        .unwrap_or(gpn.max(1));
    let cpt = point
        .get("slurm")
        .and_then(|s| s.get("cpus_per_task"))
        .and_then(|v| v.as_u64())
        .map(|v| v as u32)
        .unwrap_or(1);
    (gpn, tpn, cpt)
}

/// Runs every selected job not yet run, stage by stage (an `afterok` stage runs only if every
/// job of the stages it waits for completed).
pub(crate) fn run(dir: &Path, opts: &LocalOptions) -> Result<LocalReport> {
    crate::state::ensure_campaign(dir)?;
    let m = Manifest::load(dir)?;
    for s in &opts.stages {
        if !m.stages.iter().any(|x| &x.name == s) {
            bail!("no stage `{s}` in campaign `{}`", m.campaign);
        }
    }
    let dir = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let mut report = LocalReport::default();
    let order = m.stage_order();
    let mut jobs: Vec<&ManifestJob> = m
        .jobs
        .iter()
        .filter(|j| opts.stages.is_empty() || opts.stages.contains(&j.stage))
        .collect();
    jobs.sort_by_key(|j| order.get(j.stage.as_str()).copied().unwrap_or(usize::MAX));
    let bin = if opts.dry_run {
        dir.join(BIN_DIR)
    } else {
        write_shims(&dir)?
    };
    let host = hostname();
    for job in jobs {
        let job_dir = dir.join(&job.dir);
        let known = {
            State::load(&dir)?
                .jobs
                .get(&job.id)
                .cloned()
                .unwrap_or_default()
        };
        if known.slurm_id.is_some() && !opts.rerun {
            if Executor::of(&known) == Executor::Local && known.state == Some(JobState::Running) {
                // The sweep that ran it died; the script may have gone on and finished since.
                let lock = Lock::acquire(&dir)?;
                let mut st = State::load(&dir)?;
                let sid = known.slurm_id.clone().unwrap_or_default();
                let js = st.job(&job.id);
                match crate::markers::read_finished(&job_dir).filter(|f| f.slurm_job_id == sid) {
                    Some(f) => {
                        js.state = Some(crate::markers::state_from_marker(&job_dir, &f).0);
                        js.exit_code = Some(format!("{}:0", f.exit_code));
                    }
                    None if !script_alive(&job_dir) => {
                        js.state = Some(JobState::Lost);
                        js.reason = Some(
                            "sweep stopped while the job ran, and the job left no finished marker"
                                .into(),
                        );
                    }
                    None => {}
                }
                st.record(&lock, &dir, &job.id)?;
            }
            report.already += 1;
            continue;
        }
        if job.nodes > 1 {
            report.skipped.push((
                job.id.clone(),
                format!("needs {} nodes; the local executor has one", job.nodes),
            ));
            continue;
        }
        if let Some(why) = blocked_by_dependency(&dir, &m, job)? {
            report.skipped.push((job.id.clone(), why));
            continue;
        }
        if opts.dry_run {
            report.commands.push(format!(
                "(cd {} && PATH={}:$PATH bash job.sbatch)",
                crate::render::shell_quote(&job_dir.display().to_string()),
                crate::render::shell_quote(&bin.display().to_string())
            ));
            continue;
        }
        let (state, code) = run_job(&dir, job, &job_dir, &bin, &host)?;
        let id = {
            let st = State::load(&dir)?;
            st.jobs
                .get(&job.id)
                .and_then(|j| j.slurm_id.clone())
                .unwrap_or_default()
        };
        report.ran.push((job.id.clone(), id, state, code));
    }
    Ok(report)
}

/// `afterok`: every job of the awaited stages COMPLETED; `afterany`: all ended; `afternotok`: one failed.
fn blocked_by_dependency(dir: &Path, m: &Manifest, job: &ManifestJob) -> Result<Option<String>> {
    let Some(stage) = m.stages.iter().find(|s| s.name == job.stage) else {
        return Ok(None);
    };
    if stage.after.is_empty() {
        return Ok(None);
    }
    let st = State::load(dir)?;
    let state_of = |j: &ManifestJob| st.jobs.get(&j.id).and_then(|s| s.state.clone());
    let upstream = |kind: &str| -> Vec<Option<JobState>> {
        m.jobs
            .iter()
            .filter(|j| stage.after.contains(&j.stage) && stage.kind_of(&j.stage).as_str() == kind)
            .map(state_of)
            .collect()
    };
    let deps = stage.describe();
    let failed = upstream("afterok").iter().any(|s| {
        s.as_ref()
            .is_some_and(|x| x.is_terminal() && *x != JobState::Completed)
    });
    if failed {
        return Ok(Some(format!(
            "{deps}: a job there did not complete (DependencyNeverSatisfied)"
        )));
    }
    let all_ended = m
        .jobs
        .iter()
        .filter(|j| stage.after.contains(&j.stage))
        .all(|j| state_of(j).as_ref().is_some_and(JobState::is_terminal));
    if !all_ended {
        return Ok(Some(format!("waits for {deps}, not all run")));
    }
    let notok = upstream("afternotok");
    let ok = !notok.is_empty() && notok.iter().all(|s| *s == Some(JobState::Completed));
    Ok(ok.then(|| format!("{deps}: every job completed")))
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Catches the signals srun and sbatch forward, so the tasks get them rather than sweep dying.
fn catch_signals() {
    for s in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGHUP,
    ] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(s, on_signal as *const () as libc::sighandler_t);
        }
    }
}

fn run_job(
    dir: &Path,
    job: &ManifestJob,
    job_dir: &Path,
    bin: &Path,
    host: &str,
) -> Result<(JobState, i32)> {
    let id = start_attempt(dir, job)?;
    let out_path = job_dir.join(format!("slurm-{id}.out"));
    std::fs::File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    // Emptied first (Slurm's default `--open-mode=truncate`), then written O_APPEND: every write
    // lands at the end of the file whoever else writes there (the time-limit line goes through
    // a descriptor of its own, which the job's next writes at a shared offset would overwrite).
    let out = std::fs::OpenOptions::new()
        .append(true)
        .open(&out_path)
        .with_context(|| format!("opening {}", out_path.display()))?;
    let mut c = job_command(job, job_dir, bin, host, &id, out)?;
    catch_signals();
    let mut child = c.spawn().context("starting bash for the job script")?;
    let (status, timed_out) = supervise(&mut child, job, job_dir, host, &id, &out_path)?;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let (mut state, oom) =
        match crate::markers::read_finished(job_dir).filter(|f| f.slurm_job_id == id) {
            Some(f) => crate::markers::state_from_marker(job_dir, &f),
            None => (
                if code == 0 {
                    JobState::Completed
                } else {
                    JobState::Failed
                },
                false,
            ),
        };
    if timed_out {
        state = JobState::Timeout;
    }
    let lock = Lock::acquire(dir)?;
    let mut st = State::load(dir)?;
    let js = st.job(&job.id);
    js.state = Some(state.clone());
    js.exit_code = Some(format!("{code}:0"));
    js.step_oom = oom.then_some(true);
    st.record(&lock, dir, &job.id)?;
    Ok((state, code))
}

/// Records a new attempt of the job as running, under the next local job id, which it returns.
fn start_attempt(dir: &Path, job: &ManifestJob) -> Result<String> {
    let lock = Lock::acquire(dir)?;
    let mut st = State::load(dir)?;
    let next = st
        .jobs
        .values()
        .flat_map(|j| {
            j.slurm_id
                .iter()
                .chain(j.history.iter().map(|h| &h.slurm_id))
        })
        .filter_map(|s| s.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let js = st.job(&job.id);
    if let Some(old) = js.slurm_id.take() {
        js.history.push(crate::state::PastAttempt {
            slurm_id: old,
            state: js.state.clone(),
        });
    }
    js.slurm_id = Some(next.to_string());
    js.executor = Some(Executor::Local.name().into());
    js.submit_time = Some(crate::state::now_utc());
    js.attempts += 1;
    js.state = Some(JobState::Running);
    js.exit_code = None;
    js.reason = None;
    st.record(&lock, dir, &job.id)?;
    Ok(next.to_string())
}

/// The job script's command, in its own process group, with the environment Slurm gives a batch
/// script and its output in `out`.
fn job_command(
    job: &ManifestJob,
    job_dir: &Path,
    bin: &Path,
    host: &str,
    id: &str,
    out: std::fs::File,
) -> Result<Command> {
    let (gpn, tpn, cpt) = job_shape(job_dir);
    let err = out.try_clone()?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    c.arg("job.sbatch")
        .current_dir(job_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("PATH", path)
        .env("SLURM_JOB_ID", id)
        .env("SLURM_JOBID", id)
        .env("SLURM_JOB_NAME", &job.slurm_name)
        .env("SLURM_SUBMIT_DIR", job_dir)
        .env("SLURM_JOB_NODELIST", host)
        .env("SLURM_NODELIST", host)
        .env("SLURMD_NODENAME", host)
        .env("SLURM_NNODES", "1")
        .env("SLURM_JOB_NUM_NODES", "1")
        .env("SLURM_NODEID", "0")
        .env("SLURM_NTASKS", tpn.to_string())
        .env("SLURM_NPROCS", tpn.to_string())
        .env("SLURM_NTASKS_PER_NODE", tpn.to_string())
        .env("SLURM_TASKS_PER_NODE", tpn.to_string())
        .env("SLURM_CPUS_PER_TASK", cpt.to_string())
        .env("SLURM_GPUS_ON_NODE", gpn.to_string())
        .env("SLURM_RESTART_COUNT", "0")
        .env("SWEEP_EXECUTOR", Executor::Local.name());
    if gpn > 0 && std::env::var_os("CUDA_VISIBLE_DEVICES").is_none() {
        let gpus: Vec<String> = (0..gpn).map(|g| g.to_string()).collect();
        c.env("SLURM_JOB_GPUS", gpus.join(","));
    }
    {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
    }
    Ok(c)
}

/// Waits for the job script, forwarding signals to its process group and enforcing the time
/// limit as Slurm does; returns its exit status and whether it ran out of time.
fn supervise(
    child: &mut std::process::Child,
    job: &ManifestJob,
    job_dir: &Path,
    host: &str,
    id: &str,
    out_path: &Path,
) -> Result<(std::process::ExitStatus, bool)> {
    let pgid = child.id() as i32;
    let limit = job.time_limit_min.map(|m| Duration::from_secs(m * 60));
    let signal_before = signal_before_s(job_dir);
    let t0 = Instant::now();
    let mut warned = false;
    let mut timed_out = false;
    let mut killed_at: Option<Instant> = None;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        if sig != 0 {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-pgid, sig) };
        }
        if let Some(lim) = limit {
            let el = t0.elapsed();
            if let Some(b) = signal_before
                && !warned
                && el + Duration::from_secs(b) >= lim
            {
                warned = true;
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGUSR1) };
            }
            if el >= lim && !timed_out {
                timed_out = true;
                let _ = append_line(
                    out_path,
                    &format!(
                        "sweep-local: error: *** JOB {id} ON {host} CANCELLED AT {} DUE TO TIME LIMIT ***",
                        crate::state::now_utc()
                    ),
                );
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGTERM) };
                killed_at = Some(Instant::now());
            }
        }
        if let Some(k) = killed_at
            && k.elapsed() > Duration::from_secs(30)
        {
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // As Slurm does when a batch script ends: what it left running in its process group (a
    // background task it never waited for) is killed, so nothing of a job outlives it here
    // either. (The group outlives its leader only while members remain, so its id is not
    // reused; with none left this is ESRCH.)
    // SAFETY: signalling our own child's process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    Ok((status, timed_out))
}

/// Whether a process still runs in the job directory (its script outlived a killed sweep).
fn script_alive(job_dir: &Path) -> bool {
    let Ok(want) = std::fs::canonicalize(job_dir) else {
        return false;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        p.file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
            && std::fs::read_link(p.path().join("cwd")).is_ok_and(|cwd| cwd == want)
    })
}

fn signal_before_s(job_dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(job_dir.join("job.sbatch")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("#SBATCH --signal=USR1@"))
        .and_then(|s| s.trim().parse().ok())
}

fn append_line(p: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(p)?;
    writeln!(f, "{line}")
}

// --- srun and scontrol stand-ins ---------------------------------------------------------------

/// What `srun` was asked for, as far as one node can honour it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SrunArgs {
    pub nodes: Option<u32>,
    pub ntasks: Option<u32>,
    pub ntasks_per_node: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub cpu_bind: Option<String>,
    pub gpu_bind: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub label: bool,
    pub kill_on_bad_exit: bool,
    pub mpi: Option<String>,
    pub command: Vec<String>,
    /// Options accepted and ignored on one node (with a note on stderr).
    pub ignored: Vec<String>,
}

/// Parses srun's command line (the subset sbatch scripts use); an unknown option is an error
/// rather than a silently different step.
pub(crate) fn parse_srun(args: &[String]) -> Result<SrunArgs> {
    const WITH_VALUE: &[(&str, Option<char>)] = &[
        ("nodes", Some('N')),
        ("ntasks", Some('n')),
        ("ntasks-per-node", None),
        ("cpus-per-task", Some('c')),
        ("cpu-bind", None),
        ("cpu_bind", None),
        ("gpu-bind", None),
        ("output", Some('o')),
        ("error", Some('e')),
        ("mpi", None),
        ("export", None),
        ("gpus-per-task", None),
        ("gpus-per-node", None),
        ("gpus", Some('G')),
        ("gres", None),
        ("mem", None),
        ("mem-per-cpu", None),
        ("mem-per-gpu", None),
        ("time", Some('t')),
        ("job-name", Some('J')),
        ("nodelist", Some('w')),
        ("distribution", Some('m')),
        ("chdir", Some('D')),
        ("cpu-freq", None),
        ("kill-on-bad-exit", Some('K')),
    ];
    const FLAGS: &[(&str, Option<char>)] = &[
        ("label", Some('l')),
        ("unbuffered", Some('u')),
        ("overlap", None),
        ("exclusive", None),
        ("quiet", Some('Q')),
        ("verbose", Some('v')),
        ("exact", None),
        ("whole", None),
        ("overcommit", Some('O')),
        ("no-kill", None),
        ("wait", None),
    ];
    let mut a = SrunArgs::default();
    let mut i = 0;
    let set = |a: &mut SrunArgs, name: &str, v: Option<String>| -> Result<()> {
        let num = |v: &Option<String>| -> Result<u32> {
            let s = v.as_deref().unwrap_or("");
            s.split('-')
                .next()
                .unwrap_or("")
                .parse::<u32>()
                .with_context(|| format!("srun: --{name}={s}: not a number"))
        };
        match name {
            "nodes" => a.nodes = Some(num(&v)?),
            "ntasks" => a.ntasks = Some(num(&v)?),
            "ntasks-per-node" => a.ntasks_per_node = Some(num(&v)?),
            "cpus-per-task" => a.cpus_per_task = Some(num(&v)?),
            "cpu-bind" | "cpu_bind" => a.cpu_bind = v,
            "gpu-bind" => a.gpu_bind = v,
            "output" => a.output = v,
            "error" => a.error = v,
            "mpi" => a.mpi = v,
            "label" => a.label = true,
            "kill-on-bad-exit" => a.kill_on_bad_exit = v.as_deref().is_none_or(|x| x != "0"),
            other => a.ignored.push(match v {
                Some(v) => format!("--{other}={v}"),
                None => format!("--{other}"),
            }),
        }
        Ok(())
    };
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if name == "kill-on-bad-exit" {
                set(&mut a, name, inline)?;
            } else if WITH_VALUE.iter().any(|(n, _)| *n == name) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .with_context(|| format!("srun: option --{name} needs a value"))?
                    }
                };
                set(&mut a, name, Some(v))?;
            } else if FLAGS.iter().any(|(n, _)| *n == name) {
                set(&mut a, name, None)?;
            } else {
                bail!("srun (local executor): unsupported option --{name}");
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().unwrap_or(' ');
            if let Some((n, _)) = FLAGS.iter().find(|(_, s)| *s == Some(c)) {
                set(&mut a, n, None)?;
            } else if let Some((n, _)) = WITH_VALUE.iter().find(|(_, s)| *s == Some(c)) {
                let rest = &short[c.len_utf8()..];
                let v = if !rest.is_empty() {
                    rest.trim_start_matches('=').to_string()
                } else if *n == "kill-on-bad-exit" {
                    "1".into()
                } else {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .with_context(|| format!("srun: option -{c} needs a value"))?
                };
                set(&mut a, n, Some(v))?;
            } else {
                bail!("srun (local executor): unsupported option -{c}");
            }
        } else {
            break;
        }
        i += 1;
    }
    a.command = args[i..].to_vec();
    if a.command.is_empty() {
        bail!("srun: no command to run");
    }
    Ok(a)
}

/// The CPU set of each task from `--cpu-bind` (after `verbose,`): `mask_cpu:` hex masks or
/// `map_cpu:` ids, task i taking entry i modulo their number; `None` for no binding.
pub(crate) fn cpu_sets(bind: &str, ntasks: u32) -> Result<Option<Vec<Vec<usize>>>> {
    let spec: Vec<&str> = bind
        .split(',')
        .filter(|p| *p != "verbose" && *p != "quiet")
        .collect();
    let spec = spec.join(",");
    let (kind, list) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
    let entries: Vec<Vec<usize>> = match kind {
        "mask_cpu" => list
            .split(',')
            .map(|m| {
                let hex = m.trim_start_matches("0x").trim_start_matches("0X");
                let mut cpus = Vec::new();
                for (pos, ch) in hex.chars().rev().enumerate() {
                    let d = ch
                        .to_digit(16)
                        .with_context(|| format!("--cpu-bind: `{m}` is not a hex mask"))?;
                    for b in 0..4 {
                        if d & (1 << b) != 0 {
                            cpus.push(pos * 4 + b);
                        }
                    }
                }
                Ok(cpus)
            })
            .collect::<Result<_>>()?,
        "map_cpu" => list
            .split(',')
            .map(|c| {
                c.trim()
                    .parse::<usize>()
                    .map(|c| vec![c])
                    .with_context(|| format!("--cpu-bind: `{c}` is not a CPU id"))
            })
            .collect::<Result<_>>()?,
        "" | "none" | "no" => return Ok(None),
        other => bail!("--cpu-bind={other}: the local executor applies mask_cpu and map_cpu only"),
    };
    if entries.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        (0..ntasks as usize)
            .map(|t| entries[t % entries.len()].clone())
            .collect(),
    ))
}

/// `CUDA_VISIBLE_DEVICES` of each task from `--gpu-bind`: `map_gpu:` ids (relative to the
/// job's GPUs), `single:N` (N tasks per GPU, in order), or every GPU of the job.
pub(crate) fn gpu_sets(
    bind: Option<&str>,
    ntasks: u32,
    job_gpus: &[String],
) -> Result<Vec<String>> {
    let bind = bind.unwrap_or("none");
    let spec: Vec<&str> = bind.split(',').filter(|p| *p != "verbose").collect();
    let spec = spec.join(",");
    let (kind, list) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
    let all = job_gpus.join(",");
    let pick = |i: usize| job_gpus.get(i).cloned().unwrap_or_else(|| i.to_string());
    Ok(match kind {
        "map_gpu" => {
            let ids: Vec<usize> = list
                .split(',')
                .map(|g| {
                    g.trim()
                        .parse::<usize>()
                        .with_context(|| format!("--gpu-bind: `{g}` is not a GPU id"))
                })
                .collect::<Result<_>>()?;
            if ids.is_empty() {
                bail!("--gpu-bind=map_gpu: needs GPU ids");
            }
            (0..ntasks as usize)
                .map(|t| pick(ids[t % ids.len()]))
                .collect()
        }
        "single" => {
            let per: usize = list.parse().context("--gpu-bind=single:N needs a number")?;
            (0..ntasks as usize).map(|t| pick(t / per.max(1))).collect()
        }
        _ => vec![all; ntasks as usize],
    })
}

/// Expands srun's file-name patterns for task `t`.
fn output_name(pattern: &str, t: u32, job: &str, step: u32, host: &str) -> String {
    let mut s = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            s.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => s.push_str(&t.to_string()),
            Some('j') | Some('J') => s.push_str(job),
            Some('s') => s.push_str(&step.to_string()),
            Some('N') => s.push_str(host),
            Some('n') => s.push('0'),
            Some('%') => s.push('%'),
            Some(o) => {
                s.push('%');
                s.push(o);
            }
            None => s.push('%'),
        }
    }
    s
}

fn next_step_id() -> u32 {
    // Step ids count up within the job, as Slurm's do; the counter lives beside the markers.
    let p = PathBuf::from(".sweep-local-steps");
    let n = std::fs::read_to_string(&p)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let _ = std::fs::write(&p, (n + 1).to_string());
    n
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "Killed",
        libc::SIGTERM => "Terminated",
        libc::SIGSEGV => "Segmentation fault",
        libc::SIGABRT => "Aborted",
        libc::SIGBUS => "Bus error",
        libc::SIGINT => "Interrupt",
        _ => "Killed by a signal",
    }
}

/// One srun step as resolved from its arguments and the job's environment.
struct Step {
    args: SrunArgs,
    ntasks: u32,
    host: String,
    job: String,
    step: u32,
    /// `--cpu-bind=verbose`: report each task's mask as Slurm does.
    verbose: bool,
    cpus: Option<Vec<Vec<usize>>>,
    allowed: Vec<usize>,
    gpus: Vec<String>,
}

/// `srun` under the local executor: starts the step's tasks here and returns srun's exit code.
pub(crate) fn srun(args: &[String]) -> Result<i32> {
    let s = Step::resolve(parse_srun(args)?)?;
    catch_signals();
    let mut children = Vec::new();
    let mut streams = Vec::new();
    for t in 0..s.ntasks {
        children.push(Some(s.spawn_task(t, &mut streams)?));
    }
    s.wait_tasks(&mut children, &mut streams)
}

impl Step {
    fn resolve(a: SrunArgs) -> Result<Step> {
        if a.nodes.unwrap_or(1) > 1 {
            bail!(
                "srun: error: the local executor has one node; this step asks for --nodes={}",
                a.nodes.unwrap_or(1)
            );
        }
        let env_u32 = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        let ntasks = a
            .ntasks
            .or(a.ntasks_per_node)
            .or_else(|| env_u32("SLURM_NTASKS"))
            .unwrap_or(1)
            .max(1);
        let host = std::env::var("SLURMD_NODENAME").unwrap_or_else(|_| hostname());
        let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "0".into());
        let step = next_step_id();
        for o in &a.ignored {
            stderr_line(format_args!(
                "srun (local executor): {o} has no effect on one node"
            ));
        }
        if let Some(mpi) = a.mpi.as_deref().filter(|m| *m != "none") {
            stderr_line(format_args!(
                "srun (local executor): --mpi={mpi} is not provided; each task runs as a singleton (MPI programs see one rank each)"
            ));
        }
        let verbose = a
            .cpu_bind
            .as_deref()
            .is_some_and(|b| b.split(',').any(|p| p == "verbose"));
        let cpus = match a.cpu_bind.as_deref() {
            Some(b) => cpu_sets(b, ntasks)?,
            None => None,
        };
        let allowed = allowed_cpus();
        let job_gpus: Vec<String> = std::env::var("CUDA_VISIBLE_DEVICES")
            .ok()
            .or_else(|| std::env::var("SLURM_JOB_GPUS").ok())
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let gpus = gpu_sets(a.gpu_bind.as_deref(), ntasks, &job_gpus)?;
        Ok(Step {
            args: a,
            ntasks,
            host,
            job,
            step,
            verbose,
            cpus,
            allowed,
            gpus,
        })
    }

    /// Task `t`'s command with the environment Slurm gives a step's task.
    fn task_command(&self, t: u32) -> Command {
        let a = &self.args;
        let (ntasks, step) = (self.ntasks, self.step);
        let mut c = Command::new(&a.command[0]);
        c.args(&a.command[1..])
            .stdin(if t == 0 {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .env("SLURM_PROCID", t.to_string())
            .env("SLURM_LOCALID", t.to_string())
            .env("SLURM_NODEID", "0")
            .env("SLURM_STEP_ID", step.to_string())
            .env("SLURM_STEPID", step.to_string())
            .env("SLURM_NTASKS", ntasks.to_string())
            .env("SLURM_NPROCS", ntasks.to_string())
            .env("SLURM_STEP_NUM_TASKS", ntasks.to_string())
            .env("SLURM_STEP_NUM_NODES", "1")
            .env("SLURM_STEP_NODELIST", &self.host)
            .env("SLURM_STEP_TASKS_PER_NODE", ntasks.to_string());
        if let Some(c2) = a.cpus_per_task {
            c.env("SLURM_CPUS_PER_TASK", c2.to_string());
        }
        if let Some(b) = &a.cpu_bind {
            c.env("SLURM_CPU_BIND", b);
        }
        let gpus = &self.gpus[t as usize];
        if !gpus.is_empty() {
            c.env("CUDA_VISIBLE_DEVICES", gpus)
                .env("SLURM_STEP_GPUS", gpus);
        }
        c
    }

    /// Binds task `t` to the CPUs of its set that exist here; returns that set.
    fn bind_cpus(&self, c: &mut Command, t: u32) -> Option<Vec<usize>> {
        let set: Option<Vec<usize>> = self.cpus.as_ref().map(|sets| {
            sets[t as usize]
                .iter()
                .copied()
                .filter(|c| self.allowed.contains(c))
                .collect()
        });
        match &set {
            Some(s) if s.is_empty() => {
                stderr_line(format_args!(
                    "srun (local executor): task {t}: none of its CPUs {:?} exist here; not bound",
                    self.cpus.as_ref().map(|x| &x[t as usize])
                ));
            }
            Some(s) => {
                let s = s.clone();
                use std::os::unix::process::CommandExt;
                // SAFETY: sched_setaffinity is async-signal-safe and uses only the copied set.
                unsafe {
                    c.pre_exec(move || {
                        let mut cs: libc::cpu_set_t = std::mem::zeroed();
                        for &cpu in &s {
                            libc::CPU_SET(cpu, &mut cs);
                        }
                        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &cs)
                            != 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            None => {}
        }
        set
    }

    /// Points task `t`'s output at `--output`/`--error`, or else at pipes that srun reads and
    /// forwards to its own stdout/stderr in whole lines ([`TaskStream`]), as Slurm's srun does
    /// without `--unbuffered`: tasks writing straight into the job's output file would glue a
    /// line of one into a line another writes in pieces. Returns whether it is piped.
    fn redirect_output(&self, c: &mut Command, t: u32) -> Result<bool> {
        let a = &self.args;
        let name = |p: &String| output_name(p, t, &self.job, self.step, &self.host);
        let out_file = a.output.as_ref().map(name);
        let err_file = a.error.as_ref().map(name);
        let open = |p: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("srun: cannot open {p}"))
        };
        match &out_file {
            Some(p) => {
                let f = open(p)?;
                let e = match &err_file {
                    Some(ep) => open(ep)?,
                    None => f.try_clone()?,
                };
                c.stdout(f).stderr(e);
            }
            None => {
                c.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        Ok(out_file.is_none())
    }

    fn spawn_task(&self, t: u32, streams: &mut Vec<TaskStream>) -> Result<std::process::Child> {
        let mut c = self.task_command(t);
        let set = self.bind_cpus(&mut c, t);
        let piped = self.redirect_output(&mut c, t)?;
        let mut child = c
            .spawn()
            .with_context(|| format!("srun: cannot start `{}`", self.args.command[0]))?;
        if self.verbose
            && let Some(s) = set.as_ref().filter(|s| !s.is_empty())
        {
            let mask = s
                .iter()
                .fold(0u128, |m, &c| if c < 128 { m | (1u128 << c) } else { m });
            stderr_line(format_args!(
                "cpu-bind=MASK - {}, task {t:>2} {t:>2} [{}]: mask {mask:#x} set",
                self.host,
                child.id()
            ));
        }
        if piped {
            let label = self.args.label.then_some(t);
            if let Some(o) = child.stdout.take() {
                streams.push(TaskStream::new(o.into(), label, false)?);
            }
            if let Some(e) = child.stderr.take() {
                streams.push(TaskStream::new(e.into(), label, true)?);
            }
        }
        Ok(child)
    }

    /// Waits for every task, forwarding their output, signals and honouring
    /// `--kill-on-bad-exit`; returns srun's exit code.
    fn wait_tasks(
        &self,
        children: &mut [Option<std::process::Child>],
        streams: &mut [TaskStream],
    ) -> Result<i32> {
        let (host, job, step) = (&self.host, &self.job, self.step);
        let mut codes: BTreeMap<u32, i32> = BTreeMap::new();
        let mut killing = false;
        // Tasks this srun terminated after another failed (--kill-on-bad-exit): their signal is
        // its doing, not theirs, so the exit code is that of the tasks that ended by themselves.
        let mut stopped: Vec<u32> = Vec::new();
        while codes.len() + stopped.len() < children.len() {
            let sig = SIGNAL.swap(0, Ordering::SeqCst);
            for (t, ch) in children.iter_mut().enumerate() {
                let Some(c) = ch else { continue };
                if sig != 0 {
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(c.id() as i32, sig) };
                }
                if let Some(st) = c.try_wait()? {
                    let code = task_exit_code(host, t, st);
                    use std::os::unix::process::ExitStatusExt;
                    if !(killing
                        && (st.signal() == Some(libc::SIGTERM)
                            || st.code() == Some(128 + libc::SIGTERM)))
                    {
                        codes.insert(t as u32, code);
                    } else {
                        stopped.push(t as u32);
                    }
                    *ch = None;
                    if code != 0 && self.args.kill_on_bad_exit && !killing {
                        killing = true;
                        stderr_line(format_args!("srun: error: Terminating StepId={job}.{step}"));
                        for o in children.iter().flatten() {
                            // SAFETY: as above.
                            unsafe { libc::kill(o.id() as i32, libc::SIGTERM) };
                        }
                    }
                    break;
                }
            }
            if sig == 0 {
                TaskStream::wait_any(streams, 20);
            }
            for s in streams.iter_mut() {
                s.forward();
            }
        }
        // What the tasks wrote before they ended is in the pipes now: forward it to the last
        // byte, without waiting for the end of a pipe that something a task left running
        // still holds open (Slurm ends what a step's tasks leave behind).
        for s in streams.iter_mut() {
            s.forward();
            s.finish();
        }
        Ok(codes
            .values()
            .copied()
            .max()
            .unwrap_or(if stopped.is_empty() {
                0
            } else {
                128 + libc::SIGTERM
            }))
    }
}

/// A task's exit code as srun counts it, reporting a failure as srun does.
fn task_exit_code(host: &str, t: usize, st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(0), _) => 0,
        (Some(x), _) => {
            stderr_line(format_args!(
                "srun: error: {host}: task {t}: Exited with exit code {x}"
            ));
            x
        }
        (None, Some(s)) => {
            stderr_line(format_args!(
                "srun: error: {host}: task {t}: {}",
                signal_name(s)
            ));
            128 + s
        }
        (None, None) => 1,
    }
}

/// Writes one whole line to stderr with a single write. Stderr is unbuffered, so `eprintln!`
/// sends a formatted line out in pieces, and a task writing to the same file could land in
/// between (seen: a task's output inside a `cpu-bind=MASK` line).
fn stderr_line(line: std::fmt::Arguments<'_>) {
    let mut s = line.to_string();
    s.push('\n');
    let _ = std::io::Write::write_all(&mut std::io::stderr(), s.as_bytes());
}

/// Longest part of a line a task stream holds back waiting for its newline; a longer one (a
/// progress bar redrawn with `\r` for a whole run) is forwarded as it is.
const MAX_HELD: usize = 64 * 1024;

/// One task's stdout or stderr as srun reads it from a pipe (non-blocking) and forwards it to
/// its own, in whole lines with one write each (`N: ` before each with `--label`).
struct TaskStream {
    fd: std::os::fd::OwnedFd,
    label: Option<u32>,
    err: bool,
    /// The start of a line whose newline has not come yet.
    held: Vec<u8>,
    open: bool,
}

impl TaskStream {
    fn new(fd: std::os::fd::OwnedFd, label: Option<u32>, err: bool) -> Result<TaskStream> {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor this stream owns.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if fl < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
                return Err(std::io::Error::last_os_error()).context("srun: task output pipe");
            }
        }
        Ok(TaskStream {
            fd,
            label,
            err,
            held: Vec::new(),
            open: true,
        })
    }

    /// Waits up to `ms` milliseconds for output on any open stream (or a signal).
    fn wait_any(streams: &[TaskStream], ms: i32) {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .filter(|s| s.open)
            .map(|s| libc::pollfd {
                fd: s.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is valid for its length (an empty set just sleeps).
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    }

    /// Reads all there is now, without waiting, and forwards the whole lines of it.
    fn forward(&mut self) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 64 * 1024];
        // Bounded, so that a process a task left behind cannot keep srun here by writing on.
        for _ in 0..1024 {
            if !self.open {
                return;
            }
            // SAFETY: reading into a buffer valid for its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // EAGAIN: nothing more for now (any other error ends the stream).
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                    self.open = false;
                }
                return;
            }
            if n == 0 {
                self.open = false;
                return;
            }
            let data = &buf[..n as usize];
            match data.iter().rposition(|&b| b == b'\n') {
                Some(last) => {
                    self.held.extend_from_slice(&data[..=last]);
                    let lines = std::mem::take(&mut self.held);
                    for line in lines.split_inclusive(|&b| b == b'\n') {
                        self.write(line);
                    }
                    self.held.extend_from_slice(&data[last + 1..]);
                }
                None => self.held.extend_from_slice(data),
            }
            if self.held.len() >= MAX_HELD {
                let part = std::mem::take(&mut self.held);
                self.write(&part);
            }
        }
    }

    /// Forwards the last line, which ended without a newline, with one.
    fn finish(&mut self) {
        if !self.held.is_empty() {
            let mut last = std::mem::take(&mut self.held);
            last.push(b'\n');
            self.write(&last);
        }
    }

    /// One write of `line` (its label first) to srun's stdout or stderr.
    fn write(&self, line: &[u8]) {
        let mut out = Vec::with_capacity(line.len() + 8);
        if let Some(t) = self.label {
            out.extend_from_slice(format!("{t}: ").as_bytes());
        }
        out.extend_from_slice(line);
        let _ = if self.err {
            std::io::stderr().write_all(&out)
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(&out).and_then(|_| o.flush())
        };
    }
}

/// `scontrol` under the local executor: `show hostnames [LIST]` only.
pub(crate) fn scontrol(args: &[String]) -> Result<i32> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["show", "hostnames", rest @ ..] => {
            let list = rest
                .first()
                .map(|s| s.to_string())
                .or_else(|| std::env::var("SLURM_JOB_NODELIST").ok())
                .unwrap_or_else(hostname);
            for h in list.split(',').filter(|h| !h.is_empty()) {
                println!("{h}");
            }
            Ok(0)
        }
        other => bail!(
            "scontrol {}: not available under the local executor (only `show hostnames`)",
            other.join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn srun_lines_of_the_shipped_templates_parse() {
        let a = parse_srun(&s(&[
            "--kill-on-bad-exit=1",
            "--nodes=1",
            "--ntasks-per-node=8",
            "--cpus-per-task=14",
            "--cpu-bind=verbose,mask_cpu:0x3fff,0xfffc000",
            "--gpu-bind=map_gpu:0,1,2,3,4,5,6,7",
            "--output=rank-%t.log",
            "bash",
            "wrap.sh",
            "python3",
            "-u",
        ]))
        .unwrap();
        assert_eq!(a.ntasks_per_node, Some(8));
        assert!(a.kill_on_bad_exit);
        assert_eq!(a.command, s(&["bash", "wrap.sh", "python3", "-u"]));
        let b = parse_srun(&s(&["-N", "1", "-n2", "-l", "hostname"])).unwrap();
        assert_eq!((b.nodes, b.ntasks, b.label), (Some(1), Some(2), true));
        assert!(
            parse_srun(&s(&["--frobnicate", "x"]))
                .unwrap_err()
                .to_string()
                .contains("--frobnicate")
        );
        assert!(parse_srun(&s(&["--nodes=1"])).is_err());
    }

    #[test]
    fn cpu_masks_become_cpu_sets_per_task() {
        let sets = cpu_sets("verbose,mask_cpu:0x3,0xc", 4).unwrap().unwrap();
        assert_eq!(sets, vec![vec![0, 1], vec![2, 3], vec![0, 1], vec![2, 3]]);
        assert_eq!(
            cpu_sets("map_cpu:5,7", 2).unwrap().unwrap(),
            vec![vec![5], vec![7]]
        );
        assert!(cpu_sets("none", 2).unwrap().is_none());
        assert!(cpu_sets("mask_cpu:0xZZ", 1).is_err());
        assert!(cpu_sets("sockets", 1).is_err());
    }

    #[test]
    fn gpu_binding_follows_the_jobs_gpus() {
        let job = s(&["4", "5", "6", "7"]);
        assert_eq!(
            gpu_sets(Some("map_gpu:1,0"), 2, &job).unwrap(),
            s(&["5", "4"])
        );
        assert_eq!(
            gpu_sets(Some("single:2"), 4, &job).unwrap(),
            s(&["4", "4", "5", "5"])
        );
        assert_eq!(gpu_sets(None, 2, &job).unwrap(), s(&["4,5,6,7", "4,5,6,7"]));
        assert_eq!(
            gpu_sets(Some("map_gpu:0,1"), 2, &[]).unwrap(),
            s(&["0", "1"])
        );
    }

    #[test]
    fn output_patterns_expand_like_sruns() {
        assert_eq!(output_name("rank-%t.log", 3, "12", 0, "n1"), "rank-3.log");
        assert_eq!(
            output_name("%j.%s-%N-%n.%%", 0, "12", 2, "n1"),
            "12.2-n1-0.%"
        );
    }
}
