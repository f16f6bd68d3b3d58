//! The reference payload's own metrics (`job-templates/payloads/llama_bench.py`): every line
//! `SWEEP_METRICS {json}` carries one record whose `kind` is `start`, `config`, `step`,
//! `summary`, `collective`, `collective_summary`, `warning` or `error` (the payload's docstring
//! lists the fields). The payload measures each optimizer step itself (synchronised, maximum over
//! ranks), so `collect` prefers these figures to DeepSpeed's timers; its `collective` records
//! use nccl-tests' algbw/busbw definitions and become rows of `nccl.csv`.
//!
//! Robust to what launchers do to lines: the marker may follow a rank prefix (removed by the
//! normaliser) or other text glued before it; a record that is not valid JSON (a line cut by a
//! crash) is a warning, never a number. Non-finite values are printed as `null` by the payload
//! and read as missing.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::nccl_tests::{NcclRow, NcclRun, Placement};
use super::{Line, Warnings, push_capped};

pub const MARKER: &str = "SWEEP_METRICS ";
/// The rank wrapper's binding line (`sweep-bind node=... cpus=...`).
pub const BIND_PREFIX: &str = "sweep-bind ";

/// One `step` record (rank 0 prints them; step times are the maximum over ranks).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PayloadStep {
    pub line: u64,
    pub step: u64,
    pub warmup: bool,
    /// A step the payload itself marks as not representative (the flops profiler ran in it).
    pub excluded: bool,
    /// Named numeric fields in printed order (`step_time_s`, `samples_per_s`, ...).
    pub values: Vec<(String, f64)>,
}

impl PayloadStep {
    pub fn get(&self, k: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
    }
}

/// A `summary` record: the payload's own steady-state figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PayloadSummary {
    pub line: u64,
    pub completed: Option<bool>,
    pub reason: Option<String>,
    pub values: Vec<(String, f64)>,
}

impl PayloadSummary {
    pub fn get(&self, k: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
    }
}

/// Everything the payload printed in one log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PayloadInfo {
    /// `start` records seen (one per rank that wrote into this log).
    pub starts: u64,
    pub mode: Option<String>,
    pub device: Option<String>,
    pub world_size: Option<u64>,
    pub local_world_size: Option<u64>,
    pub versions: Vec<(String, String)>,
    pub steps: Vec<PayloadStep>,
    pub summaries: Vec<PayloadSummary>,
    /// One run per collective, in nccl-tests' shape.
    pub collectives: Vec<NcclRun>,
    /// `(line, message)` of `error` records.
    pub errors: Vec<(u64, String)>,
    /// Each rank's binding as the rank wrapper printed it (`sweep-bind` lines).
    pub binds: Vec<Bind>,
}

impl PayloadInfo {
    pub fn version(&self, k: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    /// The last summary (a job prints one; a SIGTERM'd one may print an earlier partial one).
    pub fn summary(&self) -> Option<&PayloadSummary> {
        self.summaries.last()
    }
}

/// What one rank was bound to, and what the profile expected (`sweep-bind` line of the
/// rank wrapper in `common/rank-wrapper.j2`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bind {
    pub line: u64,
    pub rank: Option<u32>,
    pub local_rank: Option<u32>,
    pub node: String,
    pub cpus: String,
    pub expect_cpus: String,
    pub gpu: String,
    pub expect_gpu: String,
    pub nic: String,
    /// GPU device files the node has (`/dev/nvidia[0-9]*`); `None` on lines of older wrappers.
    pub gpu_devices: Option<u32>,
    /// Indices of the device files this rank could open (a device cgroup refuses the others).
    pub gpus_open: Option<Vec<u32>>,
    /// The job's GPUs on this node (`SLURM_GPUS_ON_NODE`).
    pub gpus_on_node: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Parser {
    info: PayloadInfo,
}

fn numbers(o: &Obj<'_>, skip: &[&str]) -> Vec<(String, f64)> {
    o.iter()
        .filter(|(k, _)| !skip.contains(&k.as_ref()))
        .filter_map(|(k, v)| {
            v.as_f64()
                .filter(|x| x.is_finite())
                .map(|x| (k.to_string(), x))
        })
        .collect()
}

fn text(o: &Obj<'_>, k: &str) -> Option<String> {
    o.get(k).and_then(|v| v.as_str()).map(String::from)
}

/// A record's top-level value, as far as the records are read: numbers, booleans and strings
/// (borrowed from the line where they hold no escape); `null`, arrays and objects are read
/// through and dropped. The accessors answer as `serde_json::Value`'s do; reading a record this way costs no
/// allocation per field, where a `Value` costs several.
#[derive(Debug, Clone, PartialEq)]
enum Field<'a> {
    /// The number, and the same as an unsigned integer when it is one (`Value::as_u64`).
    Num(f64, Option<u64>),
    Bool(bool),
    Str(Cow<'a, str>),
    Other,
}

impl Field<'_> {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Field::Num(x, _) => Some(*x),
            _ => None,
        }
    }
    fn as_u64(&self) -> Option<u64> {
        match self {
            Field::Num(_, u) => *u,
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Field::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A record's fields in printed order; a key printed twice keeps its first place and its last
/// value (as `serde_json`'s order-preserving map does).
#[derive(Debug, Default)]
struct Obj<'a>(Vec<(Cow<'a, str>, Field<'a>)>);

impl<'a> Obj<'a> {
    fn get(&self, k: &str) -> Option<&Field<'a>> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }
    fn iter(&self) -> impl Iterator<Item = (&Cow<'a, str>, &Field<'a>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// A JSON value: `Some` object, or `None` for anything else (read and dropped).
#[derive(Debug)]
struct Record<'a>(Option<Obj<'a>>);

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads any JSON value: the scalars kept, the rest drained.
struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Field<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Field<'de>, E> {
        Ok(Field::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field<'de>, E> {
        Ok(Field::Num(v as f64, Some(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field<'de>, E> {
        Ok(Field::Num(v as f64, u64::try_from(v).ok()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field<'de>, E> {
        Ok(Field::Num(v, None))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Field<'de>, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Field<'de>, E> {
        Ok(Field::Other)
    }
    // Nested values are read as fields too, not skipped: serde_json counts the depth of what
    // is read so (not of what is skipped), and refuses a record nested too deep as `Value` does.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
        while seq.next_element::<Field<'de>>()?.is_some() {}
        Ok(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, Field<'de>>()?.is_some() {}
        Ok(Field::Other)
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor)
    }
}

impl<'de> Deserialize<'de> for Record<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Record<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
                let mut o = Obj::default();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v = map.next_value::<Field<'de>>()?;
                    match o.0.iter_mut().find(|(n, _)| *n == k) {
                        Some(slot) => slot.1 = v,
                        None => o.0.push((k, v)),
                    }
                }
                Ok(Record(Some(o)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Record<'de>, A::Error> {
                AnyVisitor.visit_seq(seq).map(|_| Record(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Record<'de>, E> {
                Ok(Record(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Record<'de>, E> {
                Ok(Record(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Record<'de>, E> {
                Ok(Record(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Record<'de>, E> {
                Ok(Record(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Record<'de>, E> {
                Ok(Record(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Record<'de>, E> {
                Ok(Record(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of the rank wrapper's `sweep-bind` record on a line: at its start, or glued
/// behind other output (another task's line that was cut where this one landed, as tasks'
/// output can be where srun forwards it unbuffered, `srun -u`). Not one inside quotes: that is
/// a command that prints the record (a shell trace, a script), not the record.
fn bind_record(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix(BIND_PREFIX) {
        return Some(rest);
    }
    let at = text.find(BIND_PREFIX)?;
    let quoted = matches!(text.as_bytes()[at - 1], b'\'' | b'"');
    (!quoted && text[at + BIND_PREFIX.len()..].starts_with("rank="))
        .then(|| &text[at + BIND_PREFIX.len()..])
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, l: &Line<'_>, w: &mut Warnings) {
        if let Some(rest) = bind_record(l.text) {
            self.bind(l, rest);
            return;
        }
        static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(MARKER.as_bytes()));
        let Some(pos) = FINDER.find(l.text.as_bytes()) else {
            return;
        };
        let json = &l.text[pos + MARKER.len()..];
        // The first JSON value on the line; anything glued after it is not ours.
        let mut de = serde_json::Deserializer::from_str(json).into_iter::<Record<'_>>();
        let v = match de.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                w.push(
                    l.no,
                    format!("SWEEP_METRICS record is not valid JSON ({e}): ignored"),
                );
                return;
            }
            None => return,
        };
        let Some(o) = &v.0 else {
            w.push(l.no, "SWEEP_METRICS record is not a JSON object: ignored");
            return;
        };
        match o.get("kind").and_then(|k| k.as_str()).unwrap_or("") {
            "start" => {
                self.info.starts += 1;
                self.info.mode = self.info.mode.take().or_else(|| text(o, "mode"));
                self.info.device = self.info.device.take().or_else(|| text(o, "device"));
                self.info.world_size = self
                    .info
                    .world_size
                    .or_else(|| o.get("world_size").and_then(|v| v.as_u64()));
                self.info.local_world_size = self
                    .info
                    .local_world_size
                    .or_else(|| o.get("local_world_size").and_then(|v| v.as_u64()));
                for k in [
                    "torch",
                    "cuda",
                    "nccl",
                    "deepspeed",
                    "transformers",
                    "python",
                ] {
                    if let Some(v) = text(o, k)
                        && self.info.version(k).is_none()
                    {
                        self.info.versions.push((k.to_string(), v));
                    }
                }
            }
            "step" => {
                let Some(step) = o.get("step").and_then(|s| s.as_u64()) else {
                    w.push(
                        l.no,
                        "SWEEP_METRICS step record without a step number: ignored",
                    );
                    return;
                };
                let s = PayloadStep {
                    line: l.no,
                    step,
                    warmup: o.get("warmup").and_then(|b| b.as_bool()).unwrap_or(false),
                    excluded: o.get("excluded").and_then(|b| b.as_bool()).unwrap_or(false),
                    values: numbers(o, &["step"]),
                };
                push_capped(&mut self.info.steps, s, "payload steps", l.no, w);
            }
            "summary" => {
                let s = PayloadSummary {
                    line: l.no,
                    completed: o.get("completed").and_then(|b| b.as_bool()),
                    reason: text(o, "reason"),
                    values: numbers(o, &["repeat"]),
                };
                push_capped(&mut self.info.summaries, s, "payload summaries", l.no, w);
            }
            "collective" => self.collective(l, o, w),
            "error" => {
                let msg = format!(
                    "{}: {}",
                    text(o, "error_type").unwrap_or_else(|| "error".into()),
                    text(o, "message").unwrap_or_default()
                );
                push_capped(
                    &mut self.info.errors,
                    (l.no, msg),
                    "payload errors",
                    l.no,
                    w,
                );
            }
            "config" => {
                self.info.mode = self.info.mode.take().or_else(|| text(o, "mode"));
            }
            "collective_summary" | "warning" => {}
            other => w.push(
                l.no,
                format!("SWEEP_METRICS record of unknown kind `{other}`: ignored"),
            ),
        }
    }

    fn collective(&mut self, l: &Line<'_>, o: &Obj<'_>, w: &mut Warnings) {
        let name = text(o, "collective").unwrap_or_default();
        let f = |k: &str| o.get(k).and_then(|v| v.as_f64()).filter(|x| x.is_finite());
        let (Some(size), Some(time), Some(alg), Some(bus)) = (
            o.get("size_bytes").and_then(|v| v.as_u64()),
            f("time_us"),
            f("algbw_gbps"),
            f("busbw_gbps"),
        ) else {
            w.push(
                l.no,
                "SWEEP_METRICS collective record without size, time or bandwidths: ignored",
            );
            return;
        };
        let nranks = o.get("nranks").and_then(|v| v.as_u64()).map(|n| n as usize);
        let run = match self
            .info
            .collectives
            .iter_mut()
            .rposition(|r| r.collective.as_deref() == Some(name.as_str()))
        {
            Some(i) => &mut self.info.collectives[i],
            None => {
                self.info.collectives.push(NcclRun {
                    line: l.no,
                    collective: Some(name.clone()),
                    binary: Some("llama_bench.py --mode collectives".into()),
                    nranks,
                    ..Default::default()
                });
                let i = self.info.collectives.len() - 1;
                &mut self.info.collectives[i]
            }
        };
        let row = NcclRow {
            line: l.no,
            collective: Some(name),
            size_bytes: size,
            count: o.get("count").and_then(|v| v.as_u64()).unwrap_or(0),
            dtype: text(o, "dtype").unwrap_or_default(),
            redop: None,
            root: None,
            placement: Placement::OutOfPlace,
            time_us: time,
            algbw_gbps: alg,
            busbw_gbps: bus,
            wrong: o.get("wrong").and_then(|v| v.as_u64()),
            max_error: None,
            error_flagged: false,
            iter: None,
            timestamp: None,
        };
        push_capped(&mut run.rows, row, "payload collective rows", l.no, w);
    }

    fn bind(&mut self, l: &Line<'_>, rest: &str) {
        let mut b = Bind {
            line: l.no,
            ..Default::default()
        };
        for kv in rest.split_whitespace() {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "rank" => b.rank = v.parse().ok(),
                "local_rank" => b.local_rank = v.parse().ok(),
                "node" => b.node = v.into(),
                "cpus" => b.cpus = v.into(),
                "expect_cpus" => b.expect_cpus = v.into(),
                "cuda_visible_devices" => b.gpu = v.into(),
                "expect_gpu" => b.expect_gpu = v.into(),
                "nic" => b.nic = v.into(),
                "gpu_devices" => b.gpu_devices = v.parse().ok(),
                "gpus_open" => {
                    b.gpus_open = if v == "none" {
                        Some(Vec::new())
                    } else {
                        v.split(',').map(|g| g.parse().ok()).collect()
                    }
                }
                "gpus_on_node" => b.gpus_on_node = v.parse().ok(),
                _ => {}
            }
        }
        if self.info.binds.len() < super::MAX_RECORDS {
            self.info.binds.push(b);
        }
    }

    pub fn finish(mut self, _w: &mut Warnings) -> PayloadInfo {
        let device = self.info.device.clone();
        let nccl = self.info.version("nccl").map(String::from);
        for r in &mut self.info.collectives {
            r.gpu_name = device.clone();
            r.nccl_version = nccl.clone();
            r.nodes = match (self.info.world_size, self.info.local_world_size) {
                (Some(w), Some(l)) if l > 0 && w % l == 0 => Some((w / l) as usize),
                _ => None,
            };
            r.gpus_per_node = self.info.local_world_size.map(|l| l as usize);
            r.concluded = true;
        }
        self.info
    }
}

super::line_parser::line_parser!(Parser => PayloadInfo);

#[cfg(test)]
mod tests {
    use crate::parse_str;

    /// A record read as [`super::Record`] answers every accessor as `serde_json::Value` does,
    /// and fails (or not) with the same message.
    #[test]
    fn records_read_as_values_are() {
        use super::{Field, Record};
        use serde_json::Value;
        let mut cases: Vec<String> = [
            r#"{"kind":"step","step":3,"warmup":false,"x":1.5,"n":-2,"z":0,"big":18446744073709551615}"#,
            r#"{"kind":"step","step":3.0,"loss":null,"a":[1,{"b":2}],"o":{"k":[3]},"s":"t\"q\u00e9"}"#,
            r#"{"kind":"x","kind":"step","step":1,"v":2,"v":"w","e":1e300,"f":-0.0,"g":123456789012345678901234}"#,
            r#"{"k\u0069nd":"summary","completed":true,"reason":"d\u00fcne"}"#,
            r#"  {"kind":"start"} trailing text"#,
            r#"[1,2,3]"#,
            r#""a string""#,
            r#"42"#,
            r#"null"#,
            r#"{"kind":"step","step":"#,
            r#"{"kind":"step" "step":1}"#,
            r#"{"a":1e999}"#,
            "",
            "   ",
        ]
        .map(String::from)
        .to_vec();
        // Nested deeper than serde_json's recursion limit (128), and not.
        for depth in [100, 200] {
            let (open, close) = ("[".repeat(depth), "]".repeat(depth));
            cases.push(format!(r#"{{"kind":"step","a":{open}1{close},"step":2}}"#));
        }
        for json in &cases {
            let v = serde_json::Deserializer::from_str(json)
                .into_iter::<Value>()
                .next()
                .map(|r| r.map_err(|e| e.to_string()));
            let r = serde_json::Deserializer::from_str(json)
                .into_iter::<Record<'_>>()
                .next()
                .map(|r| r.map_err(|e| e.to_string()));
            match (v, r) {
                (None, None) => {}
                (Some(Err(a)), Some(Err(b))) => assert_eq!(a, b, "{json}"),
                (Some(Ok(v)), Some(Ok(r))) => match (v.as_object(), r.0) {
                    (None, None) => {}
                    (Some(m), Some(o)) => {
                        let keys: Vec<&str> = o.iter().map(|(k, _)| k.as_ref()).collect();
                        assert_eq!(keys, m.keys().map(String::as_str).collect::<Vec<_>>());
                        for (k, x) in m {
                            let f: &Field<'_> = o.get(k).unwrap();
                            assert_eq!(f.as_f64(), x.as_f64(), "{json} {k}");
                            assert_eq!(f.as_u64(), x.as_u64(), "{json} {k}");
                            assert_eq!(f.as_bool(), x.as_bool(), "{json} {k}");
                            assert_eq!(f.as_str(), x.as_str(), "{json} {k}");
                        }
                    }
                    (a, b) => panic!("{json}: {a:?} vs {:?}", b.is_some()),
                },
                (a, b) => panic!("{json}: {a:?} vs {b:?}"),
            }
        }
    }

    fn real_log(job: &str) -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/device-h200-2026-12-02/campaign/jobs");
        let d = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(job))
            .unwrap();
        std::fs::read_to_string(d.path().join("rank-0.log")).unwrap()
    }

    #[test]
    fn real_training_log_gives_steps_summary_versions_and_binding() {
        let p = parse_str("rank-0.log", &real_log("train-mb4-ga4-noac"));
        let pay = &p.payload;
        assert_eq!(pay.mode.as_deref(), Some("train"));
        assert_eq!(pay.version("deepspeed"), Some("0.19.8"));
        assert_eq!(pay.device.as_deref(), Some("NVIDIA H200"));
        assert_eq!(pay.steps.len(), 25, "5 warm-up + 20 measured");
        assert_eq!(pay.steps.iter().filter(|s| s.warmup).count(), 5);
        assert_eq!(
            pay.steps
                .iter()
                .filter(|s| s.excluded)
                .map(|s| s.step)
                .collect::<Vec<_>>(),
            vec![11]
        );
        let s = pay.summary().unwrap();
        assert_eq!(s.completed, Some(true));
        assert!(s.get("samples_per_s").unwrap() > 0.0);
        assert_eq!(pay.binds.len(), 1);
        assert_eq!(
            (
                pay.binds[0].cpus.as_str(),
                pay.binds[0].expect_cpus.as_str()
            ),
            ("0-7", "0-7")
        );
    }

    #[test]
    fn a_bind_record_glued_behind_another_tasks_output_is_read() {
        let rec = "sweep-bind rank=2 local_rank=2 node=n1 cpus=4-5 expect_cpus=4-5 numa=0 cuda_visible_devices=2 expect_gpu=2 nic=";
        let log = format!(
            "{rec}\ntask=5 {}\nline=27 end\n+ echo '{rec}'\necho \"{rec}\"\n",
            rec.replace("rank=2 local_rank=2", "rank=3 local_rank=3")
        );
        let p = parse_str("slurm-1.out", &log);
        let ranks: Vec<Option<u32>> = p.payload.binds.iter().map(|b| b.rank).collect();
        assert_eq!(
            ranks,
            vec![Some(2), Some(3)],
            "the record at a line start and the glued one; not those quoted in commands"
        );
        assert_eq!(p.payload.binds[1].cpus, "4-5");
        assert_eq!(p.payload.binds[1].line, 2);
        // A line of an older wrapper: no device fields.
        assert_eq!(p.payload.binds[1].gpu_devices, None);
        assert_eq!(p.payload.binds[1].gpus_open, None);
    }

    #[test]
    fn bind_record_with_the_gpu_devices_a_rank_can_open() {
        let text = "sweep-bind rank=1 local_rank=1 node=gpu01 cpus=1 expect_cpus=1 numa=0 cuda_visible_devices=0,1 expect_gpu=1 nic= gpu_devices=2 gpus_open=0,1 gpus_on_node=2\n\
                    sweep-bind rank=0 local_rank=0 node=gpu01 cpus=0 expect_cpus=0 numa=0 cuda_visible_devices=0 expect_gpu=0 nic= gpu_devices=8 gpus_open=none gpus_on_node=unset\n";
        let p = parse_str("slurm-1.out", text);
        let b = &p.payload.binds;
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].gpu_devices, Some(2));
        assert_eq!(b[0].gpus_open, Some(vec![0, 1]));
        assert_eq!(b[0].gpus_on_node, Some(2));
        assert_eq!(b[0].nic, "");
        assert_eq!(b[1].gpus_open, Some(vec![]));
        assert_eq!(b[1].gpus_on_node, None);
    }

    #[test]
    fn launcher_prefixes_glued_text_and_cut_records() {
        let log = real_log("coll-");
        let line = log
            .lines()
            .find(|l| l.contains("\"kind\":\"collective\""))
            .unwrap();
        // The same real record behind a torchrun prefix, glued behind other output, and cut.
        let mangled = format!(
            "[default0]:{line}\nsome output without newline {line}\n{}\n",
            &line[..line.len() / 2]
        );
        let p = parse_str("x.log", &mangled);
        let rows: usize = p.payload.collectives.iter().map(|r| r.rows.len()).sum();
        assert_eq!(rows, 2, "the two whole records, not the cut one");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.message.contains("not valid JSON"))
        );
    }

    #[test]
    fn real_collectives_log_becomes_nccl_runs() {
        let p = parse_str("rank-0.log", &real_log("coll-"));
        let names: Vec<&str> = p
            .payload
            .collectives
            .iter()
            .filter_map(|r| r.collective.as_deref())
            .collect();
        assert_eq!(names, vec!["all_reduce", "all_gather", "reduce_scatter"]);
        for r in &p.payload.collectives {
            assert_eq!(r.rows.len(), 6, "1M to 1G by 4");
            assert_eq!(r.nranks, Some(1));
            assert_eq!(r.nccl_version.as_deref(), Some("2.28.9"));
            assert!(
                r.rows
                    .windows(2)
                    .all(|w| w[0].size_bytes * 4 == w[1].size_bytes)
            );
        }
    }
}
