//! The SIMD passes over a block of bytes: [`BlockMaps`] (newlines, `]`s and where the clean
//! run ends) and [`find_seps`] (a CSV row's separators).

use std::sync::LazyLock;

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
    pub(crate) fn fill(b: &[u8], nl: &mut [u64], br: &mut [u64]) -> (usize, u64, Option<usize>) {
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
    pub(crate) fn fill(b: &[u8], nl: &mut [u64], br: &mut [u64]) -> (usize, u64, Option<usize>) {
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
    pub(crate) unsafe fn masks64_avx2(c: &[u8]) -> (u64, u64, u64) {
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
    pub(crate) fn masks64_sse2(c: &[u8]) -> (u64, u64, u64) {
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
    pub(crate) fn masks(c: &[u8]) -> (u64, u64, u64) {
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
    pub(crate) fn newlines(&self, limit: usize) -> Newlines<'_> {
        let words = &self.newline[..self.words];
        Newlines {
            words,
            w: 0,
            bits: words.first().copied().unwrap_or(0),
            limit,
        }
    }

    #[cfg(test)]
    pub(crate) fn next_newline(&self, from: usize) -> Option<usize> {
        Self::next_in(&self.newline[..self.words], from, usize::MAX)
    }

    /// The first `]` in `from..end`.
    pub(crate) fn next_bracket(&self, from: usize, end: usize) -> Option<usize> {
        Self::next_in(&self.bracket[..self.words], from, end)
    }

    /// Whether a `]` lies in `from..end`.
    #[cfg(test)]
    pub(crate) fn bracket_in(&self, from: usize, end: usize) -> bool {
        self.next_bracket(from, end).is_some()
    }
}

/// See [`BlockMaps::newlines`].
pub(crate) struct Newlines<'m> {
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
pub(crate) fn fill_with(
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

/// The length of the longest run of whole lines at the start of `b` that are ASCII without a
/// control character but tab and `\n`, and how many lines that is (see [`BlockMaps::build`]).
#[cfg(test)]
pub(crate) fn clean_prefix(b: &[u8]) -> (usize, u64) {
    BlockMaps::default().build(b)
}
