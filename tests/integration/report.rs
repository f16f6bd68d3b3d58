//! `sweep report` on the real H200 run (tests/fixtures/device-h200-2026-12-02): a
//! self-contained HTML file that a real headless Chromium loads without console errors, and a
//! summary whose headline is the collected figure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{bin, root};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|b| {
            let o = Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .ok()?;
            o.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        })
}

fn chrome_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

#[test]
fn report_is_self_contained_and_renders_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("res");
    let campaign = root().join("tests/fixtures/device-h200-2026-12-02/campaign");
    let o = Command::new(bin())
        .args([
            "report",
            campaign.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for bad in [
        "<script",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
        "<link",
    ] {
        assert!(
            !html.contains(bad),
            "report.html must not load anything: found {bad}"
        );
    }
    assert!(html.matches("<svg").count() >= 3, "charts are inline SVG");
    for section in [
        "Scaling",
        "Collective bandwidth",
        "Step times",
        "Jobs",
        "GPU utilisation and power",
        "Targets",
        "Plan check",
        "Failures",
        "Provenance",
    ] {
        assert!(
            html.contains(&format!("<h2>{section}")),
            "no {section} section"
        );
    }
    assert!(
        html.contains("torch.OutOfMemoryError: CUDA out of memory"),
        "the OOM job's evidence is shown"
    );
    assert!(
        html.contains("likely out of memory"),
        "the plan check flagged the OOM point before it ran"
    );
    // The headline is the best collected throughput.
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(runs.as_bytes());
    let h = rdr.headers().unwrap().clone();
    let col = h.iter().position(|c| c == "samples_per_s").unwrap();
    let best = rdr
        .records()
        .filter_map(|r| r.unwrap().get(col).and_then(|v| v.parse::<f64>().ok()))
        .fold(0.0, f64::max);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains(&format!("**{best:.2} samples/s**")), "{md}");

    let Some(chrome) = chromium() else {
        eprintln!(
            "\n*** SKIPPING the Chromium part: no chromium binary (Debian package `chromium`; tests/run-all.sh installs it) ***\n"
        );
        return;
    };
    let shot = tmp.path().join("report.png");
    let url = format!("file://{}", out.join("report.html").display());
    let o = Command::new(&chrome)
        .args(chrome_args(&tmp.path().join("chrome-profile")))
        .args([
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2600".into(),
            "--hide-scrollbars".into(),
            url.clone(),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(shot.exists(), "no screenshot; chromium said:\n{log}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 20_000,
        "the screenshot is (nearly) empty"
    );
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let dom = Command::new(&chrome)
        .args(chrome_args(&tmp.path().join("chrome-profile2")))
        .args(["--dump-dom".to_string(), url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("Benchmark report: device-h200") && dom.contains("<svg"),
        "the DOM did not load"
    );
    if let Ok(keep) = std::env::var("SWEEP_KEEP_REPORT_SHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
