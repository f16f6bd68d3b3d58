//! What each command does, step by step, as library functions returning typed results: the
//! command line only resolves its flags, calls one of these and prints what comes back.
//!
//! A step that speaks before the pipeline ends (the plan check's findings before `expand`
//! writes, what `--force` replaces, `demo` between its stages) speaks through a [`Reporter`],
//! so that its lines come in the same order as the work, also when a later step fails.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::analyze::Analysis;
use crate::campaign::{self, Manifest, WriteReport};
use crate::check::{CheckReport, Finding, Level};
use crate::collect;
use crate::executor::Executor;
use crate::expand;
use crate::job_state::JobState;
use crate::local::{self, LocalReport};
use crate::plan::{self, PlanSummary};
use crate::profile::Profile;
use crate::profile_import::{self, ImportOptions};
use crate::render::{self, Renderer, TemplateSource};
use crate::slurm::Slurm;
use crate::spec::{self, LoadedSweep};
use crate::status::StatusReport;
use crate::submit::{self, CancelReport, SubmitReport};

/// Built-in sample campaign, used by `templates check` when no sweep file is given.
pub(crate) const SAMPLE_SWEEP: &str = include_str!("../sweeps/h200-llama2.toml");
pub(crate) const SAMPLE_PROFILE: &str = include_str!("../slurm/clusters/fukushima-h200.toml");
/// The embedded default: sweep's own demo campaign and the local profile, compiled in.
const DEMO_SWEEP: &str = include_str!("../sweeps/demo.toml");
const DEMO_PROFILE: &str = include_str!("../slurm/clusters/local.toml");

/// What a pipeline says while it runs. Every default says nothing.
pub(crate) trait Reporter {
    /// The plan check's warnings and errors (`serious`), before anything is written.
    fn plan_findings(&self, _serious: &[&Finding], _checked: &CheckReport, _sweep: &Path) {}
    /// What `--force` is about to replace.
    fn force_replaced(&self, _replaced: &[String]) {}
    /// `demo` has expanded its campaign and starts running it (which takes a while).
    fn demo_expanded(&self, _dir: &Path) {}
}

/// A reporter that says nothing: a pipeline run inside another.
pub(crate) struct Silent;

impl Reporter for Silent {}

/// Loads a sweep file and its profile; errors point at the user's files.
pub(crate) fn load(
    sweep_path: &Path,
    profile_override: Option<&Path>,
) -> Result<(LoadedSweep, Profile, String)> {
    let sweep = spec::load(sweep_path)?;
    let ppath = match profile_override {
        Some(p) => p.to_path_buf(),
        None => Profile::find(&sweep.spec.cluster, sweep_path),
    };
    if !ppath.exists() {
        let src = sweep.source();
        return Err(src
            .error(
                &crate::path!["cluster"],
                {
                    let name = &sweep.spec.cluster;
                    let searched = Profile::searched(name, sweep_path);
                    let found = Profile::found_near(name, sweep_path);
                    format!(
                        "cluster profile `{name}` not found; looked for {}; {}",
                        searched
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if found.is_empty() {
                            "found no profile there (`sweep profile import` writes one; --profile FILE names one)".to_string()
                        } else {
                            format!("profiles found there: {}", found.join(", "))
                        }
                    )
                },
            )
            .into());
    }
    let (profile, text) = Profile::load(&ppath)?;
    Ok((sweep, profile, text))
}

#[derive(Debug, Clone)]
pub(crate) struct ExpandOptions {
    pub sweep: PathBuf,
    /// Default: runs/<campaign name>.
    pub out: Option<PathBuf>,
    pub dry_run: bool,
    pub templates: Option<PathBuf>,
    pub profile: Option<PathBuf>,
    pub strict: bool,
    pub max_points: u64,
    pub force: bool,
    /// `--set KEY=VALUE` overrides, applied to every stage.
    pub sets: Vec<String>,
}

pub(crate) enum ExpandOutcome {
    /// `--dry-run`: every job rendered in memory, nothing written.
    Planned(PlanSummary),
    Written {
        plan: PlanSummary,
        written: WriteReport,
        dir: PathBuf,
    },
}

/// Load, template check, expand (capped), plan check, render, out-dir check, write.
pub(crate) fn expand(o: &ExpandOptions, reporter: &dyn Reporter) -> Result<ExpandOutcome> {
    let (sweep, profile, profile_text) = load(&o.sweep, o.profile.as_deref())?;
    let templates = campaign::default_templates(&sweep, o.templates.clone())?;
    let sweep = if o.sets.is_empty() {
        sweep
    } else {
        let reads = crate::params::all_template_reads(&templates);
        crate::sets::apply(&sweep, &o.sets, &reads)?
    };
    campaign::check_templates(&sweep, &templates)?;
    let plan = expand::expand_capped(&sweep, &profile, o.max_points)?;
    let renderer = Renderer::new(&templates);
    let summary = plan::summarize(&plan);
    let mut checked = crate::check::check(&sweep, &profile, &plan);
    checked.add(crate::params::unread(&sweep, &templates));
    let serious: Vec<&Finding> = checked
        .findings
        .iter()
        .filter(|f| f.level != Level::Info)
        .collect();
    if !serious.is_empty() {
        reporter.plan_findings(&serious, &checked, &o.sweep);
    }
    if o.strict && !serious.is_empty() {
        bail!(
            "--strict: {} plan-check finding(s); nothing written",
            serious.len()
        );
    }
    if o.dry_run {
        // Render anyway (in memory) so template errors surface before anything is written.
        for p in &plan.points {
            campaign::render_job(&sweep, &profile, &renderer, p)?;
        }
        return Ok(ExpandOutcome::Planned(summary));
    }
    let dir = o
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&sweep.spec.name));
    let replaced = campaign::check_out_dir(&sweep, &plan, &dir, o.force)?;
    reporter.force_replaced(&replaced);
    let written = campaign::write(&sweep, &profile, &profile_text, &plan, &renderer, &dir)?;
    Ok(ExpandOutcome::Written {
        plan: summary,
        written,
        dir,
    })
}

pub(crate) struct CheckOutcome {
    pub report: CheckReport,
    /// Warnings count as errors too.
    pub strict: bool,
}

impl CheckOutcome {
    /// The exit status: an error-level finding (or, strict, a warning) fails the check.
    pub(crate) fn verdict(&self) -> Result<()> {
        let errors = self.report.count(Level::Error);
        let warnings = self.report.count(Level::Warning);
        if errors > 0 || (self.strict && warnings > 0) {
            bail!("plan check failed: {errors} error(s), {warnings} warning(s)");
        }
        Ok(())
    }
}

pub(crate) fn check(
    sweep: &Path,
    profile: Option<&Path>,
    max_points: u64,
    strict: bool,
    measured: Option<&Path>,
) -> Result<CheckOutcome> {
    // A campaign directory: its own copies, as expanded (with any --set).
    let campaign_profile;
    let (sweep, profile) = if sweep.is_dir() {
        let copy = sweep.join("sweep.toml");
        if !copy.is_file() {
            bail!(
                "{}: a directory but no campaign (no sweep.toml; give a sweep file or a directory `sweep expand` wrote)",
                sweep.display()
            );
        }
        campaign_profile = sweep.join("profile.toml");
        (copy, Some(profile.unwrap_or(&campaign_profile)))
    } else {
        (sweep.to_path_buf(), profile)
    };
    let (sweep, profile, _) = load(&sweep, profile)?;
    let plan = expand::expand_capped(&sweep, &profile, max_points)?;
    let measured = measured
        .map(crate::timing::Measured::load)
        .transpose()
        .context("--measured: a results directory of `sweep collect` (runs.csv)")?;
    let mut report = crate::check::check_with(&sweep, &profile, &plan, measured.as_ref());
    // A campaign's copy may name a templates directory relative to the original: the built-in
    // set stands in, and a stage whose template is not there is not checked for unread keys.
    let templates = campaign::default_templates(&sweep, None).unwrap_or_default();
    report.add(crate::params::unread(&sweep, &templates));
    Ok(CheckOutcome { report, strict })
}

/// The templates visible from `dir` (user directories first, then built-in): (name, source).
pub(crate) fn templates_list(dir: Option<PathBuf>) -> Result<Vec<(String, String)>> {
    Ok(TemplateSource::existing(dir.into_iter().collect())?.list())
}

/// A template's source text.
pub(crate) fn template_source(name: &str, dir: Option<PathBuf>) -> Result<String> {
    let src = TemplateSource::existing(dir.into_iter().collect())?;
    if let Some(why) = render::template_name_error(name) {
        bail!("`{name}`: {why}");
    }
    match src.lookup(name) {
        Some((text, _)) => Ok(text),
        None => bail!("no template named `{name}` (see `sweep templates list`)"),
    }
}

pub(crate) struct TemplateCheck {
    /// The sample job it was rendered for.
    pub job: String,
    pub script: String,
}

/// Renders a template file with a sample point and runs `bash -n` on the result.
pub(crate) fn template_check(file: &Path, sweep: Option<&Path>) -> Result<TemplateCheck> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .context("template path has no file name")?;
    if !file.is_file() {
        bail!("{}: no such template file", file.display());
    }
    let (sweep, profile) = match sweep {
        Some(s) => {
            let (sw, p, _) = load(s, None)?;
            (sw, p)
        }
        None => (
            spec::parse(
                Path::new("<built-in h200-llama2.toml>"),
                SAMPLE_SWEEP.to_string(),
            )?,
            Profile::parse(Path::new("<built-in fukushima-h200.toml>"), SAMPLE_PROFILE)?,
        ),
    };
    let plan = expand::expand(&sweep, &profile)?;
    // Prefer a point of a stage that uses this template; else the first training point.
    let point = plan
        .points
        .iter()
        .find(|p| p.template == name)
        .or_else(|| plan.points.iter().find(|p| p.batch.micro_batch.is_some()))
        .or(plan.points.first())
        .context("the sample campaign has no points")?;
    let mut point = point.clone();
    point.template = name;
    let dir = file
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    let renderer = Renderer::new(&TemplateSource::new(vec![dir]));
    let files = campaign::render_job(&sweep, &profile, &renderer, &point)?;
    let script = String::from_utf8_lossy(&files.files[0].1).to_string();
    render::check_with_bash(&script).map_err(|e| {
        anyhow::anyhow!("{}: rendered script fails `bash -n`:\n{e}", file.display())
    })?;
    Ok(TemplateCheck {
        job: point.id,
        script,
    })
}

pub(crate) struct ProfileImport {
    /// `nvidia-smi topo -m` output (`-` for standard input).
    pub topo: PathBuf,
    /// `lscpu` output.
    pub lscpu: Option<PathBuf>,
    /// Where to write the profile (default: nowhere, the text is returned).
    pub dest: Option<PathBuf>,
    /// Its `lscpu` is read from the file above.
    pub options: ImportOptions,
}

pub(crate) struct ImportedProfile {
    pub text: String,
    /// Where it was written, if anywhere.
    pub written: Option<PathBuf>,
}

/// Writes a profile from a node's topology, refusing to overwrite a file.
pub(crate) fn profile_import(p: ProfileImport) -> Result<ImportedProfile> {
    let read = |p: &Path| -> Result<String> {
        if p == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            Ok(s)
        } else {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        }
    };
    let opts = ImportOptions {
        lscpu: p.lscpu.as_deref().map(read).transpose()?,
        ..p.options
    };
    if let Some(d) = &p.dest
        && d.exists()
    {
        bail!(
            "{} exists: sweep does not overwrite it; remove it or choose another --out",
            d.display()
        );
    }
    let text = profile_import::import(&read(&p.topo)?, &opts)
        .with_context(|| p.topo.display().to_string())?;
    // What is written must load as a profile.
    Profile::parse(
        p.dest.as_deref().unwrap_or(Path::new("imported.toml")),
        &text,
    )?;
    if let Some(d) = &p.dest {
        std::fs::write(d, &text).with_context(|| format!("writing {}", d.display()))?;
    }
    Ok(ImportedProfile {
        text,
        written: p.dest,
    })
}

pub(crate) struct SubmitRequest {
    pub executor: Executor,
    pub slurm: submit::SubmitOptions,
    /// Submit jobs with error-level plan-check findings too.
    pub force: bool,
    /// Local executor: run again jobs that already ran.
    pub rerun: bool,
}

pub(crate) enum SubmitOutcome {
    Slurm(SubmitReport),
    Local(LocalReport),
}

impl SubmitOutcome {
    /// The exit status: a job Slurm rejected fails the submit (after the rest was submitted).
    pub(crate) fn verdict(&self) -> Result<()> {
        if let SubmitOutcome::Slurm(r) = self
            && !r.rejected.is_empty()
        {
            bail!(
                "{} job(s) rejected by Slurm (left unsubmitted; the rest of the state is intact)",
                r.rejected.len()
            );
        }
        Ok(())
    }
}

/// Submits the campaign's unsubmitted jobs with sbatch, or runs them here (local executor).
pub(crate) fn submit(campaign: &Path, r: SubmitRequest) -> Result<SubmitOutcome> {
    if r.executor == Executor::Local {
        let opts = local::LocalOptions {
            stages: r.slurm.stages,
            dry_run: r.slurm.dry_run,
            rerun: r.rerun,
        };
        return Ok(SubmitOutcome::Local(local::run(campaign, &opts)?));
    }
    let mut opts = r.slurm;
    if !r.force {
        opts.flagged = plan_gate(campaign)?;
    }
    Ok(SubmitOutcome::Slurm(submit::submit(
        campaign,
        &opts,
        &Slurm::default(),
    )?))
}

/// The gate of `submit`: each job with error-level plan-check findings, with them. The check is
/// computed again from the campaign's own copies of the sweep file (with any `--set`) and the
/// profile, as `sweep check DIR` does, so the gate, `check` and the report always agree.
pub(crate) fn plan_gate(campaign: &Path) -> Result<std::collections::BTreeMap<String, String>> {
    crate::state::ensure_campaign(campaign)?;
    let (sw, prof, _) = load(
        &campaign.join("sweep.toml"),
        Some(&campaign.join("profile.toml")),
    )
    .with_context(|| {
        format!(
            "{}: cannot check the plan of this campaign (--force submits without the check)",
            campaign.display()
        )
    })?;
    let plan = expand::expand(&sw, &prof)?;
    let report = crate::check::check(&sw, &prof, &plan);
    let mut out = std::collections::BTreeMap::<String, String>::new();
    for f in report.findings.iter().filter(|f| f.level == Level::Error) {
        if plan.points.iter().any(|p| p.id == f.subject) {
            let what = match &f.fix {
                Some(fix) => format!("{}. What fits: {fix}", f.message),
                None => f.message.clone(),
            };
            out.entry(f.subject.clone())
                .and_modify(|m| {
                    m.push_str("; ");
                    m.push_str(&what)
                })
                .or_insert(what);
        }
    }
    Ok(out)
}

/// An outcome that is not an error of sweep's but must end the process with its own exit
/// status (documented in the README), after the output was shown.
#[derive(Debug)]
pub struct ExitStatus {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitStatus {}

/// `status`: Slurm's controller did not answer (`--watch`: for longer than it waits).
pub(crate) const EXIT_CONTROLLER_DOWN: i32 = 3;
/// `status --watch`: every job left waits on a dependency that can never be satisfied.
pub(crate) const EXIT_BLOCKED: i32 = 4;
/// `status --watch`: every job ended, but some are `lost` or `unknown`.
pub(crate) const EXIT_UNACCOUNTED: i32 = 5;

/// One look at the campaign's jobs (one squeue call).
pub(crate) fn status(campaign: &Path) -> Result<StatusReport> {
    crate::status::poll(campaign, &Slurm::default())
}

/// The exit status of a status report: the controller's silence is not a success.
pub(crate) fn status_verdict(r: &StatusReport) -> Result<()> {
    if !r.controller_ok() {
        return Err(ExitStatus {
            code: EXIT_CONTROLLER_DOWN,
            message: format!(
                "Slurm's controller did not answer ({}); the states shown are the last known",
                r.controller
            ),
        }
        .into());
    }
    Ok(())
}

/// Rebuilds the campaign state from Slurm (queue and accounting) and the job markers.
pub(crate) fn rebuild_status(campaign: &Path) -> Result<crate::reconcile::Rebuilt> {
    crate::reconcile::rebuild(campaign, &Slurm::default())
}

/// Polls until every job has ended, backing off while nothing changes; `on_poll` sees each
/// poll with its counts (`RUNNING=2 PENDING=1`) and whether they changed since the last.
/// Ends early, with its own exit status, when the controller stays silent for `give_up`, or
/// when all that is left waits on a dependency that can never be satisfied.
pub(crate) fn watch_status(
    campaign: &Path,
    give_up: std::time::Duration,
    on_poll: &mut dyn FnMut(&StatusReport, &str, bool) -> Result<()>,
) -> Result<(StatusReport, Option<ExitStatus>)> {
    let slurm = Slurm::default();
    let mut interval = std::time::Duration::from_secs(2);
    let mut last: Option<String> = None;
    let mut silent_since: Option<std::time::Instant> = None;
    loop {
        let r = crate::status::poll(campaign, &slurm)?;
        let counts: String = r
            .counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let changed = last.as_deref() != Some(counts.as_str());
        on_poll(&r, &counts, changed)?;
        if r.controller_ok() {
            silent_since = None;
        } else if silent_since
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            >= give_up
        {
            let end = ExitStatus {
                code: EXIT_CONTROLLER_DOWN,
                message: format!(
                    "Slurm's controller has not answered for {} s ({}); stopped watching",
                    give_up.as_secs(),
                    r.controller
                ),
            };
            return Ok((r, Some(end)));
        }
        if r.all_blocked() {
            let list: Vec<String> = r
                .blocked
                .iter()
                .map(|(j, why)| format!("  {j}: {why}"))
                .collect();
            let end = ExitStatus {
                code: EXIT_BLOCKED,
                message: format!(
                    "every job left waits on a dependency that can never be satisfied \
                     (Slurm: DependencyNeverSatisfied); `sweep cancel` them or resubmit what they \
                     wait on:\n{}",
                    list.join("\n")
                ),
            };
            return Ok((r, Some(end)));
        }
        if r.done {
            let unaccounted: usize = r
                .jobs
                .iter()
                .filter(|j| matches!(j.state, JobState::Lost | JobState::Unknown))
                .count();
            let end = (unaccounted > 0).then(|| ExitStatus {
                code: EXIT_UNACCOUNTED,
                message: format!(
                    "every job has ended, but {unaccounted} cannot be accounted for (lost or \
                     unknown); see their notes"
                ),
            });
            return Ok((r, end));
        }
        // Back off while nothing changes (at most two polls a minute when idle).
        interval = crate::status::next_interval(interval, changed);
        last = Some(counts);
        std::thread::sleep(submit::jitter(interval));
    }
}

/// Cancels a campaign's active jobs: all, a stage's, or the named ones.
pub(crate) fn cancel(campaign: &Path, stages: &[String], jobs: &[String]) -> Result<CancelReport> {
    submit::cancel(campaign, stages, jobs, &Slurm::default())
}

pub(crate) struct CollectRequest {
    /// A campaign directory, or else `logs`: any tree of logs, each file a source.
    pub campaign: Option<PathBuf>,
    pub logs: Option<PathBuf>,
    /// Default: results/<campaign name>, or results/<dir name> for `logs`.
    pub out: Option<PathBuf>,
    pub force: bool,
    /// A sweep file whose `[[collect.pattern]]`s to use too.
    pub patterns: Option<PathBuf>,
    /// `--logs` files named to be read whatever their kind (`--include`).
    pub include: Vec<String>,
    pub progress: bool,
    /// Render the report as JSON beside the tables.
    pub render_json: bool,
}

/// Parses a campaign's logs (or any directory of logs) into tables and a summary.
pub(crate) fn collect(r: &CollectRequest) -> Result<collect::Report> {
    let patterns = match &r.patterns {
        Some(p) => spec::load(p)?.spec.collect.patterns,
        None => Vec::new(),
    };
    let options = |out: PathBuf| collect::Options {
        out,
        force: r.force,
        progress: r.progress,
        patterns: patterns.clone(),
        include: r.include.clone(),
        render_json: r.render_json,
    };
    match (&r.campaign, &r.logs) {
        (Some(dir), _) => {
            let m = Manifest::load(dir)?;
            let dest = r
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(&m.campaign));
            collect::collect_campaign(dir, &options(dest))
        }
        (None, Some(logs)) => {
            if !logs.is_dir() {
                bail!("{}: not a directory", logs.display());
            }
            let name = std::fs::canonicalize(logs)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
                .unwrap_or_else(|| "logs".into());
            let dest = r
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(name));
            collect::collect_logs(logs, &options(dest))
        }
        (None, None) => bail!("give a campaign directory or --logs DIR"),
    }
}

pub(crate) struct DemoOutcome {
    pub dir: PathBuf,
    pub local: LocalReport,
    pub collect: collect::Report,
}

/// Expands the built-in demo campaign into `out`, runs it with the local executor, collects it.
pub(crate) fn demo(
    out: Option<PathBuf>,
    results: Option<PathBuf>,
    progress: bool,
    reporter: &dyn Reporter,
) -> Result<DemoOutcome> {
    let dir = out.unwrap_or_else(|| PathBuf::from("runs/demo"));
    let results = results.unwrap_or_else(|| PathBuf::from("results/demo"));
    let input = std::env::temp_dir().join(format!("sweep-demo-{}", std::process::id()));
    std::fs::create_dir_all(&input)?;
    let (sweep_path, profile_path) = (input.join("demo.toml"), input.join("local.toml"));
    std::fs::write(&sweep_path, DEMO_SWEEP)?;
    std::fs::write(&profile_path, DEMO_PROFILE)?;
    let expanded = expand(
        &ExpandOptions {
            sweep: sweep_path,
            out: Some(dir.clone()),
            dry_run: false,
            templates: None,
            profile: Some(profile_path),
            strict: false,
            max_points: expand::DEFAULT_MAX_POINTS,
            force: false,
            sets: Vec::new(),
        },
        &Silent,
    );
    let _ = std::fs::remove_dir_all(&input);
    expanded?;
    reporter.demo_expanded(&dir);
    let opts = local::LocalOptions {
        stages: Vec::new(),
        dry_run: false,
        rerun: true,
    };
    let local = local::run(&dir, &opts)?;
    let collect = collect::collect_campaign(
        &dir,
        &collect::Options {
            out: results,
            force: false,
            progress,
            patterns: Vec::new(),
            include: Vec::new(),
            render_json: false,
        },
    )?;
    Ok(DemoOutcome {
        dir,
        local,
        collect,
    })
}

/// Collects a campaign (incrementally) into `out` and analyses it; returns where the tables are.
pub(crate) fn collect_and_analyze(
    dir: &Path,
    out_dir: Option<PathBuf>,
) -> Result<(PathBuf, Analysis)> {
    let m = Manifest::load(dir)?;
    let dest = out_dir.unwrap_or_else(|| PathBuf::from("results").join(&m.campaign));
    collect::collect_campaign(
        dir,
        &collect::Options {
            out: dest.clone(),
            ..Default::default()
        },
    )?;
    let a = crate::analyze::analyze(dir, &dest)?;
    crate::analyze::write_tables(&a, &dest)?;
    Ok((dest, a))
}

pub(crate) struct ReportOutcome {
    pub html: PathBuf,
    pub summary: PathBuf,
    pub tables: PathBuf,
}

/// Collects and analyses a campaign, then writes report.html and summary.md beside its tables.
pub(crate) fn report(campaign: &Path, out: Option<PathBuf>) -> Result<ReportOutcome> {
    let m = Manifest::load(campaign)?;
    let (dest, an) = collect_and_analyze(campaign, out)?;
    // The plan check of the campaign as expanded (its own copies of the sweep file and profile).
    let check = load(
        &campaign.join("sweep.toml"),
        Some(&campaign.join("profile.toml")),
    )
    .ok()
    .and_then(|(sw, prof, _)| {
        expand::expand(&sw, &prof)
            .ok()
            .map(|plan| crate::check::check(&sw, &prof, &plan))
    });
    let inputs = crate::report::ReportInputs {
        campaign_dir: campaign,
        results: &dest,
        campaign: &m.campaign,
        analysis: &an,
        check: check.as_ref(),
    };
    let (html, summary) = crate::report::write(&inputs, &dest)?;
    Ok(ReportOutcome {
        html,
        summary,
        tables: dest,
    })
}
