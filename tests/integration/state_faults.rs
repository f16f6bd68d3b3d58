//! Faults of the campaign state against the real local Slurm cluster: a status beside a submit,
//! an sbatch that answers late under a submit killed meanwhile, a lock file deleted under a
//! submit, state files deleted, reset or garbled, accounting down, a dependency that can never
//! be satisfied, a full disk, and a requeue after a node failure. Each counts duplicates and
//! lost ids against Slurm's own queue (`slurm::tally`); none waits a fixed time for an outcome.
//! Like `slurm.rs`, they need the cluster (`require_slurm!()`) and run one at a time (`lock()`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::slurm::{
    Restart, accounting, campaign, daemon, job, lock, run, slurm_ids_by_name, state_bytes,
    state_json, state_of, status, status_coded, submit, tally, wait_for,
};
use crate::util::{bin, require_slurm, root, stderr, sweep};

fn spawn(args: &[&str]) -> Child {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {}",
            String::from_utf8_lossy(&o.stdout),
            stderr(o)
        )
    })
}

fn count_state(v: &Value, state: &str) -> usize {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["state"] == state)
        .count()
}

/// Waits for a child with a deadline (a hang is a failure, not a wait forever), reading its
/// output meanwhile (a status of 300 jobs fills a pipe).
fn wait_child(child: Child, secs: u64, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            run("kill", &["-9", &pid.to_string()]);
            panic!("{what} did not end within {secs} s (killed)");
        }
    }
}

/// Polls `cond` until it holds, failing after `secs`.
fn wait_until(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn repeats(stage: &str, n: usize) -> String {
    format!(
        "[[stage]]\nname = \"{stage}\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nrepeats = {n}\nmatrix = {{ nodes = [1] }}\n"
    )
}

fn cancel_all(dir: &Path) {
    let o = sweep(&["-q", "cancel", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// 1. `status` started 0.05 s, 1 s and 2 s into a 300-job `submit --hold` never calls a job
///    `lost`; once the submit has ended every job is PENDING (held) and `cancel` cancels all.
#[test]
fn status_beside_a_submit_never_reports_lost() {
    require_slurm!();
    let _g = lock();
    let c = campaign("concur", &repeats("c", 300));
    let d = c.dir.to_str().unwrap();
    let start = Instant::now();
    let sub = spawn(&["-q", "submit", d, "--hold"]);
    let mut polls = Vec::new();
    for at in [50u64, 1000, 2000] {
        let due = Duration::from_millis(at);
        if let Some(left) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(left);
        }
        polls.push((at, spawn(&["--json", "status", d])));
    }
    let mut lost = Vec::new();
    for (at, p) in polls {
        let o = wait_child(p, 120, "status beside submit");
        assert!(o.status.success(), "status at {at} ms: {}", stderr(&o));
        let v = json_of(&o);
        eprintln!(
            "status at {at} ms: counts {} errors {}",
            v["counts"], v["errors"]
        );
        lost.push(count_state(&v, "lost"));
        assert_eq!(v["jobs"].as_array().unwrap().len(), 300);
    }
    let o = wait_child(sub, 300, "the 300-job submit");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lost, vec![0, 0, 0], "jobs called lost beside a submit");
    let v = status(&c.dir);
    assert_eq!(v["counts"]["PENDING"], 300, "{:#}", v["counts"]);
    let held = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["reason"] == "JobHeldUser")
        .count();
    assert_eq!(held, 300, "every job PENDING because held");
    let t = tally(&c.dir, "concur");
    eprintln!(
        "concurrent status: lost per poll {lost:?}, {} in Slurm, duplicates={}, wrong ids={}",
        t.in_slurm, t.duplicates, t.lost
    );
    assert_eq!(
        (t.names, t.duplicates, t.lost, t.recorded),
        (300, 0, 0, 300)
    );
    let r = json_of(&sweep(&["--json", "cancel", d]));
    assert_eq!(r["cancelled"].as_array().unwrap().len(), 300);
    assert_eq!(r["not_active"].as_array().unwrap().len(), 0, "{r:#}");
}

/// 2. An sbatch that answers 3 s late (a wrapper first on PATH), a status 0.5 s in, the
///    submitter killed with SIGKILL 5 s after that, then a normal submit: over 3 trials no
///    job is submitted twice and every job is recorded exactly once.
#[test]
fn late_sbatch_status_and_kill_never_duplicate() {
    require_slurm!();
    let _g = lock();
    let real = run("sh", &["-c", "command -v sbatch"]).trim().to_string();
    assert!(real.starts_with('/'), "no sbatch on PATH: {real}");
    let wrap = tempfile::tempdir().unwrap();
    // The real sbatch creates the job at once; its answer reaches sweep 3 s later. sweep's
    // child is this wrapper: PR_SET_PDEATHSIG kills the wrapper with sweep, but not the
    // wrapper's own child, the real sbatch. Here that sbatch has ended before the `sleep`, so
    // the job exists when sweep dies; had it still been talking to the controller, it could
    // create its job after the next submit looked for it (SETTLE_S bounds only how long an
    // sbatch sweep started directly may take): a site's sbatch wrapper that forks can defeat
    // the guarantee, which is why the next submit waits SETTLE_S and looks by name.
    let script = format!(
        "#!/bin/sh\nout=$('{real}' \"$@\")\nrc=$?\nsleep 3\nprintf '%s\\n' \"$out\"\nexit $rc\n"
    );
    let sb = wrap.path().join("sbatch");
    std::fs::write(&sb, script).unwrap();
    run("chmod", &["+x", sb.to_str().unwrap()]);
    let path = format!(
        "{}:{}",
        wrap.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for trial in 0..3 {
        let name = format!("late{trial}");
        let c = campaign(&name, &repeats("l", 4));
        let d = c.dir.to_str().unwrap();
        let mut sub = Command::new(bin())
            .args(["-q", "submit", d, "--hold"])
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let st = spawn(&["--json", "status", d]);
        std::thread::sleep(Duration::from_secs(5));
        let _ = sub.kill();
        let _ = sub.wait();
        let o = wait_child(st, 120, "status beside the late submit");
        assert!(o.status.success(), "{}", stderr(&o));
        let v = json_of(&o);
        eprintln!(
            "late sbatch trial {trial}: status 0.5 s in: counts {} errors {}",
            v["counts"], v["errors"]
        );
        assert_eq!(count_state(&v, "lost"), 0, "{v:#}");
        let before = tally(&c.dir, &name);
        let o = submit(&c.dir, &["--hold"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let r = json_of(&o);
        let t = tally(&c.dir, &name);
        eprintln!(
            "late sbatch trial {trial}: before resubmit {} in Slurm / {} recorded; after: reconciled {}, submitted {}, {} in Slurm, duplicates={}, wrong ids={}",
            before.in_slurm,
            before.recorded,
            r["reconciled"].as_array().unwrap().len(),
            r["submitted"].as_array().unwrap().len(),
            t.in_slurm,
            t.duplicates,
            t.lost
        );
        assert_eq!((t.names, t.duplicates, t.lost, t.recorded), (4, 0, 0, 4));
        cancel_all(&c.dir);
    }
}

/// 3. The lock file deleted under a 200-job submit, and a second submit started: no job twice;
///    the first submit either stopped with "removed or replaced" or had finished.
#[test]
fn a_deleted_lock_file_never_makes_two_writers() {
    require_slurm!();
    let _g = lock();
    let c = campaign("dellock", &repeats("d", 200));
    let d = c.dir.to_str().unwrap();
    let start = Instant::now();
    let first = spawn(&["-q", "submit", d, "--hold"]);
    // Under way: holding the lock and recording jobs.
    let journal = c.dir.join("state.journal");
    wait_until(60, "the first submit to record a job", || {
        std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0)
    });
    if let Some(left) = Duration::from_millis(300).checked_sub(start.elapsed()) {
        std::thread::sleep(left);
    }
    std::fs::remove_file(c.dir.join(".sweep.lock")).unwrap();
    let second = spawn(&["-q", "submit", d, "--hold"]);
    let o1 = wait_child(first, 300, "the first submit");
    let o2 = wait_child(second, 300, "the second submit");
    let e1 = stderr(&o1);
    assert!(
        o1.status.success() || e1.contains("removed or replaced"),
        "first submit: {e1}"
    );
    assert!(o2.status.success(), "second submit: {}", stderr(&o2));
    let o = submit(&c.dir, &["--hold"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = tally(&c.dir, "dellock");
    eprintln!(
        "deleted lock: first submit {}, {} in Slurm, duplicates={}, wrong ids={}",
        if o1.status.success() {
            "completed".to_string()
        } else {
            e1.lines().last().unwrap_or("").to_string()
        },
        t.in_slurm,
        t.duplicates,
        t.lost
    );
    assert_eq!(
        (t.names, t.duplicates, t.lost, t.recorded),
        (200, 0, 0, 200)
    );
    cancel_all(&c.dir);
}

fn remove_state(dir: &Path) {
    for f in ["state.json", "state.journal"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

fn reset_state(dir: &Path) {
    std::fs::write(dir.join("state.json"), r#"{"format":1,"jobs":{}}"#).unwrap();
    let _ = std::fs::remove_file(dir.join("state.journal"));
}

/// The Slurm id of each job Slurm has for the campaign (exactly one each).
fn truth(dir: &Path, campaign: &str) -> std::collections::BTreeMap<String, String> {
    slurm_ids_by_name(dir, campaign)
        .into_iter()
        .map(|(name, ids)| {
            assert_eq!(ids.len(), 1, "{name}: {ids:?}");
            (
                name.strip_prefix(&format!("{campaign}:"))
                    .unwrap()
                    .to_string(),
                ids[0].clone(),
            )
        })
        .collect()
}

fn recorded(dir: &Path) -> std::collections::BTreeMap<String, String> {
    state_json(dir)["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(j, r)| Some((j.clone(), r["slurm_id"].as_str()?.to_string())))
        .collect()
}

/// 4. State deleted, reset to `{}` or garbled: submit adopts every id (and warns), status shows
///    the ids (and warns), `status --rebuild` recovers them, a garbled file is moved aside.
#[test]
fn deleted_reset_or_garbled_state_is_recovered_from_slurm() {
    require_slurm!();
    let _g = lock();
    let c = campaign("lostate", &repeats("s", 5));
    let d = c.dir.to_str().unwrap();
    assert!(submit(&c.dir, &["--hold"]).status.success());
    let ids = truth(&c.dir, "lostate");
    assert_eq!(ids.len(), 5);
    assert_eq!(recorded(&c.dir), ids);

    // Deleted: submit adopts, submits nothing, says so on stderr.
    remove_state(&c.dir);
    let o = sweep(&["submit", d, "--hold"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: the campaign state did not know 5 job(s)")
            && err.contains("not submitted again"),
        "{err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("reconciled ")
            .count(),
        5
    );
    assert_eq!(recorded(&c.dir), ids, "ids adopted");
    let t = tally(&c.dir, "lostate");
    assert_eq!((t.in_slurm, t.duplicates, t.lost), (5, 0, 0));

    // Reset to nothing: status shows the jobs with their ids, and warns.
    reset_state(&c.dir);
    let (v, code) = status_coded(&c.dir);
    assert_eq!(code, Some(0));
    assert_eq!(count_state(&v, "unsubmitted"), 0, "{v:#}");
    for (j, id) in &ids {
        assert_eq!(job(&v, j)["slurm_id"].as_str(), Some(id.as_str()), "{v:#}");
        assert_eq!(state_of(&v, j), "PENDING");
    }
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("did not know 5 job(s)")),
        "{v:#}"
    );
    // Reset again: `status --rebuild` adopts every id.
    reset_state(&c.dir);
    let o = sweep(&["status", d, "--rebuild"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("rebuilt: 5 adopted, 0 already known"), "{out}");
    assert_eq!(recorded(&c.dir), ids);

    // Garbage bytes: status names the file and the way out; --rebuild moves it aside.
    std::fs::write(c.dir.join("state.json"), b"\x00\xff\xfegarbage{{{\x01").unwrap();
    let o = sweep(&["status", d]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&c.dir.join("state.json").display().to_string()) && err.contains("--rebuild"),
        "{err}"
    );
    let o = sweep(&["status", d, "--rebuild"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("kept the unreadable state as"), "{out}");
    let aside: Vec<String> = std::fs::read_dir(&c.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("state.json.unreadable-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(recorded(&c.dir), ids);
    let t = tally(&c.dir, "lostate");
    assert_eq!((t.in_slurm, t.duplicates, t.lost, t.recorded), (5, 0, 0, 5));
    cancel_all(&c.dir);

    // A job that has ended: found again by `--rebuild` (this cluster keeps it in the queue for
    // MinJobAge; accounting has it too).
    let c = campaign(
        "lostdone",
        "[[stage]]\nname = \"t\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = { command = \"true\" }\nmatrix = { nodes = [1] }\n",
    );
    assert!(submit(&c.dir, &[]).status.success());
    wait_for(&c.dir, 60, "the job to complete", |v| {
        state_of(v, "t") == "COMPLETED"
    });
    let ids = truth(&c.dir, "lostdone");
    let sid = ids.values().next().unwrap().clone();
    if accounting() {
        // slurmctld sends accounting its records in the background (later still just after
        // a slurmdbd restart), and a job that ends before its start record arrived is first
        // recorded COMPLETED under the placeholder name `allocation` with no working
        // directory: wait for the whole record, as sweep looks jobs up by name and directory.
        wait_until(60, "accounting to record the job whole", || {
            let acct = run(
                "sacct",
                &[
                    "-n",
                    "-X",
                    "-P",
                    "-j",
                    &sid,
                    "-o",
                    "JobID,JobName,State,WorkDir",
                ],
            );
            acct.contains(&format!("{sid}|lostdone:")) && acct.contains("|COMPLETED|/")
        });
    }
    remove_state(&c.dir);
    let o = sweep(&["status", c.dir.to_str().unwrap(), "--rebuild"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("rebuilt: 1 adopted"), "{out}");
    assert_eq!(recorded(&c.dir), ids);
    assert_eq!(state_of(&status(&c.dir), "t"), "COMPLETED");
    if !accounting() {
        return;
    }
    // Had it left the queue (MinJobAge is 600 s here): an `squeue` first on PATH that hides
    // it, and no markers either, so only accounting can tell.
    let real = run("sh", &["-c", "command -v squeue"]).trim().to_string();
    let wrap = tempfile::tempdir().unwrap();
    let sq = wrap.path().join("squeue");
    std::fs::write(
        &sq,
        format!(
            "#!/bin/sh\nout=$('{real}' \"$@\")\nrc=$?\nprintf '%s\\n' \"$out\" | grep -v '|lostdone:'\nexit $rc\n"
        ),
    )
    .unwrap();
    run("chmod", &["+x", sq.to_str().unwrap()]);
    let path = format!(
        "{}:{}",
        wrap.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let hidden = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let jd = std::fs::read_dir(c.dir.join("jobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for m in ["started", "finished"] {
        std::fs::remove_file(jd.join(m)).unwrap();
    }
    remove_state(&c.dir);
    let o = hidden(&["status", c.dir.to_str().unwrap(), "--rebuild"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("rebuilt: 1 adopted") && out.contains("accounting: ok"),
        "{out}"
    );
    assert_eq!(recorded(&c.dir), ids, "adopted from accounting");
    let o = hidden(&["--json", "status", c.dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json_of(&o);
    assert_eq!(state_of(&v, "t"), "COMPLETED", "{v:#}");
    // Slurm's `0:0`, not a marker's `0`: learned from accounting (by the rebuild's own poll).
    assert_eq!(job(&v, "t")["exit_code"], "0:0", "{v:#}");
}

/// 5. Accounting down: a job cancelled before it started (no marker) is CANCELLED while the
///    queue still has it; one that left the queue is `unknown`, not `lost`, nothing of it is
///    saved, and `--watch` ends with 5.
#[test]
fn accounting_down_and_a_never_started_job_is_unknown_not_lost() {
    require_slurm!();
    if !accounting() {
        eprintln!("*** SKIPPING slurmdbd test: the cluster runs without accounting ***");
        return;
    }
    let _g = lock();
    let c = campaign(
        "dbdcancel",
        "[[stage]]\nname = \"held\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nmatrix = { nodes = [1] }\n\n[[stage]]\nname = \"gone\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nmatrix = { nodes = [1] }\n",
    );
    assert!(
        submit(&c.dir, &["--hold", "--stage", "held"])
            .status
            .success()
    );
    let sid = recorded(&c.dir).into_values().next().unwrap();
    run("scancel", &[&sid]);
    wait_until(30, "the held job to be CANCELLED", || {
        run("squeue", &["-h", "-t", "all", "-j", &sid, "-o", "%T"]).trim() == "CANCELLED"
    });
    daemon("stop-daemon", "slurmdbd");
    let _restart = Restart("slurmdbd");
    let v = status(&c.dir);
    assert_eq!(state_of(&v, "held"), "CANCELLED", "{v:#}");
    assert_eq!(job(&v, "held")["source"], "squeue");
    assert_eq!(v["accounting"], "not needed");
    // The same, had it left the queue: an id Slurm no longer has, no marker.
    let gone = job(&v, "gone")["id"].as_str().unwrap().to_string();
    {
        let lock = sweep::state::Lock::acquire(&c.dir).unwrap();
        let mut st = sweep::state::State::load(&c.dir).unwrap();
        let g = st.job(&gone);
        g.slurm_id = Some("987653".into());
        g.attempts = 1;
        g.state = Some(sweep::job_state::JobState::Pending);
        st.save(&lock, &c.dir).unwrap();
    }
    let before = state_bytes(&c.dir);
    let v = status(&c.dir);
    assert_eq!(state_of(&v, "gone"), "unknown", "{v:#}");
    assert_eq!(state_of(&v, "held"), "CANCELLED");
    assert_eq!(count_state(&v, "lost"), 0);
    assert!(
        v["accounting"].as_str().unwrap().starts_with("unavailable"),
        "{v:#}"
    );
    assert_eq!(
        state_bytes(&c.dir),
        before,
        "status saved what it did not learn"
    );
    let o = sweep(&["status", c.dir.to_str().unwrap(), "--watch"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot be accounted for"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        state_bytes(&c.dir),
        before,
        "--watch saved what it did not learn"
    );
}

/// 6. `afterok` on a job that fails: Slurm keeps the dependent job PENDING with
///    DependencyNeverSatisfied (no `kill_invalid_depend` on this cluster), and `status --watch`
///    ends with 4, naming the blocked job and why.
#[test]
fn watch_ends_with_4_when_all_that_is_left_can_never_start() {
    require_slurm!();
    let _g = lock();
    let conf = std::fs::read_to_string(crate::slurm::slurm_dir().join("etc/slurm.conf"))
        .unwrap_or_default();
    let kill_invalid = conf
        .lines()
        .any(|l| l.starts_with("SchedulerParameters") && l.contains("kill_invalid_depend"));
    let c = campaign(
        "neverdep",
        "[[stage]]\nname = \"a\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = { command = \"false\" }\nmatrix = { nodes = [1] }\n\n[[stage]]\nname = \"b\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nafter = [\"a\"]\nmatrix = { nodes = [1] }\n",
    );
    assert!(submit(&c.dir, &[]).status.success());
    let o = wait_child(
        spawn(&["status", c.dir.to_str().unwrap(), "--watch"]),
        90,
        "status --watch",
    );
    let v = status(&c.dir);
    let b = job(&v, "b")["id"].as_str().unwrap().to_string();
    let a = job(&v, "a")["id"].as_str().unwrap().to_string();
    eprintln!(
        "never-satisfied dependency: kill_invalid_depend={kill_invalid}, b is {} ({}), watch exit {:?}",
        state_of(&v, "b"),
        job(&v, "b")["reason"],
        o.status.code()
    );
    assert_eq!(state_of(&v, "a"), "FAILED");
    if kill_invalid {
        assert_eq!(state_of(&v, "b"), "CANCELLED");
        return;
    }
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    eprintln!("never-satisfied dependency: --watch said: {}", err.trim());
    assert!(
        err.contains("DependencyNeverSatisfied")
            && err.contains(&format!(
                "{b}: --dependency=afterok:a can never be satisfied"
            ))
            && err.contains(&format!("{a} FAILED")),
        "{err}"
    );
    assert_eq!(state_of(&v, "b"), "PENDING");
    assert_eq!(job(&v, "b")["reason"], "DependencyNeverSatisfied");
    cancel_all(&c.dir);
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs {
    _parent: tempfile::TempDir,
    dir: PathBuf,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount: {}", stderr(&o));
        Tmpfs {
            _parent: parent,
            dir,
        }
    }

    /// Fills it up, then frees `leave` bytes.
    fn fill(&self, leave: u64) {
        let f = self.dir.join("fill");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4096"])
            .arg(format!("of={}", f.display()))
            .output()
            .unwrap();
        let len = std::fs::metadata(&f).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.set_len(len.saturating_sub(leave)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Expands a campaign into `out` (the sweep file beside it, in `tmp`).
fn expand_into(tmp: &Path, name: &str, stages: &str, out: &Path) {
    let prof = root().join("slurm/clusters/local.toml");
    let f = tmp.join(format!("{name}.toml"));
    std::fs::write(
        &f,
        format!(
            "name = {name:?}\ncluster = {:?}\n[slurm]\ntime = \"00:05:00\"\n{stages}",
            prof.to_str().unwrap()
        ),
    )
    .unwrap();
    let o = sweep(&[
        "expand",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// 7. A full disk: status still shows the jobs and says the save failed, naming the file; a
///    submit that runs out of space stops naming `state.journal` and how many jobs it had
///    submitted, and once there is space again the next submit submits the rest, none twice.
#[test]
fn a_full_disk_never_loses_or_duplicates_a_job() {
    require_slurm!();
    let _g = lock();
    let tmp = tempfile::tempdir().unwrap();

    // status with the disk full.
    let fs = Tmpfs::new("2M");
    let dir = fs.dir.join("camp");
    expand_into(tmp.path(), "fullst", &repeats("f", 3), &dir);
    let o = submit(&dir, &["--hold"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Written whole: the journal is empty, so a record needs a page the disk no longer has.
    {
        let lock = sweep::state::Lock::acquire(&dir).unwrap();
        let mut st = sweep::state::State::load(&dir).unwrap();
        st.save(&lock, &dir).unwrap();
    }
    fs.fill(0);
    let before = state_bytes(&dir);
    let (v, code) = status_coded(&dir);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["counts"]["PENDING"], 3, "{v:#}");
    let journal = dir.join("state.journal").display().to_string();
    let errors: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("not saved") && e.contains(&journal) && e.contains("No space")),
        "{v:#}"
    );
    assert!(v["saved"].as_str().unwrap().starts_with("not saved"));
    assert_eq!(state_bytes(&dir), before);
    // The text output says it too.
    let o = sweep(&["status", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("warning: not saved") && out.contains(&journal),
        "{out}"
    );
    cancel_all(&dir);
    drop(fs);

    // submit running out of space.
    let fs = Tmpfs::new("2M");
    let dir = fs.dir.join("camp");
    expand_into(tmp.path(), "fullsub", &repeats("g", 40), &dir);
    // Room for a few records of the journal (each ~300 bytes, two a job), not for 40 jobs'.
    fs.fill(8192);
    let o = sweep(&["submit", dir.to_str().unwrap(), "--hold"]);
    assert!(!o.status.success(), "a full disk went unnoticed");
    let err = stderr(&o);
    let n: usize = err
        .split("job(s) submitted by this run before it")
        .next()
        .and_then(|s| s.rsplit(": ").next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count of jobs submitted in: {err}"));
    assert!(err.contains(&journal_of(&dir)), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    eprintln!("full disk: submit said: {}", err.trim());
    let mid = tally(&dir, "fullsub");
    let ids = recorded(&dir).len();
    eprintln!(
        "full disk: submit stopped after {n} job(s); {} in Slurm, {ids} ids recorded",
        mid.in_slurm
    );
    assert!(n > 0 && n < 40, "{err}");
    assert_eq!(ids, n, "the jobs it said it submitted are recorded");
    std::fs::remove_file(fs.dir.join("fill")).unwrap();
    let o = submit(&dir, &["--hold"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = tally(&dir, "fullsub");
    eprintln!(
        "full disk: after freeing space {} in Slurm, duplicates={}, wrong ids={}",
        t.in_slurm, t.duplicates, t.lost
    );
    assert_eq!((t.names, t.duplicates, t.lost, t.recorded), (40, 0, 0, 40));
    cancel_all(&dir);
}

fn journal_of(dir: &Path) -> String {
    dir.join("state.journal").display().to_string()
}

/// Puts a node back in service when dropped (a failed assertion must not leave it DOWN or
/// drained for the tests after).
struct Resume(String);

impl Drop for Resume {
    fn drop(&mut self) {
        run(
            "scontrol",
            &["update", &format!("NodeName={}", self.0), "State=RESUME"],
        );
    }
}

/// 8. A node failure under a `--requeue` job: requeued, status counts the restart and shows no
///    exit code of the ended attempt while the job waits or runs again, and the first
///    attempt's output stays in `slurm-<id>.out` (`--open-mode=append`).
#[test]
fn a_requeued_job_counts_its_restart_and_keeps_its_first_output() {
    require_slurm!();
    let _g = lock();
    let c = campaign(
        "requeue",
        r#"
[[stage]]
name = "rq"
template = "cpu-smoke.sbatch.j2"
slurm = { extra = ["--requeue"] }
params = { command = "if [ \"${SLURM_RESTART_COUNT:-0}\" -ge 1 ]; then echo attempt-two; else echo attempt-one; sleep 120; fi" }
matrix = { nodes = [1] }
"#,
    );
    assert!(submit(&c.dir, &[]).status.success());
    let v = wait_for(&c.dir, 30, "running", |v| {
        state_of(v, "rq") == "RUNNING" && crate::slurm::job_outputs(&c.dir).contains("attempt-one")
    });
    let sid = job(&v, "rq")["slurm_id"].as_str().unwrap().to_string();
    let node = run("squeue", &["-h", "-j", &sid, "-o", "%N"])
        .trim()
        .to_string();
    let _resume = Resume(node.clone());
    run(
        "scontrol",
        &[
            "update",
            &format!("NodeName={node}"),
            "State=DOWN",
            "Reason=sweep-requeue-test",
        ],
    );
    let v = wait_for(&c.dir, 60, "requeued (PENDING, restarts >= 1)", |v| {
        state_of(v, "rq") == "PENDING" && job(v, "rq")["restarts"].as_u64() >= Some(1)
    });
    assert!(
        job(&v, "rq")["exit_code"].is_null(),
        "stale exit code: {v:#}"
    );
    // A node that really fails runs no trap: the first attempt may leave no `finished` marker
    // (here it sometimes does not either). The controller's restart count still tells.
    let jd = std::fs::read_dir(c.dir.join("jobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let _ = std::fs::remove_file(jd.join("finished"));
    {
        // ... nor had an earlier poll seen one.
        let lock = sweep::state::Lock::acquire(&c.dir).unwrap();
        let mut st = sweep::state::State::load(&c.dir).unwrap();
        let id = job(&v, "rq")["id"].as_str().unwrap().to_string();
        st.job(&id).restarts = None;
        st.save(&lock, &c.dir).unwrap();
    }
    let v = status(&c.dir);
    assert!(job(&v, "rq")["restarts"].as_u64() >= Some(1), "{v:#}");
    assert!(job(&v, "rq")["exit_code"].is_null(), "{v:#}");
    // Slurm holds a requeued job back 2 minutes (BeginTime); let it go now, but not to the
    // failed node: its first attempt may still be ending there, and Slurm drains a node that
    // is sent a job id it still runs ("Duplicate jobid"). The first attempt's `finished`
    // marker is written (the restart count above comes from it), so the second attempt's
    // markers cannot be overwritten by the first's.
    run(
        "scontrol",
        &[
            "update",
            &format!("JobId={sid}"),
            &format!("ExcNodeList={node}"),
            "StartTime=now",
        ],
    );
    let v = wait_for(&c.dir, 90, "the second attempt to complete", |v| {
        let j = job(v, "rq");
        if matches!(j["state"].as_str(), Some("PENDING" | "RUNNING")) {
            assert!(j["exit_code"].is_null(), "stale exit code: {v:#}");
        }
        j["state"] == "COMPLETED"
    });
    let j = job(&v, "rq");
    assert_eq!(j["slurm_id"].as_str(), Some(sid.as_str()));
    assert!(j["restarts"].as_u64() >= Some(1), "{v:#}");
    assert_eq!(j["exit_code"], "0");
    let out = std::fs::read_to_string(jd.join(format!("slurm-{sid}.out"))).unwrap();
    assert!(
        out.contains("attempt-one") && out.contains("attempt-two"),
        "the first attempt's output was not kept:\n{out}"
    );
    let t = tally(&c.dir, "requeue");
    assert_eq!((t.in_slurm, t.duplicates, t.lost), (1, 0, 0));
}
