//! The human summary of a collect.

use super::Report;

pub(crate) fn render_summary(r: &Report) -> String {
    use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "run",
        "status",
        "failure",
        "samples/s",
        "TFLOP/s/GPU",
        "step ms p50",
        "GPU util %",
        "busbw peak GB/s",
    ]);
    for run in r.runs.iter().take(200) {
        // One decimal on screen (the tables hold four).
        let f = |k: &str| {
            run.figures
                .get(k)
                .copied()
                .flatten()
                .filter(|x| x.is_finite())
                .map(|x| format!("{x:.1}"))
                .unwrap_or_default()
        };
        t.add_row(vec![
            run.run.clone(),
            run.status.clone(),
            crate::rows::class_str(run.failure_class).to_string(),
            f("samples_per_s"),
            f("tflops_per_gpu"),
            f("step_time_ms_p50"),
            f("gpu_util_avg"),
            f("busbw_gbps_peak"),
        ]);
    }
    let mut s = format!("{t}\n");
    s.push_str(&format!(
        "{} files: {} parsed ({:.1} MB), {} unchanged (cached); tables in {}\n",
        r.files,
        r.parsed,
        r.bytes_parsed as f64 / 1e6,
        r.cached,
        r.out.display()
    ));
    for w in r.warnings.iter().take(20) {
        s.push_str(&format!("warning: {w}\n"));
    }
    if r.warnings.len() > 20 {
        s.push_str(&format!("warning: ... {} more\n", r.warnings.len() - 20));
    }
    s
}
