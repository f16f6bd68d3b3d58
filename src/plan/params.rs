//! Careless input: a parameter that no template of its stage reads and that sweep itself does
//! not use (`micro_bach = 4`) is silently a default; the plan check says so, with the file, the
//! line, the key and the closest parameter that is read.

use std::collections::BTreeSet;

use crate::check::{Finding, Level};
use crate::diag::Seg;
use crate::render::TemplateSource;
use crate::spec::LoadedSweep;

/// Parameters sweep itself reads beyond the ones the spec knows (`spec::KNOWN_PARAMS`: batch
/// algebra, the model, the memory estimate, DeepSpeed).
const ALSO_READ: &[&str] = &["attention"];

/// `{% include "X" %}` in a template (compiled once: every stage's templates are read).
static INCLUDE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r#"\{%-?\s*include\s+"([^"]+)""#).expect("static regex")
});

/// The payload's `params.get("X")` and `(point.get("params") or {}).get("X")`.
static PARAMS_GET: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r#"(?:params|\.get\("params"\)\s*or\s*\{\}\))\.get\("([A-Za-z0-9_.]+)""#)
        .expect("static regex")
});
/// The `point.X` names a template reads, its includes' and, when it runs a payload shipped with
/// sweep, the payload's `params.get("X")`. `None`: not known (a template not found, one that does
/// not parse, or one that reads `point` as a whole).
pub(crate) fn template_reads(src: &TemplateSource, name: &str) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    reads_into(src, name, &mut out, &mut seen)?;
    Some(out)
}

fn reads_into(
    src: &TemplateSource,
    name: &str,
    out: &mut BTreeSet<String>,
    seen: &mut BTreeSet<String>,
) -> Option<()> {
    if !seen.insert(name.to_string()) {
        return Some(());
    }
    let (text, _) = src.lookup(name)?;
    let env = minijinja::Environment::new();
    let t = env.template_from_str(&text).ok()?;
    for v in t.undeclared_variables(true) {
        if v == "point" {
            return None;
        }
        if let Some(rest) = v.strip_prefix("point.") {
            out.insert(rest.split('.').next().unwrap_or(rest).to_string());
        }
    }
    for c in INCLUDE.captures_iter(&text) {
        reads_into(src, &c[1], out, seen)?;
    }
    if text.contains("payloads/") {
        // `params.get("X")` and `(point.get("params") or {}).get("X")`.
        for (_, payload) in crate::campaign::PAYLOADS {
            for c in PARAMS_GET.captures_iter(payload) {
                out.insert(c[1].to_string());
            }
        }
    }
    Some(())
}

/// Every name any visible template reads: what `--set` may name besides the sweep's own keys.
pub(crate) fn all_template_reads(src: &TemplateSource) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, _) in src.list() {
        if let Some(r) = template_reads(src, &name) {
            out.extend(r);
        }
    }
    out
}

/// Whether sweep itself reads `key` (whatever the templates do): its own parameters, `ds.*`
/// (the job's ds_config) and UPPER_CASE names (exported into the job's environment).
pub(crate) fn sweep_reads(key: &str) -> bool {
    crate::spec::KNOWN_PARAMS.contains(&key)
        || ALSO_READ.contains(&key)
        || key.starts_with("ds.")
        || crate::spec::COMPUTED_PARAMS.contains(&key)
        || (crate::profile::is_env_name(key) && key.chars().all(|c| !c.is_ascii_lowercase()))
}

/// The closest of `known` to `key`, when close enough to be a typo.
pub(crate) fn closest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .filter(|k| *k != key)
        .map(|k| (crate::diag::edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Warnings for the parameters of `defaults` and of each stage's params, matrix and zips that no
/// template of the stage reads (for `defaults`: of any stage), that sweep does not use and that
/// no derived value or exclusion of the stage names.
pub(crate) fn unread(sweep: &LoadedSweep, templates: &TemplateSource) -> Vec<Finding> {
    let src = sweep.source();
    let s = &sweep.spec;
    let stage_reads: Vec<Option<BTreeSet<String>>> = s
        .stages
        .iter()
        .map(|st| template_reads(templates, &st.template))
        .collect();
    let mut findings = Vec::new();
    let mut warn = |path: Vec<Seg>, key: &str, whose: String, known: &BTreeSet<String>| {
        let e = src.error(&path, "");
        let hint = closest(
            key,
            known
                .iter()
                .map(|s| s.as_str())
                .chain(crate::spec::KNOWN_PARAMS.iter().copied())
                .chain(ALSO_READ.iter().copied()),
        )
        .map(|c| format!(": did you mean `{c}`?"))
        .unwrap_or_else(|| ": it has no effect".into());
        findings.push(Finding {
            level: Level::Warning,
            subject: format!("{}:{}", e.file.display(), e.line),
            message: format!(
                "key `{}`: `{key}` is read by no template of {whose} and not used by sweep{hint}",
                e.key
            ),
            fix: None,
        });
    };
    let used_by_exprs = |st: &crate::spec::StageSpec, key: &str| {
        let re = regex::Regex::new(&format!(r"\b{}\b", regex::escape(key))).expect("regex");
        st.derive.values().any(|e| re.is_match(e))
            || st.derive.contains_key(key)
            || st.exclude.iter().any(|x| match x {
                toml::Value::String(e) => re.is_match(e),
                toml::Value::Table(t) => t.contains_key(key),
                _ => false,
            })
    };
    // Defaults: read by some stage's template (all of them known), or used by sweep.
    if stage_reads.iter().all(|r| r.is_some()) {
        let any: BTreeSet<String> = stage_reads.iter().flatten().flatten().cloned().collect();
        for k in s.defaults.keys() {
            if !any.contains(k)
                && !sweep_reads(k)
                && !s.stages.iter().any(|st| used_by_exprs(st, k))
            {
                warn(
                    crate::path!["defaults", k.as_str()].to_vec(),
                    k,
                    "any stage".into(),
                    &any,
                );
            }
        }
    }
    for (i, (st, reads)) in s.stages.iter().zip(&stage_reads).enumerate() {
        let Some(reads) = reads else { continue };
        let mut keys: Vec<(Vec<Seg>, &String)> = Vec::new();
        for k in st.params.keys() {
            keys.push((crate::path!["stage", i, "params", k.as_str()].to_vec(), k));
        }
        for k in st.matrix.keys() {
            keys.push((crate::path!["stage", i, "matrix", k.as_str()].to_vec(), k));
        }
        for (z, axes) in &st.zip {
            for k in axes.keys() {
                keys.push((
                    crate::path!["stage", i, "zip", z.as_str(), k.as_str()].to_vec(),
                    k,
                ));
            }
        }
        for (p, k) in keys {
            if !reads.contains(k) && !sweep_reads(k) && !used_by_exprs(st, k) {
                warn(
                    p,
                    k,
                    format!("stage `{}` ({})", st.name, st.template),
                    reads,
                );
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_read_what_they_use() {
        let src = TemplateSource::default();
        let train = template_reads(&src, "deepspeed-train.sbatch.j2").unwrap();
        for k in [
            "steps",
            "warmup_steps",
            "gpu_sample_ms",
            "train_script",
            "payload_mode",
            "collective",
        ] {
            assert!(train.contains(k), "{k} not in {train:?}");
        }
        let pairs = template_reads(&src, "nccl-pairs.sbatch.j2").unwrap();
        assert!(pairs.contains("pairs_all_max"), "{pairs:?}");
        assert!(!pairs.contains("steps"), "{pairs:?}");
    }

    #[test]
    fn sweep_reads_its_own_ds_and_environment_names() {
        for k in [
            "micro_batch",
            "ds.zero_optimization.stage",
            "NCCL_ALGO",
            "gpus",
        ] {
            assert!(sweep_reads(k), "{k}");
        }
        assert!(!sweep_reads("micro_bach"));
        assert!(!sweep_reads("Nccl_algo"));
    }

    #[test]
    fn closest_finds_the_typo() {
        let known = ["micro_batch", "grad_accum", "steps"];
        assert_eq!(closest("micro_bach", known), Some("micro_batch"));
        assert_eq!(closest("grad_acum", known), Some("grad_accum"));
        assert_eq!(
            closest("activation_checkpoint", ["activation_checkpointing"]),
            Some("activation_checkpointing")
        );
        assert_eq!(closest("zzz_unrelated", known), None);
    }
}
