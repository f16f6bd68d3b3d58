//! DeepSpeed logs.
//!
//! Learned from DeepSpeed's printing code:
//! - `utils/logging.py`: `log_dist` prefixes `[Rank N] `; the logger format is
//!   `[YYYY-MM-DD HH:MM:SS,mmm] [LEVEL] [file.py:line:func] msg`;
//! - `runtime/engine.py`: `DeepSpeed info: version=X, git-hash=..., git-branch=...`; the
//!   steps_per_print line `step=N, skipped=N, lr=[...], mom=[...]`; the pipeline engine's
//!   `steps: N loss: X iter time (s): Y samples/sec: Z`; `OVERFLOW! Rank 0 Skipping step`;
//! - `utils/timer.py`: wall_clock_breakdown lines `[Rank 0] time (ms) | fwd: 442.11 | bwd: ...`
//!   (older: `rank=0 time (ms) | ...`) — every `name: value` is kept (`fwd`, `bwd`, `bwd_inner`,
//!   `bwd_allreduce`, `step`, their `_microstep` forms, `optimizer_allgather`, …); and
//!   `ThroughputTimer.stop`, in three generations:
//!   `epoch=E/micro_step=M/global_step=G, RunningAvgSamplesPerSec=X, CurrSamplesPerSec=Y, MemAllocated=aGB, MaxMemAllocated=bGB`,
//!   `E/S, RunningAvgSamplesPerSec=X, CurrSamplesPerSec=Y, MemAllocated=aGB, MaxMemAllocated=bGB`
//!   and `E/S, SamplesPerSec=X[, MemAllocated=..GB, MaxMemAllocated=..GB]`.
//!   `RunningAvgSamplesPerSec` is already a running average since the timer's start step: use the
//!   last value, never average the samples again ([`DeepSpeedInfo::final_running_avg_samples_per_sec`]);
//! - `runtime/config.py`: the `DeepSpeedEngine configuration:` dump, one `  key ..... value`
//!   line per attribute (`[config.py:N:print]`);
//! - `profiling/flops_profiler/profiler.py`: the `Profile Summary at step N:` block of
//!   `'{:<60}  {:<8}'` key/value lines with unit strings from `number_to_string` / `flops_to_string`
//!   / `duration_to_string` (`60.51 M`, `191.26 GMACs`, `2.35 TFLOPS`, `60 ms`, `1.2 B`);
//! - `utils/comms_logging.py`: verbose `rank=0 | comm op: all_reduce | time (ms): 1.23 | msg size:
//!   4.0 MB | algbw (Gbps): ... | busbw (Gbps): ...` and the `log_all` summary table
//!   (`Comm. Op  Message Size  Count  Total Latency(ms)  Avg Latency(ms)  tput_avg (Gbps)
//!   busbw_avg (Gbps)`), sizes in powers of 1024;
//! - `runtime/utils.py` `see_memory_usage`: a message line, then `MA x GB Max_MA x GB CA x GB
//!   Max_CA x GB`, then `CPU Virtual Memory:  used = x GB, percent = y%`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use compact_str::CompactString;
use regex::Regex;
use serde::Serialize;

use super::{Line, Warnings, num, push_capped, uint};

/// The engine configuration (from a `DeepSpeedEngine configuration:` dump or a config JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DsConfig {
    /// Line of the dump (0 for a JSON file).
    pub line: u64,
    pub train_batch_size: Option<u64>,
    pub train_micro_batch_size_per_gpu: Option<u64>,
    pub gradient_accumulation_steps: Option<u64>,
    pub zero_stage: Option<u64>,
    pub world_size: Option<u64>,
    pub steps_per_print: Option<u64>,
    pub wall_clock_breakdown: Option<bool>,
    pub fp16: Option<bool>,
    pub bf16: Option<bool>,
    /// Every `key value` of the dump (first line of multi-line values only).
    pub entries: BTreeMap<String, String>,
}

/// One ThroughputTimer report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ThroughputSample {
    pub line: u64,
    pub epoch: Option<u64>,
    pub micro_step: Option<u64>,
    pub global_step: Option<u64>,
    /// Old formats: the step within the epoch.
    pub local_step: Option<u64>,
    /// Running average since the timer's start: do not average again.
    pub running_avg_samples_per_sec: Option<f64>,
    pub curr_samples_per_sec: Option<f64>,
    pub mem_allocated_gb: Option<f64>,
    pub max_mem_allocated_gb: Option<f64>,
}

/// A steps_per_print progress line (or the pipeline engine's `steps:` line).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DsStep {
    pub line: u64,
    pub step: u64,
    pub skipped: Option<u64>,
    /// First learning rate of the list.
    pub lr: Option<f64>,
    pub loss: Option<f64>,
    pub iter_time_s: Option<f64>,
    pub samples_per_sec: Option<f64>,
}

/// One `time (ms) | name: value | ...` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimerLine {
    pub line: u64,
    pub rank: Option<u32>,
    /// `(name, milliseconds)` in printed order (names inline: no allocation per timer).
    pub timers: Vec<(CompactString, f64)>,
}

impl TimerLine {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.timers.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// A Flops Profiler summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlopsProfile {
    pub line: u64,
    pub step: Option<u64>,
    pub world_size: Option<u64>,
    pub dp_size: Option<u64>,
    pub mp_size: Option<u64>,
    pub batch_size_per_gpu: Option<u64>,
    pub params_per_gpu: Option<f64>,
    pub params_of_model: Option<f64>,
    pub fwd_macs_per_gpu: Option<f64>,
    pub fwd_flops_per_gpu: Option<f64>,
    pub fwd_flops_of_model: Option<f64>,
    pub fwd_latency_ms: Option<f64>,
    pub fwd_tflops_per_gpu: Option<f64>,
    pub bwd_latency_ms: Option<f64>,
    pub bwd_tflops_per_gpu: Option<f64>,
    pub fwd_bwd_tflops_per_gpu: Option<f64>,
    pub step_latency_ms: Option<f64>,
    pub iter_latency_ms: Option<f64>,
    /// `FLOPS per GPU = ... / iter latency`, in TFLOPS.
    pub tflops_per_gpu: Option<f64>,
    pub samples_per_second: Option<f64>,
}

/// A verbose comms-logger line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommsOp {
    pub line: u64,
    pub op: String,
    pub msg_size_bytes: Option<u64>,
    pub latency_ms: f64,
    pub algbw_gbps: Option<f64>,
    pub busbw_gbps: Option<f64>,
}

/// A row of the comms-logger summary table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommsSummary {
    pub line: u64,
    pub op: String,
    pub msg_size_bytes: u64,
    pub count: u64,
    pub total_latency_ms: f64,
    pub avg_latency_ms: f64,
    pub tput_avg_gbps: f64,
    pub busbw_avg_gbps: f64,
}

/// A `see_memory_usage` report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryUsage {
    pub line: u64,
    pub label: Option<String>,
    pub ma_gb: f64,
    pub max_ma_gb: f64,
    pub ca_gb: f64,
    pub max_ca_gb: f64,
    pub cpu_used_gb: Option<f64>,
    pub cpu_percent: Option<f64>,
}

/// Everything DeepSpeed printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeepSpeedInfo {
    pub version: Option<String>,
    /// Engine configurations, in order (DeepSpeed-Chat builds several engines).
    pub configs: Vec<DsConfig>,
    /// `dist_world_size=N` of the launcher.
    pub launcher_world_size: Option<u64>,
    pub throughput: Vec<ThroughputSample>,
    pub steps: Vec<DsStep>,
    pub timers: Vec<TimerLine>,
    pub flops_profiles: Vec<FlopsProfile>,
    pub comms: Vec<CommsOp>,
    pub comms_summary: Vec<CommsSummary>,
    pub memory: Vec<MemoryUsage>,
    /// `OVERFLOW! ... Skipping step` lines (fp16 loss scaler).
    pub overflow_skips: u64,
}

impl DeepSpeedInfo {
    /// The first engine configuration, if any.
    pub fn config(&self) -> Option<&DsConfig> {
        self.configs.first()
    }
    /// The last `RunningAvgSamplesPerSec` (the run's throughput as DeepSpeed computes it).
    pub fn final_running_avg_samples_per_sec(&self) -> Option<f64> {
        self.throughput
            .iter()
            .rev()
            .find_map(|t| t.running_avg_samples_per_sec)
    }
    /// Timer lines that hold `name` (e.g. `fwd`, `step`, `bwd_allreduce_microstep`).
    pub fn timer_values(&self, name: &str) -> Vec<f64> {
        self.timers.iter().filter_map(|t| t.get(name)).collect()
    }
}

/// Every literal some branch of [`Parser::feed`] requires (besides a line starting `MA `): a
/// line with none of them is none of DeepSpeed's, unless a block is open.
pub(crate) const TRIGGERS: &[&str] = &[
    "Profile Summary at step",
    "Flops Profiler",
    "Comm. Op",
    "DeepSpeed info: version=",
    "DeepSpeedEngine configuration:",
    ":print]",
    "SamplesPerSec=",
    "time (ms)",
    "skipped=",
    "iter time (s)",
    "OVERFLOW!",
    "comm op:",
    "see_memory_usage",
    "CPU Virtual Memory",
    "dist_world_size=",
];
static DS_TRIGGERS: LazyLock<Regex> = LazyLock::new(|| super::literal_set(TRIGGERS));
/// ` time (ms)`, the words of a timer line: a searcher made once, not one per line (the timer
/// lines are most of a DeepSpeed log's).
static TIME_MS: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(WORDS));
const WORDS: &str = " time (ms)";
static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"DeepSpeed info: version=([^,\s]+)").expect("static regex"));
/// What [`config_line`] reads, as a regex: the scanner's specification (its test holds the two
/// to the same answers).
#[cfg(test)]
static CONFIG_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[config\.py:\d+:print\]\s+(\w+)\s+(?:\.+\s*)?(.*?)\s*$").expect("static regex")
});

/// The key and value of a line of DeepSpeed's config dump (`DeepSpeedConfig.print`: `[INFO]
/// [config.py:N:print]   train_batch_size ............. 1024`). By hand: a config dump is
/// hundreds of lines a log, some with long values, which the regex's backtracker read at tens
/// of thousands of instructions each.
fn config_line(t: &str) -> Option<(&str, &str)> {
    const TAG: &str = "[config.py:";
    for (at, _) in t.match_indices(TAG) {
        let rest = &t[at + TAG.len()..];
        let (digits, rest) = super::leading_digits(rest);
        let Some(rest) = (!digits.is_empty())
            .then(|| rest.strip_prefix(":print]"))
            .flatten()
        else {
            continue;
        };
        let after_ws = rest.trim_start();
        if after_ws.len() == rest.len() {
            continue;
        }
        let key_len = after_ws.len()
            - after_ws
                .trim_start_matches(|c: char| c.is_alphanumeric() || c == '_')
                .len();
        let (key, rest) = after_ws.split_at(key_len);
        let value = rest.trim_start();
        if key.is_empty() || value.len() == rest.len() {
            continue;
        }
        let value = value.trim_start_matches('.').trim_start().trim_end();
        return Some((key, value));
    }
    None
}
static TP_NEW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"epoch=(\d+)/micro_step=(\d+)/global_step=(\d+),").expect("static regex")
});
static TP_OLD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s\]])(\d+)/(\d+), (?:RunningAvg)?SamplesPerSec=").expect("static regex")
});
static STEP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bstep=(\d+), skipped=(\d+), lr=\[?([^\],\s]+)").expect("static regex")
});
static PIPE_STEP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\bsteps?: *(\d+)(?: / *\d+)? loss: (\S+) .*?iter time \(s\): (\S+) samples/sec: (\S+)",
    )
    .expect("static regex")
});
static VERSION_WORDS: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new("DeepSpeed info: version="));

/// What [`TIMER`] captures in a line: the rank (of `[Rank N]` or `rank=N`) and all after
/// `time (ms)`; by hand, as each timer line of a long run would cost a regex search.
fn timer_line(t: &str) -> Option<(Option<&str>, &str)> {
    if !t.is_ascii() {
        // `\b` is Unicode-aware: the regex decides.
        let c = TIMER.captures(t)?;
        let rank = c.get(1).or(c.get(2)).map(|m| m.as_str());
        return Some((rank, c.get(3).map_or("", |m| m.as_str())));
    }
    let b = t.as_bytes();
    for i in TIME_MS.find_iter(b) {
        let before = &b[..i];
        let digits = before
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let num_at = i - digits;
        let rank = if before.ends_with(b"]") {
            // `[Rank N]`
            let d = before[..i - 1]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let at = i - 1 - d;
            (d > 0 && before[..at].ends_with(b"[Rank ")).then(|| Some(&t[at..i - 1]))
        } else if digits > 0 && before[..num_at].ends_with(b"rank=") {
            // `\brank=N`
            let r = num_at - 5;
            let boundary = r == 0 || !(b[r - 1].is_ascii_alphanumeric() || b[r - 1] == b'_');
            boundary.then(|| Some(&t[num_at..i]))
        } else {
            None
        };
        if let Some(rank) = rank {
            return Some((rank, &t[i + WORDS.len()..]));
        }
    }
    None
}

static TIMER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\[Rank (\d+)\]|\brank=(\d+)) time \(ms\)(.*)$").expect("static regex")
});
static MEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"MA ([\d.]+) GB\s+Max_MA ([\d.]+) GB\s+CA ([\d.]+) GB\s+Max_CA ([\d.]+) GB")
        .expect("static regex")
});
static CPU_MEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"CPU Virtual Memory:\s+used = ([\d.]+) GB, percent = ([\d.]+)%")
        .expect("static regex")
});
static COMM_OP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"comm op: (\S+) \| time \(ms\): ([\d.]+) \| msg size: (\S+ ?[KMGTPE]?B)(?: \| algbw \(Gbps\): ([\d.]+))?\s*(?:\| busbw \(Gbps\): ([\d.]+))?")
        .expect("static regex")
});
/// What [`KV`] captures (`key: value`, at the first `:` that has a key before it and, after
/// whitespace, a value), by hand: a flops profile is many such lines, and the lazy regex with
/// captures costs a microsecond each.
fn key_value(t: &str) -> Option<(&str, &str)> {
    for (c, _) in t.match_indices(':') {
        let key = t[..c].trim_end();
        let after = &t[c + 1..];
        if key.is_empty() || !after.starts_with(char::is_whitespace) {
            continue;
        }
        let val = after.trim();
        if !val.is_empty() {
            return Some((key, val));
        }
    }
    None
}

#[cfg(test)]
static KV: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.*?\S)\s*:\s+(\S.*?)\s*$").expect("static regex"));
static STAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bstage=(\d+)").expect("static regex"));

/// Splits `"60.51 M"` into `(60.51, "M")`.
fn split_unit(v: &str) -> Option<(f64, &str)> {
    let v = v.trim();
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(v.len());
    // "1e" would be cut wrongly only for units starting with e/E, which none do.
    let x = num(&v[..end])?;
    Some((x, v[end..].trim()))
}

fn si(prefix: &str) -> Option<f64> {
    Some(match prefix {
        "" => 1.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" | "B" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "m" => 1e-3,
        "u" | "µ" => 1e-6,
        "n" => 1e-9,
        _ => return None,
    })
}

/// A value with an SI-prefixed unit of `base` (`"2.35 TFLOPS"`, base `FLOPS` → 2.35e12).
fn scaled(v: &str, base: &str) -> Option<f64> {
    let (x, unit) = split_unit(v)?;
    let prefix = unit.strip_suffix(base)?;
    Some(x * si(prefix.trim())?)
}

/// A byte size as printed by `convert_size` (`4.0 MB`, powers of 1024).
fn bytes_1024(v: &str) -> Option<u64> {
    let (x, unit) = split_unit(v)?;
    let p = ["B", "KB", "MB", "GB", "TB", "PB", "EB"]
        .iter()
        .position(|u| *u == unit)?;
    Some((x * 1024f64.powi(p as i32)).round() as u64)
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim() {
        "True" | "true" => Some(true),
        "False" | "false" => Some(false),
        _ => None,
    }
}

/// Streaming parser of DeepSpeed output.
#[derive(Debug, Default)]
pub struct Parser {
    info: DeepSpeedInfo,
    in_dump: bool,
    flops: Option<FlopsProfile>,
    flops_lines: u32,
    comms_op: Option<String>,
    in_comms_table: bool,
    mem_label: Option<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a flops-profiler summary or a comms table is open: every line is its.
    pub(crate) fn in_block(&self) -> bool {
        self.flops.is_some() || self.in_comms_table
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        self.feed_gated(line, false, w);
    }

    /// [`Parser::feed`]; `triggered`: the caller found one of [`TRIGGERS`] in the line (the
    /// one-pass reader's gate), so it need not be looked for again.
    pub(crate) fn feed_gated(&mut self, line: &Line<'_>, triggered: bool, w: &mut Warnings) {
        let t = line.text.trim();
        if self.flops.is_some() {
            self.feed_flops(line, t, w);
            return;
        }
        if self.in_comms_table && self.feed_comms_table(line, t, w) {
            return;
        }
        if t.is_empty() {
            return;
        }
        // One pass over the line for every literal the branches below look for: most lines of
        // a large log are none of DeepSpeed's.
        if !triggered && !t.starts_with("MA ") && !DS_TRIGGERS.is_match(t) {
            return;
        }
        // The timer lines first: one per step (per micro-step too), the most of DeepSpeed's
        // lines in a log; a line that only holds `time (ms)` goes on to the other branches.
        if (TIME_MS.find(t.as_bytes()).is_some() || t.contains("time (ms)"))
            && let Some((rank, rest)) = timer_line(t)
        {
            let rank = rank.and_then(uint).map(|r| r as u32);
            let timers = parse_timers(rest, line.no, w);
            let tl = TimerLine {
                line: line.no,
                rank,
                timers,
            };
            push_capped(
                &mut self.info.timers,
                tl,
                "DeepSpeed timer lines",
                line.no,
                w,
            );
            return;
        }
        if t.contains("Profile Summary at step")
            || (t.contains("Flops Profiler") && t.contains("---"))
        {
            self.flops = Some(FlopsProfile {
                line: line.no,
                ..FlopsProfile::default()
            });
            self.flops_lines = 0;
            self.feed_flops(line, t, w);
            return;
        }
        if t.contains("Comm. Op") && t.contains("Message Size") {
            self.in_comms_table = true;
            self.comms_op = None;
            return;
        }
        if let Some(c) = VERSION_WORDS
            .find(t.as_bytes())
            .and_then(|_| VERSION.captures(t))
        {
            if self.info.version.is_none() {
                self.info.version = c.get(1).map(|m| m.as_str().to_string());
            }
            return;
        }
        if t.contains("DeepSpeedEngine configuration:") {
            self.in_dump = true;
            self.info.configs.push(DsConfig {
                line: line.no,
                ..DsConfig::default()
            });
            return;
        }
        if t.contains(":print]") {
            self.feed_config(line, t);
            return;
        }
        if t.contains("SamplesPerSec=") {
            self.feed_throughput(line, t, w);
            return;
        }
        if t.contains("skipped=") {
            if let Some(c) = STEP.captures(t) {
                let step = DsStep {
                    line: line.no,
                    step: c.get(1).and_then(|m| uint(m.as_str())).unwrap_or(0),
                    skipped: c.get(2).and_then(|m| uint(m.as_str())),
                    lr: c.get(3).and_then(|m| num(m.as_str())),
                    ..DsStep::default()
                };
                push_capped(&mut self.info.steps, step, "DeepSpeed steps", line.no, w);
            }
            return;
        }
        if t.contains("iter time (s)") {
            if let Some(c) = PIPE_STEP.captures(t) {
                let g = |i: usize| c.get(i).and_then(|m| num(m.as_str()));
                let step = DsStep {
                    line: line.no,
                    step: c.get(1).and_then(|m| uint(m.as_str())).unwrap_or(0),
                    loss: g(2),
                    iter_time_s: g(3),
                    samples_per_sec: g(4),
                    ..DsStep::default()
                };
                push_capped(&mut self.info.steps, step, "DeepSpeed steps", line.no, w);
            }
            return;
        }
        if t.contains("OVERFLOW!") && t.contains("Skipping step") {
            self.info.overflow_skips += 1;
            return;
        }
        if t.contains("comm op:") {
            if let Some(c) = COMM_OP.captures(t) {
                let g = |i: usize| c.get(i).and_then(|m| num(m.as_str()));
                if let Some(latency_ms) = g(2) {
                    let op = CommsOp {
                        line: line.no,
                        op: c.get(1).map_or("", |m| m.as_str()).to_string(),
                        msg_size_bytes: c.get(3).and_then(|m| bytes_1024(m.as_str())),
                        latency_ms,
                        algbw_gbps: g(4),
                        busbw_gbps: g(5),
                    };
                    push_capped(&mut self.info.comms, op, "comms-logger lines", line.no, w);
                }
            }
            return;
        }
        if t.contains("see_memory_usage")
            || t.starts_with("MA ")
            || t.contains("CPU Virtual Memory")
        {
            self.feed_memory(line, t, w);
            return;
        }
        if let Some(rest) = t.split("dist_world_size=").nth(1) {
            self.info.launcher_world_size = uint(rest.split_whitespace().next().unwrap_or(""));
        }
    }

    fn feed_config(&mut self, line: &Line<'_>, t: &str) {
        let Some((key, val)) = config_line(t) else {
            return;
        };
        if !self.in_dump || self.info.configs.is_empty() {
            self.in_dump = true;
            self.info.configs.push(DsConfig {
                line: line.no,
                ..DsConfig::default()
            });
        }
        let Some(cfg) = self.info.configs.last_mut() else {
            return;
        };
        match key {
            "train_batch_size" => cfg.train_batch_size = uint(val),
            "train_micro_batch_size_per_gpu" => cfg.train_micro_batch_size_per_gpu = uint(val),
            "gradient_accumulation_steps" => cfg.gradient_accumulation_steps = uint(val),
            "zero_optimization_stage" => cfg.zero_stage = uint(val),
            "zero_config" if cfg.zero_stage.is_none() => {
                cfg.zero_stage = STAGE.captures(val).and_then(|c| uint(c.get(1)?.as_str()));
            }
            "world_size" => cfg.world_size = uint(val),
            "steps_per_print" => cfg.steps_per_print = uint(val),
            "wall_clock_breakdown" => cfg.wall_clock_breakdown = boolean(val),
            "fp16_enabled" => cfg.fp16 = boolean(val),
            "bfloat16_enabled" | "bf16_enabled" => cfg.bf16 = boolean(val),
            "bfloat16_config" | "bf16_config" if cfg.bf16.is_none() => {
                cfg.bf16 = val
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("enabled="))
                    .and_then(boolean);
            }
            _ => {}
        }
        if cfg.entries.len() < 512 {
            cfg.entries
                .insert(key.to_string(), val.chars().take(200).collect());
        }
    }

    fn feed_throughput(&mut self, line: &Line<'_>, t: &str, w: &mut Warnings) {
        let mut s = ThroughputSample {
            line: line.no,
            ..ThroughputSample::default()
        };
        let rest = if let Some(c) = TP_NEW.captures(t) {
            s.epoch = c.get(1).and_then(|m| uint(m.as_str()));
            s.micro_step = c.get(2).and_then(|m| uint(m.as_str()));
            s.global_step = c.get(3).and_then(|m| uint(m.as_str()));
            c.get(0).map_or("", |m| &t[m.end()..])
        } else if let Some(c) = TP_OLD.captures(t) {
            s.epoch = c.get(1).and_then(|m| uint(m.as_str()));
            s.local_step = c.get(2).and_then(|m| uint(m.as_str()));
            c.get(2).map_or("", |m| &t[m.end() + 1..])
        } else {
            return;
        };
        for kv in rest.split(',') {
            let Some((k, v)) = kv.trim().split_once('=') else {
                continue;
            };
            let v = v.trim();
            let gb = || v.strip_suffix("GB").and_then(num);
            match k {
                "RunningAvgSamplesPerSec" | "SamplesPerSec" => {
                    s.running_avg_samples_per_sec = num(v);
                    if s.running_avg_samples_per_sec.is_none() {
                        w.push(line.no, format!("ThroughputTimer: unusable {k}={v}"));
                    }
                }
                "CurrSamplesPerSec" => s.curr_samples_per_sec = num(v),
                "MemAllocated" => s.mem_allocated_gb = gb(),
                "MaxMemAllocated" => s.max_mem_allocated_gb = gb(),
                _ => {}
            }
        }
        push_capped(
            &mut self.info.throughput,
            s,
            "ThroughputTimer lines",
            line.no,
            w,
        );
    }

    fn feed_memory(&mut self, line: &Line<'_>, t: &str, w: &mut Warnings) {
        if let Some(c) = MEM.captures(t) {
            let g = |i: usize| c.get(i).and_then(|m| num(m.as_str())).unwrap_or(0.0);
            let m = MemoryUsage {
                line: line.no,
                label: self.mem_label.take(),
                ma_gb: g(1),
                max_ma_gb: g(2),
                ca_gb: g(3),
                max_ca_gb: g(4),
                ..MemoryUsage::default()
            };
            push_capped(
                &mut self.info.memory,
                m,
                "see_memory_usage reports",
                line.no,
                w,
            );
            return;
        }
        if let Some(c) = CPU_MEM.captures(t) {
            if let Some(m) = self.info.memory.last_mut()
                && m.cpu_used_gb.is_none()
                && line.no.saturating_sub(m.line) <= 3
            {
                m.cpu_used_gb = c.get(1).and_then(|x| num(x.as_str()));
                m.cpu_percent = c.get(2).and_then(|x| num(x.as_str()));
            }
            return;
        }
        if let Some((_, label)) = t.split_once("see_memory_usage]") {
            self.mem_label = Some(label.trim().chars().take(200).collect());
        }
    }

    fn feed_flops(&mut self, line: &Line<'_>, t: &str, w: &mut Warnings) {
        self.flops_lines += 1;
        let Some(p) = self.flops.as_mut() else { return };
        let end = t.contains("Aggregated Profile")
            || t.contains("Detailed Profile")
            || t.starts_with("Top ")
            || t.starts_with("depth ")
            || self.flops_lines > 80;
        if end {
            if let Some(p) = self.flops.take() {
                push_capped(
                    &mut self.info.flops_profiles,
                    p,
                    "flops profiles",
                    line.no,
                    w,
                );
            }
            return;
        }
        if let Some(rest) = t.split("Profile Summary at step").nth(1) {
            p.step = uint(rest.trim().trim_end_matches(':'));
            return;
        }
        let Some((raw_key, val)) = key_value(t) else {
            return;
        };
        let key = raw_key
            .split(" = ")
            .next()
            .unwrap_or(raw_key)
            .trim()
            .to_ascii_lowercase();
        let count = || scaled(val, "");
        let ms = || scaled(val, "s").map(|s| s * 1e3);
        let tflops = || scaled(val, "FLOPS").map(|f| f / 1e12);
        let rate = val.ends_with("FLOPS");
        let mut bad = false;
        let mut set = |slot: &mut Option<f64>, v: Option<f64>| match v {
            Some(v) => *slot = Some(v),
            None => bad = true,
        };
        match key.as_str() {
            "world size" => p.world_size = uint(val),
            "data parallel size" => p.dp_size = uint(val),
            "model parallel size" | "model paralel size" => p.mp_size = uint(val),
            "batch size per gpu" => p.batch_size_per_gpu = uint(val),
            "params per gpu" => set(&mut p.params_per_gpu, count()),
            "params of model" => set(&mut p.params_of_model, count()),
            "fwd macs per gpu" => set(&mut p.fwd_macs_per_gpu, scaled(val, "MACs")),
            "fwd flops per gpu" if rate => set(&mut p.fwd_tflops_per_gpu, tflops()),
            "fwd flops per gpu" => set(&mut p.fwd_flops_per_gpu, count()),
            "fwd flops of model" => set(&mut p.fwd_flops_of_model, count()),
            "fwd latency" => set(&mut p.fwd_latency_ms, ms()),
            "bwd flops per gpu" => set(&mut p.bwd_tflops_per_gpu, tflops()),
            "fwd+bwd flops per gpu" => set(&mut p.fwd_bwd_tflops_per_gpu, tflops()),
            "bwd latency" => set(&mut p.bwd_latency_ms, ms()),
            "step latency" => set(&mut p.step_latency_ms, ms()),
            "iter latency" => set(&mut p.iter_latency_ms, ms()),
            "flops per gpu" => set(&mut p.tflops_per_gpu, tflops()),
            "samples/second" => set(&mut p.samples_per_second, num(val)),
            _ => {}
        }
        if bad {
            w.push(
                line.no,
                format!("flops profiler: unreadable value '{val}' of '{raw_key}'"),
            );
        }
    }

    /// Returns false when the line ends the table (and must be parsed normally).
    fn feed_comms_table(&mut self, line: &Line<'_>, t: &str, w: &mut Warnings) -> bool {
        if t.is_empty() {
            return true;
        }
        let toks: Vec<&str> = t.split_whitespace().collect();
        let indented = line.text.starts_with(' ');
        if !indented && toks.len() == 1 && toks[0].chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            self.comms_op = Some(toks[0].to_string());
            return true;
        }
        if indented && let Some(op) = self.comms_op.clone() {
            let (size, rest) = match toks.as_slice() {
                [s, rest @ ..] if s.ends_with('B') && rest.len() == 5 => (bytes_1024(s), rest),
                [x, u, rest @ ..] if rest.len() == 5 => (bytes_1024(&format!("{x} {u}")), rest),
                _ => (None, &toks[..0]),
            };
            let vals: Vec<Option<f64>> = rest.iter().map(|v| num(v)).collect();
            if let (Some(size), [Some(count), Some(total), Some(avg), Some(tput), Some(bus)]) =
                (size, vals.as_slice())
            {
                let row = CommsSummary {
                    line: line.no,
                    op,
                    msg_size_bytes: size,
                    count: *count as u64,
                    total_latency_ms: *total,
                    avg_latency_ms: *avg,
                    tput_avg_gbps: *tput,
                    busbw_avg_gbps: *bus,
                };
                push_capped(
                    &mut self.info.comms_summary,
                    row,
                    "comms summary rows",
                    line.no,
                    w,
                );
                return true;
            }
            w.push(line.no, "comms-logger summary row unreadable: ignored");
            return true;
        }
        self.in_comms_table = false;
        self.comms_op = None;
        false
    }

    pub fn finish(mut self, w: &mut Warnings) -> DeepSpeedInfo {
        if let Some(p) = self.flops.take() {
            let line = p.line;
            push_capped(&mut self.info.flops_profiles, p, "flops profiles", line, w);
        }
        self.info
    }
}

super::line_parser::line_parser!(Parser => DeepSpeedInfo);

/// Parses `| name: value | name: value` into pairs; warns on unreadable values.
pub fn parse_timers(s: &str, line: u64, w: &mut Warnings) -> Vec<(CompactString, f64)> {
    // Sized for a real line's handful of timers; a garbled line of a million `|` (empty
    // parts, no timers) must not reserve memory for a million.
    let mut out = Vec::with_capacity(memchr::memchr_iter(b'|', s.as_bytes()).count().min(32));
    for part in s.split('|') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, v)) = part.rsplit_once(':') else {
            continue;
        };
        match num(v) {
            Some(x) => out.push((current_timer_name(name.trim()).into(), x)),
            None => w.push(line, format!("timer '{}' has no number", name.trim())),
        }
    }
    out
}

/// DeepSpeed before 0.10.1 (`runtime/engine.py` before PR #3996) named the engine's timers
/// `forward`, `backward`, `backward_inner`, `backward_allreduce` and their `_microstep`
/// forms; they are the timers now named `fwd`, `bwd`, `bwd_inner`, `bwd_allreduce`. One name
/// for both, so that a step's time and the comm/compute split read old logs too.
fn current_timer_name(name: &str) -> &str {
    match name {
        "forward" => "fwd",
        "backward" => "bwd",
        "backward_inner" => "bwd_inner",
        "backward_allreduce" => "bwd_allreduce",
        "forward_microstep" => "fwd_microstep",
        "backward_microstep" => "bwd_microstep",
        "backward_inner_microstep" => "bwd_inner_microstep",
        "backward_allreduce_microstep" => "bwd_allreduce_microstep",
        n => n,
    }
}

/// Reads a DeepSpeed config JSON (`ds_config.json`).
pub fn parse_config_json(text: &str) -> Result<DsConfig, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let u = |k: &str| v.get(k).and_then(|x| x.as_u64());
    let b = |k: &str| v.get(k).and_then(|x| x.as_bool());
    let enabled = |k: &str| {
        v.get(k)
            .and_then(|x| x.get("enabled"))
            .and_then(|x| x.as_bool())
    };
    let mut entries = BTreeMap::new();
    if let Some(obj) = v.as_object() {
        for (k, x) in obj {
            entries.insert(k.clone(), x.to_string().chars().take(200).collect());
        }
    }
    Ok(DsConfig {
        line: 0,
        train_batch_size: u("train_batch_size"),
        train_micro_batch_size_per_gpu: u("train_micro_batch_size_per_gpu"),
        gradient_accumulation_steps: u("gradient_accumulation_steps"),
        zero_stage: v
            .get("zero_optimization")
            .and_then(|z| z.get("stage"))
            .and_then(|s| s.as_u64()),
        world_size: None,
        steps_per_print: u("steps_per_print"),
        wall_clock_breakdown: b("wall_clock_breakdown"),
        fp16: enabled("fp16"),
        bf16: enabled("bf16").or_else(|| enabled("bfloat16")),
        entries,
    })
}

/// Parses DeepSpeed output from a reader (standalone use).
pub fn parse_reader<R: std::io::BufRead>(reader: R) -> (DeepSpeedInfo, Vec<super::Warning>) {
    super::parse_lines(Parser::new(), reader)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::device;
    use super::*;

    #[test]
    fn key_values_read_as_the_regex_reads_them() {
        for l in [
            "world size:                                                   1",
            "params per gpu:                                               6.74 B",
            "fwd flops per gpu:                                            1.2 T",
            "fwd latency:                                                  1.13 s  ",
            "samples/second:                                               3.5",
            "a:b: c",
            "a : b",
            "a :b : c",
            ": x",
            " : x",
            "a:",
            "a:   ",
            "a:\tb",
            "key\u{a0}:\u{a0}v\u{2003}",
            "Top 1 modules in terms of params: x",
            "x \u{e9}: y",
            "",
        ] {
            let re = KV.captures(l).map(|c| {
                (
                    c.get(1).map_or("", |m| m.as_str()),
                    c.get(2).map_or("", |m| m.as_str()),
                )
            });
            assert_eq!(key_value(l), re, "{l:?}");
        }
    }

    #[test]
    fn config_lines_read_as_the_regex_reads_them() {
        // The real config dumps of DeepSpeed 0.10.0's engine and pipeline engine.
        let mut lines: Vec<String> = [
            "device-h200-2026-12-04/ds0.10.0-engine.log",
            "device-h200-2026-12-04/ds0.10.0-pipe.log",
        ]
        .iter()
        .flat_map(|f| {
            super::super::testdata::fixture(f)
                .lines()
                .filter(|l| l.contains(":print]"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
        assert!(lines.len() > 50, "{}", lines.len());
        lines.extend(
            [
                "[config.py:1:print] k v",
                "[config.py:1:print]   k   ...   .5  ",
                "[config.py:1:print]   k   .5",
                "[config.py:1:print]   k ........ ",
                "[config.py:1:print]   k",
                "[config.py:1:print]k v",
                "[config.py::print] k v",
                "[config.py:x:print] k v [config.py:2:print] k2 v2",
                "[config.py:12:print]\u{a0}k\u{e9}y\u{2003}...\u{2003}v\u{a0}",
                "[config.py:12:print] -k v",
                "[config.py:12:print] k_1 {'a': 1, 'b': [1, 2]}",
                "[config.py:12:print]    ",
                "",
            ]
            .map(str::to_string),
        );
        for l in &lines {
            let re = CONFIG_LINE.captures(l).map(|c| {
                (
                    c.get(1).map_or("", |m| m.as_str()),
                    c.get(2).map_or("", |m| m.as_str()),
                )
            });
            assert_eq!(config_line(l), re, "{l:?}");
        }
    }

    #[test]
    fn timer_lines_read_as_the_regex_reads_them() {
        for l in [
            "[Rank 0] time (ms) | fwd_microstep: 1133.77 | bwd_microstep: 1751.33",
            "[2024-01-01 10:00:00,123] [INFO] [logging.py:96:log_dist] [Rank 0] time (ms) | fwd: 1.5",
            "rank=3 time (ms) | optimizer_step: 64.63",
            "xrank=3 time (ms) | a: 1",
            "_rank=3 time (ms) | a: 1",
            "[Rank ] time (ms) | a: 1",
            "[Rank 12]time (ms) | a: 1",
            "[Rank 1] x time (ms) | a: 1 [Rank 2] time (ms) | b: 2",
            "rank=x time (ms) rank=7 time (ms) | c: 3",
            "Rank 1] time (ms)",
            "[Rank 4] time (ms)",
            "\u{e9}rank=1 time (ms) | a: 1",
            "\u{2192}rank=1 time (ms) | a: 1",
            "time (ms) | a: 1",
            "",
        ] {
            let re = TIMER.captures(l).map(|c| {
                (
                    c.get(1).or(c.get(2)).map(|m| m.as_str()),
                    c.get(3).map_or("", |m| m.as_str()),
                )
            });
            assert_eq!(timer_line(l), re, "{l:?}");
        }
    }

    #[test]
    fn device_ds_z2_wall_clock_breakdown() {
        let (ds, warnings) = parse_reader(device("ds-z2-torchrun.log").as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        // 12 optimizer steps x (2 micro-step lines + 1 optimizer line + 1 global line).
        assert_eq!(ds.timers.len(), 48);
        let first = &ds.timers[0];
        assert_eq!(first.rank, Some(0));
        assert_eq!(
            first.timers,
            [
                ("fwd_microstep".into(), 349.08),
                ("bwd_microstep".into(), 324.90),
                ("bwd_inner_microstep".into(), 323.02),
                ("bwd_allreduce_microstep".into(), 1.67),
                ("step_microstep".into(), 0.04),
            ]
        );
        assert_eq!(ds.timers[1].get("optimizer_gradients"), Some(17.61));
        assert_eq!(ds.timers[1].get("optimizer_allgather"), Some(0.0));
        let fwd = ds.timer_values("fwd");
        assert_eq!(fwd.len(), 12);
        assert_eq!(fwd[0], 442.11);
        assert_eq!(fwd[11], 187.13);
        assert_eq!(ds.timer_values("step")[0], 314.69);
        assert_eq!(ds.timer_values("bwd_allreduce")[11], 4.18);
        assert_eq!(ds.timer_values("fwd_microstep").len(), 24);
        // This version prints no ThroughputTimer line and no steps_per_print line.
        assert!(ds.throughput.is_empty());
        assert!(ds.steps.is_empty());
        assert!(ds.configs.is_empty());
    }

    #[test]
    fn device_ds_config_json() {
        let cfg = parse_config_json(&device("ds_config-z2.json")).expect("json");
        assert_eq!(cfg.train_micro_batch_size_per_gpu, Some(8));
        assert_eq!(cfg.gradient_accumulation_steps, Some(2));
        assert_eq!(cfg.zero_stage, Some(2));
        assert_eq!(cfg.bf16, Some(true));
        assert_eq!(cfg.steps_per_print, Some(5));
        assert_eq!(cfg.wall_clock_breakdown, Some(true));
        assert_eq!(cfg.train_batch_size, None);
    }

    #[test]
    fn units() {
        // Unit strings as number_to_string / flops_to_string / duration_to_string build them.
        assert_eq!(scaled("1.5 TFLOPS", "FLOPS"), Some(1.5e12));
        assert_eq!(scaled("250 GFLOPS", "FLOPS"), Some(250e9));
        assert_eq!(scaled("25 ms", "s"), Some(0.025));
        assert_eq!(scaled("3 M", ""), Some(3e6));
        assert_eq!(scaled("2 B", ""), Some(2e9));
        assert_eq!(scaled("2 GMACs", "MACs"), Some(2e9));
        assert_eq!(scaled("2 GMACs", "FLOPS"), None);
        assert_eq!(bytes_1024("4.0 MB"), Some(4 << 20));
        assert_eq!(bytes_1024("0B"), Some(0));
    }
}
