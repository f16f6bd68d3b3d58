//! How a command's result reaches the terminal: one [`Output`] chosen from the global flags
//! (`--json`, `--quiet`), so the commands say what to show and never ask in which mode.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;

use super::args::OutputArgs;
use crate::analyze::Analysis;
use crate::campaign::WriteReport;
use crate::check::{CheckReport, Finding, Level};
use crate::collect;
use crate::local::LocalReport;
use crate::pipeline::{ImportedProfile, Reporter, SubmitOutcome};
use crate::plan::{self, PlanSummary};
use crate::status::StatusReport;
use crate::submit::{CancelReport, SubmitReport};

/// The plan table stops at this many jobs unless `--all`.
const PLAN_ROWS: usize = 200;
/// The check's findings table stops at this many rows unless `--all`.
const CHECK_ROWS: usize = 40;

/// Picks the output once, for the whole run.
pub(crate) fn choose(args: OutputArgs) -> Box<dyn Output> {
    if args.json {
        Box::new(Json)
    } else if args.quiet {
        Box::new(Quiet)
    } else {
        Box::new(Human)
    }
}

/// What each command shows, one method per result, and what its pipeline says on the way
/// ([`Reporter`]). The defaults are `--quiet`'s: nothing on stdout, except where a command's
/// output is its whole purpose (a template's source, a profile written to stdout), which every
/// mode prints.
pub(crate) trait Output: Reporter {
    /// Whether a long step may draw a progress bar (a person is watching stderr).
    fn progress(&self) -> bool {
        false
    }
    /// Whether the result is wanted as JSON (`collect` then renders it beside its tables).
    fn json(&self) -> bool {
        false
    }
    fn expand_planned(&self, _summary: &PlanSummary, _all: bool) -> Result<()> {
        Ok(())
    }
    fn expand_written(
        &self,
        _summary: &PlanSummary,
        _written: &WriteReport,
        _dir: &Path,
        _all: bool,
    ) -> Result<()> {
        Ok(())
    }
    fn templates_listed(&self, _list: &[(String, String)]) -> Result<()> {
        Ok(())
    }
    fn template_source(&self, text: &str) {
        print!("{text}");
    }
    fn template_checked(&self, _file: &Path, _job: &str) -> Result<()> {
        Ok(())
    }
    fn profile_imported(&self, p: &ImportedProfile) {
        if p.written.is_none() {
            print!("{}", p.text);
        }
    }
    fn submitted(&self, _r: &SubmitOutcome, _dry_run: bool) -> Result<()> {
        Ok(())
    }
    fn status(&self, _r: &StatusReport, _all: bool) -> Result<()> {
        Ok(())
    }
    /// `status --rebuild`: what the state was rebuilt from.
    fn rebuilt(&self, _r: &crate::reconcile::Rebuilt) -> Result<()> {
        Ok(())
    }
    /// `status --watch` without a progress bar: a poll whose counts changed.
    fn status_changed(&self, _r: &StatusReport, _counts: &str) -> Result<()> {
        Ok(())
    }
    /// `status --watch`: every job has ended.
    fn status_ended(&self, _r: &StatusReport, _all: bool) {}
    fn cancelled(&self, _r: &CancelReport) -> Result<()> {
        Ok(())
    }
    fn collected(&self, _r: &collect::Report) -> Result<()> {
        Ok(())
    }
    fn demo_done(&self, _dir: &Path, _local: &LocalReport, _c: &collect::Report) -> Result<()> {
        Ok(())
    }
    fn checked(&self, _r: &CheckReport, _all: bool) -> Result<()> {
        Ok(())
    }
    fn analyzed(&self, _a: &Analysis, _tables: &Path) -> Result<()> {
        Ok(())
    }
    fn reported(&self, _html: &Path, _md: &Path, _tables: &Path) -> Result<()> {
        Ok(())
    }
}

/// Tables and sentences for a person.
pub(crate) struct Human;
/// One JSON document per result on stdout (one line per change for `status --watch`).
pub(crate) struct Json;
/// Only errors.
pub(crate) struct Quiet;

impl Output for Quiet {}
impl Reporter for Quiet {}

fn rows(all: bool, default: usize) -> usize {
    if all { usize::MAX } else { default }
}

fn pretty<T: serde::Serialize + ?Sized>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Shared by the human and JSON outputs: stderr is the person's either way.
fn eprint_plan_findings(serious: &[&Finding], checked: &CheckReport, sweep: &Path) {
    for f in serious.iter().take(10) {
        eprintln!("{}: {}: {}", f.level.as_str(), f.subject, f.message);
        if let Some(fix) = &f.fix {
            eprintln!("  what fits: {fix}");
        }
    }
    if serious.len() > 10 {
        eprintln!("... {} more plan-check findings", serious.len() - 10);
    }
    eprintln!(
        "plan check: {} error(s), {} warning(s); `sweep check {}` explains them",
        checked.count(Level::Error),
        checked.count(Level::Warning),
        sweep.display()
    );
    let mut gated: Vec<&str> = checked
        .findings
        .iter()
        .filter(|f| f.level == Level::Error && checked.points.iter().any(|p| p.id == f.subject))
        .map(|f| f.subject.as_str())
        .collect();
    gated.dedup();
    if !gated.is_empty() {
        eprintln!(
            "`sweep submit` refuses the {} job(s) with error-level findings unless --skip-flagged (submit the rest) or --force",
            gated.len()
        );
    }
}

fn eprint_replaced(replaced: &[String]) {
    for r in replaced {
        eprintln!("--force: {r}");
    }
}

fn print_ran(r: &LocalReport) {
    for (j, id, state, code) in &r.ran {
        println!("ran {j} (local job {id}): {state}, exit code {code}");
    }
    for (j, why) in &r.skipped {
        println!("skipped {j}: {why}");
    }
}

impl Reporter for Human {
    fn plan_findings(&self, serious: &[&Finding], checked: &CheckReport, sweep: &Path) {
        eprint_plan_findings(serious, checked, sweep);
    }
    fn force_replaced(&self, replaced: &[String]) {
        eprint_replaced(replaced);
    }
    fn demo_expanded(&self, dir: &Path) {
        println!(
            "expanded the demo campaign into {}; running it here (local executor)",
            dir.display()
        );
    }
}

impl Output for Human {
    fn progress(&self) -> bool {
        std::io::stderr().is_terminal()
    }
    fn expand_planned(&self, summary: &PlanSummary, all: bool) -> Result<()> {
        print!("{}", plan::render(summary, rows(all, PLAN_ROWS)));
        Ok(())
    }
    fn expand_written(
        &self,
        summary: &PlanSummary,
        written: &WriteReport,
        dir: &Path,
        all: bool,
    ) -> Result<()> {
        print!("{}", plan::render(summary, rows(all, PLAN_ROWS)));
        println!(
            "{}: {} job(s) created, {} updated, {} unchanged",
            dir.display(),
            written.created,
            written.updated,
            written.unchanged
        );
        if !written.stale.is_empty() {
            println!(
                "note: {} job director{} no longer produced by the sweep file (left in place): {}",
                written.stale.len(),
                if written.stale.len() == 1 {
                    "y is"
                } else {
                    "ies are"
                },
                written.stale.join(", ")
            );
        }
        Ok(())
    }
    fn templates_listed(&self, list: &[(String, String)]) -> Result<()> {
        for (n, f) in list {
            println!("{n:<32} {f}");
        }
        Ok(())
    }
    fn template_checked(&self, file: &Path, job: &str) -> Result<()> {
        println!(
            "{}: renders for job `{job}` and passes bash -n",
            file.display()
        );
        Ok(())
    }
    fn profile_imported(&self, p: &ImportedProfile) {
        match &p.written {
            Some(path) => println!("wrote {}", path.display()),
            None => print!("{}", p.text),
        }
    }
    fn submitted(&self, r: &SubmitOutcome, dry_run: bool) -> Result<()> {
        match r {
            SubmitOutcome::Slurm(r) => print_submitted(r, dry_run),
            SubmitOutcome::Local(r) => print_ran_locally(r, dry_run),
        }
        Ok(())
    }
    fn status(&self, r: &StatusReport, all: bool) -> Result<()> {
        print!("{}", crate::status::render(r, all));
        Ok(())
    }
    fn rebuilt(&self, r: &crate::reconcile::Rebuilt) -> Result<()> {
        print!("{}", r.render());
        Ok(())
    }
    fn status_changed(&self, _r: &StatusReport, counts: &str) -> Result<()> {
        println!("{counts}");
        Ok(())
    }
    fn status_ended(&self, r: &StatusReport, all: bool) {
        print!("{}", crate::status::render(r, all));
    }
    fn cancelled(&self, r: &CancelReport) -> Result<()> {
        for (j, id) in &r.cancelled {
            println!("cancelled {j} ({id})");
        }
        println!(
            "{} cancelled, {} not active",
            r.cancelled.len(),
            r.not_active.len()
        );
        Ok(())
    }
    fn collected(&self, r: &collect::Report) -> Result<()> {
        print!("{}", collect::render_summary(r));
        Ok(())
    }
    fn demo_done(&self, _dir: &Path, local: &LocalReport, c: &collect::Report) -> Result<()> {
        print_ran(local);
        print!("{}", collect::render_summary(c));
        Ok(())
    }
    fn checked(&self, r: &CheckReport, all: bool) -> Result<()> {
        print!("{}", crate::check::render(r, rows(all, CHECK_ROWS)));
        Ok(())
    }
    fn analyzed(&self, a: &Analysis, tables: &Path) -> Result<()> {
        print!("{}", crate::analyze::render(a));
        println!(
            "tables in {}: scaling.csv, nccl_summary.csv, links.csv, targets.csv, repeats.csv, jobs.csv",
            tables.display()
        );
        Ok(())
    }
    fn reported(&self, html: &Path, md: &Path, _tables: &Path) -> Result<()> {
        println!("{}\n{}", html.display(), md.display());
        Ok(())
    }
}

fn print_submitted(r: &SubmitReport, dry_run: bool) {
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    for c in &r.commands {
        println!("{c}");
    }
    for (j, id) in &r.reconciled {
        println!("reconciled {j} -> Slurm job {id} (submitted before a crash)");
    }
    for (j, id) in &r.submitted {
        println!("submitted {j} -> {id}");
    }
    for (j, why) in &r.rejected {
        println!("REJECTED {j}: {why}");
    }
    for (j, why) in &r.skipped {
        println!("skipped {j}: {why}");
    }
    for (j, why) in &r.flagged {
        println!("skipped {j} (plan check): {why}");
    }
    if !dry_run {
        println!(
            "{} submitted, {} already submitted, {} rejected, {} skipped",
            r.submitted.len(),
            r.already,
            r.rejected.len(),
            r.skipped.len() + r.flagged.len()
        );
    }
}

fn print_ran_locally(r: &LocalReport, dry_run: bool) {
    for c in &r.commands {
        println!("{c}");
    }
    print_ran(r);
    if !dry_run {
        println!(
            "{} ran, {} already ran, {} skipped",
            r.ran.len(),
            r.already,
            r.skipped.len()
        );
    }
}

impl Reporter for Json {
    fn plan_findings(&self, serious: &[&Finding], checked: &CheckReport, sweep: &Path) {
        eprint_plan_findings(serious, checked, sweep);
    }
    fn force_replaced(&self, replaced: &[String]) {
        eprint_replaced(replaced);
    }
}

impl Output for Json {
    fn json(&self) -> bool {
        true
    }
    fn expand_planned(&self, summary: &PlanSummary, _all: bool) -> Result<()> {
        pretty(summary)
    }
    fn expand_written(
        &self,
        summary: &PlanSummary,
        written: &WriteReport,
        dir: &Path,
        _all: bool,
    ) -> Result<()> {
        pretty(&serde_json::json!({"plan": summary, "written": written, "dir": dir}))
    }
    fn templates_listed(&self, list: &[(String, String)]) -> Result<()> {
        let v: Vec<_> = list
            .iter()
            .map(|(n, f)| serde_json::json!({"name": n, "source": f}))
            .collect();
        pretty(&v)
    }
    fn template_checked(&self, file: &Path, job: &str) -> Result<()> {
        println!(
            "{}",
            serde_json::json!({"template": file, "job": job, "ok": true})
        );
        Ok(())
    }
    fn submitted(&self, r: &SubmitOutcome, _dry_run: bool) -> Result<()> {
        match r {
            SubmitOutcome::Slurm(r) => pretty(r),
            SubmitOutcome::Local(r) => pretty(r),
        }
    }
    fn status(&self, r: &StatusReport, _all: bool) -> Result<()> {
        pretty(r)
    }
    fn rebuilt(&self, r: &crate::reconcile::Rebuilt) -> Result<()> {
        pretty(r)
    }
    fn status_changed(&self, r: &StatusReport, _counts: &str) -> Result<()> {
        println!("{}", serde_json::to_string(r)?);
        Ok(())
    }
    fn cancelled(&self, r: &CancelReport) -> Result<()> {
        pretty(r)
    }
    fn collected(&self, r: &collect::Report) -> Result<()> {
        // Megabytes for a large tree: the bytes made beside the tables (`Report::json`),
        // else streamed to stdout, not built as one string first.
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
        match &r.json {
            Some(bytes) => w.write_all(bytes)?,
            None => serde_json::to_writer_pretty(&mut w, r)?,
        }
        writeln!(w)?;
        w.flush()?;
        Ok(())
    }
    fn demo_done(&self, dir: &Path, local: &LocalReport, c: &collect::Report) -> Result<()> {
        pretty(&serde_json::json!({"campaign": dir, "local": local, "collect": c}))
    }
    fn checked(&self, r: &CheckReport, _all: bool) -> Result<()> {
        pretty(r)
    }
    fn analyzed(&self, a: &Analysis, _tables: &Path) -> Result<()> {
        pretty(a)
    }
    fn reported(&self, html: &Path, md: &Path, tables: &Path) -> Result<()> {
        println!(
            "{}",
            serde_json::json!({"report": html, "summary": md, "tables": tables})
        );
        Ok(())
    }
}

/// `status --watch`: a progress bar while a person watches stderr, else a line (or a JSON
/// document) each time the counts change; the pollers' warnings go to stderr in every mode.
pub(crate) struct StatusWatch<'a> {
    out: &'a dyn Output,
    bar: Option<indicatif::ProgressBar>,
}

impl<'a> StatusWatch<'a> {
    pub(crate) fn new(out: &'a dyn Output) -> Self {
        let bar = out.progress().then(|| {
            let b = indicatif::ProgressBar::new(0);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ended  {msg}")
            {
                b.set_style(style);
            }
            b
        });
        StatusWatch { out, bar }
    }

    pub(crate) fn polled(&self, r: &StatusReport, counts: &str, changed: bool) -> Result<()> {
        if let Some(b) = &self.bar {
            let ended = r.jobs.iter().filter(|j| j.state.is_terminal()).count();
            b.set_length(r.jobs.len() as u64);
            b.set_position(ended as u64);
            b.set_message(counts.to_string());
        } else if changed {
            self.out.status_changed(r, counts)?;
        }
        for e in &r.errors {
            eprintln!("warning: {e}");
        }
        Ok(())
    }

    pub(crate) fn ended(self, r: &StatusReport, all: bool) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.out.status_ended(r, all);
    }
}
