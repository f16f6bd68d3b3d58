//! Rendering: job scripts from minijinja templates (built-in defaults, overridable by a user
//! directory), with strict undefined variables. Every `{{ value }}` is shell-quoted by default
//! (auto-escape with a shell formatter): a template opts out explicitly with `|safe` or
//! `{% autoescape false %}`, so forgetting a filter can never let a value run as a command.

pub mod dsconfig;

use std::path::{Path, PathBuf};

use std::borrow::Cow;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde_json::{Value as Json, json};

use crate::expand::Point;
use crate::profile::{Profile, cpu_mask_hex, format_cpulist};
pub(crate) use crate::values::template_name_error;

/// Templates compiled into the binary: what `sweep` uses when no user directory overrides them.
const BUILTIN: &[(&str, &str)] = &[
    (
        "deepspeed-train.sbatch.j2",
        include_str!("../../job-templates/deepspeed-train.sbatch.j2"),
    ),
    (
        "nccl-tests.sbatch.j2",
        include_str!("../../job-templates/nccl-tests.sbatch.j2"),
    ),
    (
        "cpu-smoke.sbatch.j2",
        include_str!("../../job-templates/cpu-smoke.sbatch.j2"),
    ),
    (
        "preflight.sbatch.j2",
        include_str!("../../job-templates/preflight.sbatch.j2"),
    ),
    (
        "nccl-pairs.sbatch.j2",
        include_str!("../../job-templates/nccl-pairs.sbatch.j2"),
    ),
    (
        "common/telemetry.j2",
        include_str!("../../job-templates/common/telemetry.j2"),
    ),
    (
        "common/header.j2",
        include_str!("../../job-templates/common/header.j2"),
    ),
    (
        "common/markers.j2",
        include_str!("../../job-templates/common/markers.j2"),
    ),
    (
        "common/provenance.j2",
        include_str!("../../job-templates/common/provenance.j2"),
    ),
    (
        "common/rank-wrapper.j2",
        include_str!("../../job-templates/common/rank-wrapper.j2"),
    ),
];

/// Instructions one render may execute: the built-in templates need well under a hundredth of
/// it; a template that loops away (two nested `range(100000)`) stops with a clear error.
const TEMPLATE_FUEL: u64 = 20_000_000;
/// Largest script one render may produce, so that a runaway template cannot fill memory.
const MAX_RENDERED_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("template `{name}`: {message}")]
    NotFound { name: String, message: String },
    #[error("{template}{}: {message}", if *line > 0 { format!(":{line}") } else { String::new() })]
    Template {
        template: String,
        line: usize,
        message: String,
    },
}

/// Where templates come from: user directories first (a file with the same name wins), then
/// the built-in set.
#[derive(Debug, Clone, Default)]
pub struct TemplateSource {
    pub dirs: Vec<PathBuf>,
}

impl TemplateSource {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        TemplateSource { dirs }
    }

    /// Like `new`, but a directory that does not exist is an error: a typo in `--templates`
    /// must not quietly render with the built-in set instead of the site's.
    pub(crate) fn existing(dirs: Vec<PathBuf>) -> anyhow::Result<Self> {
        if let Some(d) = dirs.iter().find(|d| !d.is_dir()) {
            anyhow::bail!("templates directory {}: no such directory", d.display());
        }
        Ok(TemplateSource { dirs })
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<(String, String)> {
        if template_name_error(name).is_some() {
            return None;
        }
        for d in &self.dirs {
            let p = d.join(name);
            if let Ok(text) = std::fs::read_to_string(&p) {
                return Some((text, p.display().to_string()));
            }
        }
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (t.to_string(), "built-in".to_string()))
    }

    /// Every template name visible, with where it comes from.
    pub(crate) fn list(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for d in &self.dirs {
            for e in walkdir::WalkDir::new(d).into_iter().filter_map(|e| e.ok()) {
                if e.file_type().is_file()
                    && let Ok(rel) = e.path().strip_prefix(d)
                {
                    let name = rel.to_string_lossy().to_string();
                    if name.ends_with(".j2") && !out.iter().any(|(n, _)| *n == name) {
                        out.push((name, e.path().display().to_string()));
                    }
                }
            }
        }
        for (n, _) in BUILTIN {
            if !out.iter().any(|(x, _)| x == n) {
                out.push((n.to_string(), "built-in".into()));
            }
        }
        out.sort();
        out
    }

    pub(crate) fn environment(&self) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // The error that names an undefined variable needs the template's source, which
        // minijinja keeps only in debug mode (by default: debug builds alone, so the release
        // binary users run said just "undefined value").
        env.set_debug(true);
        // Shell scripts read best with Jinja's block lines removed entirely.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_auto_escape_callback(|_| AutoEscape::Custom(Cow::Borrowed("shell")));
        env.set_formatter(shell_formatter);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_filter("sq", shell_quote_filter);
        env.add_filter("cpu_mask", cpu_mask_filter);
        let src = self.clone();
        env.set_loader(move |name| Ok(src.lookup(name).map(|(t, _)| t)));
        env
    }
}

/// Quotes a value for POSIX shells: the result is one word whatever the value holds.
pub(crate) fn shell_quote(s: &str) -> String {
    shell_word(s).into_owned()
}

/// `shell_quote` that borrows a value already safe as it is (most values of a job script).
fn shell_word(s: &str) -> Cow<'_, str> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b))
    {
        return Cow::Borrowed(s);
    }
    // A backslash is written outside the quotes (`'\\'`): the same word to a POSIX shell, and to
    // sbatch, whose `#SBATCH` reader takes a backslash as an escape even inside quotes.
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str(r"'\''"),
            '\\' => out.push_str(r"'\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

/// A value's text for a script, refused when it holds a control character: a newline would end
/// an `#SBATCH` line or a comment and start a command, whatever the quoting.
fn script_text(v: &Value, what: &str) -> Result<String, minijinja::Error> {
    if v.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            format!("undefined value passed to {what}"),
        ));
    }
    let s = match v.as_str() {
        Some(s) => s.to_string(),
        None => v.to_string(),
    };
    refuse_control(&s)?;
    Ok(s)
}

/// A newline would end an `#SBATCH` line or a comment and start a command, whatever the
/// quoting: no control character reaches a script.
fn refuse_control(s: &str) -> Result<(), minijinja::Error> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!(
                "value {:?} holds the control character {c:?}, which cannot be put into a job script safely",
                truncate_for_message(s)
            ),
        )),
        None => Ok(()),
    }
}

fn truncate_for_message(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Quotes explicitly; the result is marked safe so that auto-escaping does not quote it twice.
fn shell_quote_filter(v: Value) -> Result<Value, minijinja::Error> {
    let s = script_text(&v, "`sq`")?;
    Ok(Value::from_safe_string(shell_quote(&s)))
}

thread_local! {
    /// Bytes the formatter wrote in the render under way on this thread (a render runs on one
    /// thread from start to end; `Renderer::render` resets it). Captured blocks (`{% set %}`)
    /// never reach the capped writer, so a runaway loop inside one is stopped by this count.
    static FORMATTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Auto-escape for scripts: what a template prints is one shell word unless it was marked safe
/// (`|safe`, `|sq`) or printed inside `{% autoescape false %}`. Every value of every job goes
/// through here, so it borrows where it can and allocates only to quote.
fn shell_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "undefined value passed to a template",
        ));
    }
    let owned;
    // Booleans as the shell spells them (minijinja would print Python's `True`).
    let text: &str = if value.kind() == minijinja::value::ValueKind::Bool {
        if value.is_true() { "true" } else { "false" }
    } else if let Some(s) = value.as_str() {
        s
    } else {
        owned = value.to_string();
        &owned
    };
    let quoted;
    let text = if value.is_safe() {
        text
    } else {
        refuse_control(text)?;
        if matches!(state.auto_escape(), AutoEscape::None) {
            text
        } else {
            quoted = shell_word(text);
            &quoted
        }
    };
    let written = FORMATTED.with(|n| {
        let w = n.get().saturating_add(text.len());
        n.set(w);
        w
    });
    if written > MAX_RENDERED_BYTES {
        return Err(too_large());
    }
    out.write_str(text)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
}

fn too_large() -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!(
            "the rendered script would exceed {} MiB",
            MAX_RENDERED_BYTES >> 20
        ),
    )
}

/// Collects a render, refusing to grow past `MAX_RENDERED_BYTES`.
#[derive(Default)]
struct CappedBuf {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered script too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn cpu_mask_filter(v: String) -> Result<String, minijinja::Error> {
    let cpus = crate::profile::parse_cpulist(&v)
        .map_err(|m| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, m))?;
    Ok(cpu_mask_hex(&cpus))
}

/// The profile-dependent variables for jobs with `gpn` GPUs per node: the same for every point
/// of that shape, so they are built once and shared.
fn profile_vars(profile: &Profile, gpn: usize) -> Value {
    let affinity: Vec<Json> = profile
        .gpu_map
        .iter()
        .take(gpn)
        .enumerate()
        .map(|(lr, g)| {
            let cpus = profile.cpus_of(g.gpu as usize);
            json!({
                "local_rank": lr,
                "gpu": g.gpu,
                "numa": g.numa,
                "cpus": format_cpulist(&cpus),
                "cpu_mask": cpu_mask_hex(&cpus),
                "nic": g.nic.clone().unwrap_or_default(),
            })
        })
        .collect();
    let masks: Vec<String> = affinity
        .iter()
        .filter_map(|a| a["cpu_mask"].as_str().map(String::from))
        .collect();
    let gpus: Vec<String> = affinity.iter().map(|a| a["gpu"].to_string()).collect();
    Value::from(minijinja::value::Serde(json!({
        "profile": profile,
        "affinity": affinity,
        "cpu_bind": format!("mask_cpu:{}", masks.join(",")),
        "gpu_bind": format!("map_gpu:{}", gpus.join(",")),
    })))
}

/// `--cpus-per-task` for ranks of `gpn` GPUs per node: the logical CPUs of a rank's `gpu_map`
/// entry (the fewest of any rank). `cpus` lists hardware threads, SMT siblings included (the one
/// CPU convention, README "Cluster profile reference"), and Slurm counts CPUs as threads on nodes
/// of `ThreadsPerCore=2`: so this is cores x `threads_per_core`, and with `srun -c` implying
/// `--exact` (Slurm 21.08+) the step's CPUs are exactly the ones the masks name.
pub(crate) fn cpus_per_task(profile: &Profile, gpn: usize) -> usize {
    (0..gpn)
        .map(|g| profile.cpus_of(g).len())
        .min()
        .unwrap_or(1)
        .max(1)
}

/// The Slurm job name: carries campaign and job id so Slurm itself tells which jobs are ours.
pub(crate) fn slurm_job_name(campaign: &str, job_id: &str) -> String {
    format!("{campaign}:{job_id}")
}

pub struct Renderer {
    env: Environment<'static>,
    shared: std::sync::Mutex<std::collections::HashMap<(String, usize), Value>>,
}

impl Renderer {
    pub fn new(source: &TemplateSource) -> Self {
        Renderer {
            env: source.environment(),
            shared: Default::default(),
        }
    }

    /// The variables a job template sees (documented in the README's template reference).
    pub(crate) fn context(
        &self,
        campaign: &str,
        p: &Point,
        profile: &Profile,
        ds_config: bool,
    ) -> Value {
        let gpn = p.batch.gpus_per_node as usize;
        let shared = {
            let mut cache = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .entry((profile.name.clone(), gpn))
                .or_insert_with(|| profile_vars(profile, gpn))
                .clone()
        };
        let cpus_per_task = cpus_per_task(profile, gpn);
        let gpus_flag = if profile.slurm.gpus_per_node_flag {
            format!("--gpus-per-node={gpn}")
        } else {
            format!("--gres=gpu:{gpn}")
        };
        let own = json!({
            "sweep": { "version": env!("CARGO_PKG_VERSION") },
            "campaign": { "name": campaign },
            "job": {
                "id": p.id,
                "name": slurm_job_name(campaign, &p.id),
                "stage": p.stage,
                "repeat": p.repeat,
                "template": p.template,
            },
            "point": p.params,
            "axes": p.axes,
            "model": p.model.as_ref().map(|m| {
                let mut v = serde_json::to_value(m).unwrap_or(Json::Null);
                v["kv_heads"] = json!(m.kv_heads());
                v["params"] = json!(m.params());
                v
            }),
            "batch": p.batch,
            "slurm": {
                "partition": p.slurm.partition,
                "account": p.slurm.account,
                "qos": p.slurm.qos,
                "time": p.slurm.time,
                "exclusive": p.slurm.exclusive.unwrap_or(false),
                "constraint": p.slurm.constraint,
                "reservation": p.slurm.reservation,
                "mem": p.slurm.mem,
                "signal_before_s": p.slurm.signal_before_s,
                "extra": p.slurm.extra,
                "ntasks_per_node": gpn,
                "cpus_per_task": cpus_per_task,
                "gpus_flag": gpus_flag,
                "mpi": profile.slurm.mpi,
            },
            "env": p.env,
            "files": {
                "point": "point.json",
                "ds_config": if ds_config { Json::from("ds_config.json") } else { Json::Null },
            },
        });
        minijinja::context! { ..Value::from(minijinja::value::Serde(own)), ..shared }
    }

    /// Renders with a JSON context (the tests' way of giving one).
    #[cfg(test)]
    pub(crate) fn render_json(&self, template: &str, ctx: &Json) -> Result<String, RenderError> {
        self.render(template, Value::from(minijinja::value::Serde(ctx)))
    }

    pub(crate) fn render(&self, template: &str, ctx: Value) -> Result<String, RenderError> {
        let tmpl = self.env.get_template(template).map_err(|e| match e.kind() {
            minijinja::ErrorKind::TemplateNotFound => RenderError::NotFound {
                name: template.to_string(),
                message: "not found in the template directories or the built-in set (see `sweep templates list`)".into(),
            },
            _ => located(&e, &ctx),
        })?;
        let mut buf = CappedBuf::default();
        FORMATTED.with(|n| n.set(0));
        let rendered = tmpl.render_captured_to(&ctx, &mut buf);
        if buf.overflowed {
            return Err(located(&too_large(), &ctx).named(template));
        }
        rendered.map_err(|e| located(&e, &ctx))?;
        String::from_utf8(buf.bytes).map_err(|_| RenderError::Template {
            template: template.to_string(),
            line: 0,
            message: "the rendered script is not UTF-8".into(),
        })
    }
}

/// Turns a minijinja error into `template:line: message`, naming the undefined variable.
fn located(e: &minijinja::Error, ctx: &Value) -> RenderError {
    // The innermost template (an included file) is where the error is.
    let mut err: &dyn std::error::Error = e;
    let mut inner = e;
    while let Some(src) = err.source() {
        if let Some(m) = src.downcast_ref::<minijinja::Error>() {
            inner = m;
        }
        err = src;
    }
    let template = inner.name().unwrap_or("?").to_string();
    let line = inner.line().unwrap_or(0);
    let mut message = inner.kind().to_string();
    if inner.kind() == minijinja::ErrorKind::OutOfFuel {
        message = format!(
            "the template ran past its limit of {TEMPLATE_FUEL} instructions (a loop that does not end, or one far too large for a job script)"
        );
    } else if let Some(d) = inner.detail() {
        message.push_str(": ");
        message.push_str(d);
    }
    if inner.kind() == minijinja::ErrorKind::UndefinedError
        && let (Some(src), Some(range)) = (inner.template_source(), inner.range())
        && let Some(expr) = src.get(range)
    {
        let missing = first_missing(expr, ctx).unwrap_or_else(|| expr.trim().to_string());
        message = format!("undefined variable `{missing}` (in `{}`)", expr.trim());
    }
    RenderError::Template {
        template,
        line,
        message,
    }
}

impl RenderError {
    /// Names the template when the error came from outside any (the output cap).
    fn named(self, name: &str) -> RenderError {
        match self {
            RenderError::Template {
                template,
                line,
                message,
            } if template == "?" => RenderError::Template {
                template: name.to_string(),
                line,
                message,
            },
            other => other,
        }
    }
}

/// The first dotted name in `expr` that the context cannot resolve.
fn first_missing(expr: &str, ctx: &Value) -> Option<String> {
    let re = regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*").ok()?;
    for m in re.find_iter(expr) {
        let name = m.as_str();
        if matches!(
            name,
            "true"
                | "false"
                | "none"
                | "is"
                | "defined"
                | "not"
                | "and"
                | "or"
                | "in"
                | "if"
                | "else"
        ) {
            continue;
        }
        // Names after a `|` are filters, not variables.
        if expr[..m.start()].trim_end().ends_with('|') {
            continue;
        }
        let mut cur = ctx.clone();
        let mut resolved = String::new();
        for part in name.split('.') {
            match cur.get_attr(part).ok().filter(|v| !v.is_undefined()) {
                Some(v) => {
                    if !resolved.is_empty() {
                        resolved.push('.');
                    }
                    resolved.push_str(part);
                    cur = v;
                }
                None => {
                    return Some(if resolved.is_empty() {
                        part.to_string()
                    } else {
                        format!("{resolved}.{part}")
                    });
                }
            }
        }
    }
    None
}

/// A sample point for `templates check`: the first point of an embedded demo campaign.
pub(crate) fn check_with_bash(script: &str) -> Result<(), String> {
    let mut child = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run bash -n: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("bash -n: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("bash -n: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

pub(crate) fn templates_dir_of(sweep_file: &Path, dir: &str) -> PathBuf {
    let p = Path::new(dir);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        sweep_file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(file: &str) -> Profile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("slurm/clusters")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        Profile::parse(&path, &text).unwrap()
    }

    #[test]
    fn binding_under_one_and_two_threads_per_core() {
        // threads_per_core = 1: two cores a rank, `-c 2`, masks of those two CPUs.
        let local = profile("local.toml");
        assert_eq!(local.cpu.threads_per_core, 1);
        assert_eq!(cpus_per_task(&local, 8), 2);
        let v = profile_vars(&local, 8);
        let cpu_bind = v.get_attr("cpu_bind").unwrap().to_string();
        assert_eq!(
            cpu_bind,
            "mask_cpu:0x3,0xc,0x30,0xc0,0x300,0xc00,0x3000,0xc000"
        );
        // threads_per_core = 2: 14 cores a rank with their siblings = 28 CPUs (Slurm counts
        // hardware threads), and each mask covers both threads of every core.
        let smt = profile("fukushima-h200.toml");
        assert_eq!(smt.cpu.threads_per_core, 2);
        assert_eq!(cpus_per_task(&smt, 8), 28);
        assert_eq!(
            cpus_per_task(&smt, 8),
            14 * smt.cpu.threads_per_core as usize
        );
        let v = profile_vars(&smt, 8);
        let cpu_bind = v.get_attr("cpu_bind").unwrap().to_string();
        let masks: Vec<&str> = cpu_bind
            .strip_prefix("mask_cpu:")
            .unwrap()
            .split(',')
            .collect();
        assert_eq!(masks.len(), 8);
        let rank0 = u128::from_str_radix(masks[0].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(rank0.count_ones(), 28);
        assert_eq!(
            rank0,
            0x3fff | (0x3fff << 112),
            "cores 0-13 and their siblings 112-125"
        );
        let aff = v.get_attr("affinity").unwrap();
        let a7 = aff.get_item(&Value::from(7)).unwrap();
        assert_eq!(a7.get_attr("cpus").unwrap().to_string(), "98-111,210-223");
        // The same profile written in physical cores (the old convention) is caught.
        assert_eq!(smt.without_smt_siblings(), None);
        assert_eq!(local.without_smt_siblings(), None);
        let mut cores_only = smt.clone();
        cores_only.gpu_map[3].cpus = "42-55".into();
        assert_eq!(cores_only.without_smt_siblings(), Some(3));
        // The built-in launches no longer bind GPUs per rank (every rank sees the job's GPUs
        // and picks its own by LOCAL_RANK, so NCCL keeps peer access under ConstrainDevices).
        for t in ["nccl-tests", "deepspeed-train", "nccl-pairs", "cpu-smoke"] {
            let src = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("job-templates")
                    .join(format!("{t}.sbatch.j2")),
            )
            .unwrap();
            assert!(src.contains("--cpu-bind=verbose,{{ cpu_bind }}"), "{t}");
            assert!(!src.contains("--gpu-bind"), "{t}");
        }
    }

    #[test]
    fn shell_quote_makes_one_word() {
        assert_eq!(shell_quote("abc-1.0"), "abc-1.0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote(r"a\b"), r"'a'\\'b'");
        assert_eq!(shell_quote(r"\'"), r"''\\''\'''");
        // What bash makes of them: the value back, byte for byte.
        for v in [r"a\b", r"\'", r#"x'$(id)"\"`;|&#*?~ \\"#, "\\"] {
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(v)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), v);
        }
    }

    #[test]
    fn strict_undefined_names_template_line_and_variable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.j2"),
            "line one\necho {{ point.nodes }} {{ point.typo_var }}\n",
        )
        .unwrap();
        let r = Renderer::new(&TemplateSource::new(vec![dir.path().to_path_buf()]));
        let err = r
            .render_json("t.j2", &json!({"point": {"nodes": 2}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.j2:2"), "{err}");
        assert!(err.contains("point.typo_var"), "{err}");
    }

    #[test]
    fn user_directory_overrides_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("nccl-tests.sbatch.j2"),
            "custom {{ job.id }}\n",
        )
        .unwrap();
        let src = TemplateSource::new(vec![dir.path().to_path_buf()]);
        let r = Renderer::new(&src);
        assert_eq!(
            r.render_json("nccl-tests.sbatch.j2", &json!({"job": {"id": "x"}}))
                .unwrap(),
            "custom x\n"
        );
        let listed = src.list();
        let (_, from) = listed
            .iter()
            .find(|(n, _)| n == "nccl-tests.sbatch.j2")
            .unwrap();
        assert_ne!(from, "built-in");
    }
}
