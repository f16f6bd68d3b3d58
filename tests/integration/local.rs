//! The local executor (`sweep submit --executor local`, `sweep demo`): real job scripts run on
//! this machine through sweep's srun stand-in, with real CPU binding, markers, dependencies,
//! signals and a crash of sweep itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{bin, root, sweep};

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn json(o: Output) -> Value {
    serde_json::from_slice(&ok(o).stdout).unwrap()
}

/// A campaign against `profile` (default: the local profile) with the given stages.
fn campaign(tmp: &Path, name: &str, profile: Option<&Path>, stages: &str) -> PathBuf {
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
    let dir = tmp.join(name);
    let mut args = vec![
        "-q",
        "expand",
        f.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ];
    if let Some(p) = profile {
        args.extend(["--profile", p.to_str().unwrap()]);
    }
    ok(sweep(&args));
    dir
}

/// `sweep MODE submit --executor local DIR` (MODE: `-q` or `--json`).
fn submit_local(mode: &str, dir: &Path) -> Output {
    sweep(&[mode, "submit", "--executor", "local", dir.to_str().unwrap()])
}

fn jobs(status: &Value) -> Vec<(String, String)> {
    status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn state_of(status: &Value, prefix: &str) -> String {
    jobs(status)
        .into_iter()
        .find(|(id, _)| id.starts_with(prefix))
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no job {prefix}"))
}

fn allowed_cpus() -> Vec<usize> {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = s
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    let mut v = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => v.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => v.push(part.parse().unwrap()),
        }
    }
    v
}

#[test]
fn demo_runs_collects_and_binds_one_gpu_per_task() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let res = tmp.path().join("res");
    let r = json(sweep(&[
        "--json",
        "demo",
        "--out",
        runs.to_str().unwrap(),
        "--results",
        res.to_str().unwrap(),
    ]));
    let rows = r["collect"]["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert_eq!(row["status"], "COMPLETED", "{row:#}");
        assert!(
            row["figures"]["step_time_ms_p50"].as_f64().unwrap() > 0.0,
            "{row:#}"
        );
    }
    let st = json(sweep(&["--json", "status", runs.to_str().unwrap()]));
    assert_eq!(st["slurm_calls"], 0, "local jobs are not Slurm's");
    assert!(jobs(&st).iter().all(|(_, s)| s == "COMPLETED"));
    // Every task of every job drove its own GPU and had the profile's CPUs for it.
    let mut rdr = csv::Reader::from_path(res.join("binding.csv")).unwrap();
    let mut n = 0;
    for rec in rdr.deserialize::<std::collections::HashMap<String, String>>() {
        let rec = rec.unwrap();
        // Every task sees the job's GPUs (no per-rank --gpu-bind) and drives its local rank's.
        let lr: usize = rec["local_rank"].parse().unwrap();
        assert_eq!(
            rec["gpu"].split(',').nth(lr),
            Some(rec["local_rank"].as_str()),
            "{rec:?}"
        );
        assert_eq!(rec["gpu_ok"], "true");
        n += 1;
    }
    assert_eq!(n, 1 + 2 + 4 + 2);
    // The jobs' telemetry loops were stopped, nothing of them outlives the run.
    assert_eq!(running_under(&runs), Vec::<String>::new());
}

/// Command lines of the processes that name `dir` in theirs.
fn running_under(dir: &Path) -> Vec<String> {
    let want = dir.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(want))
        .collect()
}

#[test]
fn what_a_job_leaves_running_ends_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    // A payload that forks a process it never waits for: Slurm kills it when the batch
    // script ends, and so must the local executor.
    let marker = tmp.path().join("left-behind");
    let dir = campaign(
        tmp.path(),
        "orphan",
        None,
        &format!(
            r#"
[[stage]]
name = "fork"
template = "cpu-smoke.sbatch.j2"
params = {{ command = "bash -c 'exec -a {} sleep 300' &" }}
matrix = {{ nodes = [1] }}
"#,
            marker.display()
        ),
    );
    ok(submit_local("-q", &dir));
    let st = json(sweep(&["--json", "status", dir.to_str().unwrap()]));
    assert!(jobs(&st).iter().all(|(_, s)| s == "COMPLETED"), "{st:#}");
    assert_eq!(running_under(&marker), Vec::<String>::new());
}

#[test]
fn cpu_binding_is_applied_for_real() {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        eprintln!(
            "*** SKIPPING: this machine lets the test use {} CPU(s); binding needs 2 ***",
            cpus.len()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Two "GPUs" bound to one CPU each, in reverse order, so binding is visible.
    let base = std::fs::read_to_string(root().join("slurm/clusters/local.toml")).unwrap();
    let head = &base[..base.find("[[gpu_map]]").unwrap()];
    let prof = format!(
        "{}[[gpu_map]]\ngpu = 0\nnuma = 0\ncpus = \"{}\"\n\n[[gpu_map]]\ngpu = 1\nnuma = 0\ncpus = \"{}\"\n\n[env]\n\n[paths]\npython = \"python3\"\nsetup = []\n",
        head.replace("per_node = 8", "per_node = 2"),
        cpus[1],
        cpus[0]
    );
    let pf = tmp.path().join("two.toml");
    std::fs::write(&pf, prof).unwrap();
    let dir = campaign(
        tmp.path(),
        "bind",
        Some(&pf),
        "[[stage]]\nname = \"b\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nmatrix = { nodes = [1] }\n",
    );
    ok(submit_local("-q", &dir));
    let job = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let out = std::fs::read_to_string(
        std::fs::read_dir(&job)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("slurm-")
            })
            .unwrap(),
    )
    .unwrap();
    for (rank, cpu) in [(0, cpus[1]), (1, cpus[0])] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("sweep-bind rank={rank} ")))
            .unwrap_or_else(|| panic!("no bind line for rank {rank} in:\n{out}"));
        assert!(
            line.contains(&format!(" cpus={cpu} ")),
            "rank {rank} should run on CPU {cpu}: {line}"
        );
        assert!(line.contains("cuda_visible_devices=0,1 "), "{line}");
    }
    assert!(
        out.contains("cpu-bind=MASK"),
        "verbose binding is reported as srun does:\n{out}"
    );
}

#[test]
fn dependencies_failures_and_multi_node_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = campaign(
        tmp.path(),
        "deps",
        None,
        r#"
[[stage]]
name = "a"
template = "cpu-smoke.sbatch.j2"
params = { command = "echo failing on purpose; exit 3" }
matrix = { nodes = [1, 2] }

[[stage]]
name = "b"
template = "cpu-smoke.sbatch.j2"
after = ["a"]
matrix = { nodes = [1] }

[[stage]]
name = "c"
template = "cpu-smoke.sbatch.j2"
after = ["a"]
dependency = "afterany"
matrix = { nodes = [1] }
"#,
    );
    let r = json(submit_local("--json", &dir));
    let ran: Vec<&str> = r["ran"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[0].as_str().unwrap())
        .collect();
    assert_eq!(ran.len(), 1, "{r:#}");
    let skipped = r["skipped"].as_array().unwrap();
    let why = |p: &str| {
        skipped
            .iter()
            .find(|s| s[0].as_str().unwrap().starts_with(p))
            .map(|s| s[1].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(why("a-n2").contains("2 nodes"), "{r:#}");
    // Stage a has a job that cannot run here: `b` (afterok) never will, `c` waits.
    assert!(why("b-").contains("DependencyNeverSatisfied"), "{r:#}");
    let st = json(sweep(&["--json", "status", dir.to_str().unwrap()]));
    assert_eq!(state_of(&st, "a-n1"), "FAILED");
    let a = st["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"].as_str().unwrap().starts_with("a-n1"))
        .unwrap();
    // The highest exit code of the tasks that ended by themselves (those srun terminated
    // after the first failure do not count).
    assert_eq!(a["exit_code"], "3");
    let out: String = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("a-n1"))
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .filter(|f| f.file_name().to_string_lossy().starts_with("slurm-"))
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect();
    assert!(
        out.contains(": task 0: Exited with exit code 3")
            || out.contains("Exited with exit code 3"),
        "{out}"
    );
    // Nothing runs twice.
    let again = json(submit_local("--json", &dir));
    assert!(again["ran"].as_array().unwrap().is_empty());
    assert_eq!(again["already"], 1);
}

#[test]
fn sigterm_to_sweep_reaches_the_job_and_a_killed_sweep_never_reruns_it() {
    let tmp = tempfile::tempdir().unwrap();
    let stages = "[[stage]]\nname = \"s\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = { command = \"sleep 30\" }\nmatrix = { gpus_per_node = [1] }\n";
    let dir = campaign(tmp.path(), "sig", None, stages);
    let job_dir = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let wait_started = |since: Instant| {
        while !job_dir.join("started").exists()
            || !std::fs::read_dir(&job_dir)
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy() == "rank-wrapper.sh")
        {
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "job never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut child = Command::new(bin())
        .args(["-q", "submit", "--executor", "local", dir.to_str().unwrap()])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    wait_started(t0);
    unsafe { libc_kill(child.id() as i32, 15) };
    let _ = child.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "the job went on after SIGTERM"
    );
    let st = json(sweep(&["--json", "status", dir.to_str().unwrap()]));
    assert_eq!(state_of(&st, "s-"), "CANCELLED", "{st:#}");

    // kill -9 of sweep: the script goes on alone; the next submit neither reruns it nor loses it.
    let dir2 = campaign(
        tmp.path(),
        "crash",
        None,
        &stages.replace("sleep 30", "sleep 3"),
    );
    let job2 = std::fs::read_dir(dir2.join("jobs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut child = Command::new(bin())
        .args([
            "-q",
            "submit",
            "--executor",
            "local",
            dir2.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !job2.join("started").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let r = json(submit_local("--json", &dir2));
    assert!(
        r["ran"].as_array().unwrap().is_empty(),
        "a job still running is not started again: {r:#}"
    );
    while !job2.join("finished").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the orphaned script never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = json(submit_local("--json", &dir2));
    assert!(r["ran"].as_array().unwrap().is_empty());
    let st = json(sweep(&["--json", "status", dir2.to_str().unwrap()]));
    assert_eq!(state_of(&st, "s-"), "COMPLETED", "{st:#}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The tasks of a step share the job's output file. A task that writes a line in pieces (bash's
/// `printf` per piece, Python's `-u` print writing the text and its newline apart, a C
/// program's stdio flushing a full buffer mid-line) must not let another task's line land
/// inside it: srun without `--unbuffered` forwards each task's output in whole lines, so does
/// the local executor. Issue 23: a rank's `sweep-bind` line glued after another's partial line
/// was missed by `collect` (8 binding rows of 9).
#[test]
fn tasks_output_reaches_the_job_file_in_whole_lines() {
    let tmp = tempfile::tempdir().unwrap();
    const LINES: usize = 150;
    // Each of the 8 tasks writes every line in three writes, on stdout and on stderr, while
    // the others do the same on 2..N CPUs: pieces of different tasks interleave wherever
    // the tasks write straight into the file.
    let command = format!(
        "for i in $(seq 1 {LINES}); do printf \"task=%s \" \"$RANK\"; printf \"line=%s \" \"$i\"; printf \"end\\n\"; printf \"err-task=%s \" \"$RANK\" >&2; printf \"line=%s end\\n\" \"$i\" >&2; done"
    );
    let dir = campaign(
        tmp.path(),
        "lines",
        None,
        &format!(
            "[[stage]]\nname = \"l\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nparams = {{ command = {} }}\nmatrix = {{ nodes = [1] }}\n",
            toml_string(&command)
        ),
    );
    ok(submit_local("-q", &dir));
    let job = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let out_path = std::fs::read_dir(&job)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("slurm-")
        })
        .unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut bad = Vec::new();
    for l in out.lines() {
        let whole = l.starts_with("task=") || l.starts_with("err-task=");
        if whole && l.ends_with(" end") && l.matches("task=").count() == 1 {
            *seen.entry(l.to_string()).or_default() += 1;
        } else if l.contains("task=") || l.contains("line=") || l.contains("end") {
            bad.push(l.to_string());
        }
    }
    let ntasks = 8;
    let mut missing = 0;
    for t in 0..ntasks {
        for i in 1..=LINES {
            for want in [
                format!("task={t} line={i} end"),
                format!("err-task={t} line={i} end"),
            ] {
                if seen.get(&want) != Some(&1) {
                    missing += 1;
                }
            }
        }
    }
    assert!(
        bad.is_empty() && missing == 0,
        "{missing} line(s) not found whole exactly once; {} broken or glued line(s), the first: {:#?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    for t in 0..ntasks {
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with(&format!("sweep-bind rank={t} ")))
                .count(),
            1,
            "rank {t}'s binding line, whole, at a line start:\n{out}"
        );
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    format!("{:?}", s)
}
