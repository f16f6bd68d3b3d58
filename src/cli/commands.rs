//! One function per subcommand.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::args::*;
use super::output::Output;
use crate::campaign;
use crate::expand;
use crate::plan;
use crate::profile::Profile;
use crate::render::{self, Renderer, TemplateSource};
use crate::spec::{self, LoadedSweep};

/// Built-in sample campaign, used by `templates check` when no sweep file is given.
pub const SAMPLE_SWEEP: &str = include_str!("../../sweeps/h200-llama2.toml");
pub const SAMPLE_PROFILE: &str = include_str!("../../slurm/clusters/fukushima-h200.toml");

pub fn run(cli: Cli) -> Result<()> {
    let out = super::output::choose(cli.output);
    let out = out.as_ref();
    match cli.cmd {
        Cmd::Expand(a) => expand_cmd(a, out),
        Cmd::Templates(t) => templates_cmd(t, out),
        Cmd::Profile(p) => profile_cmd(p, out),
        Cmd::Submit(a) => submit_cmd(a, out),
        Cmd::Status(a) => status_cmd(a, out),
        Cmd::Cancel(a) => cancel_cmd(a, out),
        Cmd::Collect(a) => collect_cmd(a, out),
        Cmd::Demo(a) => demo_cmd(a, out),
        Cmd::Check(a) => check_cmd(a, out),
        Cmd::Analyze(a) => analyze_cmd(a, out),
        Cmd::Report(a) => report_cmd(a, out),
        Cmd::LocalExec { args } => {
            let code = match args.split_first() {
                Some((cmd, rest)) if cmd == "srun" => crate::local::srun(rest),
                Some((cmd, rest)) if cmd == "scontrol" => crate::local::scontrol(rest),
                _ => bail!("local-exec: srun or scontrol"),
            };
            match code {
                Ok(c) => std::process::exit(c),
                Err(e) => {
                    eprintln!("{e:#}");
                    std::process::exit(1)
                }
            }
        }
    }
}

/// Loads a sweep file and its profile; errors point at the user's files.
pub fn load(
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
                format!("cluster profile not found: {}", ppath.display()),
            )
            .into());
    }
    let (profile, text) = Profile::load(&ppath)?;
    Ok((sweep, profile, text))
}

fn expand_cmd(a: ExpandArgs, out: &dyn Output) -> Result<()> {
    let (sweep, profile, profile_text) = load(&a.sweep, a.profile.as_deref())?;
    let templates = campaign::default_templates(&sweep, a.templates.clone())?;
    campaign::check_templates(&sweep, &templates)?;
    let plan = expand::expand_capped(&sweep, &profile, a.max_points)?;
    let renderer = Renderer::new(&templates);
    let summary = plan::summarize(&plan);
    let checked = crate::check::check(&sweep, &profile, &plan);
    let serious: Vec<&crate::check::Finding> = checked
        .findings
        .iter()
        .filter(|f| f.level != crate::check::Level::Info)
        .collect();
    if !serious.is_empty() {
        out.plan_findings(&serious, &checked, &a.sweep);
    }
    if a.strict && !serious.is_empty() {
        bail!(
            "--strict: {} plan-check finding(s); nothing written",
            serious.len()
        );
    }
    if a.dry_run {
        // Render anyway (in memory) so template errors surface before anything is written.
        for p in &plan.points {
            campaign::render_job(&sweep, &profile, &renderer, p)?;
        }
        return out.expand_planned(&summary, a.all);
    }
    let dir = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&sweep.spec.name));
    let replaced = campaign::check_out_dir(&sweep, &plan, &dir, a.force)?;
    out.force_replaced(&replaced);
    let report = campaign::write(&sweep, &profile, &profile_text, &plan, &renderer, &dir)?;
    out.expand_written(&summary, &report, &dir, a.all)
}

fn templates_cmd(t: TemplatesCmd, out: &dyn Output) -> Result<()> {
    match t {
        TemplatesCmd::List { templates } => {
            let src = TemplateSource::existing(templates.into_iter().collect())?;
            out.templates_listed(&src.list())?;
        }
        TemplatesCmd::Show { name, templates } => {
            let src = TemplateSource::existing(templates.into_iter().collect())?;
            if let Some(why) = render::template_name_error(&name) {
                bail!("`{name}`: {why}");
            }
            match src.lookup(&name) {
                Some((text, _)) => out.template_source(&text),
                None => bail!("no template named `{name}` (see `sweep templates list`)"),
            }
        }
        TemplatesCmd::Check { file, sweep, print } => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .context("template path has no file name")?;
            if !file.is_file() {
                bail!("{}: no such template file", file.display());
            }
            let (sweep, profile) = match sweep {
                Some(s) => {
                    let (sw, p, _) = load(&s, None)?;
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
            point.template = name.clone();
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
            if print {
                out.template_source(&script);
            } else {
                out.template_checked(&file, &point.id)?;
            }
        }
    }
    Ok(())
}

fn submit_cmd(a: SubmitArgs, out: &dyn Output) -> Result<()> {
    if a.executor == Executor::Local {
        return local_cmd(a, out);
    }
    let opts = crate::submit::SubmitOptions {
        stages: a.stages,
        max_in_flight: a.max_in_flight,
        dry_run: a.dry_run,
        hold: a.hold,
        retries: a.retries,
    };
    let r = crate::submit::submit(&a.campaign, &opts, &crate::slurm::Slurm::default())?;
    out.submitted(&r, a.dry_run)?;
    if !r.rejected.is_empty() {
        bail!(
            "{} job(s) rejected by Slurm (left unsubmitted; the rest of the state is intact)",
            r.rejected.len()
        );
    }
    Ok(())
}

fn status_cmd(a: StatusArgs, out: &dyn Output) -> Result<()> {
    let slurm = crate::slurm::Slurm::default();
    if !a.watch {
        let r = crate::status::poll(&a.campaign, &slurm)?;
        return out.status(&r, a.all);
    }
    let tty = out.progress();
    let mut interval = std::time::Duration::from_secs(2);
    let mut last: Option<String> = None;
    let bar = tty.then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ended  {msg}")
        {
            b.set_style(style);
        }
        b
    });
    loop {
        let r = crate::status::poll(&a.campaign, &slurm)?;
        let summary: String = r
            .counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let ended = r.jobs.iter().filter(|j| j.state.is_terminal()).count();
        let changed = last.as_deref() != Some(summary.as_str());
        if let Some(b) = &bar {
            b.set_length(r.jobs.len() as u64);
            b.set_position(ended as u64);
            b.set_message(summary.clone());
        } else if changed {
            out.status_changed(&r, &summary)?;
        }
        for e in &r.errors {
            eprintln!("warning: {e}");
        }
        if r.done {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            out.status_ended(&r, a.all);
            return Ok(());
        }
        // Back off while nothing changes (at most two polls a minute when idle).
        interval = crate::status::next_interval(interval, changed);
        last = Some(summary);
        std::thread::sleep(crate::submit::jitter(interval));
    }
}

fn cancel_cmd(a: CancelArgs, out: &dyn Output) -> Result<()> {
    let r = crate::submit::cancel(
        &a.campaign,
        &a.stages,
        &a.jobs,
        &crate::slurm::Slurm::default(),
    )?;
    out.cancelled(&r)
}

fn collect_cmd(a: CollectArgs, out: &dyn Output) -> Result<()> {
    let patterns = match &a.patterns {
        Some(p) => spec::load(p)?.spec.collect.patterns,
        None => Vec::new(),
    };
    let progress = out.progress();
    let r = match (&a.campaign, &a.logs) {
        (Some(dir), _) => {
            let m = crate::campaign::Manifest::load(dir)?;
            let dest = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(&m.campaign));
            crate::collect::collect_campaign(
                dir,
                &crate::collect::Options {
                    out: dest,
                    force: a.force,
                    progress,
                    patterns: patterns.clone(),
                    render_json: out.json(),
                },
            )?
        }
        (None, Some(logs)) => {
            if !logs.is_dir() {
                bail!("{}: not a directory", logs.display());
            }
            let name = std::fs::canonicalize(logs)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
                .unwrap_or_else(|| "logs".into());
            let dest = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(name));
            crate::collect::collect_logs(
                logs,
                &crate::collect::Options {
                    out: dest,
                    force: a.force,
                    progress,
                    patterns: patterns.clone(),
                    render_json: out.json(),
                },
            )?
        }
        (None, None) => bail!("give a campaign directory or --logs DIR"),
    };
    out.collected(&r)?;
    // The report of a large tree is many small allocations: the process ends without
    // waiting for them to be freed.
    std::thread::spawn(move || drop(r));
    Ok(())
}

fn local_cmd(a: SubmitArgs, out: &dyn Output) -> Result<()> {
    let opts = crate::local::LocalOptions {
        stages: a.stages,
        dry_run: a.dry_run,
        rerun: a.rerun,
    };
    let r = crate::local::run(&a.campaign, &opts)?;
    out.ran_locally(&r, a.dry_run)
}

/// The embedded default: sweep's own demo campaign and the local profile, compiled in.
const DEMO_SWEEP: &str = include_str!("../../sweeps/demo.toml");
const DEMO_PROFILE: &str = include_str!("../../slurm/clusters/local.toml");

fn demo_cmd(a: DemoArgs, out: &dyn Output) -> Result<()> {
    let dir = a.out.unwrap_or_else(|| PathBuf::from("runs/demo"));
    let results = a.results.unwrap_or_else(|| PathBuf::from("results/demo"));
    let input = std::env::temp_dir().join(format!("sweep-demo-{}", std::process::id()));
    std::fs::create_dir_all(&input)?;
    let (sweep_path, profile_path) = (input.join("demo.toml"), input.join("local.toml"));
    std::fs::write(&sweep_path, DEMO_SWEEP)?;
    std::fs::write(&profile_path, DEMO_PROFILE)?;
    let expanded = expand_cmd(
        ExpandArgs {
            sweep: sweep_path,
            out: Some(dir.clone()),
            dry_run: false,
            templates: None,
            profile: Some(profile_path),
            all: false,
            strict: false,
            max_points: expand::DEFAULT_MAX_POINTS,
            force: false,
        },
        &super::output::Quiet,
    );
    let _ = std::fs::remove_dir_all(&input);
    expanded?;
    out.demo_expanded(&dir);
    let opts = crate::local::LocalOptions {
        stages: Vec::new(),
        dry_run: false,
        rerun: true,
    };
    let r = crate::local::run(&dir, &opts)?;
    let progress = out.progress();
    let c = crate::collect::collect_campaign(
        &dir,
        &crate::collect::Options {
            out: results,
            force: false,
            progress,
            patterns: Vec::new(),
            render_json: false,
        },
    )?;
    out.demo_done(&dir, &r, &c)
}

fn check_cmd(a: CheckArgs, out: &dyn Output) -> Result<()> {
    let (sweep, profile, _) = load(&a.sweep, a.profile.as_deref())?;
    let plan = expand::expand_capped(&sweep, &profile, a.max_points)?;
    let r = crate::check::check(&sweep, &profile, &plan);
    out.checked(&r, a.all)?;
    let errors = r.count(crate::check::Level::Error);
    let warnings = r.count(crate::check::Level::Warning);
    if errors > 0 || (a.strict && warnings > 0) {
        bail!("plan check failed: {errors} error(s), {warnings} warning(s)");
    }
    Ok(())
}

/// Collects a campaign (incrementally) into `out` and analyses it.
pub fn collect_and_analyze(
    dir: &Path,
    out_dir: Option<PathBuf>,
) -> Result<(PathBuf, crate::analyze::Analysis)> {
    let m = crate::campaign::Manifest::load(dir)?;
    let dest = out_dir.unwrap_or_else(|| PathBuf::from("results").join(&m.campaign));
    crate::collect::collect_campaign(
        dir,
        &crate::collect::Options {
            out: dest.clone(),
            ..Default::default()
        },
    )?;
    let a = crate::analyze::analyze(dir, &dest)?;
    crate::analyze::write_tables(&a, &dest)?;
    Ok((dest, a))
}

fn analyze_cmd(a: AnalyzeArgs, out: &dyn Output) -> Result<()> {
    let (dest, an) = collect_and_analyze(&a.campaign, a.out)?;
    out.analyzed(&an, &dest)
}

fn report_cmd(a: AnalyzeArgs, out: &dyn Output) -> Result<()> {
    let m = crate::campaign::Manifest::load(&a.campaign)?;
    let (dest, an) = collect_and_analyze(&a.campaign, a.out)?;
    // The plan check of the campaign as expanded (its own copies of the sweep file and profile).
    let check = load(
        &a.campaign.join("sweep.toml"),
        Some(&a.campaign.join("profile.toml")),
    )
    .ok()
    .and_then(|(sw, prof, _)| {
        expand::expand(&sw, &prof)
            .ok()
            .map(|plan| crate::check::check(&sw, &prof, &plan))
    });
    let inputs = crate::report::ReportInputs {
        campaign_dir: &a.campaign,
        results: &dest,
        campaign: &m.campaign,
        analysis: &an,
        check: check.as_ref(),
    };
    let (html, md) = crate::report::write(&inputs, &dest)?;
    out.reported(&html, &md, &dest)
}

fn profile_cmd(c: ProfileCmd, out: &dyn Output) -> Result<()> {
    let ProfileCmd::Import {
        topo,
        lscpu,
        name,
        nodes,
        partition,
        gpu_model,
        peak_bf16_tflops,
        hbm_gib,
        nic_rate_gbps,
        out: dest,
    } = c;
    let read = |p: &Path| -> Result<String> {
        if p == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            Ok(s)
        } else {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        }
    };
    let opts = crate::profile_import::ImportOptions {
        name,
        nodes,
        partition,
        gpu_model,
        peak_bf16_tflops,
        hbm_gib,
        nic_rate_gbps,
        lscpu: lscpu.as_deref().map(read).transpose()?,
    };
    if let Some(p) = &dest
        && p.exists()
    {
        bail!(
            "{} exists: sweep does not overwrite it; remove it or choose another --out",
            p.display()
        );
    }
    let text = crate::profile_import::import(&read(&topo)?, &opts)
        .with_context(|| topo.display().to_string())?;
    // What is written must load as a profile.
    Profile::parse(dest.as_deref().unwrap_or(Path::new("imported.toml")), &text)?;
    match dest {
        Some(p) => {
            std::fs::write(&p, &text).with_context(|| format!("writing {}", p.display()))?;
            out.profile_written(&p);
        }
        None => out.profile_text(&text),
    }
    Ok(())
}
