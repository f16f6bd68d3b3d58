//! `NCCL_DEBUG=INFO|WARN` output and PyTorch `ProcessGroupNCCL` watchdog reports.
//!
//! Learned from NCCL's `src/debug.cc`: every message is
//! `[timestamp ]HOST:PID:TID [CUDADEV] NCCL INFO msg`; a WARN is
//! `[timestamp ]HOST:PID:TID [CUDADEV] FILE:LINE (FUNC) NCCL WARN msg` (NCCL ≥ 2.2x; older ones
//! print `FILE:LINE NCCL WARN`), preceded by an empty line, and its timestamp (`[%F %T] `) is on by
//! default in recent versions; the `VERSION` level prints a bare `NCCL version X` line without the
//! host prefix. Facts read from INFO messages:
//! - `NCCL version 2.28.9+cuda13.0` (also the bare line and PyTorch's `..., NCCL version 2.7.8`);
//! - `cudaDriverVersion 13000`;
//! - the network in use: `Using network X`, `Assigned NET plugin X to comm`, `NET/IB : Using
//!   [0]mlx5_0:1/IB ...` (only with at least one `[n]device`: `NET/IB : Using [RO]; OOB ...` lists
//!   none), `NET/Socket : Using [0]eth0:...`, `NET/OFI Selected Provider is efa`; a later
//!   `Failed to initialize NET plugin X` removes X;
//! - communicator sizes from the init lines (`comm 0x.. rank 0 nRanks 16 nNodes 2 ...`, or the
//!   older `... nranks 16 cudaDev 0 busId 53000 - Init COMPLETE`): the largest seen is the job's;
//! - `Init COMPLETE` lines; channel transports (`... via P2P/CUMEM`, `via NET/IB/0`, `via SHM`).
//!
//! NCCL result codes (`ncclSystemError`, `ncclRemoteError`, …) are recognised by name, and by their
//! `ncclGetErrorString` text when the line is an NCCL error (`NCCL error`, `Test NCCL failure`).
//!
//! PyTorch (`ProcessGroupNCCL.cpp`) watchdog: `[Rank 0] Watchdog caught collective operation
//! timeout: WorkNCCL(SeqNum=2, OpType=ALLREDUCE, NumelIn=4, NumelOut=4, Timeout(ms)=8000) ran for
//! 8097 milliseconds before timing out.` (newer ones say `[PG ID 0 PG GUID 0 Rank 1]`).

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::gate_bits::{INFO_INIT, INFO_NRANKS, INFO_VERSION, INFO_VIA};
use super::{Line, Warnings, push_capped, uint};

/// Most distinct strings kept in the small sets (NICs, hosts, transports).
const MAX_DISTINCT: usize = 4096;

/// One `NCCL WARN` message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NcclWarn {
    pub line: u64,
    pub host: String,
    pub pid: u64,
    pub device: u32,
    /// `transport/net_ib.cc:1234` when printed.
    pub source: Option<String>,
    pub message: String,
}

/// An NCCL result code found in the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NcclErrorCode {
    pub line: u64,
    /// `ncclSystemError`, `ncclRemoteError`, …
    pub code: String,
    pub message: String,
}

/// A PyTorch watchdog time-out report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WatchdogTimeout {
    pub line: u64,
    pub rank: Option<u32>,
    pub seq: Option<u64>,
    pub op_type: Option<String>,
    pub numel_in: Option<u64>,
    pub numel_out: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub ran_for_ms: Option<u64>,
}

/// What the NCCL debug output of a log says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NcclDebugInfo {
    /// The NCCL version (first one seen; see `versions` when several).
    pub version: Option<String>,
    /// Every distinct version seen.
    pub versions: Vec<String>,
    pub cuda_driver_version: Option<u64>,
    /// Network plugins in use (`IB`, `Socket`, `OFI`, `AWS Libfabric`, …), deduplicated.
    pub networks: Vec<String>,
    /// NICs listed by `NET/<x> : Using [n]...` lines (`mlx5_0:1/IB`, `eth0:10.0.0.1<0>`).
    pub nics: Vec<String>,
    /// Bootstrap interfaces (`Bootstrap : Using eth0:...`).
    pub bootstrap: Vec<String>,
    /// libfabric provider (`NET/OFI Selected Provider is efa`).
    pub ofi_provider: Option<String>,
    /// Distinct channel transports (`P2P/CUMEM`, `NET/IB/GDRDMA`, `SHM`, …).
    pub channel_transports: Vec<String>,
    /// Largest communicator size seen in init lines.
    pub nranks: Option<u64>,
    /// Largest node count seen in init lines (`nNodes`).
    pub nnodes: Option<u64>,
    /// Distinct hosts of NCCL lines.
    pub hosts: Vec<String>,
    /// `Init COMPLETE` lines.
    pub init_complete: u64,
    pub info_lines: u64,
    pub warn_count: u64,
    pub warns: Vec<NcclWarn>,
    pub error_codes: Vec<NcclErrorCode>,
    pub watchdog_timeouts: Vec<WatchdogTimeout>,
}

static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:\[[^\]]*\]\s*)?([^\s:\[\]]+):(\d+):(\d+) \[(\d+)\] (?:(\S+:\d+)(?: \([^)]*\))? )?NCCL (INFO|WARN|TRACE|CALL|ABORT)\b ?(.*)$",
    )
    .expect("static regex")
});
/// The words that the error-code branch of [`Parser::feed`] looks for, found in one pass.
pub(crate) const ERROR_LITERALS: &[&str] = &[
    "ncclSystemError",
    "ncclInternalError",
    "ncclRemoteError",
    "ncclUnhandledCudaError",
    "ncclInvalid",
    "ncclInProgress",
    "NCCL error",
    "NCCL Error",
    "NCCL failure",
];
static ERROR_TRIGGERS: LazyLock<Regex> = LazyLock::new(|| super::literal_set(ERROR_LITERALS));
/// PyTorch's report of a collective that timed out (see [`parse_watchdog`]): the watchdog's
/// `Watchdog caught collective operation timeout: WorkNCCL(...)`, and with
/// `NCCL_BLOCKING_WAIT=1` (PyTorch 1.x) the waiting rank's own `[Rank N] Caught collective
/// operation timeout: WorkNCCL(...)`.
pub(crate) const WATCHDOG: &str = "aught collective operation timeout";
/// Every literal that some branch of [`Parser::info_message`] looks for *inside* a message,
/// by the gate bit that lets a message into that branch. (Branches that look at how a message
/// starts are tried for every message: a test of its first byte costs less than a literal in
/// the gate, which would stop the gate's search at every such line.) The gate's stems are
/// tested against this list.
#[cfg(test)]
pub(crate) const INFO_LITERALS: &[(u16, &[&str])] = &[
    (INFO_VIA, &[" via "]),
    (INFO_VERSION, &["NCCL version"]),
    (INFO_INIT, &["Init COMPLETE"]),
    (INFO_NRANKS, &["nranks", "nRanks"]),
];

/// The header NCCL's logger (`debug.cc`) puts before every message:
/// `host:pid:tid [cudaDev] NCCL LEVEL msg`, for TRACE with `file:line (time) ` before `NCCL`,
/// and possibly behind a `[timestamp]` of the launcher.
pub(crate) struct Header<'a> {
    host: &'a str,
    pid: &'a str,
    dev: &'a str,
    source: Option<&'a str>,
    level: &'a str,
    msg: &'a str,
    /// False when nothing, not even a space, follows the level.
    has_msg: bool,
    /// Read by [`plain_header`]: the line starts with it.
    plain: bool,
}

impl<'a> Header<'a> {
    /// Whether `] NCCL ` occurs in the line past its own header (a glued NCCL line), when that
    /// is known from the header alone; `None` when the caller must look (not a plain header).
    pub(crate) fn msg(&self) -> &'a str {
        self.msg
    }

    /// Read by the one-pass reader (its message is all that follows the header).
    pub(crate) fn is_plain(&self) -> bool {
        self.plain
    }

    pub(crate) fn another_header(&self) -> Option<bool> {
        // `]` is rare in a message, and a search for it cheaper on one than `] NCCL `'s.
        let m = self.msg.as_bytes();
        self.plain
            .then(|| memchr::memchr_iter(b']', m).any(|i| m[i + 1..].starts_with(b" NCCL ")))
    }
}

/// Where the parts of a plain INFO header lie in its line (see [`Header::layout`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    host: (usize, usize),
    pid: (usize, usize),
    dev: (usize, usize),
    /// Where the message starts: everything before it is the header.
    pub(crate) msg: usize,
}

impl Layout {
    /// The host of a line that starts like the one this was taken from.
    pub(crate) fn host_in<'l>(&self, line: &'l str) -> &'l str {
        &line[self.host.0..self.host.1]
    }
}

impl<'a> Header<'a> {
    /// For the plain INFO header of `line` (which `self` was read from): where its parts lie.
    /// Any line that starts with the same bytes up to the message has the same header there.
    pub(crate) fn layout(&self, line: &str) -> Option<Layout> {
        if !(self.plain && self.has_msg && self.level == "INFO" && self.source.is_none()) {
            return None;
        }
        let base = line.as_ptr() as usize;
        let span = |s: &str| {
            let a = (s.as_ptr() as usize).wrapping_sub(base);
            (a, a + s.len())
        };
        let l = Layout {
            host: span(self.host),
            pid: span(self.pid),
            dev: span(self.dev),
            msg: span(self.msg).0,
        };
        (l.msg <= line.len() && line.get(l.msg..)? == self.msg).then_some(l)
    }

    /// The header of a line that starts like the one `l` was taken from.
    pub(crate) fn from_layout(line: &'a str, l: &Layout) -> Header<'a> {
        Header {
            host: &line[l.host.0..l.host.1],
            pid: &line[l.pid.0..l.pid.1],
            dev: &line[l.dev.0..l.dev.1],
            source: None,
            level: "INFO",
            msg: &line[l.msg..],
            has_msg: true,
            plain: true,
        }
    }
}

/// Searchers built once: `memmem::find` would build one per line.
pub(crate) static NCCL_HEADER: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"] NCCL "));
/// The word every line [`Parser::feed`] reads holds (bar error codes and the watchdog).
pub(crate) static NCCL_WORD: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"NCCL"));
static NCCL_INFO: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"] NCCL INFO "));

/// The header of a plain `host:pid:tid [dev] NCCL INFO ...` line, `None` for any other line.
pub(crate) fn info_header(t: &str) -> Option<Header<'_>> {
    match plain_header(t) {
        Some(h) => (h.level == "INFO" && h.has_msg).then_some(h),
        None => {
            NCCL_INFO.find(t.as_bytes())?;
            header(t).filter(|h| h.level == "INFO")
        }
    }
}

/// The plain header (`host:pid:tid [dev] NCCL LEVEL msg`, the common case of a large debug
/// log) in one pass, without a regex; other shapes go to [`PREFIX`].
fn plain_header(t: &str) -> Option<Header<'_>> {
    let s = t.trim_start();
    let b = s.as_bytes();
    let digits_at = |from: usize| {
        let n = b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
        (n > 0).then_some(from + n)
    };
    let host_end = b
        .iter()
        .position(|&c| matches!(c, b':' | b' ' | b'[' | b']'))?;
    if host_end == 0 || b[host_end] != b':' {
        return None;
    }
    let pid_end = digits_at(host_end + 1)?;
    if b.get(pid_end) != Some(&b':') {
        return None;
    }
    let tid_end = digits_at(pid_end + 1)?;
    if !b[tid_end..].starts_with(b" [") {
        return None;
    }
    let dev_end = digits_at(tid_end + 2)?;
    if !b[dev_end..].starts_with(b"] NCCL ") {
        return None;
    }
    let rest = &s[dev_end + 7..];
    let (level, msg, has_msg) = match rest.split_once(' ') {
        Some((l, m)) => (l, m, true),
        None => (rest, "", false),
    };
    matches!(level, "INFO" | "WARN" | "TRACE" | "CALL" | "ABORT").then_some(Header {
        host: &s[..host_end],
        pid: &s[host_end + 1..pid_end],
        dev: &s[tid_end + 2..dev_end],
        source: None,
        level,
        msg,
        has_msg,
        plain: true,
    })
}

fn header(t: &str) -> Option<Header<'_>> {
    plain_header(t).or_else(|| {
        let c = PREFIX.captures(t)?;
        let get = |i: usize| c.get(i).map_or("", |m| m.as_str());
        Some(Header {
            host: get(1),
            pid: get(2),
            dev: get(4),
            source: c.get(5).map(|m| m.as_str()),
            level: get(6),
            msg: get(7),
            has_msg: true,
            plain: false,
        })
    })
}

static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"NCCL version (\d+\.\d+\.\d+[^\s,]*)").expect("static regex"));
// NCCL spells it `nranks` (ncclCommInitRank) and `nRanks` (the comm's summary line).
static NRANKS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bn[rR]anks (\d+)").expect("static regex"));
static NNODES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bnNodes (\d+)").expect("static regex"));

/// A word NCCL prints before a count (`nranks 8`), for [`count_after`].
struct CountWord {
    /// The end its spellings share, and the space after it: what is looked for.
    tail: &'static [u8],
    /// Where in `tail` a byte rare in INFO messages is: candidates are found by it.
    anchor: usize,
    /// What may come before `tail` in a spelling.
    heads: &'static [&'static [u8]],
    /// The same, as a regex (for a line that is not ASCII).
    re: &'static LazyLock<Regex>,
}

static NRANKS_WORD: CountWord = CountWord {
    tail: b"anks ",
    anchor: 2,
    heads: &[b"nr", b"nR"],
    re: &NRANKS,
};
static NNODES_WORD: CountWord = CountWord {
    tail: b"nNodes ",
    anchor: 1,
    heads: &[b""],
    re: &NNODES,
};

/// What the word's regex (`\bWORD (\d+)`) captures in `msg`, parsed; an ASCII line (the
/// common case) without the regex engine. A message is short: a search for one byte costs
/// less there than any substring searcher's set-up.
fn count_after(msg: &str, word: &CountWord) -> Option<u64> {
    // The bytes of a character that is not ASCII are all 0x80 or above: the search below
    // never stops inside one, and such a character changes the regex's answer only next to a
    // candidate (a letter before it ends `\b`, a digit in or after its `\d+` counts): there
    // the regex answers. No scan of the whole message for ASCII first.
    let by_regex = || word.re.captures(msg).and_then(|c| uint(c.get(1)?.as_str()));
    let b = msg.as_bytes();
    let (tail, anchor) = (word.tail, word.anchor);
    let mut from = anchor;
    while let Some(k) = b.get(from..).and_then(|r| memchr::memchr(tail[anchor], r)) {
        let at = from + k - anchor;
        from += k + 1;
        if !b[at..].starts_with(tail) {
            continue;
        }
        let Some(head) = word.heads.iter().find(|h| b[..at].ends_with(h)) else {
            continue;
        };
        let i = at - head.len();
        if i > 0 && b[i - 1] >= 0x80 {
            return by_regex();
        }
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
            continue;
        }
        let start = at + tail.len();
        let digits = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if b.get(start + digits).is_some_and(|&c| c >= 0x80) {
            return by_regex();
        }
        if digits > 0 {
            return uint(&msg[start..start + digits]);
        }
    }
    None
}

static NET_USING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^NET/(\w+)\s*: Using (.*)$").expect("static regex"));
static NIC_ITEM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\d+\]([^\s;\[]+)").expect("static regex"));
// The common INFO messages are ASCII: for them, the few patterns below are read by hand (the
// regex engine's set-up per call costs more than the line); anything else goes to the regex.
// The tests hold the two to the same answers.

/// What [`VERSION`] captures.
fn version_of(text: &str) -> Option<&str> {
    if !text.is_ascii() {
        return VERSION
            .captures(text)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str());
    }
    static WORDS: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"NCCL version "));
    let b = text.as_bytes();
    WORDS.find_iter(b).find_map(|i| {
        let start = i + 13;
        let mut at = start;
        for part in 0..3 {
            let n = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            at += n;
            if part < 2 {
                if b.get(at) != Some(&b'.') {
                    return None;
                }
                at += 1;
            }
        }
        at += b[at..]
            .iter()
            .take_while(|&&c| !(c.is_ascii_whitespace() || c == 0x0b || c == b','))
            .count();
        Some(&text[start..at])
    })
}

/// What [`NET_USING`] captures: the network kind and the list after `: Using `.
fn net_using(msg: &str) -> Option<(&str, &str)> {
    if !msg.starts_with("NET/") {
        return None;
    }
    if !msg.is_ascii() {
        let c = NET_USING.captures(msg)?;
        return Some((c.get(1)?.as_str(), c.get(2)?.as_str()));
    }
    let rest = &msg[4..];
    let k = rest
        .bytes()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
        .count();
    if k == 0 {
        return None;
    }
    let after = rest[k..].trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    Some((&rest[..k], after.strip_prefix(": Using ")?))
}

/// What [`NIC_ITEM`] finds in `s`, in order (the capture of each match).
fn nic_items(s: &str) -> Box<dyn Iterator<Item = &str> + '_> {
    if !s.is_ascii() {
        return Box::new(
            NIC_ITEM
                .captures_iter(s)
                .filter_map(|c| c.get(1).map(|m| m.as_str())),
        );
    }
    let b = s.as_bytes();
    let mut at = 0;
    Box::new(std::iter::from_fn(move || {
        while let Some(i) = memchr::memchr(b'[', &b[at..]).map(|i| at + i) {
            at = i + 1;
            let d = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if d == 0 || b.get(i + 1 + d) != Some(&b']') {
                continue;
            }
            let from = i + 2 + d;
            let n = b[from..]
                .iter()
                .take_while(|&&c| !(c.is_ascii_whitespace() || c == 0x0b || c == b';' || c == b'['))
                .count();
            if n == 0 {
                continue;
            }
            at = from + n;
            return Some(&s[from..at]);
        }
        at = b.len();
        None
    }))
}

static VIA_WORD: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b" via "));

/// The transport of a channel line: the word after the first ` via ` that has one (what
/// ` via (\S+)` matches).
fn via_transport(msg: &str) -> Option<&str> {
    VIA_WORD.find_iter(msg.as_bytes()).find_map(|i| {
        let rest = &msg[i + 5..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    })
}
static CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(ncclUnhandledCudaError|ncclSystemError|ncclInternalError|ncclInvalidArgument|ncclInvalidUsage|ncclRemoteError|ncclInProgress)\b")
        .expect("static regex")
});
static WD_RANK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bRank (\d+)\]").expect("static regex"));
static WD_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(SeqNum|OpType|NumelIn|NumelOut|Timeout\(ms\))=(\w+)").expect("static regex")
});
static WD_RAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"ran for (\d+) milliseconds").expect("static regex"));

/// `ncclGetErrorString` texts and their codes.
const ERROR_STRINGS: &[(&str, &str)] = &[
    ("unhandled cuda error", "ncclUnhandledCudaError"),
    ("unhandled system error", "ncclSystemError"),
    ("internal error", "ncclInternalError"),
    ("invalid argument", "ncclInvalidArgument"),
    ("invalid usage", "ncclInvalidUsage"),
    (
        "remote process exited or there was a network error",
        "ncclRemoteError",
    ),
];

fn add_distinct(list: &mut Vec<String>, item: &str) {
    if list.len() < MAX_DISTINCT && !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

/// NCCL result code of an error line, if any.
pub fn error_code(text: &str) -> Option<&'static str> {
    if text.contains("nccl")
        && let Some(c) = CODE.captures(text)
    {
        let code = c.get(1)?.as_str();
        return ERROR_STRINGS
            .iter()
            .map(|(_, c)| *c)
            .chain(["ncclInProgress"])
            .find(|x| *x == code);
    }
    if text.contains("NCCL error") || text.contains("NCCL failure") || text.contains("NCCL Error") {
        return ERROR_STRINGS
            .iter()
            .find(|(s, _)| text.contains(s))
            .map(|(_, c)| *c);
    }
    None
}

/// Parses a watchdog line; `None` if the line is not one.
pub fn parse_watchdog(line: u64, text: &str) -> Option<WatchdogTimeout> {
    if !text.contains(WATCHDOG) {
        return None;
    }
    let mut wd = WatchdogTimeout {
        line,
        rank: WD_RANK
            .captures(text)
            .and_then(|c| uint(c.get(1)?.as_str()))
            .map(|r| r as u32),
        ran_for_ms: WD_RAN.captures(text).and_then(|c| uint(c.get(1)?.as_str())),
        ..WatchdogTimeout::default()
    };
    for c in WD_FIELD.captures_iter(text) {
        let (Some(k), Some(v)) = (c.get(1), c.get(2)) else {
            continue;
        };
        match k.as_str() {
            "SeqNum" => wd.seq = uint(v.as_str()),
            "OpType" => wd.op_type = Some(v.as_str().to_string()),
            "NumelIn" => wd.numel_in = uint(v.as_str()),
            "NumelOut" => wd.numel_out = uint(v.as_str()),
            _ => wd.timeout_ms = uint(v.as_str()),
        }
    }
    Some(wd)
}

/// Streaming parser of NCCL debug output.
#[derive(Debug, Default)]
pub struct Parser {
    info: NcclDebugInfo,
    failed_plugins: Vec<String>,
    /// The host of the last NCCL line: runs of lines from one host skip the list search.
    last_host: String,
    /// Reused for each channel transport read.
    scratch: String,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    fn version(&mut self, text: &str) {
        if let Some(v) = version_of(text) {
            if self.info.version.is_none() {
                self.info.version = Some(v.to_string());
            }
            add_distinct(&mut self.info.versions, v);
        }
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        self.feed_with(line, None, w);
    }

    /// [`Parser::feed`] of a line whose header the caller already parsed.
    pub(crate) fn feed_with<'a>(
        &mut self,
        line: &Line<'a>,
        known: Option<Header<'a>>,
        w: &mut Warnings,
    ) {
        let t = line.text;
        if ERROR_TRIGGERS.is_match(t) {
            if let Some(code) = error_code(t) {
                let e = NcclErrorCode {
                    line: line.no,
                    code: code.to_string(),
                    message: t.trim().chars().take(500).collect(),
                };
                push_capped(
                    &mut self.info.error_codes,
                    e,
                    "NCCL error codes",
                    line.no,
                    w,
                );
            }
            if t.contains("NCCL version") {
                self.version(t);
            }
        }
        if t.contains(WATCHDOG) {
            if let Some(mut wd) = parse_watchdog(line.no, t) {
                if wd.rank.is_none() {
                    wd.rank = line.rank;
                }
                push_capped(
                    &mut self.info.watchdog_timeouts,
                    wd,
                    "watchdog reports",
                    line.no,
                    w,
                );
            }
            return;
        }
        if !t.contains("NCCL") {
            return;
        }
        let Some(h) = known.or_else(|| header(t)) else {
            let trimmed = t.trim();
            if trimmed.starts_with("NCCL version ") {
                self.version(trimmed);
            }
            return;
        };
        self.add_host(h.host);
        let msg = h.msg.trim();
        match h.level {
            "WARN" => {
                self.info.warn_count += 1;
                let warn = NcclWarn {
                    line: line.no,
                    host: h.host.to_string(),
                    pid: uint(h.pid).unwrap_or(0),
                    device: uint(h.dev).unwrap_or(0) as u32,
                    source: h.source.map(str::to_string),
                    message: msg.chars().take(500).collect(),
                };
                push_capped(&mut self.info.warns, warn, "NCCL WARN lines", line.no, w);
            }
            "INFO" => {
                self.info.info_lines += 1;
                self.info_message(msg, !0);
            }
            _ => {}
        }
    }

    fn add_host(&mut self, host: &str) {
        if !super::same_bytes(host.as_bytes(), self.last_host.as_bytes()) {
            add_distinct(&mut self.info.hosts, host);
            self.last_host.clear();
            self.last_host.push_str(host);
        }
    }

    /// An INFO line that holds none of [`ERROR_LITERALS`] nor [`WATCHDOG`]: what
    /// [`Parser::feed_with`] would do with it, without looking for them again. `bits`: the
    /// gate's for the line (at least the `INFO_*` bits of the literals it holds).
    pub(crate) fn feed_info(&mut self, h: &Header<'_>, bits: u16) {
        self.feed_info_parts(h.host, h.msg, bits);
    }

    /// [`Parser::feed_info`] given the header's host and message.
    pub(crate) fn feed_info_parts(&mut self, host: &str, msg: &str, bits: u16) {
        self.add_host(host);
        self.feed_info_message(msg, bits);
    }

    /// [`Parser::feed_info_parts`] for a line whose host was noted already.
    pub(crate) fn feed_info_message(&mut self, msg: &str, bits: u16) {
        self.info.info_lines += 1;
        self.info_message(super::trim(msg), bits);
    }

    /// Reads an INFO message; a branch whose literals the gate did not see in it (`bits`) is
    /// not tried.
    #[inline]
    fn info_message(&mut self, msg: &str, bits: u16) {
        // Most of a large log: a channel line without a transport, read for nothing. Tested
        // before the call of the function that reads the others (its entry alone costs more).
        if bits & INFO_VIA == 0 && msg.starts_with("Channel") {
            return;
        }
        self.info_message_rest(msg, bits);
    }

    fn info_message_rest(&mut self, msg: &str, bits: u16) {
        let via = bits & INFO_VIA != 0 && VIA_WORD.find(msg.as_bytes()).is_some();
        if via || msg.starts_with("Channel") {
            if let Some(v) = via.then(|| via_transport(msg)).flatten() {
                // P2P/CUMEM/read -> kept; NET/IB/0/GDRDMA -> NET/IB/GDRDMA
                let mut norm = std::mem::take(&mut self.scratch);
                norm.clear();
                for p in v
                    .split('/')
                    .filter(|p| !p.bytes().all(|b| b.is_ascii_digit()))
                {
                    if !norm.is_empty() {
                        norm.push('/');
                    }
                    norm.push_str(p);
                }
                add_distinct(&mut self.info.channel_transports, &norm);
                self.scratch = norm;
            }
            return;
        }
        if bits & INFO_VERSION != 0 && msg.contains("NCCL version") {
            self.version(msg);
            return;
        }
        if let Some(v) = msg.strip_prefix("cudaDriverVersion ") {
            self.info.cuda_driver_version = uint(v);
            return;
        }
        if bits & INFO_INIT != 0 && msg.contains("Init COMPLETE") {
            self.info.init_complete += 1;
        }
        if bits & INFO_NRANKS != 0 {
            // A count found implies the word: the search for it is then not needed.
            let nranks = count_after(msg, &NRANKS_WORD);
            if nranks.is_some() || msg.contains("nranks") || msg.contains("nRanks") {
                if let Some(n) = nranks {
                    self.info.nranks = Some(self.info.nranks.map_or(n, |m| m.max(n)));
                }
                if let Some(n) = count_after(msg, &NNODES_WORD) {
                    self.info.nnodes = Some(self.info.nnodes.map_or(n, |m| m.max(n)));
                }
                return;
            }
        }
        // The branches below read how a message starts: none starts otherwise.
        if !matches!(
            msg.as_bytes().first(),
            Some(b'U' | b'A' | b'F' | b'B' | b'N')
        ) {
            return;
        }
        if let Some(net) = msg.strip_prefix("Using network ") {
            add_distinct(&mut self.info.networks, net.trim());
            return;
        }
        if let Some(rest) = msg.strip_prefix("Assigned NET plugin ") {
            if let Some(net) = rest.strip_suffix(" to comm") {
                add_distinct(&mut self.info.networks, net.trim());
            }
            return;
        }
        if let Some(rest) = msg.strip_prefix("Failed to initialize NET plugin ") {
            add_distinct(&mut self.failed_plugins, rest.trim());
            return;
        }
        if let Some(rest) = msg
            .strip_prefix("Bootstrap : Using ")
            .or_else(|| msg.strip_prefix("Bootstrap: Using "))
        {
            for item in rest.split_whitespace() {
                let item = nic_items(item).next().unwrap_or(item);
                add_distinct(&mut self.info.bootstrap, item);
            }
            return;
        }
        if let Some(rest) = msg.strip_prefix("NET/OFI Selected Provider is ") {
            let provider = rest.split_whitespace().next().unwrap_or("");
            self.info.ofi_provider = Some(provider.to_string());
            add_distinct(&mut self.info.networks, "OFI");
            return;
        }
        if let Some((kind, list)) = net_using(msg) {
            let devices = list.split(';').next().unwrap_or("");
            let mut any = false;
            for d in nic_items(devices) {
                any = true;
                add_distinct(&mut self.info.nics, d);
            }
            if any {
                add_distinct(&mut self.info.networks, kind);
            }
        }
    }

    pub fn finish(mut self, _w: &mut Warnings) -> NcclDebugInfo {
        let failed = std::mem::take(&mut self.failed_plugins);
        // A plugin that failed to initialise and was never assigned is not in use.
        self.info
            .networks
            .retain(|n| !failed.iter().any(|f| f == n));
        self.info
    }
}

super::line_parser::line_parser!(Parser => NcclDebugInfo);

/// Parses NCCL debug output from a reader (standalone use).
pub fn parse_reader<R: std::io::BufRead>(reader: R) -> (NcclDebugInfo, Vec<super::Warning>) {
    super::parse_lines(Parser::new(), reader)
}

#[cfg(test)]
mod tests {

    /// The hand-read patterns answer as their regexes do.
    #[test]
    fn hand_read_patterns_match_their_regexes() {
        let lines = [
            "NCCL version 2.28.9+cuda13.0",
            "NCCL INFO NCCL version 2.18.1+cuda12.1",
            "x NCCL version 2.7.8, y NCCL version 2.9.9",
            "NCCL version 2.7 NCCL version 3.1.4-rc1,foo",
            "NCCL version x NCCL version 1.2.",
            "NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB ; OOB eth0:10.0.0.1<0>",
            "NET/IB : Using [RO]; OOB eth0:192.0.2.2<0>",
            "NET/Socket : Using [0]eth0:192.0.2.2<0>",
            "NET/IB : No device found.",
            "NET/ : Using [0]x",
            "NET/OFI\t: Using [0]efa0",
            "NET/IB_x: Using [12]a;b [3][4]c [x]y [5] [6]d[7]e",
            "[0]eth0:192.0.2.2<0>",
            "nranks 8 nRanks 16 NRANKS 4 xnranks 3 nranks x nranks 07 _nranks 9",
            "rank 0 nRanks 16 nNodes 2 localRanks 8",
            "nNodesx 3 nNodes 12",
            "k kranks 1 ranks 2 NRanKs 5",
            "rank 0 nranks 1 cudaDev 0 nvmlDev 0 busId 60 - Init COMPLETE",
            "dNodes 1 nnodes 2 nNodes 3",
            "nranks",
            "",
            // Not ASCII: beside the word, after its digits, in place of them, or elsewhere.
            "\u{e9}nranks 4 nranks 5",
            "nranks 12\u{663} nranks 3",
            "nranks \u{663} nranks 6",
            "h\u{f4}te rank 0 nRanks 16 nNodes 2\u{e9} nNodes 3",
            "comm \u{2014} nranks 8 \u{2014} nNodes 1",
        ];
        for l in lines {
            assert_eq!(
                version_of(l),
                VERSION
                    .captures(l)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str()),
                "{l:?}"
            );
            let re = NET_USING
                .captures(l)
                .and_then(|c| Some((c.get(1)?.as_str(), c.get(2)?.as_str())));
            assert_eq!(net_using(l), re, "{l:?}");
            let re: Vec<&str> = NIC_ITEM
                .captures_iter(l)
                .filter_map(|c| c.get(1).map(|m| m.as_str()))
                .collect();
            assert_eq!(nic_items(l).collect::<Vec<_>>(), re, "{l:?}");
            for word in [&NRANKS_WORD, &NNODES_WORD] {
                let want = word.re.captures(l).and_then(|c| uint(c.get(1)?.as_str()));
                assert_eq!(count_after(l, word), want, "{} in {l:?}", word.re.as_str());
            }
        }
    }
    use super::super::testdata::device;
    use super::*;

    #[test]
    fn device_allgather_debug() {
        let (info, warnings) = parse_reader(device("nccl-allgather-debug.log").as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(info.version.as_deref(), Some("2.28.9+cuda13.0"));
        assert_eq!(info.cuda_driver_version, Some(13000));
        // "NET/IB : Using [RO]; OOB ..." lists no device and IB failed to initialise.
        assert_eq!(info.networks, ["Socket"]);
        assert_eq!(info.nics, ["eth0:192.0.2.2<0>"]);
        assert_eq!(info.bootstrap, ["eth0:192.0.2.2<0>"]);
        assert_eq!((info.nranks, info.nnodes), (Some(1), Some(1)));
        assert_eq!(info.init_complete, 1);
        assert_eq!(info.hosts, ["vm"]);
        assert_eq!(info.warn_count, 0);
    }

    /// NCCL 2.28 puts a timestamp before a WARN line's header (a real one: the GPU's memory was
    /// full at the first all_reduce, tests/fixtures/device-h200-2026-12-04).
    #[test]
    fn a_timestamped_warn_line_is_read() {
        let text = super::super::testdata::fixture("device-h200-2026-12-04/fill-nccl.log");
        let (info, _) = parse_reader(text.as_bytes());
        assert_eq!(info.version.as_deref(), Some("2.28.9+cuda13.0"));
        assert_eq!(info.warn_count, 1);
        let w = &info.warns[0];
        let expect = text.lines().position(|l| l.contains("NCCL WARN")).unwrap() as u64 + 1;
        assert_eq!(
            (w.line, w.host.as_str(), w.pid, w.device),
            (expect, "vm", 608, 0)
        );
        assert_eq!(w.source.as_deref(), Some("misc/strongstream.cc:131"));
        assert_eq!(w.message, "Cuda failure 'out of memory'");
    }

    #[test]
    fn device_ds_torchrun_nccl_lines() {
        let (info, _) = parse_reader(device("ds-z2-torchrun.log").as_bytes());
        assert_eq!(info.version.as_deref(), Some("2.28.9+cuda13.0"));
        assert_eq!(info.init_complete, 1);
        assert_eq!(info.networks, ["Socket"]);
    }
}
