//! What a parse could not use: [`Warning`]s, collected in bounded memory.

use serde::Serialize;

/// Most warnings kept per parse; further ones are only counted.
pub const MAX_WARNINGS: usize = 1000;
/// Most records kept in any one list (rows, iterations, samples…); further ones are dropped
/// with one warning.
pub const MAX_RECORDS: usize = 1_000_000;

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
