//! The plan table: what a campaign will run and what it costs, before anything is submitted.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use indexmap::IndexMap;
use serde::Serialize;

use crate::expand::{Plan, json_short};

#[derive(Debug, Serialize)]
pub struct PlanRow {
    pub stage: String,
    pub job_id: String,
    pub model: Option<String>,
    pub nodes: u32,
    pub gpus: u32,
    pub micro_batch: Option<u32>,
    pub grad_accum: Option<u32>,
    pub global_batch: Option<u64>,
    pub tokens_per_step: Option<u64>,
    pub time_limit_min: Option<u64>,
    pub gpu_hours: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct StageTotal {
    pub stage: String,
    pub jobs: usize,
    pub gpu_hours: f64,
    pub jobs_without_time_limit: usize,
}

#[derive(Debug, Serialize)]
pub struct PlanSummary {
    pub campaign: String,
    pub rows: Vec<PlanRow>,
    pub stages: Vec<StageTotal>,
    pub jobs: usize,
    pub gpu_hours: f64,
    pub excluded: Vec<crate::expand::Excluded>,
}

pub(crate) fn summarize(plan: &Plan) -> PlanSummary {
    let rows: Vec<PlanRow> = plan
        .points
        .iter()
        .map(|p| PlanRow {
            stage: p.stage.clone(),
            job_id: p.id.clone(),
            model: p.params.get("model").map(json_short),
            nodes: p.batch.nodes,
            gpus: p.batch.gpus,
            micro_batch: p.batch.micro_batch,
            grad_accum: p.batch.grad_accum,
            global_batch: p.batch.global_batch,
            tokens_per_step: p.batch.tokens_per_step,
            time_limit_min: p.time_limit_min,
            gpu_hours: p.gpu_hours(),
        })
        .collect();
    let mut stages: IndexMap<String, StageTotal> = IndexMap::new();
    for r in &rows {
        let s = stages.entry(r.stage.clone()).or_insert_with(|| StageTotal {
            stage: r.stage.clone(),
            jobs: 0,
            gpu_hours: 0.0,
            jobs_without_time_limit: 0,
        });
        s.jobs += 1;
        match r.gpu_hours {
            Some(h) => s.gpu_hours += h,
            None => s.jobs_without_time_limit += 1,
        }
    }
    let gpu_hours = stages.values().map(|s| s.gpu_hours).sum();
    PlanSummary {
        campaign: plan.campaign.clone(),
        jobs: rows.len(),
        rows,
        stages: stages.into_values().collect(),
        gpu_hours,
        excluded: plan.excluded.clone(),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// Human rendering: one row per job up to `max_rows`, per-stage totals, and what was excluded.
pub(crate) fn render(s: &PlanSummary, max_rows: usize) -> String {
    let mut out = String::new();
    let right = |t: &mut Table, cols: &[usize]| {
        for &c in cols {
            if let Some(col) = t.column_mut(c) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
    };
    if s.rows.len() <= max_rows {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header([
            "stage",
            "job",
            "model",
            "nodes",
            "GPUs",
            "micro",
            "accum",
            "global batch",
            "tokens/step",
            "time",
            "GPU-h",
        ]);
        for r in &s.rows {
            t.add_row(vec![
                Cell::new(&r.stage),
                Cell::new(&r.job_id),
                Cell::new(r.model.clone().unwrap_or_else(|| "-".into())),
                Cell::new(r.nodes),
                Cell::new(r.gpus),
                Cell::new(opt(r.micro_batch)),
                Cell::new(opt(r.grad_accum)),
                Cell::new(opt(r.global_batch)),
                Cell::new(opt(r.tokens_per_step)),
                Cell::new(
                    r.time_limit_min
                        .map(fmt_minutes)
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::new(
                    r.gpu_hours
                        .map(|h| format!("{h:.1}"))
                        .unwrap_or_else(|| "-".into()),
                ),
            ]);
        }
        right(&mut t, &[3, 4, 5, 6, 7, 8, 10]);
        out.push_str(&t.to_string());
        out.push('\n');
    } else {
        out.push_str(&format!(
            "{} jobs: per-job rows omitted (use --json for all of them)\n",
            s.rows.len()
        ));
    }
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["stage", "jobs", "GPU-hours (at the time limit)"]);
    for st in &s.stages {
        let mut h = format!("{:.1}", st.gpu_hours);
        if st.jobs_without_time_limit > 0 {
            h.push_str(&format!(
                " (+{} jobs with no time limit)",
                st.jobs_without_time_limit
            ));
        }
        t.add_row(vec![Cell::new(&st.stage), Cell::new(st.jobs), Cell::new(h)]);
    }
    t.add_row(vec![
        Cell::new("total"),
        Cell::new(s.jobs),
        Cell::new(format!("{:.1}", s.gpu_hours)),
    ]);
    right(&mut t, &[1, 2]);
    out.push_str(&t.to_string());
    out.push('\n');
    if !s.excluded.is_empty() {
        out.push_str(&format!("excluded {} point(s):\n", s.excluded.len()));
        for e in s.excluded.iter().take(50) {
            let axes: Vec<String> = e
                .axes
                .iter()
                .map(|(k, v)| format!("{k}={}", json_short(v)))
                .collect();
            out.push_str(&format!(
                "  {} ({}): {}\n",
                e.stage,
                axes.join(", "),
                e.reason
            ));
        }
        if s.excluded.len() > 50 {
            out.push_str(&format!("  ... and {} more\n", s.excluded.len() - 50));
        }
    }
    out
}

fn fmt_minutes(m: u64) -> String {
    if m >= 1440 {
        format!("{}-{:02}:{:02}", m / 1440, (m % 1440) / 60, m % 60)
    } else {
        format!("{}:{:02}", m / 60, m % 60)
    }
}
