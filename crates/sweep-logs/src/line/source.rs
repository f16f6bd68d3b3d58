//! Reading lines: a [`LineSource`] hands out physical lines ([`RawLine`]), or runs of clean
//! lines ([`Chunk::Clean`]) with their [`BlockMaps`], from any reader in bounded memory.

use std::io::{self, Read};

use super::normalize::{has_control, scan_ascii_control};
use super::simd::BlockMaps;

/// Longest line kept, in bytes; the rest of a longer line is skipped (with a warning).
pub const MAX_LINE_BYTES: usize = 1 << 20;

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
    /// True if the line holds a control character other than tab (see [`normalize_line`](crate::normalize_line)).
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
pub(crate) const BLOCK: usize = 256 * 1024;

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
