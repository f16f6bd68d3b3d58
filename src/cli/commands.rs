//! One function per subcommand: resolve its flags, call one pipeline of the library, show the
//! result through the [`Output`] chosen from the global flags.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::args::*;
use super::output::{self, Output};
use crate::pipeline::{self, ExpandOutcome};

pub fn run(cli: Cli) -> Result<()> {
    let out = output::choose(cli.output);
    let out = out.as_ref();
    match cli.cmd {
        Cmd::Expand(a) => expand(a, out),
        Cmd::Templates(t) => templates(t, out),
        Cmd::Profile(p) => profile(p, out),
        Cmd::Submit(a) => submit_cmd(a, out),
        Cmd::Status(a) => status_cmd(a, out),
        Cmd::Cancel(a) => cancel_cmd(a, out),
        Cmd::Collect(a) => collect_cmd(a, out),
        Cmd::Demo(a) => demo(a, out),
        Cmd::Check(a) => check(a, out),
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

fn expand(a: ExpandArgs, out: &dyn Output) -> Result<()> {
    let options = pipeline::ExpandOptions {
        sweep: a.sweep,
        out: a.out,
        dry_run: a.dry_run,
        templates: a.templates,
        profile: a.profile,
        strict: a.strict,
        max_points: a.max_points,
        force: a.force,
    };
    match pipeline::expand(&options, out)? {
        ExpandOutcome::Planned(plan) => out.expand_planned(&plan, a.all),
        ExpandOutcome::Written { plan, written, dir } => {
            out.expand_written(&plan, &written, &dir, a.all)
        }
    }
}

fn templates(t: TemplatesCmd, out: &dyn Output) -> Result<()> {
    match t {
        TemplatesCmd::List { templates } => {
            out.templates_listed(&pipeline::templates_list(templates)?)
        }
        TemplatesCmd::Show { name, templates } => {
            out.template_source(&pipeline::template_source(&name, templates)?);
            Ok(())
        }
        TemplatesCmd::Check { file, sweep, print } => {
            let checked = pipeline::template_check(&file, sweep.as_deref())?;
            if print {
                out.template_source(&checked.script);
                Ok(())
            } else {
                out.template_checked(&file, &checked.job)
            }
        }
    }
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
        Some(p) => crate::spec::load(p)?.spec.collect.patterns,
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

fn demo(a: DemoArgs, out: &dyn Output) -> Result<()> {
    let d = pipeline::demo(a.out, a.results, out.progress(), out)?;
    out.demo_done(&d.dir, &d.local, &d.collect)
}

fn check(a: CheckArgs, out: &dyn Output) -> Result<()> {
    let c = pipeline::check(&a.sweep, a.profile.as_deref(), a.max_points, a.strict)?;
    out.checked(&c.report, a.all)?;
    c.verdict()
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
    let check = pipeline::load(
        &a.campaign.join("sweep.toml"),
        Some(&a.campaign.join("profile.toml")),
    )
    .ok()
    .and_then(|(sw, prof, _)| {
        crate::expand::expand(&sw, &prof)
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

fn profile(c: ProfileCmd, out: &dyn Output) -> Result<()> {
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
    let options = crate::profile_import::ImportOptions {
        name,
        nodes,
        partition,
        gpu_model,
        peak_bf16_tflops,
        hbm_gib,
        nic_rate_gbps,
        lscpu: None,
    };
    let imported = pipeline::profile_import(pipeline::ProfileImport {
        topo,
        lscpu,
        dest,
        options,
    })?;
    out.profile_imported(&imported);
    Ok(())
}
