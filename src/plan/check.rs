//! The plan check (`sweep check`, and `expand` as warnings): what can be known to be wrong
//! before a single cluster hour is spent, from the model shape, the profile and the point alone.
//!
//! - **Batch algebra** of every training point (global batch = micro x accumulation x
//!   data-parallel ranks; tokens per step).
//! - **Memory per GPU** (`memory`), against the profile's HBM.
//! - **Targets** of the sweep file: the implied model-FLOPs utilisation of every throughput
//!   target, link-rate ceilings of bandwidth targets, percentages above 100.

use serde::Serialize;

use crate::expand::{Plan, Point};
use crate::model::ModelShape;
use crate::profile::Profile;
use crate::schedule::ScheduleReport;
use crate::spec::{LoadedSweep, TargetMetric, TargetSpec};
use crate::timing::{JobTime, Measured, TimingFigures};

/// An implied MFU above this is flagged: well-tuned large-model training reaches 40-60 %.
const MFU_WARN_PCT: f64 = 60.0;
/// Memory estimates above this share of HBM are flagged as tight.
const MEM_WARN_FRACTION: f64 = 0.9;
/// DeepSpeed's default `stage3_max_live_parameters`.
const DS_MAX_LIVE_PARAMETERS: f64 = 1e9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    /// A job id or `target N`.
    pub subject: String,
    pub message: String,
    /// What would fit instead (a point predicted out of memory): the largest micro-batch at the
    /// same global batch, and whether activation checkpointing would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The memory estimate of one GPU, in bytes (see `memory`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemEstimate {
    pub zero_stage: u32,
    pub activation_checkpointing: bool,
    pub flash_attention: bool,
    /// BF16 weights, their gradients and the FP32 Adam states (master weights, momentum,
    /// variance) on this GPU after ZeRO's sharding.
    pub weights: f64,
    pub gradients: f64,
    pub optimizer: f64,
    /// ZeRO-3: parameters gathered at once (`stage3_max_live_parameters`, BF16).
    pub live_parameters: f64,
    pub activations: f64,
    /// The LM head's logits and their FP32 copies for the loss.
    pub logits: f64,
    pub total: f64,
    pub hbm: f64,
}

/// Bytes per GPU for a point: the model states after ZeRO's sharding (Rajbhandari et al. 2020,
/// "ZeRO", sec. 3: 2 bytes of BF16 weights, 2 of gradients and 12 of FP32 Adam states per
/// parameter; stage 1 shards the 12 over the data-parallel ranks, stage 2 also the gradients,
/// stage 3 everything, plus the parameters gathered for the layer being computed), and the
/// activations of one micro-batch (Korthikanti et al. 2022, "Reducing Activation Recomputation",
/// eq. 1: s x b x h x (34 + 5 a s / h) bytes per layer in 16-bit training; flash attention
/// removes the 5 a s / h term; full activation checkpointing keeps only each layer's 2 s b h
/// bytes of input plus one layer's activations during its recomputation), plus the logits
/// (b x s x vocab elements: BF16, the FP32 copy the loss takes and its FP32 log-softmax, 10
/// bytes). Tensor and pipeline parallelism divide the model states and activations evenly.
/// Workspace, fragmentation and the CUDA context (about 1-3 GiB) are not counted.
pub(crate) fn memory(m: &ModelShape, p: &Point, hbm_gib: f64) -> Option<MemEstimate> {
    let micro = p.batch.micro_batch? as f64;
    let seq = p.batch.seq_len.unwrap_or(m.seq_len) as f64;
    let zero = p
        .params
        .get("zero_stage")
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as u32;
    let ac = p
        .params
        .get("activation_checkpointing")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let flash = p
        .params
        .get("attention")
        .and_then(|v| v.as_str())
        .is_none_or(|a| a != "eager");
    let split = (p.batch.tensor_parallel.max(1) * p.batch.pipeline_parallel.max(1)) as f64;
    let dp = p.batch.dp.max(1) as f64;
    let params = m.params() as f64 / split;
    let (w, g, o) = match zero {
        0 => (2.0 * params, 2.0 * params, 12.0 * params),
        1 => (2.0 * params, 2.0 * params, 12.0 * params / dp),
        2 => (2.0 * params, 2.0 * params / dp, 12.0 * params / dp),
        _ => (2.0 * params / dp, 2.0 * params / dp, 12.0 * params / dp),
    };
    let live = if zero >= 3 {
        let max_live = p
            .params
            .get("ds.zero_optimization.stage3_max_live_parameters")
            .and_then(|v| v.as_f64())
            .unwrap_or(DS_MAX_LIVE_PARAMETERS);
        2.0 * max_live.min(params)
    } else {
        0.0
    };
    let (h, a, layers) = (
        m.hidden as f64,
        m.heads as f64,
        m.layers as f64 / p.batch.pipeline_parallel.max(1) as f64,
    );
    let per_layer = seq * micro * h * (34.0 + if flash { 0.0 } else { 5.0 * a * seq / h })
        / p.batch.tensor_parallel.max(1) as f64;
    let activations = if ac {
        layers * 2.0 * seq * micro * h + per_layer
    } else {
        layers * per_layer
    };
    let logits = 10.0 * micro * seq * m.vocab as f64 / p.batch.tensor_parallel.max(1) as f64;
    let total = w + g + o + live + activations + logits;
    Some(MemEstimate {
        zero_stage: zero,
        activation_checkpointing: ac,
        flash_attention: flash,
        weights: w,
        gradients: g,
        optimizer: o,
        live_parameters: live,
        activations,
        logits,
        total,
        hbm: hbm_gib * GIB,
    })
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What would fit instead of a point predicted out of memory: the largest micro-batch at the
/// same global batch (micro x accumulation constant, the accumulation growing), and whether
/// activation checkpointing would fit at the point's micro-batch (and with the smaller one).
fn oom_fixes(m: &ModelShape, p: &Point, hbm_gib: f64) -> Option<String> {
    let micro = p.batch.micro_batch?;
    let accum = p.batch.grad_accum.unwrap_or(1);
    let per_rank = micro as u64 * accum as u64;
    let with = |mb: u32, ac: bool| -> Option<MemEstimate> {
        let mut q = p.clone();
        q.batch.micro_batch = Some(mb);
        q.batch.grad_accum = Some((per_rank / mb as u64) as u32);
        if ac {
            q.params.insert(
                "activation_checkpointing".into(),
                serde_json::Value::Bool(true),
            );
        }
        memory(m, &q, hbm_gib)
    };
    let fits = |e: &MemEstimate| e.total <= e.hbm;
    let ac_on = p
        .params
        .get("activation_checkpointing")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut out = Vec::new();
    // Divisors of micro x accumulation below the micro-batch, largest first.
    let smaller = (1..micro)
        .rev()
        .filter(|d| per_rank.is_multiple_of(*d as u64))
        .find(|&d| with(d, ac_on).is_some_and(|e| fits(&e)));
    match smaller {
        Some(d) => out.push(format!(
            "micro {d} x accumulation {} at the same global batch ({})",
            per_rank / d as u64,
            gib(with(d, ac_on).map(|e| e.total).unwrap_or(0.0))
        )),
        None => out.push(format!(
            "no micro-batch at the same global batch{}",
            if ac_on {
                " even with checkpointing"
            } else {
                " without checkpointing"
            }
        )),
    }
    if !ac_on {
        let e = with(micro, true);
        match e {
            Some(e) if fits(&e) => out.push(format!(
                "activation checkpointing at micro {micro} ({})",
                gib(e.total)
            )),
            Some(e) => {
                let best = (1..micro)
                    .rev()
                    .filter(|d| per_rank.is_multiple_of(*d as u64))
                    .find(|&d| with(d, true).is_some_and(|e| fits(&e)));
                out.push(format!(
                    "not activation checkpointing at micro {micro} ({}){}",
                    gib(e.total),
                    best.map(|d| format!(
                        ", but with it micro {d} x accumulation {}",
                        per_rank / d as u64
                    ))
                    .unwrap_or_default()
                ));
            }
            None => {}
        }
    }
    Some(out.join("; "))
}

/// One point of the plan, as the check sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PointCheck {
    pub id: String,
    pub stage: String,
    pub model: Option<String>,
    pub nodes: u32,
    pub gpus: u32,
    pub micro_batch: Option<u32>,
    pub grad_accum: Option<u32>,
    pub global_batch: Option<u64>,
    pub tokens_per_step: Option<u64>,
    pub memory: Option<MemEstimate>,
    /// Estimated run time, seconds (`timing.rs`); None for a template it cannot estimate.
    pub est_time_s: Option<f64>,
    pub time: Option<JobTime>,
    /// The job's time limit, seconds, and the signal's lead before it.
    pub time_limit_s: Option<f64>,
}

/// One target of the sweep file and what it implies.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub index: usize,
    pub metric: String,
    pub model: Option<String>,
    pub nodes: Option<u32>,
    pub value: f64,
    pub unit: String,
    /// Throughput targets: model FLOPs per GPU needed, as a share of the GPU's peak.
    pub implied_mfu_pct: Option<f64>,
    /// Throughput targets in samples/s: the MFU if the figure were meant as tokens/s.
    pub implied_mfu_pct_as_tokens: Option<f64>,
    /// What the profile allows at most in the target's unit (100 % MFU, the line rate, 100 %).
    pub ceiling: Option<f64>,
    pub level: Level,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub campaign: String,
    pub profile: String,
    pub points: Vec<PointCheck>,
    pub targets: Vec<TargetCheck>,
    pub findings: Vec<Finding>,
    /// The `[timing]` figures the estimates used (defaults filled in).
    pub timing: TimingFigures,
    /// The collected campaign whose step times were used (`--measured`).
    pub measured: Option<String>,
    /// The jobs on the reservation (`[schedule]`).
    pub schedule: Option<ScheduleReport>,
}

impl CheckReport {
    /// Adds findings made elsewhere (the sweep file's unread keys), keeping the order.
    pub(crate) fn add(&mut self, more: Vec<Finding>) {
        self.findings.extend(more);
        self.findings
            .sort_by_key(|f| (f.level, !f.subject.starts_with("target ")));
    }

    pub(crate) fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }
}

fn gib(b: f64) -> String {
    format!("{:.1} GiB", b / GIB)
}

pub(crate) fn check(sweep: &LoadedSweep, profile: &Profile, plan: &Plan) -> CheckReport {
    check_with(sweep, profile, plan, None)
}

/// The check, with the step times of a collected campaign of the same cluster where it has
/// the same point.
pub(crate) fn check_with(
    sweep: &LoadedSweep,
    profile: &Profile,
    plan: &Plan,
    measured: Option<&Measured>,
) -> CheckReport {
    let mut findings = Vec::new();
    let mut points = Vec::new();
    // 0 is how a profile says "not known" (an import of an unknown GPU): no figure is divided
    // by it, and the check says what it could therefore not do.
    for (key, v, what) in [
        (
            "gpu.peak_bf16_tflops",
            profile.gpu.peak_bf16_tflops,
            "implied MFU",
        ),
        ("gpu.hbm_gib", profile.gpu.hbm_gib, "memory estimates"),
    ] {
        if v <= 0.0 {
            findings.push(Finding {
                level: Level::Warning,
                subject: format!("profile {}", profile.name),
                message: format!("{key} is 0 (not known): no {what} without it"),
                fix: None,
            });
        }
    }
    if let Some((gpu, cpu, other)) = profile.overlapping_cpus() {
        findings.push(Finding {
            level: Level::Warning,
            subject: format!("profile {}", profile.name),
            message: format!(
                "gpu_map[{gpu}].cpus: CPU {cpu} is also in GPU {other}'s list: ranks of both GPUs would share that core"
            ),
            fix: None,
        });
    }
    if let Some(gpu) = profile.without_smt_siblings() {
        findings.push(Finding {
            level: Level::Warning,
            subject: format!("profile {}", profile.name),
            message: format!(
                "gpu_map[{gpu}].cpus = {:?} names no SMT sibling although threads_per_core = {}: list logical CPUs, siblings included (`lscpu -e`), or the rank gets {} of its cores' threads",
                profile.gpu_map[gpu].cpus,
                profile.cpu.threads_per_core,
                if profile.cpu.threads_per_core == 2 { "half" } else { "a fraction" }
            ),
            fix: None,
        });
    }
    for p in &plan.points {
        let mem = p
            .model
            .as_ref()
            .filter(|_| profile.gpu.hbm_gib > 0.0)
            .and_then(|m| memory(m, p, profile.gpu.hbm_gib));
        if let (Some(b), Some(mb), Some(ga)) = (
            p.batch.global_batch,
            p.batch.micro_batch,
            p.batch.grad_accum,
        ) && b != mb as u64 * ga as u64 * p.batch.dp as u64
        {
            findings.push(Finding {
                level: Level::Error,
                subject: p.id.clone(),
                message: format!(
                    "global batch {b} != micro {mb} x accumulation {ga} x {} data-parallel ranks",
                    p.batch.dp
                ),
                fix: None,
            });
        }
        if let Some(e) = &mem {
            let what = format!(
                "{} per GPU of {} HBM (ZeRO-{}: weights {}, gradients {}, optimizer {}{}; activations {}{}; logits {})",
                gib(e.total),
                gib(e.hbm),
                e.zero_stage,
                gib(e.weights),
                gib(e.gradients),
                gib(e.optimizer),
                if e.live_parameters > 0.0 {
                    format!(", gathered parameters {}", gib(e.live_parameters))
                } else {
                    String::new()
                },
                gib(e.activations),
                if e.activation_checkpointing {
                    " with checkpointing"
                } else {
                    ""
                },
                gib(e.logits),
            );
            if e.total > e.hbm {
                let fix = p
                    .model
                    .as_ref()
                    .and_then(|m| oom_fixes(m, p, profile.gpu.hbm_gib));
                findings.push(Finding {
                    level: Level::Error,
                    subject: p.id.clone(),
                    message: format!("likely out of memory: estimated {what}"),
                    fix,
                });
            } else if e.total > MEM_WARN_FRACTION * e.hbm {
                findings.push(Finding {
                    level: Level::Warning,
                    subject: p.id.clone(),
                    message: format!("tight on memory: estimated {what}"),
                    fix: None,
                });
            }
        }
        points.push(PointCheck {
            id: p.id.clone(),
            stage: p.stage.clone(),
            model: p.model.as_ref().map(|m| m.name.clone()),
            nodes: p.batch.nodes,
            gpus: p.batch.gpus,
            micro_batch: p.batch.micro_batch,
            grad_accum: p.batch.grad_accum,
            global_batch: p.batch.global_batch,
            tokens_per_step: p.batch.tokens_per_step,
            memory: mem,
            est_time_s: None,
            time: None,
            time_limit_s: None,
        });
        let pc = points.last_mut().expect("just pushed");
        crate::timing::check_point(p, profile, measured, pc, &mut findings);
    }
    let schedule = sweep.spec.schedule.as_ref().map(|_| {
        let durations: Vec<(f64, bool)> = points
            .iter()
            .map(|pc| match (pc.est_time_s, pc.time_limit_s) {
                (Some(e), _) => (e, true),
                (None, Some(l)) => (l, false),
                (None, None) => (0.0, false),
            })
            .collect();
        let s = crate::schedule::schedule(&sweep.spec, plan, &durations, profile.slurm.nodes);
        crate::schedule::findings(&s, &mut findings);
        if s.nodes > profile.slurm.nodes {
            findings.push(Finding {
                level: Level::Warning,
                subject: "schedule".into(),
                message: format!(
                    "the reservation's {} nodes are more than the profile's {}",
                    s.nodes, profile.slurm.nodes
                ),
                fix: None,
            });
        }
        s
    });
    let mut targets = Vec::new();
    for (i, t) in sweep.spec.targets.iter().enumerate() {
        let tc = check_target(i, t, sweep, profile, plan);
        if tc.level != Level::Info {
            findings.push(Finding {
                level: tc.level,
                subject: format!("target {}", i + 1),
                message: tc.verdict.clone(),
                fix: None,
            });
        }
        targets.push(tc);
    }
    // The plan's own numbers first, then the points, each most severe first.
    findings.sort_by_key(|f| (f.level, !f.subject.starts_with("target ")));
    CheckReport {
        campaign: sweep.spec.name.clone(),
        profile: profile.name.clone(),
        points,
        targets,
        findings,
        timing: TimingFigures::of(profile),
        measured: measured.map(|m| m.dir.display().to_string()),
        schedule,
    }
}

fn describe(t: &TargetSpec) -> String {
    let mut s = format!("{} {} {}", t.metric.as_str(), fmt_num(t.value), t.unit());
    if let Some(m) = &t.model {
        s.push_str(&format!(" for {m}"));
    }
    if let Some(n) = t.nodes {
        s.push_str(&format!(" on {n} node{}", if n == 1 { "" } else { "s" }));
    }
    s
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn check_target(
    i: usize,
    t: &TargetSpec,
    sweep: &LoadedSweep,
    profile: &Profile,
    plan: &Plan,
) -> TargetCheck {
    let mut tc = TargetCheck {
        index: i + 1,
        metric: t.metric.as_str().into(),
        model: t.model.clone(),
        nodes: t.nodes,
        value: t.value,
        unit: t.unit().into(),
        implied_mfu_pct: None,
        implied_mfu_pct_as_tokens: None,
        ceiling: None,
        level: Level::Info,
        verdict: String::new(),
    };
    let what = describe(t);
    match t.metric {
        TargetMetric::Throughput => check_throughput(&mut tc, t, sweep, profile, plan),
        TargetMetric::Bandwidth => check_bandwidth(&mut tc, t, profile),
        TargetMetric::GpuUtil
        | TargetMetric::ScalingEfficiency
        | TargetMetric::BandwidthUtilization => {
            tc.ceiling = Some(100.0);
            (tc.level, tc.verdict) = if t.value > 100.0 {
                (Level::Error, format!("{what} is above 100 %"))
            } else {
                (Level::Info, format!("{what}: measured after the run"))
            };
        }
    }
    tc
}

/// A throughput target against the MFU it implies on the profile's GPUs, for the model and the
/// sequence and GPU count of the points it is about.
fn check_throughput(
    tc: &mut TargetCheck,
    t: &TargetSpec,
    sweep: &LoadedSweep,
    profile: &Profile,
    plan: &Plan,
) {
    let what = describe(t);
    if profile.gpu.peak_bf16_tflops <= 0.0 {
        tc.verdict = format!(
            "{what}: the profile gives no GPU peak (gpu.peak_bf16_tflops = 0), so no MFU to check it against"
        );
        return;
    }
    let Some(m) = t.model.as_deref().and_then(|m| sweep.model(m)) else {
        tc.verdict = format!("{what}: names no model, so no FLOPs to check it against");
        return;
    };
    // The sequence and GPU count of the matching points, else the model's and profile's.
    let matching: Vec<&Point> = plan
        .points
        .iter()
        .filter(|p| {
            p.model.as_ref().is_some_and(|pm| pm.name == m.name)
                && t.nodes.is_none_or(|n| p.batch.nodes == n)
                && t.stage.as_ref().is_none_or(|s| &p.stage == s)
        })
        .collect();
    let seq = matching
        .iter()
        .find_map(|p| p.batch.seq_len)
        .unwrap_or(m.seq_len);
    let gpus = matching
        .first()
        .map(|p| p.batch.gpus)
        .unwrap_or(t.nodes.unwrap_or(1) * profile.gpu.per_node) as f64;
    let per_token = m.train_flops_per_token(seq);
    let peak = gpus * profile.gpu.peak_bf16_tflops * 1e12;
    let tokens_per_s = if t.unit() == "tokens/s" {
        t.value
    } else {
        t.value * seq as f64
    };
    let mfu = 100.0 * tokens_per_s * per_token / peak;
    tc.implied_mfu_pct = Some(mfu);
    tc.ceiling = Some(if t.unit() == "tokens/s" {
        peak / per_token
    } else {
        peak / per_token / seq as f64
    });
    if t.unit() == "samples/s" {
        tc.implied_mfu_pct_as_tokens = Some(100.0 * t.value * per_token / peak);
    }
    let basis = format!(
        "{:.3e} FLOPs per token at sequence {seq} on {gpus} x {} TFLOP/s; 100 % of peak is {:.1} {}",
        per_token,
        profile.gpu.peak_bf16_tflops,
        tc.ceiling.unwrap_or(0.0),
        t.unit()
    );
    let as_tokens = tc
        .implied_mfu_pct_as_tokens
        .map(|x| format!("; read as tokens/s it would be {x:.2} % MFU"))
        .unwrap_or_default();
    (tc.level, tc.verdict) = if mfu > 100.0 {
        (
            Level::Error,
            format!("{what} is impossible: it implies {mfu:.0} % MFU ({basis}){as_tokens}"),
        )
    } else if mfu > MFU_WARN_PCT {
        (
            Level::Warning,
            format!(
                "{what} implies {mfu:.0} % MFU, above the {MFU_WARN_PCT:.0} % that tuned training reaches ({basis})"
            ),
        )
    } else {
        (
            Level::Info,
            format!("{what} implies {mfu:.1} % MFU ({basis})"),
        )
    };
}

/// A bandwidth target per node against the line rate of the profile's NICs.
fn check_bandwidth(tc: &mut TargetCheck, t: &TargetSpec, profile: &Profile) {
    let what = describe(t);
    let line_gbps: f64 = profile.nics.iter().map(|n| n.rate_gbps).sum();
    let value_gbps = if t.unit() == "GB/s" {
        t.value * 8.0
    } else {
        t.value
    };
    if line_gbps <= 0.0 {
        tc.verdict =
            format!("{what}: the profile lists no NIC, so no line rate to check it against");
        return;
    }
    tc.ceiling = Some(if t.unit() == "GB/s" {
        line_gbps / 8.0
    } else {
        line_gbps
    });
    let nics = profile
        .nics
        .iter()
        .map(|n| format!("{} {} Gb/s", n.name, fmt_num(n.rate_gbps)))
        .collect::<Vec<_>>()
        .join(" + ");
    (tc.level, tc.verdict) = if value_gbps > line_gbps {
        (
            Level::Error,
            format!(
                "{what} per node exceeds the line rate: {nics} = {} Gb/s",
                fmt_num(line_gbps)
            ),
        )
    } else {
        (
            Level::Info,
            format!(
                "{what} per node is {:.0} % of the line rate ({nics})",
                100.0 * value_gbps / line_gbps
            ),
        )
    };
}

/// The schedule: one row per stage, then the makespan and the critical path.
fn render_schedule(sc: &ScheduleReport) -> String {
    use crate::timing::hms;
    use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(140);
    t.set_header(["stage", "jobs", "start", "end", "time", "window", "fits"]);
    for s in &sc.stages {
        t.add_row(vec![
            s.stage.clone(),
            s.jobs.to_string(),
            s.start.clone(),
            s.end.clone(),
            hms(s.end_s - s.start_s),
            match (&s.window_start, &s.window_end) {
                (Some(a), Some(b)) => format!("{a} - {b}"),
                _ => "-".into(),
            },
            match s.fits_window {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]);
    }
    let unest = sc.jobs.iter().filter(|j| !j.estimated).count();
    format!(
        "{t}\nschedule on {} node(s){}: makespan {}{}; critical path {} (from {}){}\n",
        sc.nodes,
        sc.start
            .as_deref()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default(),
        hms(sc.makespan_s),
        match (sc.hours, sc.fits_reservation) {
            (Some(h), Some(true)) => format!(", inside the {h}-hour reservation"),
            (Some(h), _) => format!(", PAST the {h}-hour reservation"),
            _ => String::new(),
        },
        sc.critical_stages.join(" -> "),
        sc.critical_from,
        if unest > 0 {
            format!(" ({unest} job(s) without an estimate counted at their time limit)")
        } else {
            String::new()
        }
    )
}

/// The findings as a table, most severe first.
pub(crate) fn render(r: &CheckReport, max_rows: usize) -> String {
    use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
    let mut out = String::new();
    if !r.targets.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(140);
        t.set_header(["#", "target", "implied MFU", "ceiling", "verdict"]);
        for tc in &r.targets {
            let sel = [tc.model.clone(), tc.nodes.map(|n| format!("{n} nodes"))]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            t.add_row(vec![
                tc.index.to_string(),
                format!(
                    "{} {} {}{}",
                    tc.metric,
                    fmt_num(tc.value),
                    tc.unit,
                    if sel.is_empty() {
                        String::new()
                    } else {
                        format!(" ({sel})")
                    }
                ),
                tc.implied_mfu_pct
                    .map(|m| format!("{m:.1} %"))
                    .unwrap_or_else(|| "-".into()),
                tc.ceiling
                    .map(|c| format!("{c:.1} {}", tc.unit))
                    .unwrap_or_else(|| "-".into()),
                tc.level.as_str().to_string(),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    if let Some(sc) = &r.schedule {
        out.push_str(&render_schedule(sc));
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(140);
    t.set_header(["level", "subject", "finding"]);
    for f in r.findings.iter().take(max_rows) {
        t.add_row(vec![
            f.level.as_str().to_string(),
            f.subject.clone(),
            match &f.fix {
                Some(fix) => format!("{}. What fits: {fix}", f.message),
                None => f.message.clone(),
            },
        ]);
    }
    if !r.findings.is_empty() {
        out.push_str(&format!("{t}\n"));
    }
    if r.findings.len() > max_rows {
        out.push_str(&format!(
            "... {} more findings (--all lists them)\n",
            r.findings.len() - max_rows
        ));
    }
    out.push_str(&format!(
        "plan check of {} on {}: {} error(s), {} warning(s), {} point(s), {} target(s)\n",
        r.campaign,
        r.profile,
        r.count(Level::Error),
        r.count(Level::Warning),
        r.points.len(),
        r.targets.len()
    ));
    out
}
