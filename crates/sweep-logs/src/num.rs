//! Numbers as C `printf` and Python print them.

use crate::line::text::trim;

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
pub(crate) fn simple_decimal(b: &[u8]) -> Option<f64> {
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

/// `s` split after its leading ASCII digits: (`"123"`, `"s) common.cu"`) of `"123s) common.cu"`.
pub(crate) fn leading_digits(s: &str) -> (&str, &str) {
    s.split_at(s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len())
}

/// Parses a signed integer.
pub fn int(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}
