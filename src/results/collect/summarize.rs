//! One parsed log reduced to its [`FileResult`]: NCCL rows and facts, steps, bindings, GPU
//! telemetry, throughput figures, failures and warnings.

use compact_str::CompactString;

use super::DEFAULT_WARMUP_STEPS;
use super::file_result::{BindOut, FailOut, FileResult, GpuAgg, NcclFacts, NcclRowOut};
use super::steps::{deepspeed_steps, megatron_steps, payload_steps};
use crate::parsers::{self, ParsedLog};

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
    let mut raw = d.versions.clone();
    if raw.is_empty() {
        raw.extend(log.nccl_tests.iter().find_map(|t| t.nccl_version.clone()));
    }
    let (mut versions, mut cuda) = (Vec::new(), Vec::<String>::new());
    for v in &raw {
        let (release, c) = split_nccl_version(v);
        if !versions.iter().any(|x| x == release) {
            versions.push(release.to_string());
        }
        if let Some(c) = c.filter(|c| !cuda.iter().any(|x| x == c)) {
            cuda.push(c.to_string());
        }
    }
    let largest = |of: fn(&parsers::nccl_tests::NcclRun) -> Option<usize>| {
        log.nccl_tests.iter().filter_map(of).max().map(|n| n as u64)
    };
    NcclFacts {
        versions,
        cuda,
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

/// An NCCL version as printed, split into the library's release and the CUDA it was built
/// for: `2.20.5+cuda12.4` -> (`2.20.5`, `12.4`); `2.29.7` -> (`2.29.7`, none). The line forms
/// differ in the suffix only (`NCCL version 2.20.5+cuda12.4`, PyTorch's `NCCL version 2.7.8`,
/// nccl-tests' `NCCL_VERSION_CODE`): the release is the one form the tables print.
pub(crate) fn split_nccl_version(v: &str) -> (&str, Option<&str>) {
    match v.split_once('+') {
        Some((release, build)) => {
            let cuda = build.strip_prefix("cuda").filter(|c| !c.is_empty());
            (release, cuda)
        }
        None => (v, None),
    }
}

/// The nccl-tests runs' rows and average bus bandwidths.
fn nccl_test_rows(log: &ParsedLog, r: &mut FileResult) {
    r.nccl
        .reserve(log.nccl_tests.iter().map(|t| t.rows.len()).sum());
    for run in &log.nccl_tests {
        if let Some(a) = run.avg_busbw_gbps {
            r.nccl_avg_busbw.push(a);
        }
        let gpu_name = short_text(run.gpu_name.as_deref());
        let nccl_version = short_text(
            run.nccl_version
                .as_deref()
                .or(log.nccl_debug.version.as_deref())
                .map(|v| split_nccl_version(v).0),
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
        let nccl_version = short_text(run.nccl_version.as_deref().map(|v| split_nccl_version(v).0));
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

/// Each task's CPU, GPU and NIC binding, checked against the expected one.
fn binds(log: &ParsedLog) -> Vec<BindOut> {
    log.payload
        .binds
        .iter()
        .map(|b| {
            let (cpus_missing, cpus_extra) = cpu_difference(&b.cpus, &b.expect_cpus);
            BindOut {
                node: b.node.clone(),
                rank: b.rank,
                local_rank: b.local_rank,
                cpus: b.cpus.clone(),
                expect_cpus: b.expect_cpus.clone(),
                gpu: b.gpu.clone(),
                expect_gpu: b.expect_gpu.clone(),
                nic: b.nic.clone(),
                cpus_ok: b.expect_cpus.is_empty() || same_cpus(&b.cpus, &b.expect_cpus),
                gpu_ok: b.expect_gpu.is_empty() || gpu_of_rank(b) == b.expect_gpu,
                cpus_missing,
                cpus_extra,
                gpu_devices: b.gpu_devices,
                gpus_open: b.gpus_open.clone(),
                gpus_on_node: b.gpus_on_node,
            }
        })
        .collect()
}

/// The GPU a rank drives: its only visible one, or (all of the job's GPUs visible, as sweep
/// launches) the one at its local rank, which the payload and nccl-tests select.
fn gpu_of_rank(b: &parsers::payload::Bind) -> String {
    let visible: Vec<&str> = b.gpu.split(',').collect();
    match (visible.len(), b.local_rank) {
        (1, _) => b.gpu.clone(),
        (_, Some(lr)) => visible.get(lr as usize).unwrap_or(&"").to_string(),
        _ => b.gpu.clone(),
    }
}

/// (expected CPUs not allowed, allowed CPUs not expected) as cpulists; empty when either list
/// is absent or unreadable.
fn cpu_difference(allowed: &str, expected: &str) -> (String, String) {
    use crate::profile::{format_cpulist, parse_cpulist};
    match (parse_cpulist(allowed), parse_cpulist(expected)) {
        (Ok(a), Ok(e)) => {
            let missing: Vec<u32> = e.iter().copied().filter(|c| !a.contains(c)).collect();
            let extra: Vec<u32> = a.iter().copied().filter(|c| !e.contains(c)).collect();
            let fmt = |v: &[u32]| {
                if v.is_empty() {
                    String::new()
                } else {
                    format_cpulist(v)
                }
            };
            (fmt(&missing), fmt(&extra))
        }
        _ => (String::new(), String::new()),
    }
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
