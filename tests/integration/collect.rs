//! `sweep collect` on real runs: the campaign the payload ran on a borrowed H200 through the
//! local executor (tests/fixtures/device-h200-2026-12-02, see its PROVENANCE.md), and the
//! H100 logs of tests/fixtures/device-h100-2026-11-24 as an arbitrary `--logs` tree. Every
//! expected figure is read from the logs themselves here, independently of the parsers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{csv_rows, root, sweep};

fn fixture() -> PathBuf {
    root().join("tests/fixtures/device-h200-2026-12-02/campaign")
}

/// A copy of the fixture campaign, so that the test can touch files.
fn copy_campaign(to: &Path) -> PathBuf {
    let dst = to.join("campaign");
    for e in walkdir::WalkDir::new(fixture()) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(fixture()).unwrap();
        let d = dst.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&d).unwrap();
        } else {
            std::fs::copy(e.path(), &d).unwrap();
        }
    }
    dst
}

fn job_dir(prefix: &str) -> PathBuf {
    std::fs::read_dir(fixture().join("jobs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap()
}

/// The payload's records of one kind, straight from the log.
fn records(log: &Path, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| l.find("SWEEP_METRICS ").map(|i| &l[i + 14..]))
        .filter_map(|j| serde_json::from_str::<Value>(j).ok())
        .filter(|v| v["kind"] == kind)
        .collect()
}

fn num(row: &HashMap<String, String>, k: &str) -> f64 {
    row[k]
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("{k} = {:?} is not a number", row[k]))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-9)
}

#[test]
fn device_campaign_tables_agree_with_the_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("res");
    let o = sweep(&[
        "--json",
        "collect",
        fixture().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs = csv_rows(&out.join("runs.csv"));
    let by: HashMap<&str, &HashMap<String, String>> =
        runs.iter().map(|r| (r["stage"].as_str(), r)).collect();
    assert_eq!(runs.len(), 4);

    // Training: the payload's own summary is the figure, the flops profiler's first print beside it.
    for r in runs.iter().filter(|r| r["stage"] == "train") {
        let log = fixture().join("jobs").join(&r["run"]).join("rank-0.log");
        let summary = records(&log, "summary").pop().unwrap();
        assert_eq!(r["status"], "COMPLETED");
        assert!(close(
            num(r, "samples_per_s"),
            summary["samples_per_s"].as_f64().unwrap(),
            1e-3
        ));
        assert!(close(
            num(r, "tflops_per_gpu"),
            summary["tflops_per_gpu"].as_f64().unwrap(),
            1e-3
        ));
        let text = std::fs::read_to_string(&log).unwrap();
        let first_profile: f64 = text
            .lines()
            .find(|l| l.starts_with("FLOPS per GPU = 3 * fwd flops per GPU / iter latency:"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().trim_end_matches("TFLOPS").trim().parse().ok())
            .unwrap();
        assert!(close(
            num(r, "profiler_tflops_per_gpu"),
            first_profile,
            1e-6
        ));
        // Steady-state steps: not warm-up, not the profiled step.
        let steady = records(&log, "step")
            .into_iter()
            .filter(|s| s["warmup"] == false && s["excluded"] != true)
            .count();
        assert_eq!(num(r, "steps_measured") as usize, steady);
        // GPU utilisation: the mean of every nvidia-smi sample of the job.
        let smi = std::fs::read_to_string(log.with_file_name("gpu-vm.csv")).unwrap();
        let utils: Vec<f64> = smi
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(4))
            .filter_map(|u| u.trim().trim_end_matches('%').trim().parse().ok())
            .collect();
        let mean = utils.iter().sum::<f64>() / utils.len() as f64;
        assert!(
            close(num(r, "gpu_util_avg"), mean, 1e-3),
            "{} vs {mean}",
            r["gpu_util_avg"]
        );
        assert_eq!(num(r, "binding_mismatches"), 0.0);
        assert_eq!(r["failure_class"], "");
    }
    // The deliberately too-large micro-batch: a real CUDA OOM, with the traceback's line as evidence.
    let oom = by["oom"];
    assert_eq!(oom["status"], "FAILED");
    assert_eq!(oom["failure_class"], "oom");
    assert!(
        oom["failure_evidence"].contains("rank-0.log:"),
        "{}",
        oom["failure_evidence"]
    );
    assert!(oom["failure_evidence"].contains("torch.OutOfMemoryError: CUDA out of memory"));
    assert_eq!(
        oom["samples_per_s"], "",
        "no throughput is invented for a run that made no step"
    );

    // The payload's collectives become nccl.csv rows, one per record.
    let nccl = csv_rows(&out.join("nccl.csv"));
    let coll_log = job_dir("coll-").join("rank-0.log");
    let recs = records(&coll_log, "collective");
    assert_eq!(nccl.len(), recs.len());
    for (row, rec) in nccl.iter().zip(&recs) {
        assert_eq!(row["collective"], rec["collective"].as_str().unwrap());
        assert_eq!(row["size_bytes"], rec["size_bytes"].to_string());
        assert!(close(
            num(row, "algbw_gbps"),
            rec["algbw_gbps"].as_f64().unwrap(),
            1e-3
        ));
        assert_eq!(row["nranks"], "1");
        assert_eq!(row["gpu_name"], "NVIDIA H200");
        assert_eq!(row["nccl_version"], "2.28.9");
    }
    for c in ["all_reduce", "all_gather", "reduce_scatter"] {
        assert!(nccl.iter().any(|r| r["collective"] == c), "no {c} rows");
    }
    let binds = csv_rows(&out.join("binding.csv"));
    assert_eq!(binds.len(), 4);
    assert!(
        binds
            .iter()
            .all(|b| b["cpus"] == "0-7" && b["cpus_ok"] == "true")
    );
    let gpu = csv_rows(&out.join("gpu.csv"));
    assert!(
        gpu.iter()
            .all(|g| g["name"] == "NVIDIA H200" && g["node"] == "vm")
    );
}

#[test]
fn collect_is_incremental_and_force_rereads() {
    let tmp = tempfile::tempdir().unwrap();
    let camp = copy_campaign(tmp.path());
    let out = tmp.path().join("res");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--json",
            "collect",
            camp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let o = sweep(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let first = args(&[]);
    assert!(first["parsed"].as_u64().unwrap() > 0);
    assert_eq!(first["cached"], 0);
    let runs_before = std::fs::read(out.join("runs.csv")).unwrap();
    let second = args(&[]);
    assert_eq!(second["parsed"], 0, "nothing changed, nothing re-read");
    assert_eq!(second["cached"], first["files"]);
    // The report that stands is the one that was made, to the last digit of every figure (it
    // is read back from JSON: the float parser must round-trip).
    assert_eq!(second["runs"], first["runs"]);
    assert_eq!(std::fs::read(out.join("runs.csv")).unwrap(), runs_before);
    // A table that went missing is written again, from the cache.
    std::fs::remove_file(out.join("runs.csv")).unwrap();
    let again = args(&[]);
    assert_eq!(again["parsed"], 0);
    assert_eq!(std::fs::read(out.join("runs.csv")).unwrap(), runs_before);
    // A file that grows is re-read, the others are not.
    let log = std::fs::read_dir(camp.join("jobs"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("oom-"))
        .unwrap()
        .path()
        .join("slurm-3.out");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"\n").unwrap();
    drop(f);
    let third = args(&[]);
    assert_eq!(third["parsed"], 1);
    let runs_third = std::fs::read(out.join("runs.csv")).unwrap();
    // A damaged cache (cut short, then garbage) is no error: everything is read again, and
    // the tables come out the same.
    let cache = out.join(sweep::collect::CACHE_FILE);
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(out.join("runs.csv")).unwrap();
    let cut = args(&[]);
    assert_eq!(cut["parsed"], first["files"]);
    assert_eq!(std::fs::read(out.join("runs.csv")).unwrap(), runs_third);
    std::fs::write(&cache, b"{\"version\": 6, not the format").unwrap();
    std::fs::remove_file(out.join("runs.csv")).unwrap();
    let garbage = args(&[]);
    assert_eq!(garbage["parsed"], first["files"]);
    assert_eq!(std::fs::read(out.join("runs.csv")).unwrap(), runs_third);
    let forced = args(&["--force"]);
    assert_eq!(forced["parsed"], first["files"]);
}

/// `sweep --json collect --logs DIR` into a fresh directory: (its holder, the tables' directory).
fn collect_logs(dir: &Path) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("res");
    let o = sweep(&[
        "--json",
        "collect",
        "--logs",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (tmp, out)
}

#[test]
fn collect_logs_reads_any_tree_of_logs() {
    let dir = root().join("tests/fixtures/device-h100-2026-11-24");
    let (_tmp, out) = collect_logs(&dir);
    let runs = csv_rows(&out.join("runs.csv"));
    // One row per source file: every file but the Markdown note and the DeepSpeed config
    // (the nvidia-smi CSV and the nccl-tests JSON report are logs).
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != "PROVENANCE.md" && n != "ds_config-z2.json")
        .collect();
    files.sort();
    let rows: Vec<&str> = runs.iter().map(|r| r["run"].as_str()).collect();
    assert_eq!(rows, files, "one row per source file");
    let nccl = csv_rows(&out.join("nccl.csv"));
    let collectives: std::collections::BTreeSet<&str> =
        nccl.iter().map(|r| r["collective"].as_str()).collect();
    for c in [
        "all_gather",
        "all_reduce",
        "broadcast",
        "reduce_scatter",
        "alltoall",
    ] {
        assert!(collectives.contains(c), "{c} missing from {collectives:?}");
    }
    // The DeepSpeed log's steps come from its wall_clock_breakdown timers.
    let ds = runs
        .iter()
        .find(|r| r["run"] == "ds-z2-torchrun.log")
        .unwrap();
    assert!(num(ds, "step_time_ms_p50") > 0.0);
    let smi = runs.iter().find(|r| r["run"] == "nvsmi-train.csv").unwrap();
    assert!(num(smi, "gpu_util_max") <= 100.0 && num(smi, "gpu_util_max") > 0.0);
    // What the NCCL_DEBUG=INFO log says of NCCL, as its own lines say it: `NCCL version
    // 2.28.9+cuda13.0`, `NET/Socket : Using [0]eth0:192.0.2.2<0>`, `nRanks 1 nNodes 1`, one
    // `Init COMPLETE`, no WARN. An nccl-tests log without debug lines: its banner's library.
    let log = std::fs::read_to_string(dir.join("nccl-allgather-debug.log")).unwrap();
    let debug = runs
        .iter()
        .find(|r| r["run"] == "nccl-allgather-debug.log")
        .unwrap();
    let facts: Vec<&str> = [
        "nccl_version",
        "nccl_nranks",
        "nccl_nodes",
        "nccl_net",
        "nccl_nics",
        "nccl_init_complete",
        "nccl_warns",
        "nccl_errors",
        "nccl_cuda",
    ]
    .iter()
    .map(|k| debug[*k].as_str())
    .collect();
    let complete = log.matches("Init COMPLETE").count().to_string();
    assert_eq!(
        facts,
        [
            "2.28.9",
            "1",
            "1",
            "Socket",
            "eth0:192.0.2.2<0>",
            complete.as_str(),
            "0",
            "",
            "13.0"
        ]
    );
    assert!(log.contains("NCCL version 2.28.9+cuda13.0"));
    assert!(log.contains("NET/Socket : Using [0]eth0:192.0.2.2<0>"));
    let tests = runs
        .iter()
        .find(|r| r["run"] == "nccl-collectives.log")
        .unwrap();
    // The same library, one form: the banner's `2.28.9` as the debug line's `2.28.9+cuda13.0`.
    assert_eq!(tests["nccl_version"], debug["nccl_version"]);
    assert_eq!(tests["nccl_cuda"], "", "the banner names no CUDA build");
    assert_eq!(tests["nccl_init_complete"], "", "no debug line, no count");
    // A file of --logs has no job state: `ok` where figures were read, else empty.
    assert_eq!(tests["status"], "ok");
    assert_eq!(ds["status"], "ok");
    assert_eq!(
        runs.iter().find(|r| r["run"] == "sysinfo.txt").unwrap()["status"],
        ""
    );
}

#[test]
fn a_garbled_or_truncated_log_gives_partial_results_and_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // The real collectives log cut in the middle of a record, plus random bytes.
    let text = std::fs::read(job_dir("coll-").join("rank-0.log")).unwrap();
    let cut = text.len() * 2 / 3;
    std::fs::write(logs.join("cut.log"), &text[..cut]).unwrap();
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(logs.join("noise.bin"), noise).unwrap();
    let out = tmp.path().join("res");
    let o = sweep(&[
        "--json",
        "collect",
        "--logs",
        logs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("cut.log") && w.contains("no line terminator")),
        "{warnings:?}"
    );
    let nccl = csv_rows(&out.join("nccl.csv"));
    let complete = records(&job_dir("coll-").join("rank-0.log"), "collective").len();
    assert!(
        !nccl.is_empty() && nccl.len() < complete,
        "partial rows: {} of {complete}",
        nccl.len()
    );
}

#[test]
fn user_patterns_become_columns_of_runs_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let pf = tmp.path().join("patterns.toml");
    let base = std::fs::read_to_string(root().join("sweeps/device-h200.toml")).unwrap();
    // DeepSpeed's wall_clock_breakdown forward time of each step (`| fwd: 427.40 |`), median.
    std::fs::write(
        &pf,
        format!("{base}\n[[collect.pattern]]\nname = \"ds_fwd\"\nregex = '\\| fwd: ([0-9.]+) \\|'\nunit = \"ms\"\naggregate = \"median\"\n\n[[collect.pattern]]\nname = \"ds_fwd_max\"\nregex = '\\| fwd: ([0-9.]+) \\|'\naggregate = \"max\"\n"),
    )
    .unwrap();
    let out = tmp.path().join("res");
    let o = sweep(&[
        "--json",
        "collect",
        fixture().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--patterns",
        pf.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs = csv_rows(&out.join("runs.csv"));
    for r in runs.iter().filter(|r| r["stage"] == "train") {
        let log =
            std::fs::read_to_string(fixture().join("jobs").join(&r["run"]).join("rank-0.log"))
                .unwrap();
        let mut v: Vec<f64> = log
            .lines()
            .filter_map(|l| l.split("| fwd: ").nth(1))
            .filter_map(|x| x.split_whitespace().next()?.parse().ok())
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        assert!(
            close(num(r, "ds_fwd_ms"), median, 1e-3),
            "{} vs {median}",
            r["ds_fwd_ms"]
        );
        assert!(close(num(r, "ds_fwd_max"), v[n - 1], 1e-6));
    }
    let coll = runs.iter().find(|r| r["stage"] == "coll").unwrap();
    assert_eq!(coll["ds_fwd_ms"], "", "no such line, no value");
    // A bad pattern is the user's error, with file, line and key.
    std::fs::write(
        &pf,
        format!("{base}\n[[collect.pattern]]\nname = \"x\"\nregex = 'fwd: [0-9.]+'\n"),
    )
    .unwrap();
    let o = sweep(&[
        "collect",
        fixture().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--patterns",
        pf.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("collect.pattern[0].regex")
            && err.contains("exactly one capture group"),
        "{err}"
    );
}

/// Failures and DeepSpeed engines of tests/fixtures/device-h200-2026-12-04 (real runs, see its
/// PROVENANCE.md): each file's class and figures, the expected ones read from the file here.
#[test]
fn failure_and_engine_variants_from_real_runs() {
    let dir = root().join("tests/fixtures/device-h200-2026-12-04");
    let (_tmp, out) = collect_logs(&dir);
    let runs = csv_rows(&out.join("runs.csv"));
    let run = |name: &str| runs.iter().find(|r| r["run"] == name).unwrap().clone();
    let text = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    // file:line of the first line holding `needle`.
    let at = |name: &str, needle: &str| {
        let n = text(name).lines().position(|l| l.contains(needle)).unwrap() + 1;
        format!("{name}:{n}: ")
    };
    for (name, class, needle) in [
        // PyTorch's `[rank0]: ` excepthook prefix: the traceback's last line is its evidence.
        (
            "excepthook.log",
            "python_error",
            "[rank0]: RuntimeError: mat1",
        ),
        // CUDA's `'out of memory'` inside NCCL's WARN, before PyTorch's NCCL error.
        (
            "fill-nccl.log",
            "oom",
            "NCCL WARN Cuda failure 'out of memory'",
        ),
        ("fill-matmul.log", "oom", "CUBLAS_STATUS_ALLOC_FAILED"),
        (
            "watchdog.log",
            "timeout",
            "Watchdog caught collective operation timeout",
        ),
    ] {
        let r = run(name);
        assert_eq!(r["failure_class"], class, "{name}: {r:?}");
        assert!(
            r["failure_evidence"].starts_with(&at(name, needle)),
            "{name}: {}",
            r["failure_evidence"]
        );
    }
    // The p50 of the tables: nearest rank (a step that was measured).
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len().div_ceil(2) - 1]
    };
    // The pipeline engine: one row per `steps: N` print of N >= 2 warm-up steps + the 5 steps
    // a print covers; its iter time and samples/sec as printed.
    let print =
        regex::Regex::new(r"^steps: (\d+) loss: \S+ iter time \(s\): (\S+) samples/sec: (\S+)$")
            .unwrap();
    for name in ["ds0.19.8-pipe.log", "ds0.10.0-pipe.log"] {
        let steady: Vec<(u64, f64, f64)> = text(name)
            .lines()
            .filter_map(|l| print.captures(l))
            .map(|c| {
                (
                    c[1].parse().unwrap(),
                    c[2].parse().unwrap(),
                    c[3].parse().unwrap(),
                )
            })
            .filter(|(n, _, _)| *n >= 2 + 5)
            .collect();
        assert_eq!(steady.len(), 3, "{name}");
        let r = run(name);
        assert_eq!(num(&r, "steps_measured"), 3.0, "{name}");
        let p50 = median(steady.iter().map(|s| s.1 * 1000.0).collect());
        assert!(
            close(num(&r, "step_time_ms_p50"), p50, 1e-9),
            "{name}: {r:?}"
        );
        let sps = median(steady.iter().map(|s| s.2).collect());
        assert!(close(num(&r, "samples_per_s"), sps, 1e-9), "{name}: {r:?}");
    }
    // Its timers are sums over the 5 steps (DeepSpeed 0.10.0's config dump says 5 and 4
    // accumulation steps): per step in steps.csv, under the current names.
    let steps = csv_rows(&out.join("steps.csv"));
    let value = |source: &str, step: &str, name: &str| {
        let r = steps
            .iter()
            .find(|r| r["source"] == source && r["step"] == step && r["name"] == name)
            .unwrap_or_else(|| panic!("{source} step {step}: no {name}"));
        num(r, "value")
    };
    let log = text("ds0.10.0-pipe.log");
    let lines: Vec<&str> = log.lines().collect();
    let at10 = lines
        .iter()
        .position(|l| l.starts_with("steps: 10 "))
        .unwrap();
    let timer = |line: &str, name: &str| -> f64 {
        let part = line
            .split(" | ")
            .find(|p| p.starts_with(&format!("{name}: ")))
            .unwrap();
        part[name.len() + 2..].trim().parse().unwrap()
    };
    let global = lines[..at10]
        .iter()
        .rev()
        .find(|l| l.contains("| forward: "))
        .unwrap();
    let micro = lines[..at10]
        .iter()
        .rev()
        .find(|l| l.contains("| forward_microstep: "))
        .unwrap();
    let src = "ds0.10.0-pipe.log";
    assert!(close(
        value(src, "10", "fwd"),
        timer(global, "forward") / 5.0,
        1e-9
    ));
    assert!(close(
        value(src, "10", "bwd_inner"),
        timer(global, "backward_inner") / 5.0,
        1e-9
    ));
    assert!(close(
        value(src, "10", "fwd_microstep"),
        timer(micro, "forward_microstep") / 20.0,
        1e-9
    ));
    // Without a config dump (0.19.8 at its default log level), no micro-step timers.
    assert!(
        !steps
            .iter()
            .any(|r| r["source"] == "ds0.19.8-pipe.log" && r["name"] == "fwd_microstep")
    );
    // DeepSpeed 0.10.0's plain engine: a step per `forward | backward | step` line, old names.
    let engine = text("ds0.10.0-engine.log");
    let per_step: Vec<f64> = engine
        .lines()
        .filter(|l| l.contains("| forward: "))
        .map(|l| timer(l, "forward") + timer(l, "backward") + timer(l, "step"))
        .skip(2)
        .collect();
    assert_eq!(per_step.len(), 10);
    let r = run("ds0.10.0-engine.log");
    assert_eq!(num(&r, "steps_measured"), 10.0);
    assert!(
        close(num(&r, "step_time_ms_p50"), median(per_step), 1e-9),
        "{r:?}"
    );
    assert!(r["comm_compute_ratio"].parse::<f64>().is_ok(), "{r:?}");
}

/// `--logs`: which files are runs (a Markdown note, a CSV of another tool and a JSON config are
/// not, unless named with `--include`) and the `status` a file gets (`failed`, `ok` or empty),
/// on real logs copied to a tree beside a note and a CSV this test writes.
#[test]
fn collect_logs_reads_logs_not_notes_and_says_what_it_read() {
    let public = root().join("../shared/fixtures/public");
    if !public.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {}",
            public.display()
        );
        eprintln!("*** SKIPPING: {} not found ***", public.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let h100 = root().join("tests/fixtures/device-h100-2026-11-24");
    for (from, to) in [
        (
            public.join("1-nccl-tests/05-h100-2node-alltoall-network-failure-then-sendrecv.log"),
            "failed.log",
        ),
        (
            public.join("2-nccl-debug/03-p5-h100-efa-nccl2.22.3-ofi-plugin-init.log"),
            "init.log",
        ),
        (
            public.join("4-deepspeed/03-dschat-sft-2023-throughputtimer-steps.log"),
            "steps.log",
        ),
        (h100.join("nvsmi-train.csv"), "gpu.csv"),
        (h100.join("nccl-allreduce.json"), "allreduce.json"),
        (h100.join("ds_config-z2.json"), "ds_config.json"),
        (h100.join("nccl-collectives.log"), "nccl-tests.log"),
    ] {
        std::fs::copy(&from, logs.join(to)).unwrap();
    }
    // Not logs, though their words are a failure's and their CSV has numbers.
    std::fs::write(
        logs.join("README.md"),
        "# Notes\n\nThe first try died: `torch.OutOfMemoryError: CUDA out of memory`.\n\
         NCCL WARN Call to connect returned Connection refused\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("summary.csv"),
        "model,micro_batch,samples_per_s\nllama-7b,4,12.5\nllama-7b,8,Traceback\n",
    )
    .unwrap();

    let (_t, out) = collect_logs(&logs);
    let runs = csv_rows(&out.join("runs.csv"));
    let names: Vec<&str> = runs.iter().map(|r| r["run"].as_str()).collect();
    assert_eq!(
        names,
        [
            "allreduce.json",
            "failed.log",
            "gpu.csv",
            "init.log",
            "nccl-tests.log",
            "steps.log"
        ]
    );
    let run = |n: &str| runs.iter().find(|r| r["run"] == n).unwrap();
    // A failure class: failed; a step, a throughput or an nccl-tests row read: ok; else empty
    // (GPU samples, or NCCL's init lines alone, say nothing of how the run went).
    assert_eq!(run("failed.log")["failure_class"], "nccl");
    assert_eq!(run("failed.log")["status"], "failed");
    for ok in ["steps.log", "nccl-tests.log", "allreduce.json"] {
        assert_eq!(run(ok)["status"], "ok", "{ok}");
    }
    for empty in ["gpu.csv", "init.log"] {
        assert_eq!(run(empty)["status"], "", "{empty}");
        assert_eq!(run(empty)["failure_class"], "", "{empty}");
    }
    assert!(num(run("gpu.csv"), "gpu_util_max") > 0.0);
    // `NCCL version 2.22.3+cuda12.2`: the release, and the CUDA build in its own column.
    let init = std::fs::read_to_string(logs.join("init.log")).unwrap();
    assert!(init.contains("NCCL version 2.22.3+cuda12.2"));
    assert_eq!(run("init.log")["nccl_version"], "2.22.3");
    assert_eq!(run("init.log")["nccl_cuda"], "12.2");
    let failures = std::fs::read_to_string(out.join("failures.csv")).unwrap();
    assert!(!failures.contains("README.md") && !failures.contains("summary.csv"));
    // nccl.csv: one form per column, four decimals for every time and bandwidth.
    for r in csv_rows(&out.join("nccl.csv")) {
        for c in ["time_us", "algbw_gbps", "busbw_gbps"] {
            let v = &r[c];
            assert!(
                v.is_empty() || v.split_once('.').is_some_and(|(_, d)| d.len() == 4),
                "{c} = {v}"
            );
        }
        assert!(!r["nccl_version"].contains('+'), "{}", r["nccl_version"]);
    }

    // Named, the note is read as a run (and its words are then a failure's).
    let out2 = tmp.path().join("res2");
    let o = sweep(&[
        "collect",
        "--logs",
        logs.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--include",
        "README.md",
        "--include",
        "ds_config.json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs2 = csv_rows(&out2.join("runs.csv"));
    let names2: Vec<&str> = runs2.iter().map(|r| r["run"].as_str()).collect();
    assert!(names2.contains(&"README.md") && names2.contains(&"ds_config.json"));
    assert!(!names2.contains(&"summary.csv"));
    let note = runs2.iter().find(|r| r["run"] == "README.md").unwrap();
    assert_eq!(note["status"], "failed");
}
