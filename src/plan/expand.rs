//! Expansion: a sweep file and a cluster profile become concrete points (one per job), with the
//! batch algebra of weak and strong scaling, zips, exclusions and derived values applied.

use std::fmt::Write as _;

use indexmap::IndexMap;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value as Json;

use crate::diag::{InputError, Seg, Source};
use crate::model::ModelShape;
use crate::path;
use crate::profile::Profile;
use crate::spec::{Dependency, Inexact, LoadedSweep, Scaling, SlurmSpec, StageSpec};
pub(crate) use crate::values::{parse_time_limit, toml_to_json};

/// Batch algebra of one point. `dp` = gpus / (tensor_parallel x pipeline_parallel).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Batch {
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub gpus: u32,
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub dp: u32,
    pub micro_batch: Option<u32>,
    pub grad_accum: Option<u32>,
    pub global_batch: Option<u64>,
    pub seq_len: Option<u32>,
    pub tokens_per_step: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub id: String,
    pub stage: String,
    pub template: String,
    pub repeat: u32,
    pub scaling: Scaling,
    /// The values that vary across the stage (matrix and zip axes), in declaration order.
    pub axes: IndexMap<String, Json>,
    /// Every parameter of the point: defaults, stage params, axes, computed and derived values.
    pub params: IndexMap<String, Json>,
    pub env: IndexMap<String, String>,
    pub model: Option<ModelShape>,
    pub batch: Batch,
    pub slurm: SlurmSpec,
    pub after: Vec<String>,
    pub dependency: Dependency,
    /// Time limit in minutes, when one is set.
    pub time_limit_min: Option<u64>,
}

impl Point {
    pub(crate) fn gpu_hours(&self) -> Option<f64> {
        self.time_limit_min
            .map(|m| m as f64 / 60.0 * self.batch.gpus as f64)
    }

    /// `key=value` pairs of the axes, for messages.
    pub(crate) fn describe(&self) -> String {
        describe(&self.axes)
    }
}

fn describe(axes: &IndexMap<String, Json>) -> String {
    let mut s = String::new();
    for (k, v) in axes {
        if !s.is_empty() {
            s.push_str(", ");
        }
        let _ = write!(s, "{k}={}", json_short(v));
    }
    if s.is_empty() { "(no axes)".into() } else { s }
}

#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    pub stage: String,
    pub axes: IndexMap<String, Json>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub campaign: String,
    pub points: Vec<Point>,
    pub excluded: Vec<Excluded>,
}

pub(crate) fn json_short(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Numeric equality across integer and float spellings (`2 == 2.0`), exact otherwise.
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// An environment for the small expressions of `exclude` and `derive`: strict, so a typo in a
/// variable name is an error rather than a silently false condition.
fn expr_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // An expression is evaluated once per point: a small budget each, so one that loops away
    // stops with an error instead of holding the login node.
    env.set_fuel(Some(EXPR_FUEL));
    env
}

const EXPR_FUEL: u64 = 100_000;

/// Points `expand` builds before it refuses, unless told otherwise (`--max-points`): a matrix
/// that multiplies out to millions of jobs is a mistake, and building it would exhaust memory.
pub(crate) const DEFAULT_MAX_POINTS: u64 = 100_000;

/// The number of points each stage asks for (axes x repeats, before exclusions), counted from
/// the sweep file alone; saturates rather than wraps.
fn point_counts(sweep: &LoadedSweep) -> Vec<(String, u64)> {
    sweep
        .spec
        .stages
        .iter()
        .map(|st| {
            let len = |v: &toml::Value| v.as_array().map_or(1, |a| a.len() as u64);
            let mut n = u64::from(st.repeats.max(1));
            for v in st.matrix.values() {
                n = n.saturating_mul(len(v));
            }
            for z in st.zip.values() {
                n = n.saturating_mul(z.values().next().map_or(1, len));
            }
            (st.name.clone(), n)
        })
        .collect()
}

struct Axis {
    keys: Vec<String>,
    /// values[i][k]: the i-th value of key k.
    values: Vec<Vec<Json>>,
}

enum Rule {
    Values(usize, Vec<(String, Json)>),
    Expr(usize, String),
}

struct StageCtx<'a> {
    index: usize,
    spec: &'a StageSpec,
    axes: Vec<Axis>,
    base: IndexMap<String, Json>,
    rules: Vec<Rule>,
}

pub fn expand(sweep: &LoadedSweep, profile: &Profile) -> Result<Plan, InputError> {
    expand_capped(sweep, profile, DEFAULT_MAX_POINTS)
}

/// `expand`, refusing at once (before any point is built) when the matrix asks for more than
/// `max_points` points.
pub fn expand_capped(
    sweep: &LoadedSweep,
    profile: &Profile,
    max_points: u64,
) -> Result<Plan, InputError> {
    let src = sweep.source();
    let counts = point_counts(sweep);
    check_point_cap(&src, &counts, max_points)?;
    let env = expr_env();
    let mut points = Vec::new();
    let mut excluded = Vec::new();
    let mut ids = std::collections::HashMap::<String, String>::new();
    for (si, stage) in sweep.spec.stages.iter().enumerate() {
        let ctx = stage_ctx(sweep, &src, profile, si, stage)?;
        let derive: Vec<(String, minijinja::Expression)> = stage
            .derive
            .iter()
            .map(|(k, e)| {
                env.compile_expression(e.as_str())
                    .map(|x| (k.clone(), x))
                    .map_err(|err| {
                        src.error(
                            &path!["stage", si, "derive", k.as_str()],
                            format!("bad expression: {}", expr_err(&err)),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let excl: Vec<Option<minijinja::Expression>> = ctx
            .rules
            .iter()
            .map(|r| match r {
                Rule::Expr(j, e) => env.compile_expression(e.as_str()).map(Some).map_err(|err| {
                    src.error(
                        &path!["stage", si, "exclude", *j],
                        format!("bad expression: {}", expr_err(&err)),
                    )
                }),
                Rule::Values(..) => Ok(None),
            })
            .collect::<Result<_, _>>()?;

        let pc = PointCtx {
            sweep,
            src: &src,
            profile,
            stage: &ctx,
            derive: &derive,
            excl: &excl,
        };
        let mut idx = vec![0usize; ctx.axes.len()];
        loop {
            let mut axes = IndexMap::new();
            for (a, &i) in ctx.axes.iter().zip(&idx) {
                for (k, v) in a.keys.iter().zip(&a.values[i]) {
                    axes.insert(k.clone(), v.clone());
                }
            }
            for r in 0..stage.repeats {
                match pc.build_point(&axes, r)? {
                    Ok(p) => {
                        if let Some(prev) = ids.insert(p.id.clone(), p.describe()) {
                            return Err(src.error(
                                &path!["stage", si, "matrix"],
                                format!(
                                    "two points get the same job id `{}` ({prev}) and ({}): an axis repeats a value",
                                    p.id,
                                    p.describe()
                                ),
                            ));
                        }
                        points.push(p)
                    }
                    Err(reason) => {
                        if r == 0 {
                            excluded.push(Excluded {
                                stage: stage.name.clone(),
                                axes: axes.clone(),
                                reason,
                            });
                        }
                        break;
                    }
                }
            }
            // Odometer over the axes; the last axis varies fastest.
            let mut k = ctx.axes.len();
            loop {
                if k == 0 {
                    break;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < ctx.axes[k].values.len() {
                    break;
                }
                idx[k] = 0;
                if k == 0 {
                    k = usize::MAX;
                    break;
                }
            }
            if k == usize::MAX || ctx.axes.is_empty() {
                break;
            }
        }
        let n = points.iter().filter(|p| p.stage == stage.name).count();
        if n == 0 {
            return Err(src.error(
                &path!["stage", si, "name"],
                format!("stage `{}` has no points left after exclusions", stage.name),
            ));
        }
    }
    Ok(Plan {
        campaign: sweep.spec.name.clone(),
        points,
        excluded,
    })
}

/// Refuses a sweep whose matrix asks for more than `max_points` points, naming the largest
/// stage and every stage's count.
fn check_point_cap(
    src: &Source,
    counts: &[(String, u64)],
    max_points: u64,
) -> Result<(), InputError> {
    let total = counts.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
    if total <= max_points {
        return Ok(());
    }
    let si = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, (_, n))| *n)
        .map_or(0, |(i, _)| i);
    let count = |n: u64| {
        if n == u64::MAX {
            format!("more than {}", u64::MAX)
        } else {
            n.to_string()
        }
    };
    let per: Vec<String> = counts
        .iter()
        .map(|(name, n)| format!("{name}: {}", count(*n)))
        .collect();
    Err(src.error(
        &path!["stage", si, "name"],
        format!(
            "the sweep asks for {} points ({}), above the limit of {max_points}; nothing was built. Shrink the matrix, or raise the limit with --max-points",
            count(total),
            per.join(", ")
        ),
    ))
}

fn expr_err(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(d) = e.detail() {
        s.push_str(": ");
        s.push_str(d);
    }
    s
}

fn stage_ctx<'a>(
    sweep: &'a LoadedSweep,
    src: &Source,
    profile: &Profile,
    si: usize,
    stage: &'a StageSpec,
) -> Result<StageCtx<'a>, InputError> {
    let p = stage_params(sweep, src, profile, si, stage)?;
    check_scaling_inputs(src, si, stage, &p)?;
    let rules = exclusion_rules(src, si, stage, &p)?;
    Ok(StageCtx {
        index: si,
        spec: stage,
        axes: p.axes,
        base: p.base,
        rules,
    })
}

/// A stage's parameters: those in force before the axes, the axes, and where each came from
/// (for error locations).
struct StageParams {
    base: IndexMap<String, Json>,
    axes: Vec<Axis>,
    origin: IndexMap<String, Vec<Seg>>,
}

impl StageParams {
    /// Whether the stage gives `k`, as a fixed value or on an axis.
    fn has(&self, k: &str) -> bool {
        self.base.contains_key(k) || self.axes.iter().any(|a| a.keys.iter().any(|x| x == k))
    }
}

/// The stage's parameters from the defaults, its params, matrix and zips, each value checked
/// against the profile and the models where it was written.
fn stage_params(
    sweep: &LoadedSweep,
    src: &Source,
    profile: &Profile,
    si: usize,
    stage: &StageSpec,
) -> Result<StageParams, InputError> {
    let mut base = IndexMap::new();
    let mut origin: IndexMap<String, Vec<Seg>> = IndexMap::new();
    for (k, v) in &sweep.spec.defaults {
        base.insert(k.clone(), toml_to_json(v));
        origin.insert(k.clone(), path!["defaults", k.as_str()].to_vec());
    }
    for (k, v) in &stage.params {
        base.insert(k.clone(), toml_to_json(v));
        origin.insert(k.clone(), path!["stage", si, "params", k.as_str()].to_vec());
    }
    let mut axes = Vec::new();
    for (k, v) in &stage.matrix {
        origin.insert(k.clone(), path!["stage", si, "matrix", k.as_str()].to_vec());
        let arr = v.as_array().map(|a| a.as_slice()).unwrap_or(&[]);
        for (j, item) in arr.iter().enumerate() {
            check_value(
                sweep,
                src,
                profile,
                &path!["stage", si, "matrix", k.as_str(), j],
                k,
                item,
            )?;
        }
        axes.push(Axis {
            keys: vec![k.clone()],
            values: arr.iter().map(|x| vec![toml_to_json(x)]).collect(),
        });
        base.shift_remove(k);
    }
    for (zname, z) in &stage.zip {
        let keys: Vec<String> = z.keys().cloned().collect();
        let n = z
            .values()
            .next()
            .and_then(|v| v.as_array())
            .map(|a| a.len())
            .unwrap_or(0);
        let mut values = vec![Vec::with_capacity(keys.len()); n];
        for (k, v) in z {
            let arr = v.as_array().map(|a| a.as_slice()).unwrap_or(&[]);
            for (j, item) in arr.iter().enumerate() {
                check_value(
                    sweep,
                    src,
                    profile,
                    &path!["stage", si, "zip", zname.as_str(), k.as_str(), j],
                    k,
                    item,
                )?;
                values[j].push(toml_to_json(item));
            }
            base.shift_remove(k);
            origin.insert(
                k.clone(),
                path!["stage", si, "zip", zname.as_str(), k.as_str()].to_vec(),
            );
        }
        axes.push(Axis { keys, values });
    }
    for (k, v) in &sweep.spec.defaults {
        if base.contains_key(k) && !stage.params.contains_key(k) {
            check_value(sweep, src, profile, &path!["defaults", k.as_str()], k, v)?;
        }
    }
    for (k, v) in &stage.params {
        if base.contains_key(k) {
            check_value(
                sweep,
                src,
                profile,
                &path!["stage", si, "params", k.as_str()],
                k,
                v,
            )?;
        }
    }
    Ok(StageParams { base, axes, origin })
}

/// Scaling needs specific inputs and derives others; says which is missing where the scaling is
/// declared, and where a derived one was given.
fn check_scaling_inputs(
    src: &Source,
    si: usize,
    stage: &StageSpec,
    p: &StageParams,
) -> Result<(), InputError> {
    let need = |keys: &[&str], forbid: &[&str]| -> Result<(), InputError> {
        for k in keys {
            if !p.has(k) {
                return Err(src.error(
                    &path!["stage", si, "scaling"],
                    format!(
                        "scaling = \"{}\" needs `{k}` (in defaults, params, matrix or a zip)",
                        scaling_name(stage.scaling)
                    ),
                ));
            }
        }
        for k in forbid {
            if p.has(k) {
                let at = p
                    .origin
                    .get(*k)
                    .cloned()
                    .unwrap_or_else(|| path!["stage", si, "scaling"].to_vec());
                return Err(src.error(
                    &at,
                    format!(
                        "`{k}` is derived under scaling = \"{}\" and must not be given",
                        scaling_name(stage.scaling)
                    ),
                ));
            }
        }
        Ok(())
    };
    match stage.scaling {
        Scaling::Strong => need(&["global_batch", "micro_batch"], &["grad_accum"])?,
        Scaling::Weak => need(&["micro_batch", "grad_accum"], &["global_batch"])?,
        Scaling::None => {}
    }
    Ok(())
}

/// The stage's exclusions; one naming a parameter the stage does not have could never match and
/// is an error.
fn exclusion_rules(
    src: &Source,
    si: usize,
    stage: &StageSpec,
    p: &StageParams,
) -> Result<Vec<Rule>, InputError> {
    let mut rules = Vec::new();
    for (j, ex) in stage.exclude.iter().enumerate() {
        match ex {
            toml::Value::String(e) => rules.push(Rule::Expr(j, e.clone())),
            toml::Value::Table(t) => {
                let mut kv = Vec::new();
                for (k, v) in t {
                    let known = p.has(k)
                        || stage.derive.contains_key(k)
                        || crate::spec::COMPUTED_PARAMS.contains(&k.as_str());
                    if !known {
                        return Err(src.error(
                            &path!["stage", si, "exclude", j, k.as_str()],
                            format!("`{k}` is not a parameter of stage `{}`: this exclusion could never match", stage.name),
                        ));
                    }
                    kv.push((k.clone(), toml_to_json(v)));
                }
                rules.push(Rule::Values(j, kv));
            }
            _ => {}
        }
    }
    Ok(rules)
}

fn scaling_name(s: Scaling) -> &'static str {
    match s {
        Scaling::None => "none",
        Scaling::Weak => "weak",
        Scaling::Strong => "strong",
    }
}

/// Checks a value against the profile and the model list where its location is still known.
fn check_value(
    sweep: &LoadedSweep,
    src: &Source,
    profile: &Profile,
    at: &[Seg],
    key: &str,
    v: &toml::Value,
) -> Result<(), InputError> {
    match (key, v) {
        ("model", toml::Value::String(name)) if sweep.model(name).is_none() => {
            let mut known: Vec<String> = crate::model::presets()
                .into_iter()
                .map(|m| m.name)
                .collect();
            known.extend(sweep.spec.models.keys().cloned());
            return Err(src.error(
                at,
                format!(
                    "unknown model `{name}`; known models: {} (define others under [models.NAME])",
                    known.join(", ")
                ),
            ));
        }
        ("nodes", toml::Value::Integer(n)) if *n as u64 > profile.slurm.nodes as u64 => {
            return Err(src.error(
                at,
                format!(
                    "{n} nodes requested but cluster `{}` has {}",
                    profile.name, profile.slurm.nodes
                ),
            ));
        }
        ("gpus_per_node", toml::Value::Integer(n)) if *n as u64 > profile.gpu.per_node as u64 => {
            return Err(src.error(
                at,
                format!(
                    "{n} GPUs per node requested but cluster `{}` has {}",
                    profile.name, profile.gpu.per_node
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The sweep file's integers were range-checked where they were read: one that does not fit
/// here is not taken at all rather than wrapped.
fn get_u32(params: &IndexMap<String, Json>, k: &str) -> Option<u32> {
    params
        .get(k)
        .and_then(|v| v.as_u64())
        .and_then(|v| u32::try_from(v).ok())
}

/// What building one stage's points needs besides each point's axis values and repeat.
struct PointCtx<'a> {
    sweep: &'a LoadedSweep,
    src: &'a Source<'a>,
    profile: &'a Profile,
    stage: &'a StageCtx<'a>,
    derive: &'a [(String, minijinja::Expression<'a, 'a>)],
    excl: &'a [Option<minijinja::Expression<'a, 'a>>],
}

/// The batch arithmetic's inputs, as given or defaulted.
struct BatchInputs {
    dp: u32,
    micro: Option<u32>,
    accum: Option<u32>,
    global: Option<u64>,
}

impl PointCtx<'_> {
    /// An error about the point with these axis values, located at `at`.
    fn point_error(&self, axes: &IndexMap<String, Json>, at: &[Seg], msg: String) -> InputError {
        self.src.error(
            at,
            format!(
                "stage `{}` point ({}): {msg}",
                self.stage.spec.name,
                describe(axes)
            ),
        )
    }

    /// An error in the point's arithmetic, located at the stage's name.
    fn overflow(&self, axes: &IndexMap<String, Json>, msg: String) -> InputError {
        self.point_error(axes, &path!["stage", self.stage.index, "name"], msg)
    }

    /// Builds one point; `Ok(Err(reason))` means the point is excluded.
    fn build_point(
        &self,
        axes: &IndexMap<String, Json>,
        repeat: u32,
    ) -> Result<Result<Point, String>, InputError> {
        let stage = self.stage.spec;
        let mut params = self.stage.base.clone();
        for (k, v) in axes {
            params.insert(k.clone(), v.clone());
        }
        let model = match params.get("model").and_then(|v| v.as_str()) {
            Some(name) => self.sweep.model(name),
            None => None,
        };
        let batch = match self.batch(axes, &params, model.as_ref())? {
            Ok(b) => b,
            Err(reason) => return Ok(Err(reason)),
        };
        insert_batch_params(&mut params, &batch);
        params.insert("stage".into(), stage.name.clone().into());
        params.insert("repeat".into(), repeat.into());
        if let Some(reason) = self.derive_and_exclude(axes, &mut params, model.as_ref())? {
            return Ok(Err(reason));
        }
        if let Some(reason) = values_exclusion(&self.stage.rules, &params) {
            return Ok(Err(reason));
        }
        let env = self.job_env(&params);
        let (slurm, time_limit_min) = self.slurm_options()?;
        let id = job_id(&stage.name, axes, repeat, stage.repeats > 1, model.as_ref());
        Ok(Ok(Point {
            id,
            stage: stage.name.clone(),
            template: stage.template.clone(),
            repeat,
            scaling: stage.scaling,
            axes: axes.clone(),
            params,
            env,
            model,
            batch,
            slurm,
            after: stage.after_names(),
            dependency: stage.dependency,
            time_limit_min,
        }))
    }

    /// The point's shape and batch under the stage's scaling; `Ok(Err(reason))` where an
    /// inexact strong-scaling point is to be excluded.
    fn batch(
        &self,
        axes: &IndexMap<String, Json>,
        params: &IndexMap<String, Json>,
        model: Option<&ModelShape>,
    ) -> Result<Result<Batch, String>, InputError> {
        let si = self.stage.index;
        let nodes = get_u32(params, "nodes").unwrap_or(1);
        let gpn = get_u32(params, "gpus_per_node").unwrap_or(self.profile.gpu.per_node);
        let tp = get_u32(params, "tensor_parallel").unwrap_or(1);
        let pp = get_u32(params, "pipeline_parallel").unwrap_or(1);
        let gpus = nodes.checked_mul(gpn).ok_or_else(|| {
            self.overflow(
                axes,
                format!("{nodes} nodes x {gpn} GPUs per node is out of range"),
            )
        })?;
        let model_parallel = tp.checked_mul(pp).filter(|&m| m > 0).ok_or_else(|| {
            self.overflow(
                axes,
                format!("tensor_parallel {tp} x pipeline_parallel {pp} is out of range"),
            )
        })?;
        if !gpus.is_multiple_of(model_parallel) {
            return Err(self.point_error(
                axes,
                &path!["stage", si, "name"],
                format!(
                    "{gpus} GPUs are not divisible by tensor_parallel x pipeline_parallel = {}",
                    model_parallel
                ),
            ));
        }
        let seq_len = get_u32(params, "seq_len").or(model.map(|m| m.seq_len));
        let mut b = BatchInputs {
            dp: gpus / model_parallel,
            micro: get_u32(params, "micro_batch"),
            accum: get_u32(params, "grad_accum"),
            global: params.get("global_batch").and_then(|v| v.as_u64()),
        };
        match self.stage.spec.scaling {
            Scaling::Strong => match self.strong_accum(axes, &b)? {
                Ok(a) => b.accum = Some(a),
                Err(reason) => return Ok(Err(reason)),
            },
            Scaling::Weak | Scaling::None => b.global = self.weak_global(axes, &b)?,
        }
        let tokens = match (b.global, seq_len) {
            (Some(g), Some(s)) => Some(
                g.checked_mul(u64::from(s))
                    .filter(|&x| x <= i64::MAX as u64)
                    .ok_or_else(|| {
                        self.overflow(
                            axes,
                            format!(
                                "tokens per step, global_batch {g} x seq_len {s}, is out of range"
                            ),
                        )
                    })?,
            ),
            _ => None,
        };
        Ok(Ok(Batch {
            nodes,
            gpus_per_node: gpn,
            gpus,
            tensor_parallel: tp,
            pipeline_parallel: pp,
            dp: b.dp,
            micro_batch: b.micro,
            grad_accum: b.accum,
            global_batch: b.global,
            seq_len,
            tokens_per_step: tokens,
        }))
    }

    /// Strong scaling: the accumulation steps that make up the global batch; `Ok(Err(reason))`
    /// where it is no whole multiple and the stage excludes such points.
    fn strong_accum(
        &self,
        axes: &IndexMap<String, Json>,
        b: &BatchInputs,
    ) -> Result<Result<u32, String>, InputError> {
        let stage = self.stage.spec;
        let dp = b.dp;
        let (g, m) = (b.global.unwrap_or(0), b.micro.unwrap_or(1) as u64);
        let per_step = m.checked_mul(u64::from(dp)).ok_or_else(|| {
            self.overflow(
                axes,
                format!("micro_batch {m} x {dp} data-parallel ranks is out of range"),
            )
        })?;
        if g % per_step != 0 || g < per_step {
            let msg = format!(
                "global_batch {g} is not a whole multiple of micro_batch {m} x {dp} data-parallel ranks (= {per_step})"
            );
            return match stage.on_inexact {
                Inexact::Error => Err(self.point_error(
                    axes,
                    &path!["stage", self.stage.index, "scaling"],
                    format!("{msg}; set on_inexact = \"exclude\" to drop such points"),
                )),
                Inexact::Exclude => Ok(Err(msg)),
            };
        }
        let accum = u32::try_from(g / per_step).map_err(|_| {
            self.overflow(axes, format!(
                "global_batch {g} / (micro_batch {m} x {dp} ranks) = {} accumulation steps is out of range",
                g / per_step
            ))
        })?;
        Ok(Ok(accum))
    }

    /// Weak scaling (or none): the global batch the micro batch and accumulation make, checked
    /// against one given.
    fn weak_global(
        &self,
        axes: &IndexMap<String, Json>,
        b: &BatchInputs,
    ) -> Result<Option<u64>, InputError> {
        let (Some(m), Some(a)) = (b.micro, b.accum) else {
            return Ok(b.global);
        };
        let dp = b.dp;
        let g = u64::from(m)
            .checked_mul(u64::from(a))
            .and_then(|x| x.checked_mul(u64::from(dp)))
            .filter(|&x| x <= i64::MAX as u64)
            .ok_or_else(|| {
                self.overflow(axes, format!(
                    "the global batch micro_batch {m} x grad_accum {a} x {dp} data-parallel ranks is out of range"
                ))
            })?;
        if let Some(given) = b.global
            && given != g
        {
            return Err(self.point_error(
                axes,
                &path!["stage", self.stage.index, "name"],
                format!(
                    "global_batch {given} contradicts micro_batch {m} x grad_accum {a} x {dp} data-parallel ranks = {g}"
                ),
            ));
        }
        Ok(Some(g))
    }

    /// Evaluates the stage's derived parameters into `params`, then its expression exclusions;
    /// returns the reason where one excludes the point.
    fn derive_and_exclude(
        &self,
        axes: &IndexMap<String, Json>,
        params: &mut IndexMap<String, Json>,
        model: Option<&ModelShape>,
    ) -> Result<Option<String>, InputError> {
        let si = self.stage.index;
        if self.derive.is_empty() && self.excl.iter().all(|e| e.is_none()) {
            return Ok(None);
        }
        let mut ctxv = params.clone();
        if let Some(m) = model {
            ctxv.insert(
                "shape".into(),
                serde_json::to_value(m).unwrap_or(Json::Null),
            );
        }
        for (k, expr) in self.derive {
            let at = path!["stage", si, "derive", k.as_str()];
            let v = expr
                .eval(minijinja::Value::from(minijinja::value::Serde(&ctxv)))
                .map_err(|e| {
                    self.point_error(axes, &at, format!("cannot evaluate: {}", expr_err(&e)))
                })?;
            let j = serde_json::to_value(&v).unwrap_or(Json::Null);
            if let Some(m) = crate::spec::typed_param_error(k, &j) {
                return Err(self.point_error(axes, &at, format!("derived value: {m}")));
            }
            if let Json::String(text) = &j
                && let Some(m) = crate::values::control_error(text)
            {
                return Err(self.point_error(axes, &at, format!("derived value: {m}")));
            }
            ctxv.insert(k.clone(), j.clone());
            params.insert(k.clone(), j);
        }
        for (rule, expr) in self.stage.rules.iter().zip(self.excl) {
            if let (Rule::Expr(j, text), Some(expr)) = (rule, expr) {
                let v = expr
                    .eval(minijinja::Value::from(minijinja::value::Serde(&ctxv)))
                    .map_err(|e| {
                        self.point_error(
                            axes,
                            &path!["stage", si, "exclude", *j],
                            format!("cannot evaluate: {}", expr_err(&e)),
                        )
                    })?;
                if v.is_true() {
                    return Ok(Some(format!("exclude[{j}]: {text}")));
                }
            }
        }
        Ok(None)
    }

    /// The job's environment: the profile's (`[network]`, then `[env]`), the sweep's, the stage's, then upper-case params.
    fn job_env(&self, params: &IndexMap<String, Json>) -> IndexMap<String, String> {
        let mut env: IndexMap<String, String> = self.profile.network.env().into_iter().collect();
        env.extend(self.profile.env.clone());
        for (k, v) in self.sweep.spec.env.iter().chain(self.stage.spec.env.iter()) {
            env.insert(k.clone(), json_short(&toml_to_json(v)));
        }
        for (k, v) in params {
            if crate::profile::is_env_name(k) && k.chars().all(|c| !c.is_ascii_lowercase()) {
                env.insert(k.clone(), json_short(v));
            }
        }
        env
    }

    /// The stage's Slurm options over the sweep's, the profile filling what neither gives, and
    /// the time limit in minutes.
    fn slurm_options(&self) -> Result<(SlurmSpec, Option<u64>), InputError> {
        let (stage, profile) = (self.stage.spec, self.profile);
        let mut slurm = stage.slurm.over(&self.sweep.spec.slurm);
        slurm.partition = slurm.partition.or_else(|| profile.slurm.partition.clone());
        slurm.account = slurm.account.or_else(|| profile.slurm.account.clone());
        slurm.qos = slurm.qos.or_else(|| profile.slurm.qos.clone());
        let time_limit_min = match &slurm.time {
            Some(t) => Some(parse_time_limit(t).map_err(|m| {
                if stage.slurm.time.is_some() {
                    self.src
                        .error(&path!["stage", self.stage.index, "slurm", "time"], m)
                } else {
                    self.src.error(&path!["slurm", "time"], m)
                }
            })?),
            None => None,
        };
        Ok((slurm, time_limit_min))
    }
}

/// The parameters the batch arithmetic computed, for templates and derived expressions.
fn insert_batch_params(params: &mut IndexMap<String, Json>, b: &Batch) {
    params.insert("nodes".into(), b.nodes.into());
    params.insert("gpus_per_node".into(), b.gpus_per_node.into());
    params.insert("gpus".into(), b.gpus.into());
    params.insert("world_size".into(), b.gpus.into());
    params.insert("dp".into(), b.dp.into());
    if let Some(a) = b.grad_accum {
        params.insert("grad_accum".into(), a.into());
    }
    if let Some(g) = b.global_batch {
        params.insert("global_batch".into(), g.into());
    }
    if let Some(s) = b.seq_len {
        params.insert("seq_len".into(), s.into());
    }
    if let Some(t) = b.tokens_per_step {
        params.insert("tokens_per_step".into(), t.into());
    }
}

/// The first exclusion by values that the point's parameters all match, as its reason.
fn values_exclusion(rules: &[Rule], params: &IndexMap<String, Json>) -> Option<String> {
    for rule in rules {
        if let Rule::Values(j, kv) = rule
            && kv
                .iter()
                .all(|(k, v)| params.get(k).is_some_and(|p| json_eq(p, v)))
        {
            let vals: Vec<String> = kv
                .iter()
                .map(|(k, v)| format!("{k}={}", json_short(v)))
                .collect();
            return Some(format!("exclude[{j}]: {}", vals.join(", ")));
        }
    }
    None
}

/// FNV-1a: a hash whose value never changes between builds or platforms, so job ids are stable.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn short_num(v: &Json) -> String {
    if let Some(f) = v.as_f64() {
        if f.fract() == 0.0 && f.abs() >= 1e6 {
            let mut m = f.abs();
            let mut e = 0;
            while m >= 10.0 && (m / 10.0).fract() == 0.0 {
                m /= 10.0;
                e += 1;
            }
            if e >= 3 {
                return format!("{}{m}e{e}", if f < 0.0 { "-" } else { "" });
            }
        }
        if let Some(i) = v.as_i64() {
            return i.to_string();
        }
        return f.to_string();
    }
    json_short(v)
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
        .collect()
}

fn abbrev(key: &str, v: &Json, model: Option<&ModelShape>) -> String {
    let val = short_num(v);
    match key {
        "model" => {
            let name = model.map(|m| m.name.as_str()).unwrap_or(val.as_str());
            let n = crate::model::canonical_name(name);
            clean(n.strip_prefix("llama2-").unwrap_or(&n))
        }
        "nodes" => format!("n{val}"),
        "gpus_per_node" => format!("g{val}"),
        "micro_batch" => format!("mb{val}"),
        "grad_accum" => format!("ga{val}"),
        "global_batch" => format!("gb{val}"),
        "zero_stage" => format!("z{val}"),
        "seq_len" => format!("s{val}"),
        "tensor_parallel" => format!("tp{val}"),
        "pipeline_parallel" => format!("pp{val}"),
        "activation_checkpointing" => {
            if v.as_bool() == Some(true) {
                "ac".into()
            } else {
                "noac".into()
            }
        }
        "collective" => clean(&val),
        _ => {
            let initials: String = key
                .split(['_', '.', '-'])
                .filter_map(|w| w.chars().next())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            format!("{initials}{}", clean(&val))
        }
    }
}

/// A readable, stable job id: stage, short axis values, and a hash of the exact point.
pub(crate) fn job_id(
    stage: &str,
    axes: &IndexMap<String, Json>,
    repeat: u32,
    show_repeat: bool,
    model: Option<&ModelShape>,
) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(stage);
    for (k, v) in axes {
        key.push('\0');
        key.push_str(k);
        key.push('=');
        key.push_str(&v.to_string());
    }
    let _ = write!(key, "\0repeat={repeat}");
    let hash = fnv1a(key.as_bytes());
    let mut readable: String = stage
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    for (k, v) in axes {
        let a = abbrev(k, v, model);
        if !a.is_empty() {
            readable.push('-');
            readable.push_str(&a);
        }
    }
    if show_repeat {
        let _ = write!(readable, "-r{repeat}");
    }
    if readable.len() > 56 {
        readable.truncate(56);
    }
    format!("{}-{:08x}", readable.trim_end_matches('-'), hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits() {
        assert_eq!(parse_time_limit("30").unwrap(), 30);
        assert_eq!(parse_time_limit("01:30:00").unwrap(), 90);
        assert_eq!(parse_time_limit("1-00:00:00").unwrap(), 1440);
        assert_eq!(parse_time_limit("2-3").unwrap(), 2 * 1440 + 180);
        assert_eq!(parse_time_limit("0:30").unwrap(), 1);
        assert!(parse_time_limit("1h").is_err());
        assert!(parse_time_limit("0").is_err());
    }

    #[test]
    fn job_ids_are_stable_and_readable() {
        let mut axes = IndexMap::new();
        axes.insert("model".to_string(), Json::from("llama2-7b"));
        axes.insert("nodes".to_string(), Json::from(2));
        axes.insert("micro_batch".to_string(), Json::from(16));
        let m = crate::model::preset("llama2-7b");
        let id = job_id("p2-7b", &axes, 0, false, m.as_ref());
        assert!(id.starts_with("p2-7b-7b-n2-mb16-"), "{id}");
        // The hash is part of the contract: a changed hash would orphan submitted jobs.
        assert_eq!(id, job_id("p2-7b", &axes, 0, false, m.as_ref()));
        assert_ne!(id, job_id("p2-7b", &axes, 1, false, m.as_ref()));
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}
