//! `sweep collect`: every log of a campaign (or of any directory tree) parsed once, in parallel
//! and streamed, into tidy CSV tables (`nccl.csv`, `runs.csv`, `steps.csv`, `gpu.csv`,
//! `failures.csv`) and a summary. Incremental: a cache keyed by path, size, modification time and
//! parser version means an unchanged file is never read again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use compact_str::CompactString;
use indexmap::IndexMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::campaign::Manifest;
use crate::job_state::JobState;
use crate::parsers::failures::FailureClass;
use crate::parsers::{self, ParsedLog};
use crate::rows::{
    Avail, BindingRow, FailureRow, GpuRow, NcclColumns, NcclRow, NetRow, PowerRow, PreflightRow,
    RunRow, StepRow,
};

/// Bump when parsing or what is kept per file changes: cached results of older versions are
/// re-read.
pub const PARSER_VERSION: u32 = 11;
/// Per-file results, binary (postcard): a large tree's cache is tens of MB, which JSON takes
/// several times longer to write and read.
pub const CACHE_FILE: &str = ".collect-cache.bin";
/// Starts the cache file; postcard's encoding carries no field names, so a file of another
/// format must be told apart before it is decoded.
const CACHE_MAGIC: &[u8] = b"sweep collect cache, postcard\n";
/// The last report and what it was computed from (see `finish`).
pub const FINGERPRINT_FILE: &str = ".collect-fingerprint.json";
/// Every table `collect` writes.
pub const TABLES: &[&str] = &[
    "nccl.csv",
    "runs.csv",
    "steps.csv",
    "gpu.csv",
    "failures.csv",
    "binding.csv",
    "net.csv",
    "power.csv",
    "preflight.csv",
];

#[derive(Deserialize)]
struct Fingerprinted {
    fingerprint: String,
    report: Report,
}

/// The fingerprint file's bytes, a [`Fingerprinted`] around the report's JSON as made (one
/// serialisation of the report, for this file and for `--json`'s output both).
fn fingerprint_file(fingerprint: &str, report_json: &[u8]) -> Result<Vec<u8>> {
    let mut bytes = b"{\"fingerprint\":".to_vec();
    serde_json::to_writer(&mut bytes, fingerprint)?;
    bytes.extend_from_slice(b",\"report\":");
    bytes.extend_from_slice(report_json);
    bytes.push(b'}');
    Ok(bytes)
}

/// Warm-up steps excluded from steady-state figures when the point does not say
/// (`warmup_steps`) and the log does not mark them.
pub const DEFAULT_WARMUP_STEPS: usize = 2;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NcclRowOut {
    pub line: u64,
    pub collective: CompactString,
    pub size_bytes: u64,
    pub count: u64,
    pub dtype: CompactString,
    pub redop: CompactString,
    pub root: CompactString,
    pub placement: CompactString,
    pub time_us: f64,
    pub algbw_gbps: f64,
    pub busbw_gbps: f64,
    pub wrong: CompactString,
    /// Old nccl-tests builds: the `error` column (the largest error of the result).
    #[serde(default)]
    pub max_error: Option<f64>,
    pub nranks: Option<u64>,
    pub nodes: Option<u64>,
    pub gpu_name: CompactString,
    pub nccl_version: CompactString,
}

/// The lines a step row was read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepOrigin {
    /// The payload's own per-step records.
    Payload,
    /// DeepSpeed's `wall_clock_breakdown` timer lines, one per optimizer step.
    #[default]
    DeepSpeed,
    /// DeepSpeed's pipeline engine, one row per `steps: N ...` print.
    Pipeline,
    /// Megatron's iteration lines, one row per print.
    Megatron,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepOut {
    pub rank: Option<u32>,
    pub step: u64,
    pub warmup: Option<bool>,
    /// A step the software marks as not representative (the payload's flops-profiler step).
    #[serde(default)]
    pub excluded: bool,
    /// A row for the `span` steps up to `step` (DeepSpeed's pipeline engine prints once per
    /// `steps_per_print` steps, Megatron once per `log_interval` iterations); `None` for one
    /// step.
    #[serde(default)]
    pub span: Option<u64>,
    /// Which software's lines the row comes from.
    #[serde(default)]
    pub origin: StepOrigin,
    /// Named values of the step (`step_time_ms`, `fwd`, `bwd`, `samples_per_s`, ...); the
    /// names inline (tens of thousands of steps, each with several).
    pub values: Vec<(CompactString, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GpuAgg {
    pub node: String,
    pub gpu: String,
    pub name: String,
    pub samples: u64,
    pub util_sum: f64,
    pub util_n: u64,
    pub util_min: Option<f64>,
    pub util_max: Option<f64>,
    pub mem_used_max_mib: Option<f64>,
    pub power_sum: f64,
    pub power_n: u64,
    pub power_max: Option<f64>,
    pub temp_max: Option<f64>,
    pub mem_temp_max: Option<f64>,
}

/// One rank's binding against the profile's (from the rank wrapper's `sweep-bind` line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BindOut {
    pub node: String,
    pub rank: Option<u32>,
    pub local_rank: Option<u32>,
    pub cpus: String,
    pub expect_cpus: String,
    pub gpu: String,
    pub expect_gpu: String,
    pub nic: String,
    pub cpus_ok: bool,
    pub gpu_ok: bool,
}

fn same_cpus(a: &str, b: &str) -> bool {
    match (
        crate::profile::parse_cpulist(a),
        crate::profile::parse_cpulist(b),
    ) {
        (Ok(mut x), Ok(mut y)) => {
            x.sort_unstable();
            y.sort_unstable();
            x == y
        }
        _ => a == b,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailOut {
    pub line: u64,
    pub class: FailureClass,
    pub kind: String,
    pub message: String,
    pub weak: bool,
}

/// What NCCL's debug output says of a file or a run (`NCCL_DEBUG=INFO`/`WARN`): runs.csv's
/// `nccl_*` columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NcclFacts {
    /// Distinct versions (`2.28.9+cuda13.0`), else the nccl-tests banner's library.
    pub versions: Vec<String>,
    /// The largest communicator and node count of the init lines (else of nccl-tests' device
    /// lines).
    pub nranks: Option<u64>,
    pub nodes: Option<u64>,
    /// Network plugins in use (`IB`, `Socket`, `OFI`, ...), NICs (`mlx5_0:1/IB`), channel
    /// transports (`P2P/CUMEM`, `NET/IB/GDRDMA`, `SHM`, ...), each distinct.
    pub networks: Vec<String>,
    pub nics: Vec<String>,
    pub transports: Vec<String>,
    /// NCCL's own debug lines (`NCCL INFO`, `NCCL WARN`): none, no counts.
    pub debug_lines: u64,
    /// `Init COMPLETE` lines, `NCCL WARN` lines.
    pub init_complete: u64,
    pub warns: u64,
    /// NCCL error codes named (`ncclRemoteError`, ...), each distinct.
    pub errors: Vec<String>,
}

impl NcclFacts {
    fn is_empty(&self) -> bool {
        *self == NcclFacts::default()
    }

    /// Adds another file's facts: lists united, counts summed, the larger sizes.
    fn add(&mut self, o: &NcclFacts) {
        for (mine, theirs) in [
            (&mut self.versions, &o.versions),
            (&mut self.networks, &o.networks),
            (&mut self.nics, &o.nics),
            (&mut self.transports, &o.transports),
            (&mut self.errors, &o.errors),
        ] {
            for x in theirs {
                if !mine.contains(x) {
                    mine.push(x.clone());
                }
            }
        }
        self.nranks = self.nranks.max(o.nranks);
        self.nodes = self.nodes.max(o.nodes);
        self.debug_lines += o.debug_lines;
        self.init_complete += o.init_complete;
        self.warns += o.warns;
    }

    /// runs.csv's NCCL columns (lists joined by `;`; the counts empty when the run printed no
    /// NCCL debug line).
    fn row_columns(&self) -> NcclColumns {
        let count = |n: u64| (self.debug_lines > 0).then_some(n);
        NcclColumns {
            nccl_version: self.versions.join(";"),
            nccl_nranks: self.nranks,
            nccl_nodes: self.nodes,
            nccl_net: self.networks.join(";"),
            nccl_nics: self.nics.join(";"),
            nccl_transports: self.transports.join(";"),
            nccl_init_complete: count(self.init_complete),
            nccl_warns: count(self.warns),
            nccl_errors: self.errors.join(";"),
        }
    }
}

/// One `dcgmi dmon` row: GPU, power (W), GPU temperature, memory temperature (°C).
pub type DcgmSample = (String, Option<f64>, Option<f64>, Option<f64>);

/// What one file contributes, kept in the cache.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileResult {
    pub size: u64,
    pub mtime_ns: u128,
    pub version: u32,
    pub bytes: u64,
    pub lines: u64,
    pub nccl: Vec<NcclRowOut>,
    pub nccl_avg_busbw: Vec<f64>,
    /// What the file's NCCL debug output (or an nccl-tests banner) says of NCCL.
    #[serde(default)]
    pub nccl_facts: NcclFacts,
    pub steps: Vec<StepOut>,
    pub gpus: Vec<GpuAgg>,
    pub failures: Vec<FailOut>,
    /// The primary failure of this file (rule of `parsers::failures`).
    pub primary: Option<FailOut>,
    pub ds_running_avg_samples_per_s: Option<f64>,
    pub ds_max_mem_gib: Option<f64>,
    pub ds_global_batch: Option<u64>,
    pub profiler_tflops_per_gpu: Option<f64>,
    pub profiler_samples_per_s: Option<f64>,
    pub hf_samples_per_s: Option<f64>,
    /// The payload's own summary (`SWEEP_METRICS` `summary` record), by field.
    #[serde(default)]
    pub payload_summary: Vec<(String, f64)>,
    #[serde(default)]
    pub binds: Vec<BindOut>,
    /// Values of the user's patterns, by pattern name.
    #[serde(default)]
    pub user: Vec<(String, Vec<f64>)>,
    /// DeepSpeed's wall_clock_breakdown after warm-up: gradient all-reduce time and forward +
    /// backward compute time, summed (ms).
    #[serde(default)]
    pub nics: Vec<parsers::telemetry::NicDelta>,
    #[serde(default)]
    pub preflight: Vec<parsers::telemetry::PreflightRecord>,
    /// (node, source, watts or None for "not available")
    #[serde(default)]
    pub power: Vec<(String, String, Option<f64>)>,
    /// dcgmi rows: (gpu, power W, GPU temperature, memory temperature)
    #[serde(default)]
    pub dcgm: Vec<DcgmSample>,
    #[serde(default)]
    pub ds_allreduce_ms: f64,
    #[serde(default)]
    pub ds_compute_ms: f64,
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    version: u32,
    /// The user patterns the cached results were parsed with (their JSON).
    #[serde(default)]
    patterns: String,
    files: BTreeMap<String, FileResult>,
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn class_rank(c: FailureClass) -> usize {
    // Across the files of one job, a root cause printed by the ranks (NCCL error, Python
    // exception) outranks the time-limit or cancel that Slurm printed afterwards.
    match c {
        FailureClass::Hardware => 0,
        FailureClass::Oom => 1,
        FailureClass::NodeFailure => 2,
        FailureClass::Preflight => 3,
        FailureClass::Nccl => 4,
        FailureClass::PythonError => 5,
        FailureClass::Timeout => 6,
        FailureClass::Cancelled => 7,
        FailureClass::Unknown => 8,
    }
}

fn fail_out(f: &parsers::failures::Failure) -> FailOut {
    FailOut {
        line: f.line,
        class: f.class,
        kind: f.kind.to_string(),
        message: f.message.clone(),
        weak: f.weak,
    }
}

/// Node name from a sampler file name (`gpu-<node>.csv`).
fn node_from_name(name: &str) -> String {
    name.strip_prefix("gpu-")
        .and_then(|s| s.strip_suffix(".csv"))
        .unwrap_or("")
        .to_string()
}

/// Reduces one parsed log to what the tables need.
pub fn summarize(log: &ParsedLog, file_name: &str) -> FileResult {
    let mut r = FileResult {
        bytes: log.bytes,
        lines: log.lines,
        ..Default::default()
    };
    r.user = log.user.clone();
    node_telemetry(log, &mut r);
    r.nccl_facts = nccl_facts(log);
    nccl_test_rows(log, &mut r);
    payload_collective_rows(log, &mut r.nccl);
    // The payload's own per-step records come first: they are synchronised, all-rank timings.
    payload_steps(log, &mut r.steps);
    if let Some(s) = log.payload.summary() {
        r.payload_summary = s.values.clone();
    }
    r.binds = binds(log);
    deepspeed_comm_compute(log, &mut r);
    deepspeed_steps(log, &mut r.steps);
    megatron_steps(log, &mut r.steps);
    throughput_figures(log, &mut r);
    r.gpus = gpu_aggregates(log, file_name);
    failures_and_warnings(log, &mut r);
    r
}

/// Row fields are short texts: inline, not one allocation each.
fn short_text(t: Option<&str>) -> CompactString {
    t.map(CompactString::from).unwrap_or_default()
}

fn short_int(x: Option<u64>) -> Option<CompactString> {
    x.map(|x| CompactString::from(itoa::Buffer::new().format(x)))
}

/// NIC counters, preflight, power and DCGM readings of the node the log ran on.
fn node_telemetry(log: &ParsedLog, r: &mut FileResult) {
    r.nics = parsers::telemetry::nic_deltas(&log.telemetry.net);
    r.preflight = log.telemetry.preflight.clone();
    r.power = log
        .telemetry
        .power
        .iter()
        .map(|p| (p.node.clone(), p.source.clone(), p.watts))
        .collect();
    r.dcgm = log
        .telemetry
        .dcgm
        .iter()
        .map(|d| {
            let g = |k: &str| d.values.iter().find(|(n, _)| n == k).and_then(|(_, v)| *v);
            (d.gpu.clone(), g("POWER"), g("TMPTR"), g("MMTMP"))
        })
        .collect();
}

/// NCCL's own debug output first, the nccl-tests headers where it is silent.
fn nccl_facts(log: &ParsedLog) -> NcclFacts {
    let d = &log.nccl_debug;
    let mut versions = d.versions.clone();
    if versions.is_empty() {
        versions.extend(log.nccl_tests.iter().find_map(|t| t.nccl_version.clone()));
    }
    let largest = |of: fn(&parsers::nccl_tests::NcclRun) -> Option<usize>| {
        log.nccl_tests.iter().filter_map(of).max().map(|n| n as u64)
    };
    NcclFacts {
        versions,
        nranks: d.nranks.or(largest(|t| t.nranks)),
        nodes: d.nnodes.or(largest(|t| t.nodes)),
        networks: d.networks.clone(),
        nics: d.nics.clone(),
        transports: d.channel_transports.clone(),
        debug_lines: d.info_lines + d.warn_count,
        init_complete: d.init_complete,
        warns: d.warn_count,
        errors: d.error_codes.iter().map(|e| e.code.clone()).collect(),
    }
}

/// The nccl-tests runs' rows and average bus bandwidths.
fn nccl_test_rows(log: &ParsedLog, r: &mut FileResult) {
    for run in &log.nccl_tests {
        if let Some(a) = run.avg_busbw_gbps {
            r.nccl_avg_busbw.push(a);
        }
        let gpu_name = short_text(run.gpu_name.as_deref());
        let nccl_version = short_text(
            run.nccl_version
                .as_deref()
                .or(log.nccl_debug.version.as_deref()),
        );
        for row in &run.rows {
            r.nccl.push(NcclRowOut {
                line: row.line,
                collective: short_text(row.collective.as_deref().or(run.collective.as_deref())),
                size_bytes: row.size_bytes,
                count: row.count,
                dtype: row.dtype.as_str().into(),
                redop: short_text(row.redop.as_deref()),
                root: row
                    .root
                    .map(|x| CompactString::from(itoa::Buffer::new().format(x)))
                    .unwrap_or_default(),
                placement: match row.placement {
                    parsers::nccl_tests::Placement::OutOfPlace => "out_of_place".into(),
                    parsers::nccl_tests::Placement::InPlace => "in_place".into(),
                },
                time_us: row.time_us,
                algbw_gbps: row.algbw_gbps,
                busbw_gbps: row.busbw_gbps,
                wrong: short_int(row.wrong).unwrap_or_else(|| {
                    if row.error_flagged {
                        "error".into()
                    } else {
                        CompactString::default()
                    }
                }),
                max_error: row.max_error,
                nranks: run.nranks.map(|x| x as u64).or(log.nccl_debug.nranks),
                nodes: run.nodes.map(|x| x as u64).or(log.nccl_debug.nnodes),
                gpu_name: gpu_name.clone(),
                nccl_version: nccl_version.clone(),
            });
        }
    }
}

/// The rows of the collectives the payload timed itself.
fn payload_collective_rows(log: &ParsedLog, nccl: &mut Vec<NcclRowOut>) {
    for run in &log.payload.collectives {
        let gpu_name = short_text(run.gpu_name.as_deref());
        let nccl_version = short_text(run.nccl_version.as_deref());
        for row in &run.rows {
            nccl.push(NcclRowOut {
                line: row.line,
                collective: short_text(row.collective.as_deref()),
                size_bytes: row.size_bytes,
                count: row.count,
                dtype: row.dtype.as_str().into(),
                placement: "out_of_place".into(),
                time_us: row.time_us,
                algbw_gbps: row.algbw_gbps,
                busbw_gbps: row.busbw_gbps,
                wrong: short_int(row.wrong).unwrap_or_default(),
                nranks: run.nranks.map(|x| x as u64),
                nodes: run.nodes.map(|x| x as u64),
                gpu_name: gpu_name.clone(),
                nccl_version: nccl_version.clone(),
                ..Default::default()
            });
        }
    }
}

/// The payload's per-step records, its step time in milliseconds like the other sources'.
fn payload_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) {
    for p in &log.payload.steps {
        let mut values: Vec<(CompactString, f64)> = Vec::with_capacity(p.values.len());
        if let Some(t) = p.get("step_time_s") {
            values.push(("step_time_ms".into(), t * 1000.0));
        }
        values.extend(
            p.values
                .iter()
                .filter(|(k, _)| k != "step_time_s")
                .map(|(k, v)| (k.as_str().into(), *v)),
        );
        steps.push(StepOut {
            rank: Some(0),
            step: p.step,
            warmup: Some(p.warmup),
            excluded: p.excluded,
            span: None,
            origin: StepOrigin::Payload,
            values,
        });
    }
}

/// Each task's CPU, GPU and NIC binding, checked against the expected one.
fn binds(log: &ParsedLog) -> Vec<BindOut> {
    log.payload
        .binds
        .iter()
        .map(|b| BindOut {
            node: b.node.clone(),
            rank: b.rank,
            local_rank: b.local_rank,
            cpus: b.cpus.clone(),
            expect_cpus: b.expect_cpus.clone(),
            gpu: b.gpu.clone(),
            expect_gpu: b.expect_gpu.clone(),
            nic: b.nic.clone(),
            cpus_ok: b.expect_cpus.is_empty() || same_cpus(&b.cpus, &b.expect_cpus),
            // With one GPU visible per task, the task's device must be the expected one.
            gpu_ok: b.expect_gpu.is_empty() || b.gpu == b.expect_gpu,
        })
        .collect()
}

/// Communication against computation from the step-level timers (not the micro-step ones):
/// `bwd_allreduce` is the gradient reduction, `fwd` + `bwd_inner` (else `bwd`) the compute.
fn deepspeed_comm_compute(log: &ParsedLog, r: &mut FileResult) {
    for t in log
        .deepspeed
        .timers
        .iter()
        .filter(|t| t.get("fwd").is_some())
        .skip(DEFAULT_WARMUP_STEPS)
    {
        if let (Some(ar), Some(f)) = (t.get("bwd_allreduce"), t.get("fwd")) {
            let b = t
                .get("bwd_inner")
                .or(t.get("bwd").map(|b| b - ar))
                .unwrap_or(0.0);
            r.ds_allreduce_ms += ar;
            r.ds_compute_ms += f + b;
        }
    }
}

/// DeepSpeed wall_clock_breakdown: one `fwd | bwd | step` line per optimizer step; the
/// step's time is their sum (data loading excluded). Not when the payload timed the steps.
/// The pipeline engine is read apart (see `pipeline_steps`). Megatron-DeepSpeed prints
/// Megatron's iteration lines besides: their elapsed time per iteration is then the step
/// series (the two together would count each step twice).
fn deepspeed_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) {
    let mut step = 0;
    let own_steps = !log.payload.steps.is_empty()
        || log
            .megatron
            .iterations
            .iter()
            .any(|i| i.elapsed_ms_per_iteration.is_some());
    let pipe = !own_steps && pipeline_steps(log, steps);
    for t in log.deepspeed.timers.iter().filter(|_| !own_steps && !pipe) {
        if let (Some(f), Some(b), Some(s)) = (t.get("fwd"), t.get("bwd"), t.get("step")) {
            step += 1;
            let mut values = Vec::with_capacity(1 + t.timers.len());
            values.push(("step_time_ms".into(), f + b + s));
            values.extend(t.timers.iter().cloned());
            steps.push(StepOut {
                rank: t.rank,
                step,
                warmup: None,
                excluded: false,
                span: None,
                origin: StepOrigin::DeepSpeed,
                values,
            });
        }
    }
}

/// Megatron's iteration lines, each an average over the iterations it spans.
fn megatron_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) {
    let iters = &log.megatron.iterations;
    for (k, it) in iters.iter().enumerate() {
        let mut values: Vec<(CompactString, f64)> = Vec::new();
        if let Some(v) = it.elapsed_ms_per_iteration {
            values.push(("step_time_ms".into(), v));
        }
        if let Some(v) = megatron_samples_per_s(it) {
            values.push(("samples_per_s".into(), v));
        }
        if let Some(v) = it.tflops.or(it.tflops_per_gpu) {
            values.push(("tflops_per_gpu".into(), v));
        }
        for (k, v) in &it.losses {
            values.push((k.as_str().into(), *v));
        }
        steps.push(StepOut {
            rank: None,
            step: it.iteration,
            warmup: None,
            excluded: false,
            span: Some(megatron_span(iters, k)),
            origin: StepOrigin::Megatron,
            values,
        });
    }
}

/// The frameworks' own throughput, memory and FLOPs figures.
fn throughput_figures(log: &ParsedLog, r: &mut FileResult) {
    r.ds_running_avg_samples_per_s = log.deepspeed.final_running_avg_samples_per_sec();
    r.ds_max_mem_gib = log
        .deepspeed
        .memory
        .iter()
        .map(|m| m.max_ma_gb)
        .chain(
            log.deepspeed
                .throughput
                .iter()
                .filter_map(|t| t.max_mem_allocated_gb),
        )
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    r.ds_global_batch = log.deepspeed.config().and_then(|c| c.train_batch_size);
    // DeepSpeed profiles one step; with gradient accumulation it prints the profile once per
    // micro-step of it (the last one labelled with the next step), the latencies accumulating
    // while the FLOPs stay those of one micro-batch: only the first print is consistent.
    if let Some(p) = log.deepspeed.flops_profiles.first() {
        r.profiler_tflops_per_gpu = p.tflops_per_gpu;
        r.profiler_samples_per_s = p.samples_per_second;
    }
    r.hf_samples_per_s = log
        .hf
        .train_summary()
        .and_then(|h| h.get("train_samples_per_second"));
}

/// Per-GPU utilisation, memory, power and temperature over the log's telemetry samples.
fn gpu_aggregates(log: &ParsedLog, file_name: &str) -> Vec<GpuAgg> {
    let node = node_from_name(file_name);
    // Few GPUs, many samples: found by a linear search on the sample's own fields, the key
    // text made once per GPU.
    let mut gpus: Vec<(Option<u32>, Option<&str>, GpuAgg)> = Vec::new();
    // A sample with no utilisation, memory use, power or temperature is an inventory line
    // (the provenance block's `--query-gpu=index,name,...`), not telemetry.
    let telemetry = log.gpu_samples.iter().filter(|s| {
        s.util_gpu_pct.is_some()
            || s.mem_used_mib.is_some()
            || s.power_draw_w.is_some()
            || s.temp_gpu_c.is_some()
    });
    for s in telemetry {
        let bus = if s.index.is_some() {
            None
        } else {
            s.bus_id.as_deref()
        };
        let at = match gpus.iter().position(|(i, b, _)| *i == s.index && *b == bus) {
            Some(at) => at,
            None => {
                let key = s
                    .index
                    .map(|i| i.to_string())
                    .or_else(|| bus.map(str::to_string))
                    .unwrap_or_else(|| "?".into());
                let agg = GpuAgg {
                    node: node.clone(),
                    gpu: key,
                    name: s.name.as_deref().unwrap_or_default().to_string(),
                    ..Default::default()
                };
                gpus.push((s.index, bus, agg));
                gpus.len() - 1
            }
        };
        let g = &mut gpus[at].2;
        g.samples += 1;
        if let Some(u) = s.util_gpu_pct {
            g.util_sum += u;
            g.util_n += 1;
            g.util_min = Some(g.util_min.map_or(u, |m: f64| m.min(u)));
            g.util_max = Some(g.util_max.map_or(u, |m: f64| m.max(u)));
        }
        if let Some(m) = s.mem_used_mib {
            g.mem_used_max_mib = Some(g.mem_used_max_mib.map_or(m, |x: f64| x.max(m)));
        }
        if let Some(p) = s.power_draw_w {
            g.power_sum += p;
            g.power_n += 1;
            g.power_max = Some(g.power_max.map_or(p, |x: f64| x.max(p)));
        }
        if let Some(t) = s.temp_gpu_c {
            g.temp_max = Some(g.temp_max.map_or(t, |x: f64| x.max(t)));
        }
        if let Some(t) = s.temp_mem_c {
            g.mem_temp_max = Some(g.mem_temp_max.map_or(t, |x: f64| x.max(t)));
        }
    }
    gpus.into_iter().map(|(_, _, g)| g).collect()
}

/// Every failure found, the primary one with its rule's class, and the parse warnings.
fn failures_and_warnings(log: &ParsedLog, r: &mut FileResult) {
    r.failures = log.failures.iter().map(fail_out).collect();
    r.primary = log.primary_failure().map(|p| fail_out(&p.evidence));
    if let Some(p) = &mut r.primary {
        // The primary's class is the rule's verdict, which may differ from its evidence line's.
        if let Some(pf) = log.primary_failure() {
            p.class = pf.class;
        }
    }
    r.warnings = log
        .warnings
        .iter()
        .map(|w| format!("line {}: {}", w.line, w.message))
        .collect();
    if log.warnings_dropped > 0 {
        r.warnings
            .push(format!("{} more warnings not shown", log.warnings_dropped));
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    percentile(v, 50.0)
}

/// Nearest-rank percentile of finite values.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

fn mean(v: &[f64]) -> Option<f64> {
    let s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
}

/// A source of the collection: a file, and the run (job or file) it belongs to.
#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    key: String,
    run: usize,
}

/// One row of `runs.csv`: a job of a campaign, or a file of `--logs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// Telemetry sources a job's files say are missing (`dcgm-<node>.unavailable`, ...).
    #[serde(skip)]
    pub unavailable: Vec<String>,
    pub run: String,
    pub stage: String,
    pub params: IndexMap<String, Json>,
    pub dir: PathBuf,
    pub status: String,
    #[serde(with = "crate::rows::class_text")]
    pub failure_class: Option<FailureClass>,
    pub failure_evidence: String,
    pub figures: IndexMap<String, Option<f64>>,
    /// What the run's NCCL debug output says (runs.csv's `nccl_*` columns); left out of the
    /// JSON report where it says nothing (most runs of a large tree).
    #[serde(default, skip_serializing_if = "NcclFacts::is_empty")]
    pub nccl: NcclFacts,
    pub sources: Vec<String>,
}

#[derive(Default)]
pub struct Options {
    pub out: PathBuf,
    pub force: bool,
    pub progress: bool,
    /// `[[collect.pattern]]`s; a campaign's own (its `sweep.toml`) are added to these.
    pub patterns: Vec<crate::spec::PatternSpec>,
    /// Render the report as pretty JSON ([`Report::json`]) while the tables are written.
    pub render_json: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub out: PathBuf,
    pub files: usize,
    pub parsed: usize,
    pub cached: usize,
    pub bytes_parsed: u64,
    pub runs: Vec<Run>,
    pub warnings: Vec<String>,
    pub tables: Vec<String>,
    /// With [`Options::render_json`], the report's own pretty JSON (what
    /// `serde_json::to_vec_pretty` of it gives), made beside the tables for the fingerprint
    /// file: megabytes for a large tree, serialised once, not again for `collect --json`.
    /// `None` when the last report stood (nothing was parsed).
    #[serde(skip)]
    pub json: Option<Vec<u8>>,
}

const SKIP_FILES: &[&str] = &[
    "job.sbatch",
    "point.json",
    "ds_config.json",
    "rank-wrapper.sh",
    "telemetry.sh",
    "preflight-probe.sh",
    "started",
    "finished",
];

fn is_log_candidate(name: &str) -> bool {
    !(SKIP_FILES.contains(&name)
        || name.ends_with(".tmp")
        || name.starts_with('.')
        || name.ends_with(".unavailable"))
}

/// Collects a campaign directory (one run per job).
pub fn collect_campaign(dir: &Path, opts: &Options) -> Result<Report> {
    let m = Manifest::load(dir)?;
    // The logs are still worth reading when the state is not; but no job may then pass for
    // `unsubmitted` without a word.
    let (state, state_warning) = match crate::state::State::load(dir) {
        Ok(s) => (s, None),
        Err(e) => (
            crate::state::State::default(),
            Some(format!(
                "{e:#}; job states below come from the job markers only (`unknown` where there is none)"
            )),
        ),
    };
    let mut runs = Vec::new();
    let mut sources = Vec::new();
    for job in &m.jobs {
        let jd = dir.join(&job.dir);
        let point: Json = std::fs::read_to_string(jd.join("point.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Json::Null);
        let mut params: IndexMap<String, Json> = IndexMap::new();
        if let Some(p) = point.get("params").and_then(|p| p.as_object()) {
            for (k, v) in p {
                params.insert(k.clone(), v.clone());
            }
        }
        if let Some(m) = point.get("model").filter(|m| m.is_object()) {
            params.insert("__model".into(), m.clone());
        }
        let js = state.jobs.get(&job.id).cloned().unwrap_or_default();
        let mut status = js.state.clone().unwrap_or(if state_warning.is_some() {
            JobState::Unknown
        } else {
            JobState::Unsubmitted
        });
        if let Some(sid) = &js.slurm_id
            && let Some(f) = crate::markers::read_finished(&jd).filter(|f| &f.slurm_job_id == sid)
        {
            status = crate::markers::state_from_marker(&jd, &f).0;
        }
        let idx = runs.len();
        let mut unavailable = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&jd) {
            let mut names: Vec<_> = rd.flatten().filter(|e| e.path().is_file()).collect();
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let name = e.file_name().to_string_lossy().to_string();
                if name.ends_with(".unavailable") {
                    unavailable.push(name.clone());
                }
                if is_log_candidate(&name) {
                    sources.push(Source {
                        key: format!("{}/{name}", job.dir),
                        path: e.path(),
                        run: idx,
                    });
                }
            }
        }
        runs.push(Run {
            run: job.id.clone(),
            stage: job.stage.clone(),
            params,
            dir: jd,
            status: status.to_string(),
            unavailable,
            ..Default::default()
        });
    }
    let profile = crate::profile::Profile::parse(
        &dir.join("profile.toml"),
        &std::fs::read_to_string(dir.join("profile.toml")).unwrap_or_default(),
    )
    .ok();
    // The campaign's own `[[collect.pattern]]`s, from its copy of the sweep file.
    let mut patterns = opts.patterns.clone();
    if let Ok(sw) = crate::spec::load(&dir.join("sweep.toml")) {
        for p in sw.spec.collect.patterns {
            if !patterns.iter().any(|q| q.name == p.name) {
                patterns.push(p);
            }
        }
    }
    let opts = Options {
        out: opts.out.clone(),
        force: opts.force,
        progress: opts.progress,
        patterns,
        render_json: opts.render_json,
    };
    let mut report = finish(runs, sources, &opts, profile.as_ref())?;
    if let Some(w) = state_warning {
        report.warnings.insert(0, w);
        if report.json.is_some() {
            report.json = serde_json::to_vec_pretty(&report).ok();
        }
    }
    Ok(report)
}

/// Collects an arbitrary directory tree of logs (one run per file).
pub fn collect_logs(root: &Path, opts: &Options) -> Result<Report> {
    let out_abs = std::fs::canonicalize(&opts.out).ok();
    let mut runs = Vec::new();
    let mut sources = Vec::new();
    // Each directory's entries sorted by name, depth first: the paths come out in `Path`
    // order, with no sort of the whole list after (its component-wise comparisons took longer
    // than the walk on a tree of 10,000 files).
    let files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
            // The output is a directory: files need no canonical path (one `realpath` per
            // file of a large tree costs more than the walk).
            let is_out = e.file_type().is_dir()
                && out_abs
                    .as_ref()
                    .is_some_and(|o| std::fs::canonicalize(e.path()).ok().as_ref() == Some(o));
            !hidden && !is_out
        })
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    debug_assert!(files.is_sorted());
    for p in files {
        let key = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .to_string();
        let idx = runs.len();
        runs.push(Run {
            run: key.clone(),
            status: "-".into(),
            dir: p.parent().map(|x| x.to_path_buf()).unwrap_or_default(),
            ..Default::default()
        });
        sources.push(Source {
            path: p,
            key,
            run: idx,
        });
    }
    finish(runs, sources, opts, None)
}

/// What the tables depend on: the parser, the patterns, the profile, every file's size and
/// modification time, every run's status and parameters.
fn fingerprint(
    runs: &[Run],
    sources: &[Source],
    metas: &[Option<(u64, u128)>],
    pattern_key: &str,
    profile: Option<&crate::profile::Profile>,
) -> Result<String> {
    let mut text = format!(
        "{PARSER_VERSION}\n{pattern_key}\n{}\n",
        profile.map(|p| p.name.as_str()).unwrap_or("")
    );
    for (s, m) in sources.iter().zip(metas) {
        text.push_str(&format!("{}\t{}\t{:?}\n", s.key, s.run, m));
    }
    for r in runs {
        text.push_str(&format!(
            "{}\t{}\t{}\t{:?}\n",
            r.run,
            r.status,
            serde_json::to_string(&r.params)?,
            r.unavailable
        ));
    }
    Ok(format!(
        "{:016x}{:08x}",
        crate::expand::fnv1a(text.as_bytes()),
        text.len()
    ))
}

/// The last collect's report, when its fingerprint is this one and its tables are all there.
fn current_report(opts: &Options, fp_path: &Path, fingerprint: &str) -> Option<Report> {
    if !opts.force
        && TABLES.iter().all(|t| opts.out.join(t).exists())
        && let Some(mut last) = std::fs::read(fp_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Fingerprinted>(&b).ok())
            .filter(|f| f.fingerprint == fingerprint)
            .map(|f| f.report)
    {
        last.cached = last.files;
        last.parsed = 0;
        last.bytes_parsed = 0;
        last.out = opts.out.clone();
        return Some(last);
    }
    None
}

/// The parse cache of the last collect, empty when forced or made by another parser or
/// other patterns.
fn load_cache(opts: &Options, cache_path: &Path, pattern_key: String) -> Cache {
    let cache: Cache = if opts.force {
        Cache::default()
    } else {
        std::fs::read(cache_path)
            .ok()
            .and_then(|b| postcard::from_bytes(b.strip_prefix(CACHE_MAGIC)?).ok())
            .unwrap_or_default()
    };
    if cache.version != PARSER_VERSION || cache.patterns != pattern_key {
        return Cache {
            version: PARSER_VERSION,
            patterns: pattern_key,
            files: BTreeMap::new(),
        };
    }
    cache
}

/// The files not in the cache as they are now, largest first.
fn changed_files(sources: &[Source], metas: &[Option<(u64, u128)>], cache: &Cache) -> Vec<usize> {
    let mut todo = Vec::new();
    for (i, (s, m)) in sources.iter().zip(metas).enumerate() {
        let Some((size, mt)) = m else { continue };
        let fresh = cache
            .files
            .get(&s.key)
            .is_some_and(|c| c.size == *size && c.mtime_ns == *mt && c.version == PARSER_VERSION);
        if !fresh {
            todo.push(i);
        }
    }
    // Largest first, each core taking the next file when done with one (list scheduling): the
    // big logs start at once, spread over the cores, and the small files fill the gaps; rayon's
    // splitting of the list in halves could leave a big log last, on one core, with the other
    // idle.
    todo.sort_by_key(|&i| std::cmp::Reverse(metas[i].map_or(0, |m| m.0)));
    todo
}

/// Parses and summarizes the files `todo` lists, on every core, in the order of the list.
fn parse_files(
    sources: &[Source],
    metas: &[Option<(u64, u128)>],
    todo: &[usize],
    parse_opts: &parsers::ParseOptions,
    progress: bool,
    total_bytes: u64,
) -> Vec<(usize, usize, Result<FileResult, String>)> {
    let bar = (progress && !todo.is_empty()).then(|| {
        let b = indicatif::ProgressBar::new(total_bytes);
        if let Ok(st) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ) {
            b.set_style(st);
        }
        b
    });
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parsed: Vec<(usize, usize, Result<FileResult, String>)> = rayon::broadcast(|_| {
        let mut mine = Vec::new();
        loop {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&i) = todo.get(k) else { break };
            let s = &sources[i];
            let name = s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let res = metas[i]
                .map_or_else(
                    || parsers::parse_file_with(&s.path, parse_opts),
                    |(size, _)| parsers::parse_file_sized(&s.path, size, parse_opts),
                )
                .map(|log| summarize(&log, &name))
                .map_err(|e| format!("{}: cannot read: {e}", s.path.display()));
            if let (Some(b), Some((size, _))) = (&bar, metas[i]) {
                b.inc(size);
            }
            mine.push((k, i, res));
        }
        mine
    })
    .into_iter()
    .flatten()
    .collect();
    // The order of the list, whichever core read which file (warnings come out in it).
    parsed.sort_unstable_by_key(|p| p.0);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    parsed
}

fn finish(
    mut runs: Vec<Run>,
    sources: Vec<Source>,
    opts: &Options,
    profile: Option<&crate::profile::Profile>,
) -> Result<Report> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    // Stat everything first: when no file, status or parameter changed since the last collect
    // and its tables are all there, the last report stands and nothing is loaded or written.
    let metas: Vec<Option<(u64, u128)>> = sources
        .par_iter()
        .map(|s| {
            std::fs::metadata(&s.path)
                .ok()
                .map(|m| (m.len(), mtime_ns(&m)))
        })
        .collect();
    let pattern_key = serde_json::to_string(&opts.patterns)?;
    let fingerprint = fingerprint(&runs, &sources, &metas, &pattern_key, profile)?;
    let fp_path = opts.out.join(FINGERPRINT_FILE);
    if let Some(last) = current_report(opts, &fp_path, &fingerprint) {
        return Ok(last);
    }
    let cache_path = opts.out.join(CACHE_FILE);
    let mut cache = load_cache(opts, &cache_path, pattern_key);
    let parse_opts = parsers::ParseOptions {
        patterns: opts
            .patterns
            .iter()
            .filter_map(|p| {
                regex::Regex::new(&p.regex)
                    .ok()
                    .map(|r| (p.name.clone(), r))
            })
            .collect(),
        ..parsers::ParseOptions::default()
    };
    let todo = changed_files(&sources, &metas, &cache);
    let total_bytes: u64 = todo.iter().filter_map(|&i| metas[i].map(|m| m.0)).sum();
    let parsed = parse_files(
        &sources,
        &metas,
        &todo,
        &parse_opts,
        opts.progress,
        total_bytes,
    );
    let mut report = Report {
        out: opts.out.clone(),
        files: sources.len(),
        parsed: parsed.len(),
        ..Default::default()
    };
    report.cached = sources.len() - parsed.len();
    report.bytes_parsed = total_bytes;
    for (_, i, res) in parsed {
        match res {
            Ok(mut fr) => {
                if let Some((size, mt)) = metas[i] {
                    fr.size = size;
                    fr.mtime_ns = mt;
                }
                fr.version = PARSER_VERSION;
                cache.files.insert(sources[i].key.clone(), fr);
            }
            Err(e) => report.warnings.push(e),
        }
    }
    // Drop entries of files that are gone.
    let keys: std::collections::HashSet<&str> = sources.iter().map(|s| s.key.as_str()).collect();
    cache.files.retain(|k, _| keys.contains(k.as_str()));

    let mut per_run: Vec<Vec<&Source>> = vec![Vec::new(); runs.len()];
    for s in &sources {
        per_run[s.run].push(s);
    }
    // Runs are independent: each is aggregated into its own tables, joined in run order.
    let parts: Vec<(Tables, Vec<String>)> = runs
        .par_iter_mut()
        .zip(per_run.par_iter())
        .map(|(run, srcs)| aggregate_run(run, srcs, &cache, profile, opts))
        .collect();
    let mut tables = Tables::default();
    for (t, warnings) in parts {
        tables.append(t);
        report.warnings.extend(warnings);
    }
    // The report is whole before the tables are written (they are `TABLES`, in order), so
    // that it is serialised beside them.
    report.runs = runs;
    report.tables = TABLES.iter().map(|t| t.to_string()).collect();
    // The tables, the cache and the report's fingerprint file are independent outputs of
    // megabytes each: made side by side, on every core.
    let (written, (cached, json)) = rayon::join(
        || {
            let files = Files {
                per_run: &per_run,
                cache: &cache,
            };
            tables.write(&opts.out, &report.runs, &files)
        },
        || {
            rayon::join(
                || -> Result<()> {
                    let bytes = postcard::to_extend(&cache, CACHE_MAGIC.to_vec())?;
                    crate::campaign::write_if_changed(&cache_path, &bytes).map(drop)
                },
                || serde_json::to_vec_pretty(&report),
            )
        },
    );
    // Freeing the rows and the cache (millions of small allocations) takes a tenth of a
    // second on a large tree: no caller needs to wait for it.
    std::thread::spawn(move || drop((cache, tables)));
    let written = written?;
    debug_assert_eq!(written, report.tables, "the tables written are TABLES");
    cached?;
    // Last, once the tables and the cache are in place: a fingerprint file that says the
    // tables are current must never precede them.
    // The report's JSON once, for the fingerprint file and for `--json`'s output both (the
    // file is read back with `Fingerprinted`).
    let json = json?;
    crate::campaign::write_if_changed(&fp_path, &fingerprint_file(&fingerprint, &json)?)?;
    report.json = opts.render_json.then_some(json);
    Ok(report)
}

/// An iteration line's samples/s: Megatron-DeepSpeed prints it; upstream Megatron-LM prints the
/// global batch size and the mean elapsed time per iteration over its `log_interval`, of which
/// it is the quotient.
fn megatron_samples_per_s(it: &crate::parsers::megatron::Iteration) -> Option<f64> {
    it.samples_per_second.or_else(|| {
        let (g, ms) = (it.global_batch_size?, it.elapsed_ms_per_iteration?);
        (ms > 0.0).then(|| g as f64 / (ms / 1000.0))
    })
}

/// The iterations Megatron's `k`th iteration line stands for: its figures (elapsed time per
/// iteration, samples/s, TFLOP/s) are averages over the `log_interval` iterations since the
/// print before. The first print covers as many as the distance to the second; a lone print,
/// every iteration up to it (the process's first steps among them).
fn megatron_span(iters: &[crate::parsers::megatron::Iteration], k: usize) -> u64 {
    let gap = |a: usize, b: usize| {
        iters[b]
            .iteration
            .checked_sub(iters[a].iteration)
            .filter(|&d| d > 0)
    };
    // After a restart (the iteration number falls: a requeued job appending to its output)
    // the print covers as many as the distance to the next.
    let back = k.checked_sub(1).and_then(|j| gap(j, k));
    let ahead = (k + 1 < iters.len()).then(|| gap(k, k + 1)).flatten();
    back.or(ahead).unwrap_or(iters[k].iteration).max(1)
}

/// The warm-up steps of a run: the point's `warmup_steps`, else [`DEFAULT_WARMUP_STEPS`].
fn warmup_steps(params: &IndexMap<String, Json>) -> usize {
    params
        .get("warmup_steps")
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .unwrap_or(DEFAULT_WARMUP_STEPS)
}

/// Whether each of a file's step rows counts in the steady-state figures. Not a step the
/// software excludes (the payload's profiled step), nor a warm-up step: those the log marks;
/// else, for a row standing for several steps (`span`), one whose steps are all past the first
/// `warmup` of their process (a row whose step is not past the row before starts a new
/// process: a requeued job appending to its output); else the rows past the first `warmup`.
pub fn steady_flags(steps: &[StepOut], warmup: usize) -> Vec<bool> {
    let marked = steps.iter().any(|x| x.warmup.is_some());
    let mut start: Option<u64> = None;
    let mut prev: Option<u64> = None;
    steps
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if x.excluded {
                false
            } else if let Some(span) = x.span {
                let first = x.step.saturating_sub(span.max(1) - 1);
                if prev.is_none_or(|p| x.step <= p) {
                    start = Some(first);
                }
                prev = Some(x.step);
                first >= start.unwrap_or(first).saturating_add(warmup as u64)
            } else if marked {
                x.warmup == Some(false)
            } else {
                i >= warmup
            }
        })
        .collect()
}

/// DeepSpeed's pipeline engine (`runtime/pipe/engine.py`, which Megatron-DeepSpeed uses with
/// pipeline parallelism) prints its timers and a `steps: N loss: ... iter time (s): T
/// samples/sec: S` line only every `steps_per_print` steps, and its timers are not reset in
/// between: each printed value is the sum over those steps (over their micro-batches for the
/// `_microstep` timers and `batch_input`). `T` and `S` are already per step. One row per
/// print, spanning the steps it covers, its timers divided down to one step (one micro-step,
/// when the config dump gives the accumulation steps; else those timers are left out); false
/// (nothing pushed) when the log has no such line.
fn pipeline_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) -> bool {
    let ds = &log.deepspeed;
    let prints: Vec<_> = ds
        .steps
        .iter()
        .filter(|d| d.iter_time_s.is_some())
        .collect();
    if prints.is_empty() {
        return false;
    }
    let config = ds.config();
    // The config dump's value; else the steps between two prints; else the first print's
    // step (training starts at step 0).
    let spp = config
        .and_then(|c| c.steps_per_print)
        .filter(|&n| n > 0)
        .or_else(|| {
            prints
                .windows(2)
                .filter_map(|w| w[1].step.checked_sub(w[0].step))
                .filter(|&d| d > 0)
                .min()
        })
        .or(Some(prints[0].step).filter(|&n| n > 0));
    let gas = config
        .and_then(|c| c.gradient_accumulation_steps)
        .filter(|&n| n > 0);
    // A timer line belongs to the print after it, as the engine logs the step's timers before
    // `train_batch` prints; but its `pipe_send_*`/`pipe_recv_*` line comes after that print.
    let mut timers: Vec<Vec<(CompactString, f64)>> = vec![Vec::new(); prints.len()];
    for t in &ds.timers {
        let after = prints.partition_point(|d| d.line < t.line);
        let pipe_io = !t.timers.is_empty() && t.timers.iter().all(|(n, _)| n.starts_with("pipe_"));
        let at = if pipe_io {
            after.checked_sub(1)
        } else {
            Some(after)
        };
        let (Some(at), Some(n)) = (at.filter(|&i| i < prints.len()), spp) else {
            continue;
        };
        for (name, v) in &t.timers {
            let micro = name.ends_with("_microstep") || name == "batch_input";
            // A micro-step's share needs the accumulation steps; without them, left out.
            let per = match (micro, gas) {
                (false, _) => n,
                (true, Some(g)) => n.saturating_mul(g),
                (true, None) => continue,
            };
            timers[at].push((name.clone(), v / per as f64));
        }
    }
    for (d, t) in prints.iter().zip(timers) {
        let mut values: Vec<(CompactString, f64)> = Vec::with_capacity(3 + t.len());
        if let Some(s) = d.iter_time_s {
            values.push(("step_time_ms".into(), s * 1000.0));
        }
        if let Some(s) = d.samples_per_sec {
            values.push(("samples_per_s".into(), s));
        }
        if let Some(l) = d.loss {
            values.push(("loss".into(), l));
        }
        values.extend(t);
        steps.push(StepOut {
            rank: Some(0),
            step: d.step,
            warmup: None,
            excluded: false,
            span: spp,
            origin: StepOrigin::Pipeline,
            values,
        });
    }
    true
}

/// One run's rows of every table, its figures and the warnings of its files.
fn aggregate_run(
    run: &mut Run,
    srcs: &[&Source],
    cache: &Cache,
    profile: Option<&crate::profile::Profile>,
    opts: &Options,
) -> (Tables, Vec<String>) {
    let mut tables = Tables::default();
    let mut warnings = Vec::new();
    let files: Vec<(&Source, &FileResult)> = srcs
        .iter()
        .filter_map(|s| cache.files.get(&s.key).map(|f| (*s, f)))
        .collect();
    for (s, f) in &files {
        for w in &f.warnings {
            warnings.push(format!("{}: {w}", s.key));
        }
    }
    aggregate(run, &files, profile, &mut tables);
    for p in &opts.patterns {
        let values: Vec<f64> = files
            .iter()
            .flat_map(|(_, f)| {
                f.user
                    .iter()
                    .filter(|(n, _)| n == &p.name)
                    .flat_map(|(_, v)| v.iter().copied())
            })
            .collect();
        run.figures.insert(p.column(), p.aggregate.apply(&values));
    }
    run.sources = files.iter().map(|(s, _)| s.key.clone()).collect();
    (tables, warnings)
}

/// The files of each run, in run order, with their cached results: nccl.csv and steps.csv
/// list their rows straight from these (no copy of each row per run).
struct Files<'a> {
    per_run: &'a [Vec<&'a Source>],
    cache: &'a Cache,
}

impl<'a> Files<'a> {
    /// (run index, source, its result) of every file with a result, in table order.
    fn each(&self) -> impl Iterator<Item = (usize, &'a Source, &'a FileResult)> + 'a {
        let cache = self.cache;
        self.per_run.iter().enumerate().flat_map(move |(i, srcs)| {
            srcs.iter()
                .filter_map(move |s| cache.files.get(&s.key).map(|f| (i, *s, f)))
        })
    }
}

#[derive(Default)]
struct Tables {
    gpu: Vec<(String, GpuAgg)>,
    failures: Vec<(String, FailOut)>,
    binds: Vec<(String, BindOut)>,
    nics: Vec<(String, parsers::telemetry::NicDelta)>,
    preflight: Vec<(String, parsers::telemetry::PreflightRecord)>,
    /// (run, node, source, readings)
    power: Vec<(String, String, String, Vec<Option<f64>>)>,
}

/// Figures of one run from all its files: the payload's own metrics first, then DeepSpeed's.
/// What a run's figures are made of, gathered over its files.
#[derive(Default)]
struct RunSums {
    step_times: Vec<f64>,
    primary: Option<(String, FailOut)>,
    busbw: Vec<f64>,
    avg_busbw: Vec<f64>,
    payload: Option<Vec<(String, f64)>>,
    allreduce_ms: f64,
    compute_ms: f64,
    preflight_run: bool,
    preflight_fail: usize,
    binds: usize,
    bind_mismatches: usize,
    ds_sps: Option<f64>,
    pipe_sps: Vec<f64>,
    prof_tflops: Option<f64>,
    prof_sps: Option<f64>,
    hf_sps: Option<f64>,
    meg_sps: Vec<f64>,
    meg_tflops: Vec<f64>,
    ds_mem: Option<f64>,
    ds_gb: Option<u64>,
    /// Sum, count, minimum and maximum of the GPU utilisation samples.
    util: (f64, u64, Option<f64>, Option<f64>),
    /// Sum and count of the power samples.
    power: (f64, u64),
    temp_max: Option<f64>,
    mem_temp_max: Option<f64>,
    mem_used_max: Option<f64>,
}

fn aggregate(
    run: &mut Run,
    files: &[(&Source, &FileResult)],
    profile: Option<&crate::profile::Profile>,
    t: &mut Tables,
) {
    let warmup = warmup_steps(&run.params);
    run.nccl = NcclFacts::default();
    let mut sums = RunSums {
        preflight_run: files.iter().any(|(_, f)| !f.preflight.is_empty()),
        ..Default::default()
    };
    for (s, f) in files {
        sums.add_file(run, s, f, warmup, t);
        power_series(run, s, f, t);
        run.nccl.add(&f.nccl_facts);
    }
    run.figures = sums.figures(run, profile);
    set_failure(run, sums.primary);
}

impl RunSums {
    /// One file's share of the run's figures; its GPU, failure, binding, NIC and preflight
    /// rows go to their tables on the way.
    fn add_file(&mut self, run: &Run, s: &Source, f: &FileResult, warmup: usize, t: &mut Tables) {
        for r in &f.nccl {
            self.busbw.push(r.busbw_gbps);
        }
        self.avg_busbw.extend(f.nccl_avg_busbw.iter().copied());
        self.add_steps(f, warmup);
        self.add_gpus(run, f, t);
        for fl in &f.failures {
            t.failures.push((s.key.clone(), fl.clone()));
        }
        if let Some(p) = &f.primary {
            let better = self
                .primary
                .as_ref()
                .is_none_or(|(_, q)| class_rank(p.class) < class_rank(q.class));
            if better {
                self.primary = Some((s.key.clone(), p.clone()));
            }
        }
        if self.payload.is_none() && !f.payload_summary.is_empty() {
            self.payload = Some(f.payload_summary.clone());
        }
        self.binds += f.binds.len();
        self.bind_mismatches += f.binds.iter().filter(|b| !b.cpus_ok || !b.gpu_ok).count();
        self.allreduce_ms += f.ds_allreduce_ms;
        self.compute_ms += f.ds_compute_ms;
        for b in &f.binds {
            t.binds.push((run.run.clone(), b.clone()));
        }
        for n in &f.nics {
            t.nics.push((run.run.clone(), n.clone()));
        }
        for p in &f.preflight {
            self.preflight_fail +=
                p.checks.iter().filter(|c| c.1 == "fail").count() + usize::from(p.result.is_none());
            t.preflight.push((run.run.clone(), p.clone()));
        }
        self.ds_sps = self.ds_sps.or(f.ds_running_avg_samples_per_s);
        self.prof_tflops = self.prof_tflops.or(f.profiler_tflops_per_gpu);
        self.prof_sps = self.prof_sps.or(f.profiler_samples_per_s);
        self.hf_sps = self.hf_sps.or(f.hf_samples_per_s);
        self.ds_mem = max_opt(self.ds_mem, f.ds_max_mem_gib);
        self.ds_gb = self.ds_gb.or(f.ds_global_batch);
    }

    /// The step times and per-interval throughputs of the steady steps (warmup excluded).
    fn add_steps(&mut self, f: &FileResult, warmup: usize) {
        let flags = steady_flags(&f.steps, warmup);
        for st in f
            .steps
            .iter()
            .zip(flags)
            .filter(|(_, ok)| *ok)
            .map(|(st, _)| st)
        {
            let value = |name: &str| st.values.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
            if let Some(v) = value("step_time_ms") {
                self.step_times.push(v);
            }
            // DeepSpeed's pipeline engine prints samples/s per `steps_per_print` steps;
            // Megatron, samples/s and TFLOP/s per `log_interval` iterations.
            match st.origin {
                StepOrigin::Pipeline => self.pipe_sps.extend(value("samples_per_s")),
                StepOrigin::Megatron => {
                    self.meg_sps.extend(value("samples_per_s"));
                    self.meg_tflops.extend(value("tflops_per_gpu"));
                }
                _ => {}
            }
        }
    }

    /// The GPUs' utilisation, power, temperature and memory over the run; their rows to
    /// the GPU table.
    fn add_gpus(&mut self, run: &Run, f: &FileResult, t: &mut Tables) {
        let util = &mut self.util;
        for g in &f.gpus {
            util.0 += g.util_sum;
            util.1 += g.util_n;
            if let Some(m) = g.util_min {
                util.2 = Some(util.2.map_or(m, |x: f64| x.min(m)));
            }
            if let Some(m) = g.util_max {
                util.3 = Some(util.3.map_or(m, |x: f64| x.max(m)));
            }
            self.power.0 += g.power_sum;
            self.power.1 += g.power_n;
            self.temp_max = max_opt(self.temp_max, g.temp_max);
            self.mem_temp_max = max_opt(self.mem_temp_max, g.mem_temp_max);
            self.mem_used_max = max_opt(self.mem_used_max, g.mem_used_max_mib);
            t.gpu.push((run.run.clone(), g.clone()));
        }
    }

    /// The run's figures, each from the best source that has it.
    fn figures(
        &self,
        run: &Run,
        profile: Option<&crate::profile::Profile>,
    ) -> IndexMap<String, Option<f64>> {
        let seq = run.params.get("seq_len").and_then(|v| v.as_f64());
        let gpus = run.params.get("gpus").and_then(|v| v.as_f64());
        let step_mean = mean(&self.step_times);
        let step_p50 = median(&self.step_times);
        let global = run
            .params
            .get("global_batch")
            .and_then(|v| v.as_f64())
            .or(self.ds_gb.map(|g| g as f64));
        let pay = |k: &str| {
            self.payload
                .as_ref()
                .and_then(|p| p.iter().find(|(n, _)| n == k).map(|(_, v)| *v))
        };
        // Samples/s: the payload's own summary first; a running average the software printed
        // is taken as is, never averaged again.
        let samples = pay("samples_per_s")
            .or(self.ds_sps)
            .or(median(&self.pipe_sps))
            .or_else(|| match (global, step_p50) {
                (Some(g), Some(ms)) if ms > 0.0 => Some(g / (ms / 1000.0)),
                _ => None,
            })
            .or(self.prof_sps)
            .or(self.hf_sps)
            .or(median(&self.meg_sps));
        let tokens = samples.zip(seq).map(|(s, q)| s * q);
        let model_tflops = match (tokens, gpus, model_flops_per_token(&run.params)) {
            (Some(tk), Some(g), Some(fpt)) if g > 0.0 => Some(fpt * tk / g / 1e12),
            _ => None,
        };
        let tflops = pay("tflops_per_gpu")
            .or(model_tflops)
            .or(median(&self.meg_tflops))
            .or(self.prof_tflops);
        let mfu = tflops
            .zip(profile.map(|p| p.gpu.peak_bf16_tflops).filter(|&p| p > 0.0))
            .map(|(t, p)| 100.0 * t / p);
        let mut fig: IndexMap<String, Option<f64>> = IndexMap::new();
        fig.insert("samples_per_s".into(), samples);
        fig.insert("tokens_per_s".into(), tokens);
        fig.insert("tflops_per_gpu".into(), tflops);
        fig.insert("mfu_pct".into(), mfu);
        fig.insert("profiler_tflops_per_gpu".into(), self.prof_tflops);
        fig.insert("profiler_samples_per_s".into(), self.prof_sps);
        fig.insert("step_time_ms_mean".into(), step_mean);
        fig.insert("step_time_ms_p50".into(), step_p50);
        fig.insert(
            "step_time_ms_p95".into(),
            percentile(&self.step_times, 95.0),
        );
        fig.insert(
            "steps_measured".into(),
            (!self.step_times.is_empty()).then_some(self.step_times.len() as f64),
        );
        fig.insert(
            "max_mem_gib".into(),
            pay("mem_max_alloc_gib")
                .or(self.ds_mem)
                .or(self.mem_used_max.map(|m| m / 1024.0)),
        );
        fig.insert(
            "gpu_util_avg".into(),
            (self.util.1 > 0).then(|| self.util.0 / self.util.1 as f64),
        );
        fig.insert("gpu_util_min".into(), self.util.2);
        fig.insert("gpu_util_max".into(), self.util.3);
        fig.insert(
            "power_w_avg".into(),
            (self.power.1 > 0).then(|| self.power.0 / self.power.1 as f64),
        );
        fig.insert("gpu_temp_max".into(), self.temp_max);
        fig.insert("mem_temp_max".into(), self.mem_temp_max);
        fig.insert(
            "busbw_gbps_peak".into(),
            self.busbw
                .iter()
                .copied()
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b)))),
        );
        fig.insert(
            "busbw_gbps_avg".into(),
            mean(&self.avg_busbw).or_else(|| mean(&self.busbw)),
        );
        fig.insert(
            "comm_compute_ratio".into(),
            (self.compute_ms > 0.0).then(|| self.allreduce_ms / self.compute_ms),
        );
        fig.insert(
            "preflight_failed_checks".into(),
            self.preflight_run.then_some(self.preflight_fail as f64),
        );
        fig.insert(
            "binding_mismatches".into(),
            (self.binds > 0).then_some(self.bind_mismatches as f64),
        );
        fig
    }
}

/// One file's power readings, a series per node and source; DCGM's per GPU of its node.
fn power_series(run: &Run, s: &Source, f: &FileResult, t: &mut Tables) {
    let mut power: BTreeMap<(String, String), Vec<Option<f64>>> = BTreeMap::new();
    for (node, source, w) in &f.power {
        power
            .entry((node.clone(), source.clone()))
            .or_default()
            .push(*w);
    }
    let file = s
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let dcgm_node = file
        .strip_prefix("dcgm-")
        .and_then(|x| x.strip_suffix(".txt"))
        .unwrap_or("")
        .to_string();
    for (gpu, w, _, _) in &f.dcgm {
        power
            .entry((format!("{dcgm_node}/gpu{gpu}"), "dcgmi".into()))
            .or_default()
            .push(*w);
    }
    for ((node, source), v) in power {
        t.power.push((run.run.clone(), node, source, v));
    }
}

/// The run's failure: the worst class among its files' primary failures, else the one its
/// job state implies.
fn set_failure(run: &mut Run, primary: Option<(String, FailOut)>) {
    if let Some((key, p)) = primary {
        run.failure_class = Some(p.class);
        run.failure_evidence = format!("{key}:{}: {}", p.line, p.message);
    } else {
        // runs.csv's status: a job state, or `-` for a file of `--logs` (no state, no class).
        match JobState::from(run.status.as_str()) {
            JobState::Failed | JobState::Lost | JobState::NodeFail | JobState::BootFail => {
                run.failure_class = Some(FailureClass::Unknown)
            }
            JobState::Timeout => run.failure_class = Some(FailureClass::Timeout),
            JobState::OutOfMemory => run.failure_class = Some(FailureClass::Oom),
            JobState::Cancelled => run.failure_class = Some(FailureClass::Cancelled),
            _ => {}
        }
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Training FLOPs per token from the point's model shape (`point.json` carries it as `model`).
fn model_flops_per_token(params: &IndexMap<String, Json>) -> Option<f64> {
    let shape = params.get("__model")?;
    let m: crate::model::ModelShape = serde_json::from_value(shape.clone()).ok()?;
    let seq = params
        .get("seq_len")
        .and_then(|v| v.as_u64())
        .map(|v| v as u32)
        .unwrap_or(m.seq_len);
    Some(m.train_flops_per_token(seq))
}

impl Tables {
    fn append(&mut self, other: Tables) {
        let Tables {
            gpu,
            failures,
            binds,
            nics,
            preflight,
            power,
        } = other;
        self.gpu.extend(gpu);
        self.failures.extend(failures);
        self.binds.extend(binds);
        self.nics.extend(nics);
        self.preflight.extend(preflight);
        self.power.extend(power);
    }

    fn write(&self, out: &Path, runs: &[Run], files: &Files<'_>) -> Result<Vec<String>> {
        // steps.csv, the largest, is made and written on one core while the others are on
        // the other.
        let write =
            |name: &str, bytes: &[u8]| crate::campaign::write_if_changed(&out.join(name), bytes);
        let (steps, tables) = rayon::join(
            || write("steps.csv", &Self::steps_csv(runs, files)?),
            || -> Result<Vec<String>> {
                let tables = self.small_tables(runs, files)?;
                let mut written = Vec::new();
                for (name, bytes) in tables {
                    if name != "steps.csv" {
                        write(name, &bytes)?;
                    }
                    written.push(name.to_string());
                }
                Ok(written)
            },
        );
        steps?;
        tables
    }

    fn steps_csv(runs: &[Run], files: &Files<'_>) -> Result<Vec<u8>> {
        // steps.csv: long format, one row per (step, value). The largest table, its rows
        // borrowed from the cache and mostly repeats: the fields a file's rows share and
        // those a step's share are encoded once.
        let mut out = StepRow::header()?;
        let mut file_head = Vec::new();
        let mut step_head = Vec::new();
        let mut num = String::new();
        for (i, s, f) in files.each() {
            if f.steps.is_empty() {
                continue;
            }
            let mut row = StepRow {
                run: runs[i].run.as_str().into(),
                source: s.key.as_str().into(),
                ..Default::default()
            };
            file_head.clear();
            row.write_file_head(&mut file_head);
            let steady = steady_flags(&f.steps, warmup_steps(&runs[i].params));
            for (st, steady) in f.steps.iter().zip(steady) {
                row.rank = st.rank;
                row.step = st.step;
                // The log's own mark, else whether the figures left the step out as warm-up.
                row.warmup = st.warmup.unwrap_or(!steady);
                step_head.clear();
                step_head.extend_from_slice(&file_head);
                row.write_step_head(&mut step_head);
                for (k, v) in &st.values {
                    row.name = k.as_str().into();
                    row.value = Some(*v);
                    row.write_tail(&step_head, &mut out, &mut num);
                }
            }
        }
        Ok(out)
    }

    /// Every table but steps.csv (an empty placeholder), in the order they are written.
    fn small_tables(
        &self,
        runs: &[Run],
        files: &Files<'_>,
    ) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut tables = Vec::with_capacity(TABLES.len());
        // nccl.csv, the largest of these, is made on another core meanwhile.
        let (nccl, rest) = rayon::join(|| Self::nccl_csv(files), || self.other_tables(runs));
        tables.push(("nccl.csv", nccl?));
        tables.extend(rest?);
        Ok(tables)
    }

    /// nccl.csv: one row per result row, borrowed from the cache (tens of thousands of rows; no
    /// `String` per field).
    fn nccl_csv(files: &Files<'_>) -> Result<Vec<u8>> {
        let mut out = NcclRow::header()?;
        let mut num = String::new();
        for (src, r) in files
            .each()
            .flat_map(|(_, s, f)| f.nccl.iter().map(move |r| (&s.key, r)))
        {
            NcclRow {
                source: src.as_str().into(),
                line: r.line,
                collective: r.collective.as_str().into(),
                size_bytes: r.size_bytes,
                count: r.count,
                dtype: r.dtype.as_str().into(),
                redop: r.redop.as_str().into(),
                root: r.root.as_str().into(),
                placement: r.placement.as_str().into(),
                time_us: Some(r.time_us),
                algbw_gbps: Some(r.algbw_gbps),
                busbw_gbps: Some(r.busbw_gbps),
                wrong: r.wrong.as_str().into(),
                max_error: r.max_error,
                nranks: r.nranks,
                nodes: r.nodes,
                gpu_name: r.gpu_name.as_str().into(),
                nccl_version: r.nccl_version.as_str().into(),
            }
            .write_csv(&mut out, &mut num);
        }
        Ok(out)
    }

    /// The tables after nccl.csv, in order.
    fn other_tables(&self, runs: &[Run]) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let run_rows: Vec<RunRow> = runs.iter().map(run_row).collect();
        Ok(vec![
            ("runs.csv", RunRow::write_all(&run_rows)?),
            ("steps.csv", Vec::new()),
            ("gpu.csv", GpuRow::write_all(&self.gpu_rows())?),
            ("failures.csv", FailureRow::write_all(&self.failure_rows())?),
            ("binding.csv", BindingRow::write_all(&self.binding_rows())?),
            ("net.csv", NetRow::write_all(&self.net_rows())?),
            ("power.csv", PowerRow::write_all(&self.power_rows(runs))?),
            (
                "preflight.csv",
                PreflightRow::write_all(&self.preflight_rows())?,
            ),
        ])
    }

    fn gpu_rows(&self) -> Vec<GpuRow> {
        self.gpu
            .iter()
            .map(|(run, g)| GpuRow {
                run: run.clone(),
                node: g.node.clone(),
                gpu: g.gpu.clone(),
                name: g.name.clone(),
                samples: g.samples,
                util_avg: (g.util_n > 0).then(|| g.util_sum / g.util_n as f64),
                util_min: g.util_min,
                util_max: g.util_max,
                mem_used_max_mib: g.mem_used_max_mib,
                power_w_avg: (g.power_n > 0).then(|| g.power_sum / g.power_n as f64),
                power_w_max: g.power_max,
                temp_max_c: g.temp_max,
                mem_temp_max_c: g.mem_temp_max,
            })
            .collect()
    }

    fn failure_rows(&self) -> Vec<FailureRow> {
        self.failures
            .iter()
            .map(|(src, f)| FailureRow {
                source: src.clone(),
                line: f.line,
                class: f.class,
                kind: f.kind.clone(),
                weak: f.weak,
                message: f.message.clone(),
            })
            .collect()
    }

    fn binding_rows(&self) -> Vec<BindingRow> {
        self.binds
            .iter()
            .map(|(run, b)| BindingRow {
                run: run.clone(),
                node: b.node.clone(),
                rank: b.rank,
                local_rank: b.local_rank,
                cpus: b.cpus.clone(),
                expect_cpus: b.expect_cpus.clone(),
                cpus_ok: b.cpus_ok,
                gpu: b.gpu.clone(),
                expect_gpu: b.expect_gpu.clone(),
                gpu_ok: b.gpu_ok,
                nic: b.nic.clone(),
            })
            .collect()
    }

    /// net.csv: what every NIC / RDMA port carried between the job's first and last snapshot;
    /// "not available" where the device has no such counter.
    fn net_rows(&self) -> Vec<NetRow> {
        self.nics.iter().map(|(run, n)| net_row(run, n)).collect()
    }

    /// power.csv: system power (ipmitool) and GPU power (dcgmi) per node, where the node has
    /// the source; "not available" where it does not.
    fn power_rows(&self, runs: &[Run]) -> Vec<PowerRow> {
        let mut rows = Vec::new();
        for (run, node, source, v) in &self.power {
            let got: Vec<f64> = v.iter().flatten().copied().collect();
            let (avg, max) = if got.is_empty() {
                (None, None)
            } else {
                (
                    Some(got.iter().sum::<f64>() / got.len() as f64),
                    got.iter()
                        .copied()
                        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b)))),
                )
            };
            rows.push(PowerRow {
                run: run.clone(),
                node: node.clone(),
                source: source.clone(),
                readings: got.len() as u64,
                watts_avg: Avail(avg),
                watts_max: Avail(max),
            });
        }
        for r in runs {
            for u in &r.unavailable {
                if let Some(node) = u
                    .strip_prefix("dcgm-")
                    .and_then(|x| x.strip_suffix(".unavailable"))
                {
                    rows.push(PowerRow {
                        run: r.run.clone(),
                        node: node.to_string(),
                        source: "dcgmi".into(),
                        readings: 0,
                        watts_avg: Avail(None),
                        watts_max: Avail(None),
                    });
                }
            }
        }
        rows
    }

    fn preflight_rows(&self) -> Vec<PreflightRow> {
        let mut rows = Vec::new();
        for (run, p) in &self.preflight {
            let row = |check: &str, status: &str, expected: &str, found: &str| PreflightRow {
                run: run.clone(),
                node: p.node.clone(),
                check: check.into(),
                status: status.into(),
                expected: expected.into(),
                found: found.into(),
            };
            for (name, status, expected, found) in &p.checks {
                rows.push(row(name, status, expected, found));
            }
            if p.result.is_none() {
                rows.push(row(
                    "record",
                    "fail",
                    "a complete record",
                    "the probe stopped before its result line",
                ));
            }
        }
        rows
    }
}

/// A run's runs.csv row: the point's parameters but the hidden (`__model`) and the stage,
/// which has its own column.
fn run_row(r: &Run) -> RunRow {
    let mut row = RunRow {
        run: r.run.clone(),
        stage: r.stage.clone(),
        params: r
            .params
            .iter()
            .filter(|(k, _)| !k.starts_with("__") && *k != "stage")
            .map(|(k, v)| (k.clone(), crate::expand::json_short(v)))
            .collect(),
        status: r.status.clone(),
        failure_class: r.failure_class,
        failure_evidence: r.failure_evidence.clone(),
        nccl: r.nccl.row_columns(),
        ..Default::default()
    };
    for (k, v) in &r.figures {
        row.set_figure(k, *v);
    }
    row
}

/// A NIC's net.csv row; IB data counters count 4-byte words, converted to bytes.
fn net_row(run: &str, n: &parsers::telemetry::NicDelta) -> NetRow {
    let ib = n.kind == "ib";
    let sum = |a: &str, b: &str| match (n.get(a), n.get(b)) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0.0) + y.unwrap_or(0.0)),
    };
    let (rx, tx) = if ib {
        (
            n.get("port_rcv_data").map(|x| x * 4.0),
            n.get("port_xmit_data").map(|x| x * 4.0),
        )
    } else {
        (n.get("rx_bytes"), n.get("tx_bytes"))
    };
    let (rxp, txp) = if ib {
        (n.get("port_rcv_packets"), n.get("port_xmit_packets"))
    } else {
        (n.get("rx_packets"), n.get("tx_packets"))
    };
    let drops = if ib {
        sum("port_rcv_discards", "port_xmit_discards")
    } else {
        sum("rx_dropped", "tx_dropped")
    };
    let errors = if ib {
        sum("port_rcv_errors", "symbol_error")
    } else {
        sum("rx_errors", "tx_errors")
    };
    let gbps = |b: Option<f64>| {
        b.filter(|_| n.seconds > 0.0)
            .map(|b| b * 8.0 / n.seconds / 1e9)
    };
    let peak = gbps(rx)
        .into_iter()
        .chain(gbps(tx))
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    let mut row = NetRow {
        run: run.to_string(),
        node: n.node.clone(),
        kind: n.kind.clone(),
        device: n.device.clone(),
        port: n.port.clone(),
        state: n.state.clone(),
        seconds: Some(n.seconds),
        line_rate_gbps: Avail(n.line_rate_gbps),
        rx_bytes: Avail(rx),
        tx_bytes: Avail(tx),
        rx_packets: Avail(rxp),
        tx_packets: Avail(txp),
        drops: Avail(drops),
        errors: Avail(errors),
        rx_gbps: Avail(gbps(rx)),
        tx_gbps: Avail(gbps(tx)),
        pct_of_line_rate: Avail(
            peak.zip(n.line_rate_gbps)
                .filter(|(_, r)| *r > 0.0)
                .map(|(p, r)| 100.0 * p / r),
        ),
        ..Default::default()
    };
    for (cell, c) in row
        .ib_counters_mut()
        .into_iter()
        .zip(&parsers::telemetry::IB_COUNTERS[8..])
    {
        *cell = Avail(if ib { n.get(c) } else { None });
    }
    row
}

pub fn render_summary(r: &Report) -> String {
    use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "run",
        "status",
        "failure",
        "samples/s",
        "TFLOP/s/GPU",
        "step ms p50",
        "GPU util %",
        "busbw peak GB/s",
    ]);
    for run in r.runs.iter().take(200) {
        // One decimal on screen (the tables hold four).
        let f = |k: &str| {
            run.figures
                .get(k)
                .copied()
                .flatten()
                .filter(|x| x.is_finite())
                .map(|x| format!("{x:.1}"))
                .unwrap_or_default()
        };
        t.add_row(vec![
            run.run.clone(),
            run.status.clone(),
            crate::rows::class_str(run.failure_class).to_string(),
            f("samples_per_s"),
            f("tflops_per_gpu"),
            f("step_time_ms_p50"),
            f("gpu_util_avg"),
            f("busbw_gbps_peak"),
        ]);
    }
    let mut s = format!("{t}\n");
    s.push_str(&format!(
        "{} files: {} parsed ({:.1} MB), {} unchanged (cached); tables in {}\n",
        r.files,
        r.parsed,
        r.bytes_parsed as f64 / 1e6,
        r.cached,
        r.out.display()
    ));
    for w in r.warnings.iter().take(20) {
        s.push_str(&format!("warning: {w}\n"));
    }
    if r.warnings.len() > 20 {
        s.push_str(&format!("warning: ... {} more\n", r.warnings.len() - 20));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(origin: StepOrigin, steps: &[(u64, Option<u64>)]) -> Vec<StepOut> {
        steps
            .iter()
            .map(|&(step, span)| StepOut {
                step,
                span,
                origin,
                ..Default::default()
            })
            .collect()
    }

    /// A print that stands for several steps is steady only when none of them is among the
    /// first `warmup` of its process, wherever the process started; one step a row, the rows
    /// past the first `warmup`.
    #[test]
    fn steady_steps_by_what_each_row_covers() {
        // Megatron, `log_interval` 10 from iteration 10: the first print holds the warm-up.
        let spans = |its: &[u64]| {
            let iters: Vec<crate::parsers::megatron::Iteration> = its
                .iter()
                .map(|&iteration| crate::parsers::megatron::Iteration {
                    iteration,
                    ..Default::default()
                })
                .collect();
            (0..its.len())
                .map(|k| (its[k], Some(megatron_span(&iters, k))))
                .collect::<Vec<_>>()
        };
        let meg = rows(StepOrigin::Megatron, &spans(&[10, 20, 30]));
        assert_eq!(steady_flags(&meg, 2), [false, true, true]);
        assert_eq!(steady_flags(&meg, 0), [true, true, true]);
        // Every iteration printed, resumed at 182: the first two prints are warm-up.
        let meg = rows(StepOrigin::Megatron, &spans(&[182, 183, 184, 185]));
        assert_eq!(steady_flags(&meg, 2), [false, false, true, true]);
        // A lone print covers the process's first steps.
        let meg = rows(StepOrigin::Megatron, &spans(&[50]));
        assert_eq!(steady_flags(&meg, 2), [false]);
        // A requeued job appending to its output: the iterations fall, a new warm-up.
        let meg = rows(StepOrigin::Megatron, &spans(&[10, 20, 30, 21, 22, 23, 24]));
        assert_eq!(
            steady_flags(&meg, 2),
            [false, true, true, false, false, true, true]
        );
        // The pipeline engine, `steps_per_print` 10.
        let pipe = rows(StepOrigin::Pipeline, &[(10, Some(10)), (20, Some(10))]);
        assert_eq!(steady_flags(&pipe, 2), [false, true]);
        // DeepSpeed's timer lines, one step each.
        let ds = rows(StepOrigin::DeepSpeed, &[(1, None), (2, None), (3, None)]);
        assert_eq!(steady_flags(&ds, 2), [false, false, true]);
    }

    /// Upstream Megatron-LM prints no samples/s: it is the global batch over the time per
    /// iteration; Megatron-DeepSpeed's own figure, where printed, is taken as is.
    #[test]
    fn megatron_samples_per_s_is_printed_or_batch_over_iteration_time() {
        let it = crate::parsers::megatron::Iteration {
            global_batch_size: Some(1024),
            elapsed_ms_per_iteration: Some(2048.0),
            ..Default::default()
        };
        assert_eq!(megatron_samples_per_s(&it), Some(500.0));
        let printed = crate::parsers::megatron::Iteration {
            samples_per_second: Some(7.5),
            ..it.clone()
        };
        assert_eq!(megatron_samples_per_s(&printed), Some(7.5));
        let no_time = crate::parsers::megatron::Iteration {
            elapsed_ms_per_iteration: Some(0.0),
            ..it
        };
        assert_eq!(megatron_samples_per_s(&no_time), None);
    }

    /// The report that stands when nothing changed is read back from the fingerprint file's
    /// JSON: every figure must come back as the same `f64`, not a neighbour of it (two
    /// figures of the benchmark corpus did, before the float parser was made exact).
    #[test]
    fn the_report_that_stands_has_the_figures_that_were_made() {
        let mut run = Run::default();
        let values = [
            1240.1599999999999,
            118.80458715596333,
            0.1 + 0.2,
            1e-300,
            5e-324,
        ];
        for (i, v) in values.iter().enumerate() {
            run.figures.insert(format!("f{i}"), Some(*v));
        }
        let report = Report {
            runs: vec![run],
            ..Report::default()
        };
        let json = serde_json::to_vec_pretty(&report).unwrap();
        let bytes = fingerprint_file("x", &json).unwrap();
        let back: Fingerprinted = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.fingerprint, "x");
        for (i, v) in values.iter().enumerate() {
            let got = back.report.runs[0].figures[&format!("f{i}")].unwrap();
            assert_eq!(got.to_bits(), v.to_bits(), "{v:?} came back as {got:?}");
        }
    }

    /// net.csv's counter columns are the IB counters `net_row` fills them from, in order.
    #[test]
    fn net_counter_columns_are_the_ib_counters() {
        assert_eq!(
            crate::rows::NetRow::COLUMNS[14..24],
            parsers::telemetry::IB_COUNTERS[8..]
        );
    }
}
