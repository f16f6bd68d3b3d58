//! `sweep collect` speed on a large corpus built by replicating the real fixtures
//! (tests/fixtures/device-*: nccl-tests tables, NCCL_DEBUG output, DeepSpeed logs with the flops
//! profiler, nvidia-smi samples, the payload's records): 10,000 small files in directories of
//! 100, plus a few multi-hundred-MB NCCL_DEBUG logs (the NCCL INFO lines of the real debug log,
//! repeated), about 2 GB in all. Measures, with the release binary as a user runs it:
//!   - a cold full collect (`--force`: nothing cached; the files are in the page cache, as after
//!     the corpus was written), in MB/s, median of `SWEEP_BENCH_COLD_RUNS` (default 3);
//!   - an incremental collect where nothing changed;
//!   - the peak resident memory of each (getrusage of the child).
//!
//! Dense mode (`SWEEP_BENCH_DENSE=1`): logs where every line becomes a row, the case where the
//! parsers themselves cost: `SWEEP_BENCH_DENSE_FILES` (default 200) files of
//! `SWEEP_BENCH_DENSE_KB` (default 1024) KiB, half nccl-tests output (one real block's header from
//! the H100 fixture `nccl-collectives.log`, then the data rows of all its tables, repeated), half
//! DeepSpeed (the real `[Rank 0] time (ms) | ...` step and timer lines of the H100 fixture
//! `ds-z2-torchrun.log`, repeated); built in `SWEEP_BENCH_DIR` (default target/bench-collect-dense).
//! It also reports the size of the tables and of the parse cache against the logs.
//!
//! Run: `cargo bench --bench collect`. `SWEEP_BENCH_MB` (default 2048) sets the corpus size,
//! `SWEEP_BENCH_FILES` (default 10000) the number of small files, `SWEEP_BENCH_DIR` where it is
//! built (default target/bench-collect; reused when its size matches).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v = Vec::new();
    for e in walkdir::WalkDir::new(&root).into_iter().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let keep = e.file_type().is_file()
            && p.to_string_lossy().contains("/device-")
            && (name.ends_with(".log")
                || name.ends_with(".csv")
                || name.ends_with(".out")
                || name.ends_with(".txt"))
            && !name.ends_with(".md");
        if keep {
            v.push((name, std::fs::read(p).unwrap()));
        }
    }
    v.sort();
    v
}

fn build(dir: &Path, total_mb: u64, files: usize) -> u64 {
    let stamp = dir.join(".corpus");
    let want = format!("v2 {total_mb} {files}");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return du(dir);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let fx = fixtures();
    assert!(!fx.is_empty(), "no fixtures found");
    let mut small = 0u64;
    for i in 0..files {
        let (name, bytes) = &fx[i % fx.len()];
        let d = dir.join(format!("job-{:03}", i / 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("{i:05}-{name}")), bytes).unwrap();
        small += bytes.len() as u64;
    }
    // The rest in 300 MB NCCL_DEBUG logs: the NCCL INFO lines of a real one, repeated (a large
    // debug log is such lines; repeating its nccl-tests table too would make millions of rows).
    let real = &fx
        .iter()
        .find(|(n, _)| n == "nccl-allgather-debug.log")
        .unwrap()
        .1;
    let debug: Vec<u8> = real
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| memchr::memmem::find(l, b" NCCL INFO ").is_some())
        .flatten()
        .copied()
        .collect();
    let debug = &debug;
    let mut left = (total_mb << 20).saturating_sub(small);
    let mut k = 0;
    while left > 0 {
        let size = left.min(300 << 20);
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(dir.join(format!("nccl-debug-{k}.log"))).unwrap(),
        );
        let mut written = 0u64;
        while written < size {
            f.write_all(debug).unwrap();
            written += debug.len() as u64;
        }
        left = left.saturating_sub(written);
        k += 1;
    }
    std::fs::write(&stamp, want).unwrap();
    du(dir)
}

/// The dense corpus: only real lines of the H100 fixtures, every line past a file's header a row.
fn build_dense(dir: &Path, files: usize, kb: u64) -> u64 {
    let stamp = dir.join(".corpus");
    let want = format!("dense v1 {files} {kb}");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return du(dir);
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let fx = fixtures();
    let get = |name: &str| &fx.iter().find(|(n, _)| n == name).unwrap().1;
    let lines = |b: &[u8]| -> Vec<Vec<u8>> {
        b.split_inclusive(|c| *c == b'\n')
            .map(|l| l.to_vec())
            .collect()
    };
    let nccl = lines(get("nccl-collectives.log"));
    // The first block's header: its lines up to the first data row.
    let is_row = |l: &[u8]| !l.starts_with(b"#") && l.iter().any(|c| c.is_ascii_digit());
    let first_row = nccl.iter().position(|l| is_row(l)).unwrap();
    let nccl_head: Vec<u8> = nccl[..first_row].concat();
    let nccl_rows: Vec<u8> = nccl
        .iter()
        .filter(|l| is_row(l))
        .flatten()
        .copied()
        .collect();
    let ds_rows: Vec<u8> = lines(get("ds-z2-torchrun.log"))
        .into_iter()
        .filter(|l| l.starts_with(b"[Rank 0] time (ms) | "))
        .flatten()
        .collect();
    assert!(!nccl_rows.is_empty() && !ds_rows.is_empty());
    let size = kb << 10;
    for i in 0..files {
        let (name, head, rows) = if i % 2 == 0 {
            (format!("{i:03}-nccl-tests.log"), &nccl_head[..], &nccl_rows)
        } else {
            (format!("{i:03}-deepspeed.log"), &[][..], &ds_rows)
        };
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
        f.write_all(head).unwrap();
        let mut written = head.len() as u64;
        while written < size {
            f.write_all(rows).unwrap();
            written += rows.len() as u64;
        }
    }
    std::fs::write(&stamp, want).unwrap();
    du(dir)
}

fn du(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Runs sweep as a child; returns (seconds, CPU seconds (user + system) of that child, peak
/// RSS of that child in MiB, its JSON report).
fn run(args: &[&str]) -> (f64, f64, f64, serde_json::Value) {
    let cpu_before = cpu_children();
    let before = max_rss_children();
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(args)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = max_rss_children();
    // RUSAGE_CHILDREN keeps the largest child so far: a smaller later child does not show.
    let rss = if after > before { after } else { f64::NAN };
    let cpu = cpu_children() - cpu_before;
    (secs, cpu, rss, serde_json::from_slice(&o.stdout).unwrap())
}

/// User + system seconds of all waited-for children so far.
fn cpu_children() -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    }
}

fn max_rss_children() -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u.ru_maxrss as f64 / 1024.0
    }
}

fn main() {
    // `cargo test --benches` runs benches with no arguments but `--bench` absent: stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("collect bench: run with `cargo bench --bench collect`");
        return;
    }
    let mb: u64 = std::env::var("SWEEP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let files: usize = std::env::var("SWEEP_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dense = std::env::var("SWEEP_BENCH_DENSE").is_ok_and(|v| v == "1");
    let dense_files: usize = std::env::var("SWEEP_BENCH_DENSE_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dense_kb: u64 = std::env::var("SWEEP_BENCH_DENSE_KB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let default_dir = if dense {
        "target/bench-collect-dense"
    } else {
        "target/bench-collect"
    };
    let dir = std::env::var("SWEEP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(default_dir));
    let corpus = dir.join("corpus");
    let out = dir.join("results");
    let t = Instant::now();
    let bytes = if dense {
        build_dense(&corpus, dense_files, dense_kb)
    } else {
        build(&corpus, mb, files)
    };
    if dense {
        println!(
            "dense corpus: {} files of {} KiB (nccl-tests rows, DeepSpeed step lines), {:.0} MB, ready in {:.1} s ({})",
            dense_files,
            dense_kb,
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            corpus.display()
        );
    } else {
        println!(
            "corpus: {} files + big NCCL_DEBUG logs, {:.0} MB, ready in {:.1} s ({})",
            files,
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64(),
            corpus.display()
        );
    }
    let c = corpus.to_str().unwrap();
    let o = out.to_str().unwrap();
    // This machine's speed varies from run to run (a shared host): the median of several.
    let runs: usize = std::env::var("SWEEP_BENCH_COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut colds = Vec::new();
    let mut cpus = Vec::new();
    let mut cold_rss = f64::NAN;
    let mut r = serde_json::Value::Null;
    for _ in 0..runs {
        let (secs, cpu, rss, report) =
            run(&["--json", "collect", "--logs", c, "--out", o, "--force"]);
        colds.push(secs);
        cpus.push(cpu);
        if rss.is_finite() {
            cold_rss = if cold_rss.is_finite() {
                cold_rss.max(rss)
            } else {
                rss
            };
        }
        r = report;
    }
    colds.sort_by(|a, b| a.total_cmp(b));
    cpus.sort_by(|a, b| a.total_cmp(b));
    let cold = colds[colds.len() / 2];
    let cpu = cpus[cpus.len() / 2];
    let parsed = r["bytes_parsed"].as_f64().unwrap_or(0.0);
    println!(
        "cold collect (--force):     {cold:>8.2} s  {:>8.0} MB/s  median of {runs} (min {:.2} s = {:.0} MB/s, max {:.2} s)  peak RSS {cold_rss:.0} MiB  ({} files, {:.0} MB parsed)",
        parsed / 1e6 / cold,
        colds[0],
        parsed / 1e6 / colds[0],
        colds[colds.len() - 1],
        r["files"],
        parsed / 1e6
    );
    // Wall time on a shared host moves with its other tenants; the CPU time a collect needs
    // moves less, and says what the parsers cost.
    println!(
        "cold collect CPU time:      {cpu:>8.2} s  {:>8.0} MB per CPU-second  median of {runs} (min {:.2} s, max {:.2} s)",
        parsed / 1e6 / cpu,
        cpus[0],
        cpus[cpus.len() - 1]
    );
    // What the collect wrote: the tables, and the parse cache against the logs it describes.
    let mut outputs: Vec<(String, u64)> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            (n, e.metadata().map(|m| m.len()).unwrap_or(0))
        })
        .collect();
    outputs.sort();
    let written: u64 = outputs.iter().map(|(_, n)| n).sum();
    let cache_bytes: u64 = outputs
        .iter()
        .filter(|(n, _)| n.contains("cache"))
        .map(|(_, n)| n)
        .sum();
    println!(
        "written:                    {:>8.1} MB in all; the cache {:.1} MB = 1/{:.1} of the logs; {}",
        written as f64 / 1e6,
        cache_bytes as f64 / 1e6,
        bytes as f64 / cache_bytes.max(1) as f64,
        outputs
            .iter()
            .filter(|(_, n)| *n > 1 << 20)
            .map(|(f, n)| format!("{f} {:.1} MB", *n as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut inc = Vec::new();
    for _ in 0..5 {
        let (s, _, _, r) = run(&["--json", "collect", "--logs", c, "--out", o]);
        assert_eq!(r["parsed"], 0, "nothing changed, nothing may be re-read");
        inc.push(s);
    }
    inc.sort_by(|a, b| a.total_cmp(b));
    println!(
        "incremental (no change):    {:>8.3} s  median of 5 (min {:.3}, max {:.3}), {} files unchanged",
        inc[2], inc[0], inc[4], r["files"]
    );
    let json = serde_json::json!({
        "corpus_bytes": bytes, "files": r["files"], "cold_s": cold, "cold_runs_s": colds, "cold_mb_per_s": parsed / 1e6 / cold,
        "cold_peak_rss_mib": cold_rss, "cold_cpu_s": cpu, "cold_cpu_runs_s": cpus, "incremental_median_s": inc[2],
        "written_bytes": written, "cache_bytes": cache_bytes, "dense": dense,
    });
    std::fs::write(
        dir.join("collect-bench.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
}
