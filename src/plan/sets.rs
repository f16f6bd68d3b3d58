//! `expand --set KEY=VALUE`: a variant of a sweep file (a smoke run: fewer steps, a shorter
//! limit, one node) without editing it. The campaign's copy of the sweep file is the variant,
//! with the `--set` values written at its top, so that `check DIR`, the submit gate and the
//! report all see what was expanded.

use std::collections::BTreeSet;

use anyhow::{Result, anyhow, bail};

use crate::spec::{self, LoadedSweep};

/// The `[slurm]` options `--set slurm.X=...` may name.
const SLURM_FIELDS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "time",
    "exclusive",
    "constraint",
    "reservation",
    "mem",
    "signal_before_s",
    "extra",
];

/// One `KEY=VALUE`, the value parsed as TOML (`5`, `[1]`, `"00:10:00"`, `true`).
fn parse(set: &str) -> Result<(String, toml::Value)> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| anyhow!("--set `{set}`: write KEY=VALUE (`steps=5`, `nodes=[1]`)"))?;
    let key = key.trim();
    if key.is_empty() {
        bail!("--set `{set}`: no key before `=`");
    }
    let doc: toml::Table = toml::from_str(&format!("v = {}", raw.trim())).map_err(|e| {
        anyhow!(
            "--set `{key}`: `{}` is not a TOML value ({}); quote strings: {key}='\"...\"'",
            raw.trim(),
            e.message().trim()
        )
    })?;
    Ok((key.to_string(), doc["v"].clone()))
}

fn stages(doc: &mut toml::Table) -> Vec<&mut toml::Table> {
    match doc.get_mut("stage") {
        Some(toml::Value::Array(a)) => a.iter_mut().filter_map(|s| s.as_table_mut()).collect(),
        _ => Vec::new(),
    }
}

fn table<'a>(t: &'a mut toml::Table, k: &str) -> &'a mut toml::Table {
    let v = t
        .entry(k.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !v.is_table() {
        *v = toml::Value::Table(toml::Table::new());
    }
    v.as_table_mut().expect("a table")
}

/// The names a `--set` may give: the sweep file's own parameters, those sweep reads and those
/// any visible template reads.
fn known(sweep: &LoadedSweep, template_reads: &BTreeSet<String>) -> BTreeSet<String> {
    let s = &sweep.spec;
    let mut k: BTreeSet<String> = template_reads.clone();
    k.extend(s.defaults.keys().cloned());
    for st in &s.stages {
        k.extend(st.params.keys().cloned());
        k.extend(st.matrix.keys().cloned());
        for z in st.zip.values() {
            k.extend(z.keys().cloned());
        }
    }
    for p in crate::spec::KNOWN_PARAMS {
        k.insert(p.to_string());
    }
    k
}

/// Applies the `--set`s to every stage: `slurm.X` sets the file's `[slurm]` X and removes every
/// stage's own; a single value becomes the default and replaces the key in every stage's
/// params, matrix and zips (a zip's rows that then repeat are dropped); an array becomes the
/// key's axis in every stage (not allowed where the key is in a zip).
pub(crate) fn apply(
    sweep: &LoadedSweep,
    sets: &[String],
    template_reads: &BTreeSet<String>,
) -> Result<LoadedSweep> {
    let mut doc: toml::Table = toml::from_str(&sweep.text)?;
    let known = known(sweep, template_reads);
    for set in sets {
        let (key, value) = parse(set)?;
        if let Some(field) = key.strip_prefix("slurm.") {
            if !SLURM_FIELDS.contains(&field) {
                let hint = crate::params::closest(field, SLURM_FIELDS.iter().copied())
                    .map(|c| format!(" (did you mean `slurm.{c}`?)"))
                    .unwrap_or_default();
                bail!(
                    "--set `{key}`: no Slurm option `{field}`{hint}; one of {}",
                    SLURM_FIELDS.join(", ")
                );
            }
            table(&mut doc, "slurm").insert(field.to_string(), value.clone());
            for st in stages(&mut doc) {
                if let Some(t) = st.get_mut("slurm").and_then(|v| v.as_table_mut()) {
                    t.remove(field);
                }
            }
            continue;
        }
        if !known.contains(&key) && !crate::params::sweep_reads(&key) {
            let hint = crate::params::closest(&key, known.iter().map(|s| s.as_str()))
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            bail!(
                "--set `{key}`: no parameter `{key}` in {}, its templates or sweep's own{hint}",
                sweep.path.display()
            );
        }
        match &value {
            toml::Value::Array(_) => {
                for st in stages(&mut doc) {
                    let name = st
                        .get("name")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?")
                        .to_string();
                    if let Some(z) = st.get("zip").and_then(|v| v.as_table())
                        && let Some((zname, _)) = z
                            .iter()
                            .find(|(_, axes)| axes.as_table().is_some_and(|a| a.contains_key(&key)))
                    {
                        bail!(
                            "--set `{key}`: `{key}` is in zip `{zname}` of stage `{name}`; give one value (`{key}=4`), not an array"
                        );
                    }
                    if let Some(p) = st.get_mut("params").and_then(|v| v.as_table_mut()) {
                        p.remove(&key);
                    }
                    table(st, "matrix").insert(key.clone(), value.clone());
                }
            }
            _ => {
                table(&mut doc, "defaults").insert(key.clone(), value.clone());
                for st in stages(&mut doc) {
                    for part in ["params", "matrix"] {
                        if let Some(p) = st.get_mut(part).and_then(|v| v.as_table_mut()) {
                            p.remove(&key);
                        }
                    }
                    if let Some(z) = st.get_mut("zip").and_then(|v| v.as_table_mut()) {
                        for (_, axes) in z.iter_mut() {
                            let Some(axes) = axes.as_table_mut() else {
                                continue;
                            };
                            set_in_zip(axes, &key, &value);
                        }
                    }
                }
            }
        }
    }
    let mut text = format!(
        "# The campaign's copy of {}, expanded with:\n",
        sweep.path.display()
    );
    for s in sets {
        text.push_str(&format!("#   --set {s}\n"));
    }
    text.push_str("# (the values are applied below; the original's comments are not kept)\n\n");
    text.push_str(&toml::to_string(&doc)?);
    spec::parse(&sweep.path, text).map_err(|e| {
        anyhow!(
            "{} with {}: {}",
            sweep.path.display(),
            sets.iter()
                .map(|s| format!("--set {s}"))
                .collect::<Vec<_>>()
                .join(" "),
            e.message
        )
    })
}

/// Every value of `key` in a zip becomes `value`; rows that then repeat an earlier one go.
fn set_in_zip(axes: &mut toml::Table, key: &str, value: &toml::Value) {
    let Some(toml::Value::Array(a)) = axes.get_mut(key) else {
        return;
    };
    for v in a.iter_mut() {
        *v = value.clone();
    }
    let len = a.len();
    let row = |axes: &toml::Table, i: usize| -> Vec<String> {
        axes.values()
            .map(|v| {
                v.as_array()
                    .and_then(|a| a.get(i))
                    .map(|x| x.to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    let mut keep = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for i in 0..len {
        let r = row(axes, i);
        if !rows.contains(&r) {
            rows.push(r);
            keep.push(i);
        }
    }
    for (_, v) in axes.iter_mut() {
        if let Some(a) = v.as_array_mut() {
            let kept: Vec<toml::Value> = keep.iter().filter_map(|&i| a.get(i).cloned()).collect();
            *a = kept;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SWEEP: &str = r#"name = "t"
cluster = "c"
[defaults]
steps = 60
[slurm]
time = "00:30:00"
[[stage]]
name = "a"
template = "deepspeed-train.sbatch.j2"
slurm = { time = "01:00:00" }
[stage.matrix]
nodes = [2, 4]
[stage.zip.z]
model = ["llama2-7b", "llama2-7b"]
micro_batch = [16, 32]
"#;

    fn reads() -> BTreeSet<String> {
        ["steps".to_string()].into()
    }

    #[test]
    fn smoke_variant() {
        let s = spec::parse(Path::new("s.toml"), SWEEP.into()).unwrap();
        let sets = [
            "steps=5".to_string(),
            "nodes=[1]".into(),
            "slurm.time=\"00:10:00\"".into(),
            "micro_batch=4".into(),
        ];
        let v = apply(&s, &sets, &reads()).unwrap();
        assert_eq!(v.spec.defaults["steps"].as_integer(), Some(5));
        assert_eq!(v.spec.slurm.time.as_deref(), Some("00:10:00"));
        let st = &v.spec.stages[0];
        assert_eq!(st.slurm.time, None);
        assert_eq!(st.matrix["nodes"].as_array().unwrap().len(), 1);
        assert_eq!(st.zip["z"]["micro_batch"].as_array().unwrap().len(), 1);
        assert!(v.text.contains("#   --set steps=5"), "{}", v.text);
    }

    #[test]
    fn unknown_key_is_named() {
        let s = spec::parse(Path::new("s.toml"), SWEEP.into()).unwrap();
        let e = apply(&s, &["stepz=5".into()], &reads())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("`stepz`") && e.contains("did you mean `steps`"),
            "{e}"
        );
        let e = apply(&s, &["slurm.tim=\"1\"".into()], &reads())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("slurm.tim") && e.contains("slurm.time"), "{e}");
        let e = apply(&s, &["micro_batch=[1]".into()], &reads())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("zip `z`"), "{e}");
    }
}
