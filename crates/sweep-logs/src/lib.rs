//! Log parsers for `sweep collect`: nccl-tests tables, NCCL debug output, DeepSpeed, Megatron and
//! HF Trainer training logs, failure signatures (CUDA OOM, Slurm, NCCL, Python tracebacks, ECC),
//! `nvidia-smi` CSV samples and `nvidia-smi topo -m` matrices.
//!
//! # Reading model
//!
//! Everything is **streaming**: a [`LineSource`] reads a [`BufRead`] as bytes, one line at a
//! time, with a bounded line buffer ([`MAX_LINE_BYTES`]; longer lines are cut with a warning), and
//! converts each line lossily to UTF-8 (invalid bytes become U+FFFD). Memory use is independent of
//! the file's size: it grows only with the number of *records* kept (table rows, iterations, …),
//! and every list is capped ([`MAX_RECORDS`], [`MAX_WARNINGS`]) with a warning when the cap is hit.
//!
//! Each physical line is then *normalised* into one or more [`Line`]s ([`normalize_line`]):
//! - ANSI escape sequences are removed; CR (`\r`, CRLF endings, progress bars) ends a segment.
//!   Any other control byte but tab (a NUL of a damaged file, a lone ESC) becomes a space, and
//!   its segment is given to the failure detectors only, with a warning (the first such line of
//!   a file, then a count): the byte took a character's place, so a number around it is not the
//!   number printed.
//! - Launcher prefixes are stripped, repeatedly, and remembered as `rank` / `host`:
//!   mpirun `--tag-output` (`[1,0]<stdout>:`), torchrun `--tee` (`[default7]:`), PyTorch's
//!   `[rank7]:`, `srun --label` (`7: `) and pdsh (`host-01: `, `10.1.2.3: `; a host must be
//!   lower-case and contain a digit, so `RuntimeError: ` or `slurmstepd: ` are never taken).
//! - An mpirun tag *inside* a line of the same rank is removed (mpirun tags each `write()`, so one
//!   nccl-tests row printed by three `printf`s comes out with the tag twice in the middle); a tag
//!   of another rank, or a well-known line start in the middle of a line (NCCL's
//!   `host:pid:tid [dev] NCCL`, `[Rank N] (after`, `slurmstepd: error:`, a Python logging
//!   timestamp, `Traceback`, nccl-tests footers…), splits the line in two: lines glued together
//!   without a newline are parsed separately, with the same line number.
//!
//! A final line without a line terminator (a truncated file) is given to the failure detectors
//! only, never to the parsers that extract numbers, and a warning says so: a cut number is never
//! reported as a measurement.
//!
//! # Entry points
//!
//! [`parse_file`] / [`parse_reader`] run every parser in **one pass** over the lines and return a
//! [`ParsedLog`]. Files whose name ends in `.json` are read as an nccl-tests `-J` report or a
//! DeepSpeed config. Each module also has its own `Parser` (fed [`Line`]s) for standalone use.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

pub mod deepspeed;
pub mod failures;
mod gate;
pub mod hf_trainer;
pub mod megatron;
pub mod nccl_debug;
pub mod nccl_tests;
pub mod nvidia_smi;
pub mod payload;
pub mod telemetry;

/// Longest line kept, in bytes; the rest of a longer line is skipped (with a warning).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Most warnings kept per parse; further ones are only counted.
pub const MAX_WARNINGS: usize = 1000;
/// Most records kept in any one list (rows, iterations, samples…); further ones are dropped
/// with one warning.
pub const MAX_RECORDS: usize = 1_000_000;
/// Largest JSON document read (nccl-tests `-J` output, DeepSpeed config).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Something a parser could not use, or had to guess about. `line` is 1-based (0: whole file).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub line: u64,
    pub message: String,
}

/// A bounded collector of [`Warning`]s.
#[derive(Debug, Default)]
pub struct Warnings {
    list: Vec<Warning>,
    dropped: u64,
    capped: Vec<&'static str>,
}

impl Warnings {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, line: u64, message: impl Into<String>) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(Warning {
                line,
                message: message.into(),
            });
        } else {
            self.dropped += 1;
        }
    }
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn as_slice(&self) -> &[Warning] {
        &self.list
    }
    /// The warnings kept, and how many more were dropped.
    pub fn into_parts(self) -> (Vec<Warning>, u64) {
        (self.list, self.dropped)
    }
}

/// The lines that held a stray control byte (see [`Segment::control`]): the first is warned
/// about with its line, the others only counted (a binary file has one on most lines), as the
/// lines that are not UTF-8 are.
#[derive(Debug, Default)]
struct StrayControls {
    first: u64,
    last: u64,
    lines: u64,
}

impl StrayControls {
    /// Notes line `no`, whose first stray control byte is `byte`, at offset `at`; `what` says
    /// what became of the line.
    fn note(&mut self, no: u64, (byte, at): (u8, usize), what: &str, w: &mut Warnings) {
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

    fn finish(&self, what: &str, w: &mut Warnings) {
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
const STRAY_FULL: &str = "not read for figures, only for failure signs";
/// In a standalone parser's ([`for_each_line`]).
const STRAY_STANDALONE: &str = "ignored";

/// Pushes `item` unless `list` holds [`MAX_RECORDS`] already; warns once per `what`.
pub(crate) fn push_capped<T>(
    list: &mut Vec<T>,
    item: T,
    what: &'static str,
    line: u64,
    w: &mut Warnings,
) {
    if list.len() < MAX_RECORDS {
        list.push(item);
    } else if !w.capped.contains(&what) {
        w.capped.push(what);
        w.push(
            line,
            format!("more than {MAX_RECORDS} {what}; the rest are not kept"),
        );
    }
}

/// One physical line as read from the file, before normalisation.
#[derive(Debug)]
pub struct RawLine<'a> {
    /// 1-based line number.
    pub no: u64,
    /// The line, lossily decoded, without its line terminator (`\n` or `\r\n`).
    pub text: &'a str,
    /// False for a final line that ended at end of file without `\n`.
    pub terminated: bool,
    /// True if the line was longer than [`MAX_LINE_BYTES`] and was cut.
    pub cut: bool,
    /// True if the line held bytes that are not UTF-8.
    pub lossy: bool,
    /// True if the line holds a control character other than tab (see [`normalize_line`]).
    pub control: bool,
}

/// Reads lines from any [`Read`] in bounded memory: large blocks are read into one buffer and
/// each line is handed out as a slice of it, copied only when it is not UTF-8.
pub struct LineSource<R> {
    reader: R,
    buf: Vec<u8>,
    /// Start of the next line in `buf`.
    start: usize,
    /// End of the bytes read into `buf`.
    end: usize,
    /// Bytes of `buf[start..end]` known to hold no `\n`.
    scanned: usize,
    eof: bool,
    text: String,
    line_no: u64,
    /// Bytes taken out of the reader so far.
    read_total: u64,
    error: Option<io::Error>,
    /// Bytes asked of the reader at a time.
    chunk: usize,
    /// Of the last clean run handed out.
    maps: BlockMaps,
}

/// Bytes asked of the reader at a time, at most.
const BLOCK: usize = 256 * 1024;

impl<R: Read> LineSource<R> {
    pub fn new(reader: R) -> Self {
        Self::with_size_hint(reader, BLOCK as u64)
    }

    /// A source for input of about `size` bytes: a small file gets a buffer its size (most
    /// logs of a campaign are small; a fresh 256 KiB per file costs more than parsing it).
    pub fn with_size_hint(reader: R, size: u64) -> Self {
        let chunk = (size.saturating_add(1) as usize).clamp(4096, BLOCK);
        LineSource {
            chunk,
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            text: String::new(),
            line_no: 0,
            read_total: 0,
            error: None,
            maps: BlockMaps::default(),
        }
    }

    /// Bytes of lines handed out so far (line terminators and skipped bytes of cut lines
    /// included).
    pub fn bytes_read(&self) -> u64 {
        self.read_total - (self.end - self.start) as u64
    }

    /// The I/O error that ended reading early, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Reads more into `buf[end..]`, making room first; false at end of input or on an error.
    fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        if self.start > 0 && self.buf.len() - self.end < self.chunk / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < self.chunk / 2 {
            // A file larger than its hint (still being written): read on in full blocks.
            if !self.buf.is_empty() {
                self.chunk = BLOCK;
            }
            self.buf.resize(self.end + self.chunk, 0);
        }
        self.read_some()
    }

    /// One read into `buf[end..]` (the caller made room); false at end of input or on an error.
    fn read_some(&mut self) -> bool {
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return false;
                }
                Ok(n) => {
                    self.end += n;
                    self.read_total += n as u64;
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error = Some(e);
                    self.eof = true;
                    return false;
                }
            }
        }
    }

    /// Skips input up to and including the next `\n` (the rest of a cut line); true if one
    /// was found. Bytes after it stay in `buf` from `keep` on.
    fn skip_to_newline(&mut self, keep: usize) -> bool {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[keep..self.end]) {
                self.buf.copy_within(keep + i + 1..self.end, keep);
                self.end -= i + 1;
                return true;
            }
            self.end = keep;
            if self.eof {
                return false;
            }
            // Room for a block after the kept line, without growing past it.
            if self.buf.len() - self.end < self.chunk / 2 {
                self.buf.resize(self.end + self.chunk, 0);
            }
            if !self.read_some() {
                return false;
            }
        }
    }

    /// The next run of clean lines, or the next line when it is not clean; `None` at end of
    /// input (or after an I/O error, see [`Self::take_error`]).
    pub fn next_chunk(&mut self) -> Option<Chunk<'_>> {
        // Only while all that is buffered is shorter than the longest line kept: a longer run
        // without a newline is cut by `next_line`.
        while self.end - self.start <= MAX_LINE_BYTES {
            let from = self.start + self.scanned;
            match memchr::memrchr(b'\n', &self.buf[from..self.end]) {
                Some(i) => {
                    let stop = from + i + 1;
                    let (len, lines) = self.maps.build(&self.buf[self.start..stop]);
                    if lines == 0 {
                        break;
                    }
                    let first_no = self.line_no + 1;
                    let begin = self.start;
                    self.line_no += lines;
                    self.start = begin + len;
                    self.scanned = 0;
                    let bytes = &self.buf[begin..begin + len];
                    debug_assert!(bytes.is_ascii());
                    // SAFETY: `build` passed only bytes below 0x7f: ASCII, valid UTF-8.
                    let text = unsafe { std::str::from_utf8_unchecked(bytes) };
                    return Some(Chunk::Clean {
                        text,
                        first_no,
                        maps: &self.maps,
                    });
                }
                None => {
                    self.scanned = self.end - self.start;
                    if !self.fill() {
                        break;
                    }
                }
            }
        }
        self.next_line().map(Chunk::Line)
    }

    /// The next line, or `None` at end of input (or after an I/O error, see [`Self::take_error`]).
    pub fn next_line(&mut self) -> Option<RawLine<'_>> {
        let (line_end, next, terminated, cut) = loop {
            let from = self.start + self.scanned;
            if let Some(i) = memchr::memchr(b'\n', &self.buf[from..self.end]) {
                let nl = from + i;
                if nl - self.start > MAX_LINE_BYTES {
                    let keep = self.start + MAX_LINE_BYTES;
                    self.buf.copy_within(nl + 1..self.end, keep);
                    self.end -= nl + 1 - keep;
                    break (keep, keep, true, true);
                }
                break (nl, nl + 1, true, false);
            }
            self.scanned = self.end - self.start;
            if self.scanned > MAX_LINE_BYTES {
                let keep = self.start + MAX_LINE_BYTES;
                let found = self.skip_to_newline(keep);
                break (keep, keep, found, true);
            }
            if !self.fill() {
                if self.start == self.end {
                    return None;
                }
                break (self.end, self.end, false, false);
            }
        };
        let line_start = self.start;
        self.start = next;
        self.scanned = 0;
        self.line_no += 1;
        let mut raw = &self.buf[line_start..line_end];
        if raw.last() == Some(&b'\r') {
            raw = &raw[..raw.len() - 1];
        }
        let (ascii, control) = scan_ascii_control(raw);
        let (text, lossy) = if ascii {
            // SAFETY: every byte is below 0x80, so the bytes are ASCII and valid UTF-8.
            (unsafe { std::str::from_utf8_unchecked(raw) }, false)
        } else {
            match std::str::from_utf8(raw) {
                Ok(s) => (s, false),
                Err(_) => {
                    self.text.clear();
                    self.text.push_str(&String::from_utf8_lossy(raw));
                    (self.text.as_str(), true)
                }
            }
        };
        Some(RawLine {
            no: self.line_no,
            text,
            terminated,
            cut,
            lossy,
            control: control || (!ascii && has_control(text)),
        })
    }
}

/// What [`LineSource::next_chunk`] hands out.
#[derive(Debug)]
pub enum Chunk<'a> {
    /// Whole lines, each ending in `\n` (not in the text's lines), none longer than
    /// [`MAX_LINE_BYTES`], all ASCII without a control character but tab: the lines that need
    /// no cleaning, many at a time. The first is line `first_no`.
    Clean {
        text: &'a str,
        first_no: u64,
        maps: &'a BlockMaps,
    },
    /// One line that needs the careful path (cut, not ASCII, control characters, unterminated).
    Line(RawLine<'a>),
}

/// The length of the longest run of whole lines at the start of `b` that are ASCII without a
/// control character but tab and `\n`, and how many lines that is (see [`BlockMaps::build`]).
#[cfg(test)]
fn clean_prefix(b: &[u8]) -> (usize, u64) {
    BlockMaps::default().build(b)
}

/// `s.trim()`, without decoding characters where the ends are ASCII (most lines).
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    // Every whitespace character std knows is at most a space or not ASCII: ends that are
    // neither need no scan (most fields and messages).
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if f > b' ' && f < 0x80 && l > b' ' && l < 0x80 => s,
        (None, _) => s,
        _ => trim_ends(s),
    }
}

/// [`trim`] where an end may be whitespace.
fn trim_ends(s: &str) -> &str {
    // The ASCII characters `char::is_whitespace` takes (`u8::is_ascii_whitespace` lacks \x0B).
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let b = s.as_bytes();
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    let t = &b[start..end];
    if t.first().is_some_and(|&c| c >= 0x80) || t.last().is_some_and(|&c| c >= 0x80) {
        // A character that is not ASCII at an end may be whitespace (U+00A0, U+3000...).
        return s.trim();
    }
    &s[start..end]
}

/// Where `sep` is in `b`: its first `out.len()` positions into `out`, how many there are in
/// all, and whether `b` is ASCII. One pass, 16 bytes a step on x86-64: the separators of a
/// CSV row are a few bytes apart, too close for a search per field to pay.
pub(crate) fn find_seps(b: &[u8], sep: u8, out: &mut [u32]) -> (usize, bool) {
    let mut n = 0usize;
    let mut high = 0u8;
    let mut note = |i: usize, n: &mut usize| {
        if let Some(slot) = out.get_mut(*n) {
            *slot = i as u32;
        }
        *n += 1;
    };
    // Where the 16-byte steps stopped (none without SSE2).
    #[cfg(not(target_arch = "x86_64"))]
    let at = 0;
    #[cfg(target_arch = "x86_64")]
    let at = {
        let mut at = 0;
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut chunks = b.chunks_exact(16);
        for c in &mut chunks {
            // SAFETY: SSE2 is part of the x86-64 baseline; `c` holds 16 bytes and the load has
            // no alignment requirement.
            let (mut hits, top) = unsafe {
                let v = _mm_loadu_si128(c.as_ptr().cast::<__m128i>());
                let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(sep as i8)));
                (hits as u32, _mm_movemask_epi8(v) as u32)
            };
            high |= u8::from(top != 0);
            while hits != 0 {
                note(at + hits.trailing_zeros() as usize, &mut n);
                hits &= hits - 1;
            }
            at += 16;
        }
        at
    };
    for (i, &c) in b.iter().enumerate().skip(at) {
        high |= c & 0x80;
        if c == sep {
            note(i, &mut n);
        }
    }
    (n, high == 0)
}

/// `a == b` for the short strings of a line's header, inline: a call to `memcmp` per line
/// costs more than the compare.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Fixed-size copies: each is one 8-byte load.
    let word = |s: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    let mut i = 0;
    while i + 8 <= n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last 8 bytes, overlapping those compared.
    word(a, n - 8) == word(b, n - 8)
}

/// `s.starts_with(head)`, inline (see [`same_bytes`]).
#[inline]
fn starts_with(s: &str, head: &str) -> bool {
    s.len() >= head.len() && same_bytes(&s.as_bytes()[..head.len()], head.as_bytes())
}

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
struct Piece {
    text: String,
    /// The first stray control byte (see [`Segment::control`]), and where it is in the line.
    stray: Option<(u8, usize)>,
}

/// Removes ANSI escape sequences, splits at `\r`, and puts a space for every other control
/// byte but tab. Removing such a byte would glue what is around it: `13\x007.4`, a digit of
/// `1387.4` lost to a NUL, would read as `137.4`. The space keeps the bytes apart, and the
/// piece is marked so that its figures are not read at all (a space may split a number as
/// wrongly as the byte glued it).
fn clean_pieces(text: &str) -> Vec<Piece> {
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
static GLUE: LazyLock<Regex> = LazyLock::new(|| {
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
fn may_glue(text: &str) -> bool {
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
fn needs_split(text: &str) -> bool {
    let mut found = GLUE.find_iter(text).filter(|m| glues(text, m));
    match found.next() {
        None => false,
        Some(m) if m.start() == 0 && !m.as_str().contains("]<std") => found.next().is_some(),
        Some(_) => true,
    }
}

/// Whether `b` is all ASCII, and whether it holds a control character other than tab, in one
/// pass without early exit (it compiles to SIMD compares).
fn scan_ascii_control(b: &[u8]) -> (bool, bool) {
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
fn has_control(text: &str) -> bool {
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
fn nccl_glue_possible(text: &str) -> bool {
    let Some(i) = nccl_debug::NCCL_HEADER.find(text.as_bytes()) else {
        return false;
    };
    let pre = text[..i].trim_start();
    let own = !pre.contains(' ') || pre.matches(' ').count() == 1;
    !own || nccl_debug::NCCL_HEADER
        .find(&text.as_bytes()[i + 7..])
        .is_some()
}

/// Normalises one physical line into segments (see the module documentation). Returns the
/// line's first stray control byte and its offset (see [`Segment::control`]): a line of
/// nothing else has no segment to carry it.
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

/// Parses a number as printed by C `printf` / Python: `12`, `-1.5`, `5e+06`, `1.6e+07`.
/// Returns `None` for anything else, and for NaN and infinities.
pub fn num(s: &str) -> Option<f64> {
    let s = trim(s);
    let first = s.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    if let Some(v) = simple_decimal(s.as_bytes()) {
        return Some(v);
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// `[+-]? digits [. digits]` with 1 to 15 digits in all, as `str::parse::<f64>` reads it: the
/// integer of the digits and the power of ten are exact in `f64`, so their one division is
/// the correctly rounded value (the fast path of any correct parser), without the general
/// parser's work. `None` for anything else.
fn simple_decimal(b: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.len() > 16 {
        return None;
    }
    let (mut m, mut n, mut frac, mut dot) = (0u64, 0usize, 0usize, false);
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                m = m * 10 + u64::from(c - b'0');
                n += 1;
                frac += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => return None,
        }
    }
    if n == 0 || n > 15 {
        return None;
    }
    // Below 10^15: exact as i64 and as f64 (the signed conversion is one instruction, the
    // unsigned one several); an integer needs no division, the slowest step.
    let m = m as i64 as f64;
    let v = if frac == 0 { m } else { m / POW10[frac] };
    Some(if neg { -v } else { v })
}

/// Parses an unsigned integer (`123`); also accepts an integral float such as `1e+06`.
pub fn uint(s: &str) -> Option<u64> {
    let s = trim(s);
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    let v = num(s)?;
    (v >= 0.0 && v.fract() == 0.0 && v < 1.8e19).then_some(v as u64)
}

/// Parses a signed integer.
/// `s` split after its leading ASCII digits: (`"123"`, `"s) common.cu"`) of `"123s) common.cu"`.
pub(crate) fn leading_digits(s: &str) -> (&str, &str) {
    s.split_at(s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len())
}

pub fn int(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// Options of a parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Columns of header-less `nvidia-smi --query-gpu ... --format=csv,noheader` samples. A header
    /// line, or an `nvidia-smi --query-gpu=...` command line in the log, takes precedence.
    pub nvsmi_columns: nvidia_smi::Columns,
    /// The sweep file's `[[collect.pattern]]`s: (name, regex with one capture group).
    pub patterns: Vec<(String, Regex)>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            nvsmi_columns: nvidia_smi::Columns::new(
                nvidia_smi::TEMPLATE_COLUMNS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            patterns: Vec::new(),
        }
    }
}

/// Everything found in one log file.
#[derive(Debug, Default, Serialize)]
pub struct ParsedLog {
    /// The name given to [`parse_reader`] (the path for [`parse_file`]).
    pub name: String,
    /// Physical lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    pub nccl_tests: Vec<nccl_tests::NcclRun>,
    pub nccl_debug: nccl_debug::NcclDebugInfo,
    pub deepspeed: deepspeed::DeepSpeedInfo,
    pub megatron: megatron::MegatronInfo,
    pub hf: hf_trainer::HfTrainerInfo,
    pub failures: Vec<failures::Failure>,
    pub gpu_samples: Vec<nvidia_smi::GpuSample>,
    pub topology: Vec<nvidia_smi::Topology>,
    pub payload: payload::PayloadInfo,
    pub telemetry: telemetry::TelemetryInfo,
    /// Values of the user's patterns, by pattern, in line order.
    pub user: Vec<(String, Vec<f64>)>,
    pub warnings: Vec<Warning>,
    /// Warnings beyond [`MAX_WARNINGS`], counted only.
    pub warnings_dropped: u64,
}

impl ParsedLog {
    /// The one failure class that explains the job's end, with its evidence (see
    /// [`failures::primary_failure`] for the rule).
    pub fn primary_failure(&self) -> Option<failures::PrimaryFailure> {
        failures::primary_failure(&self.failures)
    }
}

/// All the line parsers, fed in one pass.
pub struct LogParser {
    nccl_tests: nccl_tests::Parser,
    nccl_debug: nccl_debug::Parser,
    deepspeed: deepspeed::Parser,
    megatron: megatron::Parser,
    hf: hf_trainer::Parser,
    failures: failures::Parser,
    smi: nvidia_smi::CsvParser,
    topo: nvidia_smi::TopoParser,
    payload: payload::Parser,
    telemetry: telemetry::Parser,
    patterns: Vec<(String, Regex)>,
    user: Vec<(String, Vec<f64>)>,
    warnings: Warnings,
    segs: Vec<Segment>,
    lines: u64,
    lossy_lines: u64,
    stray: StrayControls,
    /// Every parser fed every line, as before the gate, and no header reused (tests compare).
    ungated: bool,
    head: HeaderCache,
}

/// Where the newlines and the `]`s of a block of lines are, as bitmaps (bit `i % 64` of word
/// `i / 64` for byte `i`), made in one pass: finding each line's end, or whether its message
/// holds a `]`, is then a few bit operations instead of a call to `memchr` per line.
#[derive(Debug, Default)]
pub struct BlockMaps {
    /// Only the first `words` words of each hold this block's maps: the vectors keep the
    /// largest block's length, so that a block is not zeroed before it is mapped.
    newline: Vec<u64>,
    bracket: Vec<u64>,
    words: usize,
}

impl BlockMaps {
    /// Maps `b` up to its first byte that is not ASCII or is a control character but tab and
    /// `\n` (found in the same pass), and returns where the whole lines before that byte end
    /// and how many they are: the clean run [`LineSource::next_chunk`] hands out.
    pub(crate) fn build(&mut self, b: &[u8]) -> (usize, u64) {
        let words = b.len().div_ceil(64);
        if self.newline.len() < words {
            self.newline.resize(words, 0);
            self.bracket.resize(words, 0);
        }
        let (nl, br) = (&mut self.newline[..words], &mut self.bracket[..words]);
        let full = b.len() / 64;
        let (mut done, mut lines, mut bad_at) = Self::fill(&b[..full * 64], nl, br);
        if bad_at.is_none() && full < words {
            let (n, r, bad) = Self::masks(&b[full * 64..]);
            nl[full] = n;
            br[full] = r;
            done += 1;
            let k = if bad != 0 { bad.trailing_zeros() } else { 64 };
            lines += u64::from((n & low_bits(k)).count_ones());
            if bad != 0 {
                bad_at = Some(full * 64 + k as usize);
            }
        }
        self.words = done;
        let stop = bad_at.unwrap_or(b.len());
        let len = self.prev_newline(stop).map_or(0, |i| i + 1);
        (len, lines)
    }

    /// Maps the 64-byte words of `b` into `nl` and `br` up to the word of the first bad byte:
    /// how many words were mapped, the lines before that byte, and where it is.
    #[cfg(target_arch = "x86_64")]
    fn fill(b: &[u8], nl: &mut [u64], br: &mut [u64]) -> (usize, u64, Option<usize>) {
        static AVX2: LazyLock<bool> = LazyLock::new(|| {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt")
        });
        if *AVX2 {
            // SAFETY: the CPU has AVX2 and POPCNT (detected above).
            return unsafe { Self::fill_avx2(b, nl, br) };
        }
        fill_with(b, nl, br, Self::masks64_sse2)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn fill(b: &[u8], nl: &mut [u64], br: &mut [u64]) -> (usize, u64, Option<usize>) {
        fill_with(b, nl, br, Self::masks)
    }

    /// [`Self::fill`] with AVX2 and POPCNT in one function, so that the masks are made inline
    /// and lines counted with one instruction per word.
    ///
    /// # Safety
    /// The CPU must have AVX2 and POPCNT.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    unsafe fn fill_avx2(b: &[u8], nl: &mut [u64], br: &mut [u64]) -> (usize, u64, Option<usize>) {
        // SAFETY: the caller's promise; `fill_with` passes chunks of 64 bytes.
        fill_with(b, nl, br, |c| unsafe { Self::masks64_avx2(c) })
    }

    /// The last newline before `stop`.
    fn prev_newline(&self, stop: usize) -> Option<usize> {
        let map = &self.newline[..self.words];
        let mut w = stop / 64;
        let mut bits = match map.get(w) {
            Some(x) => x & low_bits((stop % 64) as u32),
            None => {
                w = map.len().checked_sub(1)?;
                map[w]
            }
        };
        loop {
            if bits != 0 {
                return Some(w * 64 + 63 - bits.leading_zeros() as usize);
            }
            w = w.checked_sub(1)?;
            bits = map[w];
        }
    }

    /// The masks of 64 bytes with AVX2: 32 bytes per compare.
    ///
    /// # Safety
    /// The CPU must have AVX2, and `c` must hold 64 bytes at least.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn masks64_avx2(c: &[u8]) -> (u64, u64, u64) {
        use std::arch::x86_64::{
            __m256i, _mm256_andnot_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
            _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
        };
        let nl = _mm256_set1_epi8(b'\n' as i8);
        let br = _mm256_set1_epi8(b']' as i8);
        let tab = _mm256_set1_epi8(b'\t' as i8);
        let del = _mm256_set1_epi8(0x7f);
        let space = _mm256_set1_epi8(0x20);
        let (mut n, mut r, mut bad) = (0u64, 0u64, 0u64);
        for k in 0..2 {
            // SAFETY: bytes k*32..k*32+32 lie in `c` (the caller's promise); the load has no
            // alignment requirement.
            let v = unsafe { _mm256_loadu_si256(c.as_ptr().add(k * 32).cast::<__m256i>()) };
            let is_nl = _mm256_cmpeq_epi8(v, nl);
            // Signed: below 0x20, or 0x80 and above.
            let low = _mm256_cmpgt_epi8(space, v);
            let ok_low = _mm256_or_si256(is_nl, _mm256_cmpeq_epi8(v, tab));
            let b = _mm256_or_si256(_mm256_andnot_si256(ok_low, low), _mm256_cmpeq_epi8(v, del));
            let m = |x| u64::from(_mm256_movemask_epi8(x) as u32) << (k * 32);
            n |= m(is_nl);
            r |= m(_mm256_cmpeq_epi8(v, br));
            bad |= m(b);
        }
        (n, r, bad)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn masks64_sse2(c: &[u8]) -> (u64, u64, u64) {
        use std::arch::x86_64::{
            __m128i, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        assert!(c.len() >= 64);
        let (mut n, mut r, mut bad) = (0u64, 0u64, 0u64);
        // SAFETY: SSE2 is part of the x86-64 baseline, so the intrinsics are available; bytes
        // k*16..k*16+16 lie in `c` (64 bytes at least, asserted), and the load has no
        // alignment requirement.
        unsafe {
            let nl = _mm_set1_epi8(b'\n' as i8);
            let br = _mm_set1_epi8(b']' as i8);
            let tab = _mm_set1_epi8(b'\t' as i8);
            let del = _mm_set1_epi8(0x7f);
            let space = _mm_set1_epi8(0x20);
            for k in 0..4 {
                let v = _mm_loadu_si128(c.as_ptr().add(k * 16).cast::<__m128i>());
                let is_nl = _mm_cmpeq_epi8(v, nl);
                // Signed: below 0x20, or 0x80 and above.
                let low = _mm_cmplt_epi8(v, space);
                let ok_low = _mm_or_si128(is_nl, _mm_cmpeq_epi8(v, tab));
                let b = _mm_or_si128(_mm_andnot_si128(ok_low, low), _mm_cmpeq_epi8(v, del));
                let m = |x| u64::from(_mm_movemask_epi8(x) as u16) << (k * 16);
                n |= m(is_nl);
                r |= m(_mm_cmpeq_epi8(v, br));
                bad |= m(b);
            }
        }
        (n, r, bad)
    }

    /// The newline, `]` and bad-byte masks of up to 64 bytes.
    #[inline]
    fn masks(c: &[u8]) -> (u64, u64, u64) {
        let (mut n, mut r, mut bad) = (0u64, 0u64, 0u64);
        for (i, &x) in c.iter().enumerate() {
            n |= u64::from(x == b'\n') << i;
            r |= u64::from(x == b']') << i;
            let b = (x < 0x20 && x != b'\t' && x != b'\n') || x >= 0x7f;
            bad |= u64::from(b) << i;
        }
        (n, r, bad)
    }

    /// The first set bit of `map` in `from..end`: the search stops at `end` (a `]` is looked
    /// for within one line, and the next one may be many lines away).
    fn next_in(map: &[u64], from: usize, end: usize) -> Option<usize> {
        let mut w = from / 64;
        let mut bits = map.get(w)? & (!0u64 << (from % 64));
        loop {
            if bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                return (i < end).then_some(i);
            }
            w += 1;
            if w * 64 >= end {
                return None;
            }
            bits = *map.get(w)?;
        }
    }

    /// The newlines before `limit`, in order: one bit scan each, where [`Self::next_newline`]
    /// would find its word again for every line.
    fn newlines(&self, limit: usize) -> Newlines<'_> {
        let words = &self.newline[..self.words];
        Newlines {
            words,
            w: 0,
            bits: words.first().copied().unwrap_or(0),
            limit,
        }
    }

    #[cfg(test)]
    fn next_newline(&self, from: usize) -> Option<usize> {
        Self::next_in(&self.newline[..self.words], from, usize::MAX)
    }

    /// The first `]` in `from..end`.
    fn next_bracket(&self, from: usize, end: usize) -> Option<usize> {
        Self::next_in(&self.bracket[..self.words], from, end)
    }

    /// Whether a `]` lies in `from..end`.
    #[cfg(test)]
    fn bracket_in(&self, from: usize, end: usize) -> bool {
        self.next_bracket(from, end).is_some()
    }
}

/// See [`BlockMaps::newlines`].
struct Newlines<'m> {
    words: &'m [u64],
    /// The word being read, and its newlines not handed out yet.
    w: usize,
    bits: u64,
    limit: usize,
}

impl Iterator for Newlines<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.w += 1;
            self.bits = *self.words.get(self.w)?;
        }
        let i = self.w * 64 + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        (i < self.limit).then_some(i)
    }
}

/// The bits below bit `k` (all of them for 64).
#[inline]
fn low_bits(k: u32) -> u64 {
    1u64.checked_shl(k).map_or(!0, |b| b - 1)
}

/// The loop of [`BlockMaps::fill`], given how the masks of 64 bytes are made; inlined into
/// each caller so that `masks` is too.
#[inline(always)]
fn fill_with(
    b: &[u8],
    nl: &mut [u64],
    br: &mut [u64],
    masks: impl Fn(&[u8]) -> (u64, u64, u64),
) -> (usize, u64, Option<usize>) {
    let mut lines = 0u64;
    for (k, ((c, n_out), r_out)) in b
        .chunks_exact(64)
        .zip(nl.iter_mut())
        .zip(br.iter_mut())
        .enumerate()
    {
        let (n, r, bad) = masks(c);
        *n_out = n;
        *r_out = r;
        if bad != 0 {
            let at = bad.trailing_zeros();
            lines += u64::from((n & low_bits(at)).count_ones());
            return (k + 1, lines, Some(k * 64 + at as usize));
        }
        lines += u64::from(n.count_ones());
    }
    (b.len() / 64, lines, None)
}

/// A line with its launcher prefixes stripped (see [`LogParser::split_header`]).
struct Split<'a> {
    /// The line past its prefixes.
    rest: &'a str,
    rank: Option<u32>,
    host: Option<&'a str>,
    /// Its plain NCCL INFO header, if it has one.
    info: Option<nccl_debug::Header<'a>>,
    /// Whether `rest` holds the word `NCCL` at all: without it no NCCL header is in it, glued
    /// or not, and no NCCL parser is fed it.
    word: bool,
}

/// The start of the last line with a plain NCCL INFO header, up to its message, and what
/// [`LogParser::split_header`] found in it.
#[derive(Default)]
struct HeaderCache {
    /// Empty when there is none yet.
    bytes: String,
    rest_at: usize,
    rank: Option<u32>,
    host: Option<(usize, usize)>,
    layout: nccl_debug::Layout,
    /// Whether the NCCL INFO reader has this header's host: the lines that start with these
    /// bytes have it too, and need not be compared with the hosts it has.
    host_noted: bool,
}

impl Default for LogParser {
    fn default() -> Self {
        Self::new(&ParseOptions::default())
    }
}

impl LogParser {
    pub fn new(opts: &ParseOptions) -> Self {
        LogParser {
            nccl_tests: nccl_tests::Parser::new(),
            nccl_debug: nccl_debug::Parser::new(),
            deepspeed: deepspeed::Parser::new(),
            megatron: megatron::Parser::new(),
            hf: hf_trainer::Parser::new(),
            failures: failures::Parser::new(),
            smi: nvidia_smi::CsvParser::with_columns(&opts.nvsmi_columns),
            topo: nvidia_smi::TopoParser::new(),
            payload: payload::Parser::new(),
            telemetry: telemetry::Parser::new(),
            patterns: opts.patterns.clone(),
            user: opts
                .patterns
                .iter()
                .map(|(n, _)| (n.clone(), Vec::new()))
                .collect(),
            warnings: Warnings::new(),
            segs: Vec::new(),
            lines: 0,
            lossy_lines: 0,
            stray: StrayControls::default(),
            ungated: false,
            head: HeaderCache::default(),
        }
    }

    fn gate(&self, text: &str) -> u16 {
        if self.ungated { !0 } else { gate::bits(text) }
    }

    /// Feeds one physical line.
    pub fn feed_raw(&mut self, raw: &RawLine<'_>) {
        self.lines = raw.no;
        if raw.cut {
            self.warnings.push(
                raw.no,
                format!("line longer than {MAX_LINE_BYTES} bytes; the rest was skipped"),
            );
        }
        if raw.lossy {
            self.lossy_lines += 1;
        }
        if !raw.control {
            let mut split = self.split_header(raw.text);
            if !raw.terminated {
                split.info = None;
            }
            let bits = self.gate(split.rest);
            if self.feed_unglued(raw.no, raw.terminated, split, bits, None) {
                return;
            }
        }
        self.feed_normalized(raw.no, raw.text, raw.terminated);
    }

    /// Feeds a run of clean lines ([`Chunk::Clean`]): the gate runs once over the whole run,
    /// and each line gets the literals found in it past its launcher prefixes, as [`gate::bits`]
    /// of that part would give; newlines and `]`s are found once for the run too (see
    /// [`BlockMaps`]).
    pub fn feed_clean(&mut self, text: &str, first_no: u64, maps: &BlockMaps) {
        let bytes = text.as_bytes();
        let mut scan = gate::Scanner::new(if self.ungated { b"" } else { bytes });
        let mut next = scan.next();
        // The other side's automaton, from the first line without an NCCL header on (none
        // in most of a large NCCL_DEBUG log), and its next match.
        let mut other: Option<(gate::Scanner, Option<(usize, u16)>)> = None;
        let mut from = 0;
        let mut no = first_no;
        // (The maps may run past the text, up to a bad byte's word.)
        for end in maps.newlines(bytes.len()) {
            let line = &text[from..end];
            // A line that starts as the last plain INFO line did: its prefixes and header are
            // known without reading them.
            let c = &self.head;
            let hit = !self.ungated && !c.bytes.is_empty() && starts_with(line, &c.bytes);
            let (split, rest_at) = if hit {
                (None, from + c.rest_at)
            } else {
                let s = self.split_header(line);
                let rest_at = from + (line.len() - s.rest.len());
                (Some(s), rest_at)
            };
            let mut bits = if self.ungated { !0 } else { 0 };
            while let Some((at, b)) = next {
                if at >= end {
                    break;
                }
                if at >= rest_at {
                    bits |= b;
                }
                next = scan.next();
            }
            // A second NCCL header (`] NCCL `) in a message from `at` on: at one of its `]`s.
            let glued_at = |mut at: usize| {
                while let Some(i) = maps.next_bracket(at, end) {
                    if bytes[i + 1..end].starts_with(b" NCCL ") {
                        return true;
                    }
                    at = i + 1;
                }
                false
            };
            // Most of a large NCCL_DEBUG log: such a line with no literal of any parser but
            // the NCCL INFO reader's, nothing glued to it and no traceback or user pattern to
            // feed goes to that reader alone, as `feed_line` would send it.
            if hit
                && bits & !(gate::NCCL_INFO | gate::INFO_ALL) == 0
                && !self.failures.in_traceback()
                && self.patterns.is_empty()
                && !glued_at(from + self.head.layout.msg)
            {
                let msg = &line[self.head.layout.msg..];
                if self.head.host_noted {
                    self.nccl_debug.feed_info_message(msg, bits);
                } else {
                    let host = self.head.layout.host_in(line);
                    self.nccl_debug.feed_info_parts(host, msg, bits);
                    self.head.host_noted = true;
                }
                self.lines = no;
                from = end + 1;
                no += 1;
                continue;
            }
            let split = match split {
                Some(s) => s,
                None => self.split_header(line),
            };
            // Only a line without an NCCL header is read for the other side's parsers.
            if split.info.is_none() && !self.ungated {
                let (scan, next) = other.get_or_insert_with(|| {
                    let mut s = gate::Scanner::other(bytes, from);
                    let n = s.next();
                    (s, n)
                });
                while let Some((at, b)) = *next {
                    if at >= end {
                        break;
                    }
                    if at >= rest_at {
                        bits |= b;
                    }
                    *next = scan.next();
                }
            }
            let nccl_glue = split
                .info
                .as_ref()
                .filter(|h| h.is_plain())
                .map(|h| glued_at(from + (h.msg().as_ptr() as usize - line.as_ptr() as usize)));
            self.lines = no;
            if !self.feed_unglued(no, true, split, bits, nccl_glue) {
                self.feed_normalized(no, line, true);
            }
            from = end + 1;
            no += 1;
        }
    }

    /// A line's [`Split`]. A line that starts with the same bytes, up to its message, as the
    /// last line with a plain INFO header has the same prefixes and header (both are read from
    /// those bytes alone): a run of lines of one rank and thread is read once.
    fn split_header<'a>(&mut self, line: &'a str) -> Split<'a> {
        let c = &self.head;
        if !self.ungated && !c.bytes.is_empty() && starts_with(line, &c.bytes) {
            return Split {
                rest: &line[c.rest_at..],
                rank: c.rank,
                host: c.host.map(|(a, b)| &line[a..b]),
                info: Some(nccl_debug::Header::from_layout(line, &c.layout)),
                word: true,
            };
        }
        let (rest, rank, host) = strip_prefixes(line);
        let word = self.ungated || nccl_debug::NCCL_WORD.find(rest.as_bytes()).is_some();
        let info = if word {
            nccl_debug::info_header(rest)
        } else {
            None
        };
        if let Some(layout) = info.as_ref().and_then(|h| h.layout(line)) {
            let base = line.as_ptr() as usize;
            let c = &mut self.head;
            c.bytes.clear();
            c.bytes.push_str(&line[..layout.msg]);
            c.rest_at = line.len() - rest.len();
            c.rank = rank;
            c.host = host.map(|h| {
                let a = (h.as_ptr() as usize).wrapping_sub(base);
                (a, a + h.len())
            });
            c.layout = layout;
            c.host_noted = false;
        }
        Split {
            rest,
            rank,
            host,
            info,
            word,
        }
    }

    /// Feeds a line that holds no control character as its one segment, borrowed, unless
    /// something may be glued to it (then false: the caller normalises it). The gate's `bits`
    /// serve the glue test and the dispatch.
    fn feed_unglued<'a>(
        &mut self,
        no: u64,
        terminated: bool,
        split: Split<'a>,
        bits: u16,
        nccl_glue: Option<bool>,
    ) -> bool {
        let Split {
            rest,
            rank,
            host,
            info,
            word,
        } = split;
        // Without the word `NCCL` no NCCL header can be glued in.
        let nccl_glue = word
            && nccl_glue
                .or_else(|| info.as_ref().and_then(|h| h.another_header()))
                .unwrap_or_else(|| nccl_glue_possible(rest));
        if (bits & gate::GLUE != 0 || nccl_glue) && may_glue(rest) && needs_split(rest) {
            return false;
        }
        if info.is_none() && rest.trim().is_empty() {
            self.feed_blank(no, terminated);
            return true;
        }
        if !terminated {
            self.warn_unterminated(no);
        }
        let line = Line {
            no,
            text: rest,
            rank,
            host,
        };
        self.feed_line(&line, terminated, bits, info, Some(word));
        true
    }

    fn warn_unterminated(&mut self, no: u64) {
        self.warnings.push(
            no,
            "last line has no line terminator (file truncated?): used for failure detection only",
        );
    }

    /// The careful path: escape sequences removed, glued lines split, segments with a stray
    /// control byte kept from the parsers that read figures (see [`normalize_line`]).
    fn feed_normalized(&mut self, no: u64, text: &str, terminated: bool) {
        let mut segs = std::mem::take(&mut self.segs);
        if let Some(c) = normalize_line(text, &mut segs) {
            self.stray.note(no, c, STRAY_FULL, &mut self.warnings);
        }
        if !terminated && !segs.is_empty() {
            self.warn_unterminated(no);
        }
        for seg in &segs {
            if seg.control.is_some() {
                // As a cut last line: what is left of a number may be read as another number,
                // a failure's words are still what they were.
                let bits = self.gate(&seg.text);
                self.feed_line(&seg.as_line(no), false, bits, None, None);
                continue;
            }
            let info = if terminated {
                nccl_debug::info_header(&seg.text)
            } else {
                None
            };
            let bits = self.gate(&seg.text);
            self.feed_line(&seg.as_line(no), terminated, bits, info, None);
        }
        if segs.is_empty() {
            self.feed_blank(no, terminated);
        }
        self.segs = segs;
    }

    /// Blank lines end blocks (tables, topology matrices).
    fn feed_blank(&mut self, no: u64, terminated: bool) {
        let blank = Line {
            no,
            text: "",
            rank: None,
            host: None,
        };
        if terminated {
            self.nccl_tests.feed(&blank, &mut self.warnings);
            self.deepspeed.feed(&blank, &mut self.warnings);
            self.smi.feed(&blank, &mut self.warnings);
            self.topo.feed(&blank, &mut self.warnings);
        }
    }

    /// Feeds one normalised segment to the parsers: those whose literals it holds (`bits`, see
    /// [`gate`]), whose state wants every line, or whose own test is as cheap as the gate's.
    fn feed_line<'a>(
        &mut self,
        line: &Line<'a>,
        terminated: bool,
        bits: u16,
        info: Option<nccl_debug::Header<'a>>,
        nccl_word: Option<bool>,
    ) {
        use gate::{DEEPSPEED, FAIL, MEGATRON, NCCL_ERR, NCCL_TESTS, PAYLOAD};
        let t = line.text;
        let w = &mut self.warnings;
        // The payload's own records quote exception names (`"reason": "exception:
        // OutOfMemoryError"`): the traceback it re-raises is the evidence, not the record.
        if (bits & FAIL != 0 || self.failures.in_traceback()) && !t.contains(payload::MARKER) {
            self.failures.feed(line, w);
        }
        if !terminated {
            return;
        }
        if let Some(h) = info {
            // Most of a large NCCL_DEBUG log: only the NCCL parsers read these (nccl-tests
            // for the version line); to every other parser they are noise to skip.
            if bits & NCCL_TESTS != 0 && t.contains("NCCL version") {
                self.nccl_tests.feed(line, w);
            }
            if bits & NCCL_ERR != 0 {
                self.nccl_debug.feed_with(line, Some(h), w);
            } else {
                self.nccl_debug.feed_info(&h, bits);
            }
        } else {
            let lead = t.trim_start();
            let first = lead.as_bytes().first().copied().unwrap_or(b' ');
            if bits & NCCL_TESTS != 0 || first == b'#' || first.is_ascii_digit() {
                self.nccl_tests.feed(line, w);
            }
            let word =
                nccl_word.unwrap_or_else(|| nccl_debug::NCCL_WORD.find(t.as_bytes()).is_some());
            if bits & NCCL_ERR != 0 || word {
                self.nccl_debug.feed(line, w);
            }
            if bits & DEEPSPEED != 0 || self.deepspeed.in_block() || lead.starts_with("MA ") {
                self.deepspeed.feed_gated(line, bits & DEEPSPEED != 0, w);
            }
            if bits & MEGATRON != 0 || self.megatron.in_block() {
                self.megatron.feed(line, w);
            }
            self.hf.feed(line, w);
            if memchr::memchr(b',', t.as_bytes()).is_some() {
                self.smi.feed(line, w);
            }
            self.topo.feed(line, w);
            if bits & PAYLOAD != 0 {
                self.payload.feed(line, w);
            }
            self.telemetry.feed(line, w);
        }
        for (i, (name, re)) in self.patterns.iter().enumerate() {
            let Some(v) = re
                .captures(line.text)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str())
            else {
                continue;
            };
            match num(v) {
                Some(x) => push_capped(
                    &mut self.user[i].1,
                    x,
                    "pattern values",
                    line.no,
                    &mut self.warnings,
                ),
                None => self.warnings.push(
                    line.no,
                    format!(
                        "pattern `{name}` captured `{}`, not a number",
                        v.chars().take(40).collect::<String>()
                    ),
                ),
            }
        }
    }

    /// Ends the parse.
    pub fn finish(mut self, name: &str, bytes: u64) -> ParsedLog {
        let w = &mut self.warnings;
        if self.lossy_lines > 0 {
            w.push(
                0,
                format!(
                    "{} line(s) held bytes that are not UTF-8 (replaced by U+FFFD)",
                    self.lossy_lines
                ),
            );
        }
        self.stray.finish(STRAY_FULL, w);
        let nccl_tests = self.nccl_tests.finish(w);
        let nccl_debug = self.nccl_debug.finish(w);
        let deepspeed = self.deepspeed.finish(w);
        let megatron = self.megatron.finish(w);
        let hf = self.hf.finish(w);
        let failures = self.failures.finish(w);
        let gpu_samples = self.smi.finish(w);
        let topology = self.topo.finish(w);
        let payload = self.payload.finish(w);
        let telemetry = self.telemetry.finish(w);
        let user = std::mem::take(&mut self.user);
        let (warnings, warnings_dropped) = self.warnings.into_parts();
        ParsedLog {
            name: name.to_string(),
            lines: self.lines,
            bytes,
            nccl_tests,
            nccl_debug,
            deepspeed,
            megatron,
            hf,
            failures,
            gpu_samples,
            topology,
            payload,
            telemetry,
            user,
            warnings,
            warnings_dropped,
        }
    }
}

/// Calls `f` for every normalised [`Line`] of `reader` (terminated lines only); used by the
/// modules' standalone `parse_*` helpers.
pub fn for_each_line<R: BufRead>(
    reader: R,
    w: &mut Warnings,
    mut f: impl FnMut(&Line<'_>, &mut Warnings),
) {
    let mut src = LineSource::new(reader);
    let mut segs = Vec::new();
    let mut stray = StrayControls::default();
    while let Some(raw) = src.next_line() {
        if !raw.terminated {
            w.push(
                raw.no,
                "last line has no line terminator (file truncated?): ignored",
            );
            continue;
        }
        if let Some(c) = normalize_line(raw.text, &mut segs) {
            stray.note(raw.no, c, STRAY_STANDALONE, w);
        }
        if segs.is_empty() {
            f(
                &Line {
                    no: raw.no,
                    text: "",
                    rank: None,
                    host: None,
                },
                w,
            );
        }
        for s in &segs {
            if s.control.is_none() {
                f(&s.as_line(raw.no), w);
            }
        }
    }
    stray.finish(STRAY_STANDALONE, w);
    if let Some(e) = src.take_error() {
        w.push(0, format!("read error: {e}"));
    }
}

/// Parses a log from any reader in one pass, with default options. `name` is used in the result
/// and to recognise `.json` files.
pub fn parse_reader<R: Read>(name: &str, reader: R) -> ParsedLog {
    parse_reader_with(name, reader, &ParseOptions::default())
}

/// [`parse_reader`] with options.
pub fn parse_reader_with<R: Read>(name: &str, reader: R, opts: &ParseOptions) -> ParsedLog {
    parse_sized(name, reader, BLOCK as u64, opts)
}

/// [`parse_reader_with`] for input of about `size` bytes.
fn parse_sized<R: Read>(name: &str, reader: R, size: u64, opts: &ParseOptions) -> ParsedLog {
    if name.to_ascii_lowercase().ends_with(".json") {
        return parse_json(name, reader);
    }
    let mut parser = LogParser::new(opts);
    let mut src = LineSource::with_size_hint(reader, size);
    while let Some(chunk) = src.next_chunk() {
        match chunk {
            Chunk::Clean {
                text,
                first_no,
                maps,
            } => parser.feed_clean(text, first_no, maps),
            Chunk::Line(raw) => parser.feed_raw(&raw),
        }
    }
    let err = src.take_error();
    let bytes = src.bytes_read();
    let mut log = parser.finish(name, bytes);
    if let Some(e) = err {
        log.warnings.push(Warning {
            line: log.lines,
            message: format!("read error, the rest of the file was not read: {e}"),
        });
    }
    log
}

/// Parses a log held in memory (tests, small inputs).
pub fn parse_str(name: &str, text: &str) -> ParsedLog {
    parse_reader(name, text.as_bytes())
}

/// Opens and parses a file in one pass.
pub fn parse_file(path: impl AsRef<Path>) -> io::Result<ParsedLog> {
    parse_file_with(path, &ParseOptions::default())
}

/// [`parse_file`] with options.
pub fn parse_file_with(path: impl AsRef<Path>, opts: &ParseOptions) -> io::Result<ParsedLog> {
    let path = path.as_ref();
    let size = std::fs::metadata(path).map_or(BLOCK as u64, |m| m.len());
    parse_file_sized(path, size, opts)
}

/// [`parse_file_with`] of a file whose size the caller has just read (a walk of a tree stats
/// every file already): `size` sizes the first read, nothing more; a file that has grown or
/// shrunk since is read to its end all the same.
pub fn parse_file_sized(path: &Path, size: u64, opts: &ParseOptions) -> io::Result<ParsedLog> {
    let file = File::open(path)?;
    Ok(parse_sized(&path.display().to_string(), file, size, opts))
}

fn parse_json<R: Read>(name: &str, reader: R) -> ParsedLog {
    let mut log = ParsedLog {
        name: name.to_string(),
        ..ParsedLog::default()
    };
    let mut w = Warnings::new();
    let mut bytes = Vec::new();
    let mut limited = reader.take(MAX_JSON_BYTES + 1);
    if let Err(e) = limited.read_to_end(&mut bytes) {
        w.push(0, format!("read error: {e}"));
    }
    if bytes.len() as u64 > MAX_JSON_BYTES {
        w.push(
            0,
            format!("JSON file larger than {MAX_JSON_BYTES} bytes: not read"),
        );
        bytes.clear();
    }
    log.bytes = bytes.len() as u64;
    log.lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("\"results\"") || text.contains("\"average_bus_bandwidth\"") {
        if let Some(run) = nccl_tests::parse_json_str(&text, &mut w) {
            log.nccl_tests.push(run);
        }
    } else if text.contains("train_micro_batch_size_per_gpu")
        || text.contains("zero_optimization")
        || text.contains("train_batch_size")
    {
        match deepspeed::parse_config_json(&text) {
            Ok(cfg) => log.deepspeed.configs.push(cfg),
            Err(e) => w.push(0, format!("DeepSpeed config JSON: {e}")),
        }
    } else if !text.trim().is_empty() {
        w.push(0, "JSON file of unknown kind: not parsed");
    }
    let (warnings, dropped) = w.into_parts();
    log.warnings = warnings;
    log.warnings_dropped = dropped;
    log
}

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

/// Test helpers: the device fixtures copied into `tests/fixtures/`.
#[cfg(test)]
pub(crate) mod testdata {
    /// A file under `tests/fixtures/`.
    pub fn fixture(path: &str) -> String {
        let p = format!("{}/../../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }
    pub fn device(name: &str) -> String {
        fixture(&format!("device-h100-2026-11-24/{name}"))
    }
    /// The first line of a device fixture that contains `needle`.
    pub fn device_line(name: &str, needle: &str) -> String {
        device(name)
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in {name}"))
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::testdata::device_line;
    use super::*;

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
}
