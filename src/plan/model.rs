//! Transformer model shapes: the built-in Llama-2 presets, user-defined models, and the
//! arithmetic the rest of the tool needs (parameter count, training FLOPs per token).

use serde::{Deserialize, Serialize};

/// The shape of a decoder-only transformer (Llama family: SwiGLU MLP, RMSNorm, untied LM head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    #[serde(default)]
    pub name: String,
    pub layers: u32,
    pub hidden: u32,
    pub heads: u32,
    /// Key/value heads (grouped-query attention); equals `heads` for multi-head attention.
    #[serde(default)]
    pub kv_heads: Option<u32>,
    /// Width of the MLP's intermediate projection.
    pub ffn: u32,
    pub vocab: u32,
    /// Default training sequence length for this model (a point's `seq_len` overrides it).
    pub seq_len: u32,
    #[serde(default)]
    pub tied_embeddings: bool,
}

/// Built-in presets with the published Llama-2 shapes (Touvron et al. 2023, and the models'
/// `config.json` on release: 7B/13B use multi-head attention, 70B grouped-query with 8 KV heads).
pub(crate) fn presets() -> Vec<ModelShape> {
    let mk = |name: &str, layers, hidden, heads, kv, ffn| ModelShape {
        name: name.to_string(),
        layers,
        hidden,
        heads,
        kv_heads: Some(kv),
        ffn,
        vocab: 32000,
        seq_len: 4096,
        tied_embeddings: false,
    };
    vec![
        mk("llama2-7b", 32, 4096, 32, 32, 11008),
        mk("llama2-13b", 40, 5120, 40, 40, 13824),
        mk("llama2-70b", 80, 8192, 64, 8, 28672),
    ]
}

/// Normalises spellings users write for the same preset: `Llama-2-7B`, `llama2_7b`, `llama-2-7b`.
pub(crate) fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    lower.replace("llama-2", "llama2")
}

pub(crate) fn preset(name: &str) -> Option<ModelShape> {
    let want = canonical_name(name);
    presets().into_iter().find(|m| m.name == want)
}

impl ModelShape {
    pub(crate) fn kv_heads(&self) -> u32 {
        self.kv_heads.unwrap_or(self.heads)
    }

    fn head_dim(&self) -> u32 {
        self.hidden / self.heads.max(1)
    }

    /// Parameters per transformer layer: attention projections (q, o full width; k, v sized by
    /// the KV heads), the three SwiGLU matrices, two RMSNorm weight vectors.
    fn params_per_layer(&self) -> u64 {
        let h = self.hidden as u64;
        let kv = self.kv_heads() as u64 * self.head_dim() as u64;
        let attn = 2 * h * h + 2 * h * kv;
        let mlp = 3 * h * self.ffn as u64;
        attn + mlp + 2 * h
    }

    /// Total parameters including embeddings, the final norm and (unless tied) the LM head.
    pub(crate) fn params(&self) -> u64 {
        let h = self.hidden as u64;
        let emb = self.vocab as u64 * h;
        let head = if self.tied_embeddings { 0 } else { emb };
        self.layers as u64 * self.params_per_layer() + emb + head + h
    }

    /// Training FLOPs per token: 6 x parameters for the matrix multiplies of forward and
    /// backward, plus 6 x 2 x layers x hidden x seq for attention scores and values
    /// (Kaplan et al. 2020; Narayanan et al. 2021). Embedding lookups are not matmuls, so the
    /// input embedding is excluded while the LM head is kept.
    pub(crate) fn train_flops_per_token(&self, seq_len: u32) -> f64 {
        let emb = self.vocab as f64 * self.hidden as f64;
        let dense = 6.0 * (self.params() as f64 - if self.tied_embeddings { 0.0 } else { emb });
        let attn = 12.0 * self.layers as f64 * self.hidden as f64 * seq_len as f64;
        dense + attn
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.layers == 0
            || self.hidden == 0
            || self.heads == 0
            || self.ffn == 0
            || self.vocab == 0
        {
            return Err("layers, hidden, heads, ffn and vocab must all be positive".into());
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "hidden ({}) is not divisible by heads ({})",
                self.hidden, self.heads
            ));
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.heads.is_multiple_of(kv) {
            return Err(format!(
                "heads ({}) is not a multiple of kv_heads ({kv})",
                self.heads
            ));
        }
        if self.seq_len == 0 {
            return Err("seq_len must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama2_parameter_counts_match_published_sizes() {
        // Published: 6.74e9, 13.0e9 (13.02e9), 69.0e9 (68.98e9).
        let p7 = preset("Llama-2-7B").unwrap().params() as f64;
        let p13 = preset("llama2_13b").unwrap().params() as f64;
        let p70 = preset("llama-2-70b").unwrap().params() as f64;
        assert!((p7 / 1e9 - 6.74).abs() < 0.01, "{p7}");
        assert!((p13 / 1e9 - 13.02).abs() < 0.02, "{p13}");
        assert!((p70 / 1e9 - 68.98).abs() < 0.05, "{p70}");
    }

    #[test]
    fn flops_per_token_is_about_six_times_params_plus_attention() {
        let m = preset("llama2-7b").unwrap();
        let f = m.train_flops_per_token(4096);
        let attn = 12.0 * 32.0 * 4096.0 * 4096.0;
        let six_n = 6.0 * (m.params() as f64 - 32000.0 * 4096.0);
        assert_eq!(f, six_n + attn);
        // ~4.6e10 FLOPs per token: the seed's "80 samples/s on 16 GPUs at 100 %" follows.
        let samples_per_s_at_peak = 16.0 * 989e12 / (f * 4096.0);
        assert!(
            (70.0..90.0).contains(&samples_per_s_at_peak),
            "{samples_per_s_at_peak}"
        );
    }

    #[test]
    fn unknown_preset_is_none_and_bad_shapes_are_rejected() {
        assert!(preset("llama3-8b").is_none());
        let mut m = preset("llama2-70b").unwrap();
        m.kv_heads = Some(7);
        assert!(m.validate().is_err());
    }
}
