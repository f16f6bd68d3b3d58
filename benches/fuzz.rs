//! A time-boxed fuzzer for every log parser (cargo-fuzz needs a nightly toolchain, which this
//! project's machines do not have): real fixture logs are mutated (byte flips, deletions,
//! duplications, splices of other fixtures, cuts, random bytes, launcher prefixes and glued
//! lines) and fed to the one-pass parser (which drives every parser module) and to each module's
//! standalone entry point. A panic is a failure; the executions per target are printed.
//!
//! Run: `cargo bench --bench fuzz` (`SWEEP_FUZZ_SECS`, default 20, per target; the seed is
//! printed and `SWEEP_FUZZ_SEED` replays one).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use sweep::parsers::{self, Warnings};

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

const FRAGMENTS: &[&[u8]] = &[
    b"[1,0]<stdout>:",
    b"[default3]:",
    b"[rank7]:",
    b"12: ",
    b"node-01: ",
    b"\r",
    b"\x1b[2K",
    b"\n",
    b"SWEEP_METRICS {\"kind\": \"step\", \"step\": ",
    b"# Avg bus bandwidth    : ",
    b" N/A ",
    b"5e+06",
    b"nan",
    b"-1",
    b"\xff\xfe",
];

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        if v.is_empty() {
            v.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
            continue;
        }
        let at = rng.below(v.len());
        match rng.below(8) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => {
                let end = (at + rng.below(64)).min(v.len());
                v.drain(at..end);
            }
            2 => {
                let end = (at + rng.below(256)).min(v.len());
                let chunk = v[at..end].to_vec();
                v.splice(at..at, chunk);
            }
            3 => {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
                v.splice(at..at, f.iter().copied());
            }
            4 if !other.is_empty() => {
                let s = rng.below(other.len());
                let e = (s + rng.below(2048)).min(other.len());
                v.splice(at..at, other[s..e].iter().copied());
            }
            5 => v.truncate(at),
            6 => {
                // Glue two lines: remove a newline.
                if let Some(p) = v[at..].iter().position(|b| *b == b'\n') {
                    v.remove(at + p);
                }
            }
            _ => {
                for _ in 0..rng.below(32) {
                    let b = rng.next() as u8;
                    v.insert(at.min(v.len()), b);
                }
            }
        }
    }
    v
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("fuzz: run with `cargo bench --bench fuzz`");
        return;
    }
    let secs: u64 = std::env::var("SWEEP_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("SWEEP_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(0x9e37_79b9)
        });
    println!("fuzz seed {seed} (SWEEP_FUZZ_SEED={seed} replays), {secs} s per target");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut corpus: Vec<Vec<u8>> = walkdir::WalkDir::new(&root)
        .into_iter()
        .flatten()
        .filter(|e| {
            e.file_type().is_file()
                && e.path().to_string_lossy().contains("/device-")
                && !e.path().to_string_lossy().ends_with(".md")
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter(|b| b.len() < 2 << 20)
        .collect();
    corpus.sort();
    type Target = (&'static str, fn(&[u8]));
    let targets: &[Target] = &[
        ("one pass (every parser)", |b| {
            let _ = parsers::parse_reader("fuzz.log", b);
        }),
        ("one pass as .json (nccl-tests -J, ds_config)", |b| {
            let _ = parsers::parse_reader("fuzz.json", b);
        }),
        ("nccl_tests", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::nccl_tests::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let _ = p.finish(&mut w);
        }),
        ("nccl_debug", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::nccl_debug::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let _ = p.finish(&mut w);
        }),
        ("deepspeed", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::deepspeed::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let _ = p.finish(&mut w);
        }),
        ("failures", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::failures::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let f = p.finish(&mut w);
            let _ = parsers::failures::primary_failure(&f);
        }),
        ("megatron", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::megatron::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let _ = p.finish(&mut w);
        }),
        ("hf_trainer", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::hf_trainer::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let _ = p.finish(&mut w);
        }),
        ("payload", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::payload::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let _ = p.finish(&mut w);
        }),
        ("nvidia_smi --query-gpu CSV", |b| {
            let _ = parsers::nvidia_smi::parse_csv_reader(b, &["index", "utilization.gpu [%]"]);
        }),
        ("nvidia_smi topo -m", |b| {
            let _ = parsers::nvidia_smi::parse_topo_reader(b);
        }),
        ("telemetry (preflight, net, power, dcgm)", |b| {
            let mut w = Warnings::new();
            let mut p = parsers::telemetry::Parser::new();
            parsers::for_each_line(b, &mut w, |l, w| p.feed(l, w));
            let _ = p.finish(&mut w);
        }),
    ];
    let mut rng = Rng(seed);
    let mut failed = false;
    for (name, f) in targets {
        let t0 = Instant::now();
        let mut n = 0u64;
        let mut panics = 0u64;
        while t0.elapsed() < Duration::from_secs(secs) {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            let input = mutate(&mut rng, base, other);
            if catch_unwind(AssertUnwindSafe(|| f(&input))).is_err() {
                panics += 1;
                let p = std::env::temp_dir().join(format!("sweep-fuzz-crash-{n}.log"));
                let _ = std::fs::write(&p, &input);
                eprintln!("PANIC in {name}; input saved to {}", p.display());
            }
            n += 1;
        }
        println!("{name:<45} {n:>9} executions, {panics} panics");
        failed |= panics > 0;
    }
    if failed {
        std::process::exit(1);
    }
}
