//! The unit tests of the line reading, cleaning, numbers and dispatch, in one module as
//! they were when these lived in one file.

use std::io::{self, Read};

use crate::line::normalize::{STRAY_FULL, clean_pieces};
use crate::line::simd::{clean_prefix, fill_with};
use crate::line::source::BLOCK;
use crate::num::simple_decimal;
use crate::testdata::device_line;
use crate::*;

fn segs(s: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    normalize_line(s, &mut out);
    out
}

const ROW_NEEDLE: &str = "     1048576        262144     float    none      -1     8.76";

#[test]
fn strips_launcher_prefixes_from_real_lines() {
    let nccl = device_line("nccl-allgather-debug.log", "NCCL version");
    for (prefix, rank) in [
        ("[1,10]<stdout>:", 10),
        ("[default7]:", 7),
        ("[rank7]:", 7),
        ("  7: ", 7),
    ] {
        let prefixed = format!("{prefix}{nccl}");
        let (rest, r, _) = strip_prefixes(&prefixed);
        assert_eq!((rest, r), (nccl.as_str(), Some(rank)), "{prefix}");
    }
    let prefixed = format!("node-01: [default3]:{nccl}");
    let (rest, r, h) = strip_prefixes(&prefixed);
    assert_eq!((rest, r, h), (nccl.as_str(), Some(3), Some("node-01")));
    // A real line that starts with PyTorch's rank tag.
    let w = device_line("ds-z2-torchrun.log", "destroy_process_group");
    let (rest, r, _) = strip_prefixes(&w);
    assert_eq!(r, Some(0));
    assert!(rest.starts_with("[W1124 21:54:18.133542775 ProcessGroupNCCL.cpp:1575] Warning:"));
    // Lines of real logs that must be left alone.
    for line in [
        nccl.clone(),
        device_line("nccl-allgather-debug.log", ROW_NEEDLE),
        device_line("ds-z2-torchrun.log", "final loss"),
        device_line("nvsmi-train.csv", "2026/11/24 21:52:34.908"),
    ] {
        assert_eq!(strip_prefixes(&line).0, line);
    }
}

#[test]
fn mpirun_tags_inside_a_row_of_the_same_rank_are_removed() {
    // A real row, tagged the way mpirun --tag-output tags each printf of it.
    let row = device_line("nccl-allgather-debug.log", ROW_NEEDLE);
    let (pre, post) = row.split_at(row.find("     8.76").expect("time"));
    let (mid, tail) = post.split_at(post.find("     0.93").expect("in-place"));
    let tagged = format!("[1,0]<stdout>:{pre}[1,0]<stdout>:{mid}[1,0]<stdout>:{tail}");
    let s = segs(&tagged);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].rank, Some(0));
    assert_eq!(s[0].text, row);
    // A tag of another rank splits the line.
    let s = segs(&format!("[1,0]<stdout>:{pre}[1,3]<stdout>:{mid}"));
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].rank, s[1].rank), (Some(0), Some(3)));
}

#[test]
fn glued_lines_are_split() {
    let row = device_line("nccl-allgather-debug.log", ROW_NEEDLE);
    let info = device_line("nccl-allgather-debug.log", "Destroy COMPLETE");
    let oob = device_line("nccl-allgather-debug.log", "# Out of bounds values");
    let s = segs(&format!("{row}{oob}"));
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].text.as_str(), s[1].text.as_str()),
        (row.as_str(), oob.as_str())
    );
    let s = segs(&format!("{info}{oob}"));
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].text.as_str(), s[1].text.as_str()),
        (info.as_str(), oob.as_str())
    );
    // An NCCL line glued after other text takes the text's last word as part of its host
    // name (the boundary is unknowable): the first segment then lacks that word, which the
    // table parser reports (see nccl_tests' glued-row test) rather than misreading.
    let s = segs(&format!("{row}{info}"));
    assert_eq!(s.len(), 2);
    assert!(s[1].text.ends_with("Destroy COMPLETE"));
}

#[test]
fn ansi_and_carriage_returns_are_cleaned() {
    let header = device_line("sysinfo.txt", "CPU Affinity");
    assert!(header.contains('\u{1b}'));
    let s = segs(&header);
    assert_eq!(
        s[0].text,
        "\tGPU0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID"
    );
    let a = device_line("ds-z2-torchrun.log", "final loss");
    let s = segs(&format!("{a}\r{a}\r"));
    assert_eq!(s.len(), 2);
}

/// The row of the real log whose busbw issue 21 found read as 137.4 with a NUL in place
/// of its `8`.
const ROW_1387: &str =
    "    67108864      16777216     float    none       0    48.37  1387.4  1387.4       0";

/// The real nccl-tests log, and a copy with `byte` in place of the `8` of [`ROW_1387`]'s
/// busbw, that row's line and the byte's offset in it.
fn log_with_byte_in_busbw(byte: u8) -> (String, Vec<u8>, u64, usize) {
    let log = super::testdata::device("nccl-collectives.log");
    let at = log.find(ROW_1387).expect("row");
    let no = log[..at].matches('\n').count() as u64 + 1;
    let col = ROW_1387.find("1387.4       0").expect("busbw") + 2;
    let mut data = log.clone().into_bytes();
    assert_eq!(data[at + col], b'8');
    data[at + col] = byte;
    (log, data, no, col)
}

fn rows(runs: &[nccl_tests::NcclRun]) -> Vec<nccl_tests::NcclRow> {
    runs.iter().flat_map(|r| r.rows.iter().cloned()).collect()
}

fn control_warnings(w: &[Warning]) -> Vec<&Warning> {
    w.iter()
        .filter(|w| w.message.contains("control byte"))
        .collect()
}

/// Issue 21: a control byte in place of a digit is a warning naming its line, and the row
/// it is in is not read; no figure is made of the bytes around it. ESC counts when it
/// starts no sequence in use (here `ESC 7`, which would save the cursor).
#[test]
fn a_control_byte_in_a_row_is_a_warning_not_a_changed_figure() {
    for byte in [0x00, 0x01, 0x7f, 0x08, 0x0b, 0x0c, 0x1b, 0x1f] {
        let (log, data, no, col) = log_with_byte_in_busbw(byte);
        let whole = parse_str("x.log", &log);
        let got = parse_reader("x.log", data.as_slice());
        let all = rows(&whole.nccl_tests);
        let others: Vec<_> = all.iter().filter(|r| r.line != no).cloned().collect();
        assert!(all.iter().any(|r| r.line == no && r.busbw_gbps == 1387.4));
        assert!(
            rows(&got.nccl_tests).iter().all(|r| r.busbw_gbps != 137.4),
            "{byte:#04x}"
        );
        assert_eq!(rows(&got.nccl_tests), others, "{byte:#04x}");
        let w = control_warnings(&got.warnings);
        assert_eq!(w.len(), 1, "{byte:#04x}: {:?}", got.warnings);
        assert_eq!(w[0].line, no);
        assert_eq!(
            w[0].message,
            format!(
                "control byte {byte:#04x} at line {no}, column {}: {STRAY_FULL}",
                col + 1
            )
        );
        // Nothing else of the parse changes.
        let rest: Vec<_> = got
            .warnings
            .iter()
            .filter(|x| !x.message.contains("control byte"))
            .collect();
        assert_eq!(rest, whole.warnings.iter().collect::<Vec<_>>());
        for (a, b) in got.nccl_tests.iter().zip(&whole.nccl_tests) {
            assert_eq!(a.avg_busbw_gbps, b.avg_busbw_gbps);
            assert_eq!(a.columns, b.columns);
        }
        // The standalone parser, through `for_each_line`, the same.
        let (runs, warnings) = nccl_tests::parse_reader(data.as_slice());
        assert_eq!(rows(&runs), others, "{byte:#04x}");
        let w = control_warnings(&warnings);
        assert_eq!(w.len(), 1, "{warnings:?}");
        assert_eq!(w[0].line, no);
        assert!(
            w[0].message
                .starts_with(&format!("control byte {byte:#04x} at line {no}"))
        );
    }
}

/// A failure's line with a control byte in it is still found (its words are kept apart).
#[test]
fn a_line_with_a_control_byte_is_still_searched_for_failures() {
    let clean = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n";
    let want = parse_str("x.log", clean).failures;
    assert_eq!(want.len(), 1);
    let got = parse_str("x.log", &clean.replace("CUDA ", "CUDA\u{0}"));
    assert_eq!(got.failures.len(), 1);
    assert_eq!(got.failures[0].class, want[0].class);
    assert_eq!(control_warnings(&got.warnings).len(), 1);
}

/// A binary file, or a damaged one, is not a warning per line: the first line, then a
/// count of the others.
#[test]
fn control_byte_warnings_are_bounded() {
    let data = "ab\u{0}cd 12\u{0}34\n\u{7f}x 1\n".repeat(5000);
    let log = parse_str("x.log", &data);
    let w = control_warnings(&log.warnings);
    assert_eq!(w.len(), 2, "{:?}", log.warnings);
    assert_eq!((w[0].line, w[1].line), (1, 1));
    assert!(
        w[0].message
            .starts_with("control byte 0x00 at line 1, column 3: ")
    );
    assert_eq!(
        w[1].message,
        format!("9999 more line(s) after line 1 held control bytes: {STRAY_FULL}")
    );
    let (_, warnings) = nccl_tests::parse_reader(data.as_bytes());
    let w = control_warnings(&warnings);
    assert_eq!(w.len(), 2);
    assert!(w[1].message.starts_with("9999 more line(s) after line 1"));
    // A line of nothing but such bytes (a zeroed block) has no figure, but is told of.
    let log = parse_str("x.log", "a 1\n\u{0}\u{0}\u{0}\nb 2\n");
    let w = control_warnings(&log.warnings);
    assert_eq!(w.len(), 1);
    assert_eq!(
        w[0].message,
        format!("control byte 0x00 at line 2, column 1: {STRAY_FULL}")
    );
    let (_, warnings) = nccl_tests::parse_reader("\u{0}\n".as_bytes());
    assert_eq!(
        warnings[0].message,
        "control byte 0x00 at line 1, column 1: ignored"
    );
}

/// What is legitimately removed still is, without a warning: colours around and inside a
/// row, `\r` progress bars before it, the `ESC ( B` of `tput sgr0`, an OSC hyperlink;
/// tqdm's bars of a real Trainer log and the underlined header of a real `nvidia-smi topo`.
#[test]
fn escape_sequences_and_progress_bars_are_removed_without_a_warning() {
    let log = super::testdata::device("nccl-collectives.log");
    let whole = parse_str("x.log", &log);
    let (lead, rest) = ROW_1387.split_at(ROW_1387.find("1387.4").expect("algbw"));
    for row in [
        format!("\u{1b}[1;32m{ROW_1387}\u{1b}[0m"),
        format!("{lead}\u{1b}[31m13\u{1b}[0m{}", &rest[2..]),
        format!("\r 10%|#         | 1/10 [00:01<00:09]\u{1b}[A\r{ROW_1387}"),
        format!("\u{1b}(B\u{1b}[m{ROW_1387}"),
        format!("\u{1b}]8;;http://x/\u{1b}\\{ROW_1387}\u{1b}]8;;\u{7}"),
        format!("{ROW_1387}\t"),
    ] {
        let got = parse_str("x.log", &log.replace(ROW_1387, &row));
        assert_eq!(rows(&got.nccl_tests), rows(&whole.nccl_tests), "{row:?}");
        assert_eq!(got.warnings, whole.warnings, "{row:?}");
    }
    for file in [
        "device-h100-2026-12-07/hf-trainer.log",
        "device-h100-2026-11-24/sysinfo.txt",
    ] {
        let text = super::testdata::fixture(file);
        assert!(text.contains('\u{1b}'));
        let got = parse_str("x.log", &text);
        assert!(control_warnings(&got.warnings).is_empty(), "{file}");
    }
}

#[test]
fn stray_control_bytes_become_spaces_and_mark_their_piece() {
    let piece = |t: &str| {
        clean_pieces(t)
            .into_iter()
            .map(|p| (p.text, p.stray))
            .collect::<Vec<_>>()
    };
    let one = |t: &str, s: Option<(u8, usize)>| vec![(t.to_string(), s)];
    assert_eq!(piece("13\u{0}7.4"), one("13 7.4", Some((0, 2))));
    assert_eq!(piece("a\u{1}b\u{2}c"), one("a b c", Some((1, 1))));
    assert_eq!(piece("13\u{1b}87.4"), one("13 87.4", Some((0x1b, 2))));
    assert_eq!(piece("x\u{1b}"), one("x ", Some((0x1b, 1))));
    assert_eq!(piece("x\u{1b}[12"), one("x [12", Some((0x1b, 1))));
    assert_eq!(piece("x\u{1b}]title"), one("x ]title", Some((0x1b, 1))));
    assert_eq!(piece("x\u{1b}(9"), one("x (9", Some((0x1b, 1))));
    assert_eq!(
        piece("\u{1b}[1;31m\u{e9}\u{1b}[0m\t1"),
        one("\u{e9}\t1", None)
    );
    assert_eq!(piece("\u{1b}(B\u{1b}[m1\u{1b}=\u{1b}>"), one("1", None));
    assert_eq!(
        piece("a\u{0}\rb\rc\u{7f}"),
        vec![
            ("a ".to_string(), Some((0, 1))),
            ("b".to_string(), None),
            ("c ".to_string(), Some((0x7f, 6))),
        ]
    );
    // Segments of a marked piece are marked, with the byte's offset in the line.
    let s = segs("[1,0]<stdout>: 13\u{0}7.4\r[1,0]<stdout>: 1387.4");
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].text.as_str(), s[0].control),
        (" 13 7.4", Some((0, 17)))
    );
    assert_eq!((s[1].text.as_str(), s[1].control), (" 1387.4", None));
}

/// The fast path sends a line with NUL, `\x01`, DEL (or any control byte but tab) in it to
/// the careful one, wherever the byte falls in the 64-byte words of the block maps: with
/// AVX2 and with SSE2 (each tested alone), in the plain loop of a block's tail, and in the
/// line-by-line scan.
#[test]
fn control_bytes_in_plain_lines_reach_the_careful_path() {
    let bytes = [0x00u8, 0x01, 0x7f, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, b'\r'];
    let row = ROW_1387.as_bytes();
    for &byte in &bytes {
        for k in 0..64 {
            let mut c = row[..64].to_vec();
            c[k] = byte;
            let plain = BlockMaps::masks(&c);
            assert_eq!(plain.2, 1 << k, "{byte:#04x} at {k}");
            #[cfg(target_arch = "x86_64")]
            {
                assert_eq!(BlockMaps::masks64_sse2(&c), plain);
                if is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is there; `c` holds 64 bytes.
                    assert_eq!(unsafe { BlockMaps::masks64_avx2(&c) }, plain);
                }
            }
        }
    }
    let real = super::testdata::device("nccl-collectives.log");
    let lines: Vec<&str> = real.lines().take(40).collect();
    for &byte in &bytes[..3] {
        for at in 0..row.len() {
            // Lines before it of every length up to a few words, so that the row starts
            // anywhere in a word and its byte falls in whole words and in a block's tail.
            let before = lines[..at % lines.len()].join("\n");
            let mut bad = row.to_vec();
            bad[at] = byte;
            let mut data = format!("{before}\n").into_bytes();
            let no = before.matches('\n').count() as u64 + 2;
            data.extend_from_slice(&bad);
            data.extend_from_slice(b"\n");
            data.extend_from_slice(lines.join("\n").as_bytes());
            data.extend_from_slice(b"\n");
            let mut src = LineSource::new(data.as_slice());
            let mut seen = false;
            while let Some(c) = src.next_chunk() {
                match c {
                    Chunk::Clean { text, .. } => {
                        assert!(!text.as_bytes().contains(&byte), "{byte:#04x} at {at}")
                    }
                    Chunk::Line(raw) if raw.no == no => {
                        assert!(raw.control, "{byte:#04x} at {at}");
                        seen = true;
                    }
                    Chunk::Line(_) => {}
                }
            }
            assert!(seen, "{byte:#04x} at {at}");
            let mut src = LineSource::new(data.as_slice());
            let raw = std::iter::from_fn(|| src.next_line().map(|l| (l.no, l.control)))
                .find(|l| l.0 == no);
            assert_eq!(raw, Some((no, true)));
        }
    }
}

#[test]
fn line_source_handles_crlf_invalid_utf8_and_missing_newline() {
    let a = device_line("ds-z2-torchrun.log", "final loss");
    let mut data = format!("{a}\r\n{a}\n{a}").into_bytes();
    let second = a.len() + 2 + 3;
    data[second] = 0xff;
    let mut src = LineSource::new(data.as_slice());
    let l1 = src
        .next_line()
        .map(|l| (l.text.to_string(), l.terminated, l.lossy));
    assert_eq!(l1, Some((a.clone(), true, false)));
    let l2 = src
        .next_line()
        .map(|l| (l.text.contains('\u{fffd}'), l.lossy));
    assert_eq!(l2, Some((true, true)));
    let l3 = src.next_line().map(|l| (l.text.to_string(), l.terminated));
    assert_eq!(l3, Some((a, false)));
    assert!(src.next_line().is_none());
}

/// A reader that hands out at most `n` bytes per call, as pipes and slow disks do.
struct Trickle<'a>(&'a [u8], usize);
impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Every line, its number, ending and cut flag, and the byte count, whatever the read sizes
/// and size hint: lines across block ends, lines longer than [`MAX_LINE_BYTES`] (cut, the
/// rest skipped up to the newline, also when that is the last line), CRLF, empty lines.
#[test]
fn line_source_is_independent_of_read_sizes() {
    let long = "x".repeat(MAX_LINE_BYTES + 300_000);
    let real = device_line("ds-z2-torchrun.log", "final loss");
    let data = format!(
        "{real}\r\n\n{long}\nafter long\n{}\n{real}\n{long}",
        "y".repeat(BLOCK * 2 + 17)
    );
    let want = |text: &str| -> (String, bool, bool) {
        let cut = text.len() > MAX_LINE_BYTES;
        (
            text[..text.len().min(MAX_LINE_BYTES)].to_string(),
            true,
            cut,
        )
    };
    let mut expect: Vec<(String, bool, bool)> = vec![
        want(&real),
        want(""),
        want(&long),
        want("after long"),
        want(&"y".repeat(BLOCK * 2 + 17)),
        want(&real),
    ];
    expect.push((long[..MAX_LINE_BYTES].to_string(), false, true));
    for (step, hint) in [
        (1 << 30, 0),
        (7, 100),
        (4096, BLOCK as u64),
        (BLOCK + 3, 10),
    ] {
        let mut src = LineSource::with_size_hint(Trickle(data.as_bytes(), step), hint);
        let mut got = Vec::new();
        while let Some(l) = src.next_line() {
            assert_eq!(l.no as usize, got.len() + 1);
            got.push((l.text.to_string(), l.terminated, l.cut));
        }
        assert!(got == expect, "read size {step}, hint {hint}");
        assert_eq!(src.bytes_read(), data.len() as u64, "read size {step}");
    }
}

/// The gate changes what is read, never what is found: every fixture log, and variants of
/// each with launcher prefixes, glued lines, CRLF, noise and cuts, parse to the same result
/// as with every parser fed every line.
#[test]
fn gated_parse_equals_ungated_parse() {
    // Line by line, gated or not; or as `parse_sized` reads, runs of clean lines at a
    // time, with reads of `trickle` bytes so that runs end anywhere.
    let parse = |data: &[u8], ungated: bool| {
        let mut p = LogParser::new(&ParseOptions::default());
        p.ungated = ungated;
        let mut src = LineSource::new(data);
        while let Some(raw) = src.next_line() {
            p.feed_raw(&raw);
        }
        serde_json::to_string(&p.finish("x", 0)).expect("serialisable")
    };
    let by_chunks = |data: &[u8], trickle: usize| {
        let mut p = LogParser::new(&ParseOptions::default());
        let mut src = LineSource::new(Trickle(data, trickle));
        while let Some(c) = src.next_chunk() {
            match c {
                Chunk::Clean {
                    text,
                    first_no,
                    maps,
                } => p.feed_clean(text, first_no, maps),
                Chunk::Line(raw) => p.feed_raw(&raw),
            }
        }
        serde_json::to_string(&p.finish("x", 0)).expect("serialisable")
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |k: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % k.max(1) as u64) as usize
    };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
    let mut n = 0;
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !e.file_type().is_file() || name.ends_with(".json") || name.ends_with(".md") {
            continue;
        }
        let data = std::fs::read(e.path()).expect("fixture");
        let prefixed = |p: &dyn Fn(usize) -> String| -> Vec<u8> {
            let mut v = Vec::new();
            for (i, l) in data.split(|b| *b == b'\n').enumerate() {
                v.extend_from_slice(p(i).as_bytes());
                v.extend_from_slice(l);
                v.push(b'\n');
            }
            v
        };
        let crlf: Vec<u8> = data
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        let mut variants = vec![
            data.clone(),
            prefixed(&|i| format!("[1,{}]<stdout>:", i % 3)),
            prefixed(&|i| format!("[default{}]:", i % 2)),
            prefixed(&|i| format!("gpu-node{:02}: ", i % 2)),
            crlf,
        ];
        // Lines glued together: newlines removed at random.
        let mut glued = data.clone();
        for _ in 0..glued.len() / 400 + 1 {
            let at = rnd(glued.len());
            if glued.get(at) == Some(&b'\n') || glued.get(at + 1) == Some(&b'\n') {
                let at = if glued[at] == b'\n' { at } else { at + 1 };
                glued.remove(at);
            }
        }
        variants.push(glued);
        let mut noisy = data.clone();
        let noise: &[&[u8]] = &[b"\x1b[31m", b"\r", b"\xff", b"#", b",", b"  ", b"\n"];
        for _ in 0..noisy.len() / 300 + 1 {
            let at = rnd(noisy.len() + 1);
            for (k, b) in noise[rnd(noise.len())].iter().enumerate() {
                noisy.insert(at + k, *b);
            }
        }
        variants.push(noisy);
        variants.push(data[..rnd(data.len() + 1)].to_vec());
        for v in &variants {
            let all = parse(v, true);
            assert_eq!(parse(v, false), all, "{}", e.path().display());
            let trickle = [1 << 20, 1 + rnd(300), 4096 + rnd(100_000)][n % 3];
            assert_eq!(
                by_chunks(v, trickle),
                all,
                "{} by {trickle}",
                e.path().display()
            );
            n += 1;
        }
    }
    assert!(n > 100, "only {n} logs compared");
}

#[test]
fn clean_prefix_stops_at_the_line_of_the_first_bad_byte() {
    let naive = |b: &[u8]| {
        let bad = b
            .iter()
            .position(|&x| (x < 0x20 && x != b'\t' && x != b'\n') || x >= 0x7f)
            .unwrap_or(b.len());
        let end = b[..bad]
            .iter()
            .rposition(|&x| x == b'\n')
            .map_or(0, |i| i + 1);
        let lines = b[..bad].iter().filter(|&&x| x == b'\n').count() as u64;
        (end, lines)
    };
    let mut seed = 7u64;
    for len in 0..200 {
        for _ in 0..20 {
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    match seed >> 59 {
                        0..=3 => b'\n',
                        4 => [b'\r', 0x1b, 0xc3, 0x7f, b'\t'][(seed >> 40) as usize % 5],
                        _ => b'a' + (seed >> 33) as u8 % 26,
                    }
                })
                .collect();
            assert_eq!(clean_prefix(&b), naive(&b), "{b:?}");
        }
    }
    assert_eq!(clean_prefix(b"ab\ncd\n"), (6, 2));
    assert_eq!(clean_prefix(b"ab\nc\x1bd\n"), (3, 1));
    assert_eq!(clean_prefix("\u{e9}\n".as_bytes()), (0, 0));
}

#[test]
fn block_maps_and_byte_compares_agree_with_plain_code() {
    let mut seed = 11u64;
    let mut maps = BlockMaps::default();
    for len in [0, 1, 63, 64, 65, 127, 128, 200, 1000] {
        let b: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                [b'\n', b']', b'a', b' ', b'\t', b'z'][(seed >> 61) as usize % 6]
            })
            .collect();
        let clean = maps.build(&b);
        let lines = b.iter().filter(|&&x| x == b'\n').count() as u64;
        let whole = b.iter().rposition(|&x| x == b'\n').map_or(0, |i| i + 1);
        assert_eq!(clean, (whole, lines));
        for from in 0..=len {
            let nl = b[from..].iter().position(|&x| x == b'\n').map(|i| from + i);
            assert_eq!(maps.next_newline(from), nl, "len {len} from {from}");
            for end in from..=len.min(from + 70) {
                let br = b[from..end].contains(&b']');
                assert_eq!(maps.bracket_in(from, end), br, "{len} {from}..{end}");
            }
        }
        for cut in 0..=len {
            let (x, y) = (&b[..cut], &b[len - cut..]);
            assert_eq!(same_bytes(x, y), x == y);
            assert!(same_bytes(x, x));
        }
    }
    assert!(!same_bytes(
        b"node-0001:12:12 [0] ",
        b"node-0001:12:13 [0] "
    ));
    assert!(!same_bytes(b"abc", b"abcd"));
}

#[test]
fn fast_trim_is_str_trim() {
    for t in [
        "",
        " ",
        "a",
        " a ",
        "\t\x0b\x0c\r\n a b \x0b",
        "\u{a0}a\u{3000}",
        " \u{a0} ",
        "\u{e9}",
        " x\u{e9} ",
        "\u{85}x",
        "x\u{2028}",
    ] {
        assert_eq!(trim(t), t.trim(), "{t:?}");
    }
}

/// The block loop (AVX2 where the CPU has it) maps as the plain one: up to the same
/// word, with the same lines and bad byte.
#[test]
fn fill_equals_the_plain_loop() {
    let mut seed = 11u64;
    for round in 0..300usize {
        let len = 64 * (1 + round % 9);
        let b: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let x = (seed >> 56) as u8;
                // A bad byte now and then, most blocks stop at one late or not at all.
                match x % 16 {
                    0..=2 => b'\n',
                    3 => b']',
                    4 if round.is_multiple_of(3) && seed.is_multiple_of(7) => 0x01,
                    _ => b'a' + x % 26,
                }
            })
            .collect();
        let words = len / 64;
        let (mut n1, mut r1) = (vec![0; words], vec![0; words]);
        let (mut n2, mut r2) = (vec![0; words], vec![0; words]);
        let got = BlockMaps::fill(&b, &mut n1, &mut r1);
        let want = fill_with(&b, &mut n2, &mut r2, BlockMaps::masks);
        assert_eq!(got, want, "round {round}");
        assert_eq!(n1[..got.0], n2[..got.0], "round {round}");
        assert_eq!(r1[..got.0], r2[..got.0], "round {round}");
    }
}

/// The separators and the ASCII test of [`find_seps`] are a plain scan's, across its
/// 16-byte steps and its tail, also past the slots given.
#[test]
fn find_seps_equals_a_plain_scan() {
    let mut seed = 3u64;
    for round in 0..500usize {
        let len = round % 80;
        let b: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                match (seed >> 56) % 5 {
                    0 => b',',
                    1 if round.is_multiple_of(7) => 0xc3,
                    _ => b'0' + (seed >> 40) as u8 % 10,
                }
            })
            .collect();
        let want: Vec<u32> = (0..len as u32).filter(|&i| b[i as usize] == b',').collect();
        let mut out = [0u32; 8];
        let (n, ascii) = find_seps(&b, b',', &mut out);
        assert_eq!(n, want.len(), "{b:?}");
        assert_eq!(out[..n.min(8)], want[..n.min(8)], "{b:?}");
        assert_eq!(ascii, b.is_ascii(), "{b:?}");
    }
}

#[test]
fn simd_masks_equal_the_plain_loop() {
    let mut seed = 5u64;
    for _ in 0..2000 {
        let c: Vec<u8> = (0..64)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let x = (seed >> 56) as u8;
                // Often one of the bytes that matter, else any byte.
                match x % 8 {
                    0 => b'\n',
                    1 => b']',
                    2 => b'\t',
                    3 => [0x7f, 0x1f, 0x20, 0x80, 0xff, 0x00][(x as usize / 8) % 6],
                    _ => x,
                }
            })
            .collect();
        let plain = BlockMaps::masks(&c);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(BlockMaps::masks64_sse2(&c), plain, "{c:?}");
            if is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is there; `c` holds 64 bytes.
                assert_eq!(unsafe { BlockMaps::masks64_avx2(&c) }, plain, "{c:?}");
            }
        }
    }
}

#[test]
fn chunks_number_lines_as_next_line_does() {
    let data = b"a\nb\n\x1b[1mc\nd\n\xffe\nf\ng";
    let mut src = LineSource::new(Trickle(data, 3));
    let mut seen = Vec::new();
    while let Some(c) = src.next_chunk() {
        match c {
            Chunk::Clean { text, first_no, .. } => {
                for (i, l) in text.lines().enumerate() {
                    seen.push((first_no + i as u64, l.to_string(), true));
                }
            }
            Chunk::Line(raw) => seen.push((raw.no, raw.text.to_string(), raw.terminated)),
        }
    }
    let mut want = Vec::new();
    let mut src = LineSource::new(&data[..]);
    while let Some(raw) = src.next_line() {
        want.push((raw.no, raw.text.to_string(), raw.terminated));
    }
    assert_eq!(seen, want);
    assert_eq!(seen.len(), 7);
}

#[test]
fn json_files_are_recognised_by_name_and_content() {
    let log = parse_str(
        "nccl-allreduce.json",
        &super::testdata::device("nccl-allreduce.json"),
    );
    assert_eq!(log.nccl_tests.len(), 1);
    assert_eq!(log.nccl_tests[0].rows.len(), 16);
    assert!(log.warnings.is_empty(), "{:?}", log.warnings);
    let log = parse_str(
        "ds_config-z2.json",
        &super::testdata::device("ds_config-z2.json"),
    );
    assert_eq!(log.deepspeed.configs[0].zero_stage, Some(2));
}

#[test]
fn one_pass_over_mixed_content_equals_the_standalone_parsers() {
    let d = super::testdata::device;
    let text = format!(
        "{}{}{}{}",
        d("sysinfo.txt"),
        d("nvsmi-train.csv"),
        d("ds-z2-torchrun.log"),
        d("nccl-collectives.log")
    );
    let log = parse_str("mixed.log", &text);
    assert_eq!(log.topology.len(), 1);
    assert_eq!(log.gpu_samples.len(), 558);
    assert_eq!(log.deepspeed.timers.len(), 48);
    assert_eq!(log.nccl_tests.len(), 7);
    assert_eq!(log.nccl_debug.version.as_deref(), Some("2.28.9+cuda13.0"));
    assert!(log.failures.is_empty());
    let (runs, _) = nccl_tests::parse_reader(d("nccl-collectives.log").as_bytes());
    for (a, b) in log.nccl_tests.iter().zip(&runs) {
        assert_eq!(a.rows.len(), b.rows.len());
        assert_eq!(a.avg_busbw_gbps, b.avg_busbw_gbps);
    }
}

#[test]
fn simple_decimals_read_as_the_standard_parser_reads_them() {
    let mut cases: Vec<String> = [
        "0",
        "-0",
        "+0",
        "0.0",
        "-0.0",
        "1.",
        ".5",
        "-.5",
        "+.5",
        ".",
        "-",
        "+",
        "",
        "5.",
        "77.58",
        "700.00",
        "143771",
        "0.1",
        "0.3",
        "123456789012345",
        "1234567890123456",
        "999999999999999",
        "0.000000000000001",
        "9.99999999999999",
        "1..2",
        "1.2.3",
        "1e5",
        "12a",
        "--1",
        "00000000000000012",
        "0000000000.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut seed = 3u64;
    for _ in 0..20000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (seed >> 60) as usize;
        let mut t = String::new();
        for k in 0..len {
            let r = (seed >> (k * 3 % 50)) & 15;
            t.push(match r {
                0 => '.',
                1 if k == 0 => '-',
                _ => char::from(b'0' + (r % 10) as u8),
            });
        }
        cases.push(t);
    }
    for c in &cases {
        let want = c.parse::<f64>().ok();
        if let Some(v) = simple_decimal(c.as_bytes()) {
            let w = want.expect(c);
            assert_eq!(v.to_bits(), w.to_bits(), "{c:?}: {v} vs {w}");
        }
    }
}

#[test]
fn numbers_as_printed() {
    assert_eq!(num("3e+06"), Some(3e6));
    assert_eq!(num("1.6e+07"), Some(1.6e7));
    assert_eq!(num("N/A"), None);
    assert_eq!(num("nan"), None);
    assert_eq!(uint("1e+06"), Some(1_000_000));
    assert_eq!(uint("-1"), None);
}
