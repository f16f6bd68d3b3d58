//! `sweep profile import`: a cluster profile from what a node prints, `nvidia-smi topo -m`
//! (GPU -> CPU affinity -> NUMA node -> nearest NIC) and optionally `lscpu` (sockets, cores,
//! threads). What neither says (GPU model and peak, HBM, NIC line rate, node count) comes from
//! options or is marked `CHOSEN` in the output for an admin to confirm.

use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::parsers::nvidia_smi::{Topology, expand_cpulist, parse_topo_reader};
use crate::profile::format_cpulist;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub name: String,
    pub nodes: u32,
    pub partition: Option<String>,
    /// GPU model (`NVIDIA H200`); the peak and HBM default from it when known.
    pub gpu_model: Option<String>,
    pub peak_bf16_tflops: Option<f64>,
    pub hbm_gib: Option<f64>,
    pub nic_rate_gbps: f64,
    /// `lscpu` output.
    pub lscpu: Option<String>,
}

/// Dense BF16 peak (TFLOP/s, no sparsity), HBM (GiB as nvidia-smi reports it) and NVLink
/// (GB/s per direction) of GPUs whose public specifications we know.
fn known_gpu(model: &str) -> Option<(f64, f64, f64)> {
    let m = model.to_ascii_uppercase();
    Some(if m.contains("H200") {
        (989.0, 140.0, 450.0)
    } else if m.contains("H100") {
        (989.0, 79.6, 450.0)
    } else if m.contains("A100") {
        (312.0, if m.contains("40") { 39.4 } else { 79.2 }, 300.0)
    } else {
        return None;
    })
}

fn lscpu_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    })
}

/// Splits each contiguous range of a CPU set into `parts` slices and returns slice `i` of
/// every range: GPUs sharing one NUMA node's set each get their own cores with their SMT
/// siblings (`48-63,176-191` for two GPUs: `48-55,176-183` and `56-63,184-191`).
fn split_cpus(cpus: &[u32], parts: usize, i: usize) -> Vec<u32> {
    if parts <= 1 {
        return cpus.to_vec();
    }
    let mut ranges: Vec<Vec<u32>> = Vec::new();
    for &c in cpus {
        match ranges.last_mut() {
            Some(r) if r.last().is_some_and(|&l| l + 1 == c) => r.push(c),
            _ => ranges.push(vec![c]),
        }
    }
    let mut out = Vec::new();
    for r in ranges {
        let per = r.len() / parts;
        if per == 0 {
            // Fewer CPUs than GPUs in this range: share it.
            out.extend(r);
            continue;
        }
        out.extend(r[i * per..((i + 1) * per).min(r.len())].iter().copied());
    }
    out
}

/// The profile's TOML text for a topology matrix.
pub(crate) fn import(topo_text: &str, opts: &ImportOptions) -> Result<String> {
    let (topos, _warnings) = parse_topo_reader(topo_text.as_bytes());
    let Some(t): Option<&Topology> = topos.iter().max_by_key(|t| t.gpus.len()) else {
        bail!("no `nvidia-smi topo -m` matrix found in the input");
    };
    if t.gpus.is_empty() {
        bail!("the topology matrix lists no GPU");
    }
    check_nic_names(topo_text, t)?;
    let mut s = String::new();
    write_header(&mut s, t, opts);
    write_slurm(&mut s, opts);
    write_gpu(&mut s, t, opts);
    write_cpu(&mut s, t, opts);
    write_nics(&mut s, t, opts);
    write_gpu_map(&mut s, t);
    write_network(&mut s, t);
    let _ = writeln!(s, "\n[env]\n\n[paths]\npython = \"python3\"\nsetup = []");
    Ok(s)
}

/// `[network]`: neither `nvidia-smi topo -m` nor `lscpu` says which interface the bootstrap
/// sockets use, which GID is RoCE v2 or what the MTU is, so the keys are written commented
/// out, with where to read each on a node (the preflight checks them once set).
fn write_network(s: &mut String, t: &Topology) {
    let nic = t
        .nics
        .first()
        .map(|n| n.device.as_str())
        .unwrap_or("mlx5_0");
    let _ = writeln!(
        s,
        "\n[network]\n\
         # CHOSEN: not in the input. Set each from a node; the preflight checks them:\n\
         # socket_ifname = \"=eno1\"   # NCCL_SOCKET_IFNAME (and GLOO_SOCKET_IFNAME): `ip -o addr`, the hosts' interface\n\
         # roce_gid_index = 3          # NCCL_IB_GID_INDEX: N where /sys/class/infiniband/{nic}/ports/1/gid_attrs/types/N is \"RoCE v2\"\n\
         # mtu = 4096                  # `ibv_devinfo -d {nic}`: active_mtu\n\
         # netdev_mtu = 9000           # /sys/class/infiniband/{nic}/device/net/*/mtu"
    );
}

fn check_nic_names(topo_text: &str, t: &Topology) -> Result<()> {
    // NIC names go into the profile and from there into job scripts: a capture is input like
    // any other, so a name outside the kernel's alphabet stops the import at its line.
    for n in &t.nics {
        if let Some(m) = crate::values::nic_name_error(&n.device) {
            let line = topo_text
                .lines()
                .position(|l| l.contains(n.device.as_str()))
                .map_or(String::new(), |i| format!("line {}: ", i + 1));
            bail!("{line}NIC `{}` ({}): {m}", n.device, n.name);
        }
    }
    Ok(())
}

/// The comment saying where the profile came from, its name and description.
fn write_header(s: &mut String, t: &Topology, opts: &ImportOptions) {
    let _ = writeln!(
        s,
        "# Imported by `sweep profile import` from `nvidia-smi topo -m`{}.",
        if opts.lscpu.is_some() {
            " and `lscpu`"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "# GPU -> NUMA -> CPUs -> NIC come from the matrix: each GPU gets the CPUs of its affinity,"
    );
    let _ = writeln!(
        s,
        "# split evenly among the GPUs that share it, and the NIC with the closest PCIe link."
    );
    let _ = writeln!(
        s,
        "# Lines marked CHOSEN are not in the input: confirm them."
    );
    let _ = writeln!(s, "name = {:?}", opts.name);
    let _ = writeln!(
        s,
        "description = \"imported from nvidia-smi topo -m ({} GPUs, {} NICs)\"\n",
        t.gpus.len(),
        t.nics.len()
    );
}

fn write_slurm(s: &mut String, opts: &ImportOptions) {
    let _ = writeln!(s, "[slurm]");
    let _ = writeln!(
        s,
        "nodes = {}{}",
        opts.nodes.max(1),
        if opts.nodes == 0 {
            "                  # CHOSEN: --nodes"
        } else {
            ""
        }
    );
    if let Some(p) = &opts.partition {
        let _ = writeln!(s, "partition = {p:?}");
    }
}

/// `[gpu]`: the model and its figures, from the options or the known models' public
/// specifications, marked CHOSEN where neither gives them.
fn write_gpu(s: &mut String, t: &Topology, opts: &ImportOptions) {
    let model = opts.gpu_model.clone().unwrap_or_default();
    let known = known_gpu(&model);
    let peak = opts.peak_bf16_tflops.or(known.map(|k| k.0));
    let hbm = opts.hbm_gib.or(known.map(|k| k.1));
    let nvlink = known.map(|k| k.2);
    let _ = writeln!(s, "\n[gpu]");
    let _ = writeln!(
        s,
        "model = {:?}{}",
        if model.is_empty() { "unknown" } else { &model },
        if model.is_empty() {
            "          # CHOSEN: --gpu-model"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "per_node = {}", t.gpus.len());
    let _ = writeln!(
        s,
        "peak_bf16_tflops = {:.1}{}",
        peak.unwrap_or(0.0),
        if opts.peak_bf16_tflops.is_none() {
            if known.is_some() {
                "   # dense BF16 of this model (public specification)"
            } else {
                "   # CHOSEN: unknown model, give --peak-bf16-tflops"
            }
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "hbm_gib = {:.1}{}",
        hbm.unwrap_or(0.0),
        if opts.hbm_gib.is_none() {
            if known.is_some() {
                "            # as nvidia-smi reports memory.total"
            } else {
                "            # CHOSEN: give --hbm-gib"
            }
        } else {
            ""
        }
    );
    if let Some(n) = nvlink {
        let _ = writeln!(s, "nvlink_gb_s = {n:.1}");
    }
}

/// `[cpu]`: from lscpu where given, else what the GPUs' affinity shows.
fn write_cpu(s: &mut String, t: &Topology, opts: &ImportOptions) {
    let numas: std::collections::BTreeSet<u32> =
        t.gpus.iter().filter_map(|g| g.numa_node).collect();
    let all_cpus: std::collections::BTreeSet<u32> =
        t.gpus.iter().flat_map(|g| g.cpus.iter().copied()).collect();
    // NUMA ids need not be contiguous (an 8-node EPYC with GPUs on 1, 3, 5, 7).
    let numa_count = numas.iter().max().map(|m| m + 1).unwrap_or(1);
    let _ = writeln!(s, "\n[cpu]");
    match &opts.lscpu {
        Some(l) => {
            let num = |k: &str| lscpu_field(l, k).and_then(|v| v.parse::<u32>().ok());
            let _ = writeln!(
                s,
                "model = {:?}",
                lscpu_field(l, "Model name").unwrap_or("")
            );
            let _ = writeln!(s, "sockets = {}", num("Socket(s)").unwrap_or(1));
            let _ = writeln!(
                s,
                "cores_per_socket = {}",
                num("Core(s) per socket").unwrap_or(1)
            );
            let _ = writeln!(
                s,
                "threads_per_core = {}",
                num("Thread(s) per core").unwrap_or(1)
            );
            let _ = writeln!(
                s,
                "numa_nodes = {}",
                num("NUMA node(s)").unwrap_or(numa_count)
            );
        }
        None => {
            // CPU ids up to the highest in any affinity exist; how they split into sockets,
            // cores and threads only lscpu says.
            let max_id = all_cpus.iter().max().copied().unwrap_or(0);
            let _ = writeln!(
                s,
                "# CHOSEN: no lscpu given; the GPUs' affinity covers {} CPUs (ids up to {max_id}) on {} NUMA node(s).",
                all_cpus.len(),
                numas.len().max(1)
            );
            let _ = writeln!(s, "sockets = 1");
            let _ = writeln!(s, "cores_per_socket = {}", max_id + 1);
            let _ = writeln!(s, "threads_per_core = 1");
            let _ = writeln!(s, "numa_nodes = {numa_count}");
        }
    }
}

/// `[[nic]]`: every NIC of the matrix, on the NUMA node of the GPUs closest to it.
fn write_nics(s: &mut String, t: &Topology, opts: &ImportOptions) {
    let mut nic_numa: Vec<(String, u32)> = Vec::new();
    for n in &t.nics {
        let numa = t
            .gpus
            .iter()
            .find(|g| g.nearest_nics.contains(&n.device))
            .and_then(|g| g.numa_node)
            .unwrap_or(0);
        nic_numa.push((n.device.clone(), numa));
    }
    for (dev, numa) in &nic_numa {
        let _ = writeln!(
            s,
            "\n[[nic]]\nname = {dev:?}\nport = 1\nnuma = {numa}\nrate_gbps = {:.1}{}",
            opts.nic_rate_gbps,
            if opts.nic_rate_gbps == 400.0 {
                "   # CHOSEN: --nic-rate-gbps"
            } else {
                ""
            }
        );
    }
}

/// `[[gpu_map]]`: each GPU's NUMA node, its share of the CPUs of its affinity, and its NIC
/// where one is close by PCIe.
fn write_gpu_map(s: &mut String, t: &Topology) {
    for g in &t.gpus {
        let idx = g.index.unwrap_or(0);
        let sharing: Vec<u32> = t
            .gpus
            .iter()
            .filter(|o| o.cpu_affinity == g.cpu_affinity)
            .filter_map(|o| o.index)
            .collect();
        let pos = sharing.iter().position(|&x| x == idx).unwrap_or(0);
        let cpus = if g.cpus.is_empty() {
            Vec::new()
        } else {
            split_cpus(&g.cpus, sharing.len(), pos)
        };
        let cpus = if cpus.is_empty() {
            g.cpu_affinity
                .clone()
                .and_then(|a| expand_cpulist(&a))
                .unwrap_or_default()
        } else {
            cpus
        };
        let nic = g.nearest_nics.first().filter(|_| {
            g.nearest_nic_link
                .as_deref()
                .is_some_and(|l| l != "SYS" && l != "SOC")
        });
        let _ = writeln!(
            s,
            "\n[[gpu_map]]\ngpu = {idx}\nnuma = {}\ncpus = {:?}",
            g.numa_node.unwrap_or(0),
            if cpus.is_empty() {
                "0".to_string()
            } else {
                format_cpulist(&cpus)
            }
        );
        if let Some(n) = nic {
            let _ = writeln!(
                s,
                "nic = {n:?}                  # {} link",
                g.nearest_nic_link.as_deref().unwrap_or("")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_split_per_range_keeps_smt_siblings_together() {
        let cpus: Vec<u32> = (48..64).chain(176..192).collect();
        assert_eq!(format_cpulist(&split_cpus(&cpus, 2, 0)), "48-55,176-183");
        assert_eq!(format_cpulist(&split_cpus(&cpus, 2, 1)), "56-63,184-191");
        assert_eq!(split_cpus(&[0, 1, 2, 3], 1, 0), vec![0, 1, 2, 3]);
    }

    #[test]
    fn public_topologies_import_in_place() {
        // Real matrices others published (../shared/fixtures/public, never committed).
        let dir = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/public/7-topology"
        ));
        let Ok(rd) = std::fs::read_dir(dir) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have ../shared/fixtures/public"
            );
            eprintln!("*** SKIPPING: {} not found ***", dir.display());
            return;
        };
        let mut imported = 0;
        for e in rd.flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            if !text.contains("GPU0") || !text.contains("CPU Affinity") {
                continue;
            }
            let t = import(
                &text,
                &ImportOptions {
                    name: "x".into(),
                    nodes: 1,
                    nic_rate_gbps: 400.0,
                    ..Default::default()
                },
            )
            .unwrap();
            let p = crate::profile::Profile::parse(std::path::Path::new("x.toml"), &t)
                .unwrap_or_else(|e| panic!("{}: {e}\n{t}", e.file.display()));
            assert!(p.gpu.per_node >= 4);
            if e.file_name().to_string_lossy().starts_with("01-a100") {
                // 8 A100s, two per NUMA node sharing one affinity; two PXB NICs next to each pair.
                assert_eq!(p.gpu.per_node, 8);
                assert_eq!(
                    (p.gpu_map[0].numa, p.gpu_map[0].cpus.as_str()),
                    (3, "48-55,176-183")
                );
                assert_eq!(p.gpu_map[1].cpus, "56-63,184-191");
                assert_eq!(p.gpu_map[0].nic.as_deref(), Some("mlx5_0"));
                assert_eq!(p.nics.len(), 10);
            }
            imported += 1;
        }
        assert!(imported >= 2, "imported {imported}");
    }

    #[test]
    fn the_device_machines_real_topology_imports_and_parses() {
        // The one-GPU H200 of the real run (its sysinfo holds the matrix and lscpu).
        let sys = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/device-h200-2026-12-02/sysinfo.txt"
        ))
        .unwrap();
        let topo =
            &sys[sys.find("### nvidia-smi topo -m").unwrap()..sys.find("### lscpu").unwrap()];
        let lscpu = &sys[sys.find("### lscpu").unwrap()..];
        let opts = ImportOptions {
            name: "device".into(),
            nodes: 1,
            gpu_model: Some("NVIDIA H200".into()),
            nic_rate_gbps: 400.0,
            lscpu: Some(lscpu.into()),
            ..Default::default()
        };
        let text = import(topo, &opts).unwrap();
        let p =
            crate::profile::Profile::parse(std::path::Path::new("imported.toml"), &text).unwrap();
        assert_eq!(p.gpu.per_node, 1);
        assert_eq!(p.gpu_map[0].cpus, "0-15");
        assert_eq!(p.cpu.cores_per_socket, 16);
        assert_eq!(p.gpu.peak_bf16_tflops, 989.0);
        assert!(p.nics.is_empty());
    }
}
