//! `sweep collect`: every log of a campaign (or of any directory tree) parsed once, in parallel
//! and streamed, into tidy CSV tables (`nccl.csv`, `runs.csv`, `steps.csv`, `gpu.csv`,
//! `failures.csv`) and a summary. Incremental: a cache keyed by path, size, modification time and
//! parser version means an unchanged file is never read again.
//!
//! Here the entry points (`collect_campaign`, `collect_logs`) find the runs and their files
//! and `finish` drives the rest, each step in its own file: `cache` (the parse cache, the
//! fingerprint, the files changed since), `parse` (the changed files parsed on every core),
//! `summarize` (one parsed log reduced to a [`FileResult`], whose types are in `file_result`),
//! `steps` (step rows, warm-up, steady steps), `aggregate` (a run's figures and failure from its
//! files), `tables` (the CSV tables written) and `summary` (`render_summary`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indexmap::IndexMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::campaign::Manifest;
use crate::job_state::JobState;
use crate::parsers::{self, failures::FailureClass};

mod aggregate;
mod cache;
mod file_result;
mod parse;
mod steps;
mod summarize;
mod summary;
mod tables;

use aggregate::aggregate_run;
use cache::{changed_files, current_report, fingerprint, fingerprint_file, load_cache, mtime_ns};
pub use file_result::FileResult;
use file_result::NcclFacts;
use parse::parse_files;
pub use summarize::summarize;
pub(crate) use summary::render_summary;
use tables::{Files, Tables};

/// Bump when parsing or what is kept per file changes: cached results of older versions are
/// re-read.
pub(crate) const PARSER_VERSION: u32 = 15;
/// Per-file results, binary (postcard): a large tree's cache is tens of MB, which JSON takes
/// several times longer to write and read.
pub const CACHE_FILE: &str = ".collect-cache.bin";
/// The last report and what it was computed from (see `finish`).
const FINGERPRINT_FILE: &str = ".collect-fingerprint.json";
/// Every table `collect` writes.
pub(crate) const TABLES: &[&str] = &[
    "nccl.csv",
    "runs.csv",
    "steps.csv",
    "gpu.csv",
    "failures.csv",
    "binding.csv",
    "net.csv",
    "power.csv",
    "preflight.csv",
];

/// Warm-up steps excluded from steady-state figures when the point does not say
/// (`warmup_steps`) and the log does not mark them.
pub(crate) const DEFAULT_WARMUP_STEPS: usize = 2;

/// A source of the collection: a file, and the run (job or file) it belongs to.
#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    key: String,
    run: usize,
}

/// One row of `runs.csv`: a job of a campaign, or a file of `--logs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// Telemetry sources a job's files say are missing (`dcgm-<node>.unavailable`, ...).
    #[serde(skip)]
    pub unavailable: Vec<String>,
    pub run: String,
    pub stage: String,
    pub params: IndexMap<String, Json>,
    pub dir: PathBuf,
    pub status: String,
    #[serde(with = "crate::rows::class_text")]
    pub failure_class: Option<FailureClass>,
    pub failure_evidence: String,
    pub figures: IndexMap<String, Option<f64>>,
    /// What the run's NCCL debug output says (runs.csv's `nccl_*` columns); left out of the
    /// JSON report where it says nothing (most runs of a large tree).
    #[serde(default, skip_serializing_if = "NcclFacts::is_empty")]
    pub nccl: NcclFacts,
    pub sources: Vec<String>,
    /// A file of `--logs`: no job state; its `status` is what was read ([`aggregate`]'s
    /// `logs_status`).
    #[serde(skip)]
    pub of_file: bool,
}

#[derive(Default)]
pub(crate) struct Options {
    pub out: PathBuf,
    pub force: bool,
    pub progress: bool,
    /// `[[collect.pattern]]`s; a campaign's own (its `sweep.toml`) are added to these.
    pub patterns: Vec<crate::spec::PatternSpec>,
    /// Render the report as pretty JSON ([`Report::json`]) while the tables are written.
    pub render_json: bool,
    /// `--logs` files named to be sources whatever their kind ([`is_logs_source`]): a path under
    /// the tree or a file name.
    pub include: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub out: PathBuf,
    pub files: usize,
    pub parsed: usize,
    pub cached: usize,
    pub bytes_parsed: u64,
    pub runs: Vec<Run>,
    pub warnings: Vec<String>,
    pub tables: Vec<String>,
    /// With `Options::render_json`, the report's own pretty JSON (what
    /// `serde_json::to_vec_pretty` of it gives), made beside the tables for the fingerprint
    /// file: megabytes for a large tree, serialised once, not again for `collect --json`.
    /// `None` when the last report stood (nothing was parsed).
    #[serde(skip)]
    pub json: Option<Vec<u8>>,
}

const SKIP_FILES: &[&str] = &[
    "job.sbatch",
    "point.json",
    "ds_config.json",
    "rank-wrapper.sh",
    "telemetry.sh",
    "preflight-probe.sh",
    "started",
    "finished",
];

fn is_log_candidate(name: &str) -> bool {
    !(SKIP_FILES.contains(&name)
        || name.ends_with(".tmp")
        || name.starts_with('.')
        || name.ends_with(".unavailable"))
}

/// Whether a file of a `--logs` tree is a source (a run of its own). Every file is, except
/// what is plainly not a log:
/// - a Markdown note (`.md`, `.markdown`);
/// - a `.csv` that is not `nvidia-smi --query-gpu` output (its first line is not a query header,
///   a `--query-gpu=` command line or a `noheader` sample: [`parsers::nvidia_smi::is_query_csv`]);
/// - a `.json` that is not an nccl-tests `-J` report (a config: DeepSpeed's, a point, ...;
///   [`parsers::is_nccl_tests_json`]).
///
/// A file named with `--include` (its path under the tree, `rel`, or its file name) is a
/// source whatever its kind. Extensions are compared case-insensitively; a file that cannot be
/// read is a source (the parse reports why).
fn is_logs_source(path: &Path, rel: &str, include: &[String]) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if include.iter().any(|i| i == rel || *i == name) {
        return true;
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let head = |limit: u64| -> Option<String> {
        use std::io::Read;
        let mut b = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .take(limit)
            .read_to_end(&mut b)
            .ok()?;
        Some(String::from_utf8_lossy(&b).into_owned())
    };
    match ext.as_str() {
        "md" | "markdown" => false,
        "csv" => head(4096).is_none_or(|h| parsers::nvidia_smi::is_query_csv(&h)),
        "json" => head(parsers::MAX_JSON_BYTES).is_none_or(|t| parsers::is_nccl_tests_json(&t)),
        _ => true,
    }
}

/// Collects a campaign directory (one run per job).
pub(crate) fn collect_campaign(dir: &Path, opts: &Options) -> Result<Report> {
    let m = Manifest::load(dir)?;
    // The logs are still worth reading when the state is not; but no job may then pass for
    // `unsubmitted` without a word.
    let (state, state_warning) = match crate::state::State::load(dir) {
        Ok(s) => (s, None),
        Err(e) => (
            crate::state::State::default(),
            Some(format!(
                "{e:#}; job states below come from the job markers only (`unknown` where there is none)"
            )),
        ),
    };
    let mut runs = Vec::new();
    let mut sources = Vec::new();
    for job in &m.jobs {
        let jd = dir.join(&job.dir);
        let point: Json = std::fs::read_to_string(jd.join("point.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Json::Null);
        let mut params: IndexMap<String, Json> = IndexMap::new();
        if let Some(p) = point.get("params").and_then(|p| p.as_object()) {
            for (k, v) in p {
                params.insert(k.clone(), v.clone());
            }
        }
        if let Some(m) = point.get("model").filter(|m| m.is_object()) {
            params.insert("__model".into(), m.clone());
        }
        let js = state.jobs.get(&job.id).cloned().unwrap_or_default();
        let mut status = js.state.clone().unwrap_or(if state_warning.is_some() {
            JobState::Unknown
        } else {
            JobState::Unsubmitted
        });
        // A finished marker speaks for the current attempt unless status saw Slurm requeue the
        // job after the attempt that wrote it (then the job is Slurm's again, as status says).
        if let Some(sid) = &js.slurm_id
            && let Some(f) = crate::markers::read_finished(&jd).filter(|f| {
                &f.slurm_job_id == sid
                    && !(js.state.as_ref().is_some_and(JobState::is_active)
                        && js.restarts.unwrap_or(0) > f.restart_count)
            })
        {
            status = crate::markers::state_from_marker(&jd, &f).0;
        }
        let idx = runs.len();
        let mut unavailable = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&jd) {
            let mut names: Vec<_> = rd.flatten().filter(|e| e.path().is_file()).collect();
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let name = e.file_name().to_string_lossy().to_string();
                if name.ends_with(".unavailable") {
                    unavailable.push(name.clone());
                }
                if is_log_candidate(&name) {
                    sources.push(Source {
                        key: format!("{}/{name}", job.dir),
                        path: e.path(),
                        run: idx,
                    });
                }
            }
        }
        runs.push(Run {
            run: job.id.clone(),
            stage: job.stage.clone(),
            params,
            dir: jd,
            status: status.to_string(),
            unavailable,
            ..Default::default()
        });
    }
    let profile = crate::profile::Profile::parse(
        &dir.join("profile.toml"),
        &std::fs::read_to_string(dir.join("profile.toml")).unwrap_or_default(),
    )
    .ok();
    // The campaign's own `[[collect.pattern]]`s, from its copy of the sweep file.
    let mut patterns = opts.patterns.clone();
    if let Ok(sw) = crate::spec::load(&dir.join("sweep.toml")) {
        for p in sw.spec.collect.patterns {
            if !patterns.iter().any(|q| q.name == p.name) {
                patterns.push(p);
            }
        }
    }
    let opts = Options {
        out: opts.out.clone(),
        force: opts.force,
        progress: opts.progress,
        patterns,
        render_json: opts.render_json,
        include: Vec::new(),
    };
    let mut report = finish(runs, sources, &opts, profile.as_ref())?;
    if let Some(w) = state_warning {
        report.warnings.insert(0, w);
        if report.json.is_some() {
            report.json = serde_json::to_vec_pretty(&report).ok();
        }
    }
    Ok(report)
}

/// Collects an arbitrary directory tree of logs (one run per file).
pub(crate) fn collect_logs(root: &Path, opts: &Options) -> Result<Report> {
    let out_abs = std::fs::canonicalize(&opts.out).ok();
    let mut runs = Vec::new();
    let mut sources = Vec::new();
    // Each directory's entries sorted by name, depth first: the paths come out in `Path`
    // order, with no sort of the whole list after (its component-wise comparisons took longer
    // than the walk on a tree of 10,000 files).
    let files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
            // The output is a directory: files need no canonical path (one `realpath` per
            // file of a large tree costs more than the walk).
            let is_out = e.file_type().is_dir()
                && out_abs
                    .as_ref()
                    .is_some_and(|o| std::fs::canonicalize(e.path()).ok().as_ref() == Some(o));
            !hidden && !is_out
        })
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    debug_assert!(files.is_sorted());
    for p in files {
        let key = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .to_string();
        if !is_logs_source(&p, &key, &opts.include) {
            continue;
        }
        let idx = runs.len();
        runs.push(Run {
            run: key.clone(),
            of_file: true,
            dir: p.parent().map(|x| x.to_path_buf()).unwrap_or_default(),
            ..Default::default()
        });
        sources.push(Source {
            path: p,
            key,
            run: idx,
        });
    }
    finish(runs, sources, opts, None)
}

fn finish(
    mut runs: Vec<Run>,
    sources: Vec<Source>,
    opts: &Options,
    profile: Option<&crate::profile::Profile>,
) -> Result<Report> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    // Stat everything first: when no file, status or parameter changed since the last collect
    // and its tables are all there, the last report stands and nothing is loaded or written.
    let metas: Vec<Option<(u64, u128)>> = sources
        .par_iter()
        .map(|s| {
            std::fs::metadata(&s.path)
                .ok()
                .map(|m| (m.len(), mtime_ns(&m)))
        })
        .collect();
    let pattern_key = serde_json::to_string(&opts.patterns)?;
    let fingerprint = fingerprint(&runs, &sources, &metas, &pattern_key, profile)?;
    let fp_path = opts.out.join(FINGERPRINT_FILE);
    if let Some(last) = current_report(opts, &fp_path, &fingerprint) {
        return Ok(last);
    }
    let cache_path = opts.out.join(CACHE_FILE);
    let mut cache = load_cache(opts, &cache_path, pattern_key);
    let parse_opts = parsers::ParseOptions {
        patterns: opts
            .patterns
            .iter()
            .filter_map(|p| {
                regex::Regex::new(&p.regex)
                    .ok()
                    .map(|r| (p.name.clone(), r))
            })
            .collect(),
        ..parsers::ParseOptions::default()
    };
    let todo = changed_files(&sources, &metas, &cache);
    let total_bytes: u64 = todo.iter().filter_map(|&i| metas[i].map(|m| m.0)).sum();
    let parsed = parse_files(
        &sources,
        &metas,
        &todo,
        &parse_opts,
        opts.progress,
        total_bytes,
    );
    let mut report = Report {
        out: opts.out.clone(),
        files: sources.len(),
        parsed: parsed.len(),
        ..Default::default()
    };
    report.cached = sources.len() - parsed.len();
    report.bytes_parsed = total_bytes;
    for (_, i, res) in parsed {
        match res {
            Ok(mut fr) => {
                if let Some((size, mt)) = metas[i] {
                    fr.size = size;
                    fr.mtime_ns = mt;
                }
                fr.version = PARSER_VERSION;
                cache.files.insert(sources[i].key.clone(), fr);
            }
            Err(e) => report.warnings.push(e),
        }
    }
    // Drop entries of files that are gone.
    let keys: std::collections::HashSet<&str> = sources.iter().map(|s| s.key.as_str()).collect();
    cache.files.retain(|k, _| keys.contains(k.as_str()));

    let mut per_run: Vec<Vec<&Source>> = vec![Vec::new(); runs.len()];
    for s in &sources {
        per_run[s.run].push(s);
    }
    // Runs are independent: each is aggregated into its own tables, joined in run order.
    let parts: Vec<(Tables, Vec<String>)> = runs
        .par_iter_mut()
        .zip(per_run.par_iter())
        .map(|(run, srcs)| aggregate_run(run, srcs, &cache, profile, opts))
        .collect();
    let mut tables = Tables::default();
    for (t, warnings) in parts {
        tables.append(t);
        report.warnings.extend(warnings);
    }
    // The report is whole before the tables are written (they are `TABLES`, in order), so
    // that it is serialised beside them.
    report.runs = runs;
    report.tables = TABLES.iter().map(|t| t.to_string()).collect();
    // The tables, the cache and the report's fingerprint file are independent outputs of
    // megabytes each: made side by side, on every core.
    let (written, (cached, json)) = rayon::join(
        || {
            let files = Files {
                per_run: &per_run,
                cache: &cache,
            };
            tables.write(&opts.out, &report.runs, &files)
        },
        || {
            rayon::join(
                || cache.save(&cache_path),
                || serde_json::to_vec_pretty(&report),
            )
        },
    );
    // Freeing the rows and the cache (millions of small allocations) takes a tenth of a
    // second on a large tree: no caller needs to wait for it.
    std::thread::spawn(move || drop((cache, tables)));
    let written = written?;
    debug_assert_eq!(written, report.tables, "the tables written are TABLES");
    cached?;
    // Last, once the tables and the cache are in place: a fingerprint file that says the
    // tables are current must never precede them.
    // The report's JSON once, for the fingerprint file and for `--json`'s output both (the
    // file is read back with `Fingerprinted`).
    let json = json?;
    crate::campaign::write_if_changed(&fp_path, &fingerprint_file(&fingerprint, &json)?)?;
    report.json = opts.render_json.then_some(json);
    Ok(report)
}
