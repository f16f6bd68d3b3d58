//! What the integration tests share: where the checkout is, how the `sweep` binary is run, and
//! the readers most of them need. One definition each; a helper that only one module uses, or
//! that means something else in another (`campaign`, `state_of`), stays in its module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checkout, where the fixtures, profiles and sweeps are.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `sweep` binary cargo built for these tests, for the tests that need a `Command` of their
/// own (a working directory, a child to signal).
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin!("sweep").to_path_buf()
}

/// The seed campaign as the plan wrote it, before the corrections the shipped file makes so
/// that the plan check passes (activation checkpointing off, micro-batch 64 kept): the input of
/// the tests of what `check` and the submit gate say about points that cannot fit. Written once
/// per test process, under `target/`.
pub fn seed_as_written() -> PathBuf {
    static SEED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        let text = std::fs::read_to_string(root().join("sweeps/h200-llama2.toml")).unwrap();
        let profile = root().join("slurm/clusters/fukushima-h200.toml");
        let text = text
            .replacen(
                "\nactivation_checkpointing = true",
                "\nactivation_checkpointing = false",
                1,
            )
            .replace("exclude = [\"micro_batch == 64\"]\n", "")
            .replace(
                "cluster = \"fukushima-h200\"",
                &format!("cluster = {:?}", profile.display().to_string()),
            );
        assert!(text.contains("activation_checkpointing = false") && !text.contains("== 64"));
        let dir = root().join("target/test-sweeps");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!(
            "h200-llama2-as-written-{}.toml",
            std::process::id()
        ));
        std::fs::write(&p, text).unwrap();
        p
    })
    .clone()
}

/// `sweep ARGS` run to its end, stdout and stderr captured (stdin is empty).
pub fn sweep(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in\n{text}"))
        + 1
}

/// The rows of a CSV table `collect` wrote, each a map from column name to field.
pub fn csv_rows(p: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(p).unwrap();
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            h.iter()
                .zip(rec.unwrap().iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A value built to run `touch CANARY/TAG.N` in every way a shell could be made to: quotes
/// closed early, command substitution, backticks, `;`, `|`, `&`, `${IFS}` word splitting, globs.
/// No control character: those are refused before rendering (see `hostile.rs`'s cases).
pub fn hostile(canary: &Path, tag: &str) -> String {
    let c = canary.display();
    format!(
        "x'$(touch {c}/{tag}.1)\"$(touch {c}/{tag}.2)\"`touch {c}/{tag}.3`;touch {c}/{tag}.4|touch {c}/{tag}.5&touch {c}/{tag}.6 #*?~ $IFS touch${{IFS}}{c}/{tag}.7 \\' \\\""
    )
}

/// Whether the real-Slurm tests (`slurm.rs`) can run: the local cluster is up, `SLURM_CONF` set
/// (`tests/run-all.sh` brings it up). Without it they fail under `CI=true`, where a skip would
/// pass unseen, and are skipped loudly elsewhere.
pub fn slurm_cluster() -> bool {
    if std::env::var_os("SLURM_CONF").is_some() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "SLURM_CONF is not set: the real-Slurm tests need the local cluster (tests/run-all.sh brings it up)"
        );
    }
    eprintln!(
        "\n*** SKIPPING real-Slurm test: SLURM_CONF not set (run `bash tests/run-all.sh`) ***\n"
    );
    false
}

/// The gate of every real-Slurm test, its first line: the test ends here unless
/// `slurm_cluster()` says the cluster is up.
macro_rules! require_slurm {
    () => {
        if !$crate::util::slurm_cluster() {
            return;
        }
    };
}
pub(crate) use require_slurm;
