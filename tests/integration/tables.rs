//! The tables `collect` writes, byte for byte, for every fixture log tree and campaign, and
//! what `report` makes of a campaign (the analysis tables, report.html, summary.md): the proof
//! that a restructure changed no output. `tests/golden/tables.txt` holds each table's size and
//! FNV-1a hash; a change that means to alter tables regenerates it with `SWEEP_BLESS=1` (and says
//! why in its commit), and a failure writes the new tables under `target/tables-new/` to diff.
//! The public logs are read in place (`../shared/fixtures/public`) and only their tables'
//! hashes are kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;

use crate::util::root;

/// How a source is read: `collect --logs`, `collect` of a campaign, or `report` of a campaign.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Logs,
    Campaign,
    Report,
}

/// (name in the golden file, the tree or campaign, how it is read).
fn sources() -> Vec<(String, Vec<PathBuf>, Mode)> {
    let mut v = Vec::new();
    let fixtures = root().join("tests/fixtures");
    let mut trees: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    trees.sort();
    for t in trees {
        let name = t.file_name().unwrap().to_string_lossy().to_string();
        v.push((format!("logs:{name}"), vec![t.clone()], Mode::Logs));
        // A campaign directory among the fixtures is collected as a campaign too.
        for e in walkdir::WalkDir::new(&t).into_iter().flatten() {
            if e.file_name() == "campaign.json" {
                let dir = e.path().parent().unwrap().to_path_buf();
                let rel = dir.strip_prefix(&fixtures).unwrap().display().to_string();
                v.push((format!("campaign:{rel}"), vec![dir.clone()], Mode::Campaign));
                v.push((format!("report:{rel}"), vec![dir], Mode::Report));
            }
        }
    }
    let shared = root().join("../shared/fixtures");
    for name in ["device-h100-2026-11-24", "public"] {
        let p = shared.join(name);
        if p.is_dir() {
            v.push((format!("shared:{name}"), vec![p], Mode::Logs));
        } else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have {}",
                p.display()
            );
            eprintln!("*** SKIPPING {}: not found ***", p.display());
        }
    }
    v
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Every table of one collect: file name -> bytes (the cache and fingerprint, which hold paths
/// and times, are not output).
fn collect(args: &[PathBuf], mode: Mode, out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut cmd = cargo_bin_cmd!("sweep");
    cmd.arg("-q");
    match mode {
        Mode::Logs => cmd.args(["collect", "--logs"]),
        Mode::Campaign => cmd.arg("collect"),
        Mode::Report => cmd.arg("report"),
    };
    cmd.args(args).arg("--out").arg(out);
    if mode != Mode::Report {
        cmd.arg("--force");
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut tables = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !e.path().is_file() {
            continue;
        }
        tables.insert(name, without_checkout(std::fs::read(e.path()).unwrap()));
    }
    tables
}

/// The output with this checkout's path replaced by `<checkout>`: report.html names the
/// campaign's directory, which differs from clone to clone (CI clones into a folder of its own).
fn without_checkout(bytes: Vec<u8>) -> Vec<u8> {
    let root = root();
    let canonical = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
    let mut bytes = bytes;
    for needle in [root, canonical] {
        let needle = needle.display().to_string().into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if !needle.is_empty() && bytes[i..].starts_with(&needle) {
                out.extend_from_slice(b"<checkout>");
                i += needle.len();
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        bytes = out;
    }
    bytes
}

#[test]
fn collect_writes_the_same_tables_for_every_fixture() {
    let golden_path = root().join("tests/golden/tables.txt");
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let mut new_tables = Vec::new();
    for (i, (name, args, mode)) in sources().into_iter().enumerate() {
        let out = tmp.path().join(i.to_string());
        for (table, bytes) in collect(&args, mode, &out) {
            lines.push(format!(
                "{name} {table} {} {:016x}",
                bytes.len(),
                fnv1a(&bytes)
            ));
            new_tables.push((name.clone(), table, bytes));
        }
    }
    let got = lines.join("\n") + "\n";
    if std::env::var_os("SWEEP_BLESS").is_some() {
        std::fs::create_dir_all(golden_path.parent().unwrap()).unwrap();
        std::fs::write(&golden_path, &got).unwrap();
        eprintln!("wrote {}", golden_path.display());
        return;
    }
    let want = std::fs::read_to_string(&golden_path).unwrap_or_default();
    if got != want {
        let dump = root().join("target/tables-new");
        let _ = std::fs::remove_dir_all(&dump);
        for (name, table, bytes) in &new_tables {
            let d = dump.join(name.replace([':', '/'], "_"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(table), bytes).unwrap();
        }
        let want_lines: Vec<&str> = want.lines().collect();
        let differ: Vec<&String> = lines
            .iter()
            .filter(|l| !want_lines.contains(&l.as_str()))
            .collect();
        let gone: Vec<&&str> = want_lines
            .iter()
            .filter(|l| !lines.iter().any(|x| x == **l))
            .collect();
        panic!(
            "collect's tables changed (new tables under {}):\nnow:\n{}\nbefore:\n{}",
            dump.display(),
            differ
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            gone.iter().map(|s| **s).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(lines.len() > 50, "{} tables", lines.len());
}
