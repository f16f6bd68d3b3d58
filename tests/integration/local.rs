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

/// The local profile with an RDMA NIC this machine lacks and a `[network]` section.
fn network_profile(tmp: &Path, network: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("slurm/clusters/local.toml")).unwrap();
    let text = text
        .replacen(
            "[[gpu_map]]",
            "[[nic]]\nname = \"mlx5_0\"\nport = 1\nnuma = 0\nrate_gbps = 400.0\nkind = \"RoCEv2\"\n\n[[gpu_map]]",
            1,
        )
        .replacen("[paths]", &format!("[network]\n{network}\n\n[paths]"), 1);
    let p = tmp.join("net-profile.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// What a command prints on this machine (the tests compare the probe with it).
fn sh(cmd: &str) -> String {
    let o = Command::new("bash").arg("-c").arg(cmd).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The preflight run for real on this machine, which has no GPU and no RDMA device: every GPU
/// and RDMA check is `n/a` with the reason, never pass or fail; the locked-memory limit and the
/// bootstrap interfaces are checked for real; `collect` puts every check in preflight.csv and
/// the report names the failing node and checks.
#[test]
fn preflight_on_a_node_without_gpu_or_rdma_says_n_a_and_checks_memlock_and_sockets() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = network_profile(
        tmp.path(),
        "socket_ifname = \"=lo\"\ngloo_socket_ifname = \"lo,nosuch0\"\nroce_gid_index = 3\nmtu = 4096\nnetdev_mtu = 9000",
    );
    // The limit as a task of this machine sees it; one KiB more than that cannot be met.
    let limit = sh("ulimit -l");
    let (want, memlock) = if limit == "unlimited" {
        ("\"unlimited\"".to_string(), "pass")
    } else {
        (format!("{}", limit.parse::<u64>().unwrap() + 1), "fail")
    };
    let dir = campaign(
        tmp.path(),
        "pf",
        Some(&profile),
        &format!(
            "[[stage]]\nname = \"preflight\"\ntemplate = \"preflight.sbatch.j2\"\n[stage.params]\ngpus_per_node = 1\nexpect_memlock_kib = {want}\n\n\
             [[stage]]\nname = \"pfok\"\ntemplate = \"preflight.sbatch.j2\"\n[stage.params]\ngpus_per_node = 1\nexpect_memlock_kib = 0\n[stage.env]\nNCCL_SOCKET_IFNAME = \"^nosuch\"\nGLOO_SOCKET_IFNAME = \"lo\"\n"
        ),
    );
    let script = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("job.sbatch"))
        .find(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("preflight")
        })
        .unwrap();
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(
        text.contains("export NCCL_SOCKET_IFNAME==lo\n")
            && text.contains("export GLOO_SOCKET_IFNAME=lo,nosuch0\n")
            && text.contains("export NCCL_IB_GID_INDEX=3\n"),
        "[network] is exported:\n{text}"
    );
    submit_local("-q", &dir);
    let res = tmp.path().join("res");
    ok(sweep(&[
        "-q",
        "collect",
        dir.to_str().unwrap(),
        "--out",
        res.to_str().unwrap(),
    ]));
    let csv = std::fs::read_to_string(res.join("preflight.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        rdr.headers().unwrap().iter().collect::<Vec<_>>(),
        ["run", "node", "check", "status", "expected", "found"]
    );
    let get = |run: &str, check: &str| -> (String, String, String) {
        let r = rows
            .iter()
            .find(|r| r[0].starts_with(run) && &r[2] == check)
            .unwrap_or_else(|| panic!("no {check} of {run} in\n{csv}"));
        (r[3].to_string(), r[4].to_string(), r[5].to_string())
    };
    let no_gpu = "no NVIDIA GPU here (nvidia-smi absent or lists none)";
    for c in [
        "persistence_mode",
        "ecc_mode",
        "row_remap",
        "nvlink",
        "fabric_manager",
        "gpudirect_rdma",
    ] {
        let (status, _, found) = get("preflight", c);
        assert_eq!((status.as_str(), found.as_str()), ("n/a", no_gpu), "{c}");
    }
    for c in ["gid.mlx5_0", "mtu.mlx5_0"] {
        let (status, _, found) = get("preflight", c);
        assert_eq!(
            (status.as_str(), found.as_str()),
            ("n/a", "no RDMA port mlx5_0/1 on this node"),
            "{c}"
        );
    }
    let (status, _, found) = get("preflight", "memlock");
    assert_eq!(
        (status.as_str(), found),
        (memlock, format!("{limit} (ulimit -l)"))
    );
    assert_eq!(get("pfok", "memlock").0, "pass");
    // lo, read the way the probe reads it: up, with the address `ip` gives it.
    let lo_addr =
        sh("ip -o addr show dev lo | awk '$3 == \"inet\" || $3 == \"inet6\" {print $4; exit}'");
    assert!(!lo_addr.is_empty());
    let (status, expected, found) = get("preflight", "nccl_socket_ifname");
    assert_eq!(
        (status.as_str(), expected.as_str(), found),
        (
            "pass",
            "=lo: an interface up with an address",
            format!("lo up {lo_addr}")
        )
    );
    let (status, _, found) = get("preflight", "gloo_socket_ifname");
    assert_eq!(
        (status.as_str(), found),
        (
            "fail",
            format!("lo up {lo_addr}, nosuch0: no such interface")
        )
    );
    // `^nosuch` excludes nothing here: every interface this machine has that is up with an
    // address passes, lo among them.
    let (status, _, found) = get("pfok", "nccl_socket_ifname");
    assert_eq!(status, "pass");
    assert!(found.contains(&format!("lo up {lo_addr}")), "{found}");
    assert_eq!(get("pfok", "gloo_socket_ifname").0, "pass");

    // The report names the node and the failed checks.
    ok(sweep(&[
        "-q",
        "report",
        dir.to_str().unwrap(),
        "--out",
        res.to_str().unwrap(),
    ]));
    let html = std::fs::read_to_string(res.join("report.html")).unwrap();
    let node = rows.iter().find(|r| r[0].starts_with("preflight")).unwrap()[1].to_string();
    assert!(
        html.contains(&format!("<td>{node}</td><td>gloo_socket_ifname</td>")),
        "the failing node and check in the report"
    );
    // One line per node: every check that failed there (both jobs ran on this one node, with
    // no GPU and no mlx5_0: gpus_per_node and nic.mlx5_0 fail too).
    let line = html
        .split("<p>Failed: ")
        .nth(1)
        .and_then(|s| s.split("</p>").next())
        .expect("a failed-checks line");
    let mut want = vec!["gpus_per_node", "nic.mlx5_0", "gloo_socket_ifname"];
    if memlock == "fail" {
        want.insert(2, "memlock");
    }
    assert_eq!(line, format!("<b>{node}</b> ({}).", want.join(", ")));
}

/// The probe's parsing functions, taken from a rendered preflight script and run by bash on
/// output captured from this machine's own commands (and, for nvidia-smi, a real H100 capture).
#[test]
fn preflight_functions_read_real_command_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = campaign(
        tmp.path(),
        "pff",
        None,
        "[[stage]]\nname = \"preflight\"\ntemplate = \"preflight.sbatch.j2\"\n",
    );
    let script = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path().join("job.sbatch"))
        .next()
        .unwrap();
    let text = std::fs::read_to_string(script).unwrap();
    let start = text.find("# >>> sweep-preflight-functions").unwrap();
    let end = text.find("# <<< sweep-preflight-functions").unwrap();
    let functions = &text[start..end];
    let run = |body: &str| -> String {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("{functions}\n{body}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    };
    // ulimit -l of this machine, against itself, one more and unlimited.
    let limit = sh("ulimit -l");
    assert_eq!(
        run(&format!(
            "memlock_ok {limit} {limit} && echo a; memlock_ok {limit} unlimited || echo b; memlock_ok unlimited 1 && echo c"
        )),
        if limit == "unlimited" {
            "a\nc"
        } else {
            "a\nb\nc"
        }
    );
    if limit != "unlimited" {
        let more = limit.parse::<u64>().unwrap() + 1;
        assert_eq!(
            run(&format!("memlock_ok {limit} {more} || echo short")),
            "short"
        );
    }
    // uname -r of this machine (e.g. 6.18.44-fc-v1300) against 5.12 and against itself + 1.
    let rel = sh("uname -r");
    let major: u32 = rel.split('.').next().unwrap().parse().unwrap();
    assert_eq!(
        run(&format!(
            "kernel_at_least {rel} 5 12 && echo new; kernel_at_least {rel} {} 0 || echo old",
            major + 1
        )),
        if major > 5 { "new\nold" } else { "old" }
    );
    // The interfaces of this machine: `^` excludes, `=` matches whole names, prefixes match.
    let ifaces: Vec<String> = sh("ls /sys/class/net")
        .split_whitespace()
        .map(String::from)
        .collect();
    let list = ifaces.join(" ");
    assert_eq!(run(&format!("ifname_select lo {list}")), "lo");
    assert_eq!(run(&format!("ifname_select =l {list}")), "");
    assert_eq!(run(&format!("ifname_select l {list}")), "lo");
    let others: Vec<&str> = ifaces
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "lo")
        .collect();
    assert_eq!(
        run(&format!("ifname_select ^=lo {list}")),
        others.join("\n")
    );
    assert_eq!(
        run(&format!("ifname_select ^lo,nosuch {list}")),
        others.join("\n")
    );
    // lo is up with an address; an interface that does not exist is said so.
    let lo = run("iface_ready lo; echo $?");
    assert!(lo.starts_with("lo up ") && lo.ends_with("\n0"), "{lo}");
    assert_eq!(
        run("iface_ready nosuch0; echo $?"),
        "nosuch0: no such interface\n1"
    );
    // An interface that is down, where this machine has one (its flags say so).
    if let Some(down) = ifaces
        .iter()
        .find(|n| sh(&format!("cat /sys/class/net/{n}/operstate")) == "down")
    {
        let out = run(&format!("iface_ready {down}; echo $?"));
        assert!(
            out.starts_with(&format!("{down} down (flags 0x")) && out.ends_with("\n1"),
            "{out}"
        );
    }
    // `nvidia-smi --query-gpu=... --format=csv,noheader` separates fields with ", ": columns 2
    // and 3 (index, name) of a real sample of the H100 run.
    let csv = std::fs::read_to_string(
        root().join("tests/fixtures/device-h100-2026-11-24/nvsmi-train.csv"),
    )
    .unwrap();
    let line = csv.lines().next().unwrap();
    let idx_name: Vec<&str> = line.split(", ").skip(1).take(2).collect();
    let input = idx_name.join(", ");
    assert_eq!(input, "0, NVIDIA H100 80GB HBM3");
    let states = run(&format!("printf '%s\\n' '{input}' '{input}' | gpu_states"));
    assert_eq!(states, "0=NVIDIA H100 80GB HBM3;0=NVIDIA H100 80GB HBM3");
    assert_eq!(
        run(&format!(
            "states_verdict '{states}' 'NVIDIA H100 80GB HBM3'"
        )),
        "pass"
    );
    assert_eq!(run(&format!("states_verdict '{states}' Enabled")), "fail");
    assert_eq!(run("states_verdict '' Enabled"), "n/a");
    // Documentation-derived, not a capture: nvidia-smi's manual page says unsupported data is
    // shown as "N/A" (manpages.ubuntu.com, nvidia-smi(1)). A GPU that says so is no failure;
    // only GPUs that all say so make the check n/a.
    assert_eq!(run("states_verdict '0=N/A;1=N/A' Enabled"), "n/a");
    assert_eq!(run("states_verdict '0=Enabled;1=N/A' Enabled"), "pass");
    assert_eq!(run("states_verdict '0=Enabled;1=Disabled' Enabled"), "fail");
}
