//! The CSV tables `collect` writes ([`Tables`] and the rows borrowed from the cache).

use std::path::Path;

use anyhow::Result;

use super::cache::Cache;
use super::file_result::{BindOut, FailOut, FileResult, GpuAgg};
use super::steps::{steady_flags, warmup_steps};
use super::{Run, Source, TABLES};
use crate::parsers;
use crate::rows::{
    Avail, BindingRow, FailureRow, GpuRow, NcclRow, NetRow, PowerRow, PreflightRow, RunRow, StepRow,
};

/// The files of each run, in run order, with their cached results: nccl.csv and steps.csv
/// list their rows straight from these (no copy of each row per run).
pub(super) struct Files<'a> {
    pub(super) per_run: &'a [Vec<&'a Source>],
    pub(super) cache: &'a Cache,
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

/// The large tables are made and written in pieces of about this size: never whole in memory.
const PIECE: usize = 1 << 20;

#[derive(Default)]
pub(super) struct Tables {
    pub(super) gpu: Vec<(String, GpuAgg)>,
    pub(super) failures: Vec<(String, FailOut)>,
    pub(super) binds: Vec<(String, BindOut)>,
    pub(super) nics: Vec<(String, parsers::telemetry::NicDelta)>,
    pub(super) preflight: Vec<(String, parsers::telemetry::PreflightRecord)>,
    /// (run, node, source, readings)
    pub(super) power: Vec<(String, String, String, Vec<Option<f64>>)>,
}

impl Tables {
    pub(super) fn append(&mut self, other: Tables) {
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

    pub(super) fn write(&self, out: &Path, runs: &[Run], files: &Files<'_>) -> Result<Vec<String>> {
        // steps.csv, the largest, is made and written on one core while the others are on
        // the other.
        let write =
            |name: &str, bytes: &[u8]| crate::campaign::write_if_changed(&out.join(name), bytes);
        let stream = |name: &str| crate::campaign::ChangedWriter::new(&out.join(name));
        let (steps, tables) = rayon::join(
            || Self::steps_csv(runs, files, stream("steps.csv")),
            || -> Result<Vec<String>> {
                let tables = self.small_tables(runs, files, stream("nccl.csv"))?;
                let mut written = Vec::new();
                for (name, bytes) in tables {
                    if name != "steps.csv" && name != "nccl.csv" {
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

    /// Made in pieces of about [`PIECE`] bytes, each compared with (or written to) the file.
    fn steps_csv(
        runs: &[Run],
        files: &Files<'_>,
        mut w: crate::campaign::ChangedWriter,
    ) -> Result<bool> {
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
                if out.len() >= PIECE {
                    w.push(&out)?;
                    out.clear();
                }
            }
        }
        w.push(&out)?;
        w.finish()
    }

    /// Every table but steps.csv (an empty placeholder), in the order they are written.
    /// nccl.csv is written to `nccl` (its entry here is an empty placeholder).
    fn small_tables(
        &self,
        runs: &[Run],
        files: &Files<'_>,
        nccl: crate::campaign::ChangedWriter,
    ) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut tables = Vec::with_capacity(TABLES.len());
        // nccl.csv, the largest of these, is made on another core meanwhile.
        let (nccl, rest) = rayon::join(|| Self::nccl_csv(files, nccl), || self.other_tables(runs));
        nccl?;
        tables.push(("nccl.csv", Vec::new()));
        tables.extend(rest?);
        Ok(tables)
    }

    /// nccl.csv: one row per result row, borrowed from the cache (tens of thousands of rows; no
    /// `String` per field).
    fn nccl_csv(files: &Files<'_>, mut w: crate::campaign::ChangedWriter) -> Result<bool> {
        let mut out = NcclRow::header()?;
        let mut num = String::new();
        let mut source = Vec::new();
        for (_, s, f) in files.each() {
            if f.nccl.is_empty() {
                continue;
            }
            source.clear();
            crate::rows::push_csv_field(&mut source, &s.key);
            source.push(b',');
            for r in &f.nccl {
                out.extend_from_slice(&source);
                NcclRow {
                    source: "".into(),
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
                .write_csv_after_source(&mut out, &mut num);
                if out.len() >= PIECE {
                    w.push(&out)?;
                    out.clear();
                }
            }
        }
        w.push(&out)?;
        w.finish()
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
                cpus_missing: b.cpus_missing.clone(),
                cpus_extra: b.cpus_extra.clone(),
                gpu_devices: b.gpu_devices,
                gpus_open: b.gpus_open.as_ref().map_or(String::new(), |g| {
                    g.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                }),
                gpus_reachable: b.gpus_open.as_ref().map(|g| g.len() as u32),
                gpus_on_node: b.gpus_on_node,
                gpus_ok: b.gpus_ok(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// net.csv's counter columns are the IB counters `net_row` fills them from, in order.
    #[test]
    fn net_counter_columns_are_the_ib_counters() {
        assert_eq!(
            crate::rows::NetRow::COLUMNS[14..24],
            parsers::telemetry::IB_COUNTERS[8..]
        );
    }
}
