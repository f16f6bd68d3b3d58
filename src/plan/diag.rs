//! Errors that point at the user's input: every problem in a sweep file or a cluster profile is
//! reported as `file:line:column: key: message`, with the offending line quoted, like a compiler.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path inside a TOML document: a table key or an array index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_string())
    }
}
impl From<String> for Seg {
    fn from(s: String) -> Self {
        Seg::Key(s)
    }
}
impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// Builds a key path: `path!["stage", 2, "matrix", "nodes"]`.
#[macro_export]
macro_rules! path {
    ($($seg:expr),* $(,)?) => { [$($crate::diag::Seg::from($seg)),*] };
}

pub(crate) fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// An error located in a user's file.
#[derive(Debug, Clone)]
pub struct InputError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
    pub source_line: Option<String>,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No position known (a file that cannot be read): the file alone, never `file:0:0`.
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(src) = self.source_line.as_ref().filter(|_| self.line > 0) {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:>col$}",
                "",
                self.line,
                src,
                "",
                "^",
                col = self.column.max(1)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// A parsed TOML source with spans, used to turn key paths and byte offsets into line numbers.
pub(crate) struct Source<'a> {
    pub file: PathBuf,
    pub text: &'a str,
    doc: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(file: &Path, text: &'a str) -> Self {
        let doc = DeTable::parse(text).ok();
        Source {
            file: file.to_path_buf(),
            text,
            doc,
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        (line, col)
    }

    fn error_at(&self, span: Option<Range<usize>>, key: String, message: String) -> InputError {
        let (line, column) = match &span {
            Some(r) => self.line_col(r.start),
            None => (1, 1),
        };
        let source_line = self.text.lines().nth(line - 1).map(|s| s.to_string());
        InputError {
            file: self.file.clone(),
            line,
            column,
            key,
            message,
            source_line,
        }
    }

    /// The span of the value at `path`, or of the deepest ancestor that exists.
    fn span_of(&self, path: &[Seg]) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut table: Option<&DeTable> = Some(doc.get_ref());
        let mut array: Option<&[Spanned<DeValue>]> = None;
        for seg in path {
            let next: Option<&Spanned<DeValue>> = match (seg, table, array) {
                (Seg::Key(k), Some(t), _) => {
                    // Prefer the key's own span for a line (the value may be a multi-line table).
                    let found = t
                        .iter()
                        .find(|(key, _)| key.get_ref().as_ref() == k.as_str());
                    if let Some((key, _)) = found {
                        best = Some(key.span());
                    }
                    found.map(|(_, v)| v)
                }
                (Seg::Index(i), _, Some(a)) => a.get(*i),
                _ => None,
            };
            let Some(v) = next else { break };
            if matches!(seg, Seg::Index(_)) || !v.get_ref().is_table() {
                best = Some(v.span());
            }
            table = v.get_ref().as_table();
            array = v.get_ref().as_array().map(|a| &a[..]);
        }
        best
    }

    /// An error about the value at a key path (semantic checks after deserialisation).
    pub(crate) fn error(&self, path: &[Seg], message: impl Into<String>) -> InputError {
        self.error_at(self.span_of(path), dotted(path), message.into())
    }

    /// The dotted key whose key or value contains `offset`: names the key of a serde error.
    /// Searched depth-first, since a `[table]` header's span need not cover its body.
    fn key_at(&self, offset: usize) -> String {
        fn search(v: &DeValue, offset: usize, path: &mut Vec<Seg>) -> bool {
            if let Some(t) = v.as_table() {
                for (k, val) in t.iter() {
                    path.push(Seg::Key(k.get_ref().to_string()));
                    if search(val.get_ref(), offset, path) {
                        return true;
                    }
                    if k.span().contains(&offset)
                        || (val.span().contains(&offset) && !val.get_ref().is_table())
                    {
                        return true;
                    }
                    path.pop();
                }
            } else if let Some(a) = v.as_array() {
                for (i, val) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    if search(val.get_ref(), offset, path) || val.span().contains(&offset) {
                        return true;
                    }
                    path.pop();
                }
            }
            false
        }
        let Some(doc) = self.doc.as_ref() else {
            return String::new();
        };
        let mut path = Vec::new();
        let root = DeValue::Table(doc.get_ref().clone());
        search(&root, offset, &mut path);
        dotted(&path)
    }

    /// Converts a TOML syntax or serde error into an located error naming the key.
    pub(crate) fn toml_error(&self, err: &toml::de::Error) -> InputError {
        let span = err.span();
        let mut message = err.message().trim().to_string();
        let mut key = span
            .as_ref()
            .map(|r| self.key_at(r.start))
            .unwrap_or_default();
        // serde reports an unknown field at the enclosing table: name the field itself.
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            let field = field.to_string();
            let base = key.clone();
            let last = base.rsplit('.').next().unwrap_or("");
            key = if base.is_empty() {
                field.clone()
            } else if last == field {
                base
            } else {
                format!("{base}.{field}")
            };
            if let Some(pos) = find_key_line(self.text, &field, span.as_ref()) {
                let mut e = self.error_at(Some(pos..pos + 1), key, message);
                if let Some(s) = did_you_mean(&field, err.message()) {
                    e.message.push_str(&format!(" (did you mean `{s}`?)"));
                }
                return e;
            }
            if let Some(s) = did_you_mean(&field, err.message()) {
                message.push_str(&format!(" (did you mean `{s}`?)"));
            }
        }
        self.error_at(span, key, message)
    }
}

/// Offset of `field = ...` inside the span serde blamed (the enclosing table).
fn find_key_line(text: &str, field: &str, span: Option<&Range<usize>>) -> Option<usize> {
    let (start, end) = span
        .map(|r| (r.start, r.end.min(text.len())))
        .unwrap_or((0, text.len()));
    let region = text.get(start..end)?;
    let mut offset = start;
    for line in region.split_inclusive('\n') {
        let t = line.trim_start();
        let rest = t.strip_prefix(field).or_else(|| {
            t.strip_prefix('"')
                .and_then(|r| r.strip_prefix(field))
                .and_then(|r| r.strip_prefix('"'))
        });
        if let Some(rest) = rest {
            let rest = rest.trim_start();
            if rest.starts_with('=') || rest.starts_with('.') {
                return Some(offset + (line.len() - t.len()));
            }
        }
        offset += line.len();
    }
    None
}

/// Suggests the closest expected field from serde's "expected one of `a`, `b`" list.
fn did_you_mean(field: &str, message: &str) -> Option<String> {
    let (_, list) = message.split_once("expected ")?;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(|cand| (edit_distance(field, cand), cand))
        .filter(|(d, cand)| *d <= 2.max(cand.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_of_nested_array_table_key() {
        let text = "name = \"x\"\n\n[[stage]]\nname = \"a\"\n[stage.matrix]\nnodes = [1, 2]\n";
        let src = Source::new(Path::new("s.toml"), text);
        let e = src.error(&path!["stage", 0, "matrix", "nodes"], "bad");
        assert_eq!((e.line, e.key.as_str()), (6, "stage[0].matrix.nodes"));
    }

    #[test]
    fn unknown_field_names_its_own_line_and_suggests() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            partition: Option<String>,
            account: Option<String>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Doc {
            name: String,
            slurm: T,
        }
        let text = "name = \"x\"\n[slurm]\naccount = \"a\"\npartiton = \"gpu\"\n";
        let err = toml::from_str::<Doc>(text).unwrap_err();
        let e = Source::new(Path::new("s.toml"), text).toml_error(&err);
        assert_eq!(e.line, 4, "{e}");
        assert_eq!(e.key, "slurm.partiton");
        assert!(e.message.contains("did you mean `partition`"), "{e}");
    }
}
