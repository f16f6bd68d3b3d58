//! nccl-tests output (`all_reduce_perf` and friends): the text tables and the `-J` JSON report.
//!
//! Learned from how nccl-tests prints (`src/common.cu`, `src/common.h`, `src/util.cu`):
//! - the banner `# nccl-tests version V nccl-headers=H nccl-library=L` (2.17+), then
//!   `# Collective test starting: NAME_perf`, the parameter line `# nThread .. nGpus .. minBytes ..`
//!   and one `#  Rank R Group G Pid P on HOST device D [BUSID] NAME` line per GPU (old builds
//!   have no `Group`);
//! - a two- or three-line table header; the column names are read from the header line that
//!   holds `size`/`count`/`type`, never assumed by position: `redop` and `root` may be absent (old
//!   builds print them per collective), `#wrong` (an element count, `N/A` when not checked) or the
//!   old `error` column (max abs error, `%5.0le`, `*` appended when wrong), `time` or `cputime`
//!   (`-C`), the `i_min i_max i_p99 i_cv%` per-iteration columns (`-I`) after each placement and a
//!   trailing `timestamp` (`-S`, printed as `%Y-%m-%d %H:%M:%S`, so two fields). The first
//!   `time` column starts the out-of-place group, the second the in-place group; a row that has
//!   only the in-place group (trace replay prints blanks for out-of-place) is read as such.
//! - numbers are `%g`-like (`getFloatStr`): `1505.2`, `172461`, `3e+06`, `1.6e+07`;
//! - the footer `# Out of bounds values : N OK|FAILED`, `# Avg bus bandwidth : X [OK|FAILED]`,
//!   `# Collective test concluded: NAME`, `# error: ...`;
//! - failures `HOST: Test NCCL failure FILE:LINE 'msg / last error'`, `HOST: Test CUDA failure
//!   ...` and the ` .. HOST pid P: Test failure FILE:LINE` trace;
//! - wrappers that print `Running: ... ./build/all_gather_perf ...` before each test.
//!
//! Several tests in one file are split into several [`NcclRun`]s at each banner,
//! `Collective test starting`, `Running:` line, or parameter line that follows a table.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::{Line, Warnings, int, num, push_capped, uint};
use crate::line::text::words;

/// Which half of a row a measurement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    OutOfPlace,
    InPlace,
}

/// Per-iteration statistics (`-I`), microseconds and percent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IterStats {
    pub min_us: Option<f64>,
    pub max_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub cv_pct: Option<f64>,
}

/// One measurement: one placement of one table row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NcclRow {
    /// 1-based line of the row.
    pub line: u64,
    /// `all_reduce`, `all_gather`, … when known.
    pub collective: Option<String>,
    pub size_bytes: u64,
    pub count: u64,
    pub dtype: String,
    /// `None` when the table has no `redop` column.
    pub redop: Option<String>,
    /// `None` when the table has no `root` column; `-1` means "not a rooted collective".
    pub root: Option<i64>,
    pub placement: Placement,
    /// Time in microseconds (CPU time when the header says `cputime`).
    pub time_us: f64,
    pub algbw_gbps: f64,
    pub busbw_gbps: f64,
    /// `#wrong` elements; `None` for `N/A` or for old tables that have an `error` column.
    pub wrong: Option<u64>,
    /// Old tables: the maximum absolute error.
    pub max_error: Option<f64>,
    /// Old tables: the error value was flagged with `*`.
    pub error_flagged: bool,
    pub iter: Option<IterStats>,
    /// `-S` timestamp, as printed.
    pub timestamp: Option<String>,
}

/// One `#  Rank` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NcclDevice {
    pub rank: u32,
    pub group: Option<u32>,
    pub pid: u64,
    pub host: String,
    pub device: u32,
    pub bus_id: String,
    pub name: String,
}

/// The `# nThread ...` parameter line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NcclParams {
    pub nthreads: Option<u64>,
    pub ngpus: Option<u64>,
    pub min_bytes: Option<u64>,
    pub max_bytes: Option<u64>,
    pub step_factor: Option<u64>,
    pub step_bytes: Option<u64>,
    pub warmup_iters: Option<u64>,
    pub iters: Option<u64>,
    pub agg_iters: Option<u64>,
    pub validation: Option<u64>,
    pub graph: Option<u64>,
    pub unalign: Option<u64>,
}

/// An error reported by nccl-tests itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NcclTestError {
    pub line: u64,
    pub host: Option<String>,
    /// The message after the host, e.g. `Test NCCL failure common.cu:401 'remote process ...'`.
    pub message: String,
}

/// One test run (one binary invocation, or one section of a concatenated file).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NcclRun {
    /// Line where the run starts.
    pub line: u64,
    /// `all_reduce`, … (from `Collective test starting`, `Running:`, or the `-J` args).
    pub collective: Option<String>,
    /// `all_reduce_perf`, …
    pub binary: Option<String>,
    /// The command of a `Running:` line.
    pub command: Option<String>,
    pub nccl_tests_version: Option<String>,
    /// NCCL version: the `NCCL INFO NCCL version` string when printed inside the run, else the
    /// banner's `nccl-library` code decoded (`22809` → `2.28.9`).
    pub nccl_version: Option<String>,
    pub params: NcclParams,
    pub per_iteration: bool,
    pub timestamps: bool,
    pub cpu_time: bool,
    pub devices: Vec<NcclDevice>,
    /// Ranks (one per `#  Rank` line).
    pub nranks: Option<usize>,
    /// Distinct hosts of the `#  Rank` lines.
    pub nodes: Option<usize>,
    /// Most ranks on one host.
    pub gpus_per_node: Option<usize>,
    /// GPU name of the ranks (the most frequent one if they differ).
    pub gpu_name: Option<String>,
    /// Column names of the header, as printed.
    pub columns: Vec<String>,
    pub rows: Vec<NcclRow>,
    pub oob_values: Option<u64>,
    pub oob_ok: Option<bool>,
    pub avg_busbw_gbps: Option<f64>,
    /// `OK` / `FAILED` after the average when `-c`/`-m` checking was on.
    pub avg_busbw_check: Option<String>,
    pub errors: Vec<NcclTestError>,
    /// `# Collective test concluded` seen (or, for the JSON report, `end_time`).
    pub concluded: bool,
    /// `-J` output file named by `# Writing JSON output to`.
    pub json_output: Option<String>,
}

impl NcclRun {
    fn started(&self) -> bool {
        self.params != NcclParams::default()
            || !self.devices.is_empty()
            || !self.columns.is_empty()
            || !self.rows.is_empty()
            || self.avg_busbw_gbps.is_some()
            || self.oob_values.is_some()
            || !self.errors.is_empty()
            || self.concluded
    }
    fn has_table(&self) -> bool {
        !self.columns.is_empty()
            || !self.rows.is_empty()
            || self.avg_busbw_gbps.is_some()
            || self.oob_values.is_some()
            || self.concluded
    }
    fn is_empty(&self) -> bool {
        !self.started()
            && self.collective.is_none()
            && self.nccl_tests_version.is_none()
            && self.command.is_none()
    }

    /// Fills `nranks`, `nodes`, `gpus_per_node` and `gpu_name` from the devices.
    fn summarize(&mut self) {
        if self.devices.is_empty() {
            return;
        }
        self.nranks = Some(self.devices.len());
        let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &self.devices {
            *per_host.entry(&d.host).or_default() += 1;
            *names.entry(&d.name).or_default() += 1;
        }
        self.nodes = Some(per_host.len());
        self.gpus_per_node = per_host.values().copied().max();
        self.gpu_name = names
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(name, _)| name.to_string());
    }
}

/// Collective name from a binary name: `all_reduce_perf` → `all_reduce`.
pub fn collective_of(binary: &str) -> String {
    let b = binary.rsplit('/').next().unwrap_or(binary);
    let b = b.strip_suffix("_mpi").unwrap_or(b);
    b.strip_suffix("_perf").unwrap_or(b).to_string()
}

/// Decodes an `NCCL_VERSION_CODE` (`22809` → `2.28.9`, `2708` → `2.7.8`).
pub fn decode_nccl_code(code: u64) -> Option<String> {
    if code == 0 {
        return None;
    }
    Some(if code >= 10000 {
        format!("{}.{}.{}", code / 10000, (code % 10000) / 100, code % 100)
    } else {
        format!("{}.{}.{}", code / 1000, (code % 1000) / 100, code % 100)
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Col {
    Size,
    Count,
    Type,
    Redop,
    Root,
    Time,
    AlgBw,
    BusBw,
    Wrong,
    Error,
    Iter(String),
    Timestamp,
    Unknown,
}

fn col_of(name: &str) -> Col {
    match name {
        "size" | "bytes" => Col::Size,
        "count" | "N" | "elements" => Col::Count,
        "type" => Col::Type,
        "redop" | "op" => Col::Redop,
        "root" => Col::Root,
        "time" | "cputime" => Col::Time,
        "algbw" => Col::AlgBw,
        "busbw" => Col::BusBw,
        "#wrong" | "wrong" => Col::Wrong,
        "error" | "res" => Col::Error,
        "timestamp" => Col::Timestamp,
        n if n.starts_with("i_") => Col::Iter(n.to_string()),
        _ => Col::Unknown,
    }
}

/// A table layout read from a header line.
#[derive(Debug, Clone)]
struct Layout {
    names: Vec<String>,
    cols: Vec<Col>,
    /// Index of the first column of each placement group.
    groups: Vec<usize>,
}

impl Layout {
    fn from_header(text: &str) -> Option<Layout> {
        let body = text.trim_start().strip_prefix('#')?;
        // Most comment lines are no header: their words are not copied.
        let cols: Vec<Col> = body.split_whitespace().map(col_of).collect();
        let has = |c: &Col| cols.contains(c);
        let required = [
            Col::Size,
            Col::Count,
            Col::Type,
            Col::Time,
            Col::AlgBw,
            Col::BusBw,
        ];
        if !required.iter().all(has) {
            return None;
        }
        let groups: Vec<usize> = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == Col::Time)
            .map(|(i, _)| i)
            .collect();
        if groups.len() > 2 || cols[..groups[0]].contains(&Col::AlgBw) {
            return None;
        }
        Some(Layout {
            names: body.split_whitespace().map(str::to_string).collect(),
            cols,
            groups,
        })
    }

    fn timestamp(&self) -> bool {
        self.cols.contains(&Col::Timestamp)
    }

    /// Number of fields a full row has (a timestamp is two fields).
    fn fields(&self) -> usize {
        self.cols.len() + usize::from(self.timestamp())
    }

    fn group_end(&self, g: usize) -> usize {
        match self.groups.get(g + 1) {
            Some(&e) => e,
            None => self
                .cols
                .iter()
                .position(|c| *c == Col::Timestamp)
                .unwrap_or(self.cols.len()),
        }
    }
}

static BANNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#\s*nccl-tests version (\S+)(?: nccl-headers=(\d+))?(?: nccl-library=(\d+))?")
        .expect("static regex")
});
static STARTING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#\s*Collective test (starting|concluded):\s*(\S+)").expect("static regex")
});
static DEVICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^#\s*Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)\s+\[([^\]]*)\]\s*(.*?)\s*$",
    )
    .expect("static regex")
});
static OOB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#\s*Out of bounds values\s*:\s*(\S+)\s*(OK|FAILED)?").expect("static regex")
});
static AVG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#\s*Avg bus bandwidth\s*:\s*(\S+)\s*(OK|FAILED)?").expect("static regex")
});
static TEST_FAILURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(\S+): )?(Test (?:NCCL|CUDA) failure .*?)\s*$").expect("static regex")
});
static BINARY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s/])([A-Za-z0-9_]+_perf(?:_mpi)?)(?:\s|$)").expect("static regex")
});
/// A command line that runs a test binary with options (`mpirun ... ./build/all_reduce_perf -b 8
/// ...`, `+ srun all_gather_perf -g 8`), as a batch script's `set -x` or `echo` prints it.
static INVOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s/])([A-Za-z0-9_]+_perf(?:_mpi)?)(?:\s+-|\s*$)").expect("static regex")
});
/// What an [`INVOCATION`] line holds (its literal for the line gate).
pub(crate) const PERF: &str = "_perf";
static NCCL_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"NCCL version (\d+\.\d+\.\d+\S*)").expect("static regex"));

/// Streaming parser of nccl-tests text output.
#[derive(Debug, Default)]
pub struct Parser {
    runs: Vec<NcclRun>,
    cur: NcclRun,
    layout: Option<Layout>,
    /// The banner's decoded library version, used when no INFO line gives one.
    banner_version: Option<String>,
    row_without_header_warned: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    fn new_run(&mut self, line: u64) {
        let old = std::mem::take(&mut self.cur);
        self.flush(old);
        self.cur.line = line;
        self.layout = None;
        self.banner_version = None;
    }

    fn flush(&mut self, mut run: NcclRun) {
        if run.is_empty() {
            return;
        }
        if run.nccl_version.is_none() {
            run.nccl_version = self.banner_version.take();
        }
        run.summarize();
        self.runs.push(run);
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        let t = line.text.trim();
        if t.is_empty() {
            return;
        }
        if t.starts_with('#') {
            self.feed_comment(line, t, w);
            return;
        }
        let first = t.as_bytes()[0];
        if first.is_ascii_digit() {
            self.feed_row(line, t, w);
            return;
        }
        if let Some(cmd) = t.strip_prefix("Running:") {
            if let Some(b) = BINARY.captures(cmd).and_then(|c| c.get(1)) {
                if self.cur.started() || self.cur.command.is_some() {
                    self.new_run(line.no);
                }
                self.cur.line = line.no;
                self.cur.command = Some(cmd.trim().to_string());
                self.cur.binary = Some(b.as_str().to_string());
                self.cur.collective = Some(collective_of(b.as_str()));
            }
            return;
        }
        if t.contains(PERF)
            && let Some(b) = INVOCATION.captures(t).and_then(|c| c.get(1))
        {
            // Builds that print no `# Collective test starting` line name their test nowhere
            // else. Taken as a `Running:` line is (the test's own lines that follow do not
            // start another run), but never over a name the run already has.
            if self.cur.has_table() {
                self.new_run(line.no);
            }
            if self.cur.binary.is_none() {
                if !self.cur.started() {
                    self.cur.line = line.no;
                }
                self.cur.command = Some(t.to_string());
                self.cur.binary = Some(b.as_str().to_string());
                self.cur.collective = Some(collective_of(b.as_str()));
            }
            return;
        }
        if t.contains("Test NCCL failure") || t.contains("Test CUDA failure") {
            if let Some(c) = TEST_FAILURE.captures(t) {
                let host = c
                    .get(1)
                    .map(|m| m.as_str().to_string())
                    .or_else(|| line.host.map(str::to_string));
                let message = c.get(2).map_or(t, |m| m.as_str()).to_string();
                let err = NcclTestError {
                    line: line.no,
                    host,
                    message,
                };
                push_capped(&mut self.cur.errors, err, "nccl-tests errors", line.no, w);
            }
            return;
        }
        if t.contains("NCCL version")
            && self.cur.nccl_version.is_none()
            && let Some(c) = NCCL_VERSION.captures(t)
        {
            self.cur.nccl_version = c.get(1).map(|m| m.as_str().to_string());
        }
    }

    fn feed_comment(&mut self, line: &Line<'_>, t: &str, w: &mut Warnings) {
        // Each regex below holds a literal that the test before it looks for: a comment line
        // (a table's headers, `#` alone, `# Using devices`) is not run through every engine.
        if t.contains("nccl-tests version ")
            && let Some(c) = BANNER.captures(t)
        {
            if self.cur.started() || self.cur.nccl_tests_version.is_some() {
                self.new_run(line.no);
            }
            self.cur.line = line.no;
            self.cur.nccl_tests_version = c.get(1).map(|m| m.as_str().to_string());
            self.banner_version = c
                .get(3)
                .or(c.get(2))
                .and_then(|m| uint(m.as_str()))
                .and_then(decode_nccl_code);
            return;
        }
        if t.contains("Collective test ")
            && let Some(c) = STARTING.captures(t)
        {
            let name = c.get(2).map_or("", |m| m.as_str());
            if c.get(1).map(|m| m.as_str()) == Some("concluded") {
                self.cur.concluded = true;
                if self.cur.binary.is_none() {
                    self.cur.binary = Some(name.to_string());
                    self.cur.collective = Some(collective_of(name));
                }
                return;
            }
            if self.cur.started() || (self.cur.binary.is_some() && self.cur.command.is_none()) {
                self.new_run(line.no);
            }
            if self.cur.nccl_tests_version.is_none() && self.cur.command.is_none() {
                self.cur.line = line.no;
            }
            self.cur.binary = Some(name.to_string());
            self.cur.collective = Some(collective_of(name));
            return;
        }
        if t.contains("nThread") && t.contains("nGpus") {
            if self.cur.params != NcclParams::default() || self.cur.has_table() {
                self.new_run(line.no);
            }
            self.cur.params = parse_params(t);
            if self.cur.line == 0 {
                self.cur.line = line.no;
            }
            return;
        }
        if t.contains("Per-Iteration Report") {
            self.cur.per_iteration = true;
            return;
        }
        if t.contains("Pid")
            && let Some(c) = DEVICE.captures(t)
        {
            if self.cur.has_table() {
                self.new_run(line.no);
            }
            let get = |i: usize| c.get(i).map_or("", |m| m.as_str());
            let (Some(rank), Some(pid), Some(device)) = (uint(get(1)), uint(get(3)), uint(get(5)))
            else {
                w.push(line.no, "nccl-tests device line with bad numbers: ignored");
                return;
            };
            let dev = NcclDevice {
                rank: rank as u32,
                group: c.get(2).and_then(|m| uint(m.as_str())).map(|g| g as u32),
                pid,
                host: get(4).to_string(),
                device: device as u32,
                bus_id: get(6).to_string(),
                name: get(7).to_string(),
            };
            push_capped(&mut self.cur.devices, dev, "nccl-tests devices", line.no, w);
            if self.cur.line == 0 {
                self.cur.line = line.no;
            }
            return;
        }
        if let Some(layout) = Layout::from_header(t) {
            if !self.cur.rows.is_empty() || self.cur.avg_busbw_gbps.is_some() || self.cur.concluded
            {
                self.new_run(line.no);
            }
            self.cur.columns = layout.names.clone();
            self.cur.timestamps = layout.timestamp();
            self.cur.cpu_time = layout.names.iter().any(|n| n == "cputime");
            if layout.cols.iter().any(|c| matches!(c, Col::Iter(_))) {
                self.cur.per_iteration = true;
            }
            if self.cur.line == 0 {
                self.cur.line = line.no;
            }
            self.layout = Some(layout);
            return;
        }
        if t.contains("Out of bounds values")
            && let Some(c) = OOB.captures(t)
        {
            match c.get(1).and_then(|m| uint(m.as_str())) {
                Some(n) => self.cur.oob_values = Some(n),
                None => w.push(line.no, "nccl-tests: unreadable 'Out of bounds values'"),
            }
            self.cur.oob_ok = match c.get(2).map(|m| m.as_str()) {
                Some("OK") => Some(true),
                Some(_) => Some(false),
                None => self.cur.oob_values.map(|n| n == 0),
            };
            return;
        }
        if t.contains("Avg bus bandwidth")
            && let Some(c) = AVG.captures(t)
        {
            match c.get(1).and_then(|m| num(m.as_str())) {
                Some(v) => self.cur.avg_busbw_gbps = Some(v),
                None => w.push(line.no, "nccl-tests: unreadable 'Avg bus bandwidth'"),
            }
            self.cur.avg_busbw_check = c.get(2).map(|m| m.as_str().to_string());
            // The table is over.
            self.layout = None;
            return;
        }
        if let Some(f) = t.strip_prefix("# Writing JSON output to ") {
            self.cur.json_output = Some(f.trim().to_string());
            return;
        }
        if let Some(e) = t.strip_prefix("# error:") {
            let err = NcclTestError {
                line: line.no,
                host: line.host.map(str::to_string),
                message: e.trim().to_string(),
            };
            push_capped(&mut self.cur.errors, err, "nccl-tests errors", line.no, w);
        }
    }

    fn feed_row(&mut self, line: &Line<'_>, t: &str, w: &mut Warnings) {
        if !starts_like_row(t) {
            return;
        }
        // The fields on the stack: a row has a few dozen at most (a longer line, in a Vec).
        let mut stack = [""; 48];
        let mut heap = Vec::new();
        let mut n = 0;
        for f in words(t) {
            if n < stack.len() {
                stack[n] = f;
            } else {
                if heap.is_empty() {
                    heap.extend_from_slice(&stack);
                }
                heap.push(f);
            }
            n += 1;
        }
        let fields: &[&str] = if n <= stack.len() { &stack[..n] } else { &heap };
        let Some(layout) = self.layout.as_ref() else {
            if self.cur.started() && !self.row_without_header_warned {
                self.row_without_header_warned = true;
                w.push(line.no, "nccl-tests row without a table header: ignored");
            }
            return;
        };
        match parse_row(layout, fields, line.no, self.cur.collective.as_deref()) {
            Ok(rows) => {
                for r in rows {
                    push_capped(&mut self.cur.rows, r, "nccl-tests rows", line.no, w);
                }
            }
            Err(msg) => w.push(line.no, format!("nccl-tests row ignored: {msg}")),
        }
    }

    pub fn finish(mut self, _w: &mut Warnings) -> Vec<NcclRun> {
        let last = std::mem::take(&mut self.cur);
        self.flush(last);
        self.runs
    }
}

super::line_parser::line_parser!(Parser => Vec<NcclRun>);

/// Whether `t` starts with two unsigned integers (size, count), as a table row does; most
/// lines that start with a digit (timestamps, CSV samples) are told apart before anything is
/// collected. First by bytes: an ASCII byte other than whitespace right after the leading
/// digits makes the first field more than digits (what the field split would find, at a tenth
/// of its cost on an nvidia-smi sample; `char`'s whitespace, as the split's, holds the
/// vertical tab, `u8`'s does not); any other byte goes the long way.
fn starts_like_row(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if b.get(digits)
        .is_some_and(|&c| c.is_ascii() && !char::from(c).is_whitespace())
    {
        return false;
    }
    let mut head = words(t);
    let unsigned = |f: Option<&str>| f.is_some_and(|f| f.bytes().all(|b| b.is_ascii_digit()));
    unsigned(head.next()) && unsigned(head.next())
}

fn parse_params(t: &str) -> NcclParams {
    let toks: Vec<&str> = t.trim_start_matches('#').split_whitespace().collect();
    let mut p = NcclParams::default();
    for i in 0..toks.len() {
        let key = toks[i];
        let Some(val) = toks.get(i + 1) else { break };
        let prev = if i > 0 { toks[i - 1] } else { "" };
        let v = uint(val);
        match key {
            "nThread" => p.nthreads = v,
            "nGpus" => p.ngpus = v,
            "minBytes" => p.min_bytes = v,
            "maxBytes" => p.max_bytes = v,
            "step:" => {
                let (n, kind) = val.split_once('(').unwrap_or((val, "bytes)"));
                if kind.starts_with("factor") {
                    p.step_factor = uint(n);
                } else {
                    p.step_bytes = uint(n);
                }
            }
            "iters:" => match prev {
                "warmup" => p.warmup_iters = v,
                "agg" => p.agg_iters = v,
                _ => p.iters = v,
            },
            "validation:" => p.validation = v,
            "graph:" => p.graph = v,
            "unalign:" => p.unalign = v,
            _ => {}
        }
    }
    p
}

fn parse_row(
    layout: &Layout,
    fields: &[&str],
    line: u64,
    collective: Option<&str>,
) -> Result<Vec<NcclRow>, String> {
    let full = layout.fields();
    let first_group = layout.groups[0];
    let g0_len = layout.group_end(0) - first_group;
    // Which groups are present in this row, and where each column's field is.
    let groups_present: std::ops::Range<usize>;
    let mut stack = [None; 48];
    let mut heap;
    let col_field: &mut [Option<usize>] = if layout.cols.len() <= stack.len() {
        &mut stack[..layout.cols.len()]
    } else {
        heap = vec![None; layout.cols.len()];
        &mut heap
    };
    if fields.len() == full {
        groups_present = 0..layout.groups.len();
        for (i, slot) in col_field.iter_mut().enumerate() {
            *slot = Some(i);
        }
    } else if layout.groups.len() == 2 && fields.len() + g0_len == full {
        // Out-of-place printed as blanks (trace replay): only the in-place group.
        groups_present = 1..2;
        for (i, slot) in col_field.iter_mut().enumerate() {
            if i < first_group {
                *slot = Some(i);
            } else if i >= layout.group_end(0) {
                *slot = Some(i - g0_len);
            }
        }
    } else {
        return Err(format!(
            "{} fields where the header has {} columns",
            fields.len(),
            full
        ));
    }
    let field = |col: &Col| -> Option<&str> {
        let i = layout.cols.iter().position(|c| c == col)?;
        col_field[i].and_then(|f| fields.get(f).copied())
    };
    let size = field(&Col::Size).and_then(uint).ok_or("bad size")?;
    let count = field(&Col::Count).and_then(uint).ok_or("bad count")?;
    let dtype = field(&Col::Type).ok_or("no type")?;
    if !dtype.as_bytes()[0].is_ascii_alphabetic() {
        return Err(format!("bad type '{dtype}'"));
    }
    let redop = match field(&Col::Redop) {
        Some(r) if r.as_bytes()[0].is_ascii_alphabetic() => Some(r.to_string()),
        Some(r) => return Err(format!("bad redop '{r}'")),
        None => None,
    };
    let root = match field(&Col::Root) {
        Some(r) => Some(int(r).ok_or(format!("bad root '{r}'"))?),
        None => None,
    };
    let timestamp = layout
        .cols
        .iter()
        .position(|c| *c == Col::Timestamp)
        .and_then(|i| col_field[i])
        .map(|f| fields[f..].join(" "));
    let mut rows = Vec::new();
    for g in groups_present {
        let start = layout.groups[g];
        let end = layout.group_end(g);
        let mut time = None;
        let mut alg = None;
        let mut bus = None;
        let mut wrong = None;
        let mut max_error = None;
        let mut flagged = false;
        let mut iter = IterStats::default();
        let mut has_iter = false;
        for (ci, slot) in col_field.iter().enumerate().take(end).skip(start) {
            let Some(fi) = *slot else { continue };
            let v = fields[fi];
            let bad = |what: &str| format!("bad {what} '{v}'");
            match &layout.cols[ci] {
                Col::Time => time = Some(num(v).ok_or_else(|| bad("time"))?),
                Col::AlgBw => alg = Some(num(v).ok_or_else(|| bad("algbw"))?),
                Col::BusBw => bus = Some(num(v).ok_or_else(|| bad("busbw"))?),
                Col::Wrong if v != "N/A" => {
                    wrong = Some(uint(v).ok_or_else(|| bad("#wrong"))?);
                }
                Col::Error if v != "N/A" => {
                    let (x, star) = match v.strip_suffix('*') {
                        Some(x) => (x, true),
                        None => (v, false),
                    };
                    max_error = Some(num(x).ok_or_else(|| bad("error"))?);
                    flagged = star;
                }
                Col::Iter(name) => {
                    has_iter = true;
                    let x = if v == "N/A" {
                        None
                    } else {
                        Some(num(v).ok_or_else(|| bad(name))?)
                    };
                    match name.as_str() {
                        "i_min" => iter.min_us = x,
                        "i_max" => iter.max_us = x,
                        "i_p99" => iter.p99_us = x,
                        "i_cv%" => iter.cv_pct = x,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        let (Some(time_us), Some(algbw_gbps), Some(busbw_gbps)) = (time, alg, bus) else {
            return Err("missing time/algbw/busbw".to_string());
        };
        rows.push(NcclRow {
            line,
            collective: collective.map(str::to_string),
            size_bytes: size,
            count,
            dtype: dtype.to_string(),
            redop: redop.clone(),
            root,
            placement: if g == 0 {
                Placement::OutOfPlace
            } else {
                Placement::InPlace
            },
            time_us,
            algbw_gbps,
            busbw_gbps,
            wrong,
            max_error,
            error_flagged: flagged,
            iter: has_iter.then_some(iter),
            timestamp: timestamp.clone(),
        });
    }
    Ok(rows)
}

/// Parses nccl-tests text output from a reader (standalone use).
pub fn parse_reader<R: std::io::BufRead>(reader: R) -> (Vec<NcclRun>, Vec<super::Warning>) {
    super::parse_lines(Parser::new(), reader)
}

/// Parses the `-J` JSON report (format of `src/util.cu`: `version`, `args`, `nccl_version`,
/// `config` with `devices`, `results` with `out_of_place`/`in_place` objects holding `time` (or
/// `cpu_time`), `alg_bw`, `bus_bw`, `nwrong` (`null` when not checked), `out_of_bounds`,
/// `average_bus_bandwidth`, `errors`). A report cut short (the process died before closing it) is
/// repaired by dropping the unfinished element, with a warning.
pub fn parse_json_str(text: &str, w: &mut Warnings) -> Option<NcclRun> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let repaired = repair_truncated_json(text)?;
            match serde_json::from_str(&repaired) {
                Ok(v) => {
                    w.push(
                        0,
                        format!("nccl-tests JSON is incomplete ({e}); read up to its last complete element"),
                    );
                    v
                }
                Err(_) => {
                    w.push(0, format!("nccl-tests JSON unreadable: {e}"));
                    return None;
                }
            }
        }
    };
    Some(run_from_json(&value, w))
}

fn run_from_json(v: &Value, w: &mut Warnings) -> NcclRun {
    let mut run = NcclRun {
        nccl_version: v
            .get("nccl_version")
            .and_then(json_uint)
            .and_then(decode_nccl_code),
        ..NcclRun::default()
    };
    json_command(v, &mut run);
    if let Some(cfg) = v.get("config") {
        run.params = json_params(cfg);
        run.per_iteration = cfg.get("per_iter_timing").and_then(Value::as_str) == Some("true");
        json_devices(cfg, &mut run, w);
    }
    json_rows(v, &mut run, w);
    json_checks(v, &mut run);
    run.concluded = v.get("end_time").is_some();
    run.summarize();
    run
}

fn json_text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// An unsigned integer, also when written as a whole float or as text.
fn json_uint(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|x| *x >= 0.0 && x.fract() == 0.0)
                .map(|x| x as u64)
        })
        .or_else(|| v.as_str().and_then(uint))
}

fn json_num(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(num))
}

/// The binary, its collective and the whole command line from `args`.
fn json_command(v: &Value, run: &mut NcclRun) {
    if let Some(args) = v.get("args").and_then(Value::as_array) {
        let parts: Vec<String> = args.iter().filter_map(json_text).collect();
        if let Some(first) = parts.first() {
            let b = first.rsplit('/').next().unwrap_or(first).to_string();
            run.collective = Some(collective_of(&b));
            run.binary = Some(b);
        }
        run.command = Some(parts.join(" "));
    }
}

/// The run's `config` block: the command line's parameters.
fn json_params(cfg: &Value) -> NcclParams {
    let g = |k: &str| cfg.get(k).and_then(json_uint);
    NcclParams {
        nthreads: g("nthreads"),
        ngpus: g("ngpus"),
        min_bytes: g("minimum_bytes"),
        max_bytes: g("maximum_bytes"),
        step_factor: g("step_factor"),
        step_bytes: g("step_bytes"),
        warmup_iters: g("warmup_iters"),
        iters: g("iterations"),
        agg_iters: g("aggregated_iterations"),
        validation: g("validation"),
        graph: g("graph"),
        unalign: g("unalign"),
    }
}

/// The ranks' devices in the `config` block; one without its rank, pid or device is dropped
/// with a warning (the rest of the run still stands).
fn json_devices(cfg: &Value, run: &mut NcclRun, w: &mut Warnings) {
    for d in cfg
        .get("devices")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (Some(rank), Some(pid), Some(device)) = (
            d.get("rank").and_then(json_uint),
            d.get("pid").and_then(json_uint),
            d.get("device").and_then(json_uint),
        ) else {
            w.push(
                0,
                "nccl-tests JSON: device without rank/pid/device: ignored",
            );
            continue;
        };
        run.devices.push(NcclDevice {
            rank: rank as u32,
            group: d.get("group").and_then(json_uint).map(|x| x as u32),
            pid,
            host: d.get("hostname").and_then(json_text).unwrap_or_default(),
            device: device as u32,
            bus_id: d.get("device_hex").and_then(json_text).unwrap_or_default(),
            name: d.get("device_info").and_then(json_text).unwrap_or_default(),
        });
    }
}

/// The result rows, out-of-place and in-place, of every size; an incomplete one is dropped
/// with a warning.
fn json_rows(v: &Value, run: &mut NcclRun, w: &mut Warnings) {
    for (i, r) in v
        .get("results")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        json_result_rows(i, r, run, w);
    }
}

/// The rows of the `i`th result: one per placement it reports.
fn json_result_rows(i: usize, r: &Value, run: &mut NcclRun, w: &mut Warnings) {
    let (Some(size), Some(count), Some(dtype)) = (
        r.get("size").and_then(json_uint),
        r.get("count").and_then(json_uint),
        r.get("type").and_then(json_text),
    ) else {
        w.push(
            0,
            format!("nccl-tests JSON: result {i} without size/count/type: ignored"),
        );
        return;
    };
    let redop = r.get("redop").and_then(json_text);
    let root = r
        .get("root")
        .and_then(|x| x.as_i64().or_else(|| x.as_str().and_then(int)));
    for (key, placement) in [
        ("out_of_place", Placement::OutOfPlace),
        ("in_place", Placement::InPlace),
    ] {
        let Some(p) = r.get(key).filter(|p| p.is_object()) else {
            continue;
        };
        let time = p
            .get("time")
            .or_else(|| p.get("cpu_time"))
            .and_then(json_num);
        if p.get("cpu_time").is_some() {
            run.cpu_time = true;
        }
        let (Some(time_us), Some(algbw_gbps), Some(busbw_gbps)) = (
            time,
            p.get("alg_bw").and_then(json_num),
            p.get("bus_bw").and_then(json_num),
        ) else {
            w.push(
                0,
                format!("nccl-tests JSON: result {i} {key} incomplete: ignored"),
            );
            continue;
        };
        let iter = r.get(format!("{key}_per_iter")).map(|it| IterStats {
            min_us: it.get("min_us").and_then(json_num),
            max_us: it.get("max_us").and_then(json_num),
            p99_us: it.get("p99_us").and_then(json_num),
            cv_pct: it.get("cv_pct").and_then(json_num),
        });
        run.rows.push(NcclRow {
            line: 0,
            collective: run.collective.clone(),
            size_bytes: size,
            count,
            dtype: dtype.clone(),
            redop: redop.clone(),
            root,
            placement,
            time_us,
            algbw_gbps,
            busbw_gbps,
            wrong: p.get("nwrong").and_then(json_uint),
            max_error: None,
            error_flagged: false,
            iter,
            timestamp: None,
        });
    }
}

/// The run's own verdicts: out-of-bounds values, the average bus bandwidth's check, errors.
fn json_checks(v: &Value, run: &mut NcclRun) {
    if let Some(oob) = v.get("out_of_bounds") {
        run.oob_values = oob.get("count").and_then(json_uint);
        run.oob_ok = oob.get("okay").and_then(Value::as_str).map(|x| x == "true");
    }
    if let Some(avg) = v.get("average_bus_bandwidth") {
        run.avg_busbw_gbps = avg.get("bandwidth").and_then(json_num);
        run.avg_busbw_check = match avg.get("okay").and_then(Value::as_str) {
            Some("true") => Some("OK".to_string()),
            Some("false") => Some("FAILED".to_string()),
            _ => None,
        };
    }
    for e in v
        .get("errors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let Some(msg) = e.as_str().filter(|m| !m.is_empty()) {
            run.errors.push(NcclTestError {
                line: 0,
                host: None,
                message: msg.to_string(),
            });
        }
    }
}

/// Cuts a truncated JSON document after its last complete element and closes what is open.
fn repair_truncated_json(text: &str) -> Option<String> {
    let mut stack: Vec<char> = Vec::new();
    let mut in_str = false;
    let mut esc = false;
    // (byte offset of a ',' outside strings, the closers needed there)
    let mut best: Option<(usize, String)> = None;
    for (i, c) in text.char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' => {
                stack.pop();
            }
            ',' => {
                let closers: String = stack.iter().rev().collect();
                best = Some((i, closers));
            }
            _ => {}
        }
    }
    let (cut, closers) = best?;
    Some(format!("{}{}", &text[..cut], closers))
}

#[cfg(test)]
mod tests {
    /// Command lines that run a test binary with options (as a batch script's `set -x` or
    /// `echo` prints them; shell commands, not a test's output) name the run's collective,
    /// through the whole one-pass parser (their literal is in the line gate's other
    /// automaton); a mention of a binary that is no invocation does not.
    #[test]
    fn a_command_line_names_the_collective() {
        for (line, collective) in [
            (
                "mpirun -np 16 -N 8 ./build/all_reduce_perf -b 8 -e 8G -f 2 -g 1",
                Some("all_reduce"),
            ),
            (
                "+ srun --mpi=pmix all_gather_perf -b 1M -e 1G",
                Some("all_gather"),
            ),
            ("/opt/nccl-tests/build/alltoall_perf", Some("alltoall")),
            ("node1: ./build/sendrecv_perf_mpi -g 1", Some("sendrecv")),
            ("results of all_reduce_perf are in out.log", None),
            ("writing all_reduce_perf.log", None),
        ] {
            let runs = super::super::parse_str("t.log", &format!("{line}\n")).nccl_tests;
            let got = runs.first().and_then(|r| r.collective.as_deref());
            assert_eq!(got, collective, "{line}");
        }
    }

    /// The byte test before the field split changes no answer of the split alone.
    #[test]
    fn rows_are_told_apart_as_the_field_split_tells_them() {
        let split = |t: &str| {
            let mut head = t.split_whitespace();
            let unsigned =
                |f: Option<&str>| f.is_some_and(|f| f.bytes().all(|b| b.is_ascii_digit()));
            unsigned(head.next()) && unsigned(head.next())
        };
        for t in [
            "1024 256 float sum -1 12.3 0.08 0.08 0",
            "2026/12/02 13:26:33.468, 0, NVIDIA H200, 00000000:00:06.0, 0 %",
            "1024\t256\tfloat",
            "1024\u{b}256 float",
            "1024\u{c}256 float",
            "1024\r256",
            "1024\u{a0}256 float",
            "1024\u{2003}256 float",
            "1024\u{1c}256 float",
            "1024x 256",
            "1024",
            "1024 ",
            "1024 x",
            "12,34 5",
            "7\u{e9} 1",
            "",
            "x 1 2",
        ] {
            assert_eq!(super::starts_like_row(t), split(t), "{t:?}");
        }
    }
    use super::super::testdata::{device, device_line};
    use super::*;

    fn runs(text: &str) -> (Vec<NcclRun>, Vec<super::super::Warning>) {
        parse_reader(text.as_bytes())
    }

    #[test]
    fn header_maps_columns_by_name() {
        let h = device_line("nccl-ts-periter.log", "#wrong           timestamp");
        let l = Layout::from_header(&h).expect("header");
        assert_eq!(l.groups, vec![5, 9]);
        assert!(l.timestamp());
        assert_eq!(l.fields(), 15);
        let units = device_line("nccl-ts-periter.log", "(elements)");
        assert!(Layout::from_header(&units).is_none());
    }

    #[test]
    fn decodes_nccl_codes() {
        assert_eq!(decode_nccl_code(22809).as_deref(), Some("2.28.9"));
        assert_eq!(decode_nccl_code(2708).as_deref(), Some("2.7.8"));
    }

    #[test]
    fn truncated_row_is_a_warning_not_a_number() {
        let text = device("nccl-allreduce-json-stdout.log");
        let row = device_line(
            "nccl-allreduce-json-stdout.log",
            "    16777216       4194304",
        );
        let cut = &row[..row.len() - 12];
        let (r, w) = runs(&text.replace(&row, cut));
        assert_eq!(r[0].rows.len(), 14);
        assert!(w.iter().any(|w| w.message.contains("fields")), "{w:?}");
    }

    #[test]
    fn glued_info_line_after_a_row_costs_the_row_with_a_warning() {
        let text = device("nccl-allgather-debug.log");
        let row = device_line("nccl-allgather-debug.log", "  1073741824     268435456");
        let info = device_line("nccl-allgather-debug.log", "Destroy COMPLETE");
        let glued = text.replace(&format!("{row}\n{info}"), &format!("{row}{info}"));
        assert_ne!(glued, text);
        let (r, w) = runs(&glued);
        assert_eq!(r[0].rows.len(), 10);
        assert!(w.iter().any(|w| w.message.contains("fields")), "{w:?}");
    }

    #[test]
    fn repairs_truncated_json() {
        let json = device("nccl-allreduce.json");
        let cut = json.find(r#"{"size":4096"#).expect("4096") + 30;
        let mut w = Warnings::new();
        let run = parse_json_str(&json[..cut], &mut w).expect("repaired");
        // Sizes 8, 64, 512 are complete, 4096 is cut inside and dropped.
        assert_eq!(run.rows.len(), 6);
        assert!(w.as_slice()[0].message.contains("incomplete"));
    }
}

#[cfg(test)]
mod device_tests {
    use super::super::testdata::device;
    use super::*;

    fn parse(name: &str) -> (Vec<NcclRun>, Vec<super::super::Warning>) {
        parse_reader(device(name).as_bytes())
    }

    #[test]
    fn allgather_with_nccl_info_between_header_and_rows() {
        let (runs, w) = parse("nccl-allgather-debug.log");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(r.collective.as_deref(), Some("all_gather"));
        assert_eq!(r.binary.as_deref(), Some("all_gather_perf"));
        assert_eq!(r.nccl_tests_version.as_deref(), Some("2.19.6"));
        assert_eq!(r.nccl_version.as_deref(), Some("2.28.9+cuda13.0"));
        assert_eq!(r.params.min_bytes, Some(1_048_576));
        assert_eq!(r.params.max_bytes, Some(1_073_741_824));
        assert_eq!(r.params.step_factor, Some(4));
        assert_eq!(
            (r.params.warmup_iters, r.params.iters, r.params.agg_iters),
            (Some(1), Some(20), Some(1))
        );
        assert_eq!(
            (r.nranks, r.nodes, r.gpus_per_node),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(r.gpu_name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(r.devices[0].bus_id, "0000:00:06");
        assert_eq!(r.devices[0].host, "vm");
        assert_eq!(r.devices[0].group, Some(0));
        assert_eq!(r.rows.len(), 12);
        let oop = &r.rows[0];
        assert_eq!(
            (
                oop.size_bytes,
                oop.count,
                oop.dtype.as_str(),
                oop.redop.as_deref(),
                oop.root
            ),
            (1_048_576, 262_144, "float", Some("none"), Some(-1))
        );
        assert_eq!(oop.placement, Placement::OutOfPlace);
        assert_eq!(
            (oop.time_us, oop.algbw_gbps, oop.busbw_gbps, oop.wrong),
            (8.76, 119.69, 0.0, Some(0))
        );
        let last_ip = &r.rows[11];
        assert_eq!(last_ip.placement, Placement::InPlace);
        assert_eq!(last_ip.size_bytes, 1_073_741_824);
        // Scientific notation: "3e+06".
        assert_eq!(last_ip.algbw_gbps, 3e6);
        assert_eq!((r.oob_values, r.oob_ok), (Some(0), Some(true)));
        assert_eq!(r.avg_busbw_gbps, Some(0.0));
        assert!(r.concluded);
    }

    #[test]
    fn seven_collectives_in_one_file() {
        let (runs, w) = parse("nccl-collectives.log");
        assert!(w.is_empty(), "{w:?}");
        let names: Vec<_> = runs
            .iter()
            .map(|r| r.collective.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "broadcast",
                "reduce",
                "reduce_scatter",
                "alltoall",
                "sendrecv",
                "gather",
                "scatter"
            ]
        );
        for r in &runs {
            assert_eq!(r.rows.len(), 6, "{:?}", r.collective);
            assert!(r.concluded);
        }
        let bcast = &runs[0];
        assert_eq!(bcast.rows[0].root, Some(0));
        assert_eq!(bcast.rows[0].redop.as_deref(), Some("none"));
        assert_eq!(bcast.rows[5].busbw_gbps, 26131.0);
        assert_eq!(bcast.avg_busbw_gbps, Some(6601.01));
        assert_eq!(runs[1].avg_busbw_gbps, Some(23971.6));
        assert_eq!(runs[1].rows[5].algbw_gbps, 111_829.0);
        // alltoall and sendrecv: in-place "#wrong" is N/A.
        let a2a = &runs[3];
        assert_eq!(a2a.rows[1].placement, Placement::InPlace);
        assert_eq!(a2a.rows[1].wrong, None);
        assert_eq!(a2a.rows[0].wrong, Some(0));
        assert_eq!(runs[4].avg_busbw_gbps, Some(9543.41));
        assert_eq!(runs[5].rows[0].root, Some(0));
        assert_eq!(runs[6].devices[0].pid, 1792);
    }

    #[test]
    fn timestamp_and_per_iteration_columns() {
        let (runs, w) = parse("nccl-ts-periter.log");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(runs.len(), 2);
        let s = &runs[0];
        assert!(s.timestamps);
        assert!(!s.per_iteration);
        assert_eq!(s.rows.len(), 10);
        assert_eq!(s.rows[0].timestamp.as_deref(), Some("2026-11-24 23:14:48"));
        assert_eq!(s.rows[1].timestamp.as_deref(), Some("2026-11-24 23:14:48"));
        assert_eq!((s.rows[0].time_us, s.rows[1].time_us), (4.92, 0.93));
        assert_eq!(s.rows[9].algbw_gbps, 274_670.0);
        let i = &runs[1];
        assert!(i.per_iteration);
        assert!(!i.timestamps);
        assert_eq!(i.rows.len(), 10);
        let first = &i.rows[0];
        assert_eq!(
            (first.time_us, first.algbw_gbps, first.wrong),
            (11.59, 90.46, Some(0))
        );
        assert_eq!(
            first.iter,
            Some(IterStats {
                min_us: Some(5.02),
                max_us: Some(86.88),
                p99_us: Some(86.88),
                cv_pct: Some(159.04)
            })
        );
        let ip = &i.rows[1];
        assert_eq!(ip.placement, Placement::InPlace);
        assert_eq!(ip.time_us, 2.42);
        assert_eq!(ip.iter.as_ref().and_then(|x| x.cv_pct), Some(31.25));
        assert_eq!(i.rows[9].iter.as_ref().and_then(|x| x.min_us), Some(1.28));
    }

    #[test]
    fn json_report_matches_its_stdout_table() {
        let (text_runs, w) = parse("nccl-allreduce-json-stdout.log");
        assert!(w.is_empty(), "{w:?}");
        let t = &text_runs[0];
        assert_eq!(t.json_output.as_deref(), Some("nccl-allreduce.json"));
        let mut ww = Warnings::new();
        let j = parse_json_str(&device("nccl-allreduce.json"), &mut ww).expect("json");
        assert!(ww.is_empty(), "{:?}", ww.as_slice());
        assert_eq!(j.collective.as_deref(), Some("all_reduce"));
        assert_eq!(j.nccl_version.as_deref(), Some("2.28.9"));
        assert_eq!(j.params.max_bytes, Some(67_108_864));
        assert_eq!(j.devices[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(j.rows.len(), t.rows.len());
        assert_eq!(j.rows.len(), 16);
        for (a, b) in j.rows.iter().zip(&t.rows) {
            assert_eq!(
                (a.size_bytes, a.count, a.placement, a.root),
                (b.size_bytes, b.count, b.placement, b.root)
            );
            assert_eq!((&a.dtype, &a.redop, a.wrong), (&b.dtype, &b.redop, b.wrong));
            // The table rounds what the JSON holds in full.
            assert!(
                (a.time_us - b.time_us).abs() <= 0.006 * a.time_us.max(1.0),
                "{a:?} {b:?}"
            );
        }
        assert_eq!(j.rows[0].time_us, 9.64955);
        assert_eq!(j.rows[15].algbw_gbps, 46883.375716);
        assert_eq!((j.oob_values, j.oob_ok), (Some(0), Some(true)));
        assert_eq!(j.avg_busbw_gbps, Some(0.0));
        assert_eq!(j.avg_busbw_check, None);
        assert!(j.errors.is_empty());
        assert!(j.concluded);
    }
}
