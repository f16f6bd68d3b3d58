//! How long each job of a plan will run, before it runs (`sweep check`), and whether that fits
//! its time limit.
//!
//! - **Training** (`deepspeed-train`): start-up + (warm-up + measured steps) x step time. A step
//!   is `global_batch x seq` tokens of `train_flops_per_token` model FLOPs (the figure the
//!   implied-MFU check uses) on `gpus x peak x expected MFU`; activation checkpointing recomputes
//!   the forward pass, 4/3 of the FLOPs at the same MFU. A measured step time of the same point
//!   (`--measured DIR`, a collected campaign of the same cluster) replaces the model.
//! - **nccl-tests**: every size from `min_bytes` to `max_bytes` by `step_factor`, `iters +
//!   warmup_iters` times, each a fixed latency plus the bytes the collective moves per rank at
//!   the expected bus bandwidth (NVLink in one node, the NICs' line rate between nodes, times
//!   `busbw_fraction`).
//! - **Link pairs** (`nccl-pairs`): per pair two launches, the sendrecv sizes and the small
//!   all_reduce latency sweep.
//!
//! Other templates get no estimate; the schedule then counts their time limit.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::expand::{Point, json_short};
use crate::profile::Profile;

/// `[timing]` defaults, documented in the README's profile reference.
pub const DEFAULT_STARTUP_S: f64 = 120.0;
pub const DEFAULT_EXPECTED_MFU: f64 = 0.40;
pub const DEFAULT_BUSBW_FRACTION: f64 = 0.80;
pub const DEFAULT_LAUNCH_S: f64 = 10.0;
/// Per-operation latency of a collective in one node (NVLink) and across nodes.
const LATENCY_INTRA_S: f64 = 10e-6;
const LATENCY_INTER_S: f64 = 30e-6;
/// A suggested time limit leaves this share of the estimate as margin.
const LIMIT_MARGIN: f64 = 0.15;

/// The `[timing]` figures in force, with the default for each one not given.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimingFigures {
    pub startup_s: f64,
    pub expected_mfu: f64,
    pub busbw_fraction: f64,
    pub launch_s: f64,
}

impl TimingFigures {
    pub fn of(p: &Profile) -> Self {
        let t = &p.timing;
        TimingFigures {
            startup_s: t.startup_s.unwrap_or(DEFAULT_STARTUP_S),
            expected_mfu: t.expected_mfu.unwrap_or(DEFAULT_EXPECTED_MFU),
            busbw_fraction: t.busbw_fraction.unwrap_or(DEFAULT_BUSBW_FRACTION),
            launch_s: t.launch_s.unwrap_or(DEFAULT_LAUNCH_S),
        }
    }
}

/// One job's estimated run time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobTime {
    pub est_time_s: f64,
    pub startup_s: f64,
    /// Training: seconds per optimizer step, and the steps run (warm-up included).
    pub step_s: Option<f64>,
    pub steps: Option<u64>,
    pub warmup_steps: Option<u64>,
    /// How the figure was made: `model` (expected MFU), `measured` (a collected campaign),
    /// `nccl-tests`, `link pairs`.
    pub source: String,
    /// The arithmetic, for messages.
    pub basis: String,
}

/// Step times of a collected campaign (`runs.csv`), matched to points by their batch.
pub struct Measured {
    pub dir: PathBuf,
    rows: Vec<crate::rows::RunRow>,
}

impl Measured {
    pub fn load(dir: &Path) -> Result<Measured> {
        let rows = crate::rows::RunRow::read_all(&dir.join("runs.csv"))?;
        Ok(Measured {
            dir: dir.to_path_buf(),
            rows,
        })
    }

    /// The median of the matching runs' median step times, seconds, and how many runs.
    fn step_s(&self, p: &Point) -> Option<(f64, usize)> {
        let keys = [
            "model",
            "nodes",
            "micro_batch",
            "grad_accum",
            "activation_checkpointing",
            "seq_len",
        ];
        let mut v: Vec<f64> =
            self.rows
                .iter()
                .filter(|r| {
                    keys.iter().all(|k| {
                        // A column runs.csv lacks (or leaves empty) does not tell points apart; a
                        // flag the point does not set is false.
                        let cell = r.param(k);
                        let mine =
                            p.params.get(*k).map(json_short).or_else(|| {
                                (*k == "activation_checkpointing").then(|| "false".into())
                            });
                        cell.is_empty() || mine.as_deref() == Some(cell)
                    })
                })
                .filter_map(|r| r.figures.step_time_ms_p50)
                .filter(|x| x.is_finite() && *x > 0.0)
                .map(|ms| ms / 1000.0)
                .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let med = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some((med, n))
    }
}

fn int_param(p: &Point, k: &str) -> Option<u64> {
    p.params.get(k).and_then(|v| v.as_u64())
}

fn template_is(p: &Point, name: &str) -> bool {
    p.template == name || p.template.starts_with(&format!("{name}."))
}

/// A byte size as nccl-tests reads it (`8`, `1M`, `16G`: powers of 1024).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim_end_matches(['B', 'b']);
    let (digits, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn bytes_param(p: &Point, k: &str, default: u64) -> u64 {
    match p.params.get(k) {
        Some(serde_json::Value::String(s)) => parse_bytes(s).unwrap_or(default),
        Some(v) => v.as_u64().unwrap_or(default),
        None => default,
    }
}

/// The message sizes nccl-tests runs: `min`, `min x f`, ... up to `max`.
pub fn sizes(min: u64, max: u64, factor: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut s = min.max(1);
    let f = factor.max(2);
    while s <= max && out.len() < 64 {
        out.push(s);
        s = s.saturating_mul(f);
    }
    out
}

/// nccl-tests' bus-bandwidth factor: the bytes each rank moves per byte of the message.
fn bus_factor(collective: &str, ranks: f64) -> f64 {
    let n = ranks.max(1.0);
    match collective {
        "all_reduce" => 2.0 * (n - 1.0) / n,
        "all_gather" | "reduce_scatter" | "alltoall" => (n - 1.0) / n,
        _ => 1.0,
    }
}

/// The bus bandwidth nccl-tests is expected to reach, bytes/s: NVLink in a node, the NICs'
/// line rate (all of a node's NICs together) between nodes, times `busbw_fraction`.
pub fn expected_busbw(profile: &Profile, nodes: u32, f: &TimingFigures) -> Option<f64> {
    let nvlink = profile.gpu.nvlink_gb_s.map(|g| g * 1e9);
    let line: f64 = profile.nics.iter().map(|n| n.rate_gbps).sum::<f64>() * 1e9 / 8.0;
    let raw = if nodes <= 1 {
        nvlink?
    } else if line > 0.0 {
        nvlink.map_or(line, |n| n.min(line))
    } else {
        return None;
    };
    Some(raw * f.busbw_fraction)
}

/// Seconds for one collective over `sizes`, `iters` times each.
fn sweep_s(collective: &str, ranks: f64, sizes: &[u64], iters: u64, busbw: f64, lat: f64) -> f64 {
    let k = bus_factor(collective, ranks);
    sizes
        .iter()
        .map(|&s| iters as f64 * (lat + k * s as f64 / busbw))
        .sum()
}

/// The estimate of one point, or None for a template it knows nothing about.
pub fn estimate(p: &Point, profile: &Profile, measured: Option<&Measured>) -> Option<JobTime> {
    let f = TimingFigures::of(profile);
    if template_is(p, "nccl-tests") {
        return nccl_tests(p, profile, &f);
    }
    if template_is(p, "nccl-pairs") {
        return pairs(p, profile, &f);
    }
    if template_is(p, "deepspeed-train") || p.model.is_some() {
        return training(p, profile, &f, measured);
    }
    None
}

fn training(
    p: &Point,
    profile: &Profile,
    f: &TimingFigures,
    measured: Option<&Measured>,
) -> Option<JobTime> {
    let m = p.model.as_ref()?;
    let steps = int_param(p, "steps").unwrap_or(20);
    let warmup = int_param(p, "warmup_steps").unwrap_or(5);
    let ac = p
        .params
        .get("activation_checkpointing")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let (step_s, source, basis) = if let Some((s, n)) = measured.and_then(|d| d.step_s(p)) {
        (
            s,
            "measured".to_string(),
            format!(
                "{s:.1} s a step, the median of {n} run(s) of the same point in {}",
                d_name(measured)
            ),
        )
    } else {
        let seq = p.batch.seq_len.unwrap_or(m.seq_len);
        let global = p.batch.global_batch? as f64;
        let tokens = global * seq as f64;
        let per_token = m.train_flops_per_token(seq);
        let peak = p.batch.gpus as f64 * profile.gpu.peak_bf16_tflops * 1e12;
        if peak <= 0.0 || f.expected_mfu <= 0.0 {
            return None;
        }
        let recompute = if ac { 4.0 / 3.0 } else { 1.0 };
        let s = step_seconds(tokens, per_token, peak, f.expected_mfu) * recompute;
        (
            s,
            "model".to_string(),
            format!(
                "{s:.1} s a step: {:.2} M tokens x {per_token:.2e} FLOP/token{} on {} x {} TFLOP/s at {:.0} % expected MFU",
                tokens / 1e6,
                if ac {
                    " x 4/3 (checkpointing recomputes the forward pass)"
                } else {
                    ""
                },
                p.batch.gpus,
                profile.gpu.peak_bf16_tflops,
                100.0 * f.expected_mfu
            ),
        )
    };
    let est = f.startup_s + (warmup + steps) as f64 * step_s;
    Some(JobTime {
        est_time_s: est,
        startup_s: f.startup_s,
        step_s: Some(step_s),
        steps: Some(steps),
        warmup_steps: Some(warmup),
        source,
        basis: format!(
            "start-up {:.0} s + ({warmup} warm-up + {steps} measured) steps x {basis}",
            f.startup_s
        ),
    })
}

fn d_name(m: Option<&Measured>) -> String {
    m.map(|m| m.dir.display().to_string()).unwrap_or_default()
}

/// Seconds of one optimizer step: `tokens x flops_per_token / (peak x mfu)`.
pub fn step_seconds(tokens: f64, flops_per_token: f64, peak_flops: f64, mfu: f64) -> f64 {
    tokens * flops_per_token / (peak_flops * mfu)
}

fn nccl_tests(p: &Point, profile: &Profile, f: &TimingFigures) -> Option<JobTime> {
    let busbw = expected_busbw(profile, p.batch.nodes, f)?;
    let coll = p
        .params
        .get("collective")
        .map(json_short)
        .unwrap_or_else(|| "all_reduce".into());
    let sz = sizes(
        bytes_param(p, "min_bytes", 8),
        bytes_param(p, "max_bytes", 8 << 30),
        int_param(p, "step_factor").unwrap_or(2),
    );
    let iters = int_param(p, "iters").unwrap_or(20) + int_param(p, "warmup_iters").unwrap_or(5);
    let lat = if p.batch.nodes <= 1 {
        LATENCY_INTRA_S
    } else {
        LATENCY_INTER_S
    };
    let work = sweep_s(&coll, p.batch.gpus as f64, &sz, iters, busbw, lat);
    Some(JobTime {
        est_time_s: f.launch_s + work,
        startup_s: f.launch_s,
        step_s: None,
        steps: None,
        warmup_steps: None,
        source: "nccl-tests".into(),
        basis: format!(
            "launch {:.0} s + {coll}: {} sizes x {iters} iterations at {:.1} GB/s bus bandwidth = {work:.0} s",
            f.launch_s,
            sz.len(),
            busbw / 1e9
        ),
    })
}

fn pairs(p: &Point, profile: &Profile, f: &TimingFigures) -> Option<JobTime> {
    let busbw = expected_busbw(profile, 2, f)?;
    let n = p.batch.nodes as u64;
    let all_max = int_param(p, "pairs_all_max").unwrap_or(8);
    let npairs = if n < 2 {
        0
    } else if n <= all_max {
        n * (n - 1) / 2
    } else {
        n
    };
    let sz = sizes(
        bytes_param(p, "min_bytes", 1 << 20),
        bytes_param(p, "max_bytes", 1 << 30),
        int_param(p, "step_factor").unwrap_or(2),
    );
    let iters = int_param(p, "iters").unwrap_or(20) + int_param(p, "warmup_iters").unwrap_or(5);
    let ranks = 2.0 * p.batch.gpus_per_node as f64;
    let sendrecv = sweep_s("sendrecv", ranks, &sz, iters, busbw, LATENCY_INTER_S);
    // The template's latency sweep: all_reduce_perf -b 8 -e 1M -f 2 -n 100 -w 10.
    let latency = sweep_s(
        "all_reduce",
        ranks,
        &sizes(8, 1 << 20, 2),
        110,
        busbw,
        LATENCY_INTER_S,
    );
    let per_pair = 2.0 * f.launch_s + sendrecv + latency;
    Some(JobTime {
        est_time_s: npairs as f64 * per_pair,
        startup_s: 0.0,
        step_s: None,
        steps: None,
        warmup_steps: None,
        source: "link pairs".into(),
        basis: format!(
            "{npairs} pairs x {per_pair:.0} s (2 launches of {:.0} s, sendrecv {sendrecv:.1} s, latency sweep {latency:.1} s)",
            f.launch_s
        ),
    })
}

/// The time limit (minutes) that fits the estimate: the estimate with its margin plus the
/// signal's lead, rounded up to 5 minutes.
pub fn fitting_limit_min(t: &JobTime, signal_s: f64) -> u64 {
    let need = t.est_time_s * (1.0 + LIMIT_MARGIN) + signal_s;
    ((need / 60.0 / 5.0).ceil() as u64).max(1) * 5
}

/// The measured steps that fit `budget_s` (None: not even the warm-up fits).
pub fn fitting_steps(t: &JobTime, budget_s: f64) -> Option<u64> {
    let (step, warm) = (t.step_s?, t.warmup_steps.unwrap_or(0));
    let n = ((budget_s - t.startup_s) / step).floor();
    (n > warm as f64).then(|| n as u64 - warm)
}

/// Fills in a point's estimate and adds the error when it cannot finish inside its time limit
/// less `signal_before_s`: the estimate, the limit, the limit that would fit and the steps that
/// would fit the limit as it is.
pub(crate) fn check_point(
    p: &Point,
    profile: &Profile,
    measured: Option<&Measured>,
    pc: &mut crate::check::PointCheck,
    findings: &mut Vec<crate::check::Finding>,
) {
    use crate::check::{Finding, Level};
    let t = estimate(p, profile, measured);
    let limit_s = p.time_limit_min.map(|m| m as f64 * 60.0);
    pc.est_time_s = t.as_ref().map(|t| t.est_time_s);
    pc.time_limit_s = limit_s;
    let (Some(t), Some(limit)) = (t, limit_s) else {
        pc.time = estimate(p, profile, measured);
        return;
    };
    let signal = p.slurm.signal_before_s.unwrap_or(0) as f64;
    let budget = limit - signal;
    if t.est_time_s > budget {
        let fit_min = fitting_limit_min(&t, signal);
        let steps = match (fitting_steps(&t, budget), t.steps) {
            (Some(n), Some(_)) => format!(
                ", or steps = {n} (with warmup_steps = {}) in the limit as it is",
                t.warmup_steps.unwrap_or(0)
            ),
            (None, Some(_)) => format!(
                "; no step count fits the limit as it is (start-up and {} warm-up steps alone take {})",
                t.warmup_steps.unwrap_or(0),
                hms(t.startup_s + t.warmup_steps.unwrap_or(0) as f64 * t.step_s.unwrap_or(0.0))
            ),
            _ => String::new(),
        };
        findings.push(Finding {
            level: Level::Error,
            subject: p.id.clone(),
            message: format!(
                "cannot finish in its time limit: estimated {} ({}, {}) > limit {} less signal_before_s {:.0} s = {}; fits with time = \"{}\"{steps}",
                hms(t.est_time_s),
                t.basis,
                t.source,
                limit_text((limit / 60.0) as u64),
                signal,
                hms(budget),
                limit_text(fit_min),
            ),
            fix: None,
        });
    }
    pc.time = Some(t);
}

/// `H:MM:SS` of seconds.
pub fn hms(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `HH:MM:SS` of minutes, as sbatch takes it.
pub fn limit_text(min: u64) -> String {
    if min >= 24 * 60 {
        format!(
            "{}-{:02}:{:02}:00",
            min / (24 * 60),
            min / 60 % 24,
            min % 60
        )
    } else {
        format!("{:02}:{:02}:00", min / 60, min % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_24_hand_computed_7b_step() {
        // 7B on 2 nodes, micro 16 x accumulation 4 x 16 ranks at seq 4096: 4.2 M tokens a step.
        let m = crate::model::preset("llama2-7b").unwrap();
        let tokens: f64 = 16.0 * 4.0 * 16.0 * 4096.0;
        assert!((tokens / 1e6 - 4.19).abs() < 0.01);
        let per_token = m.train_flops_per_token(4096);
        assert!((per_token / 4.6e10 - 1.0).abs() < 0.03, "{per_token:e}");
        let s = step_seconds(tokens, per_token, 16.0 * 989e12, 1.0);
        assert!((s - 12.2).abs() < 0.2, "{s}");
        // At 40 % the 70 steps take about 36 minutes.
        let at40 = 70.0 * step_seconds(tokens, per_token, 16.0 * 989e12, 0.4);
        assert!((at40 / 60.0 - 35.6).abs() < 1.0, "{at40}");
    }

    #[test]
    fn sizes_and_bytes() {
        assert_eq!(parse_bytes("16G"), Some(16 << 30));
        assert_eq!(parse_bytes("8"), Some(8));
        assert_eq!(parse_bytes("1M"), Some(1 << 20));
        assert_eq!(sizes(8, 16 << 30, 2).len(), 32);
        assert_eq!(sizes(1 << 20, 1 << 30, 2).len(), 11);
        assert!((bus_factor("all_reduce", 16.0) - 1.875).abs() < 1e-9);
        assert!((bus_factor("all_gather", 16.0) - 0.9375).abs() < 1e-9);
    }

    #[test]
    fn fitting_limit_and_steps() {
        let t = JobTime {
            est_time_s: 40.0 + 70.0 * 30.0,
            startup_s: 40.0,
            step_s: Some(30.0),
            steps: Some(60),
            warmup_steps: Some(10),
            source: "model".into(),
            basis: String::new(),
        };
        // 2140 s x 1.15 + 120 = 2581 s = 43.0 min -> 45 minutes.
        assert_eq!(fitting_limit_min(&t, 120.0), 45);
        // 28 minutes: (1680 - 40) / 30 = 54 steps, 10 of them warm-up.
        assert_eq!(fitting_steps(&t, 1680.0), Some(44));
        assert_eq!(fitting_steps(&t, 300.0), None);
        assert_eq!(limit_text(45), "00:45:00");
        assert_eq!(limit_text(24 * 60 + 5), "1-00:05:00");
        assert_eq!(hms(3725.0), "1:02:05");
    }
}
