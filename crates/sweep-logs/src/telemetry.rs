//! Node telemetry captured by the job templates (`common/rank-wrapper.j2`, the project's own
//! formats), and `dcgmi dmon` output:
//!
//! - `net-<node>.txt`: snapshots of NIC counters, each opened by
//!   `# sweep-net node=N phase=before|sample|after time=UNIX.NS`, then one line per counter:
//!   `net IFACE - COUNTER VALUE` (`/sys/class/net/IFACE/statistics/*`, plus `speed_mbps` and
//!   `operstate`) and `ib DEV PORT COUNTER VALUE` (`/sys/class/infiniband/DEV/ports/PORT/`
//!   `counters/*` and `hw_counters/*`, plus `state`, `rate`, `link_layer`). A value is the rest of
//!   the line (`4: ACTIVE`, `400 Gb/sec (4X NDR)`); `na` when the file could not be read.
//! - `power-<node>.txt`: `power node=N phase=P time=T source=ipmitool watts=W`, `W` being
//!   `not available` where the node has no working `ipmitool dcmi power reading`.
//! - `dcgmi dmon -e 155,150,140`: a `#Entity` header naming the fields, a units line, then
//!   `GPU N v1 v2 ...` rows (`N/A` where a field has no value).

use serde::Serialize;

use super::{Line, Warnings, num, push_capped};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetSnapshot {
    pub line: u64,
    pub node: String,
    pub phase: String,
    pub time: Option<f64>,
    /// (kind `net`/`ib`, device, port, counter, value as printed)
    pub entries: Vec<(String, String, String, String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PowerReading {
    pub line: u64,
    pub node: String,
    pub phase: String,
    pub source: String,
    /// `None`: the source said "not available".
    pub watts: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DcgmRow {
    pub line: u64,
    pub gpu: String,
    /// (field, value); `None` for `N/A`.
    pub values: Vec<(String, Option<f64>)>,
}

/// One node's record of the preflight stage (`preflight-<node>.txt`, written by
/// `preflight.sbatch.j2`): `# sweep-preflight node=N ...`, then tab-separated
/// `info KEY VALUE` and `check NAME STATUS EXPECTED FOUND` lines and a final `result pass|fail`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
pub struct PreflightRecord {
    pub node: String,
    pub info: Vec<(String, String)>,
    /// (check, status `pass`/`fail`/`n/a`, expected, found)
    pub checks: Vec<(String, String, String, String)>,
    /// `None`: the record ends before its result line (the probe died).
    pub result: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TelemetryInfo {
    pub preflight: Vec<PreflightRecord>,
    pub net: Vec<NetSnapshot>,
    pub power: Vec<PowerReading>,
    pub dcgm: Vec<DcgmRow>,
}

#[derive(Debug, Default)]
pub struct Parser {
    info: TelemetryInfo,
    dcgm_fields: Option<Vec<String>>,
}

fn kv<'a>(t: &'a str, key: &str) -> Option<&'a str> {
    t.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, l: &Line<'_>, w: &mut Warnings) {
        let t = l.text;
        if let Some(rest) = t.strip_prefix("# sweep-preflight ") {
            self.info.preflight.push(PreflightRecord {
                node: kv(rest, "node").unwrap_or("").into(),
                ..Default::default()
            });
            return;
        }
        if let Some(p) = self.info.preflight.last_mut() {
            let cols: Vec<&str> = t.split('\t').collect();
            match cols.as_slice() {
                ["info", k, v] if p.info.len() < 10_000 => {
                    p.info.push((k.to_string(), v.to_string()));
                    return;
                }
                ["check", name, status, expected, found] if p.checks.len() < 10_000 => {
                    p.checks.push((
                        name.to_string(),
                        status.to_string(),
                        expected.to_string(),
                        found.to_string(),
                    ));
                    return;
                }
                _ => {}
            }
            if let Some(r) = t.strip_prefix("result ") {
                p.result = Some(r.trim().to_string());
                return;
            }
        }
        if let Some(rest) = t.strip_prefix("# sweep-net ") {
            let snap = NetSnapshot {
                line: l.no,
                node: kv(rest, "node").unwrap_or("").to_string(),
                phase: kv(rest, "phase").unwrap_or("").to_string(),
                time: kv(rest, "time").and_then(num),
                entries: Vec::new(),
            };
            push_capped(&mut self.info.net, snap, "NIC snapshots", l.no, w);
            return;
        }
        if (t.starts_with("net ") || t.starts_with("ib ")) && !self.info.net.is_empty() {
            let mut it = t.splitn(5, ' ');
            let (Some(kind), Some(dev), Some(port), Some(counter)) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                return;
            };
            let value = it.next().unwrap_or("").trim().to_string();
            if let Some(s) = self.info.net.last_mut()
                && s.entries.len() < 100_000
            {
                s.entries
                    .push((kind.into(), dev.into(), port.into(), counter.into(), value));
            }
            return;
        }
        if let Some(rest) = t.strip_prefix("power ") {
            let watts = rest
                .split_once("watts=")
                .map(|(_, v)| v.trim())
                .unwrap_or("");
            let r = PowerReading {
                line: l.no,
                node: kv(rest, "node").unwrap_or("").into(),
                phase: kv(rest, "phase").unwrap_or("").into(),
                source: kv(rest, "source").unwrap_or("").into(),
                watts: num(watts),
            };
            push_capped(&mut self.info.power, r, "power readings", l.no, w);
            return;
        }
        let tt = t.trim_start();
        if let Some(rest) = tt.strip_prefix("#Entity") {
            self.dcgm_fields = Some(rest.split_whitespace().map(String::from).collect());
            return;
        }
        if let Some(fields) = &self.dcgm_fields
            && let Some(rest) = tt.strip_prefix("GPU ")
        {
            let mut it = rest.split_whitespace();
            let Some(gpu) = it.next() else { return };
            let values = fields.iter().cloned().zip(it.map(num)).collect();
            push_capped(
                &mut self.info.dcgm,
                DcgmRow {
                    line: l.no,
                    gpu: gpu.into(),
                    values,
                },
                "dcgmi rows",
                l.no,
                w,
            );
        }
    }

    pub fn finish(self, _w: &mut Warnings) -> TelemetryInfo {
        self.info
    }
}

super::line_parser::line_parser!(Parser => TelemetryInfo);

/// What one NIC (or RDMA port) did between the first and the last snapshot of a node.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
pub struct NicDelta {
    pub node: String,
    pub kind: String,
    pub device: String,
    pub port: String,
    pub state: String,
    pub seconds: f64,
    pub line_rate_gbps: Option<f64>,
    /// Counter name -> increase; `None` where the counter does not exist on this device.
    pub deltas: Vec<(String, Option<f64>)>,
}

impl NicDelta {
    pub fn get(&self, k: &str) -> Option<f64> {
        self.deltas
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| *v)
    }
}

/// The counters `net.csv` reports: bytes and packets, drops and errors, and every
/// retransmission / congestion indicator mlx5 and other RDMA drivers expose.
pub const NET_COUNTERS: &[&str] = &[
    "rx_bytes",
    "tx_bytes",
    "rx_packets",
    "tx_packets",
    "rx_dropped",
    "tx_dropped",
    "rx_errors",
    "tx_errors",
];
pub const IB_COUNTERS: &[&str] = &[
    "port_rcv_data",
    "port_xmit_data",
    "port_rcv_packets",
    "port_xmit_packets",
    "port_rcv_discards",
    "port_xmit_discards",
    "port_rcv_errors",
    "symbol_error",
    "link_downed",
    "out_of_sequence",
    "packet_seq_err",
    "local_ack_timeout_err",
    "rnr_nak_retry_err",
    "implied_nak_seq_err",
    "duplicate_request",
    "np_cnp_sent",
    "rp_cnp_handled",
    "np_ecn_marked_roce_packets",
];

/// Differences between each node's first and last snapshot, per device.
pub fn nic_deltas(snaps: &[NetSnapshot]) -> Vec<NicDelta> {
    let mut nodes: Vec<&str> = snaps.iter().map(|s| s.node.as_str()).collect();
    nodes.dedup();
    nodes.sort();
    nodes.dedup();
    let mut out = Vec::new();
    for node in nodes {
        let mine: Vec<&NetSnapshot> = snaps.iter().filter(|s| s.node == node).collect();
        let Some(first) = mine.first() else {
            continue;
        };
        if mine.len() < 2 {
            continue;
        }
        let mut devs: Vec<(&str, &str, &str)> = first
            .entries
            .iter()
            .map(|(k, d, p, _, _)| (k.as_str(), d.as_str(), p.as_str()))
            .collect();
        devs.dedup();
        for (kind, dev, port) in devs {
            let count = |s: &NetSnapshot| {
                s.entries
                    .iter()
                    .filter(|(k, d, p, _, _)| k == kind && d == dev && p == port)
                    .count()
            };
            // The last snapshot that holds all of this device's counters: a snapshot whose
            // writer was killed midway (a sampler stopped at the job's end) is passed over.
            let want = count(first);
            let Some(last) = mine.iter().skip(1).rev().find(|s| count(s) >= want) else {
                continue;
            };
            let seconds = match (first.time, last.time) {
                (Some(a), Some(b)) if b > a => b - a,
                _ => 0.0,
            };
            let val = |s: &NetSnapshot, c: &str| {
                s.entries
                    .iter()
                    .find(|(k, d, p, n, _)| k == kind && d == dev && p == port && n == c)
                    .map(|e| e.4.clone())
            };
            let counters = if kind == "ib" {
                IB_COUNTERS
            } else {
                NET_COUNTERS
            };
            let deltas = counters
                .iter()
                .map(|c| {
                    let d = match (
                        val(first, c).as_deref().and_then(num),
                        val(last, c).as_deref().and_then(num),
                    ) {
                        // A counter that wrapped or was reset is no measurement.
                        (Some(a), Some(b)) if b >= a => Some(b - a),
                        _ => None,
                    };
                    (c.to_string(), d)
                })
                .collect();
            let rate = if kind == "ib" {
                val(first, "rate").and_then(|r| r.split_whitespace().next().and_then(num))
            } else {
                val(first, "speed_mbps")
                    .and_then(|s| num(&s))
                    .filter(|m| *m > 0.0)
                    .map(|m| m / 1000.0)
            };
            let state =
                val(first, if kind == "ib" { "state" } else { "operstate" }).unwrap_or_default();
            out.push(NicDelta {
                node: node.into(),
                kind: kind.into(),
                device: dev.into(),
                port: port.into(),
                state,
                seconds,
                line_rate_gbps: rate,
                deltas,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/local-slurm-2026-12-02/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn real_preflight_record() {
        let p = parse_str("preflight-gpu01.txt", &fixture("preflight-gpu01.txt"));
        let r = &p.telemetry.preflight[0];
        assert_eq!(r.node, "gpu01");
        assert_eq!(r.result.as_deref(), Some("fail"));
        let gpus = r.checks.iter().find(|c| c.0 == "gpus_per_node").unwrap();
        assert_eq!(
            (gpus.1.as_str(), gpus.2.as_str(), gpus.3.as_str()),
            ("fail", "2", "0")
        );
        assert!(
            r.checks
                .iter()
                .filter(|c| c.0.starts_with("affinity."))
                .all(|c| c.1 == "pass")
        );
        assert!(
            r.info
                .iter()
                .any(|(k, v)| k == "env.NCCL_DEBUG" && v == "INFO")
        );
        // Its Slurm output names the node and the check, as the failure detector reads it.
        let out = parse_str("slurm-8.out", &fixture("preflight-slurm-8.out"));
        let f = out.primary_failure().unwrap();
        assert_eq!(f.class.as_str(), "preflight");
        assert!(
            f.evidence.message.contains("node=gpu0")
                && f.evidence.message.contains("check=gpus_per_node")
        );
    }

    #[test]
    fn a_cut_preflight_record_has_no_result() {
        let text = fixture("preflight-gpu01.txt");
        let cut = &text[..text.find("result").unwrap()];
        let p = parse_str("x", cut);
        assert_eq!(p.telemetry.preflight[0].result, None);
    }

    #[test]
    fn real_nic_snapshots_give_deltas_per_device() {
        let text = fixture("net-gpu01.txt");
        let p = parse_str("net-gpu01.txt", &text);
        let snaps = &p.telemetry.net;
        assert_eq!(snaps.len(), text.matches("# sweep-net ").count());
        assert_eq!(
            (
                snaps[0].phase.as_str(),
                snaps.last().unwrap().phase.as_str()
            ),
            ("before", "after")
        );
        let d = nic_deltas(snaps);
        let lo = d.iter().find(|x| x.device == "lo").unwrap();
        assert!(lo.seconds > 0.0);
        // The delta is the last snapshot's counter minus the first's, read independently here.
        let counter = |phase_idx: usize, c: &str| -> f64 {
            let block = text
                .split("# sweep-net ")
                .filter(|b| !b.is_empty())
                .nth(phase_idx)
                .unwrap();
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("net lo - {c} ")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let last = snaps.len() - 1;
        assert_eq!(
            lo.get("rx_bytes"),
            Some(counter(last, "rx_bytes") - counter(0, "rx_bytes"))
        );
        // No such counter on a netdev: none, not zero.
        assert_eq!(lo.get("out_of_sequence"), None);
    }

    #[test]
    fn a_snapshot_cut_midway_is_passed_over() {
        // The real capture with its last snapshot cut in the middle (a writer killed midway).
        let text = fixture("net-gpu01.txt");
        let last = text.rfind("# sweep-net ").unwrap();
        let cut = &text[..last + (text.len() - last) / 2];
        let cut = &cut[..cut.rfind('\n').unwrap() + 1];
        let p = parse_str("net", cut);
        let d = nic_deltas(&p.telemetry.net);
        assert!(!d.is_empty());
        assert!(d.iter().all(|x| x.get("rx_bytes").is_some()), "{d:?}");
    }

    #[test]
    fn power_not_available_is_not_zero() {
        let p = parse_str("power-gpu01.txt", &fixture("power-gpu01.txt"));
        assert!(!p.telemetry.power.is_empty());
        assert!(
            p.telemetry
                .power
                .iter()
                .all(|r| r.watts.is_none() && r.source == "ipmitool")
        );
    }
}

#[cfg(test)]
mod node_health_tests {
    use crate::parse_str;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/local-preflight-2026-12-07/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// The record of a real preflight on a machine without GPU, RDMA device, nvidia-smi or
    /// ibv_devinfo (see the fixture's PROVENANCE.md): every node-health check is read, the GPU
    /// and RDMA ones n/a with their reason, locked memory and the interfaces as found.
    #[test]
    fn real_record_of_a_node_without_gpu_or_rdma() {
        let p = parse_str("preflight-vm.txt", &fixture("preflight-vm.txt"));
        let r = &p.telemetry.preflight[0];
        assert_eq!((r.node.as_str(), r.result.as_deref()), ("vm", Some("fail")));
        let check = |c: &str| {
            let x = r
                .checks
                .iter()
                .find(|x| x.0 == c)
                .unwrap_or_else(|| panic!("{c}"));
            (x.1.as_str(), x.2.as_str(), x.3.as_str())
        };
        let no_gpu = "no NVIDIA GPU here (nvidia-smi absent or lists none)";
        for c in [
            "persistence_mode",
            "ecc_mode",
            "row_remap",
            "nvlink",
            "fabric_manager",
            "gpudirect_rdma",
        ] {
            assert_eq!((check(c).0, check(c).2), ("n/a", no_gpu), "{c}");
        }
        for nic in ["mlx5_0", "mlx5_1"] {
            let why = format!("no RDMA port {nic}/1 on this node");
            assert_eq!(check(&format!("gid.{nic}")).0, "n/a");
            assert_eq!(check(&format!("gid.{nic}")).2, why);
            assert_eq!(
                check(&format!("mtu.{nic}")),
                ("n/a", "4096 active, netdev 9000", why.as_str())
            );
        }
        assert_eq!(
            check("memlock"),
            ("pass", "at least 8192 KiB", "8192 (ulimit -l)")
        );
        assert_eq!(
            check("nccl_socket_ifname"),
            (
                "pass",
                "^ifb: an interface up with an address",
                "eth0 up 192.0.2.2/24, lo up 127.0.0.1/8"
            )
        );
        assert_eq!(
            check("gloo_socket_ifname"),
            (
                "fail",
                "ifb0: each up with an address",
                "ifb0 down (flags 0x82)"
            )
        );
        // The job's output names the node and the first failed check.
        let out = parse_str("slurm-1.out", &fixture("preflight-slurm-1.out"));
        let f = out.primary_failure().unwrap();
        assert_eq!(f.class.as_str(), "preflight");
        assert!(f.evidence.message.contains("node=vm check=gpus_per_node"));
        assert!(
            out.failures
                .iter()
                .any(|f| f.message.contains("check=gloo_socket_ifname"))
        );
    }
}

#[cfg(test)]
mod gpu_tests {
    use super::*;
    use crate::parse_str;

    #[test]
    fn real_preflight_record_of_a_gpu_node_passes() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/device-h200-2026-12-02-b/preflight-vm.txt"
        ))
        .unwrap();
        let p = parse_str("preflight-vm.txt", &text);
        let r = &p.telemetry.preflight[0];
        assert_eq!(r.result.as_deref(), Some("pass"));
        let info = |k: &str| r.info.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(info("gpu_name"), Some("NVIDIA H200"));
        assert_eq!(info("driver"), Some("580.159.04"));
        assert_eq!(info("nccl"), Some("2.28.9"));
        let status = |c: &str| r.checks.iter().find(|x| x.0 == c).map(|x| x.1.as_str());
        assert_eq!(status("gpus_per_node"), Some("pass"));
        assert_eq!(status("torch"), Some("pass"));
        assert_eq!(
            status("deepspeed"),
            Some("n/a"),
            "nothing expected, nothing failed"
        );
        assert!(!r.checks.iter().any(|c| c.1 == "fail"));
        let net = parse_str(
            "net",
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/device-h200-2026-12-02-b/train-net-vm.txt"
            ))
            .unwrap(),
        );
        let d = nic_deltas(&net.telemetry.net);
        assert!(
            d.iter().any(|x| x.device == "eth0" && x.seconds > 1.0),
            "{d:?}"
        );
    }
}
