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
