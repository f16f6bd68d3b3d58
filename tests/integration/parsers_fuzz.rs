//! Fuzz-style robustness tests of the log parsers: random bytes and mutated real lines (the
//! device fixtures) must never panic, and a file cut at any byte must never yield a number that
//! the whole file does not hold at the same line.
//!
//! The generator is a fixed-seed xorshift, so failures reproduce.

use std::io::Read;

use sweep::parsers::{
    self, ParsedLog, Warnings, deepspeed, failures, hf_trainer, megatron, nccl_debug, nccl_tests,
    nvidia_smi,
};

use crate::util::root;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const FIXTURES: &[&str] = &[
    "ds-z2-torchrun.log",
    "ds_config-z2.json",
    "nccl-allgather-debug.log",
    "nccl-allreduce-json-stdout.log",
    "nccl-allreduce.json",
    "nccl-collectives.log",
    "nccl-ts-periter.log",
    "nvsmi-train.csv",
    "sysinfo.txt",
];

fn fixture(name: &str) -> Vec<u8> {
    let p = root()
        .join("tests/fixtures/device-h100-2026-11-24")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs every parser on `data`, each standalone and all together.
fn run_all(data: &[u8]) -> ParsedLog {
    run_standalone(data);
    run_together(data)
}

fn run_standalone(data: &[u8]) {
    let _ = nccl_tests::parse_reader(data);
    let _ = nccl_debug::parse_reader(data);
    let _ = deepspeed::parse_reader(data);
    let _ = megatron::parse_reader(data);
    let _ = hf_trainer::parse_reader(data);
    let _ = failures::parse_reader(data);
    let _ = nvidia_smi::parse_csv_reader(data, nvidia_smi::TEMPLATE_COLUMNS);
    let _ = nvidia_smi::parse_topo_reader(data);
    let text = String::from_utf8_lossy(data);
    let _ = nccl_tests::parse_json_str(&text, &mut Warnings::new());
    let _ = deepspeed::parse_config_json(&text);
}

fn run_together(data: &[u8]) -> ParsedLog {
    let _ = parsers::parse_reader("fuzz.json", data);
    let log = parsers::parse_reader("fuzz.log", data);
    check_finite(&log);
    let _ = log.primary_failure();
    log
}

fn check_finite(log: &ParsedLog) {
    for run in &log.nccl_tests {
        for r in &run.rows {
            assert!(r.time_us.is_finite() && r.algbw_gbps.is_finite() && r.busbw_gbps.is_finite());
        }
    }
    for t in &log.deepspeed.timers {
        assert!(t.timers.iter().all(|(_, v)| v.is_finite()));
    }
}

const ALPHABET: &[u8] = b"0123456789 .:|#[]<>,=-_/\n\r\t\x1b\xff\xfeabcXNA*e+%()";

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let len = rng.below(3000);
        let data: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(4) == 0 {
                    rng.next() as u8
                } else {
                    ALPHABET[rng.below(ALPHABET.len())]
                }
            })
            .collect();
        run_all(&data);
    }
}

/// Pieces of real lines spliced into others.
const SPLICES: &[&[u8]] = &[
    b"[1,0]<stdout>:",
    b"[1,3]<stdout>:",
    b"[default5]:",
    b"[rank2]:",
    b"3: ",
    b"node-07: ",
    b"\r",
    b"\r\n",
    b"\x1b[4m",
    b"\xff\xfe",
    b"\n",
    b"",
];

fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.below(6) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(8) {
            // delete a range
            0 => {
                let end = (at + rng.below(40)).min(out.len());
                out.drain(at..end);
            }
            // splice a prefix / tag / control bytes
            1 | 2 => {
                let s = SPLICES[rng.below(SPLICES.len())];
                out.splice(at..at, s.iter().copied());
            }
            // glue two lines: remove a newline
            3 => {
                if let Some(p) = out[at..].iter().position(|&b| b == b'\n') {
                    out.remove(at + p);
                }
            }
            // duplicate a chunk elsewhere
            4 => {
                let end = (at + rng.below(200)).min(out.len());
                let chunk = out[at..end].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, chunk);
            }
            // flip a byte
            5 => out[at] = rng.next() as u8,
            // replace a digit by another digit or a letter
            6 => {
                if out[at].is_ascii_digit() {
                    out[at] = b"0123456789eE-."[rng.below(14)];
                }
            }
            // truncate
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn mutated_real_logs_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for name in FIXTURES {
        let data = fixture(name);
        for _ in 0..40 {
            let m = mutate(&mut rng, &data);
            run_together(&m);
        }
    }
}

/// A file cut at any byte yields only rows, samples and timers that the whole file holds at the
/// same line: the cut line is never read as a measurement.
#[test]
fn truncation_never_invents_numbers() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for name in FIXTURES.iter().filter(|n| !n.ends_with(".json")) {
        let data = fixture(name);
        let full = parsers::parse_reader(name, data.as_slice());
        let full_rows: Vec<_> = full
            .nccl_tests
            .iter()
            .flat_map(|r| r.rows.clone())
            .collect();
        for _ in 0..60 {
            let cut = rng.below(data.len());
            let part = parsers::parse_reader(name, &data[..cut]);
            for r in part.nccl_tests.iter().flat_map(|r| r.rows.iter()) {
                assert!(
                    full_rows
                        .iter()
                        .any(|f| f.line == r.line && f.placement == r.placement && f == r),
                    "{name} cut at {cut}: {r:?}"
                );
            }
            for s in &part.gpu_samples {
                assert!(full.gpu_samples.contains(s), "{name} cut at {cut}: {s:?}");
            }
            for t in &part.deepspeed.timers {
                assert!(
                    full.deepspeed.timers.contains(t),
                    "{name} cut at {cut}: {t:?}"
                );
            }
        }
    }
}

/// A line longer than the line buffer is cut with a warning; the next line is still read.
#[test]
fn huge_line_is_bounded() {
    let real = fixture("ds-z2-torchrun.log");
    let timer_line = String::from_utf8_lossy(&real)
        .lines()
        .find(|l| l.contains("| fwd:"))
        .map(str::to_string)
        .expect("timer line");
    let huge = std::io::repeat(b'x').take(3 * parsers::MAX_LINE_BYTES as u64);
    let rest = format!("\n{timer_line}\n");
    let log = parsers::parse_reader("huge.log", huge.chain(rest.as_bytes()));
    assert_eq!(log.lines, 2);
    assert!(
        log.warnings
            .iter()
            .any(|w| w.line == 1 && w.message.contains("longer than"))
    );
    assert_eq!(log.deepspeed.timers.len(), 1);
    assert_eq!(log.deepspeed.timers[0].get("fwd"), Some(442.11));
}

/// Many lines in constant memory: a long synthetic stream of real lines is read record by
/// record (the reader is never materialised).
#[test]
fn long_stream_of_real_lines() {
    let real = fixture("nvsmi-train.csv");
    let reps = 40;
    // A reader that serves the fixture `reps` times over, never holding more than one copy.
    struct Cycle<'a> {
        data: &'a [u8],
        pos: usize,
        left: usize,
    }
    impl Read for Cycle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Ok(0);
            }
            let n = buf.len().min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.data.len() {
                self.pos = 0;
                self.left -= 1;
            }
            Ok(n)
        }
    }
    let stream = Cycle {
        data: &real,
        pos: 0,
        left: reps,
    };
    let log = parsers::parse_reader("long.csv", stream);
    assert_eq!(log.gpu_samples.len(), 558 * reps);
    assert_eq!(log.bytes, (real.len() * reps) as u64);
}
