//! Log parsers for `sweep collect`: nccl-tests tables, NCCL debug output, DeepSpeed, Megatron and
//! HF Trainer training logs, failure signatures (CUDA OOM, Slurm, NCCL, Python tracebacks, ECC),
//! `nvidia-smi` CSV samples and `nvidia-smi topo -m` matrices.
//!
//! # Reading model
//!
//! Everything is **streaming**: a [`LineSource`] reads a [`BufRead`](std::io::BufRead) as bytes, one line at a
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
//! DeepSpeed config. Each module also has its own `Parser` (fed [`Line`]s: a [`LineParser`]) for
//! standalone use, run alone by [`parse_lines`].

pub mod deepspeed;
mod dispatch;
pub mod failures;
mod gate;
mod gate_bits;
pub mod hf_trainer;
mod line;
mod line_parser;
pub mod megatron;
pub mod nccl_debug;
pub mod nccl_tests;
mod num;
pub mod nvidia_smi;
pub mod payload;
pub mod telemetry;
mod warnings;

// The crate's face is flat, as it was when all of this was one module: `parsers::num`,
// `parsers::Warnings`, `parsers::parse_reader` keep their paths. The crate-visible helpers are
// here too, for the family modules that name them through `super::`.
pub use dispatch::{
    LogParser, MAX_JSON_BYTES, ParseOptions, ParsedLog, for_each_line, is_nccl_tests_json,
    parse_file, parse_file_sized, parse_file_with, parse_reader, parse_reader_with, parse_str,
};
#[cfg(test)]
use line::normalize::GLUE;
pub(crate) use line::normalize::literal_set;
pub use line::normalize::{Line, Segment, normalize_line, strip_prefixes};
pub use line::simd::BlockMaps;
pub(crate) use line::simd::find_seps;
pub use line::source::{Chunk, LineSource, MAX_LINE_BYTES, RawLine};
pub(crate) use line::text::{same_bytes, trim};
pub use line_parser::{LineParser, parse_lines};
pub(crate) use num::leading_digits;
pub use num::{int, num, uint};
pub(crate) use warnings::push_capped;
pub use warnings::{MAX_RECORDS, MAX_WARNINGS, Warning, Warnings};

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
mod tests;
