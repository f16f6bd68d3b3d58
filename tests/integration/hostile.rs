//! Hostile and careless inputs: sweep files, cluster profiles, `nvidia-smi topo -m` captures,
//! templates, campaign directories and logs, each with the exact outcome it must have. A refused
//! input names its file, line and key and leaves nothing written; an accepted one is rendered so
//! that nothing in it can run (the scripts are run, and a canary directory must stay empty).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{hostile, line_of, root, stderr, sweep};

/// A valid sweep on the local profile; `{D}` (defaults), `{S}` (top-level [slurm]), `{T}` (stage
/// keys) and `{M}` (stage matrix) are where each case breaks it.
const BASE: &str = r#"name = "t"
cluster = "PROFILE"

[defaults]
steps = 3
{D}

[slurm]
time = "00:10:00"
{S}

[[stage]]
name = "train"
template = "deepspeed-train.sbatch.j2"
{T}
[stage.matrix]
model = ["llama2-7b"]
nodes = [2]
micro_batch = [4]
grad_accum = [8]
{M}
"#;

struct Case {
    name: &'static str,
    d: &'static str,
    s: &'static str,
    t: &'static str,
    m: &'static str,
    /// Text on the line the error must name.
    at: &'static str,
    key: &'static str,
    message: &'static str,
}

const fn case(
    name: &'static str,
    parts: [&'static str; 4],
    at: &'static str,
    key: &'static str,
    message: &'static str,
) -> Case {
    Case {
        name,
        d: parts[0],
        s: parts[1],
        t: parts[2],
        m: parts[3],
        at,
        key,
        message,
    }
}

/// Each must be refused at `file:line` with the key and the message, writing nothing.
const SWEEP_CASES: &[Case] = &[
    case(
        "quote breaking out of the cpu-smoke loop",
        [
            r#"label = 1
[defaults.x]"#,
            "",
            "",
            "",
        ],
        "[defaults.x]",
        "defaults.x",
        "expected a single value",
    ),
    case(
        "steps as a shell payload",
        [
            "",
            "",
            "params = { steps = \"1'; touch /tmp/x; echo '\" }",
            "",
        ],
        "params = { steps",
        "stage[0].params.steps",
        "`steps` must be a whole number from 1 to 4294967295",
    ),
    case(
        "net_sample_s as a command substitution",
        ["net_sample_s = \"$(touch /tmp/x)\"", "", "", ""],
        "net_sample_s",
        "defaults.net_sample_s",
        "`net_sample_s` must be a whole number from 0",
    ),
    case(
        "gpu_sample_ms with a command after it",
        ["gpu_sample_ms = \"1 $(touch /tmp/x)\"", "", "", ""],
        "gpu_sample_ms",
        "defaults.gpu_sample_ms",
        "`gpu_sample_ms` must be a whole number from 0",
    ),
    case(
        "expect_nic_gbps as a command substitution",
        ["expect_nic_gbps = \"$(touch /tmp/x)\"", "", "", ""],
        "expect_nic_gbps",
        "defaults.expect_nic_gbps",
        "`expect_nic_gbps` must be a positive number",
    ),
    case(
        "expect_memlock_kib as a command substitution",
        ["expect_memlock_kib = \"$(touch /tmp/x)\"", "", "", ""],
        "expect_memlock_kib",
        "defaults.expect_memlock_kib",
        "`expect_memlock_kib` must be a whole number of KiB from 0 or \"unlimited\"",
    ),
    case(
        "steps zero",
        ["", "", "params = { steps = 0 }", ""],
        "params = { steps",
        "stage[0].params.steps",
        "`steps` must be a whole number from 1",
    ),
    case(
        "pin_nic as a string",
        ["pin_nic = \"yes\"", "", "", ""],
        "pin_nic",
        "defaults.pin_nic",
        "`pin_nic` must be true or false",
    ),
    case(
        "min_bytes with a command",
        ["min_bytes = \"8G; id\"", "", "", ""],
        "min_bytes",
        "defaults.min_bytes",
        "is not a byte size",
    ),
    case(
        "expect_gpus_per_node negative",
        ["expect_gpus_per_node = -1", "", "", ""],
        "expect_gpus_per_node",
        "defaults.expect_gpus_per_node",
        "must be a whole number from 0",
    ),
    case(
        "micro_batch past u32",
        ["", "", "", "tensor_parallel = [4294967296]"],
        "tensor_parallel",
        "stage[0].matrix.tensor_parallel[0]",
        "`tensor_parallel` = 4294967296 is out of range (at most 4294967295)",
    ),
    case(
        "grad_accum past u32 in a zip",
        [
            "",
            "",
            "",
            "[stage.zip.z]\nseq_len = [4294967296]\nzero_stage = [3]",
        ],
        "seq_len = [4294967296]",
        "stage[0].zip.z.seq_len[0]",
        "`seq_len` = 4294967296 is out of range",
    ),
    case(
        "i64::MAX micro-batch in params",
        [
            "",
            "",
            "params = { pipeline_parallel = 9223372036854775807 }",
            "",
        ],
        "pipeline_parallel",
        "stage[0].params.pipeline_parallel",
        "is out of range (at most 4294967295)",
    ),
    case(
        "a global batch past i64",
        [
            "",
            "",
            "",
            "gpus_per_node = [8]\n[stage.params]\nzero_stage = 3",
        ],
        "",
        "",
        "",
    ),
    case(
        "a time limit that wraps",
        [
            "",
            "",
            "[stage.slurm]\ntime = \"5124095576030432:00:00\"",
            "",
        ],
        "5124095576030432",
        "stage[0].slurm.time",
        "is longer than Slurm can hold (4294967294 minutes)",
    ),
    case(
        "a time limit past u64",
        ["", "", "[stage.slurm]\ntime = \"99999999999999999999\"", ""],
        "99999999999999999999",
        "stage[0].slurm.time",
        "is longer than Slurm can hold",
    ),
    case(
        "a signed time limit",
        ["", "", "[stage.slurm]\ntime = \"+5\"", ""],
        "\"+5\"",
        "stage[0].slurm.time",
        "`+5` is not a Slurm time limit",
    ),
    case(
        "a time limit with a space",
        ["", "", "[stage.slurm]\ntime = \" 5\"", ""],
        "\" 5\"",
        "stage[0].slurm.time",
        "is not a Slurm time limit",
    ),
    case(
        "a zero time limit",
        ["", "", "[stage.slurm]\ntime = \"0\"", ""],
        "\"0\"",
        "stage[0].slurm.time",
        "time limit `0` is zero",
    ),
    case(
        "signal before the job could start",
        ["", "signal_before_s = 600", "", ""],
        "signal_before_s",
        "slurm.signal_before_s",
        "signal_before_s = 600 is not shorter than the 10-minute time limit",
    ),
    case(
        "a stage's short limit under the campaign's signal",
        [
            "",
            "signal_before_s = 120",
            "[stage.slurm]\ntime = \"2\"",
            "",
        ],
        "time = \"2\"",
        "stage[0].slurm.time",
        "signal_before_s = 120 is not shorter than the 2-minute time limit",
    ),
    case(
        "signal past u32",
        ["", "signal_before_s = 4294967296", "", ""],
        "signal_before_s",
        "slurm.signal_before_s",
        "",
    ),
    case(
        "a newline in the partition",
        ["", "partition = \"gpu\\ntouch /tmp/x\"", "", ""],
        "partition",
        "slurm.partition",
        "holds the control character '\\n'",
    ),
    case(
        "a command in the partition",
        [
            "",
            "",
            "[stage.slurm]\npartition = \"gpu;touch /tmp/x\"",
            "",
        ],
        "partition",
        "stage[0].slurm.partition",
        "';' is not allowed in a Slurm name",
    ),
    case(
        "a substitution in the account",
        ["", "account = \"$(id)\"", "", ""],
        "account",
        "slurm.account",
        "'$' is not allowed in a Slurm name",
    ),
    case(
        "a space in the QOS",
        ["", "qos = \"high prio\"", "", ""],
        "qos",
        "slurm.qos",
        "' ' is not allowed in a Slurm name",
    ),
    case(
        "a backtick in the reservation",
        ["", "reservation = \"r`id`\"", "", ""],
        "reservation",
        "slurm.reservation",
        "'`' is not allowed in a Slurm name",
    ),
    case(
        "a substitution in the constraint",
        ["", "constraint = \"h200$(id)\"", "", ""],
        "constraint",
        "slurm.constraint",
        "'$' is not allowed in a Slurm constraint",
    ),
    case(
        "a command after the memory",
        ["", "mem = \"512G; id\"", "", ""],
        "mem",
        "slurm.mem",
        "is not a memory size",
    ),
    case(
        "a newline in an extra option",
        ["", "extra = [\"--mail-type=END\\ntouch /tmp/x\"]", "", ""],
        "extra",
        "slurm.extra[0]",
        "holds the control character '\\n'",
    ),
    case(
        "an extra entry that is a command",
        ["", "extra = [\"touch /tmp/x\"]", "", ""],
        "extra",
        "slurm.extra[0]",
        "is not an sbatch option",
    ),
    case(
        "a carriage return in an extra option",
        ["", "", "[stage.slurm]\nextra = [\"--comment=a\\rb\"]", ""],
        "extra",
        "stage[0].slurm.extra[0]",
        "holds the control character '\\r'",
    ),
    case(
        "an ESC in a free parameter",
        ["label = \"a\\u001bb\"", "", "", ""],
        "label",
        "defaults.label",
        "control character '\\u{1b}'",
    ),
    case(
        "a newline in an environment value",
        ["", "", "env = { NCCL_DEBUG = \"INFO\\ntouch /tmp/x\" }", ""],
        "env = {",
        "stage[0].env.NCCL_DEBUG",
        "control character '\\n'",
    ),
    case(
        "an environment name that is not one",
        ["", "", "env = { \"A-B\" = \"1\" }", ""],
        "env = {",
        "stage[0].env.A-B",
        "not a valid environment variable name",
    ),
    case("an absolute template", ["", "", "", ""], "", "", ""),
    case(
        "four billion repeats",
        ["", "", "repeats = 4000000000", ""],
        "name = \"train\"",
        "stage[0].name",
        "the sweep asks for 4000000000 points (train: 4000000000), above the limit of 100000",
    ),
    case(
        "a billion points",
        [
            "",
            "",
            "",
            "a = [0,1,2,3,4,5,6,7,8,9]\nb = [0,1,2,3,4,5,6,7,8,9]\nc = [0,1,2,3,4,5,6,7,8,9]\nd = [0,1,2,3,4,5,6,7,8,9]\ne = [0,1,2,3,4,5,6,7,8,9]\nf = [0,1,2,3,4,5,6,7,8,9]\ng = [0,1,2,3,4,5,6,7,8,9]\nh = [0,1,2,3,4,5,6,7,8,9]\ni = [0,1,2,3,4,5,6,7,8,9]",
        ],
        "name = \"train\"",
        "stage[0].name",
        "the sweep asks for 1000000000 points",
    ),
    case(
        "a derived value with a newline",
        [
            "",
            "",
            "derive = { label = \"'a' ~ '\\\\n' ~ 'touch /tmp/x'\" }",
            "",
        ],
        "derive = {",
        "stage[0].derive.label",
        "derived value: the value holds the control character '\\n'",
    ),
    case(
        "a derived step count that is text",
        ["", "", "derive = { warmup_steps = \"'1; id'\" }", ""],
        "derive = {",
        "stage[0].derive.warmup_steps",
        "derived value: `warmup_steps` must be a whole number",
    ),
];

fn sweep_text(c: &Case) -> String {
    let prof = root().join("slurm/clusters/local.toml");
    BASE.replace("PROFILE", prof.to_str().unwrap())
        .replace("{D}", c.d)
        .replace("{S}", c.s)
        .replace("{T}", c.t)
        .replace("{M}", c.m)
}

/// The base sweep, unbroken.
fn plain_sweep() -> String {
    sweep_text(&case("plain", ["", "", "", ""], "", "", ""))
}

/// Runs `expand --out` on `text` and asserts the refusal: `file:line:` with the key and the
/// message, exit 1, no directory written.
fn refused(text: &str, at: &str, key: &str, message: &str, what: &str) {
    refused_in(text, None, at, key, message, what)
}

/// `refused`, with a cluster profile of its own (`--profile`) when `profile` is given: the
/// error must then point into the profile.
fn refused_in(text: &str, profile: Option<&str>, at: &str, key: &str, message: &str, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, text).unwrap();
    let p = tmp.path().join("p.toml");
    let out = tmp.path().join("out");
    let mut args = vec![
        "expand",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(ptext) = profile {
        std::fs::write(&p, ptext).unwrap();
        args.extend(["--profile", p.to_str().unwrap()]);
    }
    let o = sweep(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    let (file, located) = match profile {
        Some(ptext) => (&p, ptext),
        None => (&f, text),
    };
    let want = format!("{}:{}:", file.display(), line_of(located, at));
    assert!(err.contains(&want), "{what}: wanted {want} in\n{err}");
    assert!(
        err.contains(&format!("key `{key}`")),
        "{what}: key {key} in\n{err}"
    );
    assert!(
        err.contains(message),
        "{what}: wanted `{message}` in\n{err}"
    );
    assert!(!out.exists(), "{what}: {} was written", out.display());
}

#[test]
fn hostile_sweep_files_are_refused_at_file_line_and_key() {
    let mut n = 0;
    for c in SWEEP_CASES {
        if c.at.is_empty() {
            continue;
        }
        refused(&sweep_text(c), c.at, c.key, c.message, c.name);
        n += 1;
    }
    assert!(n >= 35, "{n} cases");
}

#[test]
fn batch_products_past_their_range_are_errors_not_wrapped() {
    // 4294967295^2 x 16 ranks does not fit: the global batch.
    let c = &SWEEP_CASES
        .iter()
        .find(|c| c.name == "a global batch past i64")
        .unwrap();
    let text = sweep_text(c)
        .replace("micro_batch = [4]", "micro_batch = [4294967295]")
        .replace("grad_accum = [8]", "grad_accum = [4294967295]");
    refused(
        &text,
        "name = \"train\"",
        "stage[0].name",
        "the global batch micro_batch 4294967295 x grad_accum 4294967295 x 16 data-parallel ranks is out of range",
        c.name,
    );
    // Tokens per step: 2^20 x 2^20 x 16 sequences of 2^30 tokens.
    let text = sweep_text(c)
        .replace("micro_batch = [4]", "micro_batch = [1048576]")
        .replace(
            "grad_accum = [8]",
            "grad_accum = [1048576]\nseq_len = [1073741824]",
        );
    refused(
        &text,
        "name = \"train\"",
        "stage[0].name",
        "tokens per step, global_batch 17592186044416 x seq_len 1073741824, is out of range",
        "tokens per step past i64",
    );
    // Strong scaling: the accumulation global / (micro x dp) must fit u32.
    let text = sweep_text(c)
        .replace("micro_batch = [4]", "micro_batch = [1]")
        .replace("grad_accum = [8]", "global_batch = [9223372036854775792]")
        .replace("{T}", "")
        .replace(
            "template = \"deepspeed-train.sbatch.j2\"",
            "template = \"deepspeed-train.sbatch.j2\"\nscaling = \"strong\"",
        );
    refused(
        &text,
        "name = \"train\"",
        "stage[0].name",
        "accumulation steps is out of range",
        "strong-scaling accumulation past u32",
    );
}

#[test]
fn names_are_names_and_template_names_are_not_paths() {
    let base = plain_sweep();
    let long = "a".repeat(300);
    for (from, to, at, key, msg) in [
        (
            "name = \"t\"",
            "name = \"..\"",
            "name = \"..\"",
            "name",
            "cannot start with '.'",
        ),
        (
            "name = \"t\"",
            "name = \".\"",
            "name = \".\"",
            "name",
            "cannot start with '.'",
        ),
        (
            "name = \"t\"",
            "name = \"a/b\"",
            "name = \"a/b\"",
            "name",
            "'/' is not allowed",
        ),
        (
            "name = \"t\"",
            &format!("name = \"{long}\""),
            "name = \"aaa",
            "name",
            "at most 64 characters (this one has 300)",
        ),
        (
            "name = \"train\"",
            "name = \".hidden\"",
            "name = \".hidden\"",
            "stage[0].name",
            "stage name: a name cannot start with '.'",
        ),
        (
            "name = \"train\"",
            "name = \"a b\"",
            "name = \"a b\"",
            "stage[0].name",
            "' ' is not allowed",
        ),
        (
            "template = \"deepspeed-train.sbatch.j2\"",
            "template = \"/etc/hostname\"",
            "/etc/hostname",
            "stage[0].template",
            "not by an absolute path",
        ),
        (
            "template = \"deepspeed-train.sbatch.j2\"",
            "template = \"../../../etc/passwd\"",
            "etc/passwd",
            "stage[0].template",
            "cannot contain `.` or `..` components",
        ),
        (
            "cluster = ",
            "templates = \"no-such-dir\"\ncluster = ",
            "templates = ",
            "templates",
            "templates directory",
        ),
    ] {
        let text = base.replacen(from, to, 1);
        refused(&text, at, key, msg, to);
    }
}

#[test]
fn a_missing_templates_directory_on_the_command_line_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, plain_sweep()).unwrap();
    let o = sweep(&[
        "expand",
        f.to_str().unwrap(),
        "--dry-run",
        "--templates",
        "/nonexistent",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--templates /nonexistent: no such directory"),
        "{}",
        stderr(&o)
    );
    for args in [
        vec!["templates", "list", "--templates", "/nonexistent"],
        vec!["templates", "show", "x.j2", "--templates", "/nonexistent"],
    ] {
        let o = sweep(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&o).contains("/nonexistent: no such directory"),
            "{}",
            stderr(&o)
        );
    }
    let o = sweep(&["templates", "show", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not by an absolute path"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}

/// The local profile, with `edit` applied to its text.
fn profile_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(root().join("slurm/clusters/local.toml")).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

const NIC: &str = "\n[[nic]]\nname = \"mlx5_0\"\nnuma = 0\nrate_gbps = 400.0\n";

#[test]
fn hostile_profiles_are_refused_at_file_line_and_key() {
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (
            profile_with("name = \"local\"", "name = \"local\\n# x\\ntouch /tmp/x\""),
            "name = \"local",
            "name",
            "profile name:",
        ),
        (
            profile_with(
                "# No [[nic]]",
                &format!(
                    "{}# No [[nic]]",
                    NIC.replace("mlx5_0", "mlx5_0;touch${IFS}/tmp/x")
                ),
            ),
            "name = \"mlx5_0;",
            "nic[0].name",
            "';' is not allowed in a NIC name",
        ),
        (
            profile_with(
                "# No [[nic]]",
                &format!("{}netdev = \"$(id)\"\n# No [[nic]]", NIC),
            ),
            "netdev",
            "nic[0].netdev",
            "'$' is not allowed in a NIC name",
        ),
        (
            profile_with(
                "# No [[nic]]",
                &format!("{}# No [[nic]]", NIC.replace("numa = 0", "numa = 5")),
            ),
            "numa = 5",
            "nic[0].numa",
            "NUMA node 5 does not exist (cpu.numa_nodes = 2)",
        ),
        (
            profile_with(
                "# No [[nic]]",
                &format!("{}# No [[nic]]", NIC.replace("400.0", "-400.0")),
            ),
            "rate_gbps",
            "nic[0].rate_gbps",
            "must be a positive number of Gb/s, not -400",
        ),
        (
            profile_with(
                "# No [[nic]]",
                &format!("{}# No [[nic]]", NIC.replace("400.0", "0.0")),
            ),
            "rate_gbps",
            "nic[0].rate_gbps",
            "must be a positive number of Gb/s, not 0",
        ),
        (
            profile_with("# No [[nic]]", &format!("{}port = 0\n# No [[nic]]", NIC)),
            "port = 0",
            "nic[0].port",
            "ports are numbered from 1",
        ),
        (
            profile_with("peak_bf16_tflops = 989.0", "peak_bf16_tflops = -1.0"),
            "peak_bf16_tflops",
            "gpu.peak_bf16_tflops",
            "must be a positive number (0 if not known), not -1",
        ),
        (
            profile_with("peak_bf16_tflops = 989.0", "peak_bf16_tflops = nan"),
            "peak_bf16_tflops",
            "gpu.peak_bf16_tflops",
            "not NaN",
        ),
        (
            profile_with("hbm_gib = 140.0", "hbm_gib = inf"),
            "hbm_gib",
            "gpu.hbm_gib",
            "not inf",
        ),
        (
            profile_with("nvlink_gb_s = 450.0", "nvlink_gb_s = 0.0"),
            "nvlink_gb_s",
            "gpu.nvlink_gb_s",
            "must be a positive number",
        ),
        (
            profile_with("cpus = \"2-3\"", "cpus = \"2-99\""),
            "cpus = \"2-99\"",
            "gpu_map[1].cpus",
            "CPU 16 does not exist",
        ),
        (
            profile_with("mpi = \"pmi2\"", "mpi = \"pmix $(id)\""),
            "mpi = ",
            "slurm.mpi",
            "is not an MPI plugin name",
        ),
        (
            profile_with("partition = \"gpu\"", "partition = \"gpu\\ntouch /tmp/x\""),
            "partition = ",
            "slurm.partition",
            "control character '\\n'",
        ),
        (
            profile_with("nodelist = \"gpu[01-04]\"", "nodelist = \"gpu-$(id)\""),
            "nodelist = ",
            "slurm.nodelist",
            "'$' is not allowed in a hostlist",
        ),
        (
            profile_with("numa_nodes = 2", "numa_nodes = 0"),
            "numa_nodes = 0",
            "cpu.numa_nodes",
            "must be at least 1",
        ),
        (
            profile_with("sockets = 2", "sockets = 4294967295")
                .replace("cores_per_socket = 8", "cores_per_socket = 4294967295"),
            "[cpu]",
            "cpu",
            "sockets x cores x threads is out of range",
        ),
        (
            profile_with("[env]", "[env]\nNCCL_DEBUG = \"INFO\\ntouch /tmp/x\""),
            "NCCL_DEBUG",
            "env.NCCL_DEBUG",
            "control character '\\n'",
        ),
        (
            profile_with("setup = []", "setup = [\"module load x\\ntouch /tmp/x\"]"),
            "setup = ",
            "paths.setup[0]",
            "a setup command is one line",
        ),
        (
            profile_with("model = \"fake H200", "model = \"fake\\u0000H200"),
            "model = \"fake",
            "gpu.model",
            "control character '\\0'",
        ),
        (
            profile_with(
                "[paths]",
                "[network]\nsocket_ifname = \"eth0;touch /tmp/x\"\n\n[paths]",
            ),
            "socket_ifname",
            "network.socket_ifname",
            "';' is not allowed in an interface name",
        ),
        (
            profile_with(
                "[paths]",
                "[network]\ngloo_socket_ifname = \"^eth0\"\n\n[paths]",
            ),
            "gloo_socket_ifname",
            "network.gloo_socket_ifname",
            "'^' is not allowed in an interface name",
        ),
        (
            profile_with(
                "[paths]",
                "[network]\nsocket_ifname = \"averyveryverylongname0\"\n\n[paths]",
            ),
            "socket_ifname",
            "network.socket_ifname",
            "longer than an interface name can be",
        ),
        (
            profile_with("[paths]", "[network]\nmtu = 9000\n\n[paths]"),
            "mtu = 9000",
            "network.mtu",
            "an RDMA MTU is 256, 512, 1024, 2048 or 4096",
        ),
        (
            profile_with("[paths]", "[network]\nnetdev_mtu = 70000\n\n[paths]"),
            "netdev_mtu",
            "network.netdev_mtu",
            "an interface MTU is 68 to 65535",
        ),
        (
            profile_with("[env]", "[env]\nNCCL_IB_GID_INDEX = \"1\"").replacen(
                "[paths]",
                "[network]\nroce_gid_index = 3\n\n[paths]",
                1,
            ),
            "NCCL_IB_GID_INDEX",
            "env.NCCL_IB_GID_INDEX",
            "contradicts [network]",
        ),
    ];
    let sweep_text = plain_sweep();
    for (text, at, key, message) in &cases {
        refused_in(&sweep_text, Some(text), at, key, message, key);
    }
    assert!(cases.len() >= 20);
}

#[test]
fn an_unknown_peak_is_a_warning_and_never_an_infinite_mfu() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("p.toml");
    std::fs::write(
        &p,
        profile_with("peak_bf16_tflops = 989.0", "peak_bf16_tflops = 0.0"),
    )
    .unwrap();
    let f = tmp.path().join("s.toml");
    let text = plain_sweep()
        + "\n[[target]]\nmetric = \"throughput\"\nmodel = \"llama2-7b\"\nvalue = 8000.0\n";
    std::fs::write(&f, text).unwrap();
    let o = sweep(&[
        "--json",
        "check",
        f.to_str().unwrap(),
        "--profile",
        p.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("gpu.peak_bf16_tflops is 0 (not known): no implied MFU without it"),
        "{out}"
    );
    assert!(out.contains("so no MFU to check it against"), "{out}");
    assert!(out.contains("\"implied_mfu_pct\": null"), "{out}");
    // Overlapping CPU lists: a warning with the key (a site may share a core on purpose).
    std::fs::write(&p, profile_with("cpus = \"2-3\"", "cpus = \"1-3\"")).unwrap();
    let o = sweep(&[
        "--json",
        "check",
        f.to_str().unwrap(),
        "--profile",
        p.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("gpu_map[1].cpus: CPU 1 is also in GPU 0's list: ranks of both GPUs would share that core"),
        "{out}"
    );
    assert!(!out.contains("inf %") && !out.contains("Infinity"), "{out}");
}

#[test]
fn a_topology_capture_with_a_hostile_nic_name_is_refused_at_its_line() {
    let topo = [
        "\tGPU0\tGPU1\tNIC0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID",
        "GPU0\t X \tNV18\tPXB\t0-15\t0\t\tN/A",
        "GPU1\tNV18\t X \tPXB\t0-15\t0\t\tN/A",
        "NIC0\tPXB\tPXB\t X \t\t\t\t",
        "",
        "Legend:",
        "",
        "  X    = Self",
        "",
        "NIC Legend:",
        "",
        "  NIC0: mlx5_0;touch${IFS}/tmp/x",
        "",
    ]
    .join("\n");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("topo.txt");
    std::fs::write(&t, &topo).unwrap();
    let o = sweep(&[
        "profile",
        "import",
        t.to_str().unwrap(),
        "--name",
        "x",
        "--nodes",
        "1",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: line 12: NIC `mlx5_0;touch${{IFS}}/tmp/x` (NIC0): ';' is not allowed in a NIC name", t.display())),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // The same capture with an ordinary name imports; an existing --out is never overwritten.
    std::fs::write(&t, topo.replace(";touch${IFS}/tmp/x", "")).unwrap();
    let mine = tmp.path().join("mine.toml");
    std::fs::write(&mine, "my own file\n").unwrap();
    let o = sweep(&[
        "profile",
        "import",
        t.to_str().unwrap(),
        "--name",
        "x",
        "--nodes",
        "1",
        "--out",
        mine.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("exists: sweep does not overwrite it"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my own file\n");
}

/// `templates check` on one template file; returns (exit code, stderr).
fn check_template(body: &str) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("t.sbatch.j2");
    std::fs::write(&f, body).unwrap();
    let o = sweep(&["templates", "check", f.to_str().unwrap()]);
    (o.status.code(), stderr(&o))
}

#[test]
fn runaway_and_path_reading_templates_stop_with_a_clear_error() {
    let (code, err) = check_template(
        "#!/bin/bash\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("t.sbatch.j2:2: the template ran past its limit of 20000000 instructions"),
        "{err}"
    );

    let (code, err) =
        check_template("#!/bin/bash\n{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the rendered script would exceed 64 MiB"),
        "{err}"
    );

    let (code, err) = check_template(
        "#!/bin/bash\n{% set x %}{% for i in range(1000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the rendered script would exceed 64 MiB"),
        "{err}"
    );

    for inc in ["/etc/hostname", "../../../../etc/hostname"] {
        let (code, err) = check_template(&format!("#!/bin/bash\n{{% include \"{inc}\" %}}\n"));
        assert_eq!(code, Some(1), "{inc}");
        assert!(
            err.contains("template not found") || err.contains("not found"),
            "{inc}: {err}"
        );
    }

    let (code, err) = check_template("#!/bin/bash\n# {{ \"a\\ntouch /tmp/x\" }}\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("t.sbatch.j2:2:") && err.contains("holds the control character '\\n'"),
        "{err}"
    );
}

#[test]
fn every_printed_value_is_one_shell_word_unless_the_template_says_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("t.sbatch.j2");
    std::fs::write(
        &f,
        "#!/bin/bash\n\
a={{ 'x y' }}\n\
b={{ \"it's $(id)\" }}\n\
c={{ 42 }} d={{ 1.5 }} e={{ true }}\n\
f={{ 'plain-1.0_x:y@z,w/v+%=' }}\n\
g={{ '' }}\n\
h={{ 'x y'|sq }}\n\
i={{ '$HOME'|safe }}\n\
{% autoescape false %}j={{ '$HOME' }}{% endautoescape %}\n",
    )
    .unwrap();
    let o = sweep(&["templates", "check", f.to_str().unwrap(), "--print"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "a='x y'\n",
        "b='it'\\''s $(id)'\n",
        "c=42 d=1.5 e=true\n",
        "f=plain-1.0_x:y@z,w/v+%=\n",
        "g=''\n",
        "h='x y'\n",
        "i=$HOME\n",
        "j=$HOME",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
}

fn write_expanded(dir: &Path) -> (PathBuf, PathBuf) {
    let tmp = dir.join("in");
    std::fs::create_dir_all(&tmp).unwrap();
    let f = tmp.join("s.toml");
    std::fs::write(&f, plain_sweep()).unwrap();
    (tmp, f)
}

/// `expand` of `text` (written to `name` under `dir`) into `out`, with `extra` arguments.
fn expand_text(dir: &Path, name: &str, text: &str, out: &Path, extra: &[&str]) -> Output {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    let mut args = vec![
        "expand",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sweep(&args)
}

/// Asserts exit 1 and each of `wants` in stderr.
fn fails_with(o: &Output, wants: &[&str]) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    for w in wants {
        assert!(stderr(o).contains(w), "wanted `{w}` in\n{}", stderr(o));
    }
}

#[test]
fn expand_never_writes_over_what_it_does_not_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, _) = write_expanded(tmp.path());
    let text = plain_sweep();
    let expand = |name: &str, text: &str, out: &Path, extra: &[&str]| {
        expand_text(&input, name, text, out, extra)
    };

    // A directory of the user's, with a jobs.csv of theirs.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("jobs.csv"), "my,own\n").unwrap();
    fails_with(
        &expand("s.toml", &text, &mine, &[]),
        &[
            "is not empty and is not a sweep campaign (no campaign.json): nothing was written",
            "(replacing its jobs.csv)",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("jobs.csv")).unwrap(),
        "my,own\n"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
    // --force says what it replaces, and does it.
    let o = expand("s.toml", &text, &mine, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--force: ") && stderr(&o).contains("jobs.csv is replaced"),
        "{}",
        stderr(&o)
    );
    assert!(mine.join("campaign.json").exists());

    // A campaign that ran: state.json says its job was submitted.
    let camp = tmp.path().join("camp");
    let o = expand("s.toml", &text, &camp, &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = std::fs::read_dir(camp.join("jobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let id = id.to_string_lossy().to_string();
    let state = format!(
        "{{\"format\": 1, \"jobs\": {{\"{id}\": {{\"slurm_id\": \"77\", \"attempts\": 1, \"state\": \"COMPLETED\"}}}}}}"
    );
    std::fs::write(camp.join("state.json"), &state).unwrap();
    let manifest = std::fs::read(camp.join("campaign.json")).unwrap();

    // Another campaign over it.
    let other = text.replace("name = \"t\"", "name = \"other\"");
    fails_with(
        &expand("other.toml", &other, &camp, &[]),
        &["holds campaign `t`, not `other` (1 of its jobs were submitted): nothing was written"],
    );
    assert_eq!(std::fs::read(camp.join("campaign.json")).unwrap(), manifest);

    // The same campaign changed so that its submitted job is no longer in it.
    let changed = text.replace("nodes = [2]", "nodes = [1]");
    let dropped = format!(
        "1 job(s) of {} were submitted and are no longer in the sweep file: {id}",
        camp.display()
    );
    fails_with(&expand("changed.toml", &changed, &camp, &[]), &[&dropped]);
    assert_eq!(std::fs::read(camp.join("campaign.json")).unwrap(), manifest);
    let o = expand("changed.toml", &changed, &camp, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = format!(
        "--force: 1 submitted job(s) are dropped from the campaign (their directories are left in place): {id}"
    );
    assert!(stderr(&o).contains(&said), "{}", stderr(&o));

    // A corrupt state is an error for expand, submit, status and cancel; collect warns loudly.
    std::fs::write(camp.join("state.json"), b"\x00\xff garbage").unwrap();
    fails_with(
        &expand("changed.toml", &changed, &camp, &[]),
        &["state.json is corrupt"],
    );
    let c = camp.to_str().unwrap();
    for args in [
        vec!["submit", c, "--dry-run"],
        vec!["status", c],
        vec!["cancel", c],
    ] {
        fails_with(&sweep(&args), &["state.json is corrupt"]);
    }
    let res = tmp.path().join("res");
    let o = sweep(&["--json", "collect", c, "--out", res.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = v["warnings"][0].as_str().unwrap();
    assert!(
        w.contains("state.json is corrupt")
            && w.contains("job states below come from the job markers only"),
        "{w}"
    );
    let runs = v["runs"].as_array().unwrap();
    assert!(
        !runs.is_empty() && runs.iter().all(|r| r["status"] == "unknown"),
        "{v}"
    );
}

/// A TOML basic string of `s`.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[test]
fn hostile_values_in_every_template_parameter_env_and_profile_string_never_execute() {
    let tmp = tempfile::tempdir().unwrap();
    let canary = tmp.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let h = |tag: &str| toml_str(&hostile(&canary, tag));

    // Every free-text string of the profile (names and NICs have alphabets of their own).
    let profile = profile_with(
        "description = \"local Slurm test cluster: 4 fake nodes on one host, 8 fake H200 each, no real GPUs\"",
        &format!("description = {}", h("p-description")),
    )
    .replacen("model = \"fake H200 (local Slurm, no devices)\"", &format!("model = {}", h("p-gpu-model")), 1)
    .replacen("model = \"configured: 2 sockets x 8 cores (local Slurm)\"", &format!("model = {}", h("p-cpu-model")), 1)
    .replacen("[env]", &format!("[env]\nSWEEP_P_ENV = {}", h("p-env")), 1)
    .replacen("python = \"python3\"", &format!("python = {}\nnccl_tests = {}", h("p-python"), h("p-nccl-tests")), 1);
    let p = tmp.path().join("p.toml");
    std::fs::write(&p, &profile).unwrap();

    // Every free parameter the built-in templates read, env entries at every level, an upper-case
    // parameter (exported), and an extra sbatch option. One stage per built-in template.
    let mut text = format!(
        "name = \"hostile\"\ncluster = {}\ndescription = {}\n\n[defaults]\ngpus_per_node = 2\nlabel = {}\nSWEEP_POINT_ENV = {}\n\n[slurm]\ntime = \"00:05:00\"\nextra = [{}]\n\n[env]\nSWEEP_S_ENV = {}\nNCCL_SOCKET_IFNAME = {}\nGLOO_SOCKET_IFNAME = {}\nNCCL_IB_GID_INDEX = {}\n",
        toml_str(p.to_str().unwrap()),
        h("s-description"),
        h("label"),
        h("point-env"),
        toml_str(&format!("--comment={}", hostile(&canary, "extra"))),
        h("s-env"),
        // Read at run time by the preflight's interface and GID checks.
        h("nccl-ifname"),
        h("gloo-ifname"),
        h("gid-index"),
    );
    let free = [
        "expect_gpu_name",
        "expect_driver",
        "expect_torch",
        "expect_deepspeed",
        "expect_cuda",
        "expect_nccl",
        "python",
        "train_script",
        "train_args",
        "collective",
        "nccl_tests_dir",
    ];
    let params: Vec<String> = free.iter().map(|k| format!("{k} = {}", h(k))).collect();
    for (i, t) in [
        "cpu-smoke.sbatch.j2",
        "deepspeed-train.sbatch.j2",
        "nccl-tests.sbatch.j2",
        "preflight.sbatch.j2",
        "nccl-pairs.sbatch.j2",
    ]
    .iter()
    .enumerate()
    {
        text.push_str(&format!(
            "\n[[stage]]\nname = \"s{i}\"\ntemplate = \"{t}\"\n[stage.params]\n{}\n{}\n[stage.env]\nSWEEP_T_ENV = {}\n",
            params.join("\n"),
            if i == 0 {
                // The one command that is code by design; here it records what the job saw.
                "command = \"printenv SWEEP_S_ENV SWEEP_T_ENV SWEEP_P_ENV SWEEP_POINT_ENV > \\\"$JOB_DIR/env.out\\\"\"".to_string()
            } else {
                String::new()
            },
            h("t-env"),
        ));
    }
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, &text).unwrap();
    let dir = tmp.path().join("camp");
    let o = sweep(&[
        "expand",
        f.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let scripts: Vec<PathBuf> = std::fs::read_dir(dir.join("jobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(scripts.len(), 5);
    for d in &scripts {
        let script = std::fs::read_to_string(d.join("job.sbatch")).unwrap();
        let st = std::process::Command::new("bash")
            .arg("-n")
            .arg(d.join("job.sbatch"))
            .status()
            .unwrap();
        assert!(st.success(), "bash -n {}", d.display());
        // The extra option reaches the header as one quoted word.
        let extra = format!("--comment={}", hostile(&canary, "extra"));
        // POSIX quoting, with each backslash outside the quotes (sbatch escapes inside them).
        let mut quoted = String::from("'");
        for ch in extra.chars() {
            match ch {
                '\'' => quoted.push_str("'\\''"),
                '\\' => quoted.push_str("'\\\\'"),
                ch => quoted.push(ch),
            }
        }
        quoted.push('\'');
        assert!(
            script.contains(&format!("#SBATCH {quoted}\n")),
            "{}",
            d.display()
        );
    }

    let o = sweep(&["submit", "--executor", "local", dir.to_str().unwrap()]);
    // Several jobs fail (no python called that, no nccl-tests binary, `--mpi` on one node):
    // what matters is that every script ran and nothing in the values did.
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    for d in &scripts {
        assert!(
            d.join("started").exists(),
            "{} never started:\n{out}",
            d.display()
        );
        assert!(
            d.join("finished").exists(),
            "{} never finished:\n{out}",
            d.display()
        );
    }
    let fired: Vec<String> = std::fs::read_dir(&canary)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(fired.is_empty(), "values executed: {fired:?}\n{out}");

    // And the values arrived intact, byte for byte.
    let smoke = scripts
        .iter()
        .find(|d| d.file_name().unwrap().to_string_lossy().starts_with("s0"))
        .unwrap();
    let env_out = std::fs::read_to_string(smoke.join("env.out")).unwrap();
    let want: Vec<String> = ["s-env", "t-env", "p-env", "point-env"]
        .iter()
        .map(|t| hostile(&canary, t))
        .collect();
    assert_eq!(env_out, want.join("\n") + "\n");
}

#[test]
fn a_control_byte_in_a_log_row_is_a_warning_never_a_changed_figure() {
    let text =
        std::fs::read(root().join("tests/fixtures/device-h100-2026-11-24/nccl-collectives.log"))
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Line 13's busbw `1387.4` with its `8` replaced: once by NUL, once by DEL.
    for (name, byte) in [("nul.log", 0u8), ("del.log", 0x7f)] {
        let mut bytes = text.clone();
        let line_start = bytes
            .split(|&b| b == b'\n')
            .take(12)
            .map(|l| l.len() + 1)
            .sum::<usize>();
        let at = line_start
            + bytes[line_start..]
                .windows(6)
                .position(|w| w == b"1387.4")
                .unwrap()
            + 2;
        bytes[at] = byte;
        std::fs::write(logs.join(name), bytes).unwrap();
    }
    let res = tmp.path().join("res");
    let o = sweep(&[
        "--json",
        "collect",
        "--logs",
        logs.to_str().unwrap(),
        "--out",
        res.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    for (name, byte) in [("nul.log", "0x00"), ("del.log", "0x7f")] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(name) && w.contains(&format!("line 13: control byte {byte}"))),
            "{name}: {warnings:?}"
        );
    }
    let nccl = std::fs::read_to_string(res.join("nccl.csv")).unwrap();
    assert!(
        !nccl.contains(",137.4,") && !nccl.contains(",13.4,"),
        "{nccl}"
    );
    // The other rows of both files are there, as in the clean log.
    for name in ["nul.log", "del.log"] {
        assert!(
            !nccl.lines().any(|l| l.starts_with(&format!("{name},13,"))),
            "{nccl}"
        );
        assert!(
            nccl.lines().any(|l| l.starts_with(&format!("{name},12,"))),
            "{nccl}"
        );
        assert!(
            nccl.lines().any(|l| l.starts_with(&format!("{name},30,"))),
            "{nccl}"
        );
    }
}

#[test]
fn a_hand_edited_manifest_cannot_lead_commands_out_of_their_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, f) = write_expanded(tmp.path());
    let camp = tmp.path().join("camp");
    let o = sweep(&[
        "expand",
        f.to_str().unwrap(),
        "--out",
        camp.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let original = std::fs::read_to_string(camp.join("campaign.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&original).unwrap();
    let mut bad_name = m.clone();
    bad_name["campaign"] = "..".into();
    let mut bad_dir = m.clone();
    bad_dir["jobs"][0]["dir"] = "../../../etc".into();
    for (bad, want) in [
        (
            bad_name,
            "campaign name `..`: a name cannot start with '.' or '-'",
        ),
        (
            bad_dir,
            "with directory `../../../etc`: a job is jobs/<id>, its id a name",
        ),
    ] {
        std::fs::write(
            camp.join("campaign.json"),
            serde_json::to_string(&bad).unwrap(),
        )
        .unwrap();
        for cmd in ["collect", "status"] {
            let o = sweep(&[cmd, camp.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(1), "{cmd}");
            assert!(stderr(&o).contains(want), "{cmd}: {}", stderr(&o));
        }
    }
}
