//! One pass of every parser over a log ([`LogParser`]), and the entry points that open,
//! read and dispatch a file ([`parse_file`], [`parse_reader`], JSON by name).

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

use regex::Regex;
use serde::Serialize;

use crate::line::normalize::{
    Line, STRAY_FULL, STRAY_STANDALONE, Segment, StrayControls, may_glue, nccl_glue_possible,
    needs_split, normalize_line, strip_prefixes,
};
use crate::line::simd::BlockMaps;
use crate::line::source::{BLOCK, Chunk, LineSource, MAX_LINE_BYTES, RawLine};
use crate::line::text::starts_with;
use crate::num::num;
use crate::warnings::{Warning, Warnings, push_capped};
use crate::{deepspeed, failures, gate, hf_trainer, megatron, nccl_debug, nccl_tests};
use crate::{nvidia_smi, payload, telemetry};

/// Largest JSON document read (nccl-tests `-J` output, DeepSpeed config).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

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
    /// Warnings beyond [`MAX_WARNINGS`](crate::MAX_WARNINGS), counted only.
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
    pub(crate) ungated: bool,
    head: HeaderCache,
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

/// Whether a JSON text is nccl-tests' `-J` report (what [`parse_sized`] reads as one); any other
/// JSON (a DeepSpeed config, a point) is configuration, not a log.
pub fn is_nccl_tests_json(text: &str) -> bool {
    text.contains("\"results\"") || text.contains("\"average_bus_bandwidth\"")
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
    if is_nccl_tests_json(&text) {
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
