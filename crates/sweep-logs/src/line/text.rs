//! Small string helpers of the per-line path, written to stay inline and avoid a scan or a
//! call where the common line needs none.

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
pub(crate) fn starts_with(s: &str, head: &str) -> bool {
    s.len() >= head.len() && same_bytes(&s.as_bytes()[..head.len()], head.as_bytes())
}

/// `s.split_whitespace()`, faster on ASCII text (a log's lines, nearly always): the bytes
/// `char::is_whitespace` takes for whitespace in ASCII are `\t` to `\r` and the space; a line
/// with other characters is split by `split_whitespace` itself.
pub(crate) fn words(s: &str) -> Words<'_> {
    if s.is_ascii() {
        Words::Ascii(s)
    } else {
        Words::Other(s.split_whitespace())
    }
}

pub(crate) enum Words<'a> {
    Ascii(&'a str),
    Other(std::str::SplitWhitespace<'a>),
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Words::Ascii(rest) => {
                let ws = |c: &u8| matches!(c, b'\t'..=b'\r' | b' ');
                let b = rest.as_bytes();
                let start = b.iter().position(|c| !ws(c))?;
                let len = b[start..].iter().position(ws).unwrap_or(b.len() - start);
                // ASCII: every byte index is a character boundary.
                let word = &rest[start..start + len];
                *rest = &rest[start + len..];
                Some(word)
            }
            Words::Other(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod words_tests {
    #[test]
    fn words_are_split_whitespace() {
        for s in [
            "",
            "   ",
            "a",
            "  1048576   262144  float \t sum\x0b-1\x0c5.29\r\n",
            "x\u{a0}y z\u{3000}w",
            "\x1c a\x1fb ",
        ] {
            let got: Vec<&str> = super::words(s).collect();
            let want: Vec<&str> = s.split_whitespace().collect();
            assert_eq!(got, want, "{s:?}");
        }
    }
}
