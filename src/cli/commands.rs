//! One function per subcommand: resolve its flags, call one pipeline of the library, show the
//! result through the [`Output`] chosen from the global flags.

use anyhow::{Result, bail};

use super::args::{
    AnalyzeArgs, CancelArgs, CheckArgs, Cli, Cmd, CollectArgs, DemoArgs, ExpandArgs, ProfileCmd,
    StatusArgs, SubmitArgs, TemplatesCmd,
};
use super::output::{self, Output, StatusWatch};
use crate::pipeline::{self, ExpandOutcome};

pub fn run(cli: Cli) -> Result<()> {
    let out = output::choose(cli.output);
    let out = out.as_ref();
    match cli.cmd {
        Cmd::Expand(a) => expand(a, out),
        Cmd::Templates(t) => templates(t, out),
        Cmd::Profile(p) => profile(p, out),
        Cmd::Submit(a) => submit(a, out),
        Cmd::Status(a) => status(a, out),
        Cmd::Cancel(a) => cancel(a, out),
        Cmd::Collect(a) => collect(a, out),
        Cmd::Demo(a) => demo(a, out),
        Cmd::Check(a) => check(a, out),
        Cmd::Analyze(a) => analyze(a, out),
        Cmd::Report(a) => report(a, out),
        Cmd::LocalExec { args } => local_exec(&args),
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
        sets: a.sets,
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

fn submit(a: SubmitArgs, out: &dyn Output) -> Result<()> {
    let request = pipeline::SubmitRequest {
        executor: a.executor,
        slurm: crate::submit::SubmitOptions {
            stages: a.stages,
            max_in_flight: a.max_in_flight,
            dry_run: a.dry_run,
            hold: a.hold,
            retries: a.retries,
            skip_flagged: a.skip_flagged,
            ..Default::default()
        },
        force: a.force,
        rerun: a.rerun,
    };
    let outcome = pipeline::submit(&a.campaign, request)?;
    out.submitted(&outcome, a.dry_run)?;
    outcome.verdict()
}

fn status(a: StatusArgs, out: &dyn Output) -> Result<()> {
    if a.rebuild {
        out.rebuilt(&pipeline::rebuild_status(&a.campaign)?)?;
    }
    if !a.watch {
        let r = pipeline::status(&a.campaign)?;
        out.status(&r, a.all)?;
        return pipeline::status_verdict(&r);
    }
    let watch = StatusWatch::new(out);
    let give_up = std::time::Duration::from_secs(a.give_up_after);
    let (r, end) = pipeline::watch_status(&a.campaign, give_up, &mut |r, counts, changed| {
        watch.polled(r, counts, changed)
    })?;
    watch.ended(&r, a.all);
    match end {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn cancel(a: CancelArgs, out: &dyn Output) -> Result<()> {
    out.cancelled(&pipeline::cancel(&a.campaign, &a.stages, &a.jobs)?)
}

fn collect(a: CollectArgs, out: &dyn Output) -> Result<()> {
    let r = pipeline::collect(&pipeline::CollectRequest {
        campaign: a.campaign,
        logs: a.logs,
        out: a.out,
        force: a.force,
        patterns: a.patterns,
        include: a.include,
        progress: out.progress(),
        render_json: out.json(),
    })?;
    out.collected(&r)?;
    // The report of a large tree is many small allocations: the process ends without
    // waiting for them to be freed.
    std::thread::spawn(move || drop(r));
    Ok(())
}

fn demo(a: DemoArgs, out: &dyn Output) -> Result<()> {
    let d = pipeline::demo(a.out, a.results, out.progress(), out)?;
    out.demo_done(&d.dir, &d.local, &d.collect)
}

fn check(a: CheckArgs, out: &dyn Output) -> Result<()> {
    let c = pipeline::check(
        &a.sweep,
        a.profile.as_deref(),
        a.max_points,
        a.strict,
        a.measured.as_deref(),
    )?;
    out.checked(&c.report, a.all)?;
    c.verdict()
}

fn analyze(a: AnalyzeArgs, out: &dyn Output) -> Result<()> {
    let (tables, analysis) = pipeline::collect_and_analyze(&a.campaign, a.out)?;
    out.analyzed(&analysis, &tables)
}

fn report(a: AnalyzeArgs, out: &dyn Output) -> Result<()> {
    let r = pipeline::report(&a.campaign, a.out)?;
    out.reported(&r.html, &r.summary, &r.tables)
}

/// The local executor's stand-ins for `srun` and `scontrol`, run inside its jobs: they end
/// the process with the exit status of what they ran.
fn local_exec(args: &[String]) -> Result<()> {
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
