//! `sweep check`: the seed plan's impossible numbers are caught before submission, and the
//! memory estimate agrees with what a real run allocated (tests/fixtures/device-h200-2026-12-02).

use std::process::Command;

use serde_json::Value;

use crate::util::{bin, root, seed_as_written, stderr};

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
    // As the plan wrote it: its micro-batch 16+ points without checkpointing are flagged too.
    let seed = seed_as_written();
    let (code, v, stderr) = check(seed.to_str().unwrap(), &[]);
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
    let seed = seed_as_written();
    let (code, v, err) = check(seed.to_str().unwrap(), &["--all"]);
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
    let o = expand_dir(&seed_as_written(), &out, &[]);
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
    // Three at lines of the file (the doubled phase 2 may also overrun its window).
    let at_lines = warnings
        .iter()
        .filter(|(s, _)| s.starts_with(&f.display().to_string()))
        .count();
    assert_eq!(at_lines, 3, "{warnings:#?}");
    // --strict: the warnings fail the check and stop an expand.
    let (code, _, _) = check(f.to_str().unwrap(), &["--strict"]);
    assert_eq!(code, 1);
    let out = tmp.path().join("c");
    let o = expand_dir(&f, &out, &["--strict"]);
    assert!(!o.status.success());
    assert!(!out.exists());
}

/// The seed sweep with `edit` applied, written beside a copy of nothing else (the profile is
/// found by name from the repository root).
/// The seed as the plan wrote it ([`seed_as_written`]), edited.
fn seed_variant(dir: &std::path::Path, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(seed_as_written()).unwrap();
    let p = dir.join("seed.toml");
    std::fs::write(&p, edit(text)).unwrap();
    p.to_string_lossy().to_string()
}

fn time_errors(v: &Value) -> Vec<&Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["level"] == "error"
                && (f["message"]
                    .as_str()
                    .unwrap()
                    .contains("cannot finish in its time limit")
                    || f["subject"] == "schedule")
        })
        .collect()
}

#[test]
fn the_shipped_seed_has_no_time_errors_and_fits_its_windows() {
    let (_, v, stderr) = check("sweeps/h200-llama2.toml", &[]);
    assert!(time_errors(&v).is_empty(), "{stderr}");
    // Every point has an estimate except the preflight (its limit is scheduled).
    for p in v["points"].as_array().unwrap() {
        assert_eq!(
            p["est_time_s"].is_null(),
            p["stage"] == "preflight",
            "{p:#}"
        );
    }
    let sc = &v["schedule"];
    assert_eq!(sc["nodes"], 8);
    assert_eq!(sc["fits_reservation"], true);
    for st in sc["stages"].as_array().unwrap() {
        assert_eq!(st["fits_window"], true, "{st:#}");
    }
    // The remaining errors are the plan's own: 10 impossible targets and predicted OOMs.
    let errors: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "error")
        .collect();
    assert!(errors.iter().all(|f| {
        let m = f["message"].as_str().unwrap();
        m.contains("impossible")
            || m.contains("exceeds the line rate")
            || m.contains("out of memory")
    }));
}

#[test]
fn a_too_short_limit_is_an_error_with_the_limit_and_steps_that_fit() {
    let tmp = tempfile::tempdir().unwrap();
    // The first draft: 60 + 10 steps in 30 minutes (70B: 1 hour).
    let sweep = seed_variant(tmp.path(), |t| {
        t.replace("steps = 6\n", "steps = 60\n")
            .replace("warmup_steps = 2\n", "warmup_steps = 10\n")
            .replace("steps = 3\nwarmup_steps = 1\n", "")
            .replace("params = { steps = 5 }\n", "")
            .replace("slurm = { time = \"00:55:00\" }", "")
            .replace("slurm = { time = \"01:00:00\" }", "")
            .replace("slurm = { time = \"00:50:00\" }", "")
            .replace(
                "slurm = { time = \"01:10:00\" }",
                "slurm = { time = \"01:00:00\" }",
            )
    });
    let (code, v, _) = check(&sweep, &[]);
    assert_eq!(code, 1);
    let p = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["id"]
                .as_str()
                .unwrap()
                .starts_with("p2-7b-2n-7b-n2-mb16-ga4")
        })
        .unwrap();
    // 7B on 2 nodes, micro 16 x accumulation 4: 12.2 s a step at 100 % MFU, 30.5 s at 40 %;
    // 40 s start-up + 70 steps = 2,176 s, past 30 min less the 120 s signal.
    let step = p["time"]["step_s"].as_f64().unwrap();
    assert!((step - 30.5).abs() < 0.3, "{p:#}");
    assert!((p["est_time_s"].as_f64().unwrap() - (40.0 + 70.0 * step)).abs() < 1e-6);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["subject"] == p["id"]
                && f["message"]
                    .as_str()
                    .unwrap()
                    .contains("cannot finish in its time limit")
        })
        .unwrap();
    let m = f["message"].as_str().unwrap();
    // 2,176 s x 1.15 + 120 s = 2,622 s -> 45 minutes; (1,680 - 40) / 30.5 = 53 steps, 10 warm-up.
    assert!(m.contains("fits with time = \"00:45:00\""), "{m}");
    assert!(m.contains("steps = 43 (with warmup_steps = 10)"), "{m}");
    assert!(
        m.contains("limit 00:30:00 less signal_before_s 120 s"),
        "{m}"
    );
    // 28 of the first draft's 29 training jobs pass their limit (the issue's count), and the
    // 70B jobs end inside their warm-up: no step count fits.
    let over: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .filter(|m| m.contains("cannot finish in its time limit"))
        .collect();
    assert_eq!(over.len(), 28);
    let mb2 = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["subject"]
                .as_str()
                .unwrap()
                .starts_with("p4-70b-70b-n8-mb2")
                && f["message"].as_str().unwrap().contains("cannot finish")
        })
        .unwrap();
    assert!(
        mb2["message"]
            .as_str()
            .unwrap()
            .contains("no step count fits the limit as it is"),
        "{mb2:#}"
    );
}

#[test]
fn measured_step_times_replace_the_model_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    std::fs::create_dir_all(&res).unwrap();
    std::fs::write(
        res.join("runs.csv"),
        "run,stage,model,nodes,micro_batch,grad_accum,status,step_time_ms_p50\n\
         a,p2,llama2-7b,2,16,4,COMPLETED,20000\n\
         b,p2,llama2-7b,2,16,4,COMPLETED,22000\n",
    )
    .unwrap();
    let (_, v, stderr) = check(
        "sweeps/h200-llama2.toml",
        &["--measured", res.to_str().unwrap()],
    );
    let points = v["points"].as_array().unwrap();
    let p = points
        .iter()
        .find(|p| {
            p["id"]
                .as_str()
                .unwrap()
                .starts_with("p2-7b-2n-7b-n2-mb16-ga4")
        })
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(p["time"]["source"], "measured", "{p:#}");
    assert_eq!(p["time"]["step_s"], 21.0);
    assert!(v["measured"].as_str().unwrap().ends_with("results"));
    let other = points
        .iter()
        .find(|p| {
            p["id"]
                .as_str()
                .unwrap()
                .starts_with("p2-7b-2n-7b-n2-mb16-ga8")
        })
        .unwrap();
    assert_eq!(other["time"]["source"], "model");
}

#[test]
fn the_schedule_respects_dependencies_and_flags_a_window_overflow() {
    let tmp = tempfile::tempdir().unwrap();
    // Phase 2 squeezed into one hour; the NCCL stage made to wait for the links.
    let sweep = seed_variant(tmp.path(), |t| {
        t.replace(
            "window = { start = \"day1 13:00\", end = \"day1 15:00\" }",
            "window = { start = \"day1 13:00\", end = \"day1 14:00\" }",
        )
        .replace(
            "description = \"Phase 1: NCCL bus bandwidth at 1, 2, 4 and 8 nodes\"\nafter = [\"preflight\"]",
            "description = \"Phase 1: NCCL bus bandwidth at 1, 2, 4 and 8 nodes\"\nafter = [\"preflight\", \"links\"]",
        )
    });
    let (_, v, _) = check(&sweep, &[]);
    let sc = &v["schedule"];
    let jobs = sc["jobs"].as_array().unwrap();
    let end_of = |stage: &str| {
        jobs.iter()
            .filter(|j| j["stage"] == stage)
            .map(|j| j["end_s"].as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    let start_of = |stage: &str| {
        jobs.iter()
            .filter(|j| j["stage"] == stage)
            .map(|j| j["start_s"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min)
    };
    // Every stage starts after the stages it waits for, and after its window opens.
    assert!(start_of("links") >= end_of("preflight"));
    assert!(start_of("nccl") >= end_of("links"));
    for s in ["p2-7b-2n", "p3-7b-4n", "p4-70b"] {
        assert!(start_of(s) >= end_of("nccl"), "{s}");
    }
    assert_eq!(start_of("p2-7b-2n"), 4.0 * 3600.0);
    assert_eq!(start_of("p3-7b-4n"), 24.0 * 3600.0);
    // No more than the reservation's 8 nodes at any job's start.
    for j in jobs {
        let t = j["start_s"].as_f64().unwrap();
        let busy: u64 = jobs
            .iter()
            .filter(|k| k["start_s"].as_f64().unwrap() <= t && k["end_s"].as_f64().unwrap() > t)
            .map(|k| k["nodes"].as_u64().unwrap())
            .sum();
        assert!(busy <= 8, "{busy} nodes busy at {t}");
    }
    let p2 = sc["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "p2-7b-2n")
        .unwrap();
    assert_eq!(p2["fits_window"], false);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "stage p2-7b-2n")
        .unwrap();
    assert_eq!(f["level"], "warning");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("does not fit its window day1 13:00 - day1 14:00"),
        "{f:#}"
    );
    assert_eq!(
        sc["critical_stages"].as_array().unwrap().last().unwrap(),
        "p4-70b"
    );
}

#[test]
fn a_reservation_too_short_is_an_error_and_the_human_output_draws_the_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = seed_variant(tmp.path(), |t| t.replace("hours = 48", "hours = 30"));
    let o = Command::new(bin())
        .args(["check", &sweep])
        .current_dir(root())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("makespan 32:"), "{out}");
    assert!(out.contains("PAST the 30-hour reservation"), "{out}");
    assert!(
        out.contains("p4-70b") && out.contains("day2 16:00 - day2 18:00"),
        "{out}"
    );
    let (_, v, _) = check(&sweep, &[]);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["subject"] == "schedule" && f["level"] == "error")
    );
}

#[test]
fn schedule_keys_are_checked_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (from, to, key) in [
        (
            "start = \"2026-12-14T09:00\"",
            "start = \"2026-12-14 9am\"",
            "schedule.start",
        ),
        ("hours = 48", "hours = 0", "schedule.hours"),
        (
            "window = { start = \"day2 16:00\", end = \"day2 18:00\" }",
            "window = { start = \"day2 16:00\", end = \"day2 15:00\" }",
            "window.end",
        ),
        (
            "window = { start = \"day2 16:00\", end = \"day2 18:00\" }",
            "window = { start = \"tuesday\", end = \"day2 18:00\" }",
            "window.start",
        ),
    ] {
        let sweep = seed_variant(tmp.path(), |t| t.replace(from, to));
        let (code, _, err) = check(&sweep, &[]);
        assert_ne!(code, 0, "{err}");
        assert!(
            err.contains("seed.toml:") && err.contains(key),
            "{key}: {err}"
        );
    }
    // A window without a reservation to count days from.
    let sweep = seed_variant(tmp.path(), |t| {
        t.replace(
            "[schedule]\nstart = \"2026-12-14T09:00\"\nhours = 48\nnodes = 8\n",
            "",
        )
    });
    let (_, _, err) = check(&sweep, &[]);
    assert!(err.contains("needs a `[schedule]`"), "{err}");
}

#[test]
fn the_report_draws_the_planned_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, r) = (tmp.path().join("c"), tmp.path().join("r"));
    for args in [
        vec![
            "expand",
            "sweeps/h200-llama2.toml",
            "--out",
            c.to_str().unwrap(),
        ],
        vec!["report", c.to_str().unwrap(), "--out", r.to_str().unwrap()],
    ] {
        let o = Command::new(bin())
            .args(&args)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let html = std::fs::read_to_string(r.join("report.html")).unwrap();
    let at = html
        .find("<h3>Schedule (estimated)</h3>")
        .expect("schedule section");
    let part = &html[at..];
    assert!(part.contains("<svg") && part.contains("<title>p4-70b day2 16:00 - day2 17:20"));
    assert!(
        part.contains("Makespan 32:19:53 on 8 node(s)"),
        "{}",
        &part[..2000.min(part.len())]
    );
}

#[test]
fn profile_timing_keys_are_checked_and_change_the_estimate() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("slurm/clusters/fukushima-h200.toml")).unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("expected_mfu = 0.40", "expected_mfu = 40"),
    )
    .unwrap();
    let (code, _, err) = check(
        "sweeps/h200-llama2.toml",
        &["--profile", bad.to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("bad.toml:")
            && err.contains("timing.expected_mfu")
            && err.contains("0.4 for 40 %"),
        "{err}"
    );
    // At 20 % MFU a step takes twice as long: the seed's limits no longer hold.
    let slow = tmp.path().join("slow.toml");
    std::fs::write(
        &slow,
        text.replace("expected_mfu = 0.40", "expected_mfu = 0.20"),
    )
    .unwrap();
    let (_, v, _) = check(
        "sweeps/h200-llama2.toml",
        &["--profile", slow.to_str().unwrap()],
    );
    assert_eq!(v["timing"]["expected_mfu"], 0.2);
    assert!(!time_errors(&v).is_empty());
}

/// The README's smoke variant of the seed (one node, micro-batch 1, 2 + 1 steps, 20 minutes)
/// has no error-level finding on any job, so `submit` passes its gate without flags.
#[test]
fn the_seed_smoke_variant_passes_the_submit_gate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("smoke");
    let o = expand_dir(
        &root().join("sweeps/h200-llama2.toml"),
        &out,
        &[
            "--set",
            "steps=2",
            "--set",
            "warmup_steps=1",
            "--set",
            "nodes=[1]",
            "--set",
            "micro_batch=1",
            "--set",
            "slurm.time=\"00:20:00\"",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = submit_json(&out, &["--dry-run"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["commands"].as_array().unwrap().len(), 17, "{v}");
}
