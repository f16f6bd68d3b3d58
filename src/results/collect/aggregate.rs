//! One run's files aggregated: its figures ([`RunSums`]), its failure, and its rows of the
//! per-run tables.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::cache::Cache;
use super::file_result::{FailOut, FileResult, NcclFacts, StepOrigin};
use super::steps::{steady_flags, warmup_steps};
use super::tables::Tables;
use super::{Options, Run, Source};
use crate::job_state::JobState;
use crate::parsers::failures::FailureClass;

/// One run's rows of every table, its figures and the warnings of its files.
pub(super) fn aggregate_run(
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
    if run.of_file {
        run.status = logs_status(run, files).to_string();
    }
}

/// runs.csv's `status` of a `--logs` file, which has no job state: `failed` when a failure
/// class was found, `ok` when the run's figures were read (a step row, an nccl-tests result, a
/// throughput), else empty (nothing to say).
fn logs_status(run: &Run, files: &[(&Source, &FileResult)]) -> &'static str {
    const THROUGHPUT: &[&str] = &[
        "samples_per_s",
        "tokens_per_s",
        "tflops_per_gpu",
        "profiler_tflops_per_gpu",
        "profiler_samples_per_s",
        "busbw_gbps_peak",
        "busbw_gbps_avg",
    ];
    if run.failure_class.is_some() {
        "failed"
    } else if files
        .iter()
        .any(|(_, f)| !f.steps.is_empty() || !f.nccl.is_empty())
        || THROUGHPUT
            .iter()
            .any(|k| run.figures.get(*k).is_some_and(Option::is_some))
    {
        "ok"
    } else {
        ""
    }
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
        self.bind_mismatches += f
            .binds
            .iter()
            .filter(|b| !b.cpus_ok || !b.gpu_ok || b.gpus_ok() == Some(false))
            .count();
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
        // runs.csv's status: a job state (a file of `--logs` has none: its status is set after).
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

pub(crate) fn median(v: &[f64]) -> Option<f64> {
    percentile(v, 50.0)
}

/// Nearest-rank percentile of finite values.
fn percentile(v: &[f64], p: f64) -> Option<f64> {
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
