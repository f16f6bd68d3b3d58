//! From bytes to the lines the parsers are fed: reading ([`source`]), the SIMD maps of a block
//! ([`simd`]), cleaning and splitting ([`normalize`]), and the small string helpers of the
//! per-line path ([`text`]).

pub(crate) mod normalize;
pub(crate) mod simd;
pub(crate) mod source;
pub(crate) mod text;
