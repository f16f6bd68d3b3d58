//! Megatron-LM and Megatron-DeepSpeed training logs.
//!
//! Learned from `megatron/training.py` (`training_log`): the iteration line is a list of
//! `' key: value |'` fields after `' iteration {:8d}/{:8d} |'`: `consumed samples`, `elapsed time
//! per iteration (ms)`, `learning rate` (`{:.3E}`/`{:.6E}`), `global batch size`, one `' {}:
//! {:.6E} |'` per loss (`lm loss`; the 2021 bigscience fork printed `lm-loss`), `loss scale`,
//! `grad norm`, `num zeros`, `params norm`, `number of skipped iterations`, `number of nan
//! iterations`; Megatron-DeepSpeed adds `actual seqlen`, `samples per second`, `TFLOPs`,
//! `tokens per gpu per second (tgs)`, newer Megatron-LM `throughput per GPU (TFLOP/s/GPU)`. Some
//! forks print the same list as `key=value` (`iteration=  136004/  136100 | consumed_samples=...
//! | elapsed_time_per_iteration_ms=3415.3 | lm loss=12.31 | TFLOPs=53.66 |`). Fields are matched
//! by normalised name (case, `_`, `-` and spaces folded), never by position; unknown fields are
//! kept in `extra`.
//!
//! Also: `report_memory`'s `[Rank N] (after K iterations) memory (MB) | allocated: ... | max
//! allocated: ... | reserved: ... | max reserved: ...`; the timers line `time (ms) | name: value
//! | ...` (a bare `time (ms)` line has no timers); and the newer `(min, max) time across ranks
//! (ms):` block of `    name ....: (min, max)` lines.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::deepspeed::{TimerLine, parse_timers};
use super::{Line, Warnings, num, push_capped, uint};

/// One training-log iteration line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Iteration {
    pub line: u64,
    pub iteration: u64,
    pub train_iters: Option<u64>,
    pub consumed_samples: Option<u64>,
    pub consumed_tokens: Option<u64>,
    pub elapsed_ms_per_iteration: Option<f64>,
    pub learning_rate: Option<f64>,
    pub global_batch_size: Option<u64>,
    /// `(name, value)` of each loss (`lm loss`, …), names as printed.
    pub losses: Vec<(String, f64)>,
    pub loss_scale: Option<f64>,
    pub grad_norm: Option<f64>,
    pub num_zeros: Option<f64>,
    pub params_norm: Option<f64>,
    pub skipped_iterations: Option<u64>,
    pub nan_iterations: Option<u64>,
    pub actual_seqlen: Option<u64>,
    pub samples_per_second: Option<f64>,
    /// Megatron-DeepSpeed's `TFLOPs` (per GPU).
    pub tflops: Option<f64>,
    /// Megatron-LM's `throughput per GPU (TFLOP/s/GPU)`.
    pub tflops_per_gpu: Option<f64>,
    pub tokens_per_gpu_per_second: Option<f64>,
    /// Fields not recognised, as printed.
    pub extra: Vec<(String, String)>,
}

impl Iteration {
    /// The `lm loss` (or `lm-loss`) value.
    pub fn lm_loss(&self) -> Option<f64> {
        self.losses
            .iter()
            .find(|(n, _)| norm(n) == "lm loss")
            .map(|(_, v)| *v)
    }
}

/// A `report_memory` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    pub line: u64,
    pub rank: Option<u32>,
    pub after_iterations: Option<u64>,
    pub allocated_mb: Option<f64>,
    pub max_allocated_mb: Option<f64>,
    pub reserved_mb: Option<f64>,
    pub max_reserved_mb: Option<f64>,
}

/// One line of a `(min, max) time across ranks (ms):` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimerRange {
    pub line: u64,
    pub name: String,
    pub min_ms: f64,
    pub max_ms: f64,
}

/// Everything Megatron printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MegatronInfo {
    pub iterations: Vec<Iteration>,
    pub memory: Vec<MemoryReport>,
    pub timers: Vec<TimerLine>,
    pub timer_ranges: Vec<TimerRange>,
}

static ITER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s\]])iteration\s*[=:]?\s*(\d+)\s*/\s*(\d+)\s*\|(.*)$")
        .expect("static regex")
});
static MEMORY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\[Rank (\d+)\]\s*)?\(after (\d+) iterations\) memory \(MB\)(.*)$")
        .expect("static regex")
});
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\S.*?)\s*\.*:\s*\(([^,]+),\s*([^)]+)\)\s*$").expect("static regex")
});

/// Folds a field name: lower case, `_`/`-` as spaces, single spaces.
fn norm(s: &str) -> String {
    s.to_ascii_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Streaming parser of Megatron output.
#[derive(Debug, Default)]
pub struct Parser {
    info: MegatronInfo,
    in_ranges: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True inside a `(min, max) time across ranks` block: every line may be a range.
    pub(crate) fn in_block(&self) -> bool {
        self.in_ranges
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        let t = line.text.trim();
        if self.in_ranges {
            if let Some(c) = RANGE.captures(t) {
                let name = c
                    .get(1)
                    .map_or("", |m| m.as_str().trim_end_matches([' ', '.']));
                let (Some(min_ms), Some(max_ms)) = (
                    c.get(2).and_then(|m| num(m.as_str())),
                    c.get(3).and_then(|m| num(m.as_str())),
                ) else {
                    w.push(line.no, "Megatron timer range unreadable");
                    return;
                };
                let r = TimerRange {
                    line: line.no,
                    name: name.to_string(),
                    min_ms,
                    max_ms,
                };
                push_capped(
                    &mut self.info.timer_ranges,
                    r,
                    "Megatron timer ranges",
                    line.no,
                    w,
                );
                return;
            }
            self.in_ranges = false;
        }
        if t.is_empty() {
            return;
        }
        if t.starts_with("(min, max) time across ranks") {
            self.in_ranges = true;
            return;
        }
        if t.contains("iteration")
            && t.contains('|')
            && let Some(c) = ITER.captures(t)
        {
            self.feed_iteration(line, &c, w);
            return;
        }
        if t.contains("(after ") && t.contains("memory (MB)") {
            if let Some(c) = MEMORY.captures(t) {
                let mut m = MemoryReport {
                    line: line.no,
                    rank: c
                        .get(1)
                        .and_then(|x| uint(x.as_str()))
                        .map(|r| r as u32)
                        .or(line.rank),
                    after_iterations: c.get(2).and_then(|x| uint(x.as_str())),
                    allocated_mb: None,
                    max_allocated_mb: None,
                    reserved_mb: None,
                    max_reserved_mb: None,
                };
                for field in c.get(3).map_or("", |x| x.as_str()).split('|') {
                    let Some((k, v)) = field.split_once(':') else {
                        continue;
                    };
                    let v = num(v);
                    match norm(k).as_str() {
                        "allocated" => m.allocated_mb = v,
                        "max allocated" => m.max_allocated_mb = v,
                        "reserved" => m.reserved_mb = v,
                        "max reserved" => m.max_reserved_mb = v,
                        _ => {}
                    }
                }
                push_capped(
                    &mut self.info.memory,
                    m,
                    "Megatron memory reports",
                    line.no,
                    w,
                );
            }
            return;
        }
        // Megatron's timers line starts with "time (ms)"; DeepSpeed's carry "[Rank N]"/"rank=N".
        if let Some(rest) = t.strip_prefix("time (ms)") {
            let timers = parse_timers(rest, line.no, w);
            if !timers.is_empty() {
                let tl = TimerLine {
                    line: line.no,
                    rank: line.rank,
                    timers,
                };
                push_capped(
                    &mut self.info.timers,
                    tl,
                    "Megatron timer lines",
                    line.no,
                    w,
                );
            }
        }
    }

    fn feed_iteration(&mut self, line: &Line<'_>, c: &regex::Captures<'_>, w: &mut Warnings) {
        let Some(iteration) = c.get(1).and_then(|m| uint(m.as_str())) else {
            return;
        };
        let mut it = Iteration {
            line: line.no,
            iteration,
            train_iters: c.get(2).and_then(|m| uint(m.as_str())),
            ..Iteration::default()
        };
        for field in c.get(3).map_or("", |m| m.as_str()).split('|') {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            // "key: value" or "key=value"; keys may hold ':' inside parentheses.
            let split = match (field.rfind(": "), field.find('=')) {
                (Some(i), _) => Some((&field[..i], &field[i + 2..])),
                (None, Some(i)) => Some((&field[..i], &field[i + 1..])),
                (None, None) => None,
            };
            let Some((k, v)) = split else {
                it.extra.push((field.to_string(), String::new()));
                continue;
            };
            let key = norm(k);
            let v = v.trim();
            let f = num(v);
            let u = uint(v);
            let mut unreadable = false;
            let mut setf = |slot: &mut Option<f64>| match f {
                Some(x) => *slot = Some(x),
                None => unreadable = true,
            };
            match key.as_str() {
                "consumed samples" => it.consumed_samples = u,
                "consumed tokens" => it.consumed_tokens = u,
                "elapsed time per iteration (ms)" | "elapsed time per iteration ms" => {
                    setf(&mut it.elapsed_ms_per_iteration)
                }
                "learning rate" => setf(&mut it.learning_rate),
                "global batch size" => it.global_batch_size = u,
                "loss scale" => setf(&mut it.loss_scale),
                "grad norm" => setf(&mut it.grad_norm),
                "num zeros" => setf(&mut it.num_zeros),
                "params norm" => setf(&mut it.params_norm),
                "number of skipped iterations" => it.skipped_iterations = u,
                "number of nan iterations" => it.nan_iterations = u,
                "actual seqlen" => it.actual_seqlen = u,
                "samples per second" => setf(&mut it.samples_per_second),
                "tflops" => setf(&mut it.tflops),
                "throughput per gpu (tflop/s/gpu)" => setf(&mut it.tflops_per_gpu),
                "tokens per gpu per second (tgs)" | "tokens per gpu per second tgs" | "tgs" => {
                    setf(&mut it.tokens_per_gpu_per_second)
                }
                k if k.contains("loss") => match f {
                    Some(x) => it.losses.push((k.trim().to_string(), x)),
                    None => unreadable = true,
                },
                _ => it.extra.push((k.trim().to_string(), v.to_string())),
            }
            if unreadable {
                w.push(
                    line.no,
                    format!("Megatron iteration: unreadable '{k}' = '{v}'"),
                );
            }
        }
        push_capped(
            &mut self.info.iterations,
            it,
            "Megatron iterations",
            line.no,
            w,
        );
    }

    pub fn finish(self, _w: &mut Warnings) -> MegatronInfo {
        self.info
    }
}

super::line_parser::line_parser!(Parser => MegatronInfo);

/// Parses Megatron output from a reader (standalone use).
pub fn parse_reader<R: std::io::BufRead>(reader: R) -> (MegatronInfo, Vec<super::Warning>) {
    super::parse_lines(Parser::new(), reader)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::device;
    use super::*;

    #[test]
    fn device_logs_hold_no_megatron_lines() {
        // The device fixtures are DeepSpeed and nccl-tests runs: their "[Rank 0] time (ms)"
        // lines belong to DeepSpeed, not to Megatron's timers.
        let (m, w) = parse_reader(device("ds-z2-torchrun.log").as_bytes());
        assert!(w.is_empty());
        assert_eq!(m, MegatronInfo::default());
    }

    #[test]
    fn field_names_fold() {
        assert_eq!(
            norm("elapsed_time_per_iteration_ms"),
            "elapsed time per iteration ms"
        );
        assert_eq!(norm("lm-loss"), "lm loss");
    }
}
