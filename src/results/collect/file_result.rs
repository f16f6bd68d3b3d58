//! What one file contributes to the tables ([`FileResult`], kept in the cache) and the row
//! types it is made of.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::parsers::{self, failures::FailureClass};
use crate::rows::NcclColumns;

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
    /// Expected CPUs the rank may not run on, and allowed CPUs the plan did not give it.
    #[serde(default)]
    pub cpus_missing: String,
    #[serde(default)]
    pub cpus_extra: String,
    #[serde(default)]
    pub gpu_devices: Option<u32>,
    #[serde(default)]
    pub gpus_open: Option<Vec<u32>>,
    #[serde(default)]
    pub gpus_on_node: Option<u32>,
}

impl BindOut {
    /// Whether the rank could open every GPU its job has on the node (else every GPU device
    /// file of the node); `None` for records of wrappers that did not check.
    pub fn gpus_ok(&self) -> Option<bool> {
        self.gpus_open.as_ref().map(|g| {
            let want = self.gpus_on_node.or(self.gpu_devices).unwrap_or(0) as usize;
            g.len() >= want
        })
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
    /// Distinct releases (`2.28.9`; a `+cuda13.0` build suffix is in `cuda`), else the
    /// nccl-tests banner's library.
    pub versions: Vec<String>,
    /// Distinct CUDA versions the library says it was built for (`13.0` of `+cuda13.0`).
    #[serde(default)]
    pub cuda: Vec<String>,
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
    pub(super) fn is_empty(&self) -> bool {
        *self == NcclFacts::default()
    }

    /// Adds another file's facts: lists united, counts summed, the larger sizes.
    pub(super) fn add(&mut self, o: &NcclFacts) {
        for (mine, theirs) in [
            (&mut self.versions, &o.versions),
            (&mut self.cuda, &o.cuda),
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
    pub(super) fn row_columns(&self) -> NcclColumns {
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
            nccl_cuda: self.cuda.join(";"),
        }
    }
}

/// One `dcgmi dmon` row: GPU, power (W), GPU temperature, memory temperature (°C).
type DcgmSample = (String, Option<f64>, Option<f64>, Option<f64>);

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
