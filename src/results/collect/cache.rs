//! The parse cache (per-file results keyed by path, size, modification time and parser
//! version), the fingerprint of what the tables depend on, and the files changed since.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::file_result::FileResult;
use super::{Options, PARSER_VERSION, Report, Run, Source, TABLES};

/// Starts the cache file; postcard's encoding carries no field names, so a file of another
/// format must be told apart before it is decoded. After it, the postcard bytes in an LZ4
/// frame: a file's rows repeat most of their fields (the collective, the type, the GPU, the
/// timer names), and the cache of a dense tree was as large as its logs without it.
const CACHE_MAGIC: &[u8] = b"sweep collect cache, postcard in lz4 frame\n";

#[derive(Deserialize)]
struct Fingerprinted {
    fingerprint: String,
    report: Report,
}

/// The fingerprint file's bytes, a [`Fingerprinted`] around the report's JSON as made (one
/// serialisation of the report, for this file and for `--json`'s output both).
pub(super) fn fingerprint_file(fingerprint: &str, report_json: &[u8]) -> Result<Vec<u8>> {
    let mut bytes = b"{\"fingerprint\":".to_vec();
    serde_json::to_writer(&mut bytes, fingerprint)?;
    bytes.extend_from_slice(b",\"report\":");
    bytes.extend_from_slice(report_json);
    bytes.push(b'}');
    Ok(bytes)
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Cache {
    version: u32,
    /// The user patterns the cached results were parsed with (their JSON).
    #[serde(default)]
    patterns: String,
    pub(super) files: BTreeMap<String, FileResult>,
}

impl Cache {
    /// Writes the cache file (unchanged when its bytes are).
    pub(super) fn save(&self, path: &Path) -> Result<()> {
        // Encoded straight into the compressor: no uncompressed copy of the cache in memory.
        // postcard writes field by field: small writes, gathered before the compressor.
        let mut enc = std::io::BufWriter::with_capacity(
            1 << 16,
            lz4_flex::frame::FrameEncoder::new(CACHE_MAGIC.to_vec()),
        );
        postcard::to_io(self, &mut enc)?;
        let bytes = enc.into_inner().map_err(|e| e.into_error())?.finish()?;
        crate::campaign::write_if_changed(path, &bytes).map(drop)
    }
}

pub(super) fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// What the tables depend on: the parser, the patterns, the profile, every file's size and
/// modification time, every run's status and parameters.
pub(super) fn fingerprint(
    runs: &[Run],
    sources: &[Source],
    metas: &[Option<(u64, u128)>],
    pattern_key: &str,
    profile: Option<&crate::profile::Profile>,
) -> Result<String> {
    let mut text = format!(
        "{PARSER_VERSION}\n{pattern_key}\n{}\n",
        profile.map(|p| p.name.as_str()).unwrap_or("")
    );
    for (s, m) in sources.iter().zip(metas) {
        text.push_str(&format!("{}\t{}\t{:?}\n", s.key, s.run, m));
    }
    for r in runs {
        text.push_str(&format!(
            "{}\t{}\t{}\t{:?}\n",
            r.run,
            r.status,
            serde_json::to_string(&r.params)?,
            r.unavailable
        ));
    }
    Ok(format!(
        "{:016x}{:08x}",
        crate::expand::fnv1a(text.as_bytes()),
        text.len()
    ))
}

/// The last collect's report, when its fingerprint is this one and its tables are all there.
pub(super) fn current_report(opts: &Options, fp_path: &Path, fingerprint: &str) -> Option<Report> {
    if !opts.force
        && TABLES.iter().all(|t| opts.out.join(t).exists())
        && let Some(mut last) = std::fs::read(fp_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Fingerprinted>(&b).ok())
            .filter(|f| f.fingerprint == fingerprint)
            .map(|f| f.report)
    {
        last.cached = last.files;
        last.parsed = 0;
        last.bytes_parsed = 0;
        last.out = opts.out.clone();
        return Some(last);
    }
    None
}

/// The parse cache of the last collect, empty when forced or made by another parser or
/// other patterns.
pub(super) fn load_cache(opts: &Options, cache_path: &Path, pattern_key: String) -> Cache {
    let cache: Cache = if opts.force {
        Cache::default()
    } else {
        std::fs::read(cache_path)
            .ok()
            .and_then(|b| {
                let mut raw = Vec::new();
                std::io::Read::read_to_end(
                    &mut lz4_flex::frame::FrameDecoder::new(b.strip_prefix(CACHE_MAGIC)?),
                    &mut raw,
                )
                .ok()?;
                postcard::from_bytes(&raw).ok()
            })
            .unwrap_or_default()
    };
    if cache.version != PARSER_VERSION || cache.patterns != pattern_key {
        return Cache {
            version: PARSER_VERSION,
            patterns: pattern_key,
            files: BTreeMap::new(),
        };
    }
    cache
}

/// The files not in the cache as they are now, largest first.
pub(super) fn changed_files(
    sources: &[Source],
    metas: &[Option<(u64, u128)>],
    cache: &Cache,
) -> Vec<usize> {
    let mut todo = Vec::new();
    for (i, (s, m)) in sources.iter().zip(metas).enumerate() {
        let Some((size, mt)) = m else { continue };
        let fresh = cache
            .files
            .get(&s.key)
            .is_some_and(|c| c.size == *size && c.mtime_ns == *mt && c.version == PARSER_VERSION);
        if !fresh {
            todo.push(i);
        }
    }
    // Largest first, each core taking the next file when done with one (list scheduling): the
    // big logs start at once, spread over the cores, and the small files fill the gaps; rayon's
    // splitting of the list in halves could leave a big log last, on one core, with the other
    // idle.
    todo.sort_by_key(|&i| std::cmp::Reverse(metas[i].map_or(0, |m| m.0)));
    todo
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report that stands when nothing changed is read back from the fingerprint file's
    /// JSON: every figure must come back as the same `f64`, not a neighbour of it (two
    /// figures of the benchmark corpus did, before the float parser was made exact).
    #[test]
    fn the_report_that_stands_has_the_figures_that_were_made() {
        let mut run = Run::default();
        let values = [
            1240.1599999999999,
            118.80458715596333,
            0.1 + 0.2,
            1e-300,
            5e-324,
        ];
        for (i, v) in values.iter().enumerate() {
            run.figures.insert(format!("f{i}"), Some(*v));
        }
        let report = Report {
            runs: vec![run],
            ..Report::default()
        };
        let json = serde_json::to_vec_pretty(&report).unwrap();
        let bytes = fingerprint_file("x", &json).unwrap();
        let back: Fingerprinted = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.fingerprint, "x");
        for (i, v) in values.iter().enumerate() {
            let got = back.report.runs[0].figures[&format!("f{i}")].unwrap();
            assert_eq!(got.to_bits(), v.to_bits(), "{v:?} came back as {got:?}");
        }
    }
}
