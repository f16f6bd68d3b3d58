//! Rendering: job scripts from minijinja templates (built-in defaults, overridable by a user
//! directory), with strict undefined variables and a shell-quoting filter.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::{Value as Json, json};

use crate::expand::Point;
use crate::profile::{Profile, cpu_mask_hex, format_cpulist};

/// Templates compiled into the binary: what `sweep` uses when no user directory overrides them.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "deepspeed-train.sbatch.j2",
        include_str!("../job-templates/deepspeed-train.sbatch.j2"),
    ),
    (
        "nccl-tests.sbatch.j2",
        include_str!("../job-templates/nccl-tests.sbatch.j2"),
    ),
    (
        "cpu-smoke.sbatch.j2",
        include_str!("../job-templates/cpu-smoke.sbatch.j2"),
    ),
    (
        "preflight.sbatch.j2",
        include_str!("../job-templates/preflight.sbatch.j2"),
    ),
    (
        "nccl-pairs.sbatch.j2",
        include_str!("../job-templates/nccl-pairs.sbatch.j2"),
    ),
    (
        "common/telemetry.j2",
        include_str!("../job-templates/common/telemetry.j2"),
    ),
    (
        "common/header.j2",
        include_str!("../job-templates/common/header.j2"),
    ),
    (
        "common/markers.j2",
        include_str!("../job-templates/common/markers.j2"),
    ),
    (
        "common/provenance.j2",
        include_str!("../job-templates/common/provenance.j2"),
    ),
    (
        "common/rank-wrapper.j2",
        include_str!("../job-templates/common/rank-wrapper.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{name}`: {message}")]
    NotFound { name: String, message: String },
    #[error("{template}:{line}: {message}")]
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

    pub fn lookup(&self, name: &str) -> Option<(String, String)> {
        if name.contains("..") {
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
    pub fn list(&self) -> Vec<(String, String)> {
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

    pub fn environment(&self) -> Environment<'static> {
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
        env.add_filter("sq", shell_quote_filter);
        env.add_filter("cpu_mask", cpu_mask_filter);
        let src = self.clone();
        env.set_loader(move |name| Ok(src.lookup(name).map(|(t, _)| t)));
        env
    }
}

/// Quotes a value for POSIX shells: the result is one word whatever the value holds.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn shell_quote_filter(v: Value) -> Result<String, minijinja::Error> {
    if v.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "undefined value passed to `sq`",
        ));
    }
    let s = if let Some(s) = v.as_str() {
        s.to_string()
    } else {
        v.to_string()
    };
    if s.contains('\0') {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "a NUL byte cannot be passed to a shell",
        ));
    }
    Ok(shell_quote(&s))
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

/// The Slurm job name: carries campaign and job id so Slurm itself tells which jobs are ours.
pub fn slurm_job_name(campaign: &str, job_id: &str) -> String {
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
    pub fn context(&self, campaign: &str, p: &Point, profile: &Profile, ds_config: bool) -> Value {
        let gpn = p.batch.gpus_per_node as usize;
        let shared = {
            let mut cache = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .entry((profile.name.clone(), gpn))
                .or_insert_with(|| profile_vars(profile, gpn))
                .clone()
        };
        let cpus_per_task = (0..gpn)
            .map(|g| profile.cpus_of(g).len())
            .min()
            .unwrap_or(1)
            .max(1);
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

    pub fn render_json(&self, template: &str, ctx: &Json) -> Result<String, RenderError> {
        self.render(template, Value::from(minijinja::value::Serde(ctx)))
    }

    pub fn render(&self, template: &str, ctx: Value) -> Result<String, RenderError> {
        let tmpl = self.env.get_template(template).map_err(|e| match e.kind() {
            minijinja::ErrorKind::TemplateNotFound => RenderError::NotFound {
                name: template.to_string(),
                message: "not found in the template directories or the built-in set (see `sweep templates list`)".into(),
            },
            _ => located(&e, &ctx),
        })?;
        tmpl.render(&ctx).map_err(|e| located(&e, &ctx))
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
    if let Some(d) = inner.detail() {
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
pub fn check_with_bash(script: &str) -> Result<(), String> {
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

pub fn templates_dir_of(sweep_file: &Path, dir: &str) -> PathBuf {
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

    #[test]
    fn shell_quote_makes_one_word() {
        assert_eq!(shell_quote("abc-1.0"), "abc-1.0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
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
