//! Hugging Face `transformers.Trainer` metrics.
//!
//! Learned from `trainer.py` / `trainer_callback.py`: `Trainer.log` hands a dict to the callbacks
//! and `ProgressCallback.on_log` / `PrinterCallback` print it with Python's `repr` — `{'loss':
//! 2.3, 'learning_rate': 5e-05, 'epoch': 0.1}`, the evaluation dict (`eval_loss`,
//! `eval_runtime`, `eval_samples_per_second`, …) and, at the end of `train()`, the summary
//! (`train_runtime`, `train_samples_per_second`, `train_steps_per_second`, `train_loss`,
//! `epoch`). Recent versions may print the values as quoted strings (`'loss': '2.345'`); both are
//! read. `trainer.log_metrics` prints `***** train metrics *****` followed by `  key = value`
//! lines (runtimes as `H:MM:SS.ff`). With pdsh/srun the dicts carry a host or rank prefix, kept
//! in `host` / `rank`: every node prints its own summary.

use serde::Serialize;

use super::{Line, Warnings, num, push_capped};

/// What kind of metrics a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HfKind {
    /// The end-of-training summary (`train_runtime`, `train_samples_per_second`, …).
    Train,
    /// An evaluation (`eval_*`).
    Eval,
    /// A logging step (`loss`, `learning_rate`, …).
    Log,
    /// A `***** X metrics *****` block.
    MetricsBlock,
}

/// One metrics dict or block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HfRecord {
    pub line: u64,
    pub kind: HfKind,
    pub host: Option<String>,
    pub rank: Option<u32>,
    /// Numeric values, in printed order (runtimes `H:MM:SS` in seconds).
    pub metrics: Vec<(String, f64)>,
}

impl HfRecord {
    pub fn get(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// All Trainer metrics of a log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HfTrainerInfo {
    pub records: Vec<HfRecord>,
}

impl HfTrainerInfo {
    /// Records of one kind.
    pub fn of_kind(&self, kind: HfKind) -> impl Iterator<Item = &HfRecord> {
        self.records.iter().filter(move |r| r.kind == kind)
    }
    /// The first training summary (each node prints one; see `records` for all): the dict
    /// `train()` logs, else a `***** train metrics *****` block of `log_metrics` (scripts that
    /// turn the Trainer's own logging off still print that block).
    pub fn train_summary(&self) -> Option<&HfRecord> {
        self.of_kind(HfKind::Train).next().or_else(|| {
            self.of_kind(HfKind::MetricsBlock)
                .find(|r| r.get("train_samples_per_second").is_some())
        })
    }
}

/// Reads a Python `repr` of a flat dict of scalars: `{'a': 1.5, "b": 'x', 'c': None}`.
/// Returns `None` if the text is not such a dict.
pub fn parse_py_dict(t: &str) -> Option<Vec<(String, String)>> {
    let inner = t.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    let mut chars = inner.char_indices().peekable();
    loop {
        // key
        while let Some((_, c)) = chars.peek() {
            if c.is_whitespace() || *c == ',' {
                chars.next();
            } else {
                break;
            }
        }
        let Some((_, q)) = chars.next() else { break };
        if q != '\'' && q != '"' {
            return None;
        }
        let mut key = String::new();
        loop {
            let (_, c) = chars.next()?;
            if c == q {
                break;
            }
            key.push(c);
        }
        // ':'
        while let Some((_, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        if chars.next()?.1 != ':' {
            return None;
        }
        while let Some((_, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        // value: quoted string or bare token up to ','
        let mut val = String::new();
        match chars.peek().map(|(_, c)| *c) {
            Some(vq @ ('\'' | '"')) => {
                chars.next();
                loop {
                    let (_, c) = chars.next()?;
                    if c == vq {
                        break;
                    }
                    val.push(c);
                }
            }
            Some(_) => {
                while let Some((_, c)) = chars.peek() {
                    if *c == ',' {
                        break;
                    }
                    if matches!(c, '{' | '[' | '(') {
                        return None;
                    }
                    val.push(*c);
                    chars.next();
                }
            }
            None => return None,
        }
        out.push((key, val.trim().to_string()));
    }
    (!out.is_empty()).then_some(out)
}

/// `H:MM:SS.ff` → seconds.
fn hms(v: &str) -> Option<f64> {
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let h = num(parts[0])?;
    let m = num(parts[1])?;
    let s = num(parts[2])?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Streaming parser of Trainer metrics.
#[derive(Debug, Default)]
pub struct Parser {
    info: HfTrainerInfo,
    block: Option<HfRecord>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        let t = line.text.trim();
        if let Some(block) = self.block.as_mut() {
            if let Some((k, v)) = t.split_once(" = ")
                && !k.trim().contains(' ')
            {
                let v = v.trim();
                if let Some(x) = num(v).or_else(|| hms(v)) {
                    block.metrics.push((k.trim().to_string(), x));
                }
                return;
            }
            if let Some(b) = self.block.take() {
                push_capped(&mut self.info.records, b, "Trainer records", line.no, w);
            }
        }
        if t.starts_with("*****") && t.ends_with("metrics *****") {
            self.block = Some(HfRecord {
                line: line.no,
                kind: HfKind::MetricsBlock,
                host: line.host.map(str::to_string),
                rank: line.rank,
                metrics: Vec::new(),
            });
            return;
        }
        if !(t.starts_with('{') && t.ends_with('}') && t.contains(':')) {
            return;
        }
        let Some(pairs) = parse_py_dict(t) else {
            return;
        };
        let has = |k: &str| pairs.iter().any(|(x, _)| x == k);
        let kind = if has("train_runtime") || has("train_samples_per_second") {
            HfKind::Train
        } else if pairs.iter().any(|(k, _)| k.starts_with("eval_")) {
            HfKind::Eval
        } else if has("loss") || has("learning_rate") || has("grad_norm") {
            HfKind::Log
        } else {
            return;
        };
        let metrics: Vec<(String, f64)> = pairs
            .into_iter()
            .filter_map(|(k, v)| num(&v).map(|x| (k, x)))
            .collect();
        let rec = HfRecord {
            line: line.no,
            kind,
            host: line.host.map(str::to_string),
            rank: line.rank,
            metrics,
        };
        push_capped(&mut self.info.records, rec, "Trainer records", line.no, w);
    }

    pub fn finish(mut self, w: &mut Warnings) -> HfTrainerInfo {
        if let Some(b) = self.block.take() {
            let line = b.line;
            push_capped(&mut self.info.records, b, "Trainer records", line, w);
        }
        self.info
    }
}

super::line_parser::line_parser!(Parser => HfTrainerInfo);

/// Parses Trainer output from a reader (standalone use).
pub fn parse_reader<R: std::io::BufRead>(reader: R) -> (HfTrainerInfo, Vec<super::Warning>) {
    super::parse_lines(Parser::new(), reader)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::device;
    use super::*;

    #[test]
    fn device_logs_hold_no_trainer_metrics() {
        let (h, w) = parse_reader(device("ds-z2-torchrun.log").as_bytes());
        assert!(w.is_empty());
        assert!(h.records.is_empty());
    }

    /// A real Trainer run (transformers 5.17, `device-h100-2026-12-07/hf-trainer.log`): each
    /// dict is drawn after tqdm's `\r` progress bars, its values quoted strings; every dict
    /// and the `log_metrics` block are read, the training summary is the `train()` dict.
    #[test]
    fn real_trainer_run() {
        let text = super::super::testdata::fixture("device-h100-2026-12-07/hf-trainer.log");
        let p = super::super::parse_str("hf-trainer.log", &text);
        let h = &p.hf;
        let losses: Vec<f64> = h
            .of_kind(HfKind::Log)
            .filter_map(|r| r.get("loss"))
            .collect();
        assert_eq!(losses, [10.86, 10.86, 10.86, 10.85]);
        let lr: Vec<f64> = h
            .of_kind(HfKind::Log)
            .filter_map(|r| r.get("learning_rate"))
            .collect();
        assert_eq!(lr, [3.875e-05, 2.625e-05, 1.375e-05, 1.25e-06]);
        let eval: Vec<f64> = h
            .of_kind(HfKind::Eval)
            .filter_map(|r| r.get("eval_samples_per_second"))
            .collect();
        assert_eq!(eval, [139.5]);
        assert_eq!(
            h.train_summary()
                .and_then(|r| r.get("train_samples_per_second")),
            Some(118.2)
        );
        let block: Vec<&HfRecord> = h.of_kind(HfKind::MetricsBlock).collect();
        assert_eq!(block.len(), 1);
        assert_eq!(block[0].get("train_samples_per_second"), Some(118.213));
        assert_eq!(block[0].get("train_runtime"), Some(2.70));
        assert_eq!(block[0].get("train_loss"), Some(10.8552));
    }

    /// A script that turns the Trainer's logging off still prints `log_metrics`'s block: its
    /// `train_samples_per_second` is the training summary when no `train()` dict is printed.
    #[test]
    fn train_summary_falls_back_to_the_train_metrics_block() {
        let rec = |kind, metrics: &[(&str, f64)]| HfRecord {
            line: 1,
            kind,
            host: None,
            rank: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        let eval_block = rec(HfKind::MetricsBlock, &[("eval_loss", 2.1)]);
        let train_block = rec(HfKind::MetricsBlock, &[("train_samples_per_second", 187.9)]);
        let mut info = HfTrainerInfo {
            records: vec![eval_block, train_block],
        };
        assert_eq!(
            info.train_summary()
                .and_then(|r| r.get("train_samples_per_second")),
            Some(187.9)
        );
        let dict = rec(HfKind::Train, &[("train_samples_per_second", 190.0)]);
        info.records.push(dict);
        assert_eq!(
            info.train_summary()
                .and_then(|r| r.get("train_samples_per_second")),
            Some(190.0)
        );
    }

    #[test]
    fn reads_a_python_dict_repr() {
        // The JSON -J file's "devices" object is a flat dict too (with double quotes).
        let json = device("nccl-allreduce.json");
        let start = json.find(r#"{"rank":0"#).expect("device");
        let end = start + json[start..].find('}').expect("end") + 1;
        let d = parse_py_dict(&json[start..end]).expect("dict");
        assert_eq!(d[0], ("rank".to_string(), "0".to_string()));
        assert_eq!(d[3], ("hostname".to_string(), "vm".to_string()));
        assert!(parse_py_dict(&json).is_none());
    }
}
