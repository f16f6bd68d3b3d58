//! `sweep report`: one self-contained `report.html` (inline CSS and SVG charts drawn with
//! plotters; no script, no network), a one-page `summary.md`, and the CSV tables of `collect`
//! and `analyze` beside them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::prelude::*;

use crate::analyze::{Analysis, nranks_text};
use crate::check::{CheckReport, Level};
use crate::job_state::JobState;
use crate::rows::{
    FailureRow, NcclRow, NetRow, PowerRow, PreflightRow, RunRow, StepRow, read as read_rows,
};

/// A named line of a chart; `true`: drawn thin, without markers (an ideal line).
type Series = (String, Vec<(f64, f64)>, bool);

const W: u32 = 760;
const H: u32 = 340;
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of named series as an inline SVG; `None` when there is nothing to draw.
fn line_chart(
    title: &str,
    xdesc: &str,
    ydesc: &str,
    series: &[Series],
    log_x: bool,
) -> Option<String> {
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p, _)| p.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pts.is_empty() {
        return None;
    }
    let tx = |x: f64| if log_x { x.max(1.0).log2() } else { x };
    let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(tx(p.0)), b.max(tx(p.0)))
    });
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if x1 <= x0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    y0 = y0.min(0.0);
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    y1 *= 1.08;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .ok()?;
        let fmt_x = |x: &f64| {
            if log_x {
                human_bytes(2f64.powf(*x))
            } else {
                format!("{x:.0}")
            }
        };
        c.configure_mesh()
            .x_desc(xdesc)
            .y_desc(ydesc)
            .x_label_formatter(&fmt_x)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .ok()?;
        for (i, (name, p, dashed)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let data: Vec<(f64, f64)> = p.iter().map(|(x, y)| (tx(*x), *y)).collect();
            let style = if *dashed {
                ShapeStyle::from(&color).stroke_width(1)
            } else {
                ShapeStyle::from(&color).stroke_width(2)
            };
            let drawn = c.draw_series(LineSeries::new(data.clone(), style)).ok()?;
            drawn
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            if !*dashed {
                c.draw_series(
                    data.iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                )
                .ok()?;
            }
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// The plan check's schedule: one bar per stage on the reservation's hours (its window behind
/// it, grey; red when the stage ends past it), then the stage table.
fn schedule_chart(h: &mut String, sc: &crate::schedule::ScheduleReport) {
    use crate::timing::hms;
    h.push_str("<h3>Schedule (estimated)</h3>");
    let win = |w: &Option<String>| {
        w.as_deref()
            .and_then(|w| crate::schedule::parse_day_time(w).ok())
    };
    let start_of_day = sc
        .start
        .as_deref()
        .and_then(|s| crate::schedule::parse_start(s).ok())
        .map_or(0, |m| m.rem_euclid(1440));
    let span = sc
        .hours
        .map_or(sc.makespan_s, |x| x * 3600.0)
        .max(sc.makespan_s)
        .max(1.0);
    let (w, row, left) = (900.0, 22.0, 110.0);
    let x = |t: f64| left + (w - left - 10.0) * t / span;
    let height = row * sc.stages.len() as f64 + 30.0;
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-size=\"11\">"
    );
    for (i, st) in sc.stages.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        if let (Some(a), Some(b)) = (win(&st.window_start), win(&st.window_end)) {
            let (a, b) = (
                ((a - start_of_day) * 60) as f64,
                ((b - start_of_day) * 60) as f64,
            );
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#ddd\"/>",
                x(a),
                (x(b) - x(a)).max(1.0),
                row - 4.0
            );
        }
        let colour = if st.fits_window == Some(false) {
            "#c0392b"
        } else {
            "#2e86c1"
        };
        let _ = write!(
            h,
            "<text x=\"2\" y=\"{:.1}\">{}</text><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{} {} - {} ({})</title></rect>",
            y + row / 2.0 + 2.0,
            esc(&st.stage),
            x(st.start_s),
            y + 3.0,
            (x(st.end_s) - x(st.start_s)).max(1.0),
            row - 10.0,
            esc(&st.stage),
            esc(&st.start),
            esc(&st.end),
            hms(st.end_s - st.start_s)
        );
    }
    let _ = write!(
        h,
        "<text x=\"{left}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>",
        height - 6.0,
        esc(&crate::schedule::day_time(start_of_day, 0.0)),
        w - 10.0,
        height - 6.0,
        esc(&crate::schedule::day_time(start_of_day, span)),
    );
    let rows: Vec<Vec<String>> = sc
        .stages
        .iter()
        .map(|s| {
            vec![
                s.stage.clone(),
                s.jobs.to_string(),
                s.start.clone(),
                s.end.clone(),
                match (&s.window_start, &s.window_end) {
                    (Some(a), Some(b)) => format!("{a} - {b}"),
                    _ => "-".into(),
                },
                match s.fits_window {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    table(
        h,
        &["stage", "jobs", "start", "end", "window", "fits"],
        &rows,
    );
    let _ = write!(
        h,
        "<p class=\"note\">Makespan {} on {} node(s); critical path {} (from {}).</p>",
        hms(sc.makespan_s),
        sc.nodes,
        esc(&sc.critical_stages.join(" -> ")),
        esc(&sc.critical_from)
    );
}

fn human_bytes(b: f64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.0}{}", units[i])
}

/// Seconds since midnight of an nvidia-smi timestamp (`2026/12/02 13:26:33.468`).
fn smi_seconds(ts: &str) -> Option<f64> {
    let t = ts.split_whitespace().nth(1)?;
    let mut it = t.split(':');
    let h: f64 = it.next()?.parse().ok()?;
    let m: f64 = it.next()?.parse().ok()?;
    let s: f64 = it.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Per job: (utilisation, power) over seconds since the job's first sample, from its sampler files.
fn gpu_series(campaign: &Path, jobs: &[String]) -> (Vec<Series>, Vec<Series>, Vec<Series>) {
    let mut util = Vec::new();
    let mut power = Vec::new();
    let mut temp = Vec::new();
    for job in jobs {
        let dir = campaign.join("jobs").join(job);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !(name.starts_with("gpu-") && name.ends_with(".csv")) {
                continue;
            }
            let Ok(log) = crate::parsers::parse_file(e.path()) else {
                continue;
            };
            let mut t0 = None;
            let (mut u, mut p, mut tg, mut tm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for smp in &log.gpu_samples {
                let Some(t) = smp.timestamp.as_deref().and_then(smi_seconds) else {
                    continue;
                };
                let t0 = *t0.get_or_insert(t);
                let dt = if t >= t0 { t - t0 } else { t + 86400.0 - t0 };
                if let Some(x) = smp.util_gpu_pct {
                    u.push((dt, x));
                }
                if let Some(x) = smp.power_draw_w {
                    p.push((dt, x));
                }
                if let Some(x) = smp.temp_gpu_c {
                    tg.push((dt, x));
                }
                if let Some(x) = smp.temp_mem_c {
                    tm.push((dt, x));
                }
            }
            let label = format!(
                "{} {}",
                short(job),
                name.trim_start_matches("gpu-").trim_end_matches(".csv")
            );
            if !u.is_empty() {
                util.push((label.clone(), u, false));
            }
            if !tg.is_empty() {
                temp.push((format!("{label} GPU"), tg, false));
            }
            if !tm.is_empty() {
                temp.push((format!("{label} memory"), tm, true));
            }
            if !p.is_empty() {
                power.push((label, p, false));
            }
        }
    }
    (util, power, temp)
}

fn short(id: &str) -> String {
    id.rsplit_once('-')
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| id.to_string())
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            // A leading "!" marks a cell to highlight (a non-zero loss counter, say).
            if let Some(flagged) = c.strip_prefix('!') {
                let _ = write!(out, "<td class=\"bad\">{}</td>", esc(flagged));
                continue;
            }
            const OK: &str = " class=\"ok\"";
            const BAD: &str = " class=\"bad\"";
            let cls = match c.as_str() {
                "pass" => OK,
                "fail" | "error" => BAD,
                "warning" | "not measured" => " class=\"warn\"",
                // A job's status column.
                word => match JobState::from(word) {
                    JobState::Completed => OK,
                    JobState::Failed
                    | JobState::OutOfMemory
                    | JobState::Timeout
                    | JobState::Lost => BAD,
                    _ => "",
                },
            };
            let _ = write!(out, "<td{cls}>{}</td>", esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

fn n(v: Option<f64>) -> String {
    v.map(|x| {
        if x.abs() >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    })
    .unwrap_or_else(|| "-".into())
}

pub(crate) struct ReportInputs<'a> {
    pub campaign_dir: &'a Path,
    pub results: &'a Path,
    pub campaign: &'a str,
    pub analysis: &'a Analysis,
    pub check: Option<&'a CheckReport>,
}

/// What the report's sections share: the inputs and the tables read back.
struct Sections<'a> {
    inp: &'a ReportInputs<'a>,
    runs: Vec<RunRow>,
    nccl: Vec<NcclRow<'static>>,
    steps: Vec<StepRow<'static>>,
    failures: Vec<FailureRow>,
    preflight: Vec<PreflightRow>,
    net: Vec<NetRow>,
    power: Vec<PowerRow>,
}

/// The headline counts, given by the HTML summary and summary.md both.
struct Headlines<'r> {
    done: usize,
    failed: Vec<&'r RunRow>,
    best: Option<(f64, &'r RunRow)>,
    classes: std::collections::BTreeMap<&'r str, usize>,
    /// "2 oom, 1 timeout": the failures by class.
    classes_text: String,
    met: usize,
    missed: usize,
    unmeasured: usize,
}

/// Writes `report.html` and `summary.md` into `out`; returns their paths.
pub(crate) fn write(inp: &ReportInputs<'_>, out: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out)?;
    let s = Sections::load(inp)?;
    let hl = s.headlines();
    let mut h = String::new();
    s.head(&mut h);
    s.summary(&hl, &mut h);
    s.scaling(&mut h);
    s.bandwidth(&mut h);
    s.step_times(&mut h);
    s.jobs(&mut h);
    s.step_distribution(&mut h);
    s.gpu_telemetry(&mut h);
    s.preflight(&mut h);
    s.links(&mut h);
    s.node_telemetry(&mut h);
    s.targets(&mut h);
    s.plan_check(&mut h);
    s.failures(&mut h);
    s.provenance(&mut h);
    let html = out.join("report.html");
    crate::campaign::write_if_changed(&html, h.as_bytes())?;
    let md = out.join("summary.md");
    crate::campaign::write_if_changed(&md, s.summary_md(&hl).as_bytes())?;
    Ok((html, md))
}

impl<'a> Sections<'a> {
    /// The tables the sections read: runs.csv must be there; a missing or unreadable other
    /// table is a section with nothing to show.
    fn load(inp: &'a ReportInputs<'a>) -> Result<Self> {
        let table = |name: &str| inp.results.join(name);
        Ok(Sections {
            inp,
            runs: RunRow::read_all(&table("runs.csv"))?,
            nccl: read_rows(&table("nccl.csv")).unwrap_or_default(),
            steps: read_rows(&table("steps.csv")).unwrap_or_default(),
            failures: read_rows(&table("failures.csv")).unwrap_or_default(),
            preflight: read_rows(&table("preflight.csv")).unwrap_or_default(),
            net: read_rows(&table("net.csv")).unwrap_or_default(),
            power: read_rows(&table("power.csv")).unwrap_or_default(),
        })
    }

    fn job_names(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.run.clone()).collect()
    }

    fn headlines(&self) -> Headlines<'_> {
        let runs = &self.runs;
        let targets = &self.inp.analysis.targets;
        let failed: Vec<&RunRow> = runs.iter().filter(|r| r.failure_class.is_some()).collect();
        let classes: std::collections::BTreeMap<&str, usize> =
            failed.iter().fold(Default::default(), |mut m, r| {
                *m.entry(crate::rows::class_str(r.failure_class))
                    .or_default() += 1;
                m
            });
        let classes_text = classes
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let count = |verdict: &str| targets.iter().filter(|t| t.verdict == verdict).count();
        Headlines {
            done: runs
                .iter()
                .filter(|r| matches!(JobState::from(r.status.as_str()), JobState::Completed))
                .count(),
            best: runs
                .iter()
                .filter_map(|r| Some((r.figures.samples_per_s?, r)))
                .max_by(|x, y| x.0.total_cmp(&y.0)),
            failed,
            classes,
            classes_text,
            met: count("pass"),
            missed: count("fail"),
            unmeasured: count("not measured"),
        }
    }

    /// The page's head, title and where its figures come from.
    fn head(&self, h: &mut String) {
        let inp = self.inp;
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sweep report: {c}</title><style>{CSS}</style></head><body><h1>Benchmark report: {c}</h1><p class=\"meta\">Generated by sweep {v} from {} jobs in <code>{}</code>. Every figure below is read from the jobs' logs; an empty cell means the logs did not say.</p>",
            self.runs.len(),
            esc(&inp.campaign_dir.display().to_string()),
            c = esc(inp.campaign),
            v = env!("CARGO_PKG_VERSION"),
        );
    }

    /// The headlines: jobs completed and failed, the best throughput, targets, plan check.
    fn summary(&self, hl: &Headlines<'_>, h: &mut String) {
        let (a, inp, runs) = (self.inp.analysis, self.inp, &self.runs);
        let Headlines {
            done,
            ref failed,
            best,
            ref classes_text,
            met,
            missed,
            unmeasured,
            ..
        } = *hl;
        h.push_str("<h2>Summary</h2><ul>");
        let _ = write!(
            h,
            "<li>{done} of {} jobs completed; {} failed (",
            runs.len(),
            failed.len()
        );
        let _ = write!(h, "{classes_text})</li>");
        if let Some((v, r)) = best {
            let _ = write!(
                h,
                "<li>Best throughput: {} samples/s ({} tokens/s, {} TFLOP/s per GPU, MFU {} %) in <code>{}</code></li>",
                n(Some(v)),
                n(r.figures.tokens_per_s),
                n(r.figures.tflops_per_gpu),
                n(r.figures.mfu_pct),
                esc(&r.run)
            );
        }
        let _ = write!(
            h,
            "<li>Targets: {met} met, {missed} missed, {unmeasured} not measured (of {})</li>",
            a.targets.len()
        );
        if let Some(c) = inp.check {
            let _ = write!(
                h,
                "<li>Plan check before submission: {} error(s), {} warning(s)</li>",
                c.count(Level::Error),
                c.count(Level::Warning)
            );
        }
        h.push_str("</ul>");
    }

    /// Throughput and efficiency against the node count, charts and table.
    fn scaling(&self, h: &mut String) {
        let a = self.inp.analysis;
        h.push_str("<h2>Scaling</h2>");
        if a.scaling.is_empty() {
            h.push_str("<p class=\"note\">No scaling group: no two jobs of this campaign differ only in their node count.</p>");
        } else {
            let mut thr = Vec::new();
            let mut eff = Vec::new();
            let mut groups: Vec<(String, String)> = a
                .scaling
                .iter()
                .map(|r| (r.kind.clone(), r.group.clone()))
                .collect();
            groups.dedup();
            for (kind, g) in &groups {
                let rows: Vec<_> = a
                    .scaling
                    .iter()
                    .filter(|r| &r.kind == kind && &r.group == g)
                    .collect();
                let label = format!("{kind} {}", rows[0].model);
                thr.push((
                    label.clone(),
                    rows.iter()
                        .filter_map(|r| Some((r.nodes as f64, r.samples_per_s?)))
                        .collect(),
                    false,
                ));
                if let Some(b) = rows[0].baseline_samples_per_s {
                    let base = rows[0].baseline_nodes as f64;
                    thr.push((
                        format!("{label} ideal"),
                        rows.iter()
                            .map(|r| (r.nodes as f64, b * r.nodes as f64 / base))
                            .collect(),
                        true,
                    ));
                }
                eff.push((
                    label,
                    rows.iter()
                        .filter_map(|r| Some((r.nodes as f64, r.efficiency_pct?)))
                        .collect(),
                    false,
                ));
            }
            h.push_str(
                &line_chart(
                    "Throughput vs nodes (dashed: ideal from the baseline)",
                    "nodes",
                    "samples/s",
                    &thr,
                    false,
                )
                .unwrap_or_default(),
            );
            h.push_str(
                &line_chart("Scaling efficiency", "nodes", "%", &eff, false).unwrap_or_default(),
            );
            let rows: Vec<Vec<String>> = a
                .scaling
                .iter()
                .map(|r| {
                    vec![
                        r.kind.clone(),
                        r.model.clone(),
                        r.nodes.to_string(),
                        n(r.samples_per_s),
                        format!("{} nodes: {}", r.baseline_nodes, r.baseline_runs),
                        n(r.efficiency_pct),
                        r.note.clone(),
                    ]
                })
                .collect();
            table(
                h,
                &[
                    "kind",
                    "model",
                    "nodes",
                    "samples/s",
                    "baseline",
                    "efficiency %",
                    "note",
                ],
                &rows,
            );
        }
    }

    /// Bus bandwidth against the message size, and the NCCL summary.
    fn bandwidth(&self, h: &mut String) {
        let a = self.inp.analysis;
        let nccl = &self.nccl;
        h.push_str("<h2>Collective bandwidth</h2>");
        let mut bw: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
        let busbw_all_zero = nccl.iter().all(|r| r.busbw_gbps.unwrap_or(0.0) == 0.0);
        let metric = |r: &NcclRow| {
            if busbw_all_zero {
                r.algbw_gbps
            } else {
                r.busbw_gbps
            }
        };
        for r in nccl.iter().filter(|r| r.placement != "in_place") {
            let key = format!(
                "{} {} ({} ranks)",
                r.collective,
                short(r.source.split('/').nth(1).unwrap_or("")),
                nranks_text(r)
            );
            if let Some(y) = metric(r) {
                bw.entry(key).or_default().push((r.size_bytes as f64, y));
            }
        }
        let series: Vec<Series> = bw.into_iter().map(|(k, v)| (k, v, false)).collect();
        match line_chart(
            if busbw_all_zero {
                "Algorithm bandwidth vs message size (one rank: bus bandwidth is 0 by definition)"
            } else {
                "Bus bandwidth vs message size"
            },
            "message size",
            "GB/s",
            &series,
            true,
        ) {
            Some(svg) => h.push_str(&svg),
            None => h.push_str("<p class=\"note\">No collective measurements.</p>"),
        }
        if !a.nccl.is_empty() {
            let rows: Vec<Vec<String>> = a
                .nccl
                .iter()
                .map(|r| {
                    vec![
                        r.run.clone(),
                        r.collective.clone(),
                        r.nranks.clone(),
                        r.nodes.to_string(),
                        n(Some(r.peak_busbw_gbps)),
                        human_bytes(r.peak_at_bytes as f64),
                        n(Some(r.plateau_busbw_gbps)),
                        r.reference.clone(),
                        n(r.peak_pct_of_reference),
                    ]
                })
                .collect();
            table(
                h,
                &[
                    "run",
                    "collective",
                    "ranks",
                    "nodes",
                    "peak busbw GB/s",
                    "at",
                    "plateau GB/s",
                    "reference",
                    "peak % of reference",
                ],
                &rows,
            );
        }
    }

    /// The steady-state steps' times, one line per job.
    fn step_times(&self, h: &mut String) {
        let steps = &self.steps;
        h.push_str("<h2>Step times</h2>");
        let mut st: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
        for r in steps
            .iter()
            .filter(|r| r.name == "step_time_ms" && !r.warmup)
        {
            if let Some(y) = r.value {
                st.entry(short(&r.run))
                    .or_default()
                    .push((r.step as f64, y));
            }
        }
        let series: Vec<_> = st.into_iter().map(|(k, v)| (k, v, false)).collect();
        h.push_str(
            &line_chart(
                "Step time of the steady-state steps",
                "step",
                "ms",
                &series,
                false,
            )
            .unwrap_or_else(|| "<p class=\"note\">No step times.</p>".into()),
        );
    }

    /// The per-job figures of `jobs.csv`.
    fn jobs(&self, h: &mut String) {
        let a = self.inp.analysis;
        h.push_str("<h2>Jobs</h2>");
        let rows: Vec<Vec<String>> = a
            .jobs
            .iter()
            .map(|j| {
                vec![
                    j.run.clone(),
                    j.status.clone(),
                    crate::rows::class_str(j.failure_class).to_string(),
                    n(j.samples_per_s),
                    n(j.tokens_per_s_per_gpu),
                    n(j.mfu_pct),
                    format!(
                        "{} / {} / {}",
                        n(j.gpu_util_avg),
                        n(j.gpu_util_min),
                        n(j.gpu_util_max)
                    ),
                    n(j.max_mem_gib),
                    n(j.power_w_avg),
                    n(j.gpu_temp_max),
                    n(j.comm_compute_ratio),
                    j.slowest_gpu.clone(),
                ]
            })
            .collect();
        table(
            h,
            &[
                "job",
                "status",
                "failure",
                "samples/s",
                "tokens/s/GPU",
                "MFU %",
                "GPU util avg/min/max %",
                "HBM peak GiB",
                "power W",
                "GPU temp max °C",
                "comm/compute",
                "slowest GPU",
            ],
            &rows,
        );
    }

    /// Step-time distribution per job: the steady-state steps' spread.
    fn step_distribution(&self, h: &mut String) {
        let runs = &self.runs;
        let rows: Vec<Vec<String>> = runs
            .iter()
            .filter(|r| r.figures.steps_measured.is_some())
            .map(|r| {
                vec![
                    r.run.clone(),
                    n(r.figures.steps_measured),
                    n(r.figures.step_time_ms_mean),
                    n(r.figures.step_time_ms_p50),
                    n(r.figures.step_time_ms_p95),
                ]
            })
            .collect();
        if !rows.is_empty() {
            table(
                h,
                &["job", "steady steps", "step ms mean", "p50", "p95"],
                &rows,
            );
        }
    }

    /// GPU utilisation, power and temperature over each job, from the sampler files.
    fn gpu_telemetry(&self, h: &mut String) {
        let inp = self.inp;
        h.push_str("<h2>GPU utilisation and power</h2>");
        let jobs = self.job_names();
        let (util, power, temp) = gpu_series(inp.campaign_dir, &jobs);
        h.push_str(
            &line_chart("GPU utilisation over the job", "seconds", "%", &util, false)
                .unwrap_or_else(|| "<p class=\"note\">No nvidia-smi samples.</p>".into()),
        );
        h.push_str(
            &line_chart("GPU power over the job", "seconds", "W", &power, false)
                .unwrap_or_default(),
        );
        h.push_str(
            &line_chart(
                "GPU and memory temperature over the job",
                "seconds",
                "°C",
                &temp,
                false,
            )
            .unwrap_or_default(),
        );
    }

    /// Preflight checks: counts, and the failed ones.
    fn preflight(&self, h: &mut String) {
        let preflight = &self.preflight;
        if !preflight.is_empty() {
            h.push_str("<h2>Preflight</h2>");
            let fails: Vec<Vec<String>> = preflight
                .iter()
                .filter(|r| r.status == "fail")
                .map(|r| {
                    vec![
                        r.run.clone(),
                        r.node.clone(),
                        r.check.clone(),
                        r.status.clone(),
                        r.expected.clone(),
                        r.found.clone(),
                    ]
                })
                .collect();
            let passes = preflight.iter().filter(|r| r.status == "pass").count();
            let nodes: std::collections::BTreeSet<&str> =
                preflight.iter().map(|r| r.node.as_str()).collect();
            let _ = write!(
                h,
                "<p>{} node(s) checked: {passes} checks passed, {} failed, {} had nothing to check against or no source (preflight.csv).</p>",
                nodes.len(),
                fails.len(),
                preflight.len() - passes - fails.len()
            );
            if !fails.is_empty() {
                // Node by node, what failed there: the node to drain and why, at a glance.
                let mut by_node: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
                for r in preflight.iter().filter(|r| r.status == "fail") {
                    let checks = by_node.entry(r.node.as_str()).or_default();
                    if !checks.contains(&r.check.as_str()) {
                        checks.push(r.check.as_str());
                    }
                }
                h.push_str("<p>Failed: ");
                for (i, (node, checks)) in by_node.iter().enumerate() {
                    let _ = write!(
                        h,
                        "{}<b>{}</b> ({})",
                        if i > 0 { "; " } else { "" },
                        esc(node),
                        esc(&checks.join(", "))
                    );
                }
                h.push_str(".</p>");
                table(
                    h,
                    &["job", "node", "check", "status", "expected", "found"],
                    &fails,
                );
            }
        }
    }

    /// The node-to-node matrix of the pairwise link tests.
    fn links(&self, h: &mut String) {
        let a = self.inp.analysis;
        if !a.links.is_empty() {
            h.push_str("<h2>Node-to-node links</h2>");
            let mut nodes: Vec<String> = a
                .links
                .iter()
                .flat_map(|l| [l.node_a.clone(), l.node_b.clone()])
                .collect();
            nodes.sort();
            nodes.dedup();
            for (title, pick) in [
                (
                    "sendrecv peak bus bandwidth, GB/s (% of the NIC line rate)",
                    0,
                ),
                ("all_reduce latency at the smallest size, us", 1),
            ] {
                let _ = write!(h, "<p>{}</p>", esc(title));
                let mut header = vec![String::new()];
                header.extend(nodes.iter().cloned());
                let rows: Vec<Vec<String>> = nodes
                    .iter()
                    .map(|x| {
                        let mut row = vec![x.clone()];
                        for y in &nodes {
                            let l = a.links.iter().find(|l| {
                                (&l.node_a == x && &l.node_b == y)
                                    || (&l.node_a == y && &l.node_b == x)
                            });
                            row.push(match (l, pick) {
                                (Some(l), 0) => l
                                    .sendrecv_peak_busbw_gbps
                                    .map(|v| {
                                        format!(
                                            "{v:.1}{}",
                                            l.pct_of_line_rate
                                                .map(|p| format!(" ({p:.0} %)"))
                                                .unwrap_or_default()
                                        )
                                    })
                                    .unwrap_or_else(|| "-".into()),
                                (Some(l), _) => n(l.latency_us),
                                (None, _) => String::new(),
                            });
                        }
                        row
                    })
                    .collect();
                let hdr: Vec<&str> = header.iter().map(String::as_str).collect();
                table(h, &hdr, &rows);
            }
        }
    }

    /// NIC counters (loss and congestion highlighted) and node power.
    fn node_telemetry(&self, h: &mut String) {
        let net = &self.net;
        let power_rows = &self.power;
        if !net.is_empty() || !power_rows.is_empty() {
            h.push_str("<h2>Node telemetry</h2>");
            let shown: Vec<&NetRow> = net
                .iter()
                .filter(|r| {
                    r.device != "lo"
                        && (r.kind == "ib"
                            || r.rx_bytes.value().unwrap_or(0.0)
                                + r.tx_bytes.value().unwrap_or(0.0)
                                > 0.0)
                })
                .collect();
            let flagged = shown
                .iter()
                .filter(|r| r.losses().iter().any(|v| v.value().unwrap_or(0.0) > 0.0))
                .count();
            let _ = write!(
                h,
                "<p>NIC counters between the first and last snapshot of each job and node ({} devices with traffic or RDMA ports; {flagged} with non-zero loss, retransmission or congestion counters, highlighted). All devices: net.csv.</p>",
                shown.len()
            );
            let rows: Vec<Vec<String>> = shown
                .iter()
                .map(|r| {
                    let mut row: Vec<String> = vec![
                        r.run.clone(),
                        r.node.clone(),
                        r.device.clone(),
                        r.state.clone(),
                        r.rx_gbps.text(),
                        r.tx_gbps.text(),
                        r.line_rate_gbps.text(),
                        r.pct_of_line_rate.text(),
                    ];
                    for v in r.losses() {
                        row.push(if v.value().unwrap_or(0.0) > 0.0 {
                            format!("!{}", v.text())
                        } else {
                            v.text()
                        });
                    }
                    row
                })
                .collect();
            let mut header = vec![
                "job",
                "node",
                "device",
                "state",
                "rx Gb/s",
                "tx Gb/s",
                "line Gb/s",
                "% of line",
            ];
            header.extend(NetRow::LOSS_COLUMNS);
            if !rows.is_empty() {
                table(h, &header, &rows);
            }
            if !power_rows.is_empty() {
                let rows: Vec<Vec<String>> = power_rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.run.clone(),
                            r.node.clone(),
                            r.source.clone(),
                            r.readings.to_string(),
                            r.watts_avg.text(),
                            r.watts_max.text(),
                        ]
                    })
                    .collect();
                table(
                    h,
                    &["job", "node", "source", "readings", "W avg", "W max"],
                    &rows,
                );
            }
        }
    }

    /// Every target with the measured value and its verdict.
    fn targets(&self, h: &mut String) {
        let a = self.inp.analysis;
        h.push_str("<h2>Targets</h2>");
        if a.targets.is_empty() {
            h.push_str("<p class=\"note\">The sweep file states no targets.</p>");
        } else {
            let rows: Vec<Vec<String>> = a
                .targets
                .iter()
                .map(|t| {
                    vec![
                        t.index.to_string(),
                        t.target.clone(),
                        format!("{} {}", t.value, t.unit),
                        n(t.measured),
                        t.verdict.clone(),
                        t.evidence.clone(),
                    ]
                })
                .collect();
            table(
                h,
                &[
                    "#",
                    "target",
                    "wanted (at least)",
                    "measured",
                    "verdict",
                    "evidence",
                ],
                &rows,
            );
        }
    }

    /// The plan check's findings before submission.
    fn plan_check(&self, h: &mut String) {
        let inp = self.inp;
        if let Some(c) = inp.check {
            h.push_str("<h2>Plan check (before submission)</h2>");
            let rows: Vec<Vec<String>> = c
                .findings
                .iter()
                .take(200)
                .map(|f| {
                    vec![
                        f.level.as_str().to_string(),
                        f.subject.clone(),
                        f.message.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                h.push_str("<p class=\"note\">No findings.</p>");
            } else {
                table(h, &["level", "subject", "finding"], &rows);
            }
            if let Some(sc) = &c.schedule {
                schedule_chart(h, sc);
            }
        }
    }

    /// Failed jobs with their evidence.
    fn failures(&self, h: &mut String) {
        let runs = &self.runs;
        let failures = &self.failures;
        h.push_str("<h2>Failures</h2>");
        let rows: Vec<Vec<String>> = runs
            .iter()
            .filter(|r| r.failure_class.is_some())
            .map(|r| {
                vec![
                    r.run.clone(),
                    crate::rows::class_str(r.failure_class).to_string(),
                    r.failure_evidence.clone(),
                ]
            })
            .collect();
        if rows.is_empty() {
            h.push_str("<p class=\"note\">No job failed.</p>");
        } else {
            table(h, &["job", "class", "evidence (file:line: text)"], &rows);
            let _ = write!(
                h,
                "<p class=\"note\">{} failure signatures in all: <code>failures.csv</code>.</p>",
                failures.len()
            );
        }
    }

    /// Every job's provenance, and the closing lines.
    fn provenance(&self, h: &mut String) {
        let inp = self.inp;
        h.push_str("<h2>Provenance</h2>");
        for job in &self.job_names() {
            let p = inp
                .campaign_dir
                .join("jobs")
                .join(job)
                .join("provenance.txt");
            if let Ok(text) = std::fs::read_to_string(&p) {
                let text: String = text.chars().take(20_000).collect();
                let _ = write!(
                    h,
                    "<details><summary>{}</summary><pre>{}</pre></details>",
                    esc(job),
                    esc(&text)
                );
            }
        }
        h.push_str("<p class=\"meta\">Tables: runs.csv, nccl.csv, steps.csv, gpu.csv, failures.csv, binding.csv, net.csv, power.csv, preflight.csv (collect); scaling.csv, nccl_summary.csv, links.csv, targets.csv, repeats.csv, jobs.csv (analyze).</p></body></html>\n");
    }

    /// summary.md: the one-page executive summary.
    fn summary_md(&self, hl: &Headlines<'_>) -> String {
        let (a, inp, runs) = (self.inp.analysis, self.inp, &self.runs);
        let Headlines {
            done,
            ref failed,
            best,
            ref classes,
            ref classes_text,
            met,
            missed,
            unmeasured,
        } = *hl;
        let mut m = String::new();
        let _ = writeln!(m, "# {}: executive summary\n", inp.campaign);
        let _ = writeln!(
            m,
            "- Jobs: {done} of {} completed, {} failed{}.",
            runs.len(),
            failed.len(),
            if classes.is_empty() {
                String::new()
            } else {
                format!(" ({classes_text})")
            }
        );
        if let Some((v, r)) = best {
            let _ = writeln!(
                m,
                "- Best throughput: **{} samples/s** ({} tokens/s; {} TFLOP/s per GPU, MFU {} %), job `{}`.",
                n(Some(v)),
                n(r.figures.tokens_per_s),
                n(r.figures.tflops_per_gpu),
                n(r.figures.mfu_pct),
                r.run
            );
        }
        if let Some(e) = a
            .scaling
            .iter()
            .filter(|r| r.note.is_empty())
            .filter_map(|r| Some((r.efficiency_pct?, r)))
            .min_by(|x, y| x.0.total_cmp(&y.0))
        {
            let _ = writeln!(
                m,
                "- Lowest scaling efficiency: {:.1} % ({} {}, {} -> {} nodes).",
                e.0, e.1.kind, e.1.model, e.1.baseline_nodes, e.1.nodes
            );
        }
        if let Some(b) = a
            .nccl
            .iter()
            .filter(|x| x.peak_busbw_gbps > 0.0)
            .max_by(|x, y| x.peak_busbw_gbps.total_cmp(&y.peak_busbw_gbps))
        {
            let _ = writeln!(
                m,
                "- Peak bus bandwidth: {} GB/s ({} on {} ranks{}).",
                n(Some(b.peak_busbw_gbps)),
                b.collective,
                b.nranks,
                b.peak_pct_of_reference
                    .map(|p| format!(", {p:.0} % of {}", b.reference))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            m,
            "- Targets: {met} met, {missed} missed, {unmeasured} not measured (of {}).",
            a.targets.len()
        );
        for t in a.targets.iter().filter(|t| t.verdict == "fail") {
            let _ = writeln!(
                m,
                "  - missed: {} >= {} {} (measured {})",
                t.target,
                t.value,
                t.unit,
                n(t.measured)
            );
        }
        if let Some(c) = inp.check {
            let _ = writeln!(
                m,
                "- Plan check: {} error(s), {} warning(s) before submission.",
                c.count(Level::Error),
                c.count(Level::Warning)
            );
            for f in c
                .findings
                .iter()
                .filter(|f| f.subject.starts_with("target"))
                .take(3)
            {
                let _ = writeln!(m, "  - {}: {}", f.subject, f.message);
            }
        }
        for r in failed.iter().take(5) {
            let _ = writeln!(
                m,
                "- Failure `{}`: {} — {}",
                r.run,
                crate::rows::class_str(r.failure_class),
                r.failure_evidence.chars().take(160).collect::<String>()
            );
        }
        let _ = writeln!(
            m,
            "\nDetails: report.html; tables: jobs.csv, scaling.csv, targets.csv, nccl_summary.csv."
        );
        m
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;font-size:.85em;margin:.6em 0;display:block;overflow-x:auto}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}td.ok{color:#176d1c;font-weight:600}td.bad{color:#b00020;font-weight:600}td.warn{color:#a65f00}.meta,.note{color:#666}pre{font-size:.75em;background:#f7f7f7;padding:.6em;overflow-x:auto}svg{display:block;margin:.5em 0}";
