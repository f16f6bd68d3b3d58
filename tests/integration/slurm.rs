//! Integration tests against the real local Slurm cluster (`slurm/local-cluster.sh up`, which
//! `tests/run-all.sh` runs). They need `SLURM_CONF`; without it they fail under `CI=true` and are
//! skipped loudly elsewhere (`require_slurm!()`, the first line of each). They share one cluster
//! (and one test marks a node down), so they run one at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin, csv_rows, hostile, require_slurm, root, sweep};

static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn slurm_dir() -> PathBuf {
    PathBuf::from(std::env::var("SWEEP_SLURM_DIR").unwrap_or_else(|_| "/tmp/sweep-slurm".into()))
}

pub(crate) fn accounting() -> bool {
    std::fs::read_to_string(slurm_dir().join("mode"))
        .map(|m| m.trim() == "accounting")
        .unwrap_or(false)
}

fn cgroup_mode() -> bool {
    std::fs::read_to_string(slurm_dir().join("etc/slurm.conf"))
        .map(|c| c.contains("proctrack/cgroup"))
        .unwrap_or(false)
}

pub(crate) fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Camp {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
}

/// Expands a sweep (stages only; header added) against the local profile into a temp dir.
pub(crate) fn campaign(name: &str, stages: &str) -> Camp {
    let tmp = tempfile::tempdir().unwrap();
    let prof = root().join("slurm/clusters/local.toml");
    let text = format!(
        "name = {name:?}\ncluster = {:?}\n[slurm]\ntime = \"00:05:00\"\n{stages}",
        prof.to_str().unwrap()
    );
    let f = tmp.path().join("sweep.toml");
    std::fs::write(&f, text).unwrap();
    let dir = tmp.path().join("camp");
    let o = sweep(&[
        "expand",
        f.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Camp { _tmp: tmp, dir }
}

pub(crate) fn submit(dir: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["--json", "submit", dir.to_str().unwrap()];
    a.extend_from_slice(extra);
    sweep(&a)
}

pub(crate) fn status(dir: &Path) -> Value {
    let o = sweep(&["--json", "status", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

pub(crate) fn job<'a>(v: &'a Value, prefix: &str) -> &'a Value {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no job {prefix} in {v}"))
}

pub(crate) fn wait_for(dir: &Path, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = status(dir);
        if pred(&v) {
            return v;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            panic!(
                "timed out after {secs} s waiting for {what}: {v:#}\n{}",
                job_outputs(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every job's Slurm output, so a failed wait shows what the jobs printed.
pub(crate) fn job_outputs(dir: &Path) -> String {
    let mut s = String::new();
    for e in walkdir::WalkDir::new(dir.join("jobs"))
        .into_iter()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("slurm-") || name == "finished" {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            s.push_str(&format!("--- {}\n", e.path().display()));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    s
}

pub(crate) fn state_of(v: &Value, prefix: &str) -> String {
    job(v, prefix)["state"].as_str().unwrap_or("").to_string()
}

pub(crate) fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn marker_time(dir: &Path, job_prefix: &str, file: &str, key: &str) -> String {
    let jd = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(job_prefix)
        })
        .unwrap();
    let text = std::fs::read_to_string(jd.join(file)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .to_string()
}

#[test]
fn dependencies_exit_codes_and_idempotent_submit() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "deps",
        r#"
[[stage]]
name = "first"
template = "cpu-smoke.sbatch.j2"
params = { command = "sleep 3" }
matrix = { nodes = [2] }

[[stage]]
name = "second"
template = "cpu-smoke.sbatch.j2"
after = ["first"]
params = { command = "true" }
matrix = { nodes = [1] }

[[stage]]
name = "fails"
template = "cpu-smoke.sbatch.j2"
params = { command = "exit 1" }
matrix = { nodes = [1] }

[[stage]]
name = "never"
template = "cpu-smoke.sbatch.j2"
after = ["fails"]
dependency = "afterok"
matrix = { nodes = [1] }
"#,
    );
    let o = submit(&c.dir, &["--dry-run"]);
    let dry: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cmds: Vec<String> = dry["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cmds.len(), 4);
    assert!(cmds[1].contains("--dependency=afterok:<first>"), "{cmds:?}");
    assert!(
        !c.dir.join("state.json").exists(),
        "a dry run writes no state"
    );

    let o = submit(&c.dir, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["submitted"].as_array().unwrap().len(), 4);
    // Submitting again submits nothing new.
    let r2: Value = serde_json::from_slice(&submit(&c.dir, &[]).stdout).unwrap();
    assert_eq!(r2["submitted"].as_array().unwrap().len(), 0);
    assert_eq!(r2["already"], 4);

    let v = wait_for(
        &c.dir,
        90,
        "first/second/fails to end and never to be stuck",
        |v| {
            state_of(v, "second") == "COMPLETED"
                && state_of(v, "fails") == "FAILED"
                && job(v, "never")["reason"] == "DependencyNeverSatisfied"
        },
    );
    assert_eq!(state_of(&v, "first"), "COMPLETED");
    assert_eq!(job(&v, "first")["exit_code"], "0");
    assert_eq!(job(&v, "fails")["exit_code"], "1");
    assert_eq!(state_of(&v, "never"), "PENDING");
    // The dependent job started only after its dependency ended.
    let first_end = marker_time(&c.dir, "first", "finished", "end=");
    let second_start = marker_time(&c.dir, "second", "started", "start=");
    assert!(second_start >= first_end, "{second_start} < {first_end}");

    // The failed job has no signature but srun's `task N: Exited with exit code 1`: `unknown`
    // (a Python exception before it is the cause: `one_failing_rank_is_the_cause_...`); the
    // jobs that completed have no failure.
    let runs = collect_runs(&c.dir);
    let e = failure_of(&runs, "fails", "unknown");
    assert!(e.contains("Exited with exit code 1"), "{e}");
    for ok in ["first", "second"] {
        let r = run_row(&runs, ok);
        assert_eq!(
            (r["status"].as_str(), r["failure_class"].as_str()),
            ("COMPLETED", "")
        );
    }

    let o = sweep(&["cancel", c.dir.to_str().unwrap(), "--stage", "never"]);
    assert!(o.status.success());
    wait_for(&c.dir, 30, "never to be cancelled", |v| {
        state_of(v, "never") == "CANCELLED"
    });
}

#[test]
fn hostile_values_in_the_sbatch_header_and_the_script_never_execute() {
    require_slurm!();
    let _g = lock();
    let canary = tempfile::tempdir().unwrap();
    let h = |tag: &str| toml::Value::String(hostile(canary.path(), tag)).to_string();
    let comment = hostile(canary.path(), "comment");
    let c = campaign(
        "hostile",
        &format!(
            r#"
[env]
SWEEP_HOSTILE = {}

[[stage]]
name = "h"
template = "cpu-smoke.sbatch.j2"
params = {{ command = "printenv SWEEP_HOSTILE SWEEP_POINT > \"$JOB_DIR/env.out\"", label = {}, SWEEP_POINT = {} }}
matrix = {{ nodes = [1] }}
[stage.slurm]
extra = [{}]
"#,
            h("env"),
            h("label"),
            h("point"),
            toml::Value::String(format!("--comment={comment}")),
        ),
    );
    let o = submit(&c.dir, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = wait_for(&c.dir, 60, "the job to end", |v| {
        state_of(v, "h-") == "COMPLETED" || state_of(v, "h-") == "FAILED"
    });
    assert_eq!(state_of(&v, "h-"), "COMPLETED", "{}", job_outputs(&c.dir));
    // sbatch read the quoted `#SBATCH` option as one word: Slurm holds the comment verbatim.
    let sid = job(&v, "h-")["slurm_id"].as_str().unwrap().to_string();
    let show = run("scontrol", &["show", "job", &sid]);
    assert!(show.contains(&format!("Comment={comment}")), "{show}");
    let fired: Vec<_> = std::fs::read_dir(canary.path()).unwrap().collect();
    assert!(fired.is_empty(), "values executed: {fired:?}");
    let jd = std::fs::read_dir(c.dir.join("jobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let env_out = std::fs::read_to_string(jd.join("env.out")).unwrap();
    assert_eq!(
        env_out,
        format!(
            "{}\n{}\n",
            hostile(canary.path(), "env"),
            hostile(canary.path(), "point")
        )
    );
}

#[test]
fn cancel_a_running_job_and_time_limit_is_timeout() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "cancel",
        r#"
[[stage]]
name = "victim"
template = "cpu-smoke.sbatch.j2"
params = { command = "sleep 120" }
matrix = { nodes = [1] }

[[stage]]
name = "slow"
template = "cpu-smoke.sbatch.j2"
params = { command = "sleep 120" }
matrix = { nodes = [1] }
"#,
    );
    assert!(submit(&c.dir, &[]).status.success());
    // Running, and their srun steps started (each task prints its binding first).
    let v = wait_for(&c.dir, 30, "both running", |v| {
        state_of(v, "victim") == "RUNNING"
            && state_of(v, "slow") == "RUNNING"
            && job_outputs(&c.dir).matches("sweep-bind rank=0 ").count() == 2
    });
    let victim = job(&v, "victim")["id"].as_str().unwrap().to_string();
    let slow_sid = job(&v, "slow")["slurm_id"].as_str().unwrap().to_string();
    assert!(
        sweep(&["cancel", c.dir.to_str().unwrap(), &victim])
            .status
            .success()
    );
    // The fast way to a real TIMEOUT: shrink the running job's limit.
    run(
        "scontrol",
        &["update", &format!("JobId={slow_sid}"), "TimeLimit=0"],
    );
    let v = wait_for(&c.dir, 90, "cancelled and timed out", |v| {
        state_of(v, "victim") == "CANCELLED" && state_of(v, "slow") == "TIMEOUT"
    });
    assert_eq!(state_of(&v, "slow"), "TIMEOUT");
    // collect reads slurmstepd's own banners in the jobs' logs: the time limit is a `timeout`,
    // the scancel a `cancelled`, each with the banner as its evidence (the job's, or its srun
    // step's, whichever slurmstepd wrote first).
    let runs = collect_runs(&c.dir);
    let e = failure_of(&runs, "slow", "timeout");
    assert!(
        (e.contains(&format!("*** JOB {slow_sid} ON "))
            || e.contains(&format!("*** STEP {slow_sid}.")))
            && e.contains("DUE TO TIME LIMIT ***"),
        "{e}"
    );
    let e = failure_of(&runs, "victim", "cancelled");
    assert!(e.contains(" CANCELLED AT "), "{e}");
}

/// `sweep collect` of a campaign into a temporary directory: its runs.csv rows.
fn collect_runs(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let out = tempfile::tempdir().unwrap();
    let o = sweep(&[
        "-q",
        "collect",
        dir.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    csv_rows(&out.path().join("runs.csv"))
}

/// The runs.csv row of the one job whose name starts with `prefix`.
fn run_row<'a>(
    runs: &'a [std::collections::HashMap<String, String>],
    prefix: &str,
) -> &'a std::collections::HashMap<String, String> {
    let rows: Vec<_> = runs
        .iter()
        .filter(|r| r["run"].starts_with(prefix))
        .collect();
    assert_eq!(rows.len(), 1, "{prefix}: {runs:?}");
    rows[0]
}

/// The `failure_evidence` of the job whose name starts with `prefix`, whose `failure_class`
/// must be `class`.
fn failure_of<'a>(
    runs: &'a [std::collections::HashMap<String, String>],
    prefix: &str,
    class: &str,
) -> &'a str {
    let r = run_row(runs, prefix);
    assert_eq!(r["failure_class"], class, "{r:?}");
    &r["failure_evidence"]
}

#[test]
fn oom_in_a_step_is_reported_on_the_step() {
    require_slurm!();
    if !cgroup_mode() {
        eprintln!(
            "*** SKIPPING OOM test: the local cluster runs without cgroup memory limits here ***"
        );
        return;
    }
    let _g = lock();
    let c = campaign(
        "oom",
        r#"
[[stage]]
name = "hog"
template = "cpu-smoke.sbatch.j2"
slurm = { mem = "200M" }
params = { command = "python3 -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'" }
matrix = { nodes = [1], gpus_per_node = [1] }
"#,
    );
    assert!(submit(&c.dir, &[]).status.success());
    let v = wait_for(&c.dir, 60, "the hog to end", |v| {
        let s = state_of(v, "hog");
        s == "FAILED" || s == "COMPLETED" || s == "OUT_OF_MEMORY"
    });
    assert_eq!(job(&v, "hog")["step_oom"], true, "{v:#}");
    assert_eq!(
        state_of(&v, "hog"),
        "FAILED",
        "srun was the script's last command, so the job fails"
    );
    // The cgroup's kill as slurmstepd (`Detected 1 oom-kill event(s) in StepId=N.0 ...`) or
    // srun (`srun: error: gpu01: task 0: Out Of Memory`) reports it in the job's log,
    // whichever was written first: `oom`.
    let runs = collect_runs(&c.dir);
    let e = failure_of(&runs, "hog", "oom");
    assert!(
        e.contains("oom-kill event") || e.contains(": task 0: Out Of Memory"),
        "{e}"
    );
}

/// A 16-rank job (2 nodes) whose rank 1 runs `failing` while the others sleep, submitted to
/// the real cluster, waited for until it fails, collected: its runs.csv rows and its output.
fn one_rank_fails(
    name: &str,
    failing: &str,
) -> (Vec<std::collections::HashMap<String, String>>, String) {
    let _g = lock();
    let command = format!("if [ \\\"$RANK\\\" = 1 ]; then sleep 1; {failing}; else sleep 60; fi");
    let c = campaign(
        name,
        &format!(
            r#"
[[stage]]
name = "pair"
template = "cpu-smoke.sbatch.j2"
params = {{ command = "{command}" }}
matrix = {{ nodes = [2] }}
"#
        ),
    );
    assert!(submit(&c.dir, &[]).status.success());
    let v = wait_for(&c.dir, 60, "the pair to fail", |v| {
        state_of(v, "pair") == "FAILED"
    });
    assert_eq!(state_of(&v, "pair"), "FAILED");
    (collect_runs(&c.dir), job_outputs(&c.dir))
}

#[test]
fn one_failing_rank_is_the_cause_not_the_step_kill() {
    require_slurm!();
    // Rank 1 of 16 raises; srun --kill-on-bad-exit then kills the others and slurmstepd
    // reports the step cancelled (`*** STEP N.2 ON gpu01 CANCELLED AT ... ***`, then `tasks
    // 0,2-7: Exited with exit code 143`): the job's failure is rank 1's exception, not the kill.
    let (runs, out) = one_rank_fails(
        "rankfail",
        "python3 -c 'raise ValueError(\\\"rank 1 bad\\\")'",
    );
    let e = failure_of(&runs, "pair", "python_error");
    assert!(e.ends_with(": ValueError: rank 1 bad"), "{e}\n{out}");
}

#[test]
fn a_crashed_rank_is_the_cause_not_the_step_kill() {
    require_slurm!();
    // Rank 1 of 16 dies of SIGSEGV (a NULL dereference, no Python traceback); srun
    // --kill-on-bad-exit kills the others (SIGTERM: exit code 143, evidence only) and
    // slurmstepd reports the step cancelled: the crash is the job's failure, `unknown` (a
    // crash has no class of its own) with the line that names the signal as evidence (the
    // shell's `... Segmentation fault ...` or srun's `task 1: Segmentation fault`).
    let (runs, out) = one_rank_fails(
        "rankcrash",
        "python3 -c 'import ctypes; ctypes.string_at(0)'",
    );
    let e = failure_of(&runs, "pair", "unknown");
    assert!(e.contains("Segmentation fault"), "{e}\n{out}");
}

#[test]
fn node_failure_is_node_fail() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "nodefail",
        r#"
[[stage]]
name = "wide"
template = "cpu-smoke.sbatch.j2"
slurm = { extra = ["--no-requeue"] }
params = { command = "sleep 120" }
matrix = { nodes = [2] }
"#,
    );
    assert!(submit(&c.dir, &[]).status.success());
    let v = wait_for(&c.dir, 30, "running", |v| state_of(v, "wide") == "RUNNING");
    let sid = job(&v, "wide")["slurm_id"].as_str().unwrap().to_string();
    let nodes = run("squeue", &["-h", "-j", &sid, "-o", "%N"]);
    let hosts = run("scontrol", &["show", "hostnames", nodes.trim()]);
    let victim = hosts.lines().last().unwrap().trim().to_string();
    run(
        "scontrol",
        &[
            "update",
            &format!("NodeName={victim}"),
            "State=DOWN",
            "Reason=sweep-test",
        ],
    );
    let v = wait_for(&c.dir, 60, "NODE_FAIL", |v| {
        state_of(v, "wide") == "NODE_FAIL"
    });
    assert_eq!(state_of(&v, "wide"), "NODE_FAIL");
    // slurmstepd's banner on the surviving node, or srun's `Node failure on HOST`, whichever
    // the log holds first: `node_failure`.
    let runs = collect_runs(&c.dir);
    let e = failure_of(&runs, "wide", "node_failure");
    assert!(
        (e.contains(&format!("*** JOB {sid} ON ")) && e.contains("DUE TO NODE FAILURE"))
            || e.contains("srun: error: Node failure on "),
        "{e}"
    );
    // ReturnToService=2 brings the node back by itself; make sure either way.
    run(
        "scontrol",
        &["update", &format!("NodeName={victim}"), "State=RESUME"],
    );
}

#[test]
fn rejected_sbatch_keeps_the_rest_and_reports_slurms_message() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "reject",
        r#"
[[stage]]
name = "good"
template = "cpu-smoke.sbatch.j2"
params = { command = "true" }
matrix = { nodes = [1] }

[[stage]]
name = "bad"
template = "cpu-smoke.sbatch.j2"
slurm = { partition = "no-such-partition" }
matrix = { nodes = [1] }
"#,
    );
    let o = submit(&c.dir, &[]);
    assert!(!o.status.success());
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["submitted"].as_array().unwrap().len(), 1);
    let rej = r["rejected"][0][1].as_str().unwrap();
    assert!(rej.contains("invalid partition"), "{rej}");
    let v = status(&c.dir);
    assert_eq!(state_of(&v, "bad"), "rejected");
    assert!(job(&v, "bad")["slurm_id"].is_null());
    assert!(!job(&v, "good")["slurm_id"].is_null());
}

#[test]
fn a_job_slurm_never_heard_of_is_lost_never_success() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "lost",
        "[[stage]]\nname = \"ghost\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nmatrix = { nodes = [1] }\n",
    );
    let v = status(&c.dir);
    let id = job(&v, "ghost")["id"].as_str().unwrap().to_string();
    assert_eq!(state_of(&v, "ghost"), "unsubmitted");
    std::fs::write(c.dir.join("state.json"), format!(r#"{{"format":1,"jobs":{{"{id}":{{"slurm_id":"987654","attempts":1,"state":"RUNNING"}}}}}}"#)).unwrap();
    let v = status(&c.dir);
    assert_eq!(state_of(&v, "ghost"), "lost", "{v:#}");
    assert_eq!(v["slurm_calls"], 2, "one squeue and one sacct");
    // Known lost: the next poll asks accounting again (it may still appear), never calls it done.
    assert_ne!(state_of(&status(&c.dir), "ghost"), "COMPLETED");
}

fn sdiag_user_count() -> u64 {
    // `sdiag` lists "Remote Procedure Call statistics by user" as `root ( 0) count:N ...`.
    let out = run("sdiag", &[]);
    let section = out.split("statistics by user").nth(1).unwrap_or("");
    section
        .lines()
        .filter(|l| l.trim_start().starts_with("root"))
        .filter_map(|l| l.split("count:").nth(1))
        .filter_map(|s| s.split_whitespace().next())
        .filter_map(|n| n.parse::<u64>().ok())
        .next()
        .unwrap_or(0)
}

#[test]
fn status_of_500_jobs_is_one_call_per_poll() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "big",
        "[[stage]]\nname = \"many\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nrepeats = 500\nmatrix = { nodes = [1] }\n",
    );
    let o = submit(&c.dir, &["--hold"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = status(&c.dir);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 500);
    assert_eq!(v["counts"]["PENDING"], 500);
    assert_eq!(v["slurm_calls"], 1);
    // Controller RPCs of one poll, from sdiag's per-user counters (sdiag itself counts one),
    // against those of one bare `squeue` (22.05's squeue asks for job and partition info: 2).
    // Root's counter also counts the daemons' own RPCs for jobs of earlier tests that are
    // still ending, so the fewest of several measurements is the true count.
    let measure = |f: &dyn Fn()| {
        let mut best = u64::MAX;
        for _ in 0..5 {
            let a = sdiag_user_count();
            let b = sdiag_user_count();
            f();
            let d = sdiag_user_count();
            best = best.min((d - b).saturating_sub(b - a));
        }
        best
    };
    let per_squeue = measure(&|| {
        run("squeue", &["--me", "--noheader"]);
    });
    let per_poll = measure(&|| {
        let _ = status(&c.dir);
    });
    eprintln!(
        "controller RPCs per status poll of 500 jobs: {per_poll}; per bare squeue: {per_squeue}"
    );
    assert!(per_squeue >= 1, "sdiag counted no RPC for squeue");
    assert!(
        per_poll <= per_squeue,
        "a status poll made {per_poll} controller RPCs, more than one squeue ({per_squeue})"
    );
    let o = sweep(&["--json", "cancel", c.dir.to_str().unwrap()]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["cancelled"].as_array().unwrap().len(), 500);
}

/// SIGKILL the submitter at many points of a 120-job submit; then count duplicates and lost ids.
#[test]
fn kill_dash_nine_during_submit_never_duplicates_or_loses_a_job() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "kill9",
        "[[stage]]\nname = \"k\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nrepeats = 120\nmatrix = { nodes = [1] }\n",
    );
    let exe = bin();
    // Deterministic crashes right after the write-ahead record and right after sbatch.
    for hook in [
        "SWEEP_TEST_CRASH_AFTER_WAL",
        "SWEEP_TEST_CRASH_AFTER_SBATCH",
    ] {
        let st = Command::new(&exe)
            .args(["-q", "submit", c.dir.to_str().unwrap(), "--hold"])
            .env(hook, "1")
            .status()
            .unwrap();
        assert!(!st.success(), "{hook} should have crashed the submitter");
    }
    let mut seed: u64 = 0x5eed;
    let mut kills = 0;
    for _ in 0..25 {
        let mut child = Command::new(&exe)
            .args(["-q", "submit", c.dir.to_str().unwrap(), "--hold"])
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(20 + (seed >> 33) % 300));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
    }
    let o = submit(&c.dir, &["--hold"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = tally(&c.dir, "kill9");
    eprintln!(
        "kill -9 test: {kills} kills, {} jobs in Slurm, duplicates={}, lost={}",
        t.in_slurm, t.duplicates, t.lost
    );
    assert_eq!(t.names, 120);
    assert_eq!(t.duplicates, 0);
    assert_eq!(t.lost, 0);
    assert_eq!(t.recorded, 120);
    assert!(
        sweep(&["-q", "cancel", c.dir.to_str().unwrap()])
            .status
            .success()
    );
}

/// Slurm's own count of a campaign's jobs against its state, by job name and by working
/// directory (an earlier run of the same test leaves same-named jobs in the queue for
/// MinJobAge, in a directory of its own).
pub(crate) struct Tally {
    /// Distinct job names Slurm has for the campaign.
    pub(crate) names: usize,
    /// Jobs Slurm has for the campaign.
    pub(crate) in_slurm: usize,
    /// Jobs beyond the first of the same name: submitted twice.
    pub(crate) duplicates: usize,
    /// Jobs of the state whose recorded id is not the one job Slurm has under their name.
    pub(crate) lost: usize,
    /// Jobs the state has.
    pub(crate) recorded: usize,
}

/// Slurm's jobs of a campaign (every state, from squeue): job name -> ids.
pub(crate) fn slurm_ids_by_name(
    dir: &Path,
    campaign: &str,
) -> std::collections::HashMap<String, Vec<String>> {
    let q = run("squeue", &["--me", "-h", "-t", "all", "-o", "%i|%Z|%j"]);
    let root_dir = std::fs::canonicalize(dir).unwrap();
    let mut by_name: std::collections::HashMap<String, Vec<String>> = Default::default();
    for l in q.lines() {
        let mut it = l.trim().splitn(3, '|');
        let (Some(id), Some(wd), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if name.starts_with(&format!("{campaign}:")) && Path::new(wd).starts_with(&root_dir) {
            by_name
                .entry(name.to_string())
                .or_default()
                .push(id.to_string());
        }
    }
    by_name
}

pub(crate) fn tally(dir: &Path, campaign: &str) -> Tally {
    let by_name = slurm_ids_by_name(dir, campaign);
    let state = state_json(dir);
    let jobs = state["jobs"].as_object().unwrap();
    let mut lost = 0;
    for (id, js) in jobs {
        let recorded = js["slurm_id"].as_str().unwrap_or("");
        let name = format!("{campaign}:{id}");
        if by_name.get(&name).map(|v| v.as_slice()) != Some(&[recorded.to_string()][..]) {
            lost += 1;
        }
    }
    Tally {
        names: by_name.len(),
        in_slurm: by_name.values().map(|v| v.len()).sum(),
        duplicates: by_name.values().map(|v| v.len().saturating_sub(1)).sum(),
        lost,
        recorded: jobs.len(),
    }
}

pub(crate) fn daemon(action: &str, name: &str) {
    let st = Command::new("bash")
        .arg(root().join("slurm/local-cluster.sh"))
        .args([action, name])
        .status()
        .unwrap();
    assert!(st.success(), "local-cluster.sh {action} {name} failed");
}

/// Starts a daemon again when dropped, so that a failed assertion in a test that stopped it
/// does not leave the cluster broken for the tests after it.
pub(crate) struct Restart(pub(crate) &'static str);

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("slurm/local-cluster.sh"))
            .args(["start-daemon", self.0])
            .status();
    }
}

/// `sweep --json status` with its exit code, which need not be 0.
pub(crate) fn status_coded(dir: &Path) -> (Value, Option<i32>) {
    let o = sweep(&["--json", "status", dir.to_str().unwrap()]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    (v, o.status.code())
}

/// The campaign state as sweep reads it (`state.json` and its journal), as JSON.
pub(crate) fn state_json(dir: &Path) -> Value {
    serde_json::to_value(sweep::state::State::load(dir).unwrap()).unwrap()
}

/// The campaign's state files, byte for byte (to prove a command saved nothing).
pub(crate) fn state_bytes(dir: &Path) -> Vec<Option<Vec<u8>>> {
    ["state.json", "state.journal"]
        .iter()
        .map(|n| std::fs::read(dir.join(n)).ok())
        .collect()
}

#[test]
fn controller_down_is_reported_and_submit_retries_until_it_answers() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "ctld",
        "[[stage]]\nname = \"a\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = { command = \"true\" }\nmatrix = { nodes = [1] }\n\n[[stage]]\nname = \"b\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = { command = \"true\" }\nmatrix = { nodes = [1] }\n",
    );
    assert!(submit(&c.dir, &["--stage", "a"]).status.success());
    wait_for(&c.dir, 30, "a to complete", |v| {
        state_of(v, "a") == "COMPLETED"
    });

    daemon("stop-daemon", "slurmctld");
    let restart = Restart("slurmctld");
    let before = state_bytes(&c.dir);
    let (v, code) = status_coded(&c.dir);
    assert_eq!(code, Some(3), "a silent controller is not a success: {v:#}");
    assert_eq!(
        state_bytes(&c.dir),
        before,
        "status saved what it did not learn"
    );
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("not answering")),
        "{v:#}"
    );
    assert_eq!(state_of(&v, "a"), "COMPLETED", "the last known state stays");
    assert_eq!(state_of(&v, "b"), "unsubmitted");

    // A submit while the controller is down retries; bring the controller back meanwhile.
    let child = Command::new(bin())
        .args(["--json", "submit", c.dir.to_str().unwrap(), "--stage", "b"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    drop(restart);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["submitted"].as_array().unwrap().len(), 1, "{r:#}");
    let v = wait_for(&c.dir, 60, "b to complete", |v| {
        state_of(v, "b") == "COMPLETED"
    });
    assert!(v["errors"].as_array().unwrap().is_empty(), "{v:#}");
}

#[test]
fn status_keeps_working_with_slurmdbd_down() {
    require_slurm!();
    if !accounting() {
        eprintln!("*** SKIPPING slurmdbd test: the cluster runs without accounting ***");
        return;
    }
    let _g = lock();
    let c = campaign(
        "dbd",
        "[[stage]]\nname = \"a\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = { command = \"true\" }\nmatrix = { nodes = [1] }\n\n[[stage]]\nname = \"ghost\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nmatrix = { nodes = [1] }\n",
    );
    assert!(submit(&c.dir, &["--stage", "a"]).status.success());
    wait_for(&c.dir, 30, "a to complete", |v| {
        state_of(v, "a") == "COMPLETED"
    });
    daemon("stop-daemon", "slurmdbd");
    let _restart = Restart("slurmdbd");
    let v = status(&c.dir);
    assert_eq!(state_of(&v, "a"), "COMPLETED");
    assert_eq!(
        v["accounting"], "not needed",
        "squeue and markers answer without accounting"
    );
    // A job that left the queue without a marker needs accounting, which is down: unknown (not
    // lost: accounting may answer later), said once, and not saved.
    let ghost = job(&v, "ghost")["id"].as_str().unwrap().to_string();
    {
        let lock = sweep::state::Lock::acquire(&c.dir).unwrap();
        let mut st = sweep::state::State::load(&c.dir).unwrap();
        let g = st.job(&ghost);
        g.slurm_id = Some("987655".into());
        g.attempts = 1;
        g.state = Some(sweep::job_state::JobState::Running);
        st.save(&lock, &c.dir).unwrap();
    }
    let before = state_bytes(&c.dir);
    let v = status(&c.dir);
    assert_eq!(state_of(&v, "ghost"), "unknown");
    assert!(
        v["accounting"].as_str().unwrap().starts_with("unavailable"),
        "{v:#}"
    );
    assert_eq!(state_of(&v, "a"), "COMPLETED");
    let said = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.as_str().unwrap().contains("accounting unavailable"))
        .count();
    assert_eq!(said, 1, "{v:#}");
    assert!(
        !job(&v, "ghost")["reason"]
            .as_str()
            .unwrap()
            .contains("slurmdbd"),
        "the error is said once, not in each job's note: {v:#}"
    );
    assert_eq!(state_bytes(&c.dir), before, "unknown was saved");
    // `--watch` ends, but not with success: the job cannot be accounted for.
    let o = sweep(&["status", c.dir.to_str().unwrap(), "--watch"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A profile of the local cluster with two "GPUs" bound to the CPUs this host really has, so
/// that the preflight's affinity checks can pass here.
fn two_gpu_profile(dir: &Path) -> PathBuf {
    let base = std::fs::read_to_string(root().join("slurm/clusters/local.toml")).unwrap();
    let head = &base[..base.find("[[gpu_map]]").unwrap()];
    let node0 = std::fs::read_to_string("/sys/devices/system/node/node0/cpulist")
        .unwrap_or_else(|_| "0".into());
    let first = node0
        .trim()
        .split([',', '-'])
        .next()
        .unwrap_or("0")
        .to_string();
    let text = format!(
        "{}[[gpu_map]]\ngpu = 0\nnuma = 0\ncpus = \"{first}\"\n\n[[gpu_map]]\ngpu = 1\nnuma = 0\ncpus = \"{first}\"\n\n[env]\nNCCL_DEBUG = \"INFO\"\n\n[paths]\npython = \"python3\"\nsetup = []\n",
        head.replace("per_node = 8", "per_node = 2")
    );
    let p = dir.join("two-gpu.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn preflight_on_every_node_stops_the_campaign_and_telemetry_is_captured() {
    require_slurm!();
    let _g = lock();
    let tmp = tempfile::tempdir().unwrap();
    let prof = two_gpu_profile(tmp.path());
    let f = tmp.path().join("pf.toml");
    std::fs::write(
        &f,
        format!(
            r#"name = "pf"
cluster = {:?}
[slurm]
time = "00:05:00"

[[stage]]
name = "preflight"
template = "preflight.sbatch.j2"
# A node here has no GPU: expecting 2 must fail on each node; expecting none passes.
matrix = {{ nodes = [2], expect_gpus_per_node = [2, 0] }}
# This machine's locked-memory limit is not an RDMA node's: ask for none.
params = {{ expect_memlock_kib = 0 }}

[[stage]]
name = "work"
template = "cpu-smoke.sbatch.j2"
after = ["preflight"]
matrix = {{ nodes = [2] }}

# Not held back by the preflight: its rank wrappers snapshot the NICs of both nodes.
[[stage]]
name = "tele"
template = "cpu-smoke.sbatch.j2"
params = {{ net_sample_s = 1, command = "sleep 2" }}
matrix = {{ nodes = [2] }}
"#,
            prof.to_str().unwrap()
        ),
    )
    .unwrap();
    let dir = tmp.path().join("camp");
    let o = sweep(&[
        "-q",
        "expand",
        f.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(submit(&dir, &[]).status.success());
    let v = wait_for(&dir, 60, "preflight to end and work to be held back", |v| {
        state_of(v, "preflight-n2-egpn2") == "FAILED"
            && state_of(v, "preflight-n2-egpn0") == "COMPLETED"
            && state_of(v, "tele") == "COMPLETED"
            && job(v, "work")["reason"] == "DependencyNeverSatisfied"
    });
    assert_eq!(
        state_of(&v, "work"),
        "PENDING",
        "a bad node stops the campaign (afterok)"
    );
    let out = tmp.path().join("res");
    let o = sweep(&[
        "-q",
        "collect",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // preflight.csv: the failing check on each node, by name; the passing job passes everything.
    let pf = csv_rows(&out.join("preflight.csv"));
    let failing: Vec<&std::collections::HashMap<String, String>> = pf
        .iter()
        .filter(|r| r["run"].starts_with("preflight-n2-egpn2"))
        .collect();
    let nodes: std::collections::BTreeSet<&str> = failing
        .iter()
        .filter(|r| r["check"] == "gpus_per_node" && r["status"] == "fail")
        .map(|r| r["node"].as_str())
        .collect();
    assert_eq!(
        nodes.into_iter().collect::<Vec<_>>(),
        vec!["gpu01", "gpu02"],
        "{pf:#?}"
    );
    assert!(
        failing
            .iter()
            .any(|r| r["check"] == "gpus_per_node" && r["expected"] == "2" && r["found"] == "0")
    );
    let passing: Vec<_> = pf
        .iter()
        .filter(|r| r["run"].starts_with("preflight-n2-egpn0"))
        .collect();
    assert!(
        !passing.is_empty() && passing.iter().all(|r| r["status"] != "fail"),
        "{passing:#?}"
    );
    // The records say what this machine lacks instead of failing on it.
    assert!(
        passing
            .iter()
            .any(|r| r["check"] == "driver" && r["found"] == "not available")
    );
    let runs = csv_rows(&out.join("runs.csv"));
    let bad = runs
        .iter()
        .find(|r| r["run"].starts_with("preflight-n2-egpn2"))
        .unwrap();
    assert_eq!(bad["failure_class"], "preflight");
    assert!(
        bad["failure_evidence"].contains("check=gpus_per_node"),
        "{}",
        bad["failure_evidence"]
    );
    // Telemetry of the real counters of this machine, from both nodes of every job.
    let net = csv_rows(&out.join("net.csv"));
    for node in ["gpu01", "gpu02"] {
        assert!(
            net.iter()
                .any(|r| r["node"] == node && r["device"] == "lo" && r["kind"] == "net"),
            "no lo counters of {node}"
        );
    }
    assert!(
        net.iter()
            .all(|r| r["seconds"].parse::<f64>().unwrap() > 0.0)
    );
    assert!(
        net.iter().all(|r| r["rx_bytes"] != "not available"),
        "every netdev has byte counters"
    );
    let power = csv_rows(&out.join("power.csv"));
    let ipmi: Vec<_> = power.iter().filter(|r| r["source"] == "ipmitool").collect();
    assert!(!ipmi.is_empty());
    let have_ipmi = Command::new("sh")
        .args(["-c", "command -v ipmitool"])
        .output()
        .unwrap()
        .status
        .success();
    if !have_ipmi {
        assert!(
            ipmi.iter().all(|r| r["watts_avg"] == "not available"),
            "no made-up zero: {ipmi:?}"
        );
    }
}

/// The link stage on the real cluster: every pair of the allocation's 4 nodes, in 3 rounds of
/// 2 disjoint pairs, each pair's steps on exactly its two nodes, and the pairs of a round at
/// once. The nccl-tests binaries are stand-ins that note their step's nodes and times: what is
/// tested is how the steps are placed, not what they measure.
#[test]
fn link_pairs_run_in_rounds_of_disjoint_pairs_on_real_slurm() {
    require_slurm!();
    let _g = lock();
    let bins = tempfile::tempdir().unwrap();
    let log = bins.path().join("steps.log");
    for b in ["sendrecv_perf", "all_reduce_perf"] {
        let p = bins.path().join(b);
        std::fs::write(
            &p,
            format!(
                "#!/bin/bash\n[ \"$SLURM_PROCID\" = 0 ] || exit 0\n\
                 echo \"begin $(date +%s.%N) $SLURM_STEP_NODELIST {b}\" >> {log}\nsleep 2\n\
                 echo \"end $(date +%s.%N) $SLURM_STEP_NODELIST {b}\" >> {log}\n",
                log = log.display()
            ),
        )
        .unwrap();
        Command::new("chmod").arg("755").arg(&p).status().unwrap();
    }
    let c = campaign(
        "links",
        &format!(
            "[[stage]]\nname = \"links\"\ntemplate = \"nccl-pairs.sbatch.j2\"\n\
             params = {{ nccl_tests_dir = {:?} }}\nmatrix = {{ nodes = [4] }}\n",
            bins.path().display().to_string()
        ),
    );
    assert!(submit(&c.dir, &[]).status.success());
    let v = wait_for(&c.dir, 120, "the link job to end", |v| {
        matches!(
            state_of(v, "links").as_str(),
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL"
        )
    });
    let out = job_outputs(&c.dir);
    assert_eq!(state_of(&v, "links"), "COMPLETED", "{out}");
    // (step nodelist, begin, end) of every step.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut steps: Vec<(String, f64, f64)> = Vec::new();
    for l in text.lines().filter(|l| l.starts_with("begin ")) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let end = text
            .lines()
            .find(|e| e.starts_with("end ") && e.ends_with(&format!(" {} {}", f[2], f[3])))
            .and_then(|e| e.split_whitespace().nth(1))
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap();
        steps.push((f[2].to_string(), f[1].parse().unwrap(), end));
    }
    let pairs: std::collections::BTreeSet<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(steps.len(), 12, "6 pairs x 2 steps:\n{text}\n{out}");
    assert_eq!(
        pairs.len(),
        6,
        "every pair of 4 nodes, each on its own 2 nodes: {pairs:?}"
    );
    let nodes_of = |nl: &str| -> Vec<String> {
        run("scontrol", &["show", "hostnames", nl])
            .lines()
            .map(String::from)
            .collect()
    };
    let mut overlapped = 0;
    for (i, a) in steps.iter().enumerate() {
        assert_eq!(nodes_of(&a.0).len(), 2, "{a:?}");
        for b in &steps[i + 1..] {
            if a.1 < b.2 && b.1 < a.2 {
                overlapped += 1;
                let (na, nb) = (nodes_of(&a.0), nodes_of(&b.0));
                assert!(
                    na.iter().all(|n| !nb.contains(n)),
                    "two steps at once on one node: {a:?} {b:?}"
                );
            }
        }
    }
    assert!(overlapped > 0, "no two pairs ran at once:\n{text}");
}

/// The local cluster's binding mode (`SWEEP_SLURM_SMT=2 SWEEP_SLURM_CONSTRAIN_DEVICES=1
/// slurm/local-cluster.sh up`): (CPUs a node, GPUs a node), or `None`, saying why the caller
/// skips, when the cluster runs without ThreadsPerCore=2, enforced cores and device cgroups.
fn binding_mode(test: &str) -> Option<(u32, u32)> {
    let state = std::fs::read_to_string(slurm_dir().join("binding")).unwrap_or_default();
    let f: Vec<u32> = state
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 3 || f[0] != 2 || f[1] != 1 {
        eprintln!(
            "SKIPPED {test}: the local cluster is not in binding mode (ThreadsPerCore=2, \
             ConstrainCores, ConstrainDevices); start it with SWEEP_SLURM_SMT=2 \
             SWEEP_SLURM_CONSTRAIN_DEVICES=1 slurm/local-cluster.sh up (tests/run-all.sh does)"
        );
        return None;
    }
    let conf = std::fs::read_to_string(slurm_dir().join("etc/slurm.conf")).unwrap();
    let cpus = conf
        .split_whitespace()
        .find_map(|w| w.strip_prefix("CPUs="))
        .and_then(|c| c.parse().ok())
        .unwrap();
    Some((cpus, f[2]))
}

/// A profile of the binding-mode cluster: one socket of `cpus / 2` cores x 2 threads, `gpus`
/// GPUs, each GPU's ranks on `cpus_of(gpu)` (logical CPUs, siblings included).
fn smt_profile(dir: &Path, cpus: u32, gpus: u32, cpus_of: impl Fn(u32) -> String) -> PathBuf {
    let base = std::fs::read_to_string(root().join("slurm/clusters/local.toml")).unwrap();
    let head = &base[..base.find("[cpu]").unwrap()];
    let mut text = head.replace("per_node = 8", &format!("per_node = {gpus}"));
    text.push_str(&format!(
        "[cpu]\nsockets = 1\ncores_per_socket = {}\nthreads_per_core = 2\nnuma_nodes = 1\n",
        cpus / 2
    ));
    for g in 0..gpus {
        text.push_str(&format!(
            "\n[[gpu_map]]\ngpu = {g}\nnuma = 0\ncpus = {:?}\n",
            cpus_of(g)
        ));
    }
    let p = dir.join(format!("smt-{gpus}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Expands, submits and collects one cpu-smoke job of `gpn` ranks a node on 2 nodes; the rows
/// of binding.csv.
fn binding_rows(
    prof: &Path,
    gpn: u32,
    per_rank_gpu_bind: bool,
) -> Vec<std::collections::HashMap<String, String>> {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bind.toml");
    // The launch the templates had before: `--gpu-bind=map_gpu:` (a template of the campaign's
    // own overriding the built-in cpu-smoke).
    let templates = if per_rank_gpu_bind {
        let dir = tmp.path().join("tpl");
        std::fs::create_dir_all(&dir).unwrap();
        let t = std::fs::read_to_string(root().join("job-templates/cpu-smoke.sbatch.j2")).unwrap();
        let t = t.replace(
            "--cpu-bind=verbose,{{ cpu_bind }}",
            "--cpu-bind=verbose,{{ cpu_bind }} --gpu-bind={{ gpu_bind }}",
        );
        std::fs::write(dir.join("cpu-smoke.sbatch.j2"), t).unwrap();
        "templates = \"tpl\"\n"
    } else {
        ""
    };
    std::fs::write(
        &f,
        format!(
            "name = \"bind\"\ncluster = {:?}\n{templates}[slurm]\ntime = \"00:05:00\"\n\n[[stage]]\nname = \"bind\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = {{ command = \"true\" }}\nmatrix = {{ nodes = [2], gpus_per_node = [{gpn}] }}\n",
            prof.to_str().unwrap()
        ),
    )
    .unwrap();
    let dir = tmp.path().join("camp");
    let o = sweep(&[
        "-q",
        "expand",
        f.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = walkdir::WalkDir::new(dir.join("jobs"))
        .into_iter()
        .flatten()
        .find(|e| e.file_name() == "job.sbatch")
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap_or_default();
    assert_eq!(
        script.contains("--gpu-bind"),
        per_rank_gpu_bind,
        "per-rank GPU binding only where asked"
    );
    let o = submit(&dir, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for(&dir, 60, "the binding job to complete", |v| {
        state_of(v, "bind") == "COMPLETED"
    });
    let out = tmp.path().join("res");
    let o = sweep(&[
        "-q",
        "collect",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    csv_rows(&out.join("binding.csv"))
}

/// Under ThreadsPerCore=2 with cores and devices constrained: one rank a node on a whole core
/// (both its threads, `-c 2`), then one rank per hardware thread with every GPU of the node:
/// every rank runs exactly on its planned CPUs and can open every GPU its job has on its node.
#[test]
fn binding_holds_under_smt_and_device_cgroups() {
    require_slurm!();
    let _g = lock();
    let Some((cpus, gpus)) = binding_mode("binding_holds_under_smt_and_device_cgroups") else {
        return;
    };
    assert!(
        cpus >= 2 && gpus >= 2,
        "binding mode: {cpus} CPUs, {gpus} GPUs a node"
    );
    let tmp = tempfile::tempdir().unwrap();
    let check = |rows: &[std::collections::HashMap<String, String>], ranks: usize, gpn: &str| {
        assert_eq!(rows.len(), ranks, "{rows:#?}");
        let nodes: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r["node"].as_str()).collect();
        assert_eq!(nodes.len(), 2, "{rows:#?}");
        for r in rows {
            assert_eq!(r["cpus"], r["expect_cpus"], "allowed CPUs == plan: {r:?}");
            assert_eq!(r["cpus_ok"], "true", "{r:?}");
            assert_eq!(
                (r["cpus_missing"].as_str(), r["cpus_extra"].as_str()),
                ("", "")
            );
            assert_eq!(r["gpu_devices"], gpus.to_string(), "{r:?}");
            assert_eq!(r["gpus_on_node"], gpn, "{r:?}");
            assert_eq!(
                r["gpus_reachable"], gpn,
                "every GPU of the job on the node: {r:?}"
            );
            assert_eq!(r["gpus_ok"], "true", "{r:?}");
            assert_eq!(r["gpu_ok"], "true", "{r:?}");
        }
    };
    // A whole core (first core: CPUs 0 and 1 as Slurm numbers its threads) for the one rank.
    let whole = smt_profile(tmp.path(), cpus, 1, |_| "0-1".into());
    let rows = binding_rows(&whole, 1, false);
    check(&rows, 2, "1");
    assert!(rows.iter().all(|r| r["cpus"] == "0-1"), "{rows:#?}");
    // One rank per hardware thread, each GPU of the node shared by both ranks' view.
    let per_thread = smt_profile(tmp.path(), cpus, 2, |g| g.to_string());
    let rows = binding_rows(&per_thread, 2, false);
    check(&rows, 4, "2");
    for r in &rows {
        assert_eq!(r["cpus"], r["local_rank"], "rank on its own thread: {r:?}");
        assert_eq!(r["gpus_open"], "0,1", "{r:?}");
    }
    // The old launch, `--gpu-bind=map_gpu:0,1` under ConstrainDevices: each rank can open only
    // its own GPU (what cuts NCCL's peer access), and binding.csv says so.
    let rows = binding_rows(&per_thread, 2, true);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for r in &rows {
        assert_eq!(r["gpus_reachable"], "1", "{r:?}");
        assert_eq!(r["gpus_open"], r["local_rank"], "{r:?}");
        assert_eq!(r["gpus_ok"], "false", "{r:?}");
        assert_eq!(r["cpus_ok"], "true", "{r:?}");
    }
}
