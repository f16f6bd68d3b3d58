//! The sweep file: a campaign written once in TOML (models, stages, matrices, Slurm resources),
//! parsed strictly and validated with errors that name the file, line and key.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::diag::{InputError, Source};
use crate::model::{self, ModelShape};
use crate::path;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Cluster profile: a name under `slurm/clusters/` or a path to a profile file.
    pub cluster: String,
    /// Directory of templates that override the built-in ones (relative to the sweep file).
    #[serde(default)]
    pub templates: Option<String>,
    /// Parameters every point starts from.
    #[serde(default)]
    pub defaults: IndexMap<String, toml::Value>,
    #[serde(default)]
    pub slurm: SlurmSpec,
    /// Environment exported by every job, on top of the profile's.
    #[serde(default)]
    pub env: IndexMap<String, toml::Value>,
    /// Base DeepSpeed config (any keys DeepSpeed accepts); the point fills in batch sizes.
    #[serde(default)]
    pub deepspeed: Option<toml::Table>,
    /// User-defined models, by name.
    #[serde(default)]
    pub models: IndexMap<String, ModelShape>,
    #[serde(rename = "stage", default)]
    pub stages: Vec<StageSpec>,
    /// The plan's targets, checked before submission (`sweep check`) and against the results.
    #[serde(rename = "target", default)]
    pub targets: Vec<TargetSpec>,
    /// What `sweep collect` adds to its tables.
    #[serde(default)]
    pub collect: CollectSpec,
    /// The reservation the campaign runs in (`[schedule]`), for the plan check's schedule.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
}

/// `[schedule]`: `start = "2026-12-14T09:00"`, `hours = 48`, `nodes = 8` (default: the
/// profile's nodes).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Local wall-clock time the reservation begins, `YYYY-MM-DDTHH:MM`.
    pub start: String,
    /// Length of the reservation, hours.
    pub hours: f64,
    #[serde(default)]
    pub nodes: Option<u32>,
}

/// A stage's window: `{ start = "day1 09:00", end = "day1 12:00" }`, days counted from the
/// reservation's first day (day1).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollectSpec {
    /// Named regex patterns whose one capture group becomes a column of `runs.csv`.
    #[serde(rename = "pattern", default)]
    pub patterns: Vec<PatternSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    pub name: String,
    /// A regular expression (Rust `regex` syntax) with exactly one capture group: a number.
    pub regex: String,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub aggregate: Aggregate,
}

/// How the values a pattern captured in a job's files become one figure.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    First,
    #[default]
    Last,
    Min,
    Max,
    Mean,
    Median,
}

impl Aggregate {
    pub(crate) fn apply(&self, v: &[f64]) -> Option<f64> {
        let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        Some(match self {
            Aggregate::First => finite[0],
            Aggregate::Last => finite[finite.len() - 1],
            Aggregate::Min => finite.iter().copied().fold(f64::INFINITY, f64::min),
            Aggregate::Max => finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Aggregate::Mean => finite.iter().sum::<f64>() / finite.len() as f64,
            Aggregate::Median => {
                let mut s = finite;
                s.sort_by(|a, b| a.total_cmp(b));
                let n = s.len();
                if n % 2 == 1 {
                    s[n / 2]
                } else {
                    (s[n / 2 - 1] + s[n / 2]) / 2.0
                }
            }
        })
    }
}

impl PatternSpec {
    /// The column name in `runs.csv`, with the unit when one is given.
    pub(crate) fn column(&self) -> String {
        match self.unit.as_deref().filter(|u| !u.is_empty()) {
            Some(u) => format!("{}_{}", self.name, u.replace('/', "_per_")),
            None => self.name.clone(),
        }
    }
}

/// A target of the plan: "at least `value` `unit` of `metric`" for the points it selects.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub metric: TargetMetric,
    /// Only points of this model (a preset or a `[models.X]`).
    #[serde(default)]
    pub model: Option<String>,
    /// Only points with this many nodes.
    #[serde(default)]
    pub nodes: Option<u32>,
    #[serde(default)]
    pub stage: Option<String>,
    pub value: f64,
    /// throughput: `samples/s` (default) or `tokens/s`; bandwidth: `Gb/s` (default) or `GB/s`,
    /// per node; the percentages: `%`.
    #[serde(default)]
    pub unit: Option<String>,
    /// Where the figure comes from (the plan's wording).
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TargetMetric {
    /// Training throughput of the whole job.
    Throughput,
    /// Average GPU utilisation, percent.
    GpuUtil,
    /// Scaling efficiency against the smallest node count, percent.
    ScalingEfficiency,
    /// Network bandwidth per node.
    Bandwidth,
    /// Bus bandwidth as a percentage of the theoretical (line rate or NVLink).
    BandwidthUtilization,
}

impl TargetMetric {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            TargetMetric::Throughput => "throughput",
            TargetMetric::GpuUtil => "gpu_util",
            TargetMetric::ScalingEfficiency => "scaling_efficiency",
            TargetMetric::Bandwidth => "bandwidth",
            TargetMetric::BandwidthUtilization => "bandwidth_utilization",
        }
    }
    /// Units accepted, the first being the default.
    pub(crate) fn units(&self) -> &'static [&'static str] {
        match self {
            TargetMetric::Throughput => &["samples/s", "tokens/s"],
            TargetMetric::Bandwidth => &["Gb/s", "GB/s"],
            _ => &["%"],
        }
    }
}

impl TargetSpec {
    pub(crate) fn unit(&self) -> &str {
        self.unit.as_deref().unwrap_or(self.metric.units()[0])
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Time limit in a form sbatch accepts: `MM`, `HH:MM:SS`, `D-HH:MM:SS`.
    pub time: Option<String>,
    pub exclusive: Option<bool>,
    pub constraint: Option<String>,
    pub reservation: Option<String>,
    /// Memory per node (`--mem`), e.g. `0` for all of it or `512G`.
    pub mem: Option<String>,
    /// Seconds before the time limit at which tasks get SIGUSR1 (`--signal=USR1@N`).
    pub signal_before_s: Option<u32>,
    /// Extra `#SBATCH` options, verbatim (`--mail-type=END`).
    #[serde(default)]
    pub extra: Vec<String>,
}

impl SlurmSpec {
    /// `self` with every unset field taken from `base`.
    pub(crate) fn over(&self, base: &SlurmSpec) -> SlurmSpec {
        SlurmSpec {
            partition: self.partition.clone().or_else(|| base.partition.clone()),
            account: self.account.clone().or_else(|| base.account.clone()),
            qos: self.qos.clone().or_else(|| base.qos.clone()),
            time: self.time.clone().or_else(|| base.time.clone()),
            exclusive: self.exclusive.or(base.exclusive),
            constraint: self.constraint.clone().or_else(|| base.constraint.clone()),
            reservation: self
                .reservation
                .clone()
                .or_else(|| base.reservation.clone()),
            mem: self.mem.clone().or_else(|| base.mem.clone()),
            signal_before_s: self.signal_before_s.or(base.signal_before_s),
            extra: base
                .extra
                .iter()
                .chain(self.extra.iter())
                .cloned()
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dependency {
    #[default]
    Afterok,
    Afterany,
    Afternotok,
}

impl Dependency {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Dependency::Afterok => "afterok",
            Dependency::Afterany => "afterany",
            Dependency::Afternotok => "afternotok",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scaling {
    /// No scaling semantics: batch values are taken as given.
    #[default]
    None,
    /// Per-GPU batch fixed (micro_batch, grad_accum); the global batch grows with the nodes.
    Weak,
    /// Global batch fixed; grad_accum = global_batch / (micro_batch x data-parallel ranks).
    Strong,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Inexact {
    /// A point whose accumulation is not a whole number stops the expansion.
    #[default]
    Error,
    /// Such a point is dropped and the reason printed.
    Exclude,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub name: String,
    pub template: String,
    #[serde(default)]
    pub description: String,
    /// Upstream stages: a name (waits as `dependency` says) or `{ stage = "x", kind = "afterany" }`.
    #[serde(default)]
    pub after: Vec<After>,
    /// The kind of dependency on every upstream stage named without its own `kind`.
    #[serde(default)]
    pub dependency: Dependency,
    #[serde(default = "one")]
    pub repeats: u32,
    #[serde(default)]
    pub scaling: Scaling,
    #[serde(default)]
    pub on_inexact: Inexact,
    #[serde(default)]
    pub slurm: SlurmSpec,
    /// Fixed parameters of this stage (override `defaults`).
    #[serde(default)]
    pub params: IndexMap<String, toml::Value>,
    /// Axes: each key takes every value of its array (cartesian product).
    #[serde(default)]
    pub matrix: IndexMap<String, toml::Value>,
    /// Named zips: the arrays inside one zip advance together, as one axis.
    #[serde(default)]
    pub zip: IndexMap<String, IndexMap<String, toml::Value>>,
    /// Points to leave out: a table of values that must all match, or a boolean expression.
    #[serde(default)]
    pub exclude: Vec<toml::Value>,
    /// Derived parameters: name = expression over the point, evaluated in order.
    #[serde(default)]
    pub derive: IndexMap<String, String>,
    #[serde(default)]
    pub env: IndexMap<String, toml::Value>,
    /// DeepSpeed config keys of this stage, merged over the sweep's `[deepspeed]`.
    #[serde(default)]
    pub deepspeed: Option<toml::Table>,
    /// When the stage should run inside the reservation (`[schedule]`).
    #[serde(default)]
    pub window: Option<WindowSpec>,
}

fn one() -> u32 {
    1
}

/// One upstream stage of `after`: its name alone, or a table naming the kind of dependency
/// (`afterok`: a gate whose failure stops this stage; `afterany`: a measurement that must only
/// have ended).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum After {
    Name(String),
    Kind(AfterKind),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AfterKind {
    pub stage: String,
    pub kind: Dependency,
}

impl After {
    pub(crate) fn stage(&self) -> &str {
        match self {
            After::Name(s) => s,
            After::Kind(k) => &k.stage,
        }
    }
}

impl StageSpec {
    /// Every upstream stage with the kind of dependency on it.
    pub(crate) fn upstream(&self) -> Vec<(String, Dependency)> {
        self.after
            .iter()
            .map(|a| match a {
                After::Name(s) => (s.clone(), self.dependency),
                After::Kind(k) => (k.stage.clone(), k.kind),
            })
            .collect()
    }

    pub(crate) fn after_names(&self) -> Vec<String> {
        self.after.iter().map(|a| a.stage().to_string()).collect()
    }
}

/// Parameter names the tool itself understands; any other name is free for templates.
pub(crate) const KNOWN_PARAMS: &[&str] = &[
    "model",
    "nodes",
    "gpus_per_node",
    "micro_batch",
    "grad_accum",
    "global_batch",
    "seq_len",
    "zero_stage",
    "activation_checkpointing",
    "tensor_parallel",
    "pipeline_parallel",
];

/// Names computed by expansion: a sweep file may read them but not set them.
pub(crate) const COMPUTED_PARAMS: &[&str] = &[
    "gpus",
    "world_size",
    "dp",
    "tokens_per_step",
    "repeat",
    "stage",
];

/// A loaded sweep file with its source kept for error locations.
pub struct LoadedSweep {
    pub path: PathBuf,
    pub text: String,
    pub spec: SweepFile,
}

impl LoadedSweep {
    pub(crate) fn source(&self) -> Source<'_> {
        Source::new(&self.path, &self.text)
    }

    /// Resolves a model name against the sweep's own models first, then the presets.
    pub(crate) fn model(&self, name: &str) -> Option<ModelShape> {
        if let Some(m) = self.spec.models.get(name) {
            let mut m = m.clone();
            m.name = name.to_string();
            return Some(m);
        }
        model::preset(name)
    }
}

pub(crate) fn load(path: &Path) -> Result<LoadedSweep, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        message: format!("cannot read sweep file: {e}"),
        source_line: None,
    })?;
    parse(path, text)
}

pub fn parse(path: &Path, text: String) -> Result<LoadedSweep, InputError> {
    let spec: SweepFile = {
        let src = Source::new(path, &text);
        toml::from_str(&text).map_err(|e| src.toml_error(&e))?
    };
    let loaded = LoadedSweep {
        path: path.to_path_buf(),
        text,
        spec,
    };
    validate(&loaded)?;
    Ok(loaded)
}

/// Parameters read by the built-in templates whose type is known: checked as that type, so a
/// template never receives `"1; rm -rf ~"` where it expects a step count.
const TYPED_PARAMS: &[(&str, ParamType)] = &[
    ("steps", ParamType::PositiveInt),
    ("warmup_steps", ParamType::NonNegativeInt),
    ("gpu_sample_ms", ParamType::NonNegativeInt),
    ("net_sample_s", ParamType::NonNegativeInt),
    ("expect_gpus_per_node", ParamType::NonNegativeInt),
    ("expect_nic_gbps", ParamType::PositiveNumber),
    ("expect_memlock_kib", ParamType::KibOrUnlimited),
    ("iters", ParamType::PositiveInt),
    ("warmup_iters", ParamType::NonNegativeInt),
    ("step_factor", ParamType::PositiveInt),
    ("check", ParamType::NonNegativeInt),
    ("pairs_all_max", ParamType::NonNegativeInt),
    ("min_bytes", ParamType::ByteSize),
    ("max_bytes", ParamType::ByteSize),
    ("pin_nic", ParamType::Bool),
    ("nccl_json", ParamType::Bool),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    PositiveInt,
    NonNegativeInt,
    PositiveNumber,
    ByteSize,
    Bool,
    /// A `ulimit -l` value: KiB from 0, or `"unlimited"`.
    KibOrUnlimited,
}

/// Checks a value of a typed parameter; JSON because derived values are checked too.
pub(crate) fn typed_param_error(key: &str, v: &serde_json::Value) -> Option<String> {
    let (_, ty) = TYPED_PARAMS.iter().find(|(k, _)| *k == key)?;
    let int = v.as_i64().filter(|_| v.is_i64() || v.is_u64());
    match ty {
        ParamType::PositiveInt => match int {
            Some(n) if (1..=u32::MAX as i64).contains(&n) => None,
            _ => Some(format!(
                "`{key}` must be a whole number from 1 to {}, not {v}",
                u32::MAX
            )),
        },
        ParamType::NonNegativeInt => match int {
            Some(n) if (0..=u32::MAX as i64).contains(&n) => None,
            _ => Some(format!(
                "`{key}` must be a whole number from 0 to {}, not {v}",
                u32::MAX
            )),
        },
        ParamType::PositiveNumber => match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => None,
            _ => Some(format!("`{key}` must be a positive number, not {v}")),
        },
        ParamType::ByteSize => match (int, v.as_str()) {
            (Some(n), _) if n >= 0 => None,
            (_, Some(s)) => crate::values::byte_size_error(s).map(|m| format!("`{key}`: {m}")),
            _ => Some(format!(
                "`{key}` must be a byte size (`8`, `1M`, `16G`), not {v}"
            )),
        },
        ParamType::Bool => (!v.is_boolean()).then(|| format!("`{key}` must be true or false")),
        ParamType::KibOrUnlimited => match (int, v.as_str()) {
            (Some(n), _) if n >= 0 => None,
            (_, Some("unlimited")) => None,
            _ => Some(format!(
                "`{key}` must be a whole number of KiB from 0 or \"unlimited\" (as `ulimit -l` says), not {v}"
            )),
        },
    }
}

/// `signal_before_s` must leave the job some time: the stage's or the campaign's signal against
/// the time limit in force for the stage, reported at the key the stage sets (else the campaign's).
fn check_signal(src: &Source, i: usize, st: &StageSpec, s: &SweepFile) -> Result<(), InputError> {
    let merged = st.slurm.over(&s.slurm);
    let (Some(sig), Some(t)) = (merged.signal_before_s, merged.time.as_deref()) else {
        return Ok(());
    };
    let Ok(min) = crate::values::parse_time_limit(t) else {
        return Ok(());
    };
    if u64::from(sig) < min.saturating_mul(60) {
        return Ok(());
    }
    let at = if st.slurm.signal_before_s.is_some() {
        path!["stage", i, "slurm", "signal_before_s"].to_vec()
    } else if st.slurm.time.is_some() {
        path!["stage", i, "slurm", "time"].to_vec()
    } else {
        path!["slurm", "signal_before_s"].to_vec()
    };
    Err(src.error(
        &at,
        format!(
            "signal_before_s = {sig} is not shorter than the {min}-minute time limit of stage `{}`: the signal would come before the job could start",
            st.name
        ),
    ))
}

/// The `[slurm]` strings go into `#SBATCH` lines: each is checked as what it is.
fn check_slurm(src: &Source, base: &[crate::diag::Seg], s: &SlurmSpec) -> Result<(), InputError> {
    let at = |k: &str| {
        let mut p = base.to_vec();
        p.push(k.into());
        p
    };
    let names = [
        ("partition", &s.partition),
        ("account", &s.account),
        ("qos", &s.qos),
        ("reservation", &s.reservation),
    ];
    for (k, v) in names {
        if let Some(v) = v
            && let Some(m) = crate::values::slurm_name_error(v)
        {
            return Err(src.error(&at(k), m));
        }
    }
    if let Some(c) = &s.constraint
        && let Some(m) = crate::values::constraint_error(c)
    {
        return Err(src.error(&at("constraint"), m));
    }
    if let Some(m) = s.mem.as_deref().and_then(crate::values::mem_error) {
        return Err(src.error(&at("mem"), m));
    }
    if let Some(t) = &s.time {
        crate::values::parse_time_limit(t).map_err(|m| src.error(&at("time"), m))?;
    }
    for (i, opt) in s.extra.iter().enumerate() {
        if let Some(m) = crate::values::sbatch_option_error(opt) {
            let mut p = at("extra");
            p.push(i.into());
            return Err(src.error(&p, m));
        }
    }
    Ok(())
}

/// Structural checks that need no profile: names, matrices, zips, dependencies.
fn validate(l: &LoadedSweep) -> Result<(), InputError> {
    let src = l.source();
    let s = &l.spec;
    if let Some(m) = crate::values::name_error(&s.name) {
        return Err(src.error(&path!["name"], format!("campaign name: {m}")));
    }
    check_slurm(&src, &path!["slurm"], &s.slurm)?;
    if s.stages.is_empty() {
        return Err(src.error(&path!["name"], "the sweep file defines no [[stage]]"));
    }
    for (name, m) in &s.models {
        if let Err(msg) = m.validate() {
            return Err(src.error(&path!["models", name.as_str()], msg));
        }
    }
    for (k, v) in &s.defaults {
        check_param(&src, &path!["defaults", k.as_str()], k, v)?;
    }
    check_env(&src, &path!["env"], &s.env)?;
    for (i, st) in s.stages.iter().enumerate() {
        validate_stage(&src, s, i, st)?;
    }
    validate_collect_patterns(&src, s)?;
    validate_schedule(&src, s)?;
    validate_targets(l, &src)
}

/// `[schedule]` and the stages' windows: times that parse, a positive length, windows inside
/// the reservation and ending after they start; a window needs a `[schedule]` to count from.
fn validate_schedule(src: &Source, s: &SweepFile) -> Result<(), InputError> {
    use crate::schedule::{parse_day_time, parse_start};
    let mut start_min = None;
    if let Some(sc) = &s.schedule {
        let m = parse_start(&sc.start).map_err(|m| src.error(&path!["schedule", "start"], m))?;
        start_min = Some(m % 1440);
        if !(sc.hours.is_finite() && sc.hours > 0.0 && sc.hours <= 24.0 * 366.0) {
            return Err(src.error(
                &path!["schedule", "hours"],
                format!(
                    "the reservation's length in hours must be above 0 (at most a year), not {}",
                    sc.hours
                ),
            ));
        }
        if sc.nodes == Some(0) {
            return Err(src.error(&path!["schedule", "nodes"], "must be at least 1"));
        }
    }
    for (i, st) in s.stages.iter().enumerate() {
        let Some(w) = &st.window else { continue };
        let Some(day0) = start_min else {
            return Err(src.error(
                &path!["stage", i, "window"],
                "a stage window needs a `[schedule]` (the reservation's start) to count days from",
            ));
        };
        let a = parse_day_time(&w.start)
            .map_err(|m| src.error(&path!["stage", i, "window", "start"], m))?;
        let b = parse_day_time(&w.end)
            .map_err(|m| src.error(&path!["stage", i, "window", "end"], m))?;
        if b <= a {
            return Err(src.error(
                &path!["stage", i, "window", "end"],
                format!(
                    "the window ends (`{}`) before it starts (`{}`)",
                    w.end, w.start
                ),
            ));
        }
        if a < day0 {
            return Err(src.error(
                &path!["stage", i, "window", "start"],
                format!("`{}` is before the reservation starts", w.start),
            ));
        }
    }
    Ok(())
}

/// One stage: its names, Slurm options, parameters, axes, exclusions, derived values and
/// dependencies.
fn validate_stage(src: &Source, s: &SweepFile, i: usize, st: &StageSpec) -> Result<(), InputError> {
    if let Some(m) = crate::values::name_error(&st.name) {
        return Err(src.error(&path!["stage", i, "name"], format!("stage name: {m}")));
    }
    if let Some(m) = crate::values::template_name_error(&st.template) {
        return Err(src.error(&path!["stage", i, "template"], m));
    }
    check_slurm(src, &path!["stage", i, "slurm"], &st.slurm)?;
    check_signal(src, i, st, s)?;
    if s.stages[..i].iter().any(|o| o.name == st.name) {
        return Err(src.error(
            &path!["stage", i, "name"],
            format!("duplicate stage `{}`", st.name),
        ));
    }
    if st.repeats == 0 {
        return Err(src.error(&path!["stage", i, "repeats"], "repeats must be at least 1"));
    }
    for (k, v) in &st.params {
        check_param(src, &path!["stage", i, "params", k.as_str()], k, v)?;
    }
    check_env(src, &path!["stage", i, "env"], &st.env)?;
    let axis_names = validate_axes(src, i, st)?;
    validate_exclusions(src, i, st)?;
    validate_derived(src, i, st, &axis_names)?;
    validate_after(src, s, i, st)
}

/// The stage's matrix and zips, each value checked; returns the axes' names. An axis may appear
/// in one place only, and the arrays of a zip have equal lengths.
fn validate_axes(src: &Source, i: usize, st: &StageSpec) -> Result<Vec<String>, InputError> {
    let mut axis_names = Vec::<String>::new();
    for (k, v) in &st.matrix {
        let p = path!["stage", i, "matrix", k.as_str()];
        let arr = axis_values(src, &p, v)?;
        for (j, item) in arr.iter().enumerate() {
            let mut pj = p.to_vec();
            pj.push(j.into());
            check_param(src, &pj, k, item)?;
        }
        axis_names.push(k.clone());
    }
    for (zname, axes) in &st.zip {
        let zp = path!["stage", i, "zip", zname.as_str()];
        if axes.is_empty() {
            return Err(src.error(&zp, format!("zip `{zname}` has no axes")));
        }
        let mut len: Option<(usize, &str)> = None;
        for (k, v) in axes {
            let p = path!["stage", i, "zip", zname.as_str(), k.as_str()];
            let arr = axis_values(src, &p, v)?;
            for (j, item) in arr.iter().enumerate() {
                let mut pj = p.to_vec();
                pj.push(j.into());
                check_param(src, &pj, k, item)?;
            }
            match len {
                None => len = Some((arr.len(), k)),
                Some((n, first)) if n != arr.len() => {
                    return Err(src.error(
                        &p,
                        format!(
                            "zip `{zname}`: `{k}` has {} values but `{first}` has {n}; the arrays of a zip must have equal lengths",
                            arr.len()
                        ),
                    ));
                }
                _ => {}
            }
            if axis_names.contains(k) {
                return Err(src.error(
                    &p,
                    format!("`{k}` is already an axis of this stage; an axis may appear in one place only"),
                ));
            }
            axis_names.push(k.clone());
        }
    }
    Ok(axis_names)
}

/// Each exclusion is a non-empty table of values or an expression string.
fn validate_exclusions(src: &Source, i: usize, st: &StageSpec) -> Result<(), InputError> {
    for (j, ex) in st.exclude.iter().enumerate() {
        let p = path!["stage", i, "exclude", j];
        match ex {
            toml::Value::String(_) => {}
            toml::Value::Table(t) if !t.is_empty() => {}
            _ => {
                return Err(src.error(
                    &p,
                    "an exclusion is a table of values (`{ micro_batch = 64 }`) or an expression string",
                ));
            }
        }
    }
    Ok(())
}

/// A derived value is neither a parameter the tool sets or computes nor an axis.
fn validate_derived(
    src: &Source,
    i: usize,
    st: &StageSpec,
    axis_names: &[String],
) -> Result<(), InputError> {
    for (k, _) in &st.derive {
        let p = path!["stage", i, "derive", k.as_str()];
        if KNOWN_PARAMS.contains(&k.as_str()) || COMPUTED_PARAMS.contains(&k.as_str()) {
            return Err(src.error(
                &p,
                format!("`{k}` is computed or set by the tool and cannot be derived; give it in params or matrix"),
            ));
        }
        if axis_names.contains(k) {
            return Err(src.error(&p, format!("`{k}` is both an axis and a derived value")));
        }
    }
    Ok(())
}

/// A stage depends only on stages defined before it.
fn validate_after(src: &Source, s: &SweepFile, i: usize, st: &StageSpec) -> Result<(), InputError> {
    for (j, dep) in st.after.iter().enumerate() {
        let p = path!["stage", i, "after", j];
        let dep = &dep.stage().to_string();
        if st.after[..j].iter().any(|o| o.stage() == dep) {
            return Err(src.error(&p, format!("stage `{dep}` is named twice in `after`")));
        }
        match s.stages.iter().position(|o| &o.name == dep) {
            None => {
                return Err(src.error(&p, format!("no stage named `{dep}` in this sweep file")));
            }
            Some(pos) if pos >= i => {
                return Err(src.error(
                    &p,
                    format!(
                        "stage `{dep}` must be defined before `{}` to be depended on",
                        st.name
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `[[collect.pattern]]`: unique valid names, and a regex with exactly one capture group.
fn validate_collect_patterns(src: &Source, s: &SweepFile) -> Result<(), InputError> {
    for (i, p) in s.collect.patterns.iter().enumerate() {
        if let Some(m) = crate::values::name_error(&p.name) {
            return Err(src.error(
                &path!["collect", "pattern", i, "name"],
                format!("pattern name: {m}"),
            ));
        }
        if s.collect.patterns[..i].iter().any(|q| q.name == p.name) {
            return Err(src.error(
                &path!["collect", "pattern", i, "name"],
                format!("duplicate pattern `{}`", p.name),
            ));
        }
        match regex::Regex::new(&p.regex) {
            Err(e) => {
                return Err(src.error(
                    &path!["collect", "pattern", i, "regex"],
                    format!("not a valid regex: {e}"),
                ));
            }
            Ok(re) if re.captures_len() != 2 => {
                return Err(src.error(
                    &path!["collect", "pattern", i, "regex"],
                    format!(
                        "needs exactly one capture group (the number), has {}",
                        re.captures_len() - 1
                    ),
                ));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// `[[target]]`: a unit of its metric, a known model and stage, a positive value.
fn validate_targets(l: &LoadedSweep, src: &Source) -> Result<(), InputError> {
    let s = &l.spec;
    for (i, t) in s.targets.iter().enumerate() {
        if !t.metric.units().contains(&t.unit()) {
            return Err(src.error(
                &path!["target", i, "unit"],
                format!(
                    "unit `{}` for {}: one of {}",
                    t.unit(),
                    t.metric.as_str(),
                    t.metric.units().join(", ")
                ),
            ));
        }
        if let Some(m) = &t.model
            && l.model(m).is_none()
        {
            return Err(src.error(
                &path!["target", i, "model"],
                format!("unknown model `{m}` (a preset or a [models.X] of this file)"),
            ));
        }
        if let Some(st) = &t.stage
            && !s.stages.iter().any(|x| &x.name == st)
        {
            return Err(src.error(&path!["target", i, "stage"], format!("no stage `{st}`")));
        }
        if !t.value.is_finite() || t.value <= 0.0 {
            return Err(src.error(
                &path!["target", i, "value"],
                "a target value must be a positive number",
            ));
        }
    }
    Ok(())
}

fn axis_values<'v>(
    src: &Source,
    p: &[crate::diag::Seg],
    v: &'v toml::Value,
) -> Result<&'v Vec<toml::Value>, InputError> {
    match v {
        toml::Value::Array(a) if a.is_empty() => {
            Err(src.error(p, "empty axis: give at least one value"))
        }
        toml::Value::Array(a) => Ok(a),
        _ => Err(src.error(
            p,
            "an axis must be an array of values (write `[x]` for a single value)",
        )),
    }
}

fn check_env(
    src: &Source,
    base: &[crate::diag::Seg],
    env: &IndexMap<String, toml::Value>,
) -> Result<(), InputError> {
    for (k, v) in env {
        let mut p = base.to_vec();
        p.push(k.as_str().into());
        if !crate::profile::is_env_name(k) {
            return Err(src.error(&p, "not a valid environment variable name"));
        }
        check_scalar(src, &p, v)?;
    }
    Ok(())
}

/// Values reach shell scripts: allow only scalars, and no control characters.
fn check_scalar(src: &Source, p: &[crate::diag::Seg], v: &toml::Value) -> Result<(), InputError> {
    match v {
        toml::Value::String(s) => {
            if let Some(c) = s.chars().find(|c| c.is_control()) {
                return Err(src.error(
                    p,
                    format!("value contains the control character {c:?}; newlines and control characters cannot be passed safely to a job script"),
                ));
            }
            Ok(())
        }
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => Ok(()),
        toml::Value::Datetime(_) => Ok(()),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            Err(src.error(p, "expected a single value (string, number or boolean)"))
        }
    }
}

fn check_param(
    src: &Source,
    p: &[crate::diag::Seg],
    key: &str,
    v: &toml::Value,
) -> Result<(), InputError> {
    if COMPUTED_PARAMS.contains(&key) {
        return Err(src.error(p, format!("`{key}` is computed by sweep and cannot be set")));
    }
    check_scalar(src, p, v)?;
    let int_keys = [
        "nodes",
        "gpus_per_node",
        "micro_batch",
        "grad_accum",
        "global_batch",
        "seq_len",
        "zero_stage",
        "tensor_parallel",
        "pipeline_parallel",
    ];
    if int_keys.contains(&key) {
        // Batch sizes and counts are u32 everywhere after this; global_batch is u64.
        let max = if key == "global_batch" {
            i64::MAX
        } else {
            u32::MAX as i64
        };
        match v {
            toml::Value::Integer(n) if *n > max => {
                return Err(src.error(p, format!("`{key}` = {n} is out of range (at most {max})")));
            }
            toml::Value::Integer(n) if *n >= 1 || (key == "zero_stage" && *n == 0) => {}
            toml::Value::Integer(_) => {
                return Err(src.error(p, format!("`{key}` must be a positive integer")));
            }
            other => {
                return Err(src.error(
                    p,
                    format!("`{key}` must be an integer, not {}", other.type_str()),
                ));
            }
        }
    }
    if key == "zero_stage"
        && let toml::Value::Integer(n) = v
        && *n > 3
    {
        return Err(src.error(p, "zero_stage must be 0, 1, 2 or 3"));
    }
    if key == "activation_checkpointing" && !matches!(v, toml::Value::Boolean(_)) {
        return Err(src.error(p, "`activation_checkpointing` must be true or false"));
    }
    if key == "model" && !matches!(v, toml::Value::String(_)) {
        return Err(src.error(p, "`model` must be a model name (string)"));
    }
    if let Some(m) = typed_param_error(key, &crate::values::toml_to_json(v)) {
        return Err(src.error(p, m));
    }
    Ok(())
}
