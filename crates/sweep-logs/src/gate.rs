//! Which parsers a line can concern, found in one pass over it.
//!
//! Every parser starts with a cheap test that most lines fail: literals that some branch of it
//! requires (DeepSpeed's `SamplesPerSec=`, a failure's `CUDA out of memory`, …). Run one by one,
//! those tests cost more than reading the line. Here they are one automaton over the union of
//! the literals, each literal tagged with the parsers that need it; a parser is then fed a line
//! only if one of its literals is in it, or if its state wants every line (an open table,
//! traceback or block) — see `LogParser::feed_line`. The parsers keep their own tests, so a
//! line fed to them for another parser's sake is handled exactly as before.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};

use super::{failures, nccl_debug, nccl_tests, payload};

pub use crate::gate_bits::{
    DEEPSPEED, FAIL, GLUE, INFO_ALL, INFO_INIT, INFO_NRANKS, INFO_VERSION, INFO_VIA, MEGATRON,
    NCCL_ERR, NCCL_INFO, NCCL_TESTS, PAYLOAD,
};

// Stems, not the parsers' own literal lists: each literal a parser needs holds one of its
// stems (the tests check it against those lists). Fewer patterns keep each automaton on its
// fastest SIMD path (slim Teddy, at most 32 patterns, scans 32 bytes a step; 33 to 64 need the
// fat form, at half the speed), stems of 4 bytes or more let it fingerprint 4 bytes (one stem
// of 3 would bring all down to 3, and many more false candidates to verify), and no stem starts
// like the parts of an NCCL INFO line every line has (`NCCL INFO`, `] `), which would make each
// line a candidate to verify. Teddy finds candidates by a stem's first 4 bytes: a stem starts
// with bytes rare in NCCL INFO messages (`unicator was aborted`, not `communicator ...`, as
// `comm 0x...` is on many lines; `Invalid`, not `ncclInvalid`). A stem may let through a line
// the parser then rejects; it never keeps one from it.
//
// The stems are in two automata. The NCCL side holds what a line with an NCCL header can be
// read for (glue, failures, NCCL errors, INFO messages, nccl-tests' version line): most of a
// large NCCL_DEBUG log is such lines, and they are scanned by it alone. The other side
// (DeepSpeed, Megatron, the payload) matters only for lines without an NCCL header (see
// `LogParser::feed_line`): it is scanned from the first such line of a block on.

/// The one `GLUE` literal shorter than 4 bytes (a Python logging timestamp's `,123] [INFO]`):
/// searched apart, with `memmem`.
const BRACKETS: &str = "] [";

/// What every `GLUE` match (see `split_glued`) holds, but the NCCL header and [`BRACKETS`].
/// `Traceback` also stands for the failures' `failures::TRACEBACK`, ` version` for NCCL's
/// `NCCL version` (below).
const GLUE_STEMS: &[&str] = &[
    "]<std",
    // `[Rank N] (after `: every DeepSpeed timer line starts `[Rank N]`.
    "] (after ",
    "[rank",
    "[default",
    ": error:",
    "# Out of bounds values",
    "# Avg bus bandwidth",
    " version",
    "# Collective test ",
    "Traceback",
    "iteration",
];
/// `failures::TRIGGERS` and the traceback start; `Error` stands for the CUDA, NCCL and
/// Python error names, ` failure` for nccl-tests' `Test NCCL|CUDA failure`, `emory` for the
/// CUDA and cgroup out-of-memory texts, `*** ` for Slurm's banners.
const FAIL_STEMS: &[&str] = &[
    "ECC ",
    "NVRM: Xid",
    "Heartbeat monitor",
    "fallen off the bus",
    "*** ",
    "emory",
    "Error",
    "kill event",
    "srun: ",
    nccl_debug::WATCHDOG,
    " failure",
    "L error",
    "unicator was aborted",
    "L WARN",
    "Invalid",
    "InProgress",
    "preflight FAIL node=",
    "Traceback",
    // nccl-tests' result check; a stem of glue already, so no pattern more.
    failures::OOB_VALUES,
];
/// `nccl_debug::ERROR_LITERALS` and the watchdog.
const NCCL_ERR_STEMS: &[&str] = &[
    "Error",
    "Invalid",
    "InProgress",
    "L error",
    " failure",
    nccl_debug::WATCHDOG,
];
/// `nccl_debug::INFO_LITERALS`, by the branch of `info_message` that needs them (the branches
/// that read how a message starts need no stem: every INFO message is tried on them).
const INFO_VIA_STEMS: &[&str] = &[" via "];
const INFO_VERSION_STEMS: &[&str] = &[" version"];
const INFO_INIT_STEMS: &[&str] = &["COMPLETE"];
/// `nranks` and `nRanks`.
const INFO_NRANKS_STEMS: &[&str] = &["anks"];
const NCCL_TESTS_STEMS: &[&str] = &["Running:", " failure", " version"];
/// `deepspeed::TRIGGERS`.
const DEEPSPEED_STEMS: &[&str] = &[
    "Profile",
    "Comm. Op",
    "DeepSpeed",
    ":print]",
    "SamplesPerSec=",
    "time (ms)",
    "skipped=",
    "iter time (s)",
    "OVERFLOW!",
    "comm op:",
    "memory_usage",
    "Virtual Memory",
    "world_size=",
];
const MEGATRON_STEMS: &[&str] = &[
    "(min, max) time across ranks",
    "iteration",
    "(after ",
    "time (ms)",
];
const PAYLOAD_STEMS: &[&str] = &[payload::MARKER, payload::BIND_PREFIX];
/// Failure literals of lines that never carry an NCCL header (nccl-tests' own time-out line,
/// nvidia-smi's NVML error, a crash's signal as torchrun, a crash handler, the shell or
/// CPython report it): on this side they cost the NCCL side's automaton, full at 32 stems,
/// nothing. (NCCL's own NVML warnings hold `L WARN`, a stem of that side.)
const FAIL_OTHER_STEMS: &[&str] = &[
    failures::TEST_TIMEOUT,
    failures::GPU_IS_LOST,
    failures::SIGNAL_RECEIVED,
    failures::SEGFAULT,
    failures::FATAL_PYTHON,
    failures::LOCAL_RANK,
    failures::WATCHDOG_STUCK,
];
/// nccl-tests' command lines (`nccl_tests::PERF`): never behind an NCCL header either.
const NCCL_TESTS_OTHER_STEMS: &[&str] = &[nccl_tests::PERF];

/// The parsers that a line with an NCCL header can be fed to (see `LogParser::feed_line`):
/// the bits of the NCCL-side automaton.
#[cfg(test)]
const NCCL_SIDE: u16 = GLUE | FAIL | NCCL_ERR | NCCL_INFO | INFO_ALL | NCCL_TESTS;

struct Gate {
    /// The SIMD searcher alone, without the automaton around it (less work per match); `None`
    /// where the CPU lacks what it needs, and then `ac`.
    packed: Option<aho_corasick::packed::Searcher>,
    ac: AhoCorasick,
    /// Per pattern: the parsers of it and of every pattern that is a prefix of it (which
    /// matches wherever it does; see [`bits`]).
    owners: Vec<u16>,
}

impl Gate {
    /// The automaton of `groups`' stems, built in `order` (see [`NCCL_ORDER`]).
    fn new(groups: &[(u16, &[&str])], order: &[&str]) -> Gate {
        let mut pats: Vec<&str> = Vec::new();
        let mut own: Vec<u16> = Vec::new();
        for (bit, lits) in groups.iter() {
            for l in lits.iter() {
                match pats.iter().position(|p| p == l) {
                    Some(i) => own[i] |= bit,
                    None => {
                        pats.push(l);
                        own.push(*bit);
                    }
                }
            }
        }
        let rank = |p: &str| order.iter().position(|o| *o == p).unwrap_or(order.len());
        let mut both: Vec<(&str, u16)> = pats.into_iter().zip(own).collect();
        // Stable: stems not in `order` keep the lists' order, after the others.
        both.sort_by_key(|(p, _)| rank(p));
        let (pats, own): (Vec<&str>, Vec<u16>) = both.into_iter().unzip();
        let owners = pats
            .iter()
            .map(|p| {
                pats.iter()
                    .zip(&own)
                    .filter(|(q, _)| p.starts_with(**q))
                    .fold(0, |acc, (_, b)| acc | b)
            })
            .collect();
        debug_assert!(pats.len() <= 32, "{} gate patterns", pats.len());
        debug_assert!(
            pats.iter().all(|p| p.len() >= 4),
            "a gate stem under 4 bytes"
        );
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&pats)
            .expect("literal patterns");
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(&pats)
            .build();
        Gate { packed, ac, owners }
    }
}

/// The NCCL side's stems in the order its automaton is built with. Teddy puts the stems in its
/// eight buckets by their order, and a bucket's fingerprint is the union of its stems': which
/// stems share a bucket decides how many positions of a log are false candidates to verify.
/// This order came from a search over swaps, each measured by instruction counts (callgrind)
/// on real logs: the bench's NCCL INFO log, the small fixtures of the bench corpus, and the
/// public fixtures from other clusters. The automaton's search then costs 34 % fewer
/// instructions on 30 MB of the INFO log than in the order of the lists above, 12 % fewer on
/// 1,000 small files and 26 % fewer on the public fixtures. (`Heartbeat monitor` later took
/// the place of the Xid's `(PCI:`: 0.3 % more instructions on the INFO log, 0.06 % on the
/// small files; at the end of the list, 4.9 % more.) A stem missing here goes after these (a
/// test requires every one of them here).
const NCCL_ORDER: &[&str] = &[
    "anks",
    "COMPLETE",
    "[rank",
    " via ",
    "# Avg bus bandwidth",
    "Traceback",
    "InProgress",
    "]<std",
    "Running:",
    " version",
    "kill event",
    "Invalid",
    "# Out of bounds values",
    "Heartbeat monitor",
    "[default",
    "*** ",
    "L error",
    "Error",
    "fallen off the bus",
    "unicator was aborted",
    "L WARN",
    " failure",
    "preflight FAIL node=",
    "emory",
    ": error:",
    "srun: ",
    nccl_debug::WATCHDOG,
    "] (after ",
    "NVRM: Xid",
    "# Collective test ",
    "iteration",
    "ECC ",
];

static NCCL_GATE: LazyLock<Gate> = LazyLock::new(|| {
    Gate::new(
        &[
            (GLUE, GLUE_STEMS),
            (FAIL, FAIL_STEMS),
            (NCCL_ERR, NCCL_ERR_STEMS),
            (NCCL_INFO | INFO_VIA, INFO_VIA_STEMS),
            (NCCL_INFO | INFO_VERSION, INFO_VERSION_STEMS),
            (NCCL_INFO | INFO_INIT, INFO_INIT_STEMS),
            (NCCL_INFO | INFO_NRANKS, INFO_NRANKS_STEMS),
            (NCCL_TESTS, NCCL_TESTS_STEMS),
        ],
        NCCL_ORDER,
    )
});

static OTHER_GATE: LazyLock<Gate> = LazyLock::new(|| {
    Gate::new(
        &[
            (DEEPSPEED, DEEPSPEED_STEMS),
            (MEGATRON, MEGATRON_STEMS),
            (PAYLOAD, PAYLOAD_STEMS),
            (FAIL, FAIL_OTHER_STEMS),
            (NCCL_TESTS, NCCL_TESTS_OTHER_STEMS),
        ],
        &[],
    )
});

/// The parsers (bits above) any of whose literals `text` holds.
///
/// Leftmost-longest search restarted one byte after each match start finds every position
/// where some literal of an automaton starts; the literals starting at one position are
/// prefixes of the longest one there, whose `owners` include theirs. So the answer is exact, in
/// one search per position with a match (none for most lines), per automaton.
pub fn bits(text: &str) -> u16 {
    let hay = text.as_bytes();
    let nccl = Scanner::new(hay).fold(0, |acc, (_, b)| acc | b);
    Scanner::other(hay, 0).fold(nccl, |acc, (_, b)| acc | b)
}

/// Every position of `hay` where some literal of one automaton starts, with the parsers of the
/// literals there, in order: [`bits`] of each line of a block is what the scanners yield within
/// that line, and one scan over a block of many lines costs far less than one per line (most
/// lines hold no literal, and the automaton's SIMD search then runs on without stopping at each
/// line).
pub struct Scanner<'h> {
    hay: &'h [u8],
    gate: &'static Gate,
    /// The next automaton match, and where to search for the one after it.
    ac: Option<(usize, u16)>,
    ac_from: usize,
    /// The next [`BRACKETS`] (the NCCL side's; never for the other).
    brackets: Option<usize>,
}

static BRACKETS_FINDER: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(BRACKETS));

impl<'h> Scanner<'h> {
    /// The NCCL side's literals (glue, failures, NCCL errors and INFO messages, nccl-tests) and
    /// [`BRACKETS`].
    pub fn new(hay: &'h [u8]) -> Self {
        let mut s = Scanner {
            hay,
            gate: &NCCL_GATE,
            ac: None,
            ac_from: 0,
            brackets: BRACKETS_FINDER.find(hay),
        };
        s.ac = s.next_ac();
        s
    }

    /// The other side's literals (DeepSpeed, Megatron, payload), from `from` on.
    pub fn other(hay: &'h [u8], from: usize) -> Self {
        let mut s = Scanner {
            hay,
            gate: &OTHER_GATE,
            ac: None,
            ac_from: from,
            brackets: None,
        };
        s.ac = s.next_ac();
        s
    }

    fn next_ac(&mut self) -> Option<(usize, u16)> {
        if self.ac_from >= self.hay.len() {
            return None;
        }
        let g = self.gate;
        let found = match &g.packed {
            Some(p) => p.find_in(
                self.hay,
                aho_corasick::Span::from(self.ac_from..self.hay.len()),
            ),
            None => {
                g.ac.find(aho_corasick::Input::new(self.hay).range(self.ac_from..))
            }
        };
        let Some(m) = found else {
            self.ac_from = self.hay.len();
            return None;
        };
        self.ac_from = m.start() + 1;
        Some((m.start(), g.owners[m.pattern().as_usize()]))
    }
}

impl Iterator for Scanner<'_> {
    type Item = (usize, u16);

    fn next(&mut self) -> Option<(usize, u16)> {
        match (self.ac, self.brackets) {
            (_, Some(b)) if self.ac.is_none_or(|(a, _)| b < a) => {
                self.brackets = BRACKETS_FINDER.find(&self.hay[b + 1..]).map(|i| b + 1 + i);
                Some((b, GLUE))
            }
            (Some((a, bits)), _) => {
                self.ac = self.next_ac();
                Some((a, bits))
            }
            (None, _) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::deepspeed;
    use super::*;

    /// Every literal a parser's own test looks for lets the line through to it.
    #[test]
    fn stems_cover_every_parser_literal() {
        let mut lists: Vec<(u16, &[&str])> = vec![
            (FAIL, failures::TRIGGERS),
            // torchrun's `Root Cause` line holds ` failure`.
            (FAIL, &[failures::TRACEBACK, failures::ROOT_CAUSE]),
            (NCCL_ERR, nccl_debug::ERROR_LITERALS),
            (NCCL_ERR, &[nccl_debug::WATCHDOG]),
            (
                NCCL_TESTS,
                &[
                    "Running:",
                    "Test NCCL failure",
                    "Test CUDA failure",
                    "NCCL version",
                    nccl_tests::PERF,
                ],
            ),
            (DEEPSPEED, deepspeed::TRIGGERS),
            (
                MEGATRON,
                &[
                    "(min, max) time across ranks",
                    "iteration",
                    "(after ",
                    "time (ms)",
                ],
            ),
            (PAYLOAD, &[payload::MARKER, payload::BIND_PREFIX]),
        ];
        for (bit, lits) in nccl_debug::INFO_LITERALS {
            lists.push((NCCL_INFO | bit, lits));
        }
        for (bit, lits) in lists {
            for l in lits {
                assert_eq!(bits(l) & bit, bit, "{l:?} does not reach parser bit {bit}");
                // Inside a longer line too.
                assert_eq!(bits(&format!("xx {l} yy")) & bit, bit, "{l:?} in a line");
            }
        }
        // Lines the `GLUE` regex splits, one per alternative but the NCCL header (tested
        // apart): each must reach `may_glue`.
        for l in [
            "x[1,0]<stdout>: y",
            "x[Rank 3] (after 10 iterations)",
            "x[rank3]: y",
            "x[default3]: y",
            "x slurmstepd-node1: error: y",
            "x srun: error: y",
            "x[2024-01-01 10:00:00,123] [INFO]",
            "x# Out of bounds values : 0 OK",
            "x# Avg bus bandwidth    : 1.5",
            "x# nccl-tests version 2.13.9",
            "x# Collective test starting: all_reduce_perf",
            "x# Collective test concluded: all_reduce_perf",
            "xTraceback (most recent call last):",
            "x iteration      10/    100 |",
        ] {
            assert!(super::super::GLUE.is_match(l), "{l:?} is no GLUE match");
            assert_ne!(bits(l) & GLUE, 0, "{l:?}");
        }
        // The NCCL side is built in the measured order: its stems and that list are the same.
        let nccl: Vec<&str> = [
            GLUE_STEMS,
            FAIL_STEMS,
            NCCL_ERR_STEMS,
            INFO_VIA_STEMS,
            INFO_VERSION_STEMS,
            INFO_INIT_STEMS,
            INFO_NRANKS_STEMS,
            NCCL_TESTS_STEMS,
        ]
        .concat();
        for stem in &nccl {
            assert!(NCCL_ORDER.contains(stem), "{stem:?} is not in NCCL_ORDER");
        }
        for stem in NCCL_ORDER {
            assert!(nccl.contains(stem), "{stem:?} of NCCL_ORDER is no stem");
        }
        assert_eq!(NCCL_GATE.owners.len(), NCCL_ORDER.len());
        for g in [&*NCCL_GATE, &*OTHER_GATE] {
            assert!(
                g.owners.len() <= 32,
                "{} patterns: Teddy is not on its slim form",
                g.owners.len()
            );
        }
        // Every bit the NCCL side yields is within `NCCL_SIDE`, the other side's outside it
        // (`iteration` is a stem of both: of glue, and of Megatron), but the failure literals
        // and nccl-tests command lines of lines without an NCCL header, which that side alone
        // reads.
        assert_eq!(
            NCCL_GATE.owners.iter().fold(0, |a, b| a | b) & !NCCL_SIDE,
            0
        );
        assert_eq!(
            OTHER_GATE.owners.iter().fold(0, |a, b| a | b) & NCCL_SIDE,
            FAIL | NCCL_TESTS
        );
        for stem in FAIL_OTHER_STEMS.iter().chain(NCCL_TESTS_OTHER_STEMS) {
            assert_eq!(Scanner::new(stem.as_bytes()).count(), 0, "{stem:?}");
            assert_eq!(Scanner::other(stem.as_bytes(), 0).count(), 1, "{stem:?}");
        }
    }

    #[test]
    fn literals_sharing_a_start_all_count() {
        // "NCCL version" is nccl-tests' and an INFO message's; "iteration" glue's and Megatron's.
        let b = bits("x NCCL version 2.28.9+cuda13.0 iteration");
        assert_eq!(b & NCCL_INFO, NCCL_INFO);
        assert_eq!(b & NCCL_TESTS, NCCL_TESTS);
        assert_eq!(b & (GLUE | MEGATRON), GLUE | MEGATRON);
        assert_eq!(b & (FAIL | DEEPSPEED | PAYLOAD), 0);
        // A shorter literal inside a longer one at the same start: "Traceback" (glue) and
        // "Traceback (most recent call last)" (failures).
        let b = bits("Traceback (most recent call last):");
        assert_eq!(b & (GLUE | FAIL), GLUE | FAIL);
        // Overlapping literals at different starts.
        assert_eq!(bits("a NCCL WARN b") & FAIL, FAIL);
        assert_eq!(bits("plain text, 12, 34"), 0);
        assert_eq!(bits("vm:1747:1747 [0] NCCL INFO Channel 00/64 : 0"), 0);
        assert_eq!(bits("# nccl-tests comment line"), 0);
        assert_eq!(bits(""), 0);
    }
}
