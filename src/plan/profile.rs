//! Cluster profiles (`slurm/clusters/*.toml`): what the hardware is, how GPUs map to NUMA nodes,
//! CPU cores and NICs, and which environment every job on it gets.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::diag::{InputError, Source};
use crate::path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub slurm: ProfileSlurm,
    pub gpu: GpuSpec,
    pub cpu: CpuSpec,
    #[serde(default, rename = "nic")]
    pub nics: Vec<Nic>,
    /// One entry per GPU of a node, by local GPU index.
    #[serde(rename = "gpu_map")]
    pub gpu_map: Vec<GpuAffinity>,
    /// Environment exported by every job (NCCL variables and the like).
    #[serde(default)]
    pub env: IndexMap<String, String>,
    #[serde(default)]
    pub paths: ProfilePaths,
    /// What the plan check's time estimate assumes on this cluster (`[timing]`).
    #[serde(default)]
    pub timing: ProfileTiming,
    /// The bootstrap interfaces and the RDMA network's settings (`[network]`).
    #[serde(default)]
    pub network: Network,
}

/// `[timing]`: the figures of the run-time estimate (`timing.rs`). Each is optional; the
/// documented default stands in for one not given.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTiming {
    /// Seconds from a training job's start to its first step: interpreter and imports, model
    /// build, DeepSpeed (ZeRO-3 partitioning) and NCCL initialisation. Default 120.
    #[serde(default)]
    pub startup_s: Option<f64>,
    /// Model-FLOPs utilisation a training step is expected to reach, 0-1. Default 0.40.
    #[serde(default)]
    pub expected_mfu: Option<f64>,
    /// Share of the theoretical bus bandwidth (NVLink in a node, the NICs' line rate between
    /// nodes) nccl-tests is expected to reach, 0-1. Default 0.80.
    #[serde(default)]
    pub busbw_fraction: Option<f64>,
    /// Seconds to launch one `srun` of nccl-tests (MPI wire-up and NCCL init). Default 10.
    #[serde(default)]
    pub launch_s: Option<f64>,
}

/// `[network]`: what NCCL's and Gloo's bootstrap sockets use and what the RoCE ports should be.
/// Each key set is exported by every job (`socket_ifname` as `NCCL_SOCKET_IFNAME`,
/// `gloo_socket_ifname` as `GLOO_SOCKET_IFNAME`, `roce_gid_index` as `NCCL_IB_GID_INDEX`) and
/// checked by the preflight on every node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// `NCCL_SOCKET_IFNAME`, in NCCL's syntax: a comma list of interface-name prefixes, `^`
    /// first to exclude them, `=` (after any `^`) for exact names (`eth0`, `=eth0`, `^docker,lo`).
    #[serde(default)]
    pub socket_ifname: Option<String>,
    /// `GLOO_SOCKET_IFNAME`: a comma list of exact interface names. Defaults to
    /// `socket_ifname` when that names interfaces (no `^`), its `=` removed.
    #[serde(default)]
    pub gloo_socket_ifname: Option<String>,
    /// `NCCL_IB_GID_INDEX`: the GID of each RoCE port NCCL uses (a RoCE v2 one).
    #[serde(default)]
    pub roce_gid_index: Option<u32>,
    /// The RDMA ports' active MTU (`ibv_devinfo`'s `active_mtu`: 256, 512, 1024, 2048 or 4096).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The MTU of the RoCE ports' netdevs (`/sys/class/net/<dev>/mtu`, e.g. 9000).
    #[serde(default)]
    pub netdev_mtu: Option<u32>,
}

impl Network {
    /// The Gloo interfaces: the key, else `socket_ifname` when it names interfaces.
    pub fn gloo_ifname(&self) -> Option<String> {
        self.gloo_socket_ifname.clone().or_else(|| {
            self.socket_ifname
                .as_deref()
                .filter(|s| !s.starts_with('^'))
                .map(|s| s.trim_start_matches('=').to_string())
        })
    }

    /// The environment the keys stand for, in a fixed order.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(s) = &self.socket_ifname {
            env.push(("NCCL_SOCKET_IFNAME".to_string(), s.clone()));
        }
        if let Some(s) = self.gloo_ifname() {
            env.push(("GLOO_SOCKET_IFNAME".to_string(), s));
        }
        if let Some(i) = self.roce_gid_index {
            env.push(("NCCL_IB_GID_INDEX".to_string(), i.to_string()));
        }
        env
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSlurm {
    #[serde(default)]
    pub partition: Option<String>,
    /// Nodes available to a campaign: points asking for more are rejected at expand time.
    pub nodes: u32,
    /// Hostlist expression of the nodes, informational (`hgx-[0001-0008]`).
    #[serde(default)]
    pub nodelist: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub qos: Option<String>,
    /// Whether `--gpus-per-node` is how this site asks for GPUs (else `--gres=gpu:N`).
    #[serde(default = "yes")]
    pub gpus_per_node_flag: bool,
    /// MPI plugin for `srun --mpi=` (pmix on most GPU clusters).
    #[serde(default = "default_mpi")]
    pub mpi: String,
}

fn yes() -> bool {
    true
}
fn default_mpi() -> String {
    "pmix".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    pub model: String,
    pub per_node: u32,
    /// Peak dense BF16 tensor throughput per GPU, TFLOP/s (no sparsity).
    pub peak_bf16_tflops: f64,
    /// Usable HBM per GPU in GiB (as `nvidia-smi` reports memory.total).
    pub hbm_gib: f64,
    #[serde(default)]
    pub hbm_tb_s: Option<f64>,
    /// NVLink bandwidth per GPU per direction, GB/s (the figure nccl-tests busbw approaches).
    #[serde(default)]
    pub nvlink_gb_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSpec {
    #[serde(default)]
    pub model: String,
    pub sockets: u32,
    pub cores_per_socket: u32,
    #[serde(default = "one")]
    pub threads_per_core: u32,
    pub numa_nodes: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// RDMA device name (`mlx5_0`) or netdev for plain Ethernet.
    pub name: String,
    #[serde(default)]
    pub netdev: Option<String>,
    #[serde(default = "one")]
    pub port: u32,
    pub numa: u32,
    pub rate_gbps: f64,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuAffinity {
    pub gpu: u32,
    pub numa: u32,
    /// Cores a rank driving this GPU is bound to, in cpulist syntax (`0-13` or `0-13,112-125`).
    pub cpus: String,
    #[serde(default)]
    pub nic: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePaths {
    /// Directory holding nccl-tests binaries (`all_reduce_perf`, ...).
    #[serde(default)]
    pub nccl_tests: Option<String>,
    /// Python interpreter of the training environment.
    #[serde(default)]
    pub python: Option<String>,
    /// Commands run at the top of every job (module loads, venv activation).
    #[serde(default)]
    pub setup: Vec<String>,
}

impl Profile {
    pub fn load(path: &Path) -> Result<(Profile, String), InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| InputError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read cluster profile: {e}"),
            source_line: None,
        })?;
        let p = Self::parse(path, &text)?;
        Ok((p, text))
    }

    pub fn parse(path: &Path, text: &str) -> Result<Profile, InputError> {
        let src = Source::new(path, text);
        let p: Profile = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        p.validate(&src)?;
        Ok(p)
    }

    /// Every string of a profile ends up in job scripts or sbatch lines: each is checked as what
    /// it is (a name, a NIC, a hostlist), every figure as a positive number.
    fn validate_values(&self, src: &Source) -> Result<(), InputError> {
        use crate::values::*;
        let err = |p: &[crate::diag::Seg], m: String| Err(src.error(p, m));
        if let Some(m) = name_error(&self.name) {
            return err(&path!["name"], format!("profile name: {m}"));
        }
        let texts = [
            (path!["description"].to_vec(), Some(&self.description)),
            (path!["gpu", "model"].to_vec(), Some(&self.gpu.model)),
            (path!["cpu", "model"].to_vec(), Some(&self.cpu.model)),
            (
                path!["paths", "python"].to_vec(),
                self.paths.python.as_ref(),
            ),
            (
                path!["paths", "nccl_tests"].to_vec(),
                self.paths.nccl_tests.as_ref(),
            ),
        ];
        for (p, v) in texts {
            if let Some(m) = v.and_then(|v| control_error(v)) {
                return err(&p, m);
            }
        }
        for (i, line) in self.paths.setup.iter().enumerate() {
            if let Some(c) = control_char(line).filter(|&c| c != '\t') {
                return err(
                    &path!["paths", "setup", i],
                    format!("a setup command is one line; it holds the control character {c:?}"),
                );
            }
        }
        let names = [
            ("partition", &self.slurm.partition),
            ("account", &self.slurm.account),
            ("qos", &self.slurm.qos),
        ];
        for (k, v) in names {
            if let Some(m) = v.as_deref().and_then(slurm_name_error) {
                return err(&path!["slurm", k], m);
            }
        }
        if let Some(m) = self.slurm.nodelist.as_deref().and_then(hostlist_error) {
            return err(&path!["slurm", "nodelist"], m);
        }
        if let Some(m) = mpi_error(&self.slurm.mpi) {
            return err(&path!["slurm", "mpi"], m);
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        // 0 says "not known" (what an import of an unknown GPU writes); below 0 is a mistake.
        for (k, x) in [
            ("peak_bf16_tflops", self.gpu.peak_bf16_tflops),
            ("hbm_gib", self.gpu.hbm_gib),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return err(
                    &path!["gpu", k],
                    format!("must be a positive number (0 if not known), not {x}"),
                );
            }
        }
        let figures = [
            ("hbm_tb_s", self.gpu.hbm_tb_s),
            ("nvlink_gb_s", self.gpu.nvlink_gb_s),
        ];
        for (k, v) in figures {
            if let Some(x) = v
                && !positive(x)
            {
                return err(
                    &path!["gpu", k],
                    format!(
                        "must be a positive number, not {x} (utilisation and MFU are divided by it)"
                    ),
                );
            }
        }
        let t = &self.timing;
        for (k, v, max) in [
            ("startup_s", t.startup_s, f64::INFINITY),
            ("expected_mfu", t.expected_mfu, 1.0),
            ("busbw_fraction", t.busbw_fraction, 1.0),
            ("launch_s", t.launch_s, f64::INFINITY),
        ] {
            if let Some(x) = v
                && !(x.is_finite() && x >= 0.0 && x <= max && (x > 0.0 || k.ends_with("_s")))
            {
                return err(
                    &path!["timing", k],
                    if max.is_finite() {
                        format!("must be a fraction above 0 and at most 1 (0.4 for 40 %), not {x}")
                    } else {
                        format!("must be a number of seconds, 0 or more, not {x}")
                    },
                );
            }
        }
        let counts = [
            ("sockets", self.cpu.sockets),
            ("cores_per_socket", self.cpu.cores_per_socket),
            ("threads_per_core", self.cpu.threads_per_core),
            ("numa_nodes", self.cpu.numa_nodes),
        ];
        for (k, v) in counts {
            if v == 0 {
                return err(&path!["cpu", k], "must be at least 1".into());
            }
        }
        for (i, n) in self.nics.iter().enumerate() {
            if let Some(m) = nic_name_error(&n.name) {
                return err(&path!["nic", i, "name"], m);
            }
            if let Some(m) = n.netdev.as_deref().and_then(nic_name_error) {
                return err(&path!["nic", i, "netdev"], m);
            }
            if let Some(m) = n.kind.as_deref().and_then(control_error) {
                return err(&path!["nic", i, "kind"], m);
            }
            if n.port == 0 {
                return err(&path!["nic", i, "port"], "ports are numbered from 1".into());
            }
            if !positive(n.rate_gbps) {
                return err(
                    &path!["nic", i, "rate_gbps"],
                    format!("must be a positive number of Gb/s, not {}", n.rate_gbps),
                );
            }
            if n.numa >= self.cpu.numa_nodes {
                return err(
                    &path!["nic", i, "numa"],
                    format!(
                        "NUMA node {} does not exist (cpu.numa_nodes = {})",
                        n.numa, self.cpu.numa_nodes
                    ),
                );
            }
            if self.nics[..i]
                .iter()
                .any(|o| o.name == n.name && o.port == n.port)
            {
                return err(
                    &path!["nic", i, "name"],
                    format!("NIC `{}` port {} is declared twice", n.name, n.port),
                );
            }
        }
        for (k, v) in &self.env {
            if let Some(m) = control_error(v) {
                return err(&path!["env", k.as_str()], m);
            }
        }
        self.validate_network(src)
    }

    /// `[network]`: interface lists in NCCL's and Gloo's syntax, MTUs in range, and no
    /// `[env]` entry that says otherwise.
    fn validate_network(&self, src: &Source) -> Result<(), InputError> {
        use crate::values::ifname_list_error;
        let n = &self.network;
        let err = |k: &str, m: String| Err(src.error(&path!["network", k], m));
        if let Some(m) = n
            .socket_ifname
            .as_deref()
            .and_then(|s| ifname_list_error(s, true))
        {
            return err("socket_ifname", m);
        }
        if let Some(m) = n
            .gloo_socket_ifname
            .as_deref()
            .and_then(|s| ifname_list_error(s, false))
        {
            return err("gloo_socket_ifname", m);
        }
        if let Some(m) = n.mtu.filter(|m| ![256, 512, 1024, 2048, 4096].contains(m)) {
            return err(
                "mtu",
                format!("an RDMA MTU is 256, 512, 1024, 2048 or 4096, not {m}"),
            );
        }
        if let Some(m) = n.netdev_mtu.filter(|m| !(68..=65535).contains(m)) {
            return err(
                "netdev_mtu",
                format!("an interface MTU is 68 to 65535, not {m}"),
            );
        }
        for (k, v) in n.env() {
            if let Some(e) = self.env.get(&k).filter(|e| **e != v) {
                return Err(src.error(
                    &path!["env", k.as_str()],
                    format!(
                        "`{k} = {e:?}` contradicts [network], which exports {k}={v:?}: keep one"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self, src: &Source) -> Result<(), InputError> {
        self.validate_values(src)?;
        if self.gpu.per_node == 0 {
            return Err(src.error(&path!["gpu", "per_node"], "must be at least 1"));
        }
        if self.slurm.nodes == 0 {
            return Err(src.error(&path!["slurm", "nodes"], "must be at least 1"));
        }
        if self.gpu_map.len() != self.gpu.per_node as usize {
            return Err(src.error(
                &path!["gpu_map"],
                format!(
                    "{} [[gpu_map]] entries for gpu.per_node = {}: give one per GPU",
                    self.gpu_map.len(),
                    self.gpu.per_node
                ),
            ));
        }
        let total_cpus = self
            .cpu
            .sockets
            .checked_mul(self.cpu.cores_per_socket)
            .and_then(|x| x.checked_mul(self.cpu.threads_per_core))
            .ok_or_else(|| src.error(&path!["cpu"], "sockets x cores x threads is out of range"))?;
        for (i, g) in self.gpu_map.iter().enumerate() {
            if g.gpu as usize != i {
                return Err(src.error(
                    &path!["gpu_map", i, "gpu"],
                    format!(
                        "entry {i} is for GPU {}: list GPUs in order 0..{}",
                        g.gpu, self.gpu.per_node
                    ),
                ));
            }
            let cpus =
                parse_cpulist(&g.cpus).map_err(|m| src.error(&path!["gpu_map", i, "cpus"], m))?;
            if let Some(bad) = cpus.iter().find(|&&c| c >= total_cpus) {
                return Err(src.error(
                    &path!["gpu_map", i, "cpus"],
                    format!("CPU {bad} does not exist: the [cpu] section gives {total_cpus} logical CPUs"),
                ));
            }
            if g.numa >= self.cpu.numa_nodes {
                return Err(src.error(
                    &path!["gpu_map", i, "numa"],
                    format!(
                        "NUMA node {} does not exist (cpu.numa_nodes = {})",
                        g.numa, self.cpu.numa_nodes
                    ),
                ));
            }
            if let Some(nic) = &g.nic
                && !self.nics.iter().any(|n| &n.name == nic)
            {
                return Err(src.error(
                    &path!["gpu_map", i, "nic"],
                    format!("NIC `{nic}` is not declared in a [[nic]] section"),
                ));
            }
        }
        for (k, _) in &self.env {
            if !is_env_name(k) {
                return Err(src.error(
                    &path!["env", k.as_str()],
                    "not a valid environment variable name",
                ));
            }
        }
        Ok(())
    }

    /// The first CPU two GPUs' lists share, as (later GPU, CPU, earlier GPU): ranks pinned to one
    /// core compete for it and skew the figures of both, but a site may mean it (a shared
    /// housekeeping core, a test profile), so the plan check warns rather than refuses.
    pub(crate) fn overlapping_cpus(&self) -> Option<(usize, u32, usize)> {
        let mut owner: std::collections::HashMap<u32, usize> = Default::default();
        for (i, g) in self.gpu_map.iter().enumerate() {
            for c in parse_cpulist(&g.cpus).unwrap_or_default() {
                if let Some(&other) = owner.get(&c) {
                    return Some((i, c, other));
                }
                owner.insert(c, i);
            }
        }
        None
    }

    /// The first GPU whose `cpus` names no second hardware thread although `threads_per_core` > 1:
    /// Linux numbers a core's siblings `sockets x cores_per_socket` above its first thread, so a
    /// list entirely below that is physical cores written without their siblings (the convention
    /// is logical CPUs, siblings included): Slurm, counting threads, would give the rank half the
    /// cores, or masks outside its step.
    pub(crate) fn without_smt_siblings(&self) -> Option<usize> {
        if self.cpu.threads_per_core < 2 {
            return None;
        }
        let cores = self.cpu.sockets * self.cpu.cores_per_socket;
        self.gpu_map
            .iter()
            .position(|g| parse_cpulist(&g.cpus).is_ok_and(|c| c.iter().all(|&x| x < cores)))
    }

    /// Logical CPUs a rank on local GPU `gpu` may use.
    pub(crate) fn cpus_of(&self, gpu: usize) -> Vec<u32> {
        self.gpu_map
            .get(gpu)
            .and_then(|g| parse_cpulist(&g.cpus).ok())
            .unwrap_or_default()
    }

    /// Resolves `name` as a path if it looks like one, else as `slurm/clusters/<name>.toml` found
    /// next to the sweep file's project (walking up) or in the current directory.
    /// Where `find` looks for a profile, in order.
    pub(crate) fn searched(name: &str, sweep_file: &Path) -> Vec<PathBuf> {
        let as_path = Path::new(name);
        if name.ends_with(".toml") || name.contains('/') {
            if as_path.is_absolute() {
                return vec![as_path.to_path_buf()];
            }
            let base = sweep_file.parent().unwrap_or(Path::new("."));
            return vec![base.join(as_path), as_path.to_path_buf()];
        }
        let file = format!("{name}.toml");
        let mut out = Vec::new();
        let mut dir = sweep_file.parent().map(|p| p.to_path_buf());
        while let Some(d) = dir {
            out.push(d.join("slurm").join("clusters").join(&file));
            dir = d.parent().map(|p| p.to_path_buf());
        }
        let cwd = Path::new("slurm").join("clusters").join(file);
        if !out.contains(&cwd) {
            out.push(cwd);
        }
        out
    }

    /// The profiles in the directories `searched` looked in: `name (path)`.
    pub(crate) fn found_near(name: &str, sweep_file: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for p in Self::searched(name, sweep_file) {
            if let Some(d) = p.parent().filter(|d| d.is_dir())
                && !dirs.iter().any(|x| x == d)
            {
                dirs.push(d.to_path_buf());
            }
        }
        for d in dirs {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(|p| p.display().to_string())
                .collect();
            names.sort();
            out.extend(names);
        }
        out
    }

    pub(crate) fn find(name: &str, sweep_file: &Path) -> PathBuf {
        let as_path = Path::new(name);
        if name.ends_with(".toml") || name.contains('/') {
            if as_path.is_absolute() {
                return as_path.to_path_buf();
            }
            let base = sweep_file.parent().unwrap_or(Path::new("."));
            let rel = base.join(as_path);
            if rel.exists() {
                return rel;
            }
            return as_path.to_path_buf();
        }
        let file = format!("{name}.toml");
        let mut dir = sweep_file.parent().map(|p| p.to_path_buf());
        while let Some(d) = dir {
            let cand = d.join("slurm").join("clusters").join(&file);
            if cand.exists() {
                return cand;
            }
            dir = d.parent().map(|p| p.to_path_buf());
        }
        Path::new("slurm").join("clusters").join(file)
    }
}

pub(crate) fn is_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses Linux cpulist syntax (`0-13,112-125`, `3`, `0-7:2`) into sorted, unique CPU ids.
pub(crate) fn parse_cpulist(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (range, stride) = match part.split_once(':') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .map_err(|_| format!("bad stride in `{part}`"))?,
            ),
            None => (part, 1),
        };
        if stride == 0 {
            return Err(format!("zero stride in `{part}`"));
        }
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (range, range),
        };
        let a: u32 = a
            .parse()
            .map_err(|_| format!("`{part}` is not a CPU number or range"))?;
        let b: u32 = b
            .parse()
            .map_err(|_| format!("`{part}` is not a CPU number or range"))?;
        if b < a {
            return Err(format!("range `{part}` runs backwards"));
        }
        if b - a > 65536 {
            return Err(format!("range `{part}` is implausibly large"));
        }
        out.extend((a..=b).step_by(stride as usize));
    }
    if out.is_empty() {
        return Err("empty CPU list".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Formats CPU ids back into compact cpulist syntax, as `/proc/self/status` prints it.
pub(crate) fn format_cpulist(cpus: &[u32]) -> String {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The hexadecimal mask `srun --cpu-bind=mask_cpu:` takes for a set of CPUs.
pub(crate) fn cpu_mask_hex(cpus: &[u32]) -> String {
    let Some(&max) = cpus.iter().max() else {
        return "0x0".into();
    };
    let mut nibbles = vec![0u8; max as usize / 4 + 1];
    for &c in cpus {
        nibbles[c as usize / 4] |= 1 << (c % 4);
    }
    // The highest nibble holds `max`, so it is never zero: no leading zeros to strip.
    let hex: String = nibbles.iter().rev().map(|n| format!("{n:x}")).collect();
    format!("0x{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists_round_trip() {
        let v = parse_cpulist("0-3,8,10-11").unwrap();
        assert_eq!(v, vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(format_cpulist(&v), "0-3,8,10-11");
        assert_eq!(parse_cpulist("0-7:2").unwrap(), vec![0, 2, 4, 6]);
        assert!(parse_cpulist("4-1").is_err());
        assert!(parse_cpulist("x").is_err());
    }

    #[test]
    fn network_keys_become_the_bootstrap_environment() {
        let local = include_str!("../../slurm/clusters/local.toml");
        let with = |net: &str| {
            Profile::parse(
                Path::new("p.toml"),
                &local.replacen("[paths]", &format!("[network]\n{net}\n\n[paths]"), 1),
            )
        };
        let env = |net: &str| with(net).unwrap().network.env();
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        // Gloo follows NCCL where NCCL names interfaces (its `=` dropped: Gloo's are exact).
        assert_eq!(
            env("socket_ifname = \"=eth0,eth1\"\nroce_gid_index = 3"),
            vec![
                kv("NCCL_SOCKET_IFNAME", "=eth0,eth1"),
                kv("GLOO_SOCKET_IFNAME", "eth0,eth1"),
                kv("NCCL_IB_GID_INDEX", "3"),
            ]
        );
        // An exclusion says nothing Gloo can use.
        assert_eq!(
            env("socket_ifname = \"^docker,lo\""),
            vec![kv("NCCL_SOCKET_IFNAME", "^docker,lo")]
        );
        assert_eq!(
            env("socket_ifname = \"^lo\"\ngloo_socket_ifname = \"ens1\""),
            vec![
                kv("NCCL_SOCKET_IFNAME", "^lo"),
                kv("GLOO_SOCKET_IFNAME", "ens1")
            ]
        );
        assert!(env("").is_empty());
        // The same value in [env] is no contradiction; another is.
        assert!(
            Profile::parse(
                Path::new("p.toml"),
                &local
                    .replacen("[env]", "[env]\nNCCL_IB_GID_INDEX = \"3\"", 1)
                    .replacen("[paths]", "[network]\nroce_gid_index = 3\n\n[paths]", 1),
            )
            .is_ok()
        );
        for bad in [
            "socket_ifname = \"\"",
            "socket_ifname = \"^\"",
            "socket_ifname = \"eth0,,eth1\"",
            "socket_ifname = \"eth 0\"",
            "gloo_socket_ifname = \"=eth0\"",
            "mtu = 1500",
            "netdev_mtu = 0",
            "unknown = 1",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masks_match_slurm_notation() {
        assert_eq!(cpu_mask_hex(&[0, 1, 2, 3]), "0xf");
        assert_eq!(cpu_mask_hex(&parse_cpulist("0-13").unwrap()), "0x3fff");
        assert_eq!(cpu_mask_hex(&parse_cpulist("14-27").unwrap()), "0xfffc000");
        assert_eq!(cpu_mask_hex(&[64]), "0x10000000000000000");
    }
}
