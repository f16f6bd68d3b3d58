//! `sweep expand` end to end: the seed campaign's numbers, rendered scripts, snapshots, re-expand.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;

use crate::util::root;

fn seed() -> PathBuf {
    root().join("sweeps/h200-llama2.toml")
}

fn expand_to(sweep: &Path, out: &Path) {
    cargo_bin_cmd!("sweep")
        .args([
            "expand",
            sweep.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
        .assert()
        .success();
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn job_dirs(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn find_job(out: &Path, prefix: &str) -> PathBuf {
    job_dirs(out)
        .into_iter()
        .find(|d| d.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no job starting with {prefix}"))
}

#[test]
fn seed_campaign_expands_with_consistent_batch_algebra() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    expand_to(&seed(), &out);
    let jobs = job_dirs(&out);
    // 1 preflight + 1 pairwise links + 12 NCCL + 9 (phase 2) + 2 + 6 (phase 3) + 4 weak +
    // 6 strong + 2 (70B).
    assert_eq!(jobs.len(), 43);
    let manifest = read_json(&out.join("campaign.json"));
    assert_eq!(manifest["jobs"].as_array().unwrap().len(), 43);
    let mut training = 0;
    for dir in &jobs {
        let point = read_json(&dir.join("point.json"));
        let b = &point["batch"];
        let gpus = b["gpus"].as_u64().unwrap();
        assert_eq!(gpus, b["nodes"].as_u64().unwrap() * 8);
        assert_eq!(b["dp"].as_u64().unwrap(), gpus);
        if b["micro_batch"].is_null() {
            assert!(!dir.join("ds_config.json").exists());
            continue;
        }
        training += 1;
        let (m, a, g) = (
            b["micro_batch"].as_u64().unwrap(),
            b["grad_accum"].as_u64().unwrap(),
            b["global_batch"].as_u64().unwrap(),
        );
        assert_eq!(g, m * a * gpus, "{}", dir.display());
        assert_eq!(b["tokens_per_step"].as_u64().unwrap(), g * 4096);
        let ds = read_json(&dir.join("ds_config.json"));
        assert_eq!(ds["train_micro_batch_size_per_gpu"].as_u64().unwrap(), m);
        assert_eq!(ds["gradient_accumulation_steps"].as_u64().unwrap(), a);
        assert_eq!(ds["train_batch_size"].as_u64().unwrap(), g);
        assert_eq!(ds["zero_optimization"]["stage"], 3);
        assert_eq!(ds["zero_optimization"]["overlap_comm"], true);
        assert_eq!(ds["bf16"]["enabled"], true);
    }
    assert_eq!(training, 29);

    // Strong scaling: global batch 2048 at 2/4/8 nodes, accumulation derived.
    for (prefix, accum) in [
        ("p4-strong-n2-7b-mb16", 8),
        ("p4-strong-n4-7b-mb16", 4),
        ("p4-strong-n8-7b-mb16", 2),
        ("p4-strong-n2-13b-mb8", 16),
        ("p4-strong-n4-13b-mb8", 8),
        ("p4-strong-n8-13b-mb8", 4),
    ] {
        let b = read_json(&find_job(&out, prefix).join("point.json"))["batch"].clone();
        assert_eq!(b["global_batch"], 2048, "{prefix}");
        assert_eq!(b["grad_accum"], accum, "{prefix}");
    }
    // 70B with activation checkpointing, grouped-query attention.
    let p = read_json(&find_job(&out, "p4-70b-70b-n8-mb2").join("point.json"));
    assert_eq!(p["params"]["activation_checkpointing"], true);
    assert_eq!(p["model"]["kv_heads"], 8);
    assert_eq!(p["batch"]["global_batch"], 2 * 32 * 64);
    // The 13B ZeRO knob axis lands in the DeepSpeed config.
    let ds =
        read_json(&find_job(&out, "p3-13b-4n-13b-n4-mb8-ga16-dzorbs5e7").join("ds_config.json"));
    assert_eq!(ds["zero_optimization"]["reduce_bucket_size"], 50_000_000);

    let csv = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with("job_id,stage,repeat,collective,ds.zero_optimization.reduce_bucket_size,model,nodes,gpus,micro_batch,grad_accum,global_batch,script"), "{header}");
    assert_eq!(csv.lines().count(), 44);
    assert!(out.join("sweep.toml").exists() && out.join("profile.toml").exists());
}

#[test]
fn every_rendered_script_passes_bash_n_and_carries_affinity_and_nccl_env() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    expand_to(&seed(), &out);
    for dir in job_dirs(&out) {
        let script = dir.join("job.sbatch");
        let st = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
            .unwrap();
        assert!(st.success(), "bash -n failed for {}", script.display());
        let text = std::fs::read_to_string(&script).unwrap();
        for var in [
            "NCCL_IB_HCA=mlx5_0,mlx5_1",
            "NCCL_IB_GID_INDEX=3",
            "NCCL_IB_TC=106",
            "NCCL_IB_QPS_PER_CONNECTION=4",
            "NCCL_BUFFSIZE=8388608",
            "NCCL_P2P_LEVEL=NVL",
        ] {
            assert!(
                text.contains(&format!("export {var}\n")),
                "{var} missing in {}",
                script.display()
            );
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("preflight-") {
            // One task per node, no binding: it checks the binding the others will get.
            assert!(
                text.contains("gpu=7; numa=1; cpus=98-111,210-223\n"),
                "{}",
                script.display()
            );
            continue;
        }
        assert!(
            text.contains("--cpus-per-task=28 ")
                && text.contains("--cpu-bind=verbose,mask_cpu:0x3fff0000000000000000000000003fff,"),
            "{}",
            script.display()
        );
        // No per-rank GPU binding: each rank sees the job's GPUs and takes its LOCAL_RANK's.
        assert!(!text.contains("--gpu-bind"), "{}", script.display());
        assert!(text.contains(
            "7) SWEEP_EXPECT_CPUS=98-111,210-223; SWEEP_EXPECT_GPU=7; SWEEP_NUMA=1; SWEEP_NIC=mlx5_1 ;;"
        ));
        assert!(text.contains(&format!("#SBATCH --job-name=h200-llama2:{name}\n")));
    }
}

#[test]
fn snapshots_of_rendered_scripts_and_ds_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    expand_to(&seed(), &out);
    for prefix in [
        "nccl-n2-all_reduce",
        "p2-7b-2n-7b-n2-mb16-ga8",
        "p4-70b-70b-n8-mb2",
    ] {
        let dir = find_job(&out, prefix);
        let script = std::fs::read_to_string(dir.join("job.sbatch")).unwrap();
        insta::assert_snapshot!(format!("{prefix}.sbatch"), script);
        if dir.join("ds_config.json").exists() {
            let ds = std::fs::read_to_string(dir.join("ds_config.json")).unwrap();
            insta::assert_snapshot!(format!("{prefix}.ds_config"), ds);
        }
    }
}

#[test]
fn job_ids_are_stable_across_expands_and_reexpand_updates_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    expand_to(&seed(), &out);
    let first: Vec<PathBuf> = job_dirs(&out);
    let out_json = cargo_bin_cmd!("sweep")
        .args([
            "--json",
            "expand",
            seed().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out_json.status.success());
    let v: Value = serde_json::from_slice(&out_json.stdout).unwrap();
    assert_eq!(v["written"]["unchanged"], 43);
    assert_eq!(v["written"]["created"], 0);
    assert_eq!(job_dirs(&out), first);

    // Change one stage's time limit: only that stage's jobs are rewritten.
    let text = std::fs::read_to_string(seed()).unwrap().replace(
        "slurm = { time = \"01:00:00\" }",
        "slurm = { time = \"02:00:00\" }",
    );
    let sweep2 = tmp.path().join("seed2.toml");
    std::fs::write(&sweep2, text).unwrap();
    let prof = root().join("slurm/clusters/fukushima-h200.toml");
    let o = cargo_bin_cmd!("sweep")
        .args([
            "--json",
            "expand",
            sweep2.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--profile",
            prof.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["written"]["updated"], 2);
    assert_eq!(v["written"]["unchanged"], 41);
}

#[test]
fn reexpand_refuses_to_change_submitted_jobs_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    expand_to(&seed(), &out);
    let job = find_job(&out, "p4-70b-70b-n8-mb2");
    let id = job.file_name().unwrap().to_string_lossy().to_string();
    std::fs::write(
        out.join("state.json"),
        format!(r#"{{"jobs": {{"{id}": {{"slurm_id": "123"}}}}}}"#),
    )
    .unwrap();
    let before = std::fs::read(job.join("job.sbatch")).unwrap();
    let other = find_job(&out, "nccl-n1-all_reduce");
    let other_before = std::fs::read(other.join("job.sbatch")).unwrap();

    let text = std::fs::read_to_string(seed())
        .unwrap()
        .replace(
            "slurm = { time = \"01:00:00\" }",
            "slurm = { time = \"02:00:00\" }",
        )
        .replace(
            "slurm = { time = \"00:15:00\" }",
            "slurm = { time = \"00:20:00\" }",
        );
    let sweep2 = tmp.path().join("seed2.toml");
    std::fs::write(&sweep2, text).unwrap();
    let prof = root().join("slurm/clusters/fukushima-h200.toml");
    let o = cargo_bin_cmd!("sweep")
        .args([
            "expand",
            sweep2.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--profile",
            prof.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already submitted") && err.contains(&id),
        "{err}"
    );
    assert_eq!(std::fs::read(job.join("job.sbatch")).unwrap(), before);
    assert_eq!(
        std::fs::read(other.join("job.sbatch")).unwrap(),
        other_before,
        "nothing is written on refusal"
    );
}

#[test]
fn dry_run_prints_plan_with_totals_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let o = cargo_bin_cmd!("sweep")
        .current_dir(tmp.path())
        .args(["expand", seed().to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("p4-strong") && s.contains("total"), "{s}");
    // 12 NCCL jobs at 15 min: (1+2+4+8) nodes x 3 collectives x 8 GPUs x 0.25 h = 90 GPU-hours.
    assert!(
        s.contains("│ nccl      ┆   12 ┆                          90.0 │"),
        "{s}"
    );
    // + preflight 64 GPUs x 10 min + links 64 GPUs x 30 min = 658 + 10.7 + 32 = 700.7.
    assert!(s.contains("700.7"), "{s}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    let o = cargo_bin_cmd!("sweep")
        .args(["--json", "expand", seed().to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"], 43);
    assert!((v["gpu_hours"].as_f64().unwrap() - (658.0 + 64.0 / 6.0 + 32.0)).abs() < 1e-9);
    assert_eq!(v["rows"].as_array().unwrap().len(), 43);
}

#[test]
fn templates_list_show_and_check() {
    let o = cargo_bin_cmd!("sweep")
        .args(["templates", "list"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("deepspeed-train.sbatch.j2") && s.contains("nccl-tests.sbatch.j2"),
        "{s}"
    );
    let o = cargo_bin_cmd!("sweep")
        .args(["templates", "show", "nccl-tests.sbatch.j2"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("_perf"));
    for t in [
        "deepspeed-train.sbatch.j2",
        "nccl-tests.sbatch.j2",
        "cpu-smoke.sbatch.j2",
    ] {
        let path = root().join("job-templates").join(t);
        cargo_bin_cmd!("sweep")
            .args(["templates", "check", path.to_str().unwrap()])
            .assert()
            .success();
    }
    let tmp = tempfile::tempdir().unwrap();
    // An unknown variable: the error names the template, the line and the variable.
    let bad = tmp.path().join("bad.sbatch.j2");
    std::fs::write(
        &bad,
        "#!/bin/bash\necho {{ job.id }}\necho {{ point.no_such_param }}\n",
    )
    .unwrap();
    let o = cargo_bin_cmd!("sweep")
        .args(["templates", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.sbatch.j2:3") && err.contains("point.no_such_param"),
        "{err}"
    );
    // A shell syntax error is caught by bash -n.
    let bad = tmp.path().join("syntax.sbatch.j2");
    std::fs::write(
        &bad,
        "#!/bin/bash\nif [ {{ batch.nodes }} -gt 1 ]; then\necho x\n",
    )
    .unwrap();
    let o = cargo_bin_cmd!("sweep")
        .args(["templates", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bash -n"));
}

#[test]
fn the_readme_sweep_file_example_is_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("## Sweep file reference").nth(1).unwrap();
    let example = section
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let prof = root().join("slurm/clusters/fukushima-h200.toml");
    let text = example.replace(
        "cluster = \"fukushima-h200\"",
        &format!("cluster = {:?}", prof.to_str().unwrap()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("readme.toml");
    std::fs::write(&f, text).unwrap();
    // The example names a templates directory; one that does not exist is an error.
    std::fs::create_dir(tmp.path().join("my-templates")).unwrap();
    let o = cargo_bin_cmd!("sweep")
        .args(["--json", "expand", f.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // nccl: 4 x 2; train: 3 nodes x 2 algos x 2 buckets x 3 zipped models = 36, minus 4 (13B on
    // 2 nodes) and 4 (8 nodes with micro-batch 8), times 3 repeats.
    assert_eq!(v["excluded"].as_array().unwrap().len(), 8);
    assert_eq!(v["jobs"], 8 + 28 * 3);
}

/// A small tmpfs, unmounted when dropped; `None` where this process may not mount (not root).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let d = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Tmpfs(d))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_names_the_file_says_how_far_expand_got_and_leaves_no_temporary_file() {
    let Some(fs) = Tmpfs::mount("600k") else {
        eprintln!("*** SKIPPING full-disk test: cannot mount a tmpfs here (needs root) ***");
        return;
    };
    let out = fs.0.path().join("camp");
    let o = cargo_bin_cmd!("sweep")
        .args([
            "expand",
            seed().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "600 KiB cannot hold the seed campaign");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("job directories were written"), "{err}");
    assert!(
        err.contains(&out.display().to_string()),
        "names the file: {err}"
    );
    let leftovers: Vec<_> = walkdir::WalkDir::new(&out)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("sweep-tmp"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
