//! Submitting a large campaign to the local Slurm cluster: wall time, what sweep and its sbatch
//! calls wrote to disk (`getrusage` of the children: blocks written), and the size of the state
//! files at the end; then one `status` poll of all of it. State writes are O(1) per job (a
//! journal line each), so the bytes grow linearly with the campaign.
//!
//! Needs the local cluster: `slurm/local-cluster.sh up && source "$(slurm/local-cluster.sh env)"`,
//! then `cargo bench --bench submit` (`SWEEP_BENCH_JOBS`, default 10000).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn children_blocks_written() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_oublock
}

fn sweep(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sweep"))
        .args(args)
        .output()
        .expect("running sweep")
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn main() {
    if std::env::var_os("SLURM_CONF").is_none() {
        eprintln!(
            "submit bench: skipped (no SLURM_CONF; start the local cluster: \
             slurm/local-cluster.sh up && source \"$(slurm/local-cluster.sh env)\")"
        );
        return;
    }
    let n: usize = std::env::var("SWEEP_BENCH_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let spec = tmp.path().join("bench.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"bench-submit\"\ncluster = {:?}\n[slurm]\ntime = \"00:05:00\"\n\
             [[stage]]\nname = \"k\"\ntemplate = \"cpu-smoke.sbatch.j2\"\nrepeats = {n}\n\
             matrix = {{ nodes = [1] }}\n",
            root.join("slurm/clusters/local.toml").display().to_string()
        ),
    )
    .expect("writing the sweep file");
    let camp = tmp.path().join("camp");
    let camp_s = camp.to_str().expect("utf-8 path");
    let o = sweep(&[
        "-q",
        "expand",
        spec.to_str().expect("utf-8"),
        "--out",
        camp_s,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let blocks = children_blocks_written();
    let t = Instant::now();
    let o = sweep(&["-q", "submit", camp_s, "--hold"]);
    let secs = t.elapsed().as_secs_f64();
    let written = (children_blocks_written() - blocks) * 512;
    let ok = o.status.success();
    let state = size(&camp.join("state.json"));
    let journal = size(&camp.join("state.journal"));

    let t = Instant::now();
    let s = sweep(&["--json", "status", camp_s]);
    let status_secs = t.elapsed().as_secs_f64();
    let _ = sweep(&["-q", "cancel", camp_s]);

    println!(
        "submit {n} jobs: {secs:.1} s ({:.0} jobs/s){}",
        n as f64 / secs,
        if ok { "" } else { " [submit FAILED]" }
    );
    println!(
        "  written by sweep and sbatch: {:.1} MiB ({:.0} bytes a job); state.json {} bytes, \
         state.journal {} bytes at the end",
        written as f64 / 1048576.0,
        written as f64 / n as f64,
        state,
        journal
    );
    println!(
        "status of {n} jobs: {status_secs:.2} s{}",
        if s.status.success() {
            ""
        } else {
            " [status FAILED]"
        }
    );
    if !ok {
        eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    }
}
