//! `nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]` samples and `nvidia-smi topo -m`.
//!
//! CSV (as nvidia-smi prints it): fields separated by `, `; the header, when printed, names each
//! column by its canonical name with the unit in brackets (`utilization.gpu [%]`, `memory.used
//! [MiB]`, `power.draw [W]`, `clocks.current.sm [MHz]`), whatever alias was queried (`gpu_name`
//! → `name`, `gpu_bus_id` → `pci.bus_id`, `clocks.sm` → `clocks.current.sm`); without `nounits`
//! the values carry the unit (`45 %`, `1234 MiB`); unavailable values are `[N/A]`, `N/A`, `[Not
//! Supported]`, `[Unknown Error]` and become *missing*, never zero. Columns come from the header,
//! or from an `nvidia-smi --query-gpu=LIST ...noheader` command line in the log, or else from the
//! caller's list ([`TEMPLATE_COLUMNS`] by default: the project's job templates).
//!
//! `topo -m`: a matrix whose header names the device columns (`GPU0`.., `NIC0`.. or the HCA
//! names `mlx5_0`.. in older drivers) then `CPU Affinity`, `NUMA Affinity` and (newer drivers)
//! `GPU NUMA ID`; cells are tab-separated (space-aligned when pasted), links are `X`, `NV#`,
//! `PIX`, `PXB`, `PHB`, `NODE`, `SYS` (old `SOC`); NIC rows leave the affinity cells empty; an
//! optional `NIC Legend:` maps `NICn` to device names. The affinity cells of a GPU row are the
//! non-empty cells after the link cells (nvidia-smi pads them with an extra tab); when their
//! count does not match the affinity columns they are left unset, with a warning.

use std::collections::BTreeMap;
use std::sync::Arc;

use compact_str::CompactString;
use serde::Serialize;

use super::{Line, Warnings, num, push_capped, uint};

/// The columns queried by the project's job templates.
pub const TEMPLATE_COLUMNS: &[&str] = &[
    "timestamp",
    "index",
    "name",
    "pci.bus_id",
    "utilization.gpu",
    "utilization.memory",
    "memory.used",
    "memory.total",
    "power.draw",
    "power.limit",
    "temperature.gpu",
    "temperature.memory",
    "clocks.sm",
    "clocks.mem",
];

/// One sample of one GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuSample {
    pub line: u64,
    /// As printed (`2026/11/24 21:52:34.908`).
    pub timestamp: Option<CompactString>,
    pub index: Option<u32>,
    pub name: Option<CompactString>,
    pub bus_id: Option<CompactString>,
    pub uuid: Option<CompactString>,
    pub util_gpu_pct: Option<f64>,
    pub util_mem_pct: Option<f64>,
    pub mem_used_mib: Option<f64>,
    pub mem_total_mib: Option<f64>,
    pub power_draw_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub temp_gpu_c: Option<f64>,
    pub temp_mem_c: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub mem_clock_mhz: Option<f64>,
    /// Other columns, as printed (`None` when unavailable).
    pub extra: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Timestamp,
    Index,
    Name,
    BusId,
    Uuid,
    UtilGpu,
    UtilMem,
    MemUsed,
    MemTotal,
    PowerDraw,
    PowerLimit,
    TempGpu,
    TempMem,
    SmClock,
    MemClock,
    Other,
}

fn field_of(name: &str) -> Field {
    let base = name.split(" [").next().unwrap_or(name).trim();
    // Lower-cased on the stack: every known name is short and ASCII.
    let mut buf = [0u8; 24];
    let Some(low) = buf.get_mut(..base.len()).filter(|_| base.is_ascii()) else {
        return Field::Other;
    };
    low.copy_from_slice(base.as_bytes());
    low.make_ascii_lowercase();
    match std::str::from_utf8(low).unwrap_or("") {
        "timestamp" => Field::Timestamp,
        "index" => Field::Index,
        "name" | "gpu_name" => Field::Name,
        "pci.bus_id" | "gpu_bus_id" => Field::BusId,
        "uuid" | "gpu_uuid" => Field::Uuid,
        "utilization.gpu" => Field::UtilGpu,
        "utilization.memory" => Field::UtilMem,
        "memory.used" => Field::MemUsed,
        "memory.total" => Field::MemTotal,
        "power.draw" | "power.draw.instant" => Field::PowerDraw,
        "power.limit" | "enforced.power.limit" => Field::PowerLimit,
        "temperature.gpu" => Field::TempGpu,
        "temperature.memory" => Field::TempMem,
        "clocks.sm" | "clocks.current.sm" => Field::SmClock,
        "clocks.mem" | "clocks.current.memory" | "clocks.memory" => Field::MemClock,
        _ => Field::Other,
    }
}

/// True for values nvidia-smi prints when a value is unavailable.
pub fn is_missing(v: &str) -> bool {
    let v = v.trim();
    v.is_empty() || v == "N/A" || (v.starts_with('[') && v.ends_with(']'))
}

fn is_column_name(f: &str) -> bool {
    // Samples start with a digit: most calls end here, before any search.
    if !f.as_bytes().first().is_some_and(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let base = f.split(" [").next().unwrap_or(f);
    let ok = !base.is_empty()
        && base.as_bytes()[0].is_ascii_lowercase()
        && base
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
    ok && (base.len() == f.len() || f.ends_with(']'))
}

/// Whether the comma-separated fields (trimmed) are a `--query-gpu` header: at least two, each a
/// column name (`utilization.gpu [%]`), one of them a field this parser knows.
fn is_header_fields(parts: &[&str]) -> bool {
    parts.len() >= 2
        && parts.iter().all(|p| is_column_name(p))
        && parts.iter().any(|p| field_of(p) != Field::Other)
}

/// Whether a file whose first lines are `head` is `nvidia-smi --query-gpu` CSV output, as
/// [`CsvParser`] recognizes it: its first non-empty line is a query header, an `nvidia-smi
/// --query-gpu=...` command line, or (`noheader`) a sample whose first field is nvidia-smi's
/// timestamp (`2026/11/24 21:52:34.908`, the project's templates query it first).
pub fn is_query_csv(head: &str) -> bool {
    let Some(first) = head.lines().map(|l| l.trim()).find(|l| !l.is_empty()) else {
        return false;
    };
    if first.contains("--query-gpu=") {
        return true;
    }
    let parts: Vec<&str> = first.split(',').map(str::trim).collect();
    is_header_fields(&parts) || (parts.len() >= 2 && looks_like_timestamp(parts[0]))
}

fn looks_like_timestamp(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 19 && b[..4].iter().all(u8::is_ascii_digit) && (b[4] == b'/' || b[4] == b'-')
}

/// The columns of `--query-gpu` samples, read once for many parsers.
#[derive(Debug, Clone)]
pub struct Columns {
    names: Arc<[String]>,
    fields: Arc<[Field]>,
}

impl Columns {
    pub fn new(names: Vec<String>) -> Self {
        Columns {
            fields: names.iter().map(|c| field_of(c)).collect(),
            names: names.into(),
        }
    }
}

/// Streaming parser of `--query-gpu` CSV samples.
#[derive(Debug)]
pub struct CsvParser {
    // Shared: every file's parser starts from the same columns.
    names: Arc<[String]>,
    fields: Arc<[Field]>,
    /// Columns come from a header (or a command line) rather than from the caller.
    from_log: bool,
    samples: Vec<GpuSample>,
}

impl CsvParser {
    pub fn new(columns: Vec<String>) -> Self {
        Self::with_columns(&Columns::new(columns))
    }

    /// A parser whose header-less samples have `columns`.
    pub fn with_columns(columns: &Columns) -> Self {
        CsvParser {
            names: columns.names.clone(),
            fields: columns.fields.clone(),
            from_log: false,
            samples: Vec::new(),
        }
    }

    fn set_columns(&mut self, names: Vec<String>) {
        let c = Columns::new(names);
        self.names = c.names;
        self.fields = c.fields;
        self.from_log = true;
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        let t = super::trim(line.text);
        let tb = t.as_bytes();
        // Up to 32 fields without an allocation per row.
        let mut commas = [0u32; 31];
        let (n_commas, ascii) = super::find_seps(tb, b',', &mut commas);
        if n_commas == 0 {
            return;
        }
        static QUERY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"--query-gpu="));
        // (A sample holds no `=`: one byte's search spares most rows the substring search.)
        if memchr::memchr(b'=', tb).is_some()
            && QUERY.find(tb).is_some()
            && let Some(q) = t.split("--query-gpu=").nth(1)
        {
            let list = q.split_whitespace().next().unwrap_or("");
            if t.contains("noheader") && !list.is_empty() {
                self.set_columns(list.split(',').map(|s| s.trim().to_string()).collect());
            }
            return;
        }
        // An ASCII line (every sample nvidia-smi prints) is trimmed byte-wise; the same answer
        // as `str::trim`'s, which must decode characters.
        fn trim(p: &str, ascii: bool) -> &str {
            if ascii { p.trim_ascii() } else { p.trim() }
        }
        let n = n_commas + 1;
        let mut small = [""; 32];
        if n <= small.len() {
            let mut from = 0;
            for (slot, &end) in small
                .iter_mut()
                .zip(commas[..n_commas].iter().chain([&(tb.len() as u32)]))
            {
                // A comma is ASCII: both ends are character boundaries.
                *slot = trim(&t[from..end as usize], ascii);
                from = end as usize + 1;
            }
        }
        let many: Vec<&str>;
        let parts: &[&str] = if n <= small.len() {
            &small[..n]
        } else {
            many = t.split(',').map(|p| trim(p, ascii)).collect();
            &many
        };
        if is_header_fields(parts) {
            self.set_columns(parts.iter().map(|s| s.to_string()).collect());
            return;
        }
        if parts.len() != self.fields.len() || parts.len() < 2 {
            return;
        }
        // Without a header, accept only lines that look like samples.
        if let Some(i) = self.fields.iter().position(|f| *f == Field::Timestamp)
            && !looks_like_timestamp(parts[i])
        {
            return;
        }
        if let Some(i) = self.fields.iter().position(|f| *f == Field::Index)
            && uint(parts[i]).is_none()
        {
            return;
        }
        let mut s = GpuSample {
            line: line.no,
            ..GpuSample::default()
        };
        let mut bad = Vec::new();
        for ((field, name), v) in self.fields.iter().zip(self.names.iter()).zip(parts) {
            // `v` is trimmed already.
            let missing = v.is_empty() || *v == "N/A" || (v.starts_with('[') && v.ends_with(']'));
            // Only the text columns keep their text: no copy of every number.
            let text = || (!missing).then(|| CompactString::from(*v));
            let mut number = || -> Option<f64> {
                if missing {
                    return None;
                }
                // The number before a unit (`45 %`, `1234 MiB`).
                let first = if ascii {
                    let b = v.as_bytes();
                    &v[..b
                        .iter()
                        .position(u8::is_ascii_whitespace)
                        .unwrap_or(b.len())]
                } else {
                    v.split_whitespace().next().unwrap_or("")
                };
                let x = num(first);
                if x.is_none() {
                    bad.push(name.clone());
                }
                x
            };
            match field {
                Field::Timestamp => s.timestamp = text(),
                Field::Index => s.index = uint(v).map(|x| x as u32),
                Field::Name => s.name = text(),
                Field::BusId => s.bus_id = text(),
                Field::Uuid => s.uuid = text(),
                Field::UtilGpu => s.util_gpu_pct = number(),
                Field::UtilMem => s.util_mem_pct = number(),
                Field::MemUsed => s.mem_used_mib = number(),
                Field::MemTotal => s.mem_total_mib = number(),
                Field::PowerDraw => s.power_draw_w = number(),
                Field::PowerLimit => s.power_limit_w = number(),
                Field::TempGpu => s.temp_gpu_c = number(),
                Field::TempMem => s.temp_mem_c = number(),
                Field::SmClock => s.sm_clock_mhz = number(),
                Field::MemClock => s.mem_clock_mhz = number(),
                Field::Other => s.extra.push((name.clone(), text().map(String::from))),
            }
        }
        if !bad.is_empty() {
            if self.from_log {
                w.push(
                    line.no,
                    format!("nvidia-smi sample ignored: unreadable {}", bad.join(", ")),
                );
            }
            return;
        }
        push_capped(&mut self.samples, s, "nvidia-smi samples", line.no, w);
    }

    pub fn finish(self, _w: &mut Warnings) -> Vec<GpuSample> {
        self.samples
    }
}

super::line_parser::line_parser!(CsvParser => Vec<GpuSample>);

/// One GPU row of a `topo -m` matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TopoGpu {
    /// `GPU0`
    pub name: String,
    pub index: Option<u32>,
    /// `(device column, link)` for every other device (`X` for itself is left out).
    pub links: Vec<(String, String)>,
    /// As printed (`48-63,176-191`).
    pub cpu_affinity: Option<String>,
    /// The affinity expanded (`48..=63, 176..=191`).
    pub cpus: Vec<u32>,
    /// As printed (`3`, `N/A`).
    pub numa_affinity: Option<String>,
    pub numa_node: Option<u32>,
    pub gpu_numa_id: Option<String>,
    /// NICs with the closest link (device names from the NIC legend when there is one).
    pub nearest_nics: Vec<String>,
    /// That link (`PIX`, `PXB`, `PHB`, `NODE`, `SYS`).
    pub nearest_nic_link: Option<String>,
}

/// A NIC of the matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TopoNic {
    /// Column name (`NIC0` or `mlx5_0`).
    pub name: String,
    /// Device name (`mlx5_0`), from the NIC legend or the column name.
    pub device: String,
}

/// One `nvidia-smi topo -m` matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Topology {
    pub line: u64,
    /// Device columns in order.
    pub devices: Vec<String>,
    pub gpus: Vec<TopoGpu>,
    pub nics: Vec<TopoNic>,
}

impl Topology {
    pub fn gpu(&self, index: u32) -> Option<&TopoGpu> {
        self.gpus.iter().find(|g| g.index == Some(index))
    }
}

const AFFINITY: [&str; 3] = ["CPU Affinity", "NUMA Affinity", "GPU NUMA ID"];

/// Rank of a GPU–NIC link, lower is closer.
fn link_rank(l: &str) -> Option<u32> {
    Some(match l {
        "PIX" => 1,
        "PXB" => 2,
        "PHB" => 3,
        "NODE" => 4,
        "SYS" | "SOC" => 5,
        l if l.starts_with("NV") => 0,
        _ => return None,
    })
}

/// Expands a cpulist (`0-3,8,10-11`); `None` if it is not one.
pub fn expand_cpulist(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (uint(a)?, uint(b)?),
            None => {
                let x = uint(part)?;
                (x, x)
            }
        };
        if b < a || b - a > 65536 || out.len() > 65536 {
            return None;
        }
        out.extend((a..=b).map(|x| x as u32));
    }
    Some(out)
}

#[derive(Debug)]
struct Matrix {
    topo: Topology,
    tabs: bool,
    affinity_cols: Vec<String>,
    /// NIC legend `NICn -> name`.
    legend: BTreeMap<String, String>,
    in_rows: bool,
    in_legend: bool,
    gpu_rows: Vec<(TopoGpu, Vec<(String, String)>)>,
}

/// Streaming parser of `nvidia-smi topo -m` output.
#[derive(Debug, Default)]
pub struct TopoParser {
    cur: Option<Matrix>,
    done: Vec<Topology>,
}

fn split_cells(text: &str, tabs: bool) -> Vec<String> {
    if tabs {
        text.split('\t').map(|c| c.trim().to_string()).collect()
    } else {
        let mut t = text.to_string();
        for a in AFFINITY {
            t = t.replace(a, &a.replace(' ', "\u{1}"));
        }
        t.split_whitespace()
            .map(|c| c.replace('\u{1}', " "))
            .collect()
    }
}

impl TopoParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        let text = line.text;
        let t = text.trim();
        // Only the header names the affinity columns; rows start with a device name.
        let is_header =
            t.starts_with("GPU0") && (t.contains("CPU Affinity") || t.contains("NUMA Affinity"));
        if is_header {
            self.close(w);
            let tabs = text.contains('\t');
            let cells: Vec<String> = split_cells(t, tabs)
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect();
            let split = cells
                .iter()
                .position(|c| AFFINITY.contains(&c.as_str()))
                .unwrap_or(cells.len());
            let devices = cells[..split].to_vec();
            let affinity_cols = cells[split..].to_vec();
            self.cur = Some(Matrix {
                topo: Topology {
                    line: line.no,
                    devices,
                    ..Topology::default()
                },
                tabs,
                affinity_cols,
                legend: BTreeMap::new(),
                in_rows: true,
                in_legend: false,
                gpu_rows: Vec::new(),
            });
            return;
        }
        let Some(m) = self.cur.as_mut() else { return };
        if m.in_rows {
            if t.is_empty() || t.starts_with("Legend") {
                m.in_rows = false;
                return;
            }
            let cells = split_cells(text, m.tabs);
            let Some(name) = cells.first().map(|c| c.trim().to_string()) else {
                return;
            };
            if !m.topo.devices.contains(&name) {
                m.in_rows = false;
                return;
            }
            let n = m.topo.devices.len();
            if cells.len() < 1 + n {
                w.push(
                    line.no,
                    format!(
                        "topo row {name}: {} cells for {n} devices: ignored",
                        cells.len() - 1
                    ),
                );
                return;
            }
            let links: Vec<(String, String)> = m
                .topo
                .devices
                .iter()
                .zip(&cells[1..=n])
                .filter(|(d, l)| **d != name && l.as_str() != "X")
                .map(|(d, l)| (d.clone(), l.clone()))
                .collect();
            if !name.starts_with("GPU") {
                m.topo.nics.push(TopoNic {
                    device: name.clone(),
                    name,
                });
                return;
            }
            let mut gpu = TopoGpu {
                index: uint(&name[3..]).map(|x| x as u32),
                name: name.clone(),
                links: links.clone(),
                ..TopoGpu::default()
            };
            let rest: Vec<&String> = cells[1 + n..].iter().filter(|c| !c.is_empty()).collect();
            if rest.len() == m.affinity_cols.len() {
                for (col, v) in m.affinity_cols.iter().zip(rest) {
                    match col.as_str() {
                        "CPU Affinity" => gpu.cpu_affinity = Some(v.clone()),
                        "NUMA Affinity" => gpu.numa_affinity = Some(v.clone()),
                        _ => gpu.gpu_numa_id = Some(v.clone()),
                    }
                }
                if let Some(a) = &gpu.cpu_affinity {
                    match expand_cpulist(a) {
                        Some(c) => gpu.cpus = c,
                        None if a == "N/A" => {}
                        None => w.push(
                            line.no,
                            format!("topo {name}: CPU affinity '{a}' is not a cpulist"),
                        ),
                    }
                }
                gpu.numa_node = gpu
                    .numa_affinity
                    .as_deref()
                    .and_then(uint)
                    .map(|x| x as u32);
            } else if !rest.is_empty() {
                w.push(
                    line.no,
                    format!(
                        "topo {name}: {} affinity cells for {} columns: affinity not read",
                        rest.len(),
                        m.affinity_cols.len()
                    ),
                );
            }
            if m.gpu_rows.len() < 4096 {
                m.gpu_rows.push((gpu, links));
            }
            return;
        }
        if t.starts_with("NIC Legend") {
            m.in_legend = true;
            return;
        }
        if m.in_legend {
            if let Some((k, v)) = t.split_once(':')
                && k.starts_with("NIC")
            {
                m.legend.insert(k.trim().to_string(), v.trim().to_string());
                return;
            }
            if !t.is_empty() {
                m.in_legend = false;
                self.close(w);
            }
        } else if !t.is_empty() && !t.starts_with("Legend") && !text.starts_with(' ') {
            // Anything but the Legend block ends the matrix.
            self.close(w);
        }
    }

    fn close(&mut self, w: &mut Warnings) {
        let Some(mut m) = self.cur.take() else { return };
        for nic in &mut m.topo.nics {
            if let Some(d) = m.legend.get(&nic.name) {
                nic.device = d.clone();
            }
        }
        let device_of = |col: &str| {
            m.legend
                .get(col)
                .cloned()
                .unwrap_or_else(|| col.to_string())
        };
        for (mut gpu, links) in m.gpu_rows {
            let nic_links: Vec<(&String, u32, &String)> = links
                .iter()
                .filter(|(d, _)| !d.starts_with("GPU"))
                .filter_map(|(d, l)| link_rank(l).map(|r| (d, r, l)))
                .collect();
            if let Some(best) = nic_links.iter().map(|(_, r, _)| *r).min() {
                gpu.nearest_nics = nic_links
                    .iter()
                    .filter(|(_, r, _)| *r == best)
                    .map(|(d, _, _)| device_of(d))
                    .collect();
                gpu.nearest_nic_link = nic_links
                    .iter()
                    .find(|(_, r, _)| *r == best)
                    .map(|(_, _, l)| l.to_string());
            }
            m.topo.gpus.push(gpu);
        }
        if m.topo.gpus.is_empty() {
            w.push(m.topo.line, "topo matrix without GPU rows: ignored");
            return;
        }
        let line = m.topo.line;
        push_capped(&mut self.done, m.topo, "topology matrices", line, w);
    }

    pub fn finish(mut self, w: &mut Warnings) -> Vec<Topology> {
        self.close(w);
        self.done
    }
}

super::line_parser::line_parser!(TopoParser => Vec<Topology>);

/// Parses `--query-gpu` CSV samples from a reader with the given default columns.
pub fn parse_csv_reader<R: std::io::BufRead>(
    reader: R,
    columns: &[&str],
) -> (Vec<GpuSample>, Vec<super::Warning>) {
    super::parse_lines(
        CsvParser::new(columns.iter().map(|s| s.to_string()).collect()),
        reader,
    )
}

/// Parses `topo -m` matrices from a reader.
pub fn parse_topo_reader<R: std::io::BufRead>(reader: R) -> (Vec<Topology>, Vec<super::Warning>) {
    super::parse_lines(TopoParser::new(), reader)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::device;
    use super::*;

    /// Header names are matched whatever their case and unit, as before the stack buffer.
    #[test]
    fn field_names_any_case_and_unit() {
        assert_eq!(field_of("Memory.Used [MiB]"), Field::MemUsed);
        assert_eq!(field_of(" clocks.current.memory [MHz] "), Field::MemClock);
        assert_eq!(field_of("enforced.power.limit"), Field::PowerLimit);
        assert_eq!(field_of("TIMESTAMP"), Field::Timestamp);
        assert_eq!(
            field_of("clocks_event_reasons.hw_thermal_slowdown"),
            Field::Other
        );
        assert_eq!(field_of("m\u{e9}moire"), Field::Other);
        assert_eq!(field_of(""), Field::Other);
    }

    #[test]
    fn device_nvsmi_train_csv() {
        let text = device("nvsmi-train.csv");
        let (s, w) = parse_csv_reader(text.as_bytes(), TEMPLATE_COLUMNS);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.len(), 558);
        let first = &s[0];
        assert_eq!(first.timestamp.as_deref(), Some("2026/11/24 21:52:34.908"));
        assert_eq!(first.index, Some(0));
        assert_eq!(first.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(first.bus_id.as_deref(), Some("00000000:00:06.0"));
        assert_eq!(first.util_gpu_pct, Some(0.0));
        assert_eq!(first.mem_total_mib, Some(81559.0));
        assert_eq!(first.power_draw_w, Some(70.86));
        assert_eq!(first.power_limit_w, Some(700.0));
        assert_eq!(first.temp_gpu_c, Some(39.0));
        assert_eq!(first.temp_mem_c, Some(38.0));
        assert_eq!(
            (first.sm_clock_mhz, first.mem_clock_mhz),
            (Some(345.0), Some(2619.0))
        );
        let last = &s[557];
        assert_eq!(last.timestamp.as_deref(), Some("2026/11/24 21:54:55.637"));
        assert_eq!(last.power_draw_w, Some(133.06));
        assert_eq!(last.temp_mem_c, Some(44.0));
        let peak = s.iter().filter_map(|x| x.util_gpu_pct).fold(0.0, f64::max);
        assert_eq!(peak, 100.0);
    }

    #[test]
    fn device_sysinfo_topo_one_gpu() {
        let (t, w) = parse_topo_reader(device("sysinfo.txt").as_bytes());
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].devices, ["GPU0"]);
        let g = t[0].gpu(0).expect("GPU0");
        assert_eq!(g.cpu_affinity.as_deref(), Some("0-15"));
        assert_eq!(g.cpus, (0..=15).collect::<Vec<u32>>());
        assert_eq!(g.numa_affinity.as_deref(), Some("0"));
        assert_eq!(g.numa_node, Some(0));
        assert_eq!(g.gpu_numa_id.as_deref(), Some("N/A"));
        assert!(g.nearest_nics.is_empty());
    }

    #[test]
    fn space_aligned_topo_reads_like_the_tab_separated_one() {
        // The real matrix with its tabs turned into runs of spaces, as when pasted from a terminal.
        let spaced = device("sysinfo.txt").replace('\t', "    ");
        let (t, w) = parse_topo_reader(spaced.as_bytes());
        assert!(w.is_empty(), "{w:?}");
        let (tabbed, _) = parse_topo_reader(device("sysinfo.txt").as_bytes());
        assert_eq!(t[0].gpus, tabbed[0].gpus);
    }

    #[test]
    fn unavailable_value_is_missing_not_zero() {
        // A real sample with its memory temperature replaced by nvidia-smi's "[N/A]".
        let text = device("nvsmi-train.csv");
        let na = text.replacen(", 38, 345", ", [N/A], 345", 1);
        assert_ne!(na, text);
        let (s, w) = parse_csv_reader(na.as_bytes(), TEMPLATE_COLUMNS);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((s[0].temp_mem_c, s[1].temp_mem_c), (None, Some(38.0)));
        assert_eq!(s[0].temp_gpu_c, Some(39.0));
    }

    #[test]
    fn missing_values() {
        assert!(is_missing("[N/A]"));
        assert!(is_missing("N/A"));
        assert!(is_missing("[Not Supported]"));
        assert!(!is_missing("0"));
        assert_eq!(expand_cpulist("48-63,176-191").map(|v| v.len()), Some(32));
        assert_eq!(expand_cpulist("N/A"), None);
    }
}
