//! The one shape every log family's parser has: fed normalised [`Line`]s one at a time, then
//! finished into what it found. [`parse_lines`] is the one standalone reader over any of them,
//! where each family module used to carry its own copy.

use std::io::BufRead;

use crate::dispatch::for_each_line;
use crate::line::normalize::Line;
use crate::warnings::{Warning, Warnings};

/// A streaming parser of one log family. [`LogParser`](crate::LogParser) feeds every family
/// in one pass; [`parse_lines`] runs one alone.
pub trait LineParser {
    /// What the parser found in the whole input.
    type Output;
    /// Takes one normalised line (see [`normalize_line`](crate::normalize_line)); anything it
    /// cannot use, or had to guess about, goes to `w`.
    fn feed(&mut self, line: &Line<'_>, w: &mut Warnings);
    /// Ends the input: closes what is still open (a table, a block) and hands out the result.
    fn finish(self, w: &mut Warnings) -> Self::Output;
}

/// Runs `parser` alone over every terminated line of `reader` (see [`for_each_line`]), and
/// returns what it found with the warnings kept. The parser is passed in, not made here,
/// because some need settings first (`nvidia_smi::CsvParser` its default columns).
pub fn parse_lines<P: LineParser, R: BufRead>(
    mut parser: P,
    reader: R,
) -> (P::Output, Vec<Warning>) {
    let mut w = Warnings::new();
    for_each_line(reader, &mut w, |l, w| parser.feed(l, w));
    let out = parser.finish(&mut w);
    (out, w.into_parts().0)
}

/// Implements [`LineParser`] by the parser's own `feed` and `finish`, which stay inherent
/// methods so that callers that name them (benches, `LogParser`) need not import the trait.
macro_rules! line_parser {
    ($parser:ty => $output:ty) => {
        impl $crate::LineParser for $parser {
            type Output = $output;
            #[inline]
            fn feed(&mut self, line: &$crate::Line<'_>, w: &mut $crate::Warnings) {
                <$parser>::feed(self, line, w)
            }
            #[inline]
            fn finish(self, w: &mut $crate::Warnings) -> $output {
                <$parser>::finish(self, w)
            }
        }
    };
}
pub(crate) use line_parser;
