//! The campaign on its reservation (`[schedule]`, stage `window`s): a list schedule of every job
//! on the reservation's nodes, in stage order, each job starting when its upstream stages have
//! ended (`after`), its stage's window has opened and enough nodes are free, for its estimated
//! run time (its time limit when there is no estimate). Per stage: start, end, whether it ends
//! inside its window; the critical path and the makespan.

use serde::Serialize;

use crate::expand::Plan;
use crate::spec::SweepFile;

/// Minutes since 1970-01-01 00:00 of `YYYY-MM-DDTHH:MM` (the reservation's local time).
pub fn parse_start(s: &str) -> Result<i64, String> {
    let bad =
        || format!("`{s}` is not a start time: write `YYYY-MM-DDTHH:MM` (`2026-12-14T09:00`)");
    let (date, time) = s.split_once(['T', ' ']).ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return Err(bad());
    }
    let num = |x: &str| {
        x.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| x.parse::<i64>().ok())
            .flatten()
            .ok_or_else(bad)
    };
    let (y, m, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    if !(1..=12).contains(&m) || !(1..=days_in_month(y, m)).contains(&day) {
        return Err(bad());
    }
    let min = parse_hm(time).ok_or_else(bad)?;
    Ok(days_from_civil(y, m, day) * 1440 + min)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `HH:MM` as minutes of the day.
fn parse_hm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

/// `dayN HH:MM` as minutes from the reservation's first midnight (`day1 00:00` = 0).
pub fn parse_day_time(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{s}` is not a window time: write `dayN HH:MM` (`day1 09:00`), day1 being the reservation's first day"
        )
    };
    let (d, t) = s.trim().split_once(' ').ok_or_else(bad)?;
    let n: i64 = d
        .strip_prefix("day")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=400).contains(n))
        .ok_or_else(bad)?;
    Ok((n - 1) * 1440 + parse_hm(t.trim()).ok_or_else(bad)?)
}

/// Howard Hinnant's days_from_civil.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `dayN HH:MM` of a time `t_s` seconds after a reservation starting at minute `start_of_day`.
pub fn day_time(start_of_day_min: i64, t_s: f64) -> String {
    let m = start_of_day_min + (t_s / 60.0).ceil() as i64;
    format!("day{} {:02}:{:02}", m / 1440 + 1, m % 1440 / 60, m % 60)
}

/// One job on the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct JobSlot {
    pub id: String,
    pub stage: String,
    pub nodes: u32,
    pub start_s: f64,
    pub end_s: f64,
    /// False when the job has no run-time estimate and its time limit was counted.
    pub estimated: bool,
}

/// One stage on the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct StageSlot {
    pub stage: String,
    pub jobs: usize,
    pub start_s: f64,
    pub end_s: f64,
    pub start: String,
    pub end: String,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    /// Whether the stage ends inside its window (None: it has none).
    pub fits_window: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleReport {
    /// The reservation (None: no `[schedule]`; times then count from 0, day1 00:00).
    pub start: Option<String>,
    pub hours: Option<f64>,
    pub nodes: u32,
    pub makespan_s: f64,
    pub fits_reservation: Option<bool>,
    /// The jobs whose chain ends last, first to last, and the stages they belong to.
    pub critical_path: Vec<String>,
    pub critical_stages: Vec<String>,
    /// Where the critical path begins: `reservation start` or `window of <stage>`.
    pub critical_from: String,
    pub stages: Vec<StageSlot>,
    pub jobs: Vec<JobSlot>,
    /// Jobs asking for more nodes than the reservation has (not scheduled).
    pub unschedulable: Vec<String>,
}

/// Schedules `plan` with `durations[i]` = (seconds, estimated) for `plan.points[i]`.
pub fn schedule(
    spec: &SweepFile,
    plan: &Plan,
    durations: &[(f64, bool)],
    profile_nodes: u32,
) -> ScheduleReport {
    let sc = spec.schedule.as_ref();
    let nodes = sc.and_then(|s| s.nodes).unwrap_or(profile_nodes).max(1);
    let start_of_day = sc
        .and_then(|s| parse_start(&s.start).ok())
        .map(|m| m.rem_euclid(1440))
        .unwrap_or(0);
    // Window bounds in seconds from the reservation's start.
    let window = |stage: &str| -> Option<(f64, f64)> {
        let w = spec
            .stages
            .iter()
            .find(|s| s.name == stage)?
            .window
            .as_ref()?;
        let a = parse_day_time(&w.start).ok()?;
        let b = parse_day_time(&w.end).ok()?;
        Some((
            ((a - start_of_day) * 60) as f64,
            ((b - start_of_day) * 60) as f64,
        ))
    };
    let mut free: Vec<(f64, Option<usize>)> = vec![(0.0, None); nodes as usize];
    let mut jobs: Vec<JobSlot> = Vec::new();
    let mut pred: Vec<Option<usize>> = Vec::new();
    let mut unschedulable = Vec::new();
    for st in &spec.stages {
        let ready_win = window(&st.name).map_or(0.0, |w| w.0);
        // Upstream stages' last job (already scheduled: they come earlier in the file).
        let dep = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| st.after.iter().any(|a| a.stage() == j.stage))
            .max_by(|a, b| a.1.end_s.total_cmp(&b.1.end_s))
            .map(|(i, j)| (i, j.end_s));
        for (pi, p) in plan.points.iter().enumerate() {
            if p.stage != st.name {
                continue;
            }
            let n = p.batch.nodes.max(1) as usize;
            if n > free.len() {
                unschedulable.push(p.id.clone());
                continue;
            }
            free.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (node_free, node_job) = free[n - 1];
            let mut start = ready_win;
            let mut why = None;
            if let Some((di, de)) = dep
                && de > start
            {
                start = de;
                why = Some(di);
            }
            if node_free > start {
                start = node_free;
                why = node_job;
            }
            let (d, est) = durations.get(pi).copied().unwrap_or((0.0, false));
            let idx = jobs.len();
            for slot in free.iter_mut().take(n) {
                *slot = (start + d, Some(idx));
            }
            jobs.push(JobSlot {
                id: p.id.clone(),
                stage: p.stage.clone(),
                nodes: n as u32,
                start_s: start,
                end_s: start + d,
                estimated: est,
            });
            pred.push(why);
        }
    }
    let last = jobs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.end_s.total_cmp(&b.1.end_s))
        .map(|(i, _)| i);
    let makespan_s = last.map_or(0.0, |i| jobs[i].end_s);
    let mut critical_path = Vec::new();
    let mut at = last;
    let mut first = None;
    while let Some(i) = at {
        critical_path.push(jobs[i].id.clone());
        first = Some(i);
        at = pred[i];
    }
    let critical_from = match first {
        Some(i) if jobs[i].start_s > 0.0 => format!("the window of {}", jobs[i].stage),
        _ => "the reservation's start".to_string(),
    };
    critical_path.reverse();
    let mut critical_stages: Vec<String> = Vec::new();
    for id in &critical_path {
        let Some(s) = jobs.iter().find(|j| &j.id == id).map(|j| &j.stage) else {
            continue;
        };
        if critical_stages.last() != Some(s) {
            critical_stages.push(s.clone());
        }
    }
    let mut stages = Vec::new();
    for st in &spec.stages {
        let mine: Vec<&JobSlot> = jobs.iter().filter(|j| j.stage == st.name).collect();
        if mine.is_empty() {
            continue;
        }
        let a = mine.iter().map(|j| j.start_s).fold(f64::INFINITY, f64::min);
        let b = mine.iter().map(|j| j.end_s).fold(0.0, f64::max);
        let w = window(&st.name);
        let ws = st.window.as_ref();
        stages.push(StageSlot {
            stage: st.name.clone(),
            jobs: mine.len(),
            start_s: a,
            end_s: b,
            start: day_time(start_of_day, a),
            end: day_time(start_of_day, b),
            window_start: ws.map(|w| w.start.clone()),
            window_end: ws.map(|w| w.end.clone()),
            fits_window: w.map(|w| b <= w.1 + 1e-6),
        });
    }
    ScheduleReport {
        start: sc.map(|s| s.start.clone()),
        hours: sc.map(|s| s.hours),
        nodes,
        makespan_s,
        fits_reservation: sc.map(|s| makespan_s <= s.hours * 3600.0 + 1e-6),
        critical_path,
        critical_stages,
        critical_from,
        stages,
        jobs,
        unschedulable,
    }
}

/// Stages past their window (warnings), a campaign past its reservation and jobs too wide for
/// it (errors).
pub(crate) fn findings(s: &ScheduleReport, out: &mut Vec<crate::check::Finding>) {
    use crate::check::{Finding, Level};
    for st in &s.stages {
        if st.fits_window == Some(false) {
            out.push(Finding {
                level: Level::Warning,
                subject: format!("stage {}", st.stage),
                message: format!(
                    "does not fit its window {} - {}: scheduled {} - {} ({} job(s) on {} node(s))",
                    st.window_start.as_deref().unwrap_or("?"),
                    st.window_end.as_deref().unwrap_or("?"),
                    st.start,
                    st.end,
                    st.jobs,
                    s.nodes
                ),
                fix: None,
            });
        }
    }
    if s.fits_reservation == Some(false) {
        out.push(Finding {
            level: Level::Error,
            subject: "schedule".into(),
            message: format!(
                "the campaign needs {} but the reservation is {} hours (critical path: {})",
                crate::timing::hms(s.makespan_s),
                s.hours.unwrap_or(0.0),
                s.critical_stages.join(" -> ")
            ),
            fix: None,
        });
    }
    for id in &s.unschedulable {
        out.push(Finding {
            level: Level::Error,
            subject: id.clone(),
            message: format!("asks for more nodes than the reservation's {}", s.nodes),
            fix: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_day_time("day1 09:00"), Ok(540));
        assert_eq!(parse_day_time("day2 13:30"), Ok(1440 + 810));
        assert!(parse_day_time("day0 09:00").is_err());
        assert!(parse_day_time("Day1 9").is_err());
        assert!(parse_day_time("day1 24:00").is_err());
        let a = parse_start("2026-12-14T09:00").unwrap();
        assert_eq!(a.rem_euclid(1440), 540);
        assert_eq!(parse_start("2026-12-15T09:00").unwrap() - a, 1440);
        assert!(parse_start("2026-02-30T09:00").is_err());
        assert!(parse_start("2026-12-14").is_err());
        assert_eq!(day_time(540, 3.0 * 3600.0), "day1 12:00");
        assert_eq!(day_time(540, 24.0 * 3600.0), "day2 09:00");
    }
}
