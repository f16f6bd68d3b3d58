//! One typed row per table `collect` writes: collect makes them, `analyze` and `report` read
//! them back. A column is a field, so renaming one is a compile error in every reader rather
//! than a lookup that silently finds nothing.
//!
//! Field names and order are the tables' columns. Numbers are written by `fmt_into` (the
//! bytes every table has always had) and read back as `None` when a cell is empty or not a
//! finite number (not a measurement). runs.csv has columns that depend on the campaign (the
//! point's parameters, `[[collect.pattern]]` columns): `RunRow` reads and writes them itself,
//! since the csv crate's serde cannot flatten a map.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};

use crate::parsers::failures::FailureClass;
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Every row of a table with fixed columns (all but runs.csv), matched to the header by name.
pub(crate) fn read<T: DeserializeOwned>(p: &Path) -> Result<Vec<T>> {
    let mut r = csv::Reader::from_path(p).with_context(|| format!("reading {}", p.display()))?;
    r.deserialize()
        .collect::<Result<Vec<T>, _>>()
        .with_context(|| format!("reading {}", p.display()))
}

/// A table of fixed columns as the csv crate writes it: the header even without rows.
fn write<T: Serialize>(columns: &[&str], rows: &[T]) -> Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(columns)?;
    for r in rows {
        w.serialize(r)?;
    }
    Ok(w.into_inner()?)
}

/// A number as every table writes it: an integer without a fraction, else four decimals;
/// nothing for `None` (not measured).
fn fmt_opt(v: Option<f64>) -> String {
    let mut s = String::new();
    fmt_into(&mut s, v);
    s
}

/// [`fmt_opt`] appended to `buf` (no allocation per value).
fn fmt_into(buf: &mut String, v: Option<f64>) {
    use std::fmt::Write as _;
    if let Some(x) = v {
        // Writing to a String cannot fail.
        let _ = if x.fract() == 0.0 && x.abs() < 1e15 {
            if x == 0.0 && x.is_sign_negative() {
                buf.push_str("-0");
            } else {
                buf.push_str(itoa::Buffer::new().format(x as i64));
            }
            Ok(())
        } else if !fixed4(buf, x) {
            write!(buf, "{x:.4}")
        } else {
            Ok(())
        };
    }
}

/// A measured quantity (a time, a bandwidth, a throughput) as its columns write it: always four
/// decimals, whole values included (`64.0000`, not `64`), so that a column has one form;
/// nothing for `None`.
fn fmt4_into(buf: &mut String, v: Option<f64>) {
    if let Some(x) = v
        && !fixed4(buf, x)
    {
        use std::fmt::Write as _;
        let _ = write!(buf, "{x:.4}");
    }
}

/// [`fmt4_into`] to a new `String`.
fn fmt4_opt(v: Option<f64>) -> String {
    let mut s = String::new();
    fmt4_into(&mut s, v);
    s
}

/// `{x:.4}` for |x| < 1e15, in integer arithmetic: x is m·2^e exactly, so x·10^4 rounded
/// half to even (as `std` rounds the exact value) is an integer division and a comparison;
/// `std`'s general exact formatter costs several times more per value. False (nothing
/// written) for other values.
fn fixed4(buf: &mut String, x: f64) -> bool {
    if !x.is_finite() || x.abs() >= 1e15 {
        return false;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    };
    let m4 = u128::from(m) * 10_000;
    let q = if e >= 0 {
        m4 << e
    } else if -e >= 127 {
        // m·10^4 < 2^67: below half a unit of 10^-4.
        0
    } else {
        let sh = -e as u32;
        let q = m4 >> sh;
        let r = m4 & ((1u128 << sh) - 1);
        let half = 1u128 << (sh - 1);
        if r > half || (r == half && q & 1 == 1) {
            q + 1
        } else {
            q
        }
    };
    if x.is_sign_negative() {
        buf.push('-');
    }
    buf.push_str(itoa::Buffer::new().format(q / 10_000));
    let f = (q % 10_000) as u16;
    buf.push('.');
    for d in [f / 1000, f / 100 % 10, f / 10 % 10, f % 10] {
        buf.push(char::from(b'0' + d as u8));
    }
    true
}

/// `field` as the csv crate writes a field of a record of several (its default
/// `QuoteStyle::Necessary`): quoted, with quotes doubled, when it holds a comma, a quote or a
/// line break (the tests hold the two to the same bytes).
pub(crate) fn push_csv_field(out: &mut Vec<u8>, field: &str) {
    let b = field.as_bytes();
    // No early exit: a fold the compiler vectorises (the fields are short and nearly never
    // quoted).
    if !b
        .iter()
        .fold(false, |q, c| q | matches!(c, b',' | b'"' | b'\n' | b'\r'))
    {
        out.extend_from_slice(b);
        return;
    }
    out.push(b'"');
    for &c in b {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// A cell's text as a measurement: empty, not a number or not finite is `None`.
fn parse_num(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Visits a cell's text without copying it.
struct Text<F>(F);

impl<T, F: Fn(&str) -> T> serde::de::Visitor<'_> for Text<F> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a table cell")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.0)(v))
    }
}

/// A number cell: [`fmt_into`]'s text, empty for `None`.
pub(crate) mod num {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::fmt_opt(*v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_str(super::Text(super::parse_num))
    }
}

/// A measured-quantity cell: [`fmt4_into`]'s text, empty for `None`.
pub(crate) mod num4 {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::fmt4_opt(*v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_str(super::Text(super::parse_num))
    }
}

/// nccl.csv's `max_error`: as nccl-tests printed it (`1e+00`, `2e-07`): the figure is an order
/// of magnitude, and the fixed four decimals of the other columns would round small errors to
/// zero.
mod exp {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(e) => s.serialize_str(&format!("{e:e}")),
            None => s.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_str(super::Text(super::parse_num))
    }
}

/// A cell of net.csv or power.csv: a number, or `not available` where the device or node has
/// no such counter or source (never empty). Kept as written, `NaN` and `inf` included, so that
/// the report shows the cell's text; [`Avail::value`] is the measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Avail(pub Option<f64>);

const NOT_AVAILABLE: &str = "not available";

impl Avail {
    /// The value, `None` when not available or not finite.
    pub(crate) fn value(self) -> Option<f64> {
        self.0.filter(|x| x.is_finite())
    }

    /// The cell's text.
    pub(crate) fn text(self) -> String {
        match self.0 {
            Some(x) => fmt_opt(Some(x)),
            None => NOT_AVAILABLE.to_string(),
        }
    }
}

impl Serialize for Avail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for Avail {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Text(|s: &str| Avail(s.parse().ok())))
    }
}

/// One row of nccl.csv: an nccl-tests result (one placement of one size) or a payload
/// collective. Borrowed when collect writes it (tens of thousands of rows, no copy of their
/// text), owned when read back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NcclRow<'a> {
    pub source: Cow<'a, str>,
    pub line: u64,
    pub collective: Cow<'a, str>,
    pub size_bytes: u64,
    pub count: u64,
    pub dtype: Cow<'a, str>,
    pub redop: Cow<'a, str>,
    pub root: Cow<'a, str>,
    /// `out_of_place` / `in_place`.
    pub placement: Cow<'a, str>,
    #[serde(with = "num4")]
    pub time_us: Option<f64>,
    #[serde(with = "num4")]
    pub algbw_gbps: Option<f64>,
    #[serde(with = "num4")]
    pub busbw_gbps: Option<f64>,
    /// `#wrong` elements; `error` where an old build flagged its error with `*`.
    pub wrong: Cow<'a, str>,
    /// Old builds' `error` column, the largest error of the result.
    #[serde(with = "exp")]
    pub max_error: Option<f64>,
    pub nranks: Option<u64>,
    pub nodes: Option<u64>,
    pub gpu_name: Cow<'a, str>,
    pub nccl_version: Cow<'a, str>,
}

impl NcclRow<'_> {
    pub(crate) const COLUMNS: [&'static str; 18] = [
        "source",
        "line",
        "collective",
        "size_bytes",
        "count",
        "dtype",
        "redop",
        "root",
        "placement",
        "time_us",
        "algbw_gbps",
        "busbw_gbps",
        "wrong",
        "max_error",
        "nranks",
        "nodes",
        "gpu_name",
        "nccl_version",
    ];

    /// The header line, as the csv crate writes it.
    pub(crate) fn header() -> Result<Vec<u8>> {
        write::<NcclRow>(&Self::COLUMNS, &[])
    }

    /// Appends the row's line: the bytes `csv::Writer::serialize` makes of it (the tests hold
    /// the two together), pushed field by field with no `String` per field; `num` is scratch.
    #[cfg(test)]
    pub(crate) fn write_csv(&self, out: &mut Vec<u8>, num: &mut String) {
        push_csv_field(out, &self.source);
        out.push(b',');
        self.write_csv_after_source(out, num);
    }

    /// [`NcclRow::write_csv`] with the source field (and its comma) already in `out`: a file's
    /// rows share it, encoded once.
    pub(crate) fn write_csv_after_source(&self, out: &mut Vec<u8>, num: &mut String) {
        let mut int = itoa::Buffer::new();
        let text = |out: &mut Vec<u8>, t: &str| {
            push_csv_field(out, t);
            out.push(b',');
        };
        text(out, int.format(self.line));
        text(out, &self.collective);
        text(out, int.format(self.size_bytes));
        text(out, int.format(self.count));
        text(out, &self.dtype);
        text(out, &self.redop);
        text(out, &self.root);
        text(out, &self.placement);
        for v in [self.time_us, self.algbw_gbps, self.busbw_gbps] {
            num.clear();
            fmt4_into(num, v);
            text(out, num);
        }
        text(out, &self.wrong);
        if let Some(e) = self.max_error {
            num.clear();
            let _ = std::fmt::Write::write_fmt(num, format_args!("{e:e}"));
            out.extend_from_slice(num.as_bytes());
        }
        out.push(b',');
        for v in [self.nranks, self.nodes] {
            if let Some(v) = v {
                out.extend_from_slice(int.format(v).as_bytes());
            }
            out.push(b',');
        }
        text(out, &self.gpu_name);
        push_csv_field(out, &self.nccl_version);
        out.push(b'\n');
    }
}

/// One row of steps.csv (long format): one value of one step. Borrowed when collect writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepRow<'a> {
    pub run: Cow<'a, str>,
    pub source: Cow<'a, str>,
    pub rank: Option<u32>,
    pub step: u64,
    /// A step the steady-state figures leave out as warm-up.
    pub warmup: bool,
    /// `step_time_ms`, a timer or a payload field.
    pub name: Cow<'a, str>,
    #[serde(with = "num")]
    pub value: Option<f64>,
}

impl StepRow<'_> {
    pub(crate) const COLUMNS: [&'static str; 7] =
        ["run", "source", "rank", "step", "warmup", "name", "value"];

    /// The header line, as the csv crate writes it.
    pub(crate) fn header() -> Result<Vec<u8>> {
        write::<StepRow>(&Self::COLUMNS, &[])
    }

    /// `run` and `source` with their commas: the fields a file's rows share, encoded once per
    /// file (the table's rows are mostly repeats).
    pub(crate) fn write_file_head(&self, out: &mut Vec<u8>) {
        push_csv_field(out, &self.run);
        out.push(b',');
        push_csv_field(out, &self.source);
        out.push(b',');
    }

    /// `rank`, `step` and `warmup` with their commas: the fields a step's rows share, after
    /// the file's.
    pub(crate) fn write_step_head(&self, out: &mut Vec<u8>) {
        if let Some(r) = self.rank {
            out.extend_from_slice(itoa::Buffer::new().format(r).as_bytes());
        }
        out.push(b',');
        out.extend_from_slice(itoa::Buffer::new().format(self.step).as_bytes());
        out.push(b',');
        out.extend_from_slice(if self.warmup { b"true," } else { b"false," });
    }

    /// Appends the row's line after its `head` (what [`Self::write_file_head`] and
    /// [`Self::write_step_head`] made of it): the bytes `csv::Writer::serialize` makes of the
    /// row; `num` is scratch.
    pub(crate) fn write_tail(&self, head: &[u8], out: &mut Vec<u8>, num: &mut String) {
        out.extend_from_slice(head);
        push_csv_field(out, &self.name);
        out.push(b',');
        num.clear();
        fmt_into(num, self.value);
        out.extend_from_slice(num.as_bytes());
        out.push(b'\n');
    }
}

/// One row of gpu.csv: a run's GPU over its samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct GpuRow {
    pub run: String,
    pub node: String,
    pub gpu: String,
    pub name: String,
    pub samples: u64,
    #[serde(with = "num")]
    pub util_avg: Option<f64>,
    #[serde(with = "num")]
    pub util_min: Option<f64>,
    #[serde(with = "num")]
    pub util_max: Option<f64>,
    #[serde(with = "num")]
    pub mem_used_max_mib: Option<f64>,
    #[serde(with = "num")]
    pub power_w_avg: Option<f64>,
    #[serde(with = "num")]
    pub power_w_max: Option<f64>,
    #[serde(with = "num")]
    pub temp_max_c: Option<f64>,
    #[serde(with = "num")]
    pub mem_temp_max_c: Option<f64>,
}

impl GpuRow {
    pub(crate) const COLUMNS: [&'static str; 13] = [
        "run",
        "node",
        "gpu",
        "name",
        "samples",
        "util_avg",
        "util_min",
        "util_max",
        "mem_used_max_mib",
        "power_w_avg",
        "power_w_max",
        "temp_max_c",
        "mem_temp_max_c",
    ];

    pub(crate) fn write_all(rows: &[Self]) -> Result<Vec<u8>> {
        write(&Self::COLUMNS, rows)
    }
}

/// An optional failure class as the tables and reports write it: the class's word, or an
/// empty cell (`null` would change what `--json` printed before the class was typed).
pub(crate) fn class_str(c: Option<FailureClass>) -> &'static str {
    c.map_or("", FailureClass::as_str)
}

/// `#[serde(with)]` for an optional failure class written as [`class_str`] writes it.
pub(crate) mod class_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::parsers::failures::FailureClass;

    pub(crate) fn serialize<S: Serializer>(
        c: &Option<FailureClass>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::class_str(*c))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<FailureClass>, D::Error> {
        let t = String::deserialize(d)?;
        if t.is_empty() {
            return Ok(None);
        }
        t.parse().map(Some).map_err(serde::de::Error::custom)
    }
}

/// One row of failures.csv: a failure signature found in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FailureRow {
    pub source: String,
    pub line: u64,
    pub class: FailureClass,
    pub kind: String,
    /// Evidence that is a consequence rather than a cause.
    pub weak: bool,
    pub message: String,
}

impl FailureRow {
    pub(crate) const COLUMNS: [&'static str; 6] =
        ["source", "line", "class", "kind", "weak", "message"];

    pub(crate) fn write_all(rows: &[Self]) -> Result<Vec<u8>> {
        write(&Self::COLUMNS, rows)
    }
}

/// One row of binding.csv: a rank's binding against the profile's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BindingRow {
    pub run: String,
    pub node: String,
    pub rank: Option<u32>,
    pub local_rank: Option<u32>,
    pub cpus: String,
    pub expect_cpus: String,
    pub cpus_ok: bool,
    pub gpu: String,
    pub expect_gpu: String,
    pub gpu_ok: bool,
    pub nic: String,
    /// Expected CPUs the rank may not use / allowed CPUs the plan did not give it (cpulists).
    pub cpus_missing: String,
    pub cpus_extra: String,
    /// The node's GPU device files, which of them the rank could open, how many, the job's
    /// GPUs on the node, and whether the rank reaches all of those.
    pub gpu_devices: Option<u32>,
    pub gpus_open: String,
    pub gpus_reachable: Option<u32>,
    pub gpus_on_node: Option<u32>,
    pub gpus_ok: Option<bool>,
}

impl BindingRow {
    pub(crate) const COLUMNS: [&'static str; 18] = [
        "run",
        "node",
        "rank",
        "local_rank",
        "cpus",
        "expect_cpus",
        "cpus_ok",
        "gpu",
        "expect_gpu",
        "gpu_ok",
        "nic",
        "cpus_missing",
        "cpus_extra",
        "gpu_devices",
        "gpus_open",
        "gpus_reachable",
        "gpus_on_node",
        "gpus_ok",
    ];

    pub(crate) fn write_all(rows: &[Self]) -> Result<Vec<u8>> {
        write(&Self::COLUMNS, rows)
    }
}

/// One row of net.csv: what a NIC or RDMA port carried between a job's first and last
/// snapshot on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NetRow {
    pub run: String,
    pub node: String,
    /// `net` / `ib`.
    pub kind: String,
    pub device: String,
    pub port: String,
    pub state: String,
    #[serde(with = "num")]
    pub seconds: Option<f64>,
    pub line_rate_gbps: Avail,
    pub rx_bytes: Avail,
    pub tx_bytes: Avail,
    pub rx_packets: Avail,
    pub tx_packets: Avail,
    pub drops: Avail,
    pub errors: Avail,
    pub link_downed: Avail,
    pub out_of_sequence: Avail,
    pub packet_seq_err: Avail,
    pub local_ack_timeout_err: Avail,
    pub rnr_nak_retry_err: Avail,
    pub implied_nak_seq_err: Avail,
    pub duplicate_request: Avail,
    pub np_cnp_sent: Avail,
    pub rp_cnp_handled: Avail,
    pub np_ecn_marked_roce_packets: Avail,
    pub rx_gbps: Avail,
    pub tx_gbps: Avail,
    pub pct_of_line_rate: Avail,
}

impl NetRow {
    pub(crate) const COLUMNS: [&'static str; 27] = [
        "run",
        "node",
        "kind",
        "device",
        "port",
        "state",
        "seconds",
        "line_rate_gbps",
        "rx_bytes",
        "tx_bytes",
        "rx_packets",
        "tx_packets",
        "drops",
        "errors",
        "link_downed",
        "out_of_sequence",
        "packet_seq_err",
        "local_ack_timeout_err",
        "rnr_nak_retry_err",
        "implied_nak_seq_err",
        "duplicate_request",
        "np_cnp_sent",
        "rp_cnp_handled",
        "np_ecn_marked_roce_packets",
        "rx_gbps",
        "tx_gbps",
        "pct_of_line_rate",
    ];

    /// The loss, retransmission and congestion counters (`drops` to
    /// `np_ecn_marked_roce_packets`): their names, then their cells in [`Self::losses`].
    pub(crate) const LOSS_COLUMNS: &'static [&'static str] =
        Self::COLUMNS.split_at(12).1.split_at(12).0;

    pub(crate) fn losses(&self) -> [Avail; 12] {
        [
            self.drops,
            self.errors,
            self.link_downed,
            self.out_of_sequence,
            self.packet_seq_err,
            self.local_ack_timeout_err,
            self.rnr_nak_retry_err,
            self.implied_nak_seq_err,
            self.duplicate_request,
            self.np_cnp_sent,
            self.rp_cnp_handled,
            self.np_ecn_marked_roce_packets,
        ]
    }

    /// The IB counters after the data, packet, discard and error ones, in
    /// `telemetry::IB_COUNTERS` order (`link_downed` on).
    pub(crate) fn ib_counters_mut(&mut self) -> [&mut Avail; 10] {
        [
            &mut self.link_downed,
            &mut self.out_of_sequence,
            &mut self.packet_seq_err,
            &mut self.local_ack_timeout_err,
            &mut self.rnr_nak_retry_err,
            &mut self.implied_nak_seq_err,
            &mut self.duplicate_request,
            &mut self.np_cnp_sent,
            &mut self.rp_cnp_handled,
            &mut self.np_ecn_marked_roce_packets,
        ]
    }

    pub(crate) fn write_all(rows: &[Self]) -> Result<Vec<u8>> {
        write(&Self::COLUMNS, rows)
    }
}

/// One row of power.csv: a node's (or a node's GPU's) power from one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PowerRow {
    pub run: String,
    pub node: String,
    /// `ipmitool` / `dcgmi`.
    pub source: String,
    pub readings: u64,
    pub watts_avg: Avail,
    pub watts_max: Avail,
}

impl PowerRow {
    pub(crate) const COLUMNS: [&'static str; 6] = [
        "run",
        "node",
        "source",
        "readings",
        "watts_avg",
        "watts_max",
    ];

    pub(crate) fn write_all(rows: &[Self]) -> Result<Vec<u8>> {
        write(&Self::COLUMNS, rows)
    }
}

/// One row of preflight.csv: a preflight check on a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PreflightRow {
    pub run: String,
    pub node: String,
    pub check: String,
    /// `pass` / `fail` / `n/a`.
    pub status: String,
    pub expected: String,
    pub found: String,
}

impl PreflightRow {
    pub(crate) const COLUMNS: [&'static str; 6] =
        ["run", "node", "check", "status", "expected", "found"];

    pub(crate) fn write_all(rows: &[Self]) -> Result<Vec<u8>> {
        write(&Self::COLUMNS, rows)
    }
}

/// Declares [`Figures`], runs.csv's measured columns, with its column list in the same order.
macro_rules! figures {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A run's figures, runs.csv's columns after `failure_evidence` (empty: not measured).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub(crate) struct Figures {
            $($(#[$doc])* #[serde(with = "num")] pub $name: Option<f64>,)*
        }

        impl Figures {
            pub(crate) const COLUMNS: &'static [&'static str] = &[$(stringify!($name),)*];

            /// The cells in column order.
            pub(crate) fn values(&self) -> Vec<Option<f64>> {
                vec![$(self.$name,)*]
            }

            /// The cell of a column, by its name (`None`: no such figure).
            fn slot(&mut self, column: &str) -> Option<&mut Option<f64>> {
                match column {
                    $(stringify!($name) => Some(&mut self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

/// The figures that count something (steps, checks, ranks): integers; every other figure is
/// a measured quantity, with four decimals ([`fmt4_into`]).
const COUNT_FIGURES: &[&str] = &[
    "steps_measured",
    "preflight_failed_checks",
    "binding_mismatches",
];

/// A figure's runs.csv cell.
fn figure_cell(column: &str, v: Option<f64>) -> String {
    if COUNT_FIGURES.contains(&column) {
        fmt_opt(v)
    } else {
        fmt4_opt(v)
    }
}

figures! {
    samples_per_s,
    tokens_per_s,
    tflops_per_gpu,
    mfu_pct,
    profiler_tflops_per_gpu,
    profiler_samples_per_s,
    step_time_ms_mean,
    step_time_ms_p50,
    step_time_ms_p95,
    steps_measured,
    max_mem_gib,
    gpu_util_avg,
    gpu_util_min,
    gpu_util_max,
    power_w_avg,
    gpu_temp_max,
    mem_temp_max,
    busbw_gbps_peak,
    busbw_gbps_avg,
    comm_compute_ratio,
    preflight_failed_checks,
    binding_mismatches,
}

/// What NCCL's debug output says of a run, runs.csv's last columns: lists joined by `;`, the
/// counts empty without NCCL debug lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NcclColumns {
    pub nccl_version: String,
    pub nccl_nranks: Option<u64>,
    pub nccl_nodes: Option<u64>,
    pub nccl_net: String,
    pub nccl_nics: String,
    pub nccl_transports: String,
    pub nccl_init_complete: Option<u64>,
    pub nccl_warns: Option<u64>,
    pub nccl_errors: String,
    /// The CUDA version of the NCCL build (`12.4` of `2.20.5+cuda12.4`).
    #[serde(default)]
    pub nccl_cuda: String,
}

impl NcclColumns {
    pub(crate) const COLUMNS: [&'static str; 10] = [
        "nccl_version",
        "nccl_nranks",
        "nccl_nodes",
        "nccl_net",
        "nccl_nics",
        "nccl_transports",
        "nccl_init_complete",
        "nccl_warns",
        "nccl_errors",
        "nccl_cuda",
    ];

    /// The cells' text in column order.
    fn cells(&self) -> [String; 10] {
        let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
        [
            self.nccl_version.clone(),
            num(self.nccl_nranks),
            num(self.nccl_nodes),
            self.nccl_net.clone(),
            self.nccl_nics.clone(),
            self.nccl_transports.clone(),
            num(self.nccl_init_complete),
            num(self.nccl_warns),
            self.nccl_errors.clone(),
            self.nccl_cuda.clone(),
        ]
    }

    fn slot(&mut self, column: &str, cell: &str) -> bool {
        let num = |s: &str| s.parse::<u64>().ok();
        match column {
            "nccl_version" => self.nccl_version = cell.into(),
            "nccl_nranks" => self.nccl_nranks = num(cell),
            "nccl_nodes" => self.nccl_nodes = num(cell),
            "nccl_net" => self.nccl_net = cell.into(),
            "nccl_nics" => self.nccl_nics = cell.into(),
            "nccl_transports" => self.nccl_transports = cell.into(),
            "nccl_init_complete" => self.nccl_init_complete = num(cell),
            "nccl_warns" => self.nccl_warns = num(cell),
            "nccl_errors" => self.nccl_errors = cell.into(),
            "nccl_cuda" => self.nccl_cuda = cell.into(),
            _ => return false,
        }
        true
    }
}

/// One row of runs.csv: a job of a campaign, or a file of `--logs`. Its columns are `run,
/// stage`, the point's parameters (the union over the runs, in order of appearance), `status,
/// failure_class, failure_evidence`, the [`Figures`], one column per `[[collect.pattern]]`,
/// and the [`NcclColumns`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunRow {
    pub run: String,
    pub stage: String,
    /// The point's parameters as runs.csv writes them (by name: they are the campaign's).
    pub params: IndexMap<String, String>,
    /// A job state, or for a file of `--logs` `failed`, `ok` or empty (what was read).
    pub status: String,
    pub failure_class: Option<FailureClass>,
    /// `file:line: text`.
    pub failure_evidence: String,
    pub figures: Figures,
    /// `[[collect.pattern]]` columns, by column name.
    pub patterns: IndexMap<String, Option<f64>>,
    pub nccl: NcclColumns,
}

const RUN: &str = "run";
const STAGE: &str = "stage";
const STATUS: &str = "status";
const FAILURE_CLASS: &str = "failure_class";
const FAILURE_EVIDENCE: &str = "failure_evidence";

/// Where a runs.csv column goes in a [`RunRow`].
enum RunColumn {
    Run,
    Stage,
    Status,
    FailureClass,
    FailureEvidence,
    Param(String),
    Figure(String),
    Pattern(String),
    Nccl(String),
}

impl RunRow {
    /// A parameter's cell (`""` when the point has none of that name).
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    /// A parameter as a number (`None`: absent, not a number or not finite).
    pub(crate) fn param_f64(&self, name: &str) -> Option<f64> {
        parse_num(self.param(name))
    }

    /// runs.csv: parameter columns are the union of the rows' in order of appearance, pattern
    /// columns the first row's; no figure or pattern columns without rows (as always).
    pub(crate) fn write_all(rows: &[Self]) -> Result<Vec<u8>> {
        let mut pcols: Vec<&str> = Vec::new();
        for r in rows {
            for k in r.params.keys() {
                if !pcols.contains(&k.as_str()) {
                    pcols.push(k);
                }
            }
        }
        let patterns: Vec<&str> = rows
            .first()
            .map(|r| r.patterns.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<&str> = vec![RUN, STAGE];
        header.extend(&pcols);
        header.extend([STATUS, FAILURE_CLASS, FAILURE_EVIDENCE]);
        if !rows.is_empty() {
            header.extend(Figures::COLUMNS);
            header.extend(&patterns);
        }
        header.extend(NcclColumns::COLUMNS);
        w.write_record(&header)?;
        for r in rows {
            let mut row = vec![r.run.clone(), r.stage.clone()];
            row.extend(pcols.iter().map(|k| r.param(k).to_string()));
            row.extend([
                r.status.clone(),
                r.failure_class
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
                r.failure_evidence.clone(),
            ]);
            row.extend(
                Figures::COLUMNS
                    .iter()
                    .zip(r.figures.values())
                    .map(|(c, v)| figure_cell(c, v)),
            );
            row.extend(
                patterns
                    .iter()
                    .map(|k| fmt_opt(r.patterns.get(*k).copied().flatten())),
            );
            row.extend(r.nccl.cells());
            w.write_record(&row)?;
        }
        Ok(w.into_inner()?)
    }

    /// Reads runs.csv: the columns by name, those between `stage` and `status` the
    /// parameters, the unknown ones after them the pattern columns.
    pub(crate) fn read_all(p: &Path) -> Result<Vec<Self>> {
        let mut r =
            csv::Reader::from_path(p).with_context(|| format!("reading {}", p.display()))?;
        let mut after_params = false;
        let mut probe = Figures::default();
        let mut probe_nccl = NcclColumns::default();
        let columns: Vec<RunColumn> = r
            .headers()
            .with_context(|| format!("reading {}", p.display()))?
            .iter()
            .map(|h| match h {
                RUN => RunColumn::Run,
                STAGE => RunColumn::Stage,
                STATUS => {
                    after_params = true;
                    RunColumn::Status
                }
                FAILURE_CLASS => RunColumn::FailureClass,
                FAILURE_EVIDENCE => RunColumn::FailureEvidence,
                _ if probe.slot(h).is_some() => RunColumn::Figure(h.into()),
                _ if probe_nccl.slot(h, "") => RunColumn::Nccl(h.into()),
                _ if after_params => RunColumn::Pattern(h.into()),
                _ => RunColumn::Param(h.into()),
            })
            .collect();
        let mut out = Vec::new();
        for rec in r.records() {
            let rec = rec.with_context(|| format!("reading {}", p.display()))?;
            let mut row = RunRow::default();
            for (c, cell) in columns.iter().zip(rec.iter()) {
                match c {
                    RunColumn::Run => row.run = cell.into(),
                    RunColumn::Stage => row.stage = cell.into(),
                    RunColumn::Status => row.status = cell.into(),
                    RunColumn::FailureClass => {
                        row.failure_class = (!cell.is_empty())
                            .then(|| cell.parse::<FailureClass>())
                            .transpose()
                            .map_err(anyhow::Error::msg)
                            .with_context(|| format!("reading {}", p.display()))?
                    }
                    RunColumn::FailureEvidence => row.failure_evidence = cell.into(),
                    RunColumn::Param(k) => {
                        row.params.insert(k.clone(), cell.into());
                    }
                    RunColumn::Figure(k) => {
                        if let Some(v) = row.figures.slot(k) {
                            *v = parse_num(cell);
                        }
                    }
                    // Kept as written, `NaN` included: points are told apart by the cell's
                    // text (`point_cells`).
                    RunColumn::Pattern(k) => {
                        row.patterns.insert(k.clone(), cell.parse().ok());
                    }
                    RunColumn::Nccl(k) => {
                        row.nccl.slot(k, cell);
                    }
                }
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Sets the figure of that column, or adds a pattern column of that name.
    pub(crate) fn set_figure(&mut self, column: &str, v: Option<f64>) {
        match self.figures.slot(column) {
            Some(slot) => *slot = v,
            None => {
                self.patterns.insert(column.to_string(), v);
            }
        }
    }

    /// The cells that tell points apart, by column name, as text, empty ones left out: the
    /// stage, the parameters, and (as runs have always been grouped, the columns being read
    /// by name) the pattern columns, the NCCL columns and `preflight_failed_checks`.
    pub(crate) fn point_cells(&self) -> std::collections::BTreeMap<&str, String> {
        let mut m = std::collections::BTreeMap::new();
        m.insert(STAGE, self.stage.clone());
        for (k, v) in &self.params {
            m.insert(k.as_str(), v.clone());
        }
        m.insert(
            "preflight_failed_checks",
            fmt_opt(self.figures.preflight_failed_checks),
        );
        for (k, v) in &self.patterns {
            m.insert(k.as_str(), fmt_opt(*v));
        }
        for (k, v) in NcclColumns::COLUMNS.into_iter().zip(self.nccl.cells()) {
            m.insert(k, v);
        }
        m.retain(|_, v| !v.is_empty());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_line<T: Serialize>(row: &T) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        w.serialize(row).unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn fast_writers_write_what_serde_writes() {
        let n = NcclRow {
            source: "jobs/a/x,y.log".into(),
            line: 7,
            collective: "all_reduce".into(),
            size_bytes: 1 << 20,
            count: 262144,
            dtype: "float".into(),
            redop: "sum".into(),
            root: "-1".into(),
            placement: "out_of_place".into(),
            time_us: Some(12.5),
            algbw_gbps: Some(0.1),
            busbw_gbps: Some(-0.0),
            wrong: "0".into(),
            max_error: Some(2e-7),
            nranks: Some(16),
            nodes: None,
            gpu_name: "NVIDIA \"H200\"".into(),
            nccl_version: "2.28.9+cuda13.0".into(),
        };
        let mut got = Vec::new();
        n.write_csv(&mut got, &mut String::new());
        assert_eq!(String::from_utf8(got), String::from_utf8(serde_line(&n)));
        let s = StepRow {
            run: "r".into(),
            source: "jobs/r/rank-0.log".into(),
            rank: None,
            step: 3,
            warmup: true,
            name: "step_time_ms".into(),
            value: Some(1234.56789),
        };
        let mut head = Vec::new();
        s.write_file_head(&mut head);
        s.write_step_head(&mut head);
        let mut got = Vec::new();
        s.write_tail(&head, &mut got, &mut String::new());
        assert_eq!(String::from_utf8(got), String::from_utf8(serde_line(&s)));
    }

    #[test]
    fn runs_are_read_back_as_written() {
        let mut a = RunRow {
            run: "a".into(),
            stage: "s".into(),
            status: "COMPLETED".into(),
            ..Default::default()
        };
        a.params.insert("model".into(), "llama2-7b".into());
        a.params.insert("nodes".into(), "2".into());
        a.figures.samples_per_s = Some(123.4567);
        a.set_figure("loss_final", Some(1.5));
        a.nccl.nccl_nranks = Some(16);
        a.nccl.nccl_version = "2.28.9".into();
        let mut b = a.clone();
        b.run = "b".into();
        b.params.insert("seq_len".into(), "4096".into());
        b.params.shift_remove("nodes");
        let bytes = RunRow::write_all(&[a.clone(), b.clone()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runs.csv");
        std::fs::write(&p, &bytes).unwrap();
        let back = RunRow::read_all(&p).unwrap();
        // Every parameter column is written for every row (empty where the point has none).
        b.params.insert("nodes".into(), String::new());
        a.params.insert("seq_len".into(), String::new());
        assert_eq!(back, vec![a, b]);
        assert_eq!(RunRow::write_all(&back).unwrap(), bytes);
    }

    #[test]
    fn the_loss_columns_are_drops_to_ecn_marks() {
        assert_eq!(NetRow::LOSS_COLUMNS.len(), 12);
        assert_eq!(NetRow::LOSS_COLUMNS[0], "drops");
        assert_eq!(NetRow::LOSS_COLUMNS[11], "np_ecn_marked_roce_packets");
    }

    #[test]
    fn tables_without_rows_have_their_header() {
        assert_eq!(
            PowerRow::write_all(&[]).unwrap(),
            b"run,node,source,readings,watts_avg,watts_max\n"
        );
        assert_eq!(
            RunRow::write_all(&[]).unwrap(),
            format!(
                "run,stage,status,failure_class,failure_evidence,{}\n",
                NcclColumns::COLUMNS.join(",")
            )
            .into_bytes()
        );
    }

    /// Fields encoded by hand are the bytes the csv crate writes for them in a record.
    #[test]
    fn csv_fields_are_encoded_as_the_csv_crate_encodes_them() {
        for f in [
            "",
            "plain",
            "with space",
            " lead",
            "trail ",
            "a,b",
            "say \"hi\"",
            "\"",
            "line\nbreak",
            "cr\rhere",
            "#hash",
            "tab\there",
            "semi;colon",
            "caf\u{e9} \u{2192}",
            "'quote'",
            "\\back",
        ] {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([f, "x"]).unwrap();
            let want = w.into_inner().unwrap();
            let mut got = Vec::new();
            push_csv_field(&mut got, f);
            got.extend_from_slice(b",x\n");
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{f:?}"
            );
        }
    }

    /// The integer formatter writes what `{:.4}` writes, ties and tiny values included.
    #[test]
    fn fixed4_is_std_fixed_precision() {
        let mut values = vec![
            0.0,
            -0.0,
            0.25,
            0.125,
            0.00005,
            0.00015,
            0.00025,
            1.00005,
            2.5,
            -2.5,
            0.5,
            1.5,
            1e-300,
            -1e-300,
            5e-324,
            123456789.12345,
            999999999999999.9,
            -0.00004,
            0.33333,
            1e14 + 0.5,
            77.58,
            700.0,
            1.0 / 3.0,
        ];
        let mut seed = 9u64;
        for _ in 0..200_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = seed >> 11;
            values.push(match seed % 4 {
                // Any double of a sensible magnitude.
                0 => {
                    f64::from_bits(r % (0x4330_0000_0000_0000))
                        * if seed & 16 == 0 { 1.0 } else { -1.0 }
                }
                // Near a tie of the fourth decimal.
                1 => (r % 100_000_000) as f64 / 10_000.0 + 0.00005,
                // Exact binary fractions (ties when the fifth decimal is a 5).
                2 => (r % 1_000_000) as f64 / 1024.0,
                _ => (r % 1_000_000_000) as f64 / 1000.0,
            });
        }
        for x in values {
            let mut ours = String::new();
            if fixed4(&mut ours, x) {
                assert_eq!(ours, format!("{x:.4}"), "{x:e}");
            } else {
                assert!(x.abs() >= 1e15 || !x.is_finite(), "{x:e}");
            }
        }
        let mut s = String::new();
        fmt_into(&mut s, Some(-0.0));
        assert_eq!(s, format!("{:.0}", -0.0f64));
    }
}
