//! `sweep check`: the seed plan's impossible numbers are caught before submission, and the
//! memory estimate agrees with what a real run allocated (tests/fixtures/device-h200-2026-12-02).

use std::process::Command;

use serde_json::Value;

use crate::util::{bin, root, stderr};

fn check(sweep: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["--json", "check", sweep];
    args.extend_from_slice(extra);
    let o = Command::new(bin())
        .args(&args)
        .current_dir(root())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), v, stderr(&o))
}

fn target<'a>(v: &'a Value, metric: &str, model: Option<&str>, nodes: Option<u64>) -> &'a Value {
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["metric"] == metric && t["model"].as_str() == model && t["nodes"].as_u64() == nodes
        })
        .unwrap_or_else(|| panic!("no {metric} target for {model:?} {nodes:?}"))
}

#[test]
fn the_seed_plans_throughput_and_bandwidth_targets_are_impossible() {
    let (code, v, stderr) = check("sweeps/h200-llama2.toml", &[]);
    assert_eq!(code, 1, "error-level findings fail the check: {stderr}");
    // The seed's digest: 16 H200s at 100 % of peak train Llama-2-7B at roughly 80 samples/s
    // at sequence 4096 (6 x 6.74e9 + 12 x 32 x 4096 x 4096 FLOPs per token).
    let per_token = 6.0 * (6.74e9 - 32000.0 * 4096.0) + 12.0 * 32.0 * 4096.0 * 4096.0;
    let ceiling = 16.0 * 989e12 / (per_token * 4096.0);
    let t = target(&v, "throughput", Some("llama2-7b"), Some(2));
    assert!(
        (t["ceiling"].as_f64().unwrap() - ceiling).abs() / ceiling < 0.01,
        "{t:#}"
    );
    let mfu = t["implied_mfu_pct"].as_f64().unwrap();
    assert!((mfu - 100.0 * 8000.0 / ceiling).abs() < 0.01 * mfu, "{t:#}");
    assert_eq!(t["level"], "error");
    // Read as tokens/s, 8000 would be far too low for 16 GPUs: a few percent MFU.
    assert!(t["implied_mfu_pct_as_tokens"].as_f64().unwrap() < 5.0);
    for model in ["llama2-7b", "llama2-13b", "llama2-70b"] {
        for nodes in [2, 4, 8] {
            let t = target(&v, "throughput", Some(model), Some(nodes));
            assert!(t["implied_mfu_pct"].as_f64().unwrap() > 1000.0, "{t:#}");
            assert_eq!(t["level"], "error");
        }
    }
    // 920 Gb/s per node on 2 x 400GbE.
    let bw = target(&v, "bandwidth", None, None);
    assert_eq!(bw["ceiling"], 800.0);
    assert_eq!(bw["level"], "error");
    assert_eq!(target(&v, "gpu_util", None, Some(2))["level"], "info");
    let findings = v["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| {
        f["subject"] == "target 17"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("exceeds the line rate")
    }));
    // Micro-batch 16+ of 7B without checkpointing cannot fit 141 GB (digest: ~18 GB a sample).
    let p = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["id"]
                .as_str()
                .unwrap()
                .starts_with("p2-7b-2n-7b-n2-mb16-ga8")
        })
        .unwrap();
    let act = p["memory"]["activations"].as_f64().unwrap() / 16.0;
    assert!((16e9..20e9).contains(&act), "activations per sample {act}");
    assert!(findings.iter().any(|f| {
        f["subject"] == p["id"]
            && f["level"] == "error"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("likely out of memory")
    }));
    // 70B at micro 2 with checkpointing on 64 GPUs fits.
    let p70 = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"].as_str().unwrap().starts_with("p4-70b") && p["micro_batch"] == 2)
        .unwrap();
    assert!(
        p70["memory"]["total"].as_f64().unwrap() < p70["memory"]["hbm"].as_f64().unwrap(),
        "{p70:#}"
    );
}

/// Peak allocated GiB the payload measured, by job id prefix.
fn measured(prefix: &str) -> f64 {
    let jobs = root().join("tests/fixtures/device-h200-2026-12-02/campaign/jobs");
    let dir = std::fs::read_dir(&jobs)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .unwrap()
        .path();
    let log = std::fs::read_to_string(dir.join("rank-0.log")).unwrap();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("\"kind\":\"summary\""))
        .unwrap();
    let v: Value = serde_json::from_str(&line[line.find('{').unwrap()..]).unwrap();
    v["mem_max_alloc_gib"].as_f64().unwrap()
}

#[test]
fn the_memory_estimate_agrees_with_a_real_h200_run() {
    let (code, v, _) = check("sweeps/device-h200.toml", &[]);
    assert_eq!(code, 1, "the deliberate OOM point is an error");
    let points = v["points"].as_array().unwrap();
    for prefix in ["train-mb4-ga4-noac", "train-mb4-ga4-ac"] {
        let p = points
            .iter()
            .find(|p| p["id"].as_str().unwrap().starts_with(prefix))
            .unwrap();
        let est = p["memory"]["total"].as_f64().unwrap() / (1u64 << 30) as f64;
        let real = measured(prefix);
        // Workspace, allocator slack and temporaries are not estimated: a little under.
        assert!(
            est <= real && est >= 0.85 * real,
            "{prefix}: estimated {est:.2} GiB, measured {real:.2} GiB"
        );
    }
    let oom = points
        .iter()
        .find(|p| p["id"].as_str().unwrap().starts_with("oom-"))
        .unwrap();
    assert!(oom["memory"]["total"].as_f64().unwrap() > oom["memory"]["hbm"].as_f64().unwrap());
}

#[test]
fn expand_warns_and_strict_stops_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let o = Command::new(bin())
        .args([
            "expand",
            "sweeps/h200-llama2.toml",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is impossible") && err.contains("plan check:"),
        "{err}"
    );
    let out2 = tmp.path().join("d");
    let o = Command::new(bin())
        .args([
            "expand",
            "sweeps/h200-llama2.toml",
            "--strict",
            "--out",
            out2.to_str().unwrap(),
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(!out2.exists(), "--strict writes nothing");
}

/// The seed's OOM findings name what would fit: the largest micro-batch at the same global
/// batch, and whether activation checkpointing would.
#[test]
fn an_oom_finding_names_the_micro_batch_and_checkpointing_that_fit() {
    let (code, v, err) = check("sweeps/h200-llama2.toml", &["--all"]);
    assert_eq!(code, 1, "{err}");
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["subject"]
                .as_str()
                .unwrap()
                .starts_with("p2-7b-2n-7b-n2-mb16-ga4-")
        })
        .expect("the 7B micro 16 point is flagged");
    let m = f["message"].as_str().unwrap();
    assert!(m.contains("likely out of memory"), "{m}");
    let fix = f["fix"].as_str().unwrap();
    assert!(
        fix.contains("micro 4 x accumulation 16 at the same global batch"),
        "{fix}"
    );
    assert!(
        fix.contains("activation checkpointing at micro 16 ("),
        "{fix}"
    );
    // A point whose micro-batch is too large even with checkpointing says which one would fit.
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["subject"]
                .as_str()
                .unwrap()
                .starts_with("p2-7b-2n-7b-n2-mb64-ga4-")
        })
        .unwrap();
    let fix = f["fix"].as_str().unwrap();
    assert!(
        fix.contains("not activation checkpointing at micro 64")
            && fix.contains("but with it micro 32 x accumulation 8"),
        "{fix}"
    );
}

fn expand_dir(
    sweep: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "expand".to_string(),
        sweep.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "-q".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(bin())
        .args(&args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn submit_json(dir: &std::path::Path, extra: &[&str], path: Option<&str>) -> std::process::Output {
    let mut c = Command::new(bin());
    c.args(["--json", "submit", dir.to_str().unwrap()])
        .args(extra)
        .current_dir(root());
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().unwrap()
}

/// `submit` refuses a campaign with error-level findings (nothing submitted, the jobs named);
/// `--force` submits all; `--skip-flagged` the rest (dry run: the flagged listed, no state).
#[test]
fn submit_gate_refuses_flagged_points_unless_forced_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let o = expand_dir(&root().join("sweeps/h200-llama2.toml"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = submit_json(&out, &["--dry-run"], None);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("27 job(s) have error-level plan-check findings")
            && err.contains("p2-7b-2n-7b-n2-mb16-ga4-"),
        "{err}"
    );
    assert!(
        err.contains("--skip-flagged") && err.contains("--force"),
        "{err}"
    );
    assert!(err.contains("What fits: micro 4 x accumulation"), "{err}");
    let o = submit_json(&out, &["--dry-run", "--force"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["commands"].as_array().unwrap().len(), 43);
    let o = submit_json(&out, &["--dry-run", "--skip-flagged"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["commands"].as_array().unwrap().len(), 43 - 27);
    assert_eq!(v["flagged"].as_array().unwrap().len(), 27);
    assert!(
        !out.join("state.json").exists(),
        "a dry run records nothing"
    );
}

/// `--skip-flagged` for real (stand-ins for sbatch and squeue): the rest is submitted, each
/// flagged job recorded `skipped` with its reason, which `status` shows; never submitted.
#[test]
fn skip_flagged_records_the_flagged_jobs_as_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("s.toml");
    std::fs::write(
        &sweep,
        format!(
            r#"name = "gate"
cluster = "{}"
[defaults]
zero_stage = 3
[[stage]]
name = "train"
template = "deepspeed-train.sbatch.j2"
scaling = "weak"
[stage.matrix]
model = ["llama2-7b"]
nodes = [2]
micro_batch = [2, 64]
grad_accum = [1]
"#,
            root().join("slurm/clusters/fukushima-h200.toml").display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("c");
    let o = expand_dir(&sweep, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let calls = tmp.path().join("calls");
    for (name, body) in [
        (
            "sbatch",
            format!("echo \"$@\" >> {}\necho 4242", calls.display()),
        ),
        ("squeue", String::new()),
        ("sacct", String::new()),
    ] {
        let p = bin_dir.join(name);
        std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let o = submit_json(&out, &["--skip-flagged"], Some(&path));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["submitted"].as_array().unwrap().len(), 1, "{v}");
    let flagged = v["flagged"].as_array().unwrap();
    assert_eq!(flagged.len(), 1, "{v}");
    let flagged_id = flagged[0][0].as_str().unwrap().to_string();
    assert!(flagged_id.contains("mb64"), "{flagged_id}");
    let sbatched = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(sbatched.lines().count(), 1, "{sbatched}");
    let o = Command::new(bin())
        .args(["--json", "status", out.to_str().unwrap()])
        .env("PATH", &path)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let job = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == flagged_id.as_str())
        .unwrap();
    assert_eq!(job["state"], "skipped", "{job}");
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains("plan check: likely out of memory"),
        "{reason}"
    );
    // Submitting again submits nothing more and keeps it skipped.
    let o = submit_json(&out, &["--skip-flagged"], Some(&path));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 1);
}

/// `expand --set`: a smoke variant without editing the file; the campaign's sweep.toml records
/// the values, and `check DIR` checks that copy.
#[test]
fn expand_set_makes_a_smoke_variant_recorded_in_the_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let o = expand_dir(
        &root().join("sweeps/h200-llama2.toml"),
        &out,
        &[
            "--set",
            "steps=5",
            "--set",
            "nodes=[1]",
            "--set",
            "slurm.time=\"00:10:00\"",
            "--set",
            "micro_batch=1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let copy = std::fs::read_to_string(out.join("sweep.toml")).unwrap();
    assert!(copy.contains("#   --set steps=5"), "{copy}");
    assert!(copy.contains("#   --set nodes=[1]"), "{copy}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("campaign.json")).unwrap()).unwrap();
    let jobs = manifest["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().all(|j| j["nodes"] == 1),
        "every job on one node"
    );
    assert!(
        jobs.iter().all(|j| j["time_limit_min"] == 10),
        "every limit 10 min"
    );
    let train = jobs.iter().find(|j| j["stage"] == "p2-7b-2n").unwrap();
    let point: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(train["dir"].as_str().unwrap()).join("point.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(point["params"]["steps"], 5, "{point}");
    // The campaign directory is checked as expanded: no memory error left at micro 1.
    let (_, v, err) = check(out.to_str().unwrap(), &["--all"]);
    assert!(v.is_object(), "{err}");
    assert!(
        !v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("out of memory")),
        "{v}"
    );
    assert!(
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["nodes"] == 1)
    );
    // An unknown key is named, with the closest one.
    let o = expand_dir(
        &root().join("sweeps/h200-llama2.toml"),
        &tmp.path().join("d"),
        &["--set", "stepz=5"],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--set `stepz`") && err.contains("did you mean `steps`"),
        "{err}"
    );
    assert!(!tmp.path().join("d").exists());
}

/// A parameter no template of its stage reads (and sweep does not use) is a warning naming the
/// file, line and key with the closest known parameter; --strict makes it an error.
#[test]
fn unread_parameters_are_named_with_the_closest_known_one() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = std::fs::read_to_string(root().join("sweeps/h200-llama2.toml")).unwrap();
    let text = seed
        .replace(
            "cluster = \"fukushima-h200\"",
            &format!(
                "cluster = \"{}\"",
                root().join("slurm/clusters/fukushima-h200.toml").display()
            ),
        )
        .replace(
            "gpu_sample_ms = 1000 ",
            "gpu_sample_ms = 1000\nactivation_checkpoint = true ",
        )
        .replace(
            "[stage.params]\nactivation_checkpointing = true\n",
            "[stage.params]\nactivation_checkpointing = true\nmicro_bach = 4\n",
        )
        .replace(
            "grad_accum = [4, 8, 16]",
            "grad_accum = [4, 8, 16]\ngrad_acum = [1, 2]",
        );
    let f = tmp.path().join("careless.toml");
    std::fs::write(&f, &text).unwrap();
    let (_, v, err) = check(f.to_str().unwrap(), &["--all"]);
    let warnings: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{err}"))
        .iter()
        .filter(|x| x["level"] == "warning")
        .map(|x| {
            (
                x["subject"].as_str().unwrap().to_string(),
                x["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |needle: &str, key: &str, suggestion: &str| {
        let line = crate::util::line_of(&text, needle);
        let at = format!("{}:{line}", f.display());
        assert!(
            warnings.iter().any(|(s, m)| s == &at
                && m.contains(&format!("key `{key}`"))
                && m.contains(&format!("did you mean `{suggestion}`"))),
            "want {at} {key} -> {suggestion} in {warnings:#?}"
        );
    };
    has(
        "activation_checkpoint = true",
        "defaults.activation_checkpoint",
        "activation_checkpointing",
    );
    has(
        "micro_bach = 4",
        "stage[8].params.micro_bach",
        "micro_batch",
    );
    has(
        "grad_acum = [1, 2]",
        "stage[3].matrix.grad_acum",
        "grad_accum",
    );
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    // --strict: the warnings fail the check and stop an expand.
    let (code, _, _) = check(f.to_str().unwrap(), &["--strict"]);
    assert_eq!(code, 1);
    let out = tmp.path().join("c");
    let o = expand_dir(&f, &out, &["--strict"]);
    assert!(!o.status.success());
    assert!(!out.exists());
}
