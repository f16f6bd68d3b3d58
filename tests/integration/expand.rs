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
    // 1 preflight + 1 pairwise links + 12 NCCL + 6 (phase 2: micro 16/32 x accumulation
    // 4/8/16; micro 64 left out, it cannot fit) + 2 + 6 (phase 3) + 4 weak + 6 strong + 2 (70B).
    assert_eq!(jobs.len(), 40);
    let manifest = read_json(&out.join("campaign.json"));
    assert_eq!(manifest["jobs"].as_array().unwrap().len(), 40);
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
    assert_eq!(training, 26);

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
    assert_eq!(csv.lines().count(), 41);
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
    assert_eq!(v["written"]["unchanged"], 40);
    assert_eq!(v["written"]["created"], 0);
    assert_eq!(job_dirs(&out), first);

    // Change one stage's time limit: only that stage's jobs are rewritten.
    let text = std::fs::read_to_string(seed()).unwrap().replace(
        "slurm = { time = \"01:10:00\" }",
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
    assert_eq!(v["written"]["unchanged"], 38);
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
            "slurm = { time = \"01:10:00\" }",
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
    // Training at the seed's limits (sized by the plan check's time estimate): p2 6 x 16 GPUs x
    // 55 min = 88, p3-7b 2 x 32 x 30 min = 32, p3-13b 6 x 32 x 60 min = 192, p4-weak 4 x 64 x
    // 50 min = 213.3, p4-strong (16 + 32 + 64) x 2 x 30 min = 112, p4-70b 2 x 64 x 70 min =
    // 149.3; + NCCL 90 = 876.7, + preflight 64 GPUs x 10 min + links 64 GPUs x 30 min = 919.3.
    assert!(s.contains("919.3"), "{s}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    let o = cargo_bin_cmd!("sweep")
        .args(["--json", "expand", seed().to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"], 40);
    assert!((v["gpu_hours"].as_f64().unwrap() - (2630.0 / 3.0 + 64.0 / 6.0 + 32.0)).abs() < 1e-9);
    assert_eq!(v["rows"].as_array().unwrap().len(), 40);
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

/// The link stage of the seed (8 nodes) runs its 28 pairs in 7 rounds of 4 disjoint pairs, each
/// round's pairs at once, and still writes `pair=<a>=<b>=sendrecv.log` / `...=latency.log` for
/// every pair. Run with stand-ins for `srun` (logs each 2-node step's start and end) and
/// `scontrol` (8 host names).
#[test]
fn link_stage_runs_rounds_of_disjoint_pairs_concurrently() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    expand_to(&seed(), &out);
    let job = find_job(&out, "links-");
    let bin = tmp.path().join("bin");
    let tests = tmp.path().join("nccl-tests");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&tests).unwrap();
    let steps = tmp.path().join("steps.log");
    let write_exe = |p: &Path, text: &str| {
        std::fs::write(p, text).unwrap();
        Command::new("chmod").arg("+x").arg(p).status().unwrap();
    };
    write_exe(
        &bin.join("scontrol"),
        "#!/bin/bash\nfor i in 1 2 3 4 5 6 7 8; do echo node0$i; done\n",
    );
    write_exe(
        &bin.join("srun"),
        &format!(
            "#!/bin/bash\nnl=\nfor a in \"$@\"; do case $a in --nodelist=*) nl=${{a#--nodelist=}};; esac; done\n\
             [ -z \"$nl\" ] && exit 0\necho \"begin $nl\" >> {s}\nsleep 0.4\necho \"end $nl\" >> {s}\necho \"# Avg bus bandwidth : 1.0\"\n",
            s = steps.display()
        ),
    );
    for b in ["sendrecv_perf", "all_reduce_perf"] {
        write_exe(&tests.join(b), "#!/bin/bash\n");
    }
    let script = std::fs::read_to_string(job.join("job.sbatch")).unwrap();
    let script: String = script
        .lines()
        .map(|l| {
            if l.starts_with("NCCL_TESTS_DIR=") {
                format!("NCCL_TESTS_DIR={}", tests.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(job.join("job.sbatch"), script).unwrap();
    let o = Command::new("bash")
        .arg("job.sbatch")
        .current_dir(&job)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("SWEEP_JOB_DIR", &job)
        .env("SLURM_JOB_NODELIST", "node0[1-8]")
        .env("SLURM_NNODES", "8")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stdout.matches("round ").count(), 7, "{stdout}");
    // Replay the steps: at most 4 at once, never two on one node, every pair twice.
    let log = std::fs::read_to_string(&steps).unwrap();
    let mut active: Vec<String> = Vec::new();
    let mut most = 0;
    let mut begun = std::collections::BTreeMap::<String, usize>::new();
    for l in log.lines() {
        let (what, nl) = l.split_once(' ').unwrap();
        if what == "begin" {
            for n in nl.split(',') {
                assert!(
                    !active.iter().any(|a| a.split(',').any(|x| x == n)),
                    "{n} in two steps at once:\n{log}"
                );
            }
            active.push(nl.to_string());
            most = most.max(active.len());
            *begun.entry(nl.to_string()).or_default() += 1;
        } else {
            active.retain(|a| a != nl);
        }
    }
    assert_eq!(most, 4, "{log}");
    assert_eq!(begun.len(), 28, "{begun:?}");
    assert!(begun.values().all(|&n| n == 2), "{begun:?}");
    for pair in begun.keys() {
        let (a, b) = pair.split_once(',').unwrap();
        for kind in ["sendrecv", "latency"] {
            assert!(
                job.join(format!("pair={a}={b}={kind}.log")).is_file(),
                "no log of {pair} {kind}"
            );
        }
    }
}

/// The seed's training stages wait `afterok` on the preflight (a gate) and `afterany` on the
/// link and NCCL measurements, in one `--dependency` (`,`: every kind must hold).
#[test]
fn seed_training_waits_afterok_on_the_gate_and_afterany_on_measurements() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    expand_to(&seed(), &out);
    let o = cargo_bin_cmd!("sweep")
        .args([
            "submit",
            out.to_str().unwrap(),
            "--dry-run",
            "--force",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cmds: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let of = |prefix: &str| {
        cmds.iter()
            .find(|c| c.contains(&format!("/jobs/{prefix}")))
            .unwrap_or_else(|| panic!("no {prefix} in {cmds:?}"))
            .to_string()
    };
    assert!(of("links-").contains("'--dependency=afterok:<preflight>'"));
    for stage in ["p2-7b-2n-", "p3-13b-4n-", "p4-70b-"] {
        assert!(
            of(stage).contains("'--dependency=afterok:<preflight>,afterany:<links>:<nccl>'"),
            "{}",
            of(stage)
        );
    }
}
