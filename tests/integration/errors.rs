//! One test per class of bad input: each must exit non-zero, name the file, the line and the key,
//! and write nothing.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;

use crate::util::{line_of, root, stderr};

fn profile() -> PathBuf {
    root().join("slurm/clusters/fukushima-h200.toml")
}

/// A valid two-stage sweep; each test breaks one thing in it.
fn base() -> String {
    format!(
        r#"name = "t"
cluster = "{}"

[defaults]
steps = 10

[[stage]]
name = "nccl"
template = "nccl-tests.sbatch.j2"

[stage.matrix]
nodes = [1, 2]

[[stage]]
name = "train"
template = "deepspeed-train.sbatch.j2"
after = ["nccl"]
scaling = "strong"

[stage.matrix]
model = ["llama2-7b"]
nodes = [2, 4]
micro_batch = [4]
global_batch = [512]
"#,
        profile().display()
    )
}

struct Run {
    code: i32,
    stderr: String,
    wrote: bool,
}

fn expand(text: &str) -> (Run, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(&file, text).unwrap();
    let out = tmp.path().join("out");
    let o = cargo_bin_cmd!("sweep")
        .args([
            "expand",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let run = Run {
        code: o.status.code().unwrap_or(-1),
        stderr: stderr(&o),
        wrote: out.exists(),
    };
    (run, file, tmp)
}

/// Asserts `file:line:` and the key appear in the message and nothing was written.
fn assert_points_at(text: &str, needle_line: &str, key: &str, also: &str) {
    let (run, file, _tmp) = expand(text);
    assert_ne!(run.code, 0, "expected failure");
    assert!(!run.wrote, "nothing may be written on error");
    let line = line_of(text, needle_line);
    let loc = format!("{}:{line}:", Path::new(&file).display());
    assert!(run.stderr.contains(&loc), "want {loc} in:\n{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("key `{key}`")),
        "want key `{key}` in:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(also),
        "want `{also}` in:\n{}",
        run.stderr
    );
}

#[test]
fn the_base_sweep_is_valid() {
    let (run, _, _tmp) = expand(&base());
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn unknown_key_is_named_with_a_suggestion() {
    let t = base().replace("after = [\"nccl\"]", "after = [\"nccl\"]\nrepeat = 3");
    assert_points_at(
        &t,
        "repeat = 3",
        "stage[1].repeat",
        "did you mean `repeats`",
    );
}

#[test]
fn wrong_type_names_the_key() {
    let t = base().replace("steps = 10", "steps = 10\n[slurm]\nexclusive = \"yes\"");
    assert_points_at(&t, "exclusive = \"yes\"", "slurm.exclusive", "invalid type");
}

#[test]
fn wrong_type_of_a_known_parameter() {
    let t = base().replace("micro_batch = [4]", "micro_batch = [\"four\"]");
    assert_points_at(
        &t,
        "micro_batch = [\"four\"]",
        "stage[1].matrix.micro_batch[0]",
        "must be an integer",
    );
}

#[test]
fn missing_template_is_named() {
    let t = base().replace(
        "template = \"nccl-tests.sbatch.j2\"",
        "template = \"nccl-test.sbatch.j2\"",
    );
    assert_points_at(
        &t,
        "nccl-test.sbatch.j2",
        "stage[0].template",
        "nccl-test.sbatch.j2",
    );
}

#[test]
fn unknown_model_lists_the_known_ones() {
    let t = base().replace(
        "model = [\"llama2-7b\"]",
        "model = [\"llama2-7b\", \"llama3-8b\"]",
    );
    assert_points_at(
        &t,
        "llama3-8b",
        "stage[1].matrix.model[1]",
        "known models: llama2-7b, llama2-13b, llama2-70b",
    );
}

#[test]
fn empty_matrix_axis() {
    let t = base().replace("nodes = [1, 2]", "nodes = []");
    assert_points_at(&t, "nodes = []", "stage[0].matrix.nodes", "empty axis");
}

#[test]
fn zip_of_unequal_lengths() {
    let t = base().replace(
        "micro_batch = [4]\nglobal_batch = [512]",
        "\n[stage.zip.b]\nmicro_batch = [4, 8]\nglobal_batch = [512]",
    );
    assert_points_at(
        &t,
        "global_batch = [512]",
        "stage[1].zip.b.global_batch",
        "equal lengths",
    );
}

#[test]
fn bad_exclusion_expression() {
    let t = base().replace(
        "scaling = \"strong\"",
        "scaling = \"strong\"\nexclude = [\"nodes >\"]",
    );
    assert_points_at(&t, "exclude = [", "stage[1].exclude[0]", "bad expression");
}

#[test]
fn exclusion_on_an_unknown_parameter_would_never_match() {
    let t = base().replace(
        "scaling = \"strong\"",
        "scaling = \"strong\"\nexclude = [{ micro_bach = 4 }]",
    );
    assert_points_at(
        &t,
        "exclude = [",
        "stage[1].exclude[0].micro_bach",
        "could never match",
    );
}

#[test]
fn undefined_variable_in_a_derived_value() {
    let t = base().replace(
        "scaling = \"strong\"",
        "scaling = \"strong\"\nderive = { tokens = \"global_batch * seqlen\" }",
    );
    assert_points_at(
        &t,
        "derive = {",
        "stage[1].derive.tokens",
        "cannot evaluate",
    );
}

#[test]
fn inexact_strong_scaling_names_the_point_or_excludes_it() {
    let t = base().replace("global_batch = [512]", "global_batch = [96]");
    // 96 / (4 x 16) is not whole.
    assert_points_at(
        &t,
        "scaling = \"strong\"",
        "stage[1].scaling",
        "nodes=2, micro_batch=4, global_batch=96",
    );
    // With on_inexact = "exclude" the point is dropped and the reason printed.
    let t = base()
        .replace("global_batch = [512]", "global_batch = [64]")
        .replace(
            "scaling = \"strong\"",
            "scaling = \"strong\"\non_inexact = \"exclude\"",
        );
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, t).unwrap();
    let o = cargo_bin_cmd!("sweep")
        .args(["expand", f.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("excluded 1 point(s)"), "{s}");
    assert!(
        s.contains(
            "global_batch 64 is not a whole multiple of micro_batch 4 x 32 data-parallel ranks"
        ),
        "{s}"
    );
}

#[test]
fn strong_scaling_must_not_be_given_grad_accum() {
    let t = base().replace("micro_batch = [4]", "micro_batch = [4]\ngrad_accum = [2]");
    assert_points_at(
        &t,
        "grad_accum = [2]",
        "stage[1].matrix.grad_accum",
        "derived under scaling = \"strong\"",
    );
}

#[test]
fn more_nodes_than_the_cluster_has() {
    let t = base().replace("nodes = [2, 4]", "nodes = [2, 16]");
    assert_points_at(
        &t,
        "nodes = [2, 16]",
        "stage[1].matrix.nodes[1]",
        "16 nodes requested but cluster `fukushima-h200` has 8",
    );
}

#[test]
fn dependency_on_an_unknown_stage() {
    let t = base().replace("after = [\"nccl\"]", "after = [\"ncl\"]");
    assert_points_at(
        &t,
        "after = [\"ncl\"]",
        "stage[1].after[0]",
        "no stage named `ncl`",
    );
}

#[test]
fn newline_in_a_value_is_rejected() {
    let t = base().replace("steps = 10", "steps = 10\nlabel = \"a\\nb\"");
    assert_points_at(&t, "label = ", "defaults.label", "control character");
}

#[test]
fn bad_time_limit() {
    let t = base().replace("steps = 10", "steps = 10\n[slurm]\ntime = \"2h\"");
    assert_points_at(&t, "time = \"2h\"", "slurm.time", "not a Slurm time limit");
}

#[test]
fn toml_syntax_error_points_at_the_line() {
    let t = base().replace("steps = 10", "steps = = 10");
    let (run, file, _tmp) = expand(&t);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains(&format!(
            "{}:{}:",
            file.display(),
            line_of(&t, "steps = = 10")
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn malformed_profile_names_the_profile_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(profile())
        .unwrap()
        .replace("cpus = \"14-27,126-139\"", "cpus = \"27-14\"");
    let prof = tmp.path().join("p.toml");
    std::fs::write(&prof, &text).unwrap();
    let sweep = tmp.path().join("s.toml");
    std::fs::write(
        &sweep,
        base().replace(&profile().display().to_string(), prof.to_str().unwrap()),
    )
    .unwrap();
    let o = cargo_bin_cmd!("sweep")
        .args(["expand", sweep.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let line = line_of(&text, "cpus = \"27-14\"");
    assert!(
        err.contains(&format!("{}:{line}:", prof.display())),
        "{err}"
    );
    assert!(
        err.contains("key `gpu_map[1].cpus`") && err.contains("runs backwards"),
        "{err}"
    );
}

#[test]
fn shell_metacharacters_are_quoted_not_executed() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("pwned");
    let evil = format!(
        "x'; touch {m}; echo '$(touch {m}) `touch {m}`",
        m = marker.display()
    );
    let t = base().replace(
        "nodes = [1, 2]",
        &format!("nodes = [1]\nNCCL_ALGO = [{:?}]", evil),
    );
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, t).unwrap();
    let out = tmp.path().join("out");
    cargo_bin_cmd!("sweep")
        .args([
            "expand",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
        ])
        .assert()
        .success();
    let dir = std::fs::read_dir(out.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("nccl"))
        .unwrap();
    let script = std::fs::read_to_string(dir.join("job.sbatch")).unwrap();
    let exports: String = script
        .lines()
        .filter(|l| l.starts_with("export NCCL_"))
        .collect::<Vec<_>>()
        .join("\n");
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("{exports}\nprintf %s \"$NCCL_ALGO\""))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), evil);
    assert!(!marker.exists(), "a value was executed by the shell");
}

#[test]
fn target_with_an_unknown_metric_or_unit_or_model() {
    let t = format!("{}\n[[target]]\nmetric = \"speed\"\nvalue = 1\n", base());
    assert_points_at(
        &t,
        "metric = \"speed\"",
        "target[0].metric",
        "unknown variant `speed`",
    );
    let t = format!(
        "{}\n[[target]]\nmetric = \"throughput\"\nmodel = \"llama2-7b\"\nvalue = 10\nunit = \"samples/min\"\n",
        base()
    );
    assert_points_at(
        &t,
        "unit = \"samples/min\"",
        "target[0].unit",
        "one of samples/s, tokens/s",
    );
    let t = format!(
        "{}\n[[target]]\nmetric = \"throughput\"\nmodel = \"gpt-5\"\nvalue = 10\n",
        base()
    );
    assert_points_at(
        &t,
        "model = \"gpt-5\"",
        "target[0].model",
        "unknown model `gpt-5`",
    );
}

#[test]
fn dependency_kind_on_an_unknown_stage_or_named_twice() {
    let t = base().replace(
        "after = [\"nccl\"]",
        "after = [{ stage = \"ncl\", kind = \"afterany\" }]",
    );
    assert_points_at(
        &t,
        "stage = \"ncl\"",
        "stage[1].after[0]",
        "no stage named `ncl`",
    );
    let t = base().replace(
        "after = [\"nccl\"]",
        "after = [\"nccl\", { stage = \"nccl\", kind = \"afterany\" }]",
    );
    assert_points_at(&t, "after = [", "stage[1].after[1]", "named twice");
}

#[test]
fn profile_not_found_lists_the_paths_searched_and_the_profiles_found() {
    let tmp = tempfile::tempdir().unwrap();
    let clusters = tmp.path().join("slurm/clusters");
    std::fs::create_dir_all(&clusters).unwrap();
    std::fs::copy(profile(), clusters.join("mine.toml")).unwrap();
    let text = base().replace(
        &format!("cluster = \"{}\"", profile().display()),
        "cluster = \"nope\"",
    );
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, &text).unwrap();
    let o = cargo_bin_cmd!("sweep")
        .args(["check", f.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains(&format!("{}:2:", f.display())), "{err}");
    assert!(
        err.contains(&clusters.join("nope.toml").display().to_string()),
        "the path searched: {err}"
    );
    assert!(
        err.contains(&clusters.join("mine.toml").display().to_string()),
        "the profile found: {err}"
    );
}

#[test]
fn an_unreadable_file_is_named_without_a_position() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("missing.toml");
    let o = cargo_bin_cmd!("sweep")
        .args(["check", f.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}: cannot read", f.display())),
        "{err}"
    );
    assert!(!err.contains(":0:"), "{err}");
    let t = base().replace(
        &profile().display().to_string(),
        &tmp.path().join("gone.toml").display().to_string(),
    );
    let (run, _, _tmp) = expand(&t);
    assert_ne!(run.code, 0);
    assert!(!run.stderr.contains(":0:"), "{}", run.stderr);
}
