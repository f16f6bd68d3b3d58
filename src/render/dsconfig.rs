//! DeepSpeed configs: the sweep's base `[deepspeed]` table, the stage's overrides, then the
//! point (batch sizes, ZeRO stage, `ds.*` parameters), so batch sizes are always consistent.

use serde_json::{Map, Value as Json, json};

use crate::expand::{Point, toml_to_json};
use crate::spec::LoadedSweep;

/// Whether a point gets a `ds_config.json`: training points (those with a micro-batch).
pub(crate) fn applies(p: &Point) -> bool {
    p.batch.micro_batch.is_some()
}

fn merge(into: &mut Json, from: &Json) {
    match (into, from) {
        (Json::Object(a), Json::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Json::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn set_path(cfg: &mut Json, dotted: &str, v: Json) {
    let mut cur = cfg;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Json::Object(Map::new());
        }
        let Json::Object(m) = cur else { return };
        if i + 1 == parts.len() {
            m.insert(part.to_string(), v);
            return;
        }
        cur = m
            .entry(part.to_string())
            .or_insert_with(|| Json::Object(Map::new()));
    }
}

pub(crate) fn build(sweep: &LoadedSweep, p: &Point) -> Json {
    let mut cfg = json!({});
    if let Some(base) = &sweep.spec.deepspeed {
        merge(&mut cfg, &toml_to_json(&toml::Value::Table(base.clone())));
    }
    if let Some(stage) = sweep.spec.stages.iter().find(|s| s.name == p.stage)
        && let Some(over) = &stage.deepspeed
    {
        merge(&mut cfg, &toml_to_json(&toml::Value::Table(over.clone())));
    }
    if let Some(z) = p.params.get("zero_stage") {
        set_path(&mut cfg, "zero_optimization.stage", z.clone());
    }
    for (k, v) in &p.params {
        if let Some(path) = k.strip_prefix("ds.") {
            set_path(&mut cfg, path, v.clone());
        }
    }
    if cfg.get("bf16").is_none() && cfg.get("fp16").is_none() {
        cfg["bf16"] = json!({ "enabled": true });
    }
    // The point's batch algebra is the single source of truth for the three batch keys.
    if let Some(m) = p.batch.micro_batch {
        cfg["train_micro_batch_size_per_gpu"] = json!(m);
    }
    if let Some(a) = p.batch.grad_accum {
        cfg["gradient_accumulation_steps"] = json!(a);
    }
    if let Some(g) = p.batch.global_batch {
        cfg["train_batch_size"] = json!(g);
    }
    cfg
}
