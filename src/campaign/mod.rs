//! The campaign directory `sweep expand` writes: one directory per job (script, point,
//! DeepSpeed config), `jobs.csv`, the manifest later commands read, and provenance copies.

pub mod job_state;
pub mod layout;
pub mod state;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::expand::{Plan, Point, json_short};
use crate::profile::Profile;
use crate::render::{Renderer, slurm_job_name};
use crate::spec::{Dependency, LoadedSweep};
use crate::{dsconfig, render};

pub use crate::layout::MANIFEST;
pub(crate) const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub format: u32,
    pub campaign: String,
    pub sweep_file: String,
    pub profile: String,
    pub stages: Vec<ManifestStage>,
    pub jobs: Vec<ManifestJob>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestStage {
    pub name: String,
    pub template: String,
    pub after: Vec<String>,
    pub dependency: Dependency,
    /// Upstream stages whose kind of dependency is not `dependency`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kinds: std::collections::BTreeMap<String, Dependency>,
}

impl ManifestStage {
    /// The kind of dependency on upstream stage `after`.
    pub(crate) fn kind_of(&self, after: &str) -> Dependency {
        self.kinds.get(after).copied().unwrap_or(self.dependency)
    }

    /// `--dependency=` for Slurm ids by upstream stage: `afterok:1:2,afterany:3` (all must hold).
    pub(crate) fn describe(&self) -> String {
        self.after
            .iter()
            .map(|a| format!("{}:{a}", self.kind_of(a).as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestJob {
    pub id: String,
    pub stage: String,
    /// Relative to the campaign directory.
    pub dir: String,
    pub slurm_name: String,
    pub nodes: u32,
    pub gpus: u32,
    pub repeat: u32,
    pub time_limit_min: Option<u64>,
}

impl Manifest {
    pub(crate) fn load(dir: &Path) -> Result<Manifest> {
        let p = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "{} is not a campaign directory (no {MANIFEST}; run `sweep expand` first)",
                dir.display()
            )
        })?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: malformed manifest", p.display()))?;
        if m.format != FORMAT {
            bail!(
                "{}: manifest format {} is not supported by this sweep (expects {FORMAT})",
                p.display(),
                m.format
            );
        }
        // Later commands build paths from these (results/<campaign>, jobs/<id>): a manifest
        // edited by hand must not lead them out of their directories.
        if let Some(e) = crate::values::name_error(&m.campaign) {
            bail!("{}: campaign name `{}`: {e}", p.display(), m.campaign);
        }
        for j in &m.jobs {
            let id_ok = !j.id.is_empty()
                && !j.id.starts_with('.')
                && j.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !id_ok || j.dir != job_dir_rel(&j.id) {
                bail!(
                    "{}: job `{}` with directory `{}`: a job is jobs/<id>, its id a name",
                    p.display(),
                    j.id,
                    j.dir
                );
            }
        }
        Ok(m)
    }

    /// Each stage's position in the sweep file: submit and the local executor go stage by stage.
    pub(crate) fn stage_order(&self) -> HashMap<&str, usize> {
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct WriteReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Job directories present on disk that the sweep no longer produces.
    pub stale: Vec<String>,
}

pub(crate) fn job_dir_rel(id: &str) -> String {
    format!("jobs/{id}")
}

/// Ids of jobs the campaign state says were submitted (their files must not change under them).
/// A state that cannot be read is an error: taking it for "nothing submitted" would let a
/// re-expand rewrite the scripts of running jobs.
pub(crate) fn submitted_ids(dir: &Path) -> Result<HashSet<String>> {
    let st = crate::state::State::load(dir)?;
    Ok(st
        .jobs
        .into_iter()
        .filter(|(_, s)| s.slurm_id.is_some() || s.pending_submit.is_some())
        .map(|(k, _)| k)
        .collect())
}

/// What `expand` may write into `out`: nothing but a new or empty directory, or this campaign's
/// own directory, unless `force` (then the list says what it replaces). Checked before anything
/// is written.
pub(crate) fn check_out_dir(
    sweep: &LoadedSweep,
    plan: &Plan,
    out: &Path,
    force: bool,
) -> Result<Vec<String>> {
    let mut replaced = Vec::new();
    match std::fs::symlink_metadata(out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(replaced),
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    }
    if !out.is_dir() {
        bail!("{} exists and is not a directory", out.display());
    }
    let empty = std::fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .next()
        .is_none();
    if empty {
        return Ok(replaced);
    }
    let ours: Vec<&str> = [
        MANIFEST,
        "jobs.csv",
        "sweep.toml",
        "profile.toml",
        "payloads",
        "jobs",
    ]
    .into_iter()
    .filter(|n| out.join(n).exists())
    .collect();
    if !out.join(MANIFEST).exists() {
        if !force {
            bail!(
                "{} is not empty and is not a sweep campaign (no {MANIFEST}): nothing was written. Choose another --out, or pass --force to write the campaign into it{}",
                out.display(),
                if ours.is_empty() {
                    String::new()
                } else {
                    format!(" (replacing its {})", ours.join(", "))
                }
            );
        }
        for n in ours {
            replaced.push(format!("{} is replaced", out.join(n).display()));
        }
        return Ok(replaced);
    }
    let other = match Manifest::load(out) {
        Ok(m) if m.campaign == sweep.spec.name => None,
        Ok(m) => Some(format!("campaign `{}`", m.campaign)),
        Err(e) => Some(format!(
            "a campaign whose {MANIFEST} cannot be read ({e:#})"
        )),
    };
    let submitted = submitted_ids(out)?;
    let ids: HashSet<&str> = plan.points.iter().map(|p| p.id.as_str()).collect();
    let mut dropped: Vec<&String> = submitted
        .iter()
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    dropped.sort();
    let list = |v: &[&String]| {
        let mut s = v
            .iter()
            .take(5)
            .map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if v.len() > 5 {
            s.push_str(", ...");
        }
        s
    };
    if let Some(other) = &other {
        if !force {
            bail!(
                "{} holds {other}, not `{}`{}: nothing was written. Expand into another directory, or pass --force to replace its campaign.json, sweep.toml and profile.toml",
                out.display(),
                sweep.spec.name,
                if submitted.is_empty() {
                    String::new()
                } else {
                    format!(" ({} of its jobs were submitted)", submitted.len())
                }
            );
        }
        replaced.push(format!(
            "{} holds {other}: its campaign.json, jobs.csv, sweep.toml and profile.toml are replaced by `{}`'s",
            out.display(),
            sweep.spec.name
        ));
    }
    if !dropped.is_empty() {
        if !force {
            bail!(
                "{} job(s) of {} were submitted and are no longer in the sweep file: {}. Their records would be dropped from the campaign; nothing was written. Expand into another directory, or pass --force",
                dropped.len(),
                out.display(),
                list(&dropped)
            );
        }
        replaced.push(format!(
            "{} submitted job(s) are dropped from the campaign (their directories are left in place): {}",
            dropped.len(),
            list(&dropped)
        ));
    }
    Ok(replaced)
}

/// The files of one job, rendered in memory.
pub struct JobFiles {
    pub id: String,
    pub files: Vec<(&'static str, Vec<u8>)>,
}

pub fn render_job(
    sweep: &LoadedSweep,
    profile: &Profile,
    renderer: &Renderer,
    p: &Point,
) -> Result<JobFiles> {
    let ds = dsconfig::applies(p);
    let ctx = renderer.context(&sweep.spec.name, p, profile, ds);
    let script = renderer
        .render(&p.template, ctx)
        .with_context(|| format!("rendering job `{}` (stage `{}`)", p.id, p.stage))?;
    let mut files = vec![("job.sbatch", script.into_bytes())];
    let point = serde_json::json!({
        "job_id": p.id,
        "campaign": sweep.spec.name,
        "stage": p.stage,
        "repeat": p.repeat,
        "scaling": p.scaling,
        "axes": p.axes,
        "params": p.params,
        "batch": p.batch,
        "model": p.model.as_ref().map(|m| {
            let mut v = serde_json::to_value(m).unwrap_or(Json::Null);
            v["params"] = m.params().into();
            v["kv_heads"] = m.kv_heads().into();
            v
        }),
        "env": p.env,
        "profile": profile.name,
    });
    files.push(("point.json", pretty(&point)));
    if ds {
        files.push(("ds_config.json", pretty(&dsconfig::build(sweep, p))));
    }
    Ok(JobFiles {
        id: p.id.clone(),
        files,
    })
}

fn pretty(v: &Json) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).unwrap_or_default();
    s.push(b'\n');
    s
}

/// Writes `bytes` to `path` only when they differ, atomically; returns whether it wrote.
pub(crate) fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    // A file of another size differs: not read.
    let same_size = std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64);
    if same_size
        && let Ok(old) = std::fs::read(path)
        && old == bytes
    {
        return Ok(false);
    }
    // Unique per process, and removed when any step fails (a full disk must not leave one
    // behind in every job directory).
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.sweep-tmp", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| {
            format!(
                "writing {} (through {}; the previous version, if any, is intact)",
                path.display(),
                tmp.display()
            )
        });
    }
    Ok(true)
}

/// [`write_if_changed`] for a file made piece by piece: the pieces are compared with the file
/// there as they come, and written (to a temporary file renamed over it at the end) only from
/// the first that differs, so that a large table is never whole in memory.
pub(crate) struct ChangedWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    /// The file there while every byte so far matched it.
    old: Option<std::io::BufReader<std::fs::File>>,
    old_len: u64,
    /// The temporary file, once a byte differed.
    new: Option<std::io::BufWriter<std::fs::File>>,
    len: u64,
    scratch: Vec<u8>,
}

impl ChangedWriter {
    pub(crate) fn new(path: &Path) -> ChangedWriter {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = path.with_file_name(format!(".{name}.{}.sweep-tmp", std::process::id()));
        let old = std::fs::File::open(path).ok().and_then(|f| {
            let len = f.metadata().ok()?.len();
            Some((std::io::BufReader::with_capacity(1 << 16, f), len))
        });
        ChangedWriter {
            path: path.to_path_buf(),
            tmp,
            old_len: old.as_ref().map_or(0, |o| o.1),
            old: old.map(|o| o.0),
            new: None,
            len: 0,
            scratch: Vec::new(),
        }
    }

    fn context(&self) -> String {
        format!(
            "writing {} (through {}; the previous version, if any, is intact)",
            self.path.display(),
            self.tmp.display()
        )
    }

    /// From here on the file differs from the one there: the temporary file, holding the
    /// bytes so far (the old file's first `len` while they matched it).
    fn diverge(&mut self) -> Result<()> {
        use std::io::Read;
        let matched = self.old.take().is_some();
        let r = (|| -> std::io::Result<std::io::BufWriter<std::fs::File>> {
            let mut w =
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&self.tmp)?);
            if matched && self.len > 0 {
                let mut prefix = std::fs::File::open(&self.path)?.take(self.len);
                if std::io::copy(&mut prefix, &mut w)? != self.len {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok(w)
        })();
        match r {
            Ok(w) => {
                self.new = Some(w);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.tmp);
                Err(e).with_context(|| self.context())
            }
        }
    }

    /// Appends `bytes`.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::{Read, Write};
        if let Some(old) = &mut self.old {
            let same = self.len + bytes.len() as u64 <= self.old_len && {
                self.scratch.resize(bytes.len(), 0);
                old.read_exact(&mut self.scratch).is_ok() && self.scratch == bytes
            };
            if same {
                self.len += bytes.len() as u64;
                return Ok(());
            }
            self.diverge()?;
        } else if self.new.is_none() {
            self.diverge()?;
        }
        let w = self.new.as_mut().expect("made by diverge");
        if let Err(e) = w.write_all(bytes) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e).with_context(|| self.context());
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Puts the file in place; false when it was there already, byte for byte.
    pub(crate) fn finish(mut self) -> Result<bool> {
        use std::io::Write;
        if self.old.is_some() && self.len == self.old_len {
            return Ok(false);
        }
        if self.new.is_none() {
            self.diverge()?;
        }
        let w = self.new.take().expect("made by diverge");
        let done = w
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut f| f.flush())
            .and_then(|_| std::fs::rename(&self.tmp, &self.path));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e).with_context(|| self.context());
        }
        Ok(true)
    }
}

pub(crate) fn manifest(sweep: &LoadedSweep, profile: &Profile, plan: &Plan) -> Manifest {
    Manifest {
        format: FORMAT,
        campaign: sweep.spec.name.clone(),
        sweep_file: sweep.path.display().to_string(),
        profile: profile.name.clone(),
        stages: sweep
            .spec
            .stages
            .iter()
            .map(|s| ManifestStage {
                name: s.name.clone(),
                template: s.template.clone(),
                after: s.after_names(),
                dependency: s.dependency,
                kinds: s
                    .upstream()
                    .into_iter()
                    .filter(|(_, k)| *k != s.dependency)
                    .collect(),
            })
            .collect(),
        jobs: plan
            .points
            .iter()
            .map(|p| ManifestJob {
                id: p.id.clone(),
                stage: p.stage.clone(),
                dir: job_dir_rel(&p.id),
                slurm_name: slurm_job_name(&sweep.spec.name, &p.id),
                nodes: p.batch.nodes,
                gpus: p.batch.gpus,
                repeat: p.repeat,
                time_limit_min: p.time_limit_min,
            })
            .collect(),
    }
}

/// `jobs.csv`: one row per job with every axis of every stage (empty where a stage lacks it).
pub(crate) fn jobs_csv(plan: &Plan) -> Result<Vec<u8>> {
    let mut axis_cols: Vec<String> = Vec::new();
    for p in &plan.points {
        for k in p.axes.keys() {
            if !axis_cols.contains(k) && !FIXED_COLS.contains(&k.as_str()) {
                axis_cols.push(k.clone());
            }
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = vec!["job_id", "stage", "repeat"];
    header.extend(axis_cols.iter().map(|s| s.as_str()));
    header.extend(FIXED_COLS);
    header.push("script");
    w.write_record(&header)?;
    for p in &plan.points {
        let mut row = vec![p.id.clone(), p.stage.clone(), p.repeat.to_string()];
        for k in &axis_cols {
            row.push(p.axes.get(k).map(json_short).unwrap_or_default());
        }
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        row.push(p.params.get("model").map(json_short).unwrap_or_default());
        row.push(p.batch.nodes.to_string());
        row.push(p.batch.gpus.to_string());
        row.push(opt(p.batch.micro_batch.map(u64::from)));
        row.push(opt(p.batch.grad_accum.map(u64::from)));
        row.push(opt(p.batch.global_batch));
        row.push(format!("{}/job.sbatch", job_dir_rel(&p.id)));
        w.write_record(&row)?;
    }
    Ok(w.into_inner()?)
}

const FIXED_COLS: &[&str] = &[
    "model",
    "nodes",
    "gpus",
    "micro_batch",
    "grad_accum",
    "global_batch",
];

/// Renders every job, then writes the campaign directory. Nothing is written when any job fails
/// to render or would change a job that was already submitted.
pub fn write(
    sweep: &LoadedSweep,
    profile: &Profile,
    profile_text: &str,
    plan: &Plan,
    renderer: &Renderer,
    out: &Path,
) -> Result<WriteReport> {
    use rayon::prelude::*;
    let rendered: Vec<JobFiles> = plan
        .points
        .par_iter()
        .map(|p| render_job(sweep, profile, renderer, p))
        .collect::<Result<_>>()?;

    let submitted = submitted_ids(out)?;
    let mut blocked = Vec::new();
    for j in &rendered {
        if submitted.contains(&j.id) {
            let dir = out.join(job_dir_rel(&j.id));
            let changed = j.files.iter().any(|(name, bytes)| {
                std::fs::read(dir.join(name)).ok().as_deref() != Some(bytes.as_slice())
            });
            if changed {
                blocked.push(j.id.clone());
            }
        }
    }
    if !blocked.is_empty() {
        bail!(
            "{} job(s) already submitted would change: {}{}\nThe running campaign's files are left as they were; expand into a new directory, or cancel and remove those jobs first.",
            blocked.len(),
            blocked
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if blocked.len() > 5 { ", ..." } else { "" }
        );
    }

    std::fs::create_dir_all(out.join("jobs"))
        .with_context(|| format!("creating {}", out.display()))?;
    let mut report = WriteReport::default();
    let counts: Vec<Result<(bool, bool)>> = rendered
        .par_iter()
        .map(|j| {
            let dir = out.join(job_dir_rel(&j.id));
            let existed = dir.is_dir();
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut changed = false;
            for (name, bytes) in &j.files {
                changed |= write_if_changed(&dir.join(name), bytes)?;
            }
            Ok((existed, changed))
        })
        .collect();
    let total = counts.len();
    let done = counts.iter().filter(|c| c.is_ok()).count();
    for c in counts {
        let c = c.with_context(|| {
            format!(
                "{done} of {total} job directories were written, the campaign's manifest not \
                 yet; once there is room, run the same `sweep expand` again (add --force if it \
                 refuses the directory: nothing in it was submitted)"
            )
        })?;
        match c {
            (false, _) => report.created += 1,
            (true, true) => report.updated += 1,
            (true, false) => report.unchanged += 1,
        }
    }
    let ids: HashSet<&str> = plan.points.iter().map(|p| p.id.as_str()).collect();
    if let Ok(rd) = std::fs::read_dir(out.join("jobs")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_dir() && !ids.contains(name.as_str()) {
                report.stale.push(name);
            }
        }
    }
    report.stale.sort();
    let m = manifest(sweep, profile, plan);
    write_if_changed(&out.join(MANIFEST), &pretty(&serde_json::to_value(&m)?))?;
    write_if_changed(&out.join("jobs.csv"), &jobs_csv(plan)?)?;
    write_if_changed(&out.join("sweep.toml"), sweep.text.as_bytes())?;
    write_if_changed(&out.join("profile.toml"), profile_text.as_bytes())?;
    write_payloads(out)?;
    Ok(report)
}

/// Payload scripts shipped with sweep, copied into the campaign so jobs are self-contained.
pub(crate) const PAYLOADS: &[(&str, &str)] = &[(
    "llama_bench.py",
    include_str!("../../job-templates/payloads/llama_bench.py"),
)];

fn write_payloads(out: &Path) -> Result<()> {
    let dir = out.join("payloads");
    std::fs::create_dir_all(&dir)?;
    for (name, text) in PAYLOADS {
        write_if_changed(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// Every stage's template must exist before anything is rendered: say which stage names a
/// missing one, at its line in the sweep file.
pub(crate) fn check_templates(
    sweep: &LoadedSweep,
    templates: &render::TemplateSource,
) -> Result<(), crate::diag::InputError> {
    let src = sweep.source();
    for (i, st) in sweep.spec.stages.iter().enumerate() {
        if templates.lookup(&st.template).is_none() {
            let dirs: Vec<String> = templates
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return Err(src.error(
                &crate::path!["stage", i, "template"],
                format!(
                    "template `{}` not found in {}the built-in set (see `sweep templates list`)",
                    st.template,
                    if dirs.is_empty() {
                        String::new()
                    } else {
                        format!("{} or ", dirs.join(", "))
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// The template directories in force: `--templates`, then the sweep file's `templates`. A
/// directory that does not exist is an error, never a silent fall-back to the built-in set.
pub fn default_templates(
    sweep: &LoadedSweep,
    cli: Option<PathBuf>,
) -> Result<render::TemplateSource> {
    let mut dirs = Vec::new();
    if let Some(d) = cli {
        if !d.is_dir() {
            bail!("--templates {}: no such directory", d.display());
        }
        dirs.push(d);
    }
    if let Some(d) = &sweep.spec.templates {
        let dir = render::templates_dir_of(&sweep.path, d);
        if !dir.is_dir() {
            return Err(sweep
                .source()
                .error(
                    &crate::path!["templates"],
                    format!("templates directory {} does not exist", dir.display()),
                )
                .into());
        }
        dirs.push(dir);
    }
    Ok(render::TemplateSource::new(dirs))
}

#[cfg(test)]
mod changed_writer_tests {
    use super::ChangedWriter;

    fn put(path: &std::path::Path, pieces: &[&[u8]]) -> bool {
        let mut w = ChangedWriter::new(path);
        for p in pieces {
            w.push(p).unwrap();
        }
        w.finish().unwrap()
    }

    /// The file ends up as the pieces, whatever was there (nothing, the same, a longer file
    /// they begin, a file that differs midway); written only when it differs.
    #[test]
    fn a_file_written_in_pieces_is_the_pieces_and_rewritten_only_when_changed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        assert!(put(&p, &[b"ab", b"cd", b""]));
        assert_eq!(std::fs::read(&p).unwrap(), b"abcd");
        assert!(!put(&p, &[b"a", b"bc", b"d"]));
        assert!(put(&p, &[b"ab", b"c"]));
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        assert!(put(&p, &[b"ab", b"xy", b"z"]));
        assert_eq!(std::fs::read(&p).unwrap(), b"abxyz");
        assert!(put(&p, &[b"abxyz", b"more"]));
        assert_eq!(std::fs::read(&p).unwrap(), b"abxyzmore");
        assert!(put(&p, &[]));
        assert_eq!(std::fs::read(&p).unwrap(), b"");
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }
}
