//! `sweep analyze`: scaling efficiencies, bus bandwidth against line rates, per-job figures and
//! the plan's targets with the measured value beside each, from the tables `collect` wrote.
//!
//! Nothing is invented: a group whose baseline did not run (or measured nothing) says so in its
//! rows; a target no job measured is `not measured`, not failed and not passed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::profile::Profile;
use crate::rows::{GpuRow, NcclRow, RunRow};
use crate::spec::{TargetMetric, TargetSpec};

/// Parameters that change with the node count by construction, so points differing only in
/// them form one scaling group (`grad_accum` too for strong scaling, `global_batch` for weak).
const NODE_DEPENDENT: &[&str] = &[
    "nodes",
    "gpus",
    "world_size",
    "dp",
    "tokens_per_step",
    "repeat",
    "stage",
];

#[derive(Debug, Clone, Serialize)]
pub struct ScalingRow {
    pub kind: String,
    /// What the group holds fixed, as `key=value` pairs.
    pub group: String,
    pub model: String,
    pub nodes: u32,
    pub runs: usize,
    /// Mean over the repeats that measured it.
    pub samples_per_s: Option<f64>,
    pub baseline_nodes: u32,
    pub baseline_runs: String,
    pub baseline_samples_per_s: Option<f64>,
    pub efficiency_pct: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NcclSummary {
    pub run: String,
    pub collective: String,
    pub nranks: String,
    pub nodes: u32,
    pub peak_busbw_gbps: f64,
    pub peak_at_bytes: u64,
    /// Mean bus bandwidth of the three largest sizes (out-of-place).
    pub plateau_busbw_gbps: f64,
    /// The link the bus bandwidth is held against: NVLink per GPU within a node, the node's
    /// NICs across nodes.
    pub reference: String,
    pub reference_gbps: Option<f64>,
    pub peak_pct_of_reference: Option<f64>,
    pub plateau_pct_of_reference: Option<f64>,
}

/// One pair of nodes of the pairwise link test (`nccl-pairs.sbatch.j2`).
#[derive(Debug, Clone, Serialize)]
pub struct LinkRow {
    pub run: String,
    pub node_a: String,
    pub node_b: String,
    pub sendrecv_peak_busbw_gbps: Option<f64>,
    /// Against the node's NIC line rate (sendrecv between two nodes crosses it once).
    pub pct_of_line_rate: Option<f64>,
    /// all_reduce time at the smallest message size (out-of-place), microseconds.
    pub latency_us: Option<f64>,
    pub latency_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub index: usize,
    pub target: String,
    pub value: f64,
    pub unit: String,
    pub measured: Option<f64>,
    pub verdict: String,
    pub evidence: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepeatSummary {
    pub point: String,
    pub repeats: usize,
    pub metric: String,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub cv_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub run: String,
    pub stage: String,
    pub status: String,
    #[serde(serialize_with = "crate::rows::class_text::serialize")]
    pub failure_class: Option<crate::parsers::failures::FailureClass>,
    pub samples_per_s: Option<f64>,
    pub tokens_per_s_per_gpu: Option<f64>,
    pub mfu_pct: Option<f64>,
    pub gpu_util_avg: Option<f64>,
    pub gpu_util_min: Option<f64>,
    pub gpu_util_max: Option<f64>,
    pub max_mem_gib: Option<f64>,
    pub power_w_avg: Option<f64>,
    pub gpu_temp_max: Option<f64>,
    pub comm_compute_ratio: Option<f64>,
    /// The GPU with the lowest average utilisation: `node/gpu (util %)`.
    pub slowest_gpu: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub scaling: Vec<ScalingRow>,
    pub links: Vec<LinkRow>,
    pub nccl: Vec<NcclSummary>,
    pub targets: Vec<TargetResult>,
    pub repeats: Vec<RepeatSummary>,
    pub jobs: Vec<JobSummary>,
    pub notes: Vec<String>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// What tells a run's point apart, `(column, cell)` by column name.
fn params_of(r: &RunRow) -> Vec<(&str, String)> {
    r.point_cells().into_iter().collect()
}

/// Scaling groups: weak (same point but the node count; the global batch grows) and strong
/// (same global batch; the accumulation shrinks). Efficiency = throughput(N) / (throughput(base)
/// x N / base), base the smallest node count of the group.
pub(crate) fn scaling(runs: &[RunRow]) -> Vec<ScalingRow> {
    let mut out = Vec::new();
    for (kind, also) in [("weak", "global_batch"), ("strong", "grad_accum")] {
        let mut groups: BTreeMap<String, Vec<&RunRow>> = BTreeMap::new();
        for r in runs
            .iter()
            .filter(|r| !r.param("micro_batch").is_empty() && r.param_f64("nodes").is_some())
        {
            if kind == "strong" && r.param("global_batch").is_empty() {
                continue;
            }
            let key: Vec<String> = params_of(r)
                .into_iter()
                .filter(|(k, _)| !NODE_DEPENDENT.contains(k) && *k != also)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            groups.entry(key.join(" ")).or_default().push(r);
        }
        for (key, members) in groups {
            let mut by_nodes: BTreeMap<u32, Vec<&RunRow>> = BTreeMap::new();
            for r in &members {
                by_nodes
                    .entry(r.param_f64("nodes").unwrap_or(0.0) as u32)
                    .or_default()
                    .push(r);
            }
            if by_nodes.len() < 2 {
                continue;
            }
            // Weak groups need a growing global batch, strong ones a fixed one.
            let batches: std::collections::BTreeSet<&str> =
                members.iter().map(|r| r.param("global_batch")).collect();
            if (kind == "weak" && batches.len() < 2) || (kind == "strong" && batches.len() != 1) {
                continue;
            }
            let thr = |rs: &[&RunRow]| {
                mean(
                    &rs.iter()
                        .filter_map(|r| r.figures.samples_per_s)
                        .collect::<Vec<_>>(),
                )
            };
            let Some((&base_n, base_runs)) = by_nodes.iter().next() else {
                continue;
            };
            let base_thr = thr(base_runs);
            let base_names = base_runs
                .iter()
                .map(|r| r.run.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            for (&n, rs) in &by_nodes {
                let t = thr(rs);
                let (eff, note) = match (t, base_thr) {
                    _ if n == base_n => (t.map(|_| 100.0), "baseline".to_string()),
                    (Some(t), Some(b)) if b > 0.0 => (
                        Some(100.0 * t / (b * n as f64 / base_n as f64)),
                        String::new(),
                    ),
                    (Some(_), _) => (
                        None,
                        format!(
                            "baseline ({base_n} nodes) measured no throughput ({})",
                            base_runs
                                .iter()
                                .map(|r| r.status.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    (None, _) => (
                        None,
                        format!(
                            "no throughput measured ({})",
                            rs.iter()
                                .map(|r| r.status.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                };
                out.push(ScalingRow {
                    kind: kind.into(),
                    group: key.clone(),
                    model: rs[0].param("model").into(),
                    nodes: n,
                    runs: rs.len(),
                    samples_per_s: t,
                    baseline_nodes: base_n,
                    baseline_runs: base_names.clone(),
                    baseline_samples_per_s: base_thr,
                    efficiency_pct: eff,
                    note,
                });
            }
        }
    }
    out
}

/// Peak and plateau bus bandwidth per run and collective, against NVLink (one node) or the
/// node's NIC line rate (several nodes; NCCL spreads a node's traffic over all its NICs).
pub(crate) fn nccl_summary(
    nccl: &[NcclRow],
    runs: &[RunRow],
    profile: Option<&Profile>,
) -> Vec<NcclSummary> {
    let mut groups: BTreeMap<(String, String, String), Vec<&NcclRow>> = BTreeMap::new();
    for r in nccl.iter().filter(|r| r.placement != "in_place") {
        let run = r.source.split('/').take(2).collect::<Vec<_>>().join("/");
        groups
            .entry((run, r.collective.to_string(), nranks_text(r)))
            .or_default()
            .push(r);
    }
    let mut out = Vec::new();
    for ((src, coll, nranks), rows) in groups {
        let job = src.strip_prefix("jobs/").unwrap_or(&src).to_string();
        let nodes = rows
            .iter()
            .find_map(|r| r.nodes.map(|n| n as f64))
            .or_else(|| {
                runs.iter()
                    .find(|r| r.run == job)
                    .and_then(|r| r.param_f64("nodes"))
            })
            .unwrap_or(1.0) as u32;
        let mut by_size: Vec<(u64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.size_bytes, r.busbw_gbps?)))
            .collect();
        by_size.sort_by_key(|x| x.0);
        let Some(&(peak_at, peak)) = by_size.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            continue;
        };
        let tail: Vec<f64> = by_size.iter().rev().take(3).map(|x| x.1).collect();
        let plateau = mean(&tail).unwrap_or(0.0);
        let (reference, rate) = match profile {
            Some(p) if nodes > 1 => {
                let gbps: f64 = p.nics.iter().map(|n| n.rate_gbps).sum();
                (
                    format!("NICs {} Gb/s per node", gbps),
                    (gbps > 0.0).then_some(gbps / 8.0),
                )
            }
            Some(p) => (
                "NVLink per GPU per direction".to_string(),
                p.gpu.nvlink_gb_s,
            ),
            None => (String::new(), None),
        };
        let pct = |x: f64| rate.filter(|r| *r > 0.0).map(|r| 100.0 * x / r);
        out.push(NcclSummary {
            run: job,
            collective: coll,
            nranks,
            nodes,
            peak_busbw_gbps: peak,
            peak_at_bytes: peak_at,
            plateau_busbw_gbps: plateau,
            reference,
            reference_gbps: rate,
            peak_pct_of_reference: pct(peak),
            plateau_pct_of_reference: pct(plateau),
        });
    }
    out
}

/// nccl.csv's `nranks` cell (empty when unknown), the text the summary groups and shows.
pub(crate) fn nranks_text(r: &NcclRow) -> String {
    r.nranks.map(|n| n.to_string()).unwrap_or_default()
}

fn describe(t: &TargetSpec) -> String {
    let mut d = t.metric.as_str().to_string();
    if let Some(m) = &t.model {
        d.push_str(&format!(" {m}"));
    }
    if let Some(n) = t.nodes {
        d.push_str(&format!(" {n} nodes"));
    }
    d
}

/// Every target with the best measured value of the jobs it selects.
pub(crate) fn targets(
    ts: &[TargetSpec],
    runs: &[RunRow],
    scaling: &[ScalingRow],
    nccl: &[NcclSummary],
) -> Vec<TargetResult> {
    let mut out = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let sel: Vec<&RunRow> = runs
            .iter()
            .filter(|r| {
                t.model.as_ref().is_none_or(|m| {
                    crate::model::canonical_name(r.param("model"))
                        == crate::model::canonical_name(m)
                })
            })
            .filter(|r| {
                t.nodes
                    .is_none_or(|n| r.param_f64("nodes") == Some(n as f64))
            })
            .filter(|r| t.stage.as_ref().is_none_or(|st| &r.stage == st))
            .collect();
        let best = |vals: Vec<(f64, String)>| vals.into_iter().max_by(|a, b| a.0.total_cmp(&b.0));
        let (measured, evidence) = match t.metric {
            TargetMetric::Throughput => {
                let tokens = t.unit() == "tokens/s";
                best(
                    sel.iter()
                        .filter_map(|r| {
                            let v = if tokens {
                                r.figures.tokens_per_s
                            } else {
                                r.figures.samples_per_s
                            };
                            Some((v?, r.run.clone()))
                        })
                        .collect(),
                )
                .unzip()
            }
            TargetMetric::GpuUtil => best(
                sel.iter()
                    .filter(|r| !r.param("micro_batch").is_empty())
                    .filter_map(|r| Some((r.figures.gpu_util_avg?, r.run.clone())))
                    .collect(),
            )
            .unzip(),
            TargetMetric::ScalingEfficiency => best(
                scaling
                    .iter()
                    .filter(|x| t.nodes.is_none_or(|n| x.nodes == n) && x.note != "baseline")
                    .filter(|x| {
                        t.model.as_ref().is_none_or(|m| {
                            crate::model::canonical_name(&x.model)
                                == crate::model::canonical_name(m)
                        })
                    })
                    .filter_map(|x| {
                        Some((
                            x.efficiency_pct?,
                            format!(
                                "{} scaling {} -> {} nodes",
                                x.kind, x.baseline_nodes, x.nodes
                            ),
                        ))
                    })
                    .collect(),
            )
            .unzip(),
            TargetMetric::Bandwidth => best(
                nccl.iter()
                    .filter(|x| x.nodes > 1 && t.nodes.is_none_or(|n| x.nodes == n))
                    .map(|x| {
                        (
                            x.peak_busbw_gbps
                                * 8.0
                                * if t.unit() == "GB/s" { 1.0 / 8.0 } else { 1.0 },
                            format!("{} {}", x.run, x.collective),
                        )
                    })
                    .collect(),
            )
            .unzip(),
            TargetMetric::BandwidthUtilization => best(
                nccl.iter()
                    .filter(|x| t.nodes.is_none_or(|n| x.nodes == n))
                    .filter_map(|x| {
                        Some((
                            x.peak_pct_of_reference?,
                            format!("{} {} vs {}", x.run, x.collective, x.reference),
                        ))
                    })
                    .collect(),
            )
            .unzip(),
        };
        let verdict = match measured {
            None => "not measured".to_string(),
            Some(m) if m >= t.value => "pass".to_string(),
            Some(_) => "fail".to_string(),
        };
        out.push(TargetResult {
            index: i + 1,
            target: describe(t),
            value: t.value,
            unit: t.unit().to_string(),
            measured,
            verdict,
            evidence: evidence.unwrap_or_default(),
        });
    }
    out
}

/// A figure of a run, read from its row.
type Figure = fn(&RunRow) -> Option<f64>;

/// Repeats of one point (`-r0`, `-r1`, ...): mean, min, max and coefficient of variation.
pub(crate) fn repeats(runs: &[RunRow]) -> Vec<RepeatSummary> {
    let mut groups: BTreeMap<String, Vec<&RunRow>> = BTreeMap::new();
    for r in runs {
        let key: Vec<String> = params_of(r)
            .into_iter()
            .filter(|(k, _)| *k != "repeat")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        groups.entry(key.join(" ")).or_default().push(r);
    }
    let mut out = Vec::new();
    for (_, rs) in groups.into_iter().filter(|(_, rs)| rs.len() > 1) {
        let metrics: [(&str, Figure); 2] = [
            ("samples_per_s", |r| r.figures.samples_per_s),
            ("step_time_ms_p50", |r| r.figures.step_time_ms_p50),
        ];
        for (metric, value) in metrics {
            let v: Vec<f64> = rs.iter().filter_map(|r| value(r)).collect();
            let Some(m) = mean(&v) else { continue };
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            out.push(RepeatSummary {
                point: rs[0]
                    .run
                    .trim_end_matches(|c: char| c != '-')
                    .trim_end_matches('-')
                    .to_string(),
                repeats: v.len(),
                metric: metric.into(),
                mean: m,
                min: v.iter().copied().fold(f64::INFINITY, f64::min),
                max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                cv_pct: if m != 0.0 { 100.0 * sd / m } else { 0.0 },
            });
        }
    }
    out
}

pub(crate) fn jobs(runs: &[RunRow], gpu: &[GpuRow]) -> Vec<JobSummary> {
    runs.iter()
        .map(|r| {
            let run = r.run.as_str();
            let slowest = gpu
                .iter()
                .filter(|g| g.run == run)
                .filter_map(|g| Some((g.util_avg?, format!("{}/{}", g.node, g.gpu))))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(u, n)| format!("{n} ({u:.1} %)"))
                .unwrap_or_default();
            JobSummary {
                run: run.into(),
                stage: r.stage.clone(),
                status: r.status.clone(),
                failure_class: r.failure_class,
                samples_per_s: r.figures.samples_per_s,
                tokens_per_s_per_gpu: r
                    .figures
                    .tokens_per_s
                    .zip(r.param_f64("gpus"))
                    .map(|(t, g)| t / g.max(1.0)),
                mfu_pct: r.figures.mfu_pct,
                gpu_util_avg: r.figures.gpu_util_avg,
                gpu_util_min: r.figures.gpu_util_min,
                gpu_util_max: r.figures.gpu_util_max,
                max_mem_gib: r.figures.max_mem_gib,
                power_w_avg: r.figures.power_w_avg,
                gpu_temp_max: r.figures.gpu_temp_max,
                comm_compute_ratio: r.figures.comm_compute_ratio,
                slowest_gpu: slowest,
            }
        })
        .collect()
}

/// The node-by-node table of the pairwise link tests, from logs named
/// `pair=<node a>=<node b>=sendrecv.log` and `...=latency.log`.
pub(crate) fn links(nccl: &[NcclRow], profile: Option<&Profile>) -> Vec<LinkRow> {
    type Acc = (Option<f64>, Option<(u64, f64)>);
    let mut pairs: BTreeMap<(String, String, String), Acc> = BTreeMap::new();
    for r in nccl.iter().filter(|r| r.placement != "in_place") {
        let src: &str = &r.source;
        let (dir, file) = src.rsplit_once('/').unwrap_or(("", src));
        let parts: Vec<&str> = file.split('=').collect();
        let [p, a, b, kind] = parts.as_slice() else {
            continue;
        };
        if *p != "pair" {
            continue;
        }
        let job = dir.strip_prefix("jobs/").unwrap_or(dir).to_string();
        let e = pairs
            .entry((job, a.to_string(), b.to_string()))
            .or_default();
        match *kind {
            "sendrecv.log" => {
                if let Some(bw) = r.busbw_gbps {
                    e.0 = Some(e.0.map_or(bw, |x: f64| x.max(bw)));
                }
            }
            "latency.log" => {
                if let (size, Some(t)) = (r.size_bytes, r.time_us)
                    && e.1.is_none_or(|(s0, _)| size < s0)
                {
                    e.1 = Some((size, t));
                }
            }
            _ => {}
        }
    }
    let line = profile
        .map(|p| p.nics.iter().map(|n| n.rate_gbps).sum::<f64>() / 8.0)
        .filter(|x| *x > 0.0);
    pairs
        .into_iter()
        .map(|((run, a, b), (bw, lat))| LinkRow {
            run,
            node_a: a,
            node_b: b,
            sendrecv_peak_busbw_gbps: bw,
            pct_of_line_rate: bw.zip(line).map(|(x, l)| 100.0 * x / l),
            latency_us: lat.map(|x| x.1),
            latency_bytes: lat.map(|x| x.0),
        })
        .collect()
}

/// Analyses a campaign whose tables `collect` wrote into `results`.
pub(crate) fn analyze(campaign: &Path, results: &Path) -> Result<Analysis> {
    let runs = RunRow::read_all(&results.join("runs.csv"))?;
    let nccl: Vec<NcclRow> = crate::rows::read(&results.join("nccl.csv"))?;
    let gpu: Vec<GpuRow> = crate::rows::read(&results.join("gpu.csv"))?;
    let profile = std::fs::read_to_string(campaign.join("profile.toml"))
        .ok()
        .and_then(|t| Profile::parse(&campaign.join("profile.toml"), &t).ok());
    let sweep_targets = crate::spec::load(&campaign.join("sweep.toml"))
        .map(|s| s.spec.targets)
        .unwrap_or_default();
    let sc = scaling(&runs);
    let nc = nccl_summary(&nccl, &runs, profile.as_ref());
    let mut notes = Vec::new();
    if sc.is_empty() {
        notes.push("no scaling group: no two jobs differ only in their node count".to_string());
    }
    let tg = targets(&sweep_targets, &runs, &sc, &nc);
    Ok(Analysis {
        links: links(&nccl, profile.as_ref()),
        repeats: repeats(&runs),
        jobs: jobs(&runs, &gpu),
        scaling: sc,
        nccl: nc,
        targets: tg,
        notes,
    })
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_default()
}

/// Writes `scaling.csv`, `nccl_summary.csv`, `targets.csv`, `repeats.csv` and `jobs.csv`.
pub(crate) fn write_tables(a: &Analysis, out: &Path) -> Result<Vec<String>> {
    let mut w = CsvTables {
        out,
        written: Vec::new(),
    };
    w.put("scaling.csv", scaling_table(&a.scaling))?;
    w.put("nccl_summary.csv", nccl_summary_table(&a.nccl))?;
    w.put("links.csv", links_table(&a.links))?;
    w.put("targets.csv", targets_table(&a.targets))?;
    w.put("repeats.csv", repeats_table(&a.repeats))?;
    w.put("jobs.csv", jobs_table(&a.jobs))?;
    Ok(w.written)
}

/// The folder the tables go to and their names in the order written, which the caller reports.
struct CsvTables<'a> {
    out: &'a Path,
    written: Vec<String>,
}

impl CsvTables<'_> {
    fn put(&mut self, name: &str, (header, rows): (&[&str], Vec<Vec<String>>)) -> Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header)?;
        for r in rows {
            w.write_record(&r)?;
        }
        crate::campaign::write_if_changed(&self.out.join(name), &w.into_inner()?)?;
        self.written.push(name.to_string());
        Ok(())
    }
}

/// `scaling.csv`: its header and one row per [`ScalingRow`].
fn scaling_table(rows: &[ScalingRow]) -> (&'static [&'static str], Vec<Vec<String>>) {
    let header = &[
        "kind",
        "group",
        "model",
        "nodes",
        "runs",
        "samples_per_s",
        "baseline_nodes",
        "baseline_runs",
        "baseline_samples_per_s",
        "efficiency_pct",
        "note",
    ];
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                r.kind.clone(),
                r.group.clone(),
                r.model.clone(),
                r.nodes.to_string(),
                r.runs.to_string(),
                opt(r.samples_per_s),
                r.baseline_nodes.to_string(),
                r.baseline_runs.clone(),
                opt(r.baseline_samples_per_s),
                opt(r.efficiency_pct),
                r.note.clone(),
            ]
        })
        .collect();
    (header, rows)
}

/// `nccl_summary.csv`: its header and one row per [`NcclSummary`].
fn nccl_summary_table(rows: &[NcclSummary]) -> (&'static [&'static str], Vec<Vec<String>>) {
    let header = &[
        "run",
        "collective",
        "nranks",
        "nodes",
        "peak_busbw_gbps",
        "peak_at_bytes",
        "plateau_busbw_gbps",
        "reference",
        "reference_gbps",
        "peak_pct_of_reference",
        "plateau_pct_of_reference",
    ];
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                r.run.clone(),
                r.collective.clone(),
                r.nranks.clone(),
                r.nodes.to_string(),
                format!("{:.4}", r.peak_busbw_gbps),
                r.peak_at_bytes.to_string(),
                format!("{:.4}", r.plateau_busbw_gbps),
                r.reference.clone(),
                opt(r.reference_gbps),
                opt(r.peak_pct_of_reference),
                opt(r.plateau_pct_of_reference),
            ]
        })
        .collect();
    (header, rows)
}

/// `links.csv`: its header and one row per [`LinkRow`].
fn links_table(rows: &[LinkRow]) -> (&'static [&'static str], Vec<Vec<String>>) {
    let header = &[
        "run",
        "node_a",
        "node_b",
        "sendrecv_peak_busbw_gbps",
        "pct_of_line_rate",
        "latency_us",
        "latency_bytes",
    ];
    let rows = rows
        .iter()
        .map(|l| {
            vec![
                l.run.clone(),
                l.node_a.clone(),
                l.node_b.clone(),
                opt(l.sendrecv_peak_busbw_gbps),
                opt(l.pct_of_line_rate),
                opt(l.latency_us),
                l.latency_bytes.map(|b| b.to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    (header, rows)
}

/// `targets.csv`: its header and one row per [`TargetResult`].
fn targets_table(rows: &[TargetResult]) -> (&'static [&'static str], Vec<Vec<String>>) {
    let header = &[
        "index", "target", "value", "unit", "measured", "verdict", "evidence",
    ];
    let rows = rows
        .iter()
        .map(|t| {
            vec![
                t.index.to_string(),
                t.target.clone(),
                t.value.to_string(),
                t.unit.clone(),
                opt(t.measured),
                t.verdict.clone(),
                t.evidence.clone(),
            ]
        })
        .collect();
    (header, rows)
}

/// `repeats.csv`: its header and one row per [`RepeatSummary`].
fn repeats_table(rows: &[RepeatSummary]) -> (&'static [&'static str], Vec<Vec<String>>) {
    let header = &["point", "repeats", "metric", "mean", "min", "max", "cv_pct"];
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                r.point.clone(),
                r.repeats.to_string(),
                r.metric.clone(),
                format!("{:.4}", r.mean),
                format!("{:.4}", r.min),
                format!("{:.4}", r.max),
                format!("{:.2}", r.cv_pct),
            ]
        })
        .collect();
    (header, rows)
}

/// `jobs.csv`: its header and one row per [`JobSummary`].
fn jobs_table(rows: &[JobSummary]) -> (&'static [&'static str], Vec<Vec<String>>) {
    let header = &[
        "run",
        "stage",
        "status",
        "failure_class",
        "samples_per_s",
        "tokens_per_s_per_gpu",
        "mfu_pct",
        "gpu_util_avg",
        "gpu_util_min",
        "gpu_util_max",
        "max_mem_gib",
        "power_w_avg",
        "gpu_temp_max",
        "comm_compute_ratio",
        "slowest_gpu",
    ];
    let rows = rows
        .iter()
        .map(|j| {
            vec![
                j.run.clone(),
                j.stage.clone(),
                j.status.clone(),
                crate::rows::class_str(j.failure_class).to_string(),
                opt(j.samples_per_s),
                opt(j.tokens_per_s_per_gpu),
                opt(j.mfu_pct),
                opt(j.gpu_util_avg),
                opt(j.gpu_util_min),
                opt(j.gpu_util_max),
                opt(j.max_mem_gib),
                opt(j.power_w_avg),
                opt(j.gpu_temp_max),
                opt(j.comm_compute_ratio),
                j.slowest_gpu.clone(),
            ]
        })
        .collect();
    (header, rows)
}

pub(crate) fn render(a: &Analysis) -> String {
    use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
    let mut out = String::new();
    let n = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    if !a.scaling.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header([
            "kind",
            "model",
            "nodes",
            "samples/s",
            "baseline",
            "efficiency %",
            "note",
        ]);
        for r in &a.scaling {
            t.add_row(vec![
                r.kind.clone(),
                r.model.clone(),
                r.nodes.to_string(),
                n(r.samples_per_s),
                format!("{} nodes", r.baseline_nodes),
                n(r.efficiency_pct),
                r.note.clone(),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    if !a.nccl.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header([
            "run",
            "collective",
            "ranks",
            "nodes",
            "peak busbw GB/s",
            "plateau GB/s",
            "% of reference",
        ]);
        for r in &a.nccl {
            t.add_row(vec![
                r.run.clone(),
                r.collective.clone(),
                r.nranks.clone(),
                r.nodes.to_string(),
                format!("{:.1}", r.peak_busbw_gbps),
                format!("{:.1}", r.plateau_busbw_gbps),
                n(r.peak_pct_of_reference),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    if !a.targets.is_empty() {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_header(["#", "target", "wanted", "measured", "verdict", "evidence"]);
        for r in &a.targets {
            t.add_row(vec![
                r.index.to_string(),
                r.target.clone(),
                format!("{} {}", r.value, r.unit),
                n(r.measured),
                r.verdict.clone(),
                r.evidence.clone(),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
    for note in &a.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runs.csv row with the given columns (the algebra, not a log: the parsers are tested
    /// on real logs elsewhere).
    fn row(kv: &[(&str, &str)]) -> RunRow {
        let mut r = RunRow::default();
        for (k, v) in kv {
            match *k {
                "run" => r.run = v.to_string(),
                "stage" => r.stage = v.to_string(),
                "status" => r.status = v.to_string(),
                "samples_per_s" => r.figures.samples_per_s = v.parse().ok(),
                _ => {
                    r.params.insert(k.to_string(), v.to_string());
                }
            }
        }
        r
    }

    fn weak(run: &str, nodes: &str, gb: &str, sps: &str, status: &str) -> RunRow {
        row(&[
            ("run", run),
            ("stage", "s"),
            ("model", "llama2-7b"),
            ("micro_batch", "16"),
            ("grad_accum", "8"),
            ("nodes", nodes),
            ("gpus", "8"),
            ("global_batch", gb),
            ("samples_per_s", sps),
            ("status", status),
        ])
    }

    #[test]
    fn weak_scaling_against_the_smallest_node_count() {
        let runs = vec![
            weak("a", "2", "2048", "100", "COMPLETED"),
            weak("b", "4", "4096", "190", "COMPLETED"),
            weak("c", "8", "8192", "360", "COMPLETED"),
        ];
        let sc = scaling(&runs);
        let e: Vec<(u32, Option<f64>)> = sc.iter().map(|r| (r.nodes, r.efficiency_pct)).collect();
        assert_eq!(e, vec![(2, Some(100.0)), (4, Some(95.0)), (8, Some(90.0))]);
        assert!(
            sc.iter()
                .all(|r| r.kind == "weak" && r.baseline_runs == "a")
        );
    }

    #[test]
    fn a_missing_baseline_is_reported_never_invented() {
        let runs = vec![
            weak("a", "2", "2048", "", "OUT_OF_MEMORY"),
            weak("b", "4", "4096", "190", "COMPLETED"),
        ];
        let sc = scaling(&runs);
        let b = sc.iter().find(|r| r.nodes == 4).unwrap();
        assert_eq!(b.efficiency_pct, None);
        assert!(
            b.note
                .contains("baseline (2 nodes) measured no throughput (OUT_OF_MEMORY)"),
            "{}",
            b.note
        );
    }

    #[test]
    fn strong_scaling_holds_the_global_batch() {
        let mk = |run: &str, nodes: &str, ga: &str, sps: &str| {
            row(&[
                ("run", run),
                ("model", "llama2-13b"),
                ("micro_batch", "8"),
                ("grad_accum", ga),
                ("nodes", nodes),
                ("global_batch", "2048"),
                ("samples_per_s", sps),
            ])
        };
        let sc = scaling(&[
            mk("x", "2", "16", "50"),
            mk("y", "4", "8", "90"),
            mk("z", "8", "4", "160"),
        ]);
        let e: Vec<(String, u32, Option<f64>)> = sc
            .iter()
            .map(|r| (r.kind.clone(), r.nodes, r.efficiency_pct))
            .collect();
        assert_eq!(
            e,
            vec![
                ("strong".into(), 2, Some(100.0)),
                ("strong".into(), 4, Some(90.0)),
                ("strong".into(), 8, Some(80.0))
            ]
        );
    }

    #[test]
    fn targets_pass_fail_or_not_measured() {
        let runs = vec![weak("a", "2", "2048", "100", "COMPLETED")];
        let t = |v: f64, nodes: u32| TargetSpec {
            metric: TargetMetric::Throughput,
            model: Some("Llama-2-7B".into()),
            nodes: Some(nodes),
            stage: None,
            value: v,
            unit: None,
            note: None,
        };
        let r = targets(&[t(90.0, 2), t(8000.0, 2), t(10.0, 8)], &runs, &[], &[]);
        let v: Vec<&str> = r.iter().map(|x| x.verdict.as_str()).collect();
        assert_eq!(v, vec!["pass", "fail", "not measured"]);
        assert_eq!(r[1].measured, Some(100.0));
    }

    #[test]
    fn repeats_give_mean_spread_and_cv() {
        let mk = |run: &str, rep: &str, sps: &str| {
            row(&[
                ("run", run),
                ("model", "m"),
                ("repeat", rep),
                ("samples_per_s", sps),
            ])
        };
        let r = repeats(&[mk("p-r0-aa", "0", "90"), mk("p-r1-bb", "1", "110")]);
        let s = r.iter().find(|x| x.metric == "samples_per_s").unwrap();
        assert_eq!((s.repeats, s.mean, s.min, s.max), (2, 100.0, 90.0, 110.0));
        assert!((s.cv_pct - 10.0).abs() < 1e-9);
    }
}
