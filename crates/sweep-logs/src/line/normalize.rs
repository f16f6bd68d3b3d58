//! From a physical line to the [`Line`]s the parsers are fed: escape sequences and stray
//! control bytes ([`StrayControls`]), launcher prefixes ([`strip_prefixes`]) and lines glued
//! without a newline ([`normalize_line`]).

use std::sync::LazyLock;

use regex::Regex;

use crate::nccl_debug;
use crate::warnings::Warnings;

/// One logical line handed to the parsers: a segment of a physical line after normalisation.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// 1-based number of the physical line this segment comes from.
    pub no: u64,
    /// The text, launcher prefixes removed (leading indentation is kept).
    pub text: &'a str,
    /// Rank from a launcher prefix (`[1,3]<stdout>:`, `[default3]:`, `[rank3]:`, `3: `).
    pub rank: Option<u32>,
    /// Host from a pdsh-style `host: ` prefix.
    pub host: Option<&'a str>,
}

/// An owned normalised segment (see [`normalize_line`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub text: String,
    pub rank: Option<u32>,
    pub host: Option<String>,
    /// The first stray control byte of the part of the line this segment was cut from (one
    /// neither tab, nor `\r`, nor in an escape sequence; a space stands in its place in
    /// `text`), and its byte offset in the physical line. Such a segment's figures are not to
    /// be read: the byte took the place of a character that is lost.
    pub control: Option<(u8, usize)>,
}

impl Segment {
    pub fn as_line(&self, no: u64) -> Line<'_> {
        Line {
            no,
            text: &self.text,
            rank: self.rank,
            host: self.host.as_deref(),
        }
    }
}

/// A part of a physical line between `\r`s, cleaned (see [`clean_pieces`]).
pub(crate) struct Piece {
    pub(crate) text: String,
    /// The first stray control byte (see [`Segment::control`]), and where it is in the line.
    pub(crate) stray: Option<(u8, usize)>,
}

/// Removes ANSI escape sequences, splits at `\r`, and puts a space for every other control
/// byte but tab. Removing such a byte would glue what is around it: `13\x007.4`, a digit of
/// `1387.4` lost to a NUL, would read as `137.4`. The space keeps the bytes apart, and the
/// piece is marked so that its figures are not read at all (a space may split a number as
/// wrongly as the byte glued it).
pub(crate) fn clean_pieces(text: &str) -> Vec<Piece> {
    let b = text.as_bytes();
    let mut pieces = Vec::new();
    let mut cur = Piece {
        text: String::with_capacity(text.len()),
        stray: None,
    };
    // Every byte this loop stops at is ASCII, and so is every escape sequence's last byte:
    // `from` and `i` are always character boundaries.
    let (mut from, mut i) = (0, 0);
    while i < b.len() {
        let c = b[i];
        if !((c < 0x20 && c != b'\t') || c == 0x7f) {
            i += 1;
            continue;
        }
        cur.text.push_str(&text[from..i]);
        let escape = if c == 0x1b { escape_len(&b[i..]) } else { None };
        if c == b'\r' {
            let next = Piece {
                text: String::new(),
                stray: None,
            };
            pieces.push(std::mem::replace(&mut cur, next));
            i += 1;
        } else if let Some(n) = escape {
            i += n;
        } else {
            cur.text.push(' ');
            cur.stray.get_or_insert((c, i));
            i += 1;
        }
        from = i;
    }
    cur.text.push_str(&text[from..]);
    pieces.push(cur);
    pieces
}

/// The length of the escape sequence that starts `b` (at an ESC), or `None` where none does: a
/// lone ESC, a sequence cut short or holding a byte it cannot, or one no program writes to a
/// log. Such an ESC is a stray control byte like any other. Only the sequences in use are
/// taken, so that one is never let to swallow text: an ESC that took a digit's place, with
/// what follows it read as a sequence (`1\x1b87.4`: ESC 8 restores the cursor), would make
/// another number of what is left.
fn escape_len(b: &[u8]) -> Option<usize> {
    let at = |i: usize| b.get(i).copied();
    match at(1)? {
        // CSI (colours, cursor moves, tqdm's `ESC [ A`): parameters, intermediates, a final.
        b'[' => {
            let mut i = 2;
            while matches!(at(i), Some(0x30..=0x3f)) {
                i += 1;
            }
            while matches!(at(i), Some(0x20..=0x2f)) {
                i += 1;
            }
            matches!(at(i), Some(0x40..=0x7e)).then_some(i + 1)
        }
        // Control strings (OSC: titles, hyperlinks; DCS, SOS, PM, APC): up to BEL or ST.
        b']' | b'P' | b'X' | b'^' | b'_' => {
            let mut i = 2;
            loop {
                match at(i)? {
                    0x07 => return Some(i + 1),
                    0x1b => return (at(i + 1) == Some(b'\\')).then_some(i + 2),
                    _ => i += 1,
                }
            }
        }
        // A character set chosen: `ESC ( B` is what `tput sgr0` writes before `ESC [ m`.
        b'(' | b')' | b'*' | b'+' => at(2).is_some_and(|c| c.is_ascii_alphabetic()).then_some(3),
        // Keypad modes, a reset, a string terminator left alone.
        b'=' | b'>' | b'c' | b'\\' => Some(2),
        _ => None,
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A launcher prefix found at the start of a line.
enum Prefix<'a> {
    Rank(u32),
    Host(&'a str),
}

/// Recognises one launcher prefix at the start of `s` (after optional spaces); returns it and
/// the rest of the line.
fn one_prefix(s: &str) -> Option<(Prefix<'_>, &str)> {
    let t = s.trim_start_matches(' ');
    let b = t.as_bytes();
    if b.first() == Some(&b'[') {
        let close = t.find(']')?;
        let inner = &t[1..close];
        let after = &t[close + 1..];
        // mpirun --tag-output: [jobid,rank]<stdout>:
        if let Some((job, rank)) = inner.split_once(',')
            && parse_u32(job).is_some()
            && let Some(r) = parse_u32(rank)
        {
            for tag in ["<stdout>:", "<stderr>:", "<stddiag>:"] {
                if let Some(rest) = after.strip_prefix(tag) {
                    return Some((Prefix::Rank(r), rest));
                }
            }
            return None;
        }
        for name in ["default", "rank"] {
            if let Some(num) = inner.strip_prefix(name)
                && let Some(r) = parse_u32(num)
                && let Some(rest) = after.strip_prefix(':')
            {
                // PyTorch's excepthook (`distributed_c10d.py`, 2.3 on) writes each traceback
                // line as `[rankN]: ` + the line: that one space is its, not the line's (a
                // frame keeps its indent, the exception line starts at its name). torchrun's
                // `[defaultN]:` and the C++ `[rankN]:[W ...]` add none.
                let rest = if name == "rank" {
                    rest.strip_prefix(' ').unwrap_or(rest)
                } else {
                    rest
                };
                return Some((Prefix::Rank(r), rest));
            }
        }
        return None;
    }
    // `head: ` where head is digits (a rank) or a host name: scan the one run of characters
    // either may hold instead of searching the whole line for `: ` (the same answer: any other
    // character before the first `: ` rules both out).
    let colon = t
        .bytes()
        .take(65)
        .position(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-'))
        .unwrap_or(t.len().min(65));
    if !t.as_bytes()[colon..].starts_with(b": ") {
        return None;
    }
    let head = &t[..colon];
    let rest = &t[colon + 2..];
    if let Some(r) = parse_u32(head) {
        return Some((Prefix::Rank(r), rest));
    }
    // pdsh-style host prefix: no leading spaces, lower-case hostname or IPv4 with a digit.
    if t.len() == s.len()
        && !head.is_empty()
        && head.len() <= 64
        && head
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && head.bytes().any(|c| c.is_ascii_digit())
        && head.as_bytes()[0].is_ascii_alphanumeric()
    {
        return Some((Prefix::Host(head), rest));
    }
    None
}

/// Strips launcher prefixes (repeatedly) and returns the rest with the rank and host found.
pub fn strip_prefixes(s: &str) -> (&str, Option<u32>, Option<&str>) {
    let mut rest = s;
    let mut rank = None;
    let mut host = None;
    for _ in 0..6 {
        match one_prefix(rest) {
            Some((Prefix::Rank(r), r2)) => {
                rank.get_or_insert(r);
                rest = r2;
            }
            Some((Prefix::Host(h), r2)) => {
                host.get_or_insert(h);
                rest = r2;
            }
            None => break,
        }
    }
    (rest, rank, host)
}

/// A matcher for any of `words` (literally): the regex engine searches such a set with SIMD
/// (Teddy) in one pass, far faster per line than as many `contains`.
pub(crate) fn literal_set(words: &[&str]) -> Regex {
    let alternation: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
    Regex::new(&alternation.join("|")).expect("escaped literals")
}

/// Starts of well-known lines that, found inside a line, mean two lines were glued together.
pub(crate) static GLUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\[\d+,\d+\]<std(?:out|err|diag)>:",
        r"|\[Rank \d+\] \(after ",
        r"|\[(?:rank|default)\d+\]:",
        r"|slurmstepd(?:-[\w.-]+)?: error:",
        r"|srun: error:",
        r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \[",
        r"|# (?:Out of bounds values|Avg bus bandwidth|nccl-tests version|Collective test (?:starting|concluded))",
        r"|Traceback \(most recent call last\):",
        r"|[A-Za-z0-9][A-Za-z0-9._-]*:\d+:\d+ \[\d+\] NCCL (?:INFO|WARN)",
        r"|\biteration\s+\d+\s*/\s*\d+\s*\|",
    ))
    .expect("static regex")
});

/// Cheap test (substring search only) for the literals that every [`GLUE`] pattern holds.
pub(crate) fn may_glue(text: &str) -> bool {
    static LITERALS: LazyLock<Regex> = LazyLock::new(|| {
        literal_set(&[
            "]<std",
            "] (after ",
            "[rank",
            "[default",
            ": error:",
            "] [",
            "# ",
            "Traceback",
            "] NCCL ",
            "iteration",
        ])
    });
    // The line's own NCCL header (`host:pid:tid [dev] NCCL `) is no glued line: look past it.
    let from = match nccl_debug::NCCL_HEADER.find(text.as_bytes()) {
        Some(i)
            if !text[..i].trim_start().contains(' ')
                || text[..i].trim_start().matches(' ').count() == 1 =>
        {
            i + 7
        }
        _ => 0,
    };
    LITERALS.is_match(&text[from..])
}

/// Whether a [`GLUE`] match starts a glued line: not a `Traceback` of Python's exception
/// groups, drawn as `+ Exception Group Traceback (most recent call last):` and, for a
/// sub-exception, behind the group's bars (`    | Traceback ...`). (The regex crate has no
/// look-behind.)
fn glues(text: &str, m: &regex::Match<'_>) -> bool {
    if !m.as_str().starts_with('T') {
        return true;
    }
    let before = &text[..m.start()];
    !(before.ends_with("Exception Group ") || before.ends_with("| "))
}

/// Whether [`split_glued`] would make of `text` anything but `text` itself: a [`GLUE`] match
/// past its start, or an mpirun tag (the literals of [`may_glue`] only say that one may be).
pub(crate) fn needs_split(text: &str) -> bool {
    let mut found = GLUE.find_iter(text).filter(|m| glues(text, m));
    match found.next() {
        None => false,
        Some(m) if m.start() == 0 && !m.as_str().contains("]<std") => found.next().is_some(),
        Some(_) => true,
    }
}

/// Whether `b` is all ASCII, and whether it holds a control character other than tab, in one
/// pass without early exit (it compiles to SIMD compares).
pub(crate) fn scan_ascii_control(b: &[u8]) -> (bool, bool) {
    let mut high = 0u8;
    let mut control = 0u8;
    for &x in b {
        high |= x;
        control |= (((x < 0x20) & (x != b'\t')) | (x == 0x7f)) as u8;
    }
    (high < 0x80, control != 0)
}

/// True if `text` holds a control character other than tab (which [`normalize_line`] removes).
/// No early exit: the loop over whole chunks compiles to SIMD compares.
pub(crate) fn has_control(text: &str) -> bool {
    let b = text.as_bytes();
    let chunks = b.chunks_exact(32);
    let tail = chunks.remainder();
    let bad = |c: u8| (((c < 0x20) & (c != b'\t')) | (c == 0x7f)) as u8;
    for c in chunks {
        if c.iter().fold(0u8, |acc, &x| acc | bad(x)) != 0 {
            return true;
        }
    }
    tail.iter().any(|&x| bad(x) != 0)
}

/// Whether an NCCL header (`] NCCL `) in `text` can be the start of a glued line, as
/// [`may_glue`] decides: one past the line's own header, or one not at the line's start.
pub(crate) fn nccl_glue_possible(text: &str) -> bool {
    let Some(i) = nccl_debug::NCCL_HEADER.find(text.as_bytes()) else {
        return false;
    };
    let pre = text[..i].trim_start();
    let own = !pre.contains(' ') || pre.matches(' ').count() == 1;
    !own || nccl_debug::NCCL_HEADER
        .find(&text.as_bytes()[i + 7..])
        .is_some()
}

/// Normalises one physical line into segments (see the [crate documentation](crate)).
/// Returns the line's first stray control byte and its offset (see [`Segment::control`]): a
/// line of nothing else has no segment to carry it.
pub fn normalize_line(text: &str, out: &mut Vec<Segment>) -> Option<(u8, usize)> {
    out.clear();
    // The common line has no control character: no copy of it is needed to clean it.
    if !has_control(text) {
        let (rest, rank, host) = strip_prefixes(text);
        split_glued(rest, rank, host, None, out);
        return None;
    }
    let mut first = None;
    for piece in clean_pieces(text) {
        first = first.or(piece.stray);
        let (rest, rank, host) = strip_prefixes(&piece.text);
        // Where in the piece the byte was is lost in the split: every segment of it is marked.
        split_glued(rest, rank, host, piece.stray, out);
    }
    first
}

fn split_glued(
    text: &str,
    rank: Option<u32>,
    host: Option<&str>,
    control: Option<(u8, usize)>,
    out: &mut Vec<Segment>,
) {
    let mut cur = String::with_capacity(text.len());
    let mut cur_rank = rank;
    let mut cur_host = host.map(str::to_string);
    let mut last = 0usize;
    let push = |cur: &mut String, r: Option<u32>, h: &Option<String>, out: &mut Vec<Segment>| {
        if !cur.trim().is_empty() {
            out.push(Segment {
                text: std::mem::take(cur),
                rank: r,
                host: h.clone(),
                control,
            });
        } else {
            cur.clear();
        }
    };
    if !may_glue(text) {
        if !text.trim().is_empty() {
            out.push(Segment {
                text: text.to_string(),
                rank,
                host: cur_host,
                control,
            });
        }
        return;
    }
    for m in GLUE.find_iter(text) {
        // A glued line's own prefixes were stripped up to `last`, past matches inside them.
        if m.start() < last || !glues(text, &m) {
            continue;
        }
        cur.push_str(&text[last..m.start()]);
        let found = m.as_str();
        if let Some(inner) = found.strip_prefix('[')
            && let Some((_, tail)) = inner.split_once(',')
            && let Some((rank, _)) = tail.split_once(']')
            && found.contains("]<std")
        {
            // An mpirun tag inside the line.
            let r = parse_u32(rank);
            last = m.end();
            if r == cur_rank || cur.trim().is_empty() {
                if cur_rank.is_none() {
                    cur_rank = r;
                }
                continue;
            }
            push(&mut cur, cur_rank, &cur_host, out);
            cur_rank = r;
            cur_host = None;
            continue;
        }
        if !cur.trim().is_empty() {
            push(&mut cur, cur_rank, &cur_host, out);
            // The glued line may carry its own prefix.
            let (rest, r2, h2) = strip_prefixes(&text[m.start()..]);
            if rest.len() != text.len() - m.start() {
                cur_rank = r2.or(cur_rank);
                cur_host = h2.map(str::to_string).or(cur_host);
                last = text.len() - rest.len();
                continue;
            }
        }
        last = m.start();
    }
    cur.push_str(&text[last..]);
    push(&mut cur, cur_rank, &cur_host, out);
}

/// The lines that held a stray control byte (see [`Segment::control`]): the first is warned
/// about with its line, the others only counted (a binary file has one on most lines), as the
/// lines that are not UTF-8 are.
#[derive(Debug, Default)]
pub(crate) struct StrayControls {
    first: u64,
    last: u64,
    lines: u64,
}

impl StrayControls {
    /// Notes line `no`, whose first stray control byte is `byte`, at offset `at`; `what` says
    /// what became of the line.
    pub(crate) fn note(&mut self, no: u64, (byte, at): (u8, usize), what: &str, w: &mut Warnings) {
        if self.lines > 0 && self.last == no {
            return;
        }
        self.lines += 1;
        self.last = no;
        if self.lines == 1 {
            self.first = no;
            w.push(
                no,
                format!(
                    "control byte 0x{byte:02x} at line {no}, column {}: {what}",
                    at + 1
                ),
            );
        }
    }

    pub(crate) fn finish(&self, what: &str, w: &mut Warnings) {
        if self.lines > 1 {
            w.push(
                self.first,
                format!(
                    "{} more line(s) after line {} held control bytes: {what}",
                    self.lines - 1,
                    self.first
                ),
            );
        }
    }
}

/// What becomes of a line with a stray control byte in a full parse.
pub(crate) const STRAY_FULL: &str = "not read for figures, only for failure signs";
/// In a standalone parser's ([`for_each_line`]).
pub(crate) const STRAY_STANDALONE: &str = "ignored";

#[cfg(test)]
mod glue_regression {
    /// Found by `cargo bench --bench fuzz`: a glued line whose stripped prefixes span later
    /// glue matches (a real NCCL INFO line, then launcher prefixes), sliced out of bounds.
    #[test]
    fn prefixes_spanning_later_glue_matches() {
        let mut out = Vec::new();
        super::normalize_line(
            "vm:870:890 [0] NCCL INFO [Proxy Service] Devi             [default3]:         [rank7]:",
            &mut out,
        );
        super::normalize_line(
            "x  [default3]:          [1,0]<stdout>:          [100%]18 passed",
            &mut out,
        );
    }
}
