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

/// Pieces of a hostile value: every shell metacharacter, quotes of both kinds, backslashes, a
/// sentinel the quoting check looks for, and text that is harmless.
const HOSTILE: &[&str] = &[
    "'",
    "\"",
    "\\",
    "$(",
    ")",
    "`",
    ";",
    "|",
    "&",
    "#",
    " ",
    "*",
    "?",
    "~",
    "${IFS}",
    "$HOME",
    "<",
    ">",
    "!",
    "{",
    "}",
    "[",
    "]",
    "=",
    "--",
    "é",
    "x",
    "1",
    "SWEEP^FUZZ",
    "\\'",
    "'\\",
];

fn hostile_value(rng: &mut Rng) -> String {
    let mut v = String::from("SWEEP^FUZZ");
    for _ in 0..rng.below(12) {
        let mut at = rng.below(v.len() + 1).min(v.len());
        // Only char boundaries are insertion points (`é` is two bytes).
        while !v.is_char_boundary(at) {
            at -= 1;
        }
        v.insert_str(at, HOSTILE[rng.below(HOSTILE.len())]);
    }
    v
}

/// Whether every `SWEEP^FUZZ` (a sentinel that always needs quoting) of a rendered script stands inside single quotes (or in a comment),
/// as bash would lex it: quotes, backslashes, `$(...)` and backticks nest; `#` starts a comment
/// at the start of a word. Heredoc bodies are lexed as the scripts they become, except the
/// Python ones. Returns the first offending line.
fn unquoted_sentinel(script: &str) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Normal,
        Single,
        Double,
        Subst,
        Tick,
    }
    let mut stack = vec![St::Normal];
    let mut py_until: Option<&str> = None;
    for line in script.lines() {
        if let Some(end) = py_until {
            if line == end {
                py_until = None;
            }
            continue;
        }
        if line.contains("<<'SWEEP_PY'") {
            py_until = Some("SWEEP_PY");
        }
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let st = *stack.last().unwrap_or(&St::Normal);
            if b[i..].starts_with(b"SWEEP^FUZZ") && st != St::Single {
                return Some(line.to_string());
            }
            let c = b[i];
            let word_start = i == 0 || b" \t;|&(".contains(&b[i - 1]);
            match (st, c) {
                (St::Single, b'\'') => {
                    stack.pop();
                }
                (St::Single, _) => {}
                (St::Tick, b'`') => {
                    stack.pop();
                }
                (_, b'\\') => i += 1,
                (St::Normal | St::Subst, b'#') if word_start => break,
                (St::Normal | St::Subst | St::Tick, b'\'') => stack.push(St::Single),
                (St::Double, b'"') => {
                    stack.pop();
                }
                (_, b'"') => stack.push(St::Double),
                (_, b'$') if b.get(i + 1) == Some(&b'(') => {
                    stack.push(St::Subst);
                    i += 1;
                }
                (St::Subst, b')') => {
                    stack.pop();
                }
                (_, b'`') => stack.push(St::Tick),
                _ => {}
            }
            i += 1;
        }
    }
    None
}

/// A sweep file with every free parameter, env entry and extra sbatch option set to hostile
/// values, one stage per built-in template, on a profile whose free strings are hostile too.
fn hostile_campaign(
    rng: &mut Rng,
    root: &Path,
) -> Option<(sweep::spec::LoadedSweep, sweep::profile::Profile)> {
    let q = |v: String| toml::Value::String(v).to_string();
    let profile_text = std::fs::read_to_string(root.join("slurm/clusters/local.toml")).ok()?
        .replacen("description = \"local Slurm test cluster: 4 fake nodes on one host, 8 fake H200 each, no real GPUs\"", &format!("description = {}", q(hostile_value(rng))), 1)
        .replacen("[env]", &format!("[env]\nSWEEP_P = {}", q(hostile_value(rng))), 1)
        .replacen("python = \"python3\"", &format!("python = {}\nnccl_tests = {}", q(hostile_value(rng)), q(hostile_value(rng))), 1);
    let profile = sweep::profile::Profile::parse(Path::new("p.toml"), &profile_text).ok()?;
    let mut text = format!(
        "name = \"fuzz\"\ncluster = \"local\"\n[defaults]\ngpus_per_node = 2\nlabel = {}\nSWEEP_UPPER = {}\n[slurm]\ntime = \"00:05:00\"\nextra = [{}]\n[env]\nSWEEP_S = {}\n",
        q(hostile_value(rng)),
        q(hostile_value(rng)),
        q(format!("--comment={}", hostile_value(rng))),
        q(hostile_value(rng)),
    );
    let free = [
        "expect_gpu_name",
        "expect_driver",
        "expect_torch",
        "expect_deepspeed",
        "expect_cuda",
        "expect_nccl",
        "python",
        "train_script",
        "train_args",
        "collective",
        "nccl_tests_dir",
    ];
    for t in [
        "cpu-smoke",
        "deepspeed-train",
        "nccl-tests",
        "preflight",
        "nccl-pairs",
    ] {
        text.push_str(&format!(
            "\n[[stage]]\nname = \"{t}\"\ntemplate = \"{t}.sbatch.j2\"\n[stage.params]\n"
        ));
        for k in free {
            if rng.below(3) > 0 {
                text.push_str(&format!("{k} = {}\n", q(hostile_value(rng))));
            }
        }
        text.push_str(&format!(
            "[stage.env]\nSWEEP_T = {}\n",
            q(hostile_value(rng))
        ));
    }
    let loaded = sweep::spec::parse(Path::new("s.toml"), text).ok()?;
    Some((loaded, profile))
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
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    failed |= fuzz_inputs(&mut rng, secs, project);
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

/// The two targets over user input: the sweep-file loader (mutated real sweep files, expanded
/// against both profiles) and the renderer (hostile values everywhere, every point rendered and
/// its script checked for a sentinel outside single quotes). Returns whether any failed.
fn fuzz_inputs(rng: &mut Rng, secs: u64, project: &Path) -> bool {
    let sweeps: Vec<Vec<u8>> = ["demo", "local-smoke", "h200-llama2", "device-h200"]
        .iter()
        .filter_map(|n| std::fs::read(project.join(format!("sweeps/{n}.toml"))).ok())
        .collect();
    let profiles: Vec<sweep::profile::Profile> = ["local", "fukushima-h200"]
        .iter()
        .filter_map(|n| {
            let p = project.join(format!("slurm/clusters/{n}.toml"));
            sweep::profile::Profile::load(&p).ok().map(|(p, _)| p)
        })
        .collect();
    let renderer = sweep::render::Renderer::new(&sweep::render::TemplateSource::new(Vec::new()));
    let mut failed = false;

    let t0 = Instant::now();
    let (mut n, mut panics, mut loaded) = (0u64, 0u64, 0u64);
    while t0.elapsed() < Duration::from_secs(secs) {
        let base = &sweeps[rng.below(sweeps.len())];
        let other = &sweeps[rng.below(sweeps.len())];
        let mut input = mutate(rng, base, other);
        for _ in 0..rng.below(3) {
            let at = rng.below(input.len() + 1).min(input.len());
            let h = hostile_value(rng);
            input.splice(at..at, h.bytes());
        }
        let text = String::from_utf8_lossy(&input).to_string();
        let profile = &profiles[rng.below(profiles.len())];
        let r = catch_unwind(AssertUnwindSafe(|| {
            let Ok(s) = sweep::spec::parse(Path::new("fuzz.toml"), text.clone()) else {
                return false;
            };
            if let Ok(plan) = sweep::expand::expand_capped(&s, profile, 2_000) {
                for p in plan.points.iter().take(20) {
                    let _ = sweep::campaign::render_job(&s, profile, &renderer, p);
                }
            }
            true
        }));
        match r {
            Ok(ok) => loaded += ok as u64,
            Err(_) => {
                panics += 1;
                let p = std::env::temp_dir().join(format!("sweep-fuzz-crash-{n}.toml"));
                let _ = std::fs::write(&p, &input);
                eprintln!(
                    "PANIC in the sweep-file loader; input saved to {}",
                    p.display()
                );
            }
        }
        n += 1;
    }
    println!(
        "{:<45} {n:>9} executions, {panics} panics ({loaded} loaded)",
        "sweep file loader (+ expand, render)"
    );
    failed |= panics > 0;

    let t0 = Instant::now();
    let (mut n, mut panics, mut unquoted, mut rendered) = (0u64, 0u64, 0u64, 0u64);
    while t0.elapsed() < Duration::from_secs(secs) {
        let r = catch_unwind(AssertUnwindSafe(|| {
            let Some((s, profile)) = hostile_campaign(rng, project) else {
                return (0, None);
            };
            let plan = match sweep::expand::expand(&s, &profile) {
                Ok(p) => p,
                Err(_) => return (0, None),
            };
            let mut k = 0;
            for p in &plan.points {
                if let Ok(files) = sweep::campaign::render_job(&s, &profile, &renderer, p) {
                    k += 1;
                    let script = String::from_utf8_lossy(&files.files[0].1).to_string();
                    if let Some(line) = unquoted_sentinel(&script) {
                        return (k, Some((p.template.clone(), line, s.text.clone())));
                    }
                }
            }
            (k, None)
        }));
        match r {
            Ok((k, bad)) => {
                rendered += k;
                if let Some((t, line, text)) = bad {
                    unquoted += 1;
                    let p = std::env::temp_dir().join(format!("sweep-fuzz-unquoted-{n}.toml"));
                    let _ = std::fs::write(&p, text);
                    eprintln!(
                        "UNQUOTED value in {t}: {line}\n  sweep file saved to {}",
                        p.display()
                    );
                }
            }
            Err(_) => {
                panics += 1;
                eprintln!("PANIC in the renderer");
            }
        }
        n += 1;
    }
    println!(
        "{:<45} {n:>9} executions, {panics} panics, {unquoted} unquoted ({rendered} scripts)",
        "renderer (hostile values, quoting check)"
    );
    failed | (panics + unquoted > 0)
}
