//! Step rows from each source (the payload, DeepSpeed's timers and pipeline engine,
//! Megatron's iteration lines), the warm-up, and which steps count as steady.

use compact_str::CompactString;
use indexmap::IndexMap;
use serde_json::Value as Json;

use super::DEFAULT_WARMUP_STEPS;
use super::file_result::{StepOrigin, StepOut};
use crate::parsers::ParsedLog;

/// The payload's per-step records, its step time in milliseconds like the other sources'.
pub(super) fn payload_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) {
    for p in &log.payload.steps {
        let mut values: Vec<(CompactString, f64)> = Vec::with_capacity(p.values.len());
        if let Some(t) = p.get("step_time_s") {
            values.push(("step_time_ms".into(), t * 1000.0));
        }
        values.extend(
            p.values
                .iter()
                .filter(|(k, _)| k != "step_time_s")
                .map(|(k, v)| (k.as_str().into(), *v)),
        );
        steps.push(StepOut {
            rank: Some(0),
            step: p.step,
            warmup: Some(p.warmup),
            excluded: p.excluded,
            span: None,
            origin: StepOrigin::Payload,
            values,
        });
    }
}

/// DeepSpeed wall_clock_breakdown: one `fwd | bwd | step` line per optimizer step; the
/// step's time is their sum (data loading excluded). Not when the payload timed the steps.
/// The pipeline engine is read apart (see `pipeline_steps`). Megatron-DeepSpeed prints
/// Megatron's iteration lines besides: their elapsed time per iteration is then the step
/// series (the two together would count each step twice).
pub(super) fn deepspeed_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) {
    let mut step = 0;
    let own_steps = !log.payload.steps.is_empty()
        || log
            .megatron
            .iterations
            .iter()
            .any(|i| i.elapsed_ms_per_iteration.is_some());
    let pipe = !own_steps && pipeline_steps(log, steps);
    for t in log.deepspeed.timers.iter().filter(|_| !own_steps && !pipe) {
        if let (Some(f), Some(b), Some(s)) = (t.get("fwd"), t.get("bwd"), t.get("step")) {
            step += 1;
            let mut values = Vec::with_capacity(1 + t.timers.len());
            values.push(("step_time_ms".into(), f + b + s));
            values.extend(t.timers.iter().cloned());
            steps.push(StepOut {
                rank: t.rank,
                step,
                warmup: None,
                excluded: false,
                span: None,
                origin: StepOrigin::DeepSpeed,
                values,
            });
        }
    }
}

/// Megatron's iteration lines, each an average over the iterations it spans.
pub(super) fn megatron_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) {
    let iters = &log.megatron.iterations;
    for (k, it) in iters.iter().enumerate() {
        let mut values: Vec<(CompactString, f64)> = Vec::new();
        if let Some(v) = it.elapsed_ms_per_iteration {
            values.push(("step_time_ms".into(), v));
        }
        if let Some(v) = megatron_samples_per_s(it) {
            values.push(("samples_per_s".into(), v));
        }
        if let Some(v) = it.tflops.or(it.tflops_per_gpu) {
            values.push(("tflops_per_gpu".into(), v));
        }
        for (k, v) in &it.losses {
            values.push((k.as_str().into(), *v));
        }
        steps.push(StepOut {
            rank: None,
            step: it.iteration,
            warmup: None,
            excluded: false,
            span: Some(megatron_span(iters, k)),
            origin: StepOrigin::Megatron,
            values,
        });
    }
}

/// An iteration line's samples/s: Megatron-DeepSpeed prints it; upstream Megatron-LM prints the
/// global batch size and the mean elapsed time per iteration over its `log_interval`, of which
/// it is the quotient.
fn megatron_samples_per_s(it: &crate::parsers::megatron::Iteration) -> Option<f64> {
    it.samples_per_second.or_else(|| {
        let (g, ms) = (it.global_batch_size?, it.elapsed_ms_per_iteration?);
        (ms > 0.0).then(|| g as f64 / (ms / 1000.0))
    })
}

/// The iterations Megatron's `k`th iteration line stands for: its figures (elapsed time per
/// iteration, samples/s, TFLOP/s) are averages over the `log_interval` iterations since the
/// print before. The first print covers as many as the distance to the second; a lone print,
/// every iteration up to it (the process's first steps among them).
fn megatron_span(iters: &[crate::parsers::megatron::Iteration], k: usize) -> u64 {
    let gap = |a: usize, b: usize| {
        iters[b]
            .iteration
            .checked_sub(iters[a].iteration)
            .filter(|&d| d > 0)
    };
    // After a restart (the iteration number falls: a requeued job appending to its output)
    // the print covers as many as the distance to the next.
    let back = k.checked_sub(1).and_then(|j| gap(j, k));
    let ahead = (k + 1 < iters.len()).then(|| gap(k, k + 1)).flatten();
    back.or(ahead).unwrap_or(iters[k].iteration).max(1)
}

/// The warm-up steps of a run: the point's `warmup_steps`, else [`DEFAULT_WARMUP_STEPS`].
pub(super) fn warmup_steps(params: &IndexMap<String, Json>) -> usize {
    params
        .get("warmup_steps")
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .unwrap_or(DEFAULT_WARMUP_STEPS)
}

/// Whether each of a file's step rows counts in the steady-state figures. Not a step the
/// software excludes (the payload's profiled step), nor a warm-up step: those the log marks;
/// else, for a row standing for several steps (`span`), one whose steps are all past the first
/// `warmup` of their process (a row whose step is not past the row before starts a new
/// process: a requeued job appending to its output); else the rows past the first `warmup`.
pub(crate) fn steady_flags(steps: &[StepOut], warmup: usize) -> Vec<bool> {
    let marked = steps.iter().any(|x| x.warmup.is_some());
    let mut start: Option<u64> = None;
    let mut prev: Option<u64> = None;
    steps
        .iter()
        .enumerate()
        .map(|(i, x)| {
            if x.excluded {
                false
            } else if let Some(span) = x.span {
                let first = x.step.saturating_sub(span.max(1) - 1);
                if prev.is_none_or(|p| x.step <= p) {
                    start = Some(first);
                }
                prev = Some(x.step);
                first >= start.unwrap_or(first).saturating_add(warmup as u64)
            } else if marked {
                x.warmup == Some(false)
            } else {
                i >= warmup
            }
        })
        .collect()
}

/// DeepSpeed's pipeline engine (`runtime/pipe/engine.py`, which Megatron-DeepSpeed uses with
/// pipeline parallelism) prints its timers and a `steps: N loss: ... iter time (s): T
/// samples/sec: S` line only every `steps_per_print` steps, and its timers are not reset in
/// between: each printed value is the sum over those steps (over their micro-batches for the
/// `_microstep` timers and `batch_input`). `T` and `S` are already per step. One row per
/// print, spanning the steps it covers, its timers divided down to one step (one micro-step,
/// when the config dump gives the accumulation steps; else those timers are left out); false
/// (nothing pushed) when the log has no such line.
fn pipeline_steps(log: &ParsedLog, steps: &mut Vec<StepOut>) -> bool {
    let ds = &log.deepspeed;
    let prints: Vec<_> = ds
        .steps
        .iter()
        .filter(|d| d.iter_time_s.is_some())
        .collect();
    if prints.is_empty() {
        return false;
    }
    let config = ds.config();
    // The config dump's value; else the steps between two prints; else the first print's
    // step (training starts at step 0).
    let spp = config
        .and_then(|c| c.steps_per_print)
        .filter(|&n| n > 0)
        .or_else(|| {
            prints
                .windows(2)
                .filter_map(|w| w[1].step.checked_sub(w[0].step))
                .filter(|&d| d > 0)
                .min()
        })
        .or(Some(prints[0].step).filter(|&n| n > 0));
    let gas = config
        .and_then(|c| c.gradient_accumulation_steps)
        .filter(|&n| n > 0);
    // A timer line belongs to the print after it, as the engine logs the step's timers before
    // `train_batch` prints; but its `pipe_send_*`/`pipe_recv_*` line comes after that print.
    let mut timers: Vec<Vec<(CompactString, f64)>> = vec![Vec::new(); prints.len()];
    for t in &ds.timers {
        let after = prints.partition_point(|d| d.line < t.line);
        let pipe_io = !t.timers.is_empty() && t.timers.iter().all(|(n, _)| n.starts_with("pipe_"));
        let at = if pipe_io {
            after.checked_sub(1)
        } else {
            Some(after)
        };
        let (Some(at), Some(n)) = (at.filter(|&i| i < prints.len()), spp) else {
            continue;
        };
        for (name, v) in &t.timers {
            let micro = name.ends_with("_microstep") || name == "batch_input";
            // A micro-step's share needs the accumulation steps; without them, left out.
            let per = match (micro, gas) {
                (false, _) => n,
                (true, Some(g)) => n.saturating_mul(g),
                (true, None) => continue,
            };
            timers[at].push((name.clone(), v / per as f64));
        }
    }
    for (d, t) in prints.iter().zip(timers) {
        let mut values: Vec<(CompactString, f64)> = Vec::with_capacity(3 + t.len());
        if let Some(s) = d.iter_time_s {
            values.push(("step_time_ms".into(), s * 1000.0));
        }
        if let Some(s) = d.samples_per_sec {
            values.push(("samples_per_s".into(), s));
        }
        if let Some(l) = d.loss {
            values.push(("loss".into(), l));
        }
        values.extend(t);
        steps.push(StepOut {
            rank: Some(0),
            step: d.step,
            warmup: None,
            excluded: false,
            span: spp,
            origin: StepOrigin::Pipeline,
            values,
        });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(origin: StepOrigin, steps: &[(u64, Option<u64>)]) -> Vec<StepOut> {
        steps
            .iter()
            .map(|&(step, span)| StepOut {
                step,
                span,
                origin,
                ..Default::default()
            })
            .collect()
    }

    /// A print that stands for several steps is steady only when none of them is among the
    /// first `warmup` of its process, wherever the process started; one step a row, the rows
    /// past the first `warmup`.
    #[test]
    fn steady_steps_by_what_each_row_covers() {
        // Megatron, `log_interval` 10 from iteration 10: the first print holds the warm-up.
        let spans = |its: &[u64]| {
            let iters: Vec<crate::parsers::megatron::Iteration> = its
                .iter()
                .map(|&iteration| crate::parsers::megatron::Iteration {
                    iteration,
                    ..Default::default()
                })
                .collect();
            (0..its.len())
                .map(|k| (its[k], Some(megatron_span(&iters, k))))
                .collect::<Vec<_>>()
        };
        let meg = rows(StepOrigin::Megatron, &spans(&[10, 20, 30]));
        assert_eq!(steady_flags(&meg, 2), [false, true, true]);
        assert_eq!(steady_flags(&meg, 0), [true, true, true]);
        // Every iteration printed, resumed at 182: the first two prints are warm-up.
        let meg = rows(StepOrigin::Megatron, &spans(&[182, 183, 184, 185]));
        assert_eq!(steady_flags(&meg, 2), [false, false, true, true]);
        // A lone print covers the process's first steps.
        let meg = rows(StepOrigin::Megatron, &spans(&[50]));
        assert_eq!(steady_flags(&meg, 2), [false]);
        // A requeued job appending to its output: the iterations fall, a new warm-up.
        let meg = rows(StepOrigin::Megatron, &spans(&[10, 20, 30, 21, 22, 23, 24]));
        assert_eq!(
            steady_flags(&meg, 2),
            [false, true, true, false, false, true, true]
        );
        // The pipeline engine, `steps_per_print` 10.
        let pipe = rows(StepOrigin::Pipeline, &[(10, Some(10)), (20, Some(10))]);
        assert_eq!(steady_flags(&pipe, 2), [false, true]);
        // DeepSpeed's timer lines, one step each.
        let ds = rows(StepOrigin::DeepSpeed, &[(1, None), (2, None), (3, None)]);
        assert_eq!(steady_flags(&ds, 2), [false, false, true]);
    }

    /// Upstream Megatron-LM prints no samples/s: it is the global batch over the time per
    /// iteration; Megatron-DeepSpeed's own figure, where printed, is taken as is.
    #[test]
    fn megatron_samples_per_s_is_printed_or_batch_over_iteration_time() {
        let it = crate::parsers::megatron::Iteration {
            global_batch_size: Some(1024),
            elapsed_ms_per_iteration: Some(2048.0),
            ..Default::default()
        };
        assert_eq!(megatron_samples_per_s(&it), Some(500.0));
        let printed = crate::parsers::megatron::Iteration {
            samples_per_second: Some(7.5),
            ..it.clone()
        };
        assert_eq!(megatron_samples_per_s(&printed), Some(7.5));
        let no_time = crate::parsers::megatron::Iteration {
            elapsed_ms_per_iteration: Some(0.0),
            ..it
        };
        assert_eq!(megatron_samples_per_s(&no_time), None);
    }
}
