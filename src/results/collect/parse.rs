//! The changed files parsed and summarized on every core.

use super::Source;
use super::file_result::FileResult;
use super::summarize::summarize;
use crate::parsers;

/// Parses and summarizes the files `todo` lists, on every core, in the order of the list.
pub(super) fn parse_files(
    sources: &[Source],
    metas: &[Option<(u64, u128)>],
    todo: &[usize],
    parse_opts: &parsers::ParseOptions,
    progress: bool,
    total_bytes: u64,
) -> Vec<(usize, usize, Result<FileResult, String>)> {
    let bar = (progress && !todo.is_empty()).then(|| {
        let b = indicatif::ProgressBar::new(total_bytes);
        if let Ok(st) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ) {
            b.set_style(st);
        }
        b
    });
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parsed: Vec<(usize, usize, Result<FileResult, String>)> = rayon::broadcast(|_| {
        let mut mine = Vec::new();
        loop {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&i) = todo.get(k) else { break };
            let s = &sources[i];
            let name = s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let res = metas[i]
                .map_or_else(
                    || parsers::parse_file_with(&s.path, parse_opts),
                    |(size, _)| parsers::parse_file_sized(&s.path, size, parse_opts),
                )
                .map(|log| summarize(&log, &name))
                .map_err(|e| format!("{}: cannot read: {e}", s.path.display()));
            if let (Some(b), Some((size, _))) = (&bar, metas[i]) {
                b.inc(size);
            }
            mine.push((k, i, res));
        }
        mine
    })
    .into_iter()
    .flatten()
    .collect();
    // The order of the list, whichever core read which file (warnings come out in it).
    parsed.sort_unstable_by_key(|p| p.0);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    parsed
}
