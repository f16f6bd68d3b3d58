//! Conformance of the log parsers on real, published logs.
//!
//! The logs live in `../shared/fixtures/public/` beside the checkout and are read in place: they
//! are never copied into this repository. Each file listed in that directory's `INDEX.csv` has a
//! check below asserting what its `what_it_shows` column says; a listed file without a check, or
//! a file on disk not listed, fails the test. Under `CI=true` a missing directory is a failure;
//! elsewhere the test is skipped with a loud message.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sweep::parsers::failures::FailureClass;
use sweep::parsers::hf_trainer::HfKind;
use sweep::parsers::nccl_tests::{NcclRun, Placement};
use sweep::parsers::{ParsedLog, parse_file};

use crate::util::{bin, root};

fn public_dir() -> PathBuf {
    root().join("../shared/fixtures/public")
}

type Check = fn(&ParsedLog);

fn checks() -> BTreeMap<&'static str, Check> {
    let mut m: BTreeMap<&'static str, Check> = BTreeMap::new();
    m.insert(
        "1-nccl-tests/01-p5-h100-efa-2node-mpi-tagged-split-rows.log",
        nccl_split_rows,
    );
    m.insert(
        "1-nccl-tests/03-h100-1node-8rank-5collectives-v2.17.8.log",
        nccl_five_collectives,
    );
    m.insert(
        "1-nccl-tests/05-h100-2node-alltoall-network-failure-then-sendrecv.log",
        nccl_failure_then_sendrecv,
    );
    m.insert(
        "1-nccl-tests/08-dgx2-v100-g12-old-error-column-oob-failed.log",
        nccl_old_error_column,
    );
    m.insert(
        "2-nccl-debug/01-bigscience-jz-nccl2.7.8-omnipath-bootstrap-trees.log",
        debug_omnipath,
    );
    m.insert(
        "2-nccl-debug/03-p5-h100-efa-nccl2.22.3-ofi-plugin-init.log",
        debug_ofi,
    );
    m.insert(
        "3-watchdog/08-ml-engineering-desync-report-stacktrace.log",
        watchdog,
    );
    m.insert(
        "4-deepspeed/01-dschat-dpo-ds0.16.2-launch-init-config-dump.log",
        ds_config_dump,
    );
    m.insert(
        "4-deepspeed/03-dschat-sft-2023-throughputtimer-steps.log",
        ds_throughput,
    );
    m.insert(
        "4-deepspeed/05-alcf-aurora-ds0.17.5-wallclock-timer-see-memory.log",
        ds_wallclock_memory,
    );
    m.insert(
        "4-deepspeed/07-cml-t5small-3node-flops-profiler-summary.log",
        ds_flops,
    );
    m.insert(
        "5-megatron/01-bigscience-megds-3d-ds0.4.0-iterations.log",
        megatron_ds_iterations,
    );
    m.insert(
        "5-megatron/03-bigscience-megatron-lm-2021-pp-timers.log",
        megatron_pp_timers,
    );
    m.insert(
        "5-megatron/04-cml-hf-trainer-deepspeed-pdsh-train-samples-per-second.log",
        hf_pdsh,
    );
    m.insert(
        "6-failures/01-bigscience-megatron-slurm-time-limit-n64.log",
        fail_time_limit,
    );
    m.insert(
        "6-failures/02-bigscience-tr1-13b-ecc-error-then-cuda-oom.log",
        fail_ecc_then_oom,
    );
    m.insert(
        "6-failures/08-oom-ml-engineering-b200-torch.OutOfMemoryError-traceback.log",
        fail_new_oom,
    );
    m.insert(
        "6-failures/12-bigscience-jz-ncclSystemError-unhandled-system-error-2.7.8.log",
        fail_nccl_system,
    );
    m.insert(
        "7-topology/01-a100-8gpu-10nic-nv12-tabs-8numa.log",
        topo_nic_legend,
    );
    m.insert(
        "7-topology/03-traverse-v100-4gpu-mlx5-named-columns-2021.log",
        topo_mlx5_columns,
    );
    m.insert(
        "7-topology/06-query-gpu-csv-h100-vbios-with-elision.log",
        query_gpu_csv,
    );
    m
}

#[test]
fn public_fixtures_conform_to_their_index() {
    let dir = public_dir();
    if !dir.is_dir() {
        let msg = format!("public fixtures not found at {}", dir.display());
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg} (required under CI=true)");
        }
        eprintln!("\n!!!!!!!! SKIPPED: {msg}; the parser conformance test did not run !!!!!!!!\n");
        return;
    }
    let mut rdr = csv::Reader::from_path(dir.join("INDEX.csv")).expect("INDEX.csv");
    let checks = checks();
    let mut listed = Vec::new();
    for rec in rdr.records() {
        let rec = rec.expect("INDEX.csv record");
        let file = rec.get(0).expect("file column").to_string();
        let check = checks
            .get(file.as_str())
            .unwrap_or_else(|| panic!("{file} is listed in INDEX.csv but has no check"));
        let log = parse_file(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        eprintln!(
            "checking {file}: {} lines, {} warnings",
            log.lines,
            log.warnings.len()
        );
        check(&log);
        listed.push(file);
    }
    for entry in walkdir::WalkDir::new(&dir) {
        let entry = entry.expect("walk");
        if entry.file_type().is_file() && entry.file_name() != "INDEX.csv" {
            let rel = entry
                .path()
                .strip_prefix(&dir)
                .expect("under dir")
                .to_string_lossy()
                .replace('\\', "/");
            assert!(listed.contains(&rel), "{rel} is not listed in INDEX.csv");
        }
    }
    assert_eq!(listed.len(), checks.len(), "a check has no INDEX.csv entry");
}

fn no_row_warnings(log: &ParsedLog) {
    let bad: Vec<_> = log
        .warnings
        .iter()
        .filter(|w| w.message.contains("row"))
        .collect();
    assert!(bad.is_empty(), "{}: {bad:?}", log.name);
}

fn rows_of(run: &NcclRun, p: Placement) -> Vec<&sweep::parsers::nccl_tests::NcclRow> {
    run.rows.iter().filter(|r| r.placement == p).collect()
}

// 1-nccl-tests/01: rows split by mpirun tags are rejoined; Avg bus bandwidth 124.584.
fn nccl_split_rows(log: &ParsedLog) {
    no_row_warnings(log);
    assert_eq!(log.nccl_tests.len(), 1);
    let r = &log.nccl_tests[0];
    assert_eq!(r.rows.len(), 64);
    let oop = rows_of(r, Placement::OutOfPlace);
    let ip = rows_of(r, Placement::InPlace);
    assert_eq!(
        (oop[0].size_bytes, oop[0].count, oop[0].time_us),
        (8, 2, 85.70)
    );
    assert_eq!((ip[0].time_us, ip[0].wrong), (74.97, Some(0)));
    assert_eq!(
        (oop[0].redop.as_deref(), oop[0].root),
        (Some("sum"), Some(-1))
    );
    let last = oop[31];
    assert_eq!(
        (
            last.size_bytes,
            last.time_us,
            last.algbw_gbps,
            last.busbw_gbps
        ),
        (17_179_869_184, 66023.0, 260.21, 487.90)
    );
    assert_eq!(ip[31].busbw_gbps, 488.14);
    assert_eq!(r.avg_busbw_gbps, Some(124.584));
    assert_eq!((r.oob_values, r.oob_ok), (Some(0), Some(true)));
    // NCCL INFO lines around the table.
    assert!(
        log.nccl_debug
            .channel_transports
            .iter()
            .any(|t| t == "P2P/CUMEM")
    );
    assert!(
        log.nccl_debug
            .hosts
            .iter()
            .any(|h| h == "test-nccl-worker-1")
    );
    assert!(log.primary_failure().is_none());
}

// 1-nccl-tests/03: banner, five collectives, double, redop none for gather/alltoall,
// domain-style bus ids, sendrecv in-place #wrong N/A.
fn nccl_five_collectives(log: &ParsedLog) {
    no_row_warnings(log);
    let names: Vec<_> = log
        .nccl_tests
        .iter()
        .filter_map(|r| r.collective.as_deref())
        .collect();
    assert_eq!(
        names,
        [
            "all_reduce",
            "all_gather",
            "reduce_scatter",
            "alltoall",
            "sendrecv"
        ]
    );
    let avgs: Vec<_> = log.nccl_tests.iter().map(|r| r.avg_busbw_gbps).collect();
    assert_eq!(
        avgs,
        [
            Some(437.957),
            Some(328.618),
            Some(330.721),
            Some(313.838),
            Some(279.874)
        ]
    );
    for r in &log.nccl_tests {
        assert_eq!(r.nccl_tests_version.as_deref(), Some("2.17.8"));
        assert_eq!(r.nccl_version.as_deref(), Some("2.29.2"));
        assert_eq!(
            (r.nranks, r.nodes, r.gpus_per_node),
            (Some(8), Some(1), Some(8))
        );
        assert_eq!(r.gpu_name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(r.rows.len(), 20, "{:?}", r.collective);
        assert!(r.rows.iter().all(|x| x.dtype == "double"));
        assert!(r.concluded);
    }
    let ar = &log.nccl_tests[0];
    assert_eq!(ar.devices[0].bus_id, "0000:1b:00");
    assert_eq!(ar.params.max_bytes, Some(68_719_476_736));
    assert_eq!(ar.rows[0].busbw_gbps, 321.10);
    assert_eq!(log.nccl_tests[1].rows[0].redop.as_deref(), Some("none"));
    assert_eq!(log.nccl_tests[3].rows[0].redop.as_deref(), Some("none"));
    let sr = &log.nccl_tests[4];
    assert!(
        rows_of(sr, Placement::InPlace)
            .iter()
            .all(|x| x.wrong.is_none())
    );
    assert!(
        rows_of(sr, Placement::OutOfPlace)
            .iter()
            .all(|x| x.wrong == Some(0))
    );
}

// 1-nccl-tests/05: failed alltoall (Test NCCL failure, no table, no Avg), then sendrecv with
// scientific-notation times and in-place N/A.
fn nccl_failure_then_sendrecv(log: &ParsedLog) {
    no_row_warnings(log);
    assert_eq!(log.nccl_tests.len(), 2);
    let a2a = &log.nccl_tests[0];
    assert_eq!(a2a.collective.as_deref(), Some("alltoall"));
    assert!(a2a.rows.is_empty());
    assert_eq!(a2a.avg_busbw_gbps, None);
    assert!(!a2a.concluded);
    assert_eq!(a2a.errors.len(), 1);
    assert_eq!(a2a.errors[0].host.as_deref(), Some("cnode2-001"));
    assert!(
        a2a.errors[0]
            .message
            .starts_with("Test NCCL failure common.cu:401 'remote process exited")
    );
    assert_eq!(
        (a2a.nranks, a2a.nodes, a2a.gpus_per_node),
        (Some(8), Some(2), Some(4))
    );
    let sr = &log.nccl_tests[1];
    assert_eq!(sr.collective.as_deref(), Some("sendrecv"));
    assert_eq!(sr.rows.len(), 20);
    let oop = rows_of(sr, Placement::OutOfPlace);
    let ip = rows_of(sr, Placement::InPlace);
    assert_eq!((oop[9].time_us, ip[9].time_us), (1.6e7, 1.7e7));
    assert_eq!(oop[8].time_us, 4_296_406.0);
    assert!(ip.iter().all(|x| x.wrong.is_none()));
    assert_eq!(sr.avg_busbw_gbps, Some(5.9895));
    assert!(
        log.nccl_debug
            .error_codes
            .iter()
            .any(|e| e.code == "ncclRemoteError")
    );
    let p = log.primary_failure().expect("failure");
    assert_eq!(p.class, FailureClass::Nccl);
    assert_eq!(p.evidence.kind, "nccl_test_failure");
}

// 1-nccl-tests/08: old per-collective layouts, float error column, OOB FAILED, no Group field.
fn nccl_old_error_column(log: &ParsedLog) {
    no_row_warnings(log);
    let names: Vec<_> = log
        .nccl_tests
        .iter()
        .filter_map(|r| r.collective.as_deref())
        .collect();
    assert_eq!(
        names,
        [
            "all_gather",
            "all_reduce",
            "broadcast",
            "reduce",
            "reduce_scatter"
        ]
    );
    let avgs: Vec<_> = log.nccl_tests.iter().map(|r| r.avg_busbw_gbps).collect();
    assert_eq!(
        avgs,
        [
            Some(30.2993),
            Some(42.5578),
            Some(41.2456),
            Some(41.3386),
            Some(20.3609)
        ]
    );
    for r in &log.nccl_tests {
        assert_eq!(
            (r.nranks, r.nodes, r.gpus_per_node),
            (Some(12), Some(1), Some(12))
        );
        assert_eq!(r.gpu_name.as_deref(), Some("Tesla V100-SXM3-32GB"));
        assert_eq!(r.devices[0].group, None);
        assert_eq!(r.devices[0].bus_id, "0x36");
        assert_eq!(r.params.ngpus, Some(12));
        assert!(
            r.command
                .as_deref()
                .is_some_and(|c| c.contains("_perf -b 8"))
        );
        assert!(
            r.rows
                .iter()
                .all(|x| x.wrong.is_none() && x.max_error.is_some())
        );
    }
    let ag = &log.nccl_tests[0];
    assert_eq!((ag.oob_values, ag.oob_ok), (Some(4), Some(false)));
    assert_eq!((ag.rows[0].redop.as_deref(), ag.rows[0].root), (None, None));
    assert_eq!((ag.rows[0].size_bytes, ag.rows[0].count), (0, 0));
    let big = rows_of(ag, Placement::OutOfPlace);
    assert_eq!(big.last().map(|x| x.max_error), Some(Some(1.0)));
    let ar = &log.nccl_tests[1];
    assert_eq!(
        (ar.rows[0].redop.as_deref(), ar.rows[0].root),
        (Some("sum"), None)
    );
    assert_eq!(ar.rows[0].max_error, Some(2e-7));
    assert_eq!((ar.oob_values, ar.oob_ok), (Some(0), Some(true)));
    let bc = &log.nccl_tests[2];
    assert!(bc.rows[0].redop.is_none() && bc.rows[0].root.is_some());
    let rd = &log.nccl_tests[3];
    assert!(rd.rows[0].redop.is_some() && rd.rows[0].root.is_some());
    // all_gather's `# Out of bounds values : 4 FAILED`: wrong results are the run's failure
    // (nccl-tests exits non-zero on them), the other tests' `: 0 OK` no failure.
    let wrong: Vec<_> = log
        .failures
        .iter()
        .filter(|f| f.kind == "nccl_tests_wrong_results")
        .collect();
    assert_eq!(wrong.len(), 1, "{:?}", log.failures);
    assert_eq!(wrong[0].line, 52);
    assert_eq!(wrong[0].message, "# Out of bounds values : 4 FAILED");
    let p = log.primary_failure().expect("failure");
    assert_eq!((p.class, p.evidence.line), (FailureClass::Nccl, 52));
}

// 2-nccl-debug/01: NCCL 2.7.8 bare version line, IB over Omni-Path hfi1, 16 nodes.
fn debug_omnipath(log: &ParsedLog) {
    let d = &log.nccl_debug;
    assert_eq!(d.version.as_deref(), Some("2.7.8+cuda10.2"));
    assert_eq!(d.networks, ["IB"]);
    for nic in ["hfi1_2:1/IB", "hfi1_0:1/IB", "hfi1_3:1/IB", "hfi1_1:1/IB"] {
        assert!(d.nics.iter().any(|n| n == nic), "{nic}");
    }
    assert!(d.bootstrap.iter().any(|b| b == "ib0:10.148.8.41<0>"));
    assert_eq!(d.hosts.len(), 16);
    assert_eq!(d.warn_count, 0);
    assert!(log.primary_failure().is_none());
}

// 2-nccl-debug/03: NCCL 2.22.3, aws-ofi-nccl with efa, 16 ranks on 2 nodes.
fn debug_ofi(log: &ParsedLog) {
    let d = &log.nccl_debug;
    assert_eq!(d.version.as_deref(), Some("2.22.3+cuda12.2"));
    assert_eq!(d.cuda_driver_version, Some(12020));
    assert_eq!(d.ofi_provider.as_deref(), Some("efa"));
    assert!(d.networks.iter().any(|n| n == "OFI"));
    assert!(d.bootstrap.iter().any(|b| b == "eth0:10.1.13.167<0>"));
    let run = &log.nccl_tests[0];
    assert_eq!(
        (run.nranks, run.nodes, run.gpus_per_node),
        (Some(16), Some(2), Some(8))
    );
    assert_eq!(run.devices[15].host, "test-nccl-worker-1");
    assert_eq!(run.devices[15].bus_id, "0xca");
    assert_eq!(run.params.iters, Some(100));
    // ssh "Warning: Permanently added ..." lines are not failures.
    assert!(log.failures.is_empty(), "{:?}", log.failures);
}

// 3-watchdog/08: a watchdog time-out (Timeout(ms)=8000, ran for 8097 ms).
fn watchdog(log: &ParsedLog) {
    let wd = &log.nccl_debug.watchdog_timeouts;
    assert_eq!(wd.len(), 1);
    assert_eq!(wd[0].rank, Some(0));
    assert_eq!(wd[0].seq, Some(2));
    assert_eq!(wd[0].op_type.as_deref(), Some("ALLREDUCE"));
    assert_eq!((wd[0].numel_in, wd[0].numel_out), (Some(4), Some(4)));
    assert_eq!(
        (wd[0].timeout_ms, wd[0].ran_for_ms),
        (Some(8000), Some(8097))
    );
    let p = log.primary_failure().expect("failure");
    assert_eq!(p.class, FailureClass::Timeout);
    assert_eq!(p.evidence.kind, "watchdog_timeout");
    assert_eq!(p.evidence.line, 1);
}

// 4-deepspeed/01: DeepSpeed 0.16.2 config dump, launcher lines, [rankN]: barrier warnings.
fn ds_config_dump(log: &ParsedLog) {
    let ds = &log.deepspeed;
    assert_eq!(ds.version.as_deref(), Some("0.16.2"));
    assert_eq!(ds.launcher_world_size, Some(8));
    assert_eq!(ds.configs.len(), 2, "two engines are built");
    let c = &ds.configs[0];
    assert_eq!(c.train_batch_size, Some(32));
    assert_eq!(c.train_micro_batch_size_per_gpu, Some(2));
    assert_eq!(c.gradient_accumulation_steps, Some(2));
    assert_eq!(c.zero_stage, Some(0));
    assert_eq!(c.world_size, Some(8));
    assert_eq!(c.steps_per_print, Some(10));
    assert_eq!(
        (c.fp16, c.bf16, c.wall_clock_breakdown),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(
        c.entries.get("gradient_clipping").map(String::as_str),
        Some("1.0")
    );
    assert_eq!(ds.steps.len(), 1);
    assert_eq!(
        (ds.steps[0].step, ds.steps[0].skipped, ds.steps[0].lr),
        (0, Some(0), Some(5e-5))
    );
    assert!(log.primary_failure().is_none(), "{:?}", log.failures);
}

// 4-deepspeed/03: OVERFLOW lines, step=N lines and new-style ThroughputTimer lines.
fn ds_throughput(log: &ParsedLog) {
    let ds = &log.deepspeed;
    assert_eq!(ds.overflow_skips, 6);
    assert_eq!(ds.throughput.len(), 48);
    let t = &ds.throughput[0];
    assert_eq!(
        (t.epoch, t.micro_step, t.global_step),
        (Some(0), Some(10), Some(10))
    );
    assert_eq!(t.running_avg_samples_per_sec, Some(173.4455644119137));
    assert_eq!(t.curr_samples_per_sec, Some(171.97903593624417));
    assert_eq!(
        (t.mem_allocated_gb, t.max_mem_allocated_gb),
        (Some(3.96), Some(22.95))
    );
    let last = ds.throughput.last().map(|t| t.running_avg_samples_per_sec);
    assert_eq!(ds.final_running_avg_samples_per_sec(), last.flatten());
    assert_eq!(ds.steps.len(), 48);
    assert_eq!((ds.steps[0].step, ds.steps[0].skipped), (10, Some(6)));
    assert_eq!(ds.steps[0].lr, Some(9.649992967150629e-06));
}

// 4-deepspeed/05: indented block; see_memory_usage; wall_clock_breakdown (micro, global,
// optimizer); steps_per_print vs ThroughputTimer; key=value iteration lines; (min, max) blocks.
fn ds_wallclock_memory(log: &ParsedLog) {
    let ds = &log.deepspeed;
    assert_eq!(ds.version.as_deref(), Some("0.17.5"));
    assert_eq!(ds.memory.len(), 2);
    let m = &ds.memory[1];
    assert_eq!(m.label.as_deref(), Some("After Building Model"));
    assert_eq!(
        (m.ma_gb, m.max_ma_gb, m.ca_gb, m.max_ca_gb),
        (3.71, 3.71, 3.72, 4.0)
    );
    assert_eq!((m.cpu_used_gb, m.cpu_percent), (Some(73.84), Some(6.5)));
    let fwd = ds.timer_values("fwd");
    assert_eq!(fwd[0], 715.40);
    let g = ds
        .timers
        .iter()
        .find(|t| t.get("fwd").is_some())
        .expect("global timers");
    assert_eq!(
        (
            g.get("bwd"),
            g.get("bwd_inner"),
            g.get("bwd_allreduce"),
            g.get("step")
        ),
        (Some(2402.86), Some(1223.70), Some(1178.40), Some(160.79))
    );
    assert_eq!(ds.timer_values("bwd_allreduce_microstep")[0], 1178.40);
    assert_eq!(ds.timer_values("optimizer_allgather")[0], 167.02);
    assert_eq!(ds.steps[0].step, 136005);
    assert_eq!(ds.throughput[0].global_step, Some(5));
    assert_eq!(
        ds.throughput[0].running_avg_samples_per_sec,
        Some(2443.9516881034883)
    );
    let it = &log.megatron.iterations;
    assert_eq!(it.len(), 7);
    assert_eq!((it[0].iteration, it[0].train_iters), (136004, Some(136100)));
    assert_eq!(it[0].consumed_samples, Some(835_608_576));
    assert_eq!(it[0].consumed_tokens, Some(6_845_305_454_592));
    assert_eq!(it[0].elapsed_ms_per_iteration, Some(3415.3));
    assert_eq!(it[0].learning_rate, Some(2.0127e-05));
    assert_eq!(it[0].global_batch_size, Some(6144));
    assert_eq!(it[0].lm_loss(), Some(12.316531));
    assert_eq!(
        (it[0].loss_scale, it[0].grad_norm),
        (Some(1.0), Some(1020.352))
    );
    assert_eq!(
        (it[0].skipped_iterations, it[0].nan_iterations),
        (Some(0), Some(0))
    );
    assert_eq!(it[0].samples_per_second, Some(1798.971));
    assert_eq!(it[0].tokens_per_gpu_per_second, Some(4797.255));
    assert_eq!(it[0].tflops, Some(53.66));
    assert_eq!(it[0].actual_seqlen, Some(8192));
    let r = &log.megatron.timer_ranges[0];
    assert_eq!(
        (r.name.as_str(), r.min_ms, r.max_ms),
        ("forward-backward", 3198.27, 3199.53)
    );
    assert!(log.primary_failure().is_none(), "{:?}", log.failures);
    // Megatron-DeepSpeed: Megatron's iteration lines are the step series, one row per iteration
    // (the DeepSpeed timer lines printed besides them are not counted as steps again).
    let fr = sweep::collect::summarize(log, "05-alcf.log");
    let steps: Vec<u64> = fr.steps.iter().map(|s| s.step).collect();
    let iterations: Vec<u64> = it.iter().map(|i| i.iteration).collect();
    assert_eq!(steps, iterations);
}

// 4-deepspeed/07: flops profiler summary with unit strings.
fn ds_flops(log: &ParsedLog) {
    let p = &log.deepspeed.flops_profiles;
    assert_eq!(p.len(), 1);
    let p = &p[0];
    assert_eq!(p.step, Some(2));
    assert_eq!(
        (p.world_size, p.dp_size, p.mp_size, p.batch_size_per_gpu),
        (Some(3), Some(3), Some(1), Some(32))
    );
    let close =
        |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0));
    assert!(close(p.params_per_gpu, 60.51e6));
    assert!(close(p.fwd_macs_per_gpu, 191.26e9));
    assert!(close(p.fwd_flops_per_gpu, 382.64e9));
    assert!(close(p.fwd_latency_ms, 60.0));
    assert!(close(p.fwd_tflops_per_gpu, 6.38));
    assert!(close(p.bwd_latency_ms, 287.7));
    assert!(close(p.bwd_tflops_per_gpu, 2.66));
    assert!(close(p.fwd_bwd_tflops_per_gpu, 3.3));
    assert!(close(p.step_latency_ms, 139.91));
    assert!(close(p.iter_latency_ms, 487.61));
    assert!(close(p.tflops_per_gpu, 2.35));
    assert_eq!(p.samples_per_second, Some(196.88));
}

// 5-megatron/01: RANK= STAGE= lines, (after 1 iterations) memory lines, lm-loss, bare time (ms).
fn megatron_ds_iterations(log: &ParsedLog) {
    let m = &log.megatron;
    assert_eq!(m.iterations.len(), 49);
    let i = &m.iterations[0];
    assert_eq!(
        (i.iteration, i.train_iters, i.consumed_samples),
        (1, Some(1000), Some(1024))
    );
    assert_eq!(i.elapsed_ms_per_iteration, Some(159_778.9));
    assert_eq!(i.learning_rate, Some(1.875e-05));
    assert_eq!(i.global_batch_size, Some(1024));
    assert_eq!(i.lm_loss(), Some(12.44238));
    assert_eq!((i.loss_scale, i.num_zeros), (Some(-1.0), Some(0.0)));
    assert_eq!(m.iterations[48].iteration, 49);
    assert_eq!(m.iterations[48].lm_loss(), Some(7.747273));
    assert_eq!(m.memory.len(), 64, "one line holds two glued reports");
    let r1 = m.memory.iter().find(|x| x.rank == Some(1)).expect("rank 1");
    assert_eq!(
        (r1.after_iterations, r1.allocated_mb),
        (Some(1), Some(12337.45654296875))
    );
    assert_eq!(
        (r1.max_allocated_mb, r1.reserved_mb, r1.max_reserved_mb),
        (Some(19961.072265625), Some(23288.0), Some(23288.0))
    );
    // "time (ms) | load-checkpoint: 11.96" is a timer line; bare "time (ms)" lines are not.
    assert!(
        m.timers
            .iter()
            .any(|t| t.get("load-checkpoint") == Some(11.96))
    );
    assert!(log.deepspeed.timers.is_empty());
}

// 5-megatron/03: iterations without loss (skipped), pipeline timers.
fn megatron_pp_timers(log: &ParsedLog) {
    let m = &log.megatron;
    assert_eq!(m.iterations.len(), 3);
    let i = &m.iterations[0];
    assert!(i.losses.is_empty());
    assert_eq!(i.loss_scale, Some(4_294_967_296.0));
    assert_eq!(i.skipped_iterations, Some(1));
    assert_eq!(i.learning_rate, Some(0.0));
    let t = m
        .timers
        .iter()
        .find(|t| t.get("forward-compute").is_some())
        .expect("timers");
    assert_eq!(t.get("forward-compute"), Some(32054.16));
    assert_eq!(t.get("backward-send-forward-recv"), Some(11878.08));
    assert_eq!(t.get("optimizer-unscale-and-check-inf"), Some(333.72));
    assert_eq!(t.get("batch-generator"), Some(182.63));
    assert_eq!(m.iterations[2].loss_scale, Some(1_073_741_824.0));
}

// 5-megatron/04: HF Trainer dicts behind pdsh host prefixes.
fn hf_pdsh(log: &ParsedLog) {
    let evals: Vec<_> = log.hf.of_kind(HfKind::Eval).collect();
    assert_eq!(evals.len(), 3);
    assert_eq!(evals[0].host.as_deref(), Some("10.254.19.151"));
    assert_eq!(evals[0].get("eval_samples_per_second"), Some(299.664));
    let train: Vec<_> = log.hf.of_kind(HfKind::Train).collect();
    assert_eq!(train.len(), 2);
    let t = log.hf.train_summary().expect("summary");
    assert_eq!(t.host.as_deref(), Some("10.254.21.77"));
    assert_eq!(t.get("train_runtime"), Some(10530.2773));
    assert_eq!(t.get("train_samples_per_second"), Some(16.055));
    assert_eq!(t.get("train_steps_per_second"), Some(0.168));
    assert_eq!(t.get("epoch"), Some(3.0));
    assert_eq!(train[1].get("train_samples_per_second"), Some(16.056));
}

// 6-failures/01: glued memory lines, iterations, srun abort and slurmstepd TIME LIMIT.
fn fail_time_limit(log: &ParsedLog) {
    assert_eq!(log.megatron.memory.len(), 58, "glued lines are split");
    assert!(log.megatron.memory.iter().any(|m| m.rank == Some(245)));
    assert!(
        log.megatron
            .memory
            .iter()
            .any(|m| m.rank == Some(2) && m.reserved_mb == Some(27112.0))
    );
    let it: Vec<u64> = log
        .megatron
        .iterations
        .iter()
        .map(|i| i.iteration)
        .collect();
    assert_eq!(it, [30, 40, 50, 60]);
    assert_eq!(log.megatron.iterations[0].lm_loss(), Some(76.76836));
    let limits: Vec<_> = log
        .failures
        .iter()
        .filter(|f| f.kind == "slurm_time_limit")
        .collect();
    assert_eq!(limits.len(), 2);
    assert!(
        limits[0].message.contains(
            "STEP 1809655.0 ON r6i4n3 CANCELLED AT 2021-05-24T09:50:34 DUE TO TIME LIMIT"
        )
    );
    assert!(
        log.failures
            .iter()
            .any(|f| f.kind == "srun_step_aborted" && f.weak)
    );
    let p = log.primary_failure().expect("failure");
    assert_eq!(p.class, FailureClass::Timeout);
    assert_eq!(p.evidence.kind, "slurm_time_limit");
}

// 6-failures/02: ECC error traceback, then an old-style CUDA OOM in the restarted job.
fn fail_ecc_then_oom(log: &ParsedLog) {
    let ecc = log
        .failures
        .iter()
        .find(|f| f.class == FailureClass::Hardware)
        .expect("ECC");
    assert_eq!(ecc.kind, "ecc");
    assert!(
        ecc.message
            .contains("cudaErrorECCUncorrectable: uncorrectable ECC error encountered")
    );
    let oom = log
        .failures
        .iter()
        .find(|f| f.class == FailureClass::Oom)
        .expect("OOM");
    assert_eq!(oom.message, "RuntimeError: CUDA error: out of memory");
    assert_eq!(oom.kind, "cuda_oom");
    // The exception lines are classified, not reported again as bare Python errors.
    assert!(
        log.failures
            .iter()
            .all(|f| f.class != FailureClass::PythonError),
        "{:?}",
        log.failures
    );
    let p = log.primary_failure().expect("failure");
    assert_eq!(
        p.class,
        FailureClass::Hardware,
        "the bad GPU explains the later OOM"
    );
    assert!(p.related.iter().any(|f| f.class == FailureClass::Oom));
    assert_eq!(log.megatron.iterations[0].iteration, 43680);
}

// 6-failures/08: Python 3.12 traceback ending in torch.OutOfMemoryError.
fn fail_new_oom(log: &ParsedLog) {
    assert_eq!(log.failures.len(), 1, "{:?}", log.failures);
    let f = &log.failures[0];
    assert_eq!((f.class, f.kind), (FailureClass::Oom, "cuda_oom"));
    assert!(
        f.message.starts_with(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 55.88 GiB."
        )
    );
    assert_eq!(
        log.primary_failure().map(|p| p.class),
        Some(FailureClass::Oom)
    );
}

// 6-failures/12: RuntimeError: NCCL error ... unhandled system error + ncclSystemError.
fn fail_nccl_system(log: &ParsedLog) {
    let codes: Vec<_> = log
        .nccl_debug
        .error_codes
        .iter()
        .map(|e| e.code.as_str())
        .collect();
    assert_eq!(codes, ["ncclSystemError", "ncclSystemError"]);
    assert_eq!(log.nccl_debug.version.as_deref(), Some("2.7.8"));
    let p = log.primary_failure().expect("failure");
    assert_eq!(p.class, FailureClass::Nccl);
    assert!(
        p.evidence
            .message
            .starts_with("RuntimeError: NCCL error in:")
    );
}

// 7-topology/01: 8 A100 + 10 NICs via NIC legend, non-monotonic NUMA, cpulists.
fn topo_nic_legend(log: &ParsedLog) {
    assert_eq!(log.topology.len(), 1);
    let t = &log.topology[0];
    assert_eq!(t.gpus.len(), 8);
    assert_eq!(t.nics.len(), 10);
    assert_eq!(t.nics[9].device, "mlx5_9");
    let g0 = t.gpu(0).expect("GPU0");
    assert_eq!(g0.cpu_affinity.as_deref(), Some("48-63,176-191"));
    assert_eq!(g0.cpus.len(), 32);
    assert_eq!((g0.cpus[0], g0.cpus[31]), (48, 191));
    assert_eq!(g0.numa_node, Some(3));
    assert_eq!(g0.gpu_numa_id, None);
    assert_eq!(g0.nearest_nics, ["mlx5_0", "mlx5_1"]);
    assert_eq!(g0.nearest_nic_link.as_deref(), Some("PXB"));
    assert!(g0.links.iter().any(|(d, l)| d == "GPU1" && l == "NV12"));
    let numa: Vec<_> = t.gpus.iter().map(|g| g.numa_node).collect();
    assert_eq!(
        numa,
        [
            Some(3),
            Some(3),
            Some(1),
            Some(1),
            Some(7),
            Some(7),
            Some(5),
            Some(5)
        ]
    );
    assert_eq!(
        t.gpu(6).map(|g| g.nearest_nics.clone()),
        Some(vec!["mlx5_6".to_string(), "mlx5_7".to_string()])
    );
    assert_eq!(
        t.gpu(4).and_then(|g| g.cpu_affinity.clone()).as_deref(),
        Some("112-127,240-255")
    );
}

// 7-topology/03: NIC columns named mlx5_N, POWER9 NUMA ids, prompt line.
fn topo_mlx5_columns(log: &ParsedLog) {
    assert_eq!(log.topology.len(), 1);
    let t = &log.topology[0];
    assert_eq!(
        t.devices,
        [
            "GPU0", "GPU1", "GPU2", "GPU3", "mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"
        ]
    );
    let g0 = t.gpu(0).expect("GPU0");
    assert_eq!(
        (g0.cpu_affinity.as_deref(), g0.numa_node),
        (Some("0-63"), Some(0))
    );
    assert_eq!(g0.nearest_nics, ["mlx5_0", "mlx5_1"]);
    assert_eq!(g0.nearest_nic_link.as_deref(), Some("NODE"));
    let g2 = t.gpu(2).expect("GPU2");
    assert_eq!(
        (g2.cpu_affinity.as_deref(), g2.numa_node),
        (Some("64-127"), Some(8))
    );
    assert_eq!(g2.nearest_nics, ["mlx5_2", "mlx5_3"]);
    assert!(g2.links.iter().any(|(d, l)| d == "GPU3" && l == "NV3"));
    assert_eq!(t.nics.len(), 4);
}

// 7-topology/06: --query-gpu CSV with canonical header names, elision line between rows.
fn query_gpu_csv(log: &ParsedLog) {
    let s = &log.gpu_samples;
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    assert_eq!(s[0].bus_id.as_deref(), Some("00000000:04:00.0"));
    assert_eq!(
        s[0].extra,
        [(
            "vbios_version".to_string(),
            Some("96.00.89.00.01".to_string())
        )]
    );
    assert_eq!(s[1].bus_id.as_deref(), Some("00000000:8B:00.0"));
    assert_eq!(s[0].util_gpu_pct, None);
}

/// The tables of the public nccl-tests logs, through the binary: old builds' `error` column is
/// nccl.csv's `max_error`, a `Running:` line names the collective, and the failed result check
/// is the run's failure in runs.csv.
#[test]
fn public_nccl_tests_tables() {
    let dir = public_dir().join("1-nccl-tests");
    if !dir.is_dir() {
        let msg = format!("public fixtures not found at {}", dir.display());
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg} (required under CI=true)");
        }
        eprintln!(
            "\n!!!!!!!! SKIPPED: {msg}; the public nccl-tests tables were not checked !!!!!!!!\n"
        );
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let st = std::process::Command::new(bin())
        .args(["-q", "collect", "--logs"])
        .arg(&dir)
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("sweep runs");
    assert!(st.success());
    let read = |name: &str| -> Vec<BTreeMap<String, String>> {
        let mut r = csv::Reader::from_path(out.path().join(name)).expect(name);
        r.deserialize().map(|x| x.expect("row")).collect()
    };
    let old = "08-dgx2-v100-g12-old-error-column-oob-failed.log";
    let nccl = read("nccl.csv");
    let rows: Vec<_> = nccl.iter().filter(|r| r["source"] == old).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["wrong"].is_empty()));
    // `4294967280  89478485  float  53902  73.04  73.04  1e+00  35154 ...` (line 50).
    let big: Vec<_> = rows.iter().filter(|r| r["line"] == "50").collect();
    assert_eq!(big.len(), 2);
    assert_eq!(big[0]["collective"], "all_gather");
    assert_eq!(big[0]["max_error"].parse::<f64>().ok(), Some(1.0));
    let ar: Vec<_> = rows
        .iter()
        .filter(|r| r["collective"] == "all_reduce")
        .collect();
    assert_eq!(ar[0]["max_error"].parse::<f64>().ok(), Some(2e-7));
    // Tables with a `#wrong` column have no max_error.
    assert!(
        nccl.iter()
            .filter(|r| r["source"] != old)
            .all(|r| r["max_error"].is_empty())
    );
    let runs = read("runs.csv");
    let run = runs.iter().find(|r| r["run"] == old).expect("run row");
    assert_eq!(run["failure_class"], "nccl");
    assert_eq!(
        run["failure_evidence"],
        format!("{old}:52: # Out of bounds values : 4 FAILED")
    );
}
