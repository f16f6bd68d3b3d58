//! Failure signatures, and the choice of one primary failure class for a job.
//!
//! # What is detected (each detection is a [`Failure`]: line, class, kind, message)
//!
//! | class | kind | printed by |
//! | --- | --- | --- |
//! | `hardware` | `ecc`, `xid`, `gpu_lost`, `uncorrectable_memory` | CUDA (`cudaErrorECCUncorrectable`, `uncorrectable ECC error encountered`), the NVIDIA driver (`NVRM: Xid (PCI:...): 79, ...`, `GPU has fallen off the bus`), NVML as nvidia-smi prints it (`... GPU is lost.  Reboot the system to recover this GPU`), slurmstepd (`*** JOB N ON node UNCORRECTABLE MEMORY ERROR AT ... ***`) |
//! | `hardware` (weak) | `xid_application` | Xids 13, 31, 43, 45, which NVIDIA's Xid catalog resolves by restarting the application: its own error (an illegal address) is the cause |
//! | `hardware` | `system_not_ready`, `nvlink` | a traceback ending in `CUDA error: system not yet initialized` (the fabric manager of an NVSwitch system is down) or `uncorrectable NVLink error detected ...` |
//! | `oom` | `cuda_oom` | PyTorch: old `RuntimeError: CUDA out of memory. Tried to allocate ...`, `CUDA error: out of memory`, new `torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ...`; CUDA's `'out of memory'` as NCCL (`Cuda failure [2] 'out of memory'`) and nccl-tests (`Test CUDA failure ... 'out of memory'`) print it; a traceback ending in `CUBLAS_STATUS_ALLOC_FAILED` |
//! | `oom` | `oom_kill`, `memory_limit`, `srun_oom` | slurmstepd `Detected N oom-kill event(s) in ...`, `Exceeded job/step memory limit`, srun `HOST: task N: Out Of Memory` |
//! | `node_failure` | `slurm_node_failure`, `srun_node_failure` | `*** ... CANCELLED AT ... DUE TO NODE FAILURE[, SEE SLURMCTLD LOG FOR DETAILS] ***` (old: `DUE TO NODE <name> FAILURE`), `srun: error: Node failure on HOST` |
//! | `timeout` | `heartbeat_timeout` | PyTorch (2.2 on) `Heartbeat monitor timed out! Process will be terminated ...`, 2.11 `ProcessGroupNCCL's watchdog got stuck for N seconds ...`: the watchdog itself hung |
//! | `timeout` | `rendezvous_timeout` | a traceback ending in `torch.distributed.DistStoreError: Timed out after N seconds waiting for clients. 1/2 clients joined.` or torchrun's `RendezvousTimeoutError` |
//! | `timeout` | `watchdog_timeout` | PyTorch `Watchdog caught collective operation timeout: WorkNCCL(...) ran for N milliseconds`, with `NCCL_BLOCKING_WAIT=1` `[Rank N] Caught collective operation timeout: ...` |
//! | `timeout` | `nccl_tests_timeout` | nccl-tests run with `-T N`: `HOST: Test timeout (Ns) common.cu:LINE` |
//! | `timeout` | `slurm_time_limit` | `*** JOB|STEP N ON node CANCELLED AT T DUE TO TIME LIMIT ***` |
//! | `nccl` | `nccl_error`, `nccl_test_failure`, `cuda_test_failure`, `nccl_tests_wrong_results` | `NCCL error in: ...`, `ncclSystemError`/`ncclInternalError`/`ncclRemoteError`/…, nccl-tests `Test NCCL failure` (its first versions: `NCCL failure FILE.cu:N`), `Test CUDA failure`, `# Out of bounds values : N FAILED` |
//! | `nccl` (weak) | `nccl_warn` | `... NCCL WARN ...` |
//! | `python_error` | `traceback` | the last line (`Type: message`) of a Python traceback whose exception is not one of the above; each exception line of an exception group's traceback (`  + Exception Group Traceback ...`, lines behind `|`), the groups' own (`ExceptionGroup: ...`) weak |
//! | `python_error` (weak) | `child_failed` | torchrun's `ChildFailedError` once a worker failed: the worker's failure is the cause |
//! | `python_error` | `syntax_error` | `SyntaxError: `, `IndentationError: `, `TabError: ` at a line's start outside a traceback (a main script that does not compile) |
//! | `cancelled` | `slurm_cancelled`, `slurm_preempted`, `slurm_requeued` | `*** ... CANCELLED AT T ***`, `... DUE TO PREEMPTION ***`, `... DUE TO JOB REQUEUE ***` |
//! | `cancelled` (weak) | `srun_step_aborted` | `srun: Job step aborted: Waiting up to N seconds ...` |
//! | `unknown` | `srun_exit`, `srun_signal`, `slurm_failed` | `srun: error: HOST: task(s) N: Exited with exit code X` / `: Killed` …, `*** ... FAILED (non-zero exit code or other failure mode) ***` |
//! | `unknown` | `root_cause_crash` | the `Root Cause` entry of torchrun's summary, when a crash signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE) ended it; its `rank` that of the entry |
//! | `unknown` | `signal` | a crash: torchrun's `Signal 11 (SIGSEGV) received by PID P`, glog's and folly's `*** SIGSEGV ... received by PID`, CPython's `Fatal Python error: Segmentation fault` / `Aborted`, the shell's `... Segmentation fault ...`; weak for a signal another process sends (SIGTERM, SIGKILL, SIGINT, SIGHUP) |
//!
//! Slurm strings are those of `slurmstepd` (`*** %s ON %s CANCELLED AT %s DUE TO ... ***`, older
//! `*** %s CANCELLED AT %s ... ***`), of the cgroup plugins (`Detected %d oom-kill event(s) in
//! %ps`) and of srun's `_task_finish` (`%s: %s %s: Exited with exit code %d`, `... Out Of Memory`).
//!
//! *Weak* detections are kept as evidence but are never chosen as the primary failure: NCCL WARN
//! lines also appear in healthy runs, and `srun: Job step aborted` follows every cancellation.
//!
//! # The primary failure ([`primary_failure`])
//!
//! One class is chosen for a job, by root cause rather than by the last thing printed:
//!
//! 1. `hardware` — a GPU that reports an uncorrectable ECC error, an Xid or falls off the bus
//!    makes every later symptom (CUDA OOM at the next allocation, NCCL errors, hangs) a
//!    consequence; it wins wherever it appears.
//! 2. `oom` — an out-of-memory kill or CUDA OOM on any rank; the other ranks' NCCL errors,
//!    watchdog time-outs and the final time limit are its consequences.
//! 3. `node_failure`.
//! 4. Otherwise the **earliest** of the `nccl`, `python_error` and watchdog `timeout` detections
//!    and of the first Slurm cancellation (`slurm_time_limit` → `timeout`, the others →
//!    `cancelled`), ignoring `nccl`/`python_error`/watchdog detections printed *after* that Slurm
//!    line (they are the processes reacting to the kill). So a time-limit cancel that follows an
//!    NCCL error or a Python exception is explained by that earlier error; one that follows
//!    only a hang with a watchdog report is a `timeout` whose evidence is the watchdog line; one
//!    with nothing before it is a plain `timeout`. A plain cancellation (`*** STEP N ON node
//!    CANCELLED AT T ***`, no reason) that follows a task's crash or non-zero exit as srun
//!    reports it is srun's kill of the step: that task is the cause (`unknown`). Where
//!    torchrun's root cause is a crash (`root_cause_crash`), the other ranks' detections are
//!    its consequences and take no part (those of the crashed rank and of no known rank do),
//!    the crash itself does. The weak NCCL WARNs seen before are listed as related evidence.
//! 5. `unknown` — only non-zero exit codes and crashes. A task another process ended (srun's
//!    `Killed`, `Terminated`, exit codes 129, 130, 137, 143) is evidence only.
//!
//! No non-weak detection: no primary failure.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{Line, Warnings};

/// Most failures kept per log.
pub const MAX_FAILURES: usize = 10_000;

/// Failure classes, in the order of the primary-failure rule's tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Hardware,
    Oom,
    NodeFailure,
    /// A check of sweep's preflight stage failed on a node (`preflight FAIL node=...`).
    Preflight,
    Timeout,
    Nccl,
    PythonError,
    Cancelled,
    Unknown,
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FailureClass {
    type Err = String;
    /// The words `as_str` writes (a table's `failure_class` read back).
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a failure class"))
    }
}

impl FailureClass {
    pub const ALL: [FailureClass; 9] = [
        FailureClass::Hardware,
        FailureClass::Oom,
        FailureClass::NodeFailure,
        FailureClass::Preflight,
        FailureClass::Timeout,
        FailureClass::Nccl,
        FailureClass::PythonError,
        FailureClass::Cancelled,
        FailureClass::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Hardware => "hardware",
            FailureClass::Oom => "oom",
            FailureClass::NodeFailure => "node_failure",
            FailureClass::Preflight => "preflight",
            FailureClass::Timeout => "timeout",
            FailureClass::Nccl => "nccl",
            FailureClass::PythonError => "python_error",
            FailureClass::Cancelled => "cancelled",
            FailureClass::Unknown => "unknown",
        }
    }
}

/// One detection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub line: u64,
    pub class: FailureClass,
    /// Finer kind, e.g. `cuda_oom`, `slurm_time_limit`, `watchdog_timeout`, `traceback`.
    pub kind: &'static str,
    /// The line (prefix removed, trimmed, at most 500 characters).
    pub message: String,
    pub rank: Option<u32>,
    pub host: Option<String>,
    /// Evidence only, never chosen as the primary failure.
    pub weak: bool,
}

/// The failure chosen to explain a job's end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrimaryFailure {
    pub class: FailureClass,
    /// The detection that decided it.
    pub evidence: Failure,
    /// Other detections of the log (weak ones included), at most 20, in line order.
    pub related: Vec<Failure>,
}

static SLURM_BANNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\*\*\* (?:JOB|STEP) \S+ (?:ON \S+ )?(CANCELLED AT \S+(?: DUE TO ([A-Z ]+))?|FAILED|UNCORRECTABLE MEMORY ERROR)")
        .expect("static regex")
});
static SRUN_TASK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"srun: error: (\S+): tasks? ([0-9,\-\[\]]+): (.*)$").expect("static regex")
});
static EXCEPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z_][\w.]*)(?::(?:\s.*)?)?$").expect("static regex"));

/// Specific detections of one line.
/// Every literal that some branch of [`detect`] requires: a line with none of them is no
/// failure, and one automaton pass over it says so.
pub(crate) const TRIGGERS: &[&str] = &[
    "cudaErrorECCUncorrectable",
    "ncorrectable ECC error",
    // What the Xid and banner tests below need (no literal is shorter than 4 bytes: see
    // `gate`).
    "NVRM: Xid",
    "GPU has fallen off the bus",
    GPU_IS_LOST,
    "*** JOB ",
    "*** STEP ",
    "CUDA out of memory",
    "CUDA error: out of memory",
    "OutOfMemoryError",
    OOM_QUOTED,
    "oom-kill event",
    "oom_kill event",
    "emory limit",
    "srun: error:",
    "srun: Job step aborted",
    super::nccl_debug::WATCHDOG,
    HEARTBEAT,
    WATCHDOG_STUCK,
    TEST_TIMEOUT,
    // nccl-tests' `Test NCCL failure` and NCCL 1's tests' `NCCL failure`.
    "NCCL failure",
    "Test CUDA failure",
    OOB_VALUES,
    SIGNAL_RECEIVED,
    SEGFAULT,
    FATAL_PYTHON,
    "NCCL error",
    "NCCL Error",
    "NCCL communicator was aborted",
    "NCCL WARN",
    "ncclUnhandledCudaError",
    "ncclSystemError",
    "ncclInternalError",
    "ncclInvalidArgument",
    "ncclInvalidUsage",
    "ncclRemoteError",
    "ncclInProgress",
    "preflight FAIL node=",
];
static TRIGGER_SET: LazyLock<Regex> = LazyLock::new(|| super::literal_set(TRIGGERS));
const OOM_QUOTED: &str = "'out of memory'";
/// nccl-tests' result check (`# Out of bounds values : N OK|FAILED`): `FAILED` when elements
/// of a result were wrong (the old builds' `error` column then holds the largest error).
pub(crate) const OOB_VALUES: &str = "# Out of bounds values";
/// A process killed by a signal, as PyTorch's elastic agent (torchrun) words it in its
/// `ChildFailedError` summary (`traceback : Signal 11 (SIGSEGV) received by PID 6174`), and as
/// the glog and folly crash handlers do (`*** SIGSEGV (@0x0) received by PID ...`, `*** Signal
/// 11 (SIGSEGV) (0x0) received by PID ...`).
pub(crate) const SIGNAL_RECEIVED: &str = "received by PID";
/// The shell's report of a child killed by SIGSEGV (`Segmentation fault (core dumped)`).
pub(crate) const SEGFAULT: &str = "Segmentation fault";
/// CPython's fatal error handler, on a signal (`faulthandler`: `Fatal Python error:
/// Segmentation fault`, `... Aborted`, `... Bus error`, `... Floating point exception`) or an
/// interpreter abort.
pub(crate) const FATAL_PYTHON: &str = "Fatal Python error";
/// Signals of a process's own crash (not SIGABRT: an abort is how a C++ exception, PyTorch's
/// watchdog or NCCL end a process, after the error that caused it).
const CRASH_SIGNALS: &[&str] = &["SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE"];
/// `strsignal`'s names of [`SENT_SIGNALS`], as srun reports a task they ended.
const SRUN_SENT_SIGNALS: &[&str] = &["Killed", "Terminated", "Interrupt", "Hangup"];
/// Signals another process sends to end one (the elastic agent's or Slurm's SIGTERM when a
/// sibling failed, SIGKILL after a grace period, SIGINT, SIGHUP): a consequence, evidence only.
const SENT_SIGNALS: &[&str] = &["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP"];
/// Xids that NVIDIA's Xid catalog resolves by restarting the application, whose usual cause
/// is the application itself: 13 (graphics engine exception: an out-of-range access, an
/// illegal instruction), 31 (GPU memory page fault: an illegal address), 43 (GPU stopped
/// processing: the channel of a faulting or killed application reset), 45 (preemptive cleanup
/// after such an error or a kill). The application's own error (`CUDA error: an illegal memory
/// access was encountered`) is then the cause; these Xids are kept as evidence only.
const APPLICATION_XIDS: &[u32] = &[13, 31, 43, 45];
/// PyTorch's heartbeat monitor (`ProcessGroupNCCL.cpp`, 2.2 on), when the watchdog itself is
/// stuck (a hung CUDA or NCCL call) and cannot report the collective that timed out: `[PG ...]
/// Heartbeat monitor timed out! Process will be terminated after dumping debug info.`, then
/// `ProcessGroupNCCL's watchdog got stuck for N seconds ...` and the abort.
const HEARTBEAT: &str = "Heartbeat monitor timed out";
/// The heartbeat monitor's report in PyTorch 2.11 (real, `device-h100-2026-12-07`):
/// `ProcessGroupNCCL's watchdog got stuck for 8 seconds without making progress in monitoring
/// enqueued collectives`, then `[F...] ... Terminating the process after attempting to dump
/// debug info, due to ProcessGroupNCCL watchdog hang.`
pub(crate) const WATCHDOG_STUCK: &str = "watchdog got stuck for";
/// nccl-tests' `-T N` (`testStreamSynchronize` in `common.cu`): `HOST: Test timeout (Ns)
/// common.cu:LINE`, after it aborted the communicators; a bare `HOST: Test failure common.cu:LINE`
/// trace of each caller follows.
pub(crate) const TEST_TIMEOUT: &str = "Test timeout (";
/// NVML's `NVML_ERROR_GPU_IS_LOST` as `nvmlErrorString` words it, which nvidia-smi prints
/// (`Unable to determine the device handle for GPU0000:3B:00.0: GPU is lost.  Reboot the
/// system to recover this GPU`), as do pynvml's `NVMLError_GPUIsLost` and NCCL's NVML warnings.
pub(crate) const GPU_IS_LOST: &str = "GPU is lost";

/// The class of the exception a traceback ends with, where its message names a cause that
/// outranks a plain Python error. PyTorch raises CUDA errors as `RuntimeError` (or, 2.8 on,
/// `torch.AcceleratorError`): `CUDA error: <cudaGetErrorString>`.
fn exception_cause(t: &str) -> (FailureClass, &'static str) {
    use FailureClass::*;
    // cuBLAS could not allocate its handle or workspace: the GPU's memory was full.
    if t.contains("CUBLAS_STATUS_ALLOC_FAILED") || t.contains("CUDNN_STATUS_ALLOC_FAILED") {
        return (Oom, "cuda_oom");
    }
    // cudaErrorSystemNotReady: on an NVSwitch system, the fabric manager is not running.
    if t.contains("CUDA error: system not yet initialized") {
        return (Hardware, "system_not_ready");
    }
    if t.contains("uncorrectable NVLink error") {
        return (Hardware, "nvlink");
    }
    // The rendezvous never completed: a node or process that did not come up, or could not
    // reach the store (`torch.distributed.DistStoreError: Timed out after 11 seconds waiting
    // for clients. 1/2 clients joined.`; torchrun's elastic `RendezvousTimeoutError`).
    if (t.contains("DistStoreError") && t.contains("Timed out"))
        || t.contains("RendezvousTimeoutError")
    {
        return (Timeout, "rendezvous_timeout");
    }
    (PythonError, "traceback")
}

/// What PyTorch's elastic agent raises when a worker failed
/// (`torch.distributed.elastic.multiprocessing.errors.ChildFailedError`). Its message, the
/// summary, lists the workers that failed later under `Failures:`, then the first one under
/// [`ROOT_CAUSE`].
const CHILD_FAILED: &str = "ChildFailedError";
pub(crate) const ROOT_CAUSE: &str = "Root Cause (first observed failure)";
/// What the summary's `rank      : 0 (local_rank: 0)` lines hold (their literal for the gate).
pub(crate) const LOCAL_RANK: &str = "(local_rank: ";

/// How a Python traceback starts (see [`Parser::feed`]).
pub(crate) const TRACEBACK: &str = "Traceback (most recent call last)";

fn detect(t: &str) -> Option<(FailureClass, &'static str, bool)> {
    use FailureClass::*;
    if !TRIGGER_SET.is_match(t) {
        return None;
    }
    if t.starts_with("preflight FAIL node=") {
        return Some((Preflight, "preflight_check", false));
    }
    // Hardware.
    if t.contains("cudaErrorECCUncorrectable")
        || t.contains("uncorrectable ECC error")
        || t.contains("Uncorrectable ECC error")
    {
        return Some((Hardware, "ecc", false));
    }
    // The driver prints every Xid as `NVRM: Xid (PCI:...): N, ...` (`nv_printf`).
    if let Some(i) = t.find("NVRM: Xid") {
        return Some(match xid_number(&t[i..]) {
            Some(n) if APPLICATION_XIDS.contains(&n) => (Hardware, "xid_application", true),
            _ => (Hardware, "xid", false),
        });
    }
    if t.contains("GPU has fallen off the bus") || t.contains(GPU_IS_LOST) {
        return Some((Hardware, "gpu_lost", false));
    }
    // Slurm banners.
    if t.contains("***")
        && let Some(c) = SLURM_BANNER.captures(t)
    {
        let what = c.get(1).map_or("", |m| m.as_str());
        let due = c.get(2).map(|m| m.as_str().trim());
        return Some(if what.starts_with("UNCORRECTABLE") {
            (Hardware, "uncorrectable_memory", false)
        } else if what == "FAILED" {
            (Unknown, "slurm_failed", false)
        } else {
            match due {
                Some(d) if d.starts_with("TIME LIMIT") => (Timeout, "slurm_time_limit", false),
                // Old slurmstepd: `DUE TO NODE <name> FAILURE` (the capture stops at the name).
                Some(d) if d.starts_with("NODE") => (NodeFailure, "slurm_node_failure", false),
                Some(d) if d.starts_with("PREEMPTION") => (Cancelled, "slurm_preempted", false),
                Some(d) if d.starts_with("JOB REQUEUE") => (Cancelled, "slurm_requeued", false),
                _ => (Cancelled, "slurm_cancelled", false),
            }
        });
    }
    // OOM. `'out of memory'` is CUDA's error string as the CUDACHECK macros of NCCL
    // (`Cuda failure 2 'out of memory'`, also in PyTorch's `Last error:` of an NCCL error) and
    // of nccl-tests (`Test CUDA failure common.cu:N 'out of memory'`) quote it: the cause, not
    // the NCCL or test failure it shows up as.
    if t.contains("CUDA out of memory")
        || t.contains("CUDA error: out of memory")
        || t.contains("OutOfMemoryError")
        || t.contains(OOM_QUOTED)
    {
        return Some((Oom, "cuda_oom", false));
    }
    if t.contains("oom-kill event") || t.contains("oom_kill event") {
        return Some((Oom, "oom_kill", false));
    }
    if t.contains("Exceeded job memory limit")
        || t.contains("Exceeded step memory limit")
        || (t.contains("exceeded memory limit") && t.contains("being killed"))
    {
        return Some((Oom, "memory_limit", false));
    }
    if t.contains("srun: error:") {
        if t.contains("Node failure on") {
            return Some((NodeFailure, "srun_node_failure", false));
        }
        if let Some(c) = SRUN_TASK.captures(t) {
            let what = c.get(3).map_or("", |m| m.as_str());
            return Some(if what.starts_with("Out Of Memory") {
                (Oom, "srun_oom", false)
            } else if let Some(code) = what.strip_prefix("Exited with exit code ") {
                // 128 + the signal, as a shell reports a child a signal ended: SIGHUP,
                // SIGINT, SIGKILL and SIGTERM come from another process.
                let sent = matches!(code.trim(), "129" | "130" | "137" | "143");
                (Unknown, "srun_exit", sent)
            } else {
                // srun names the signal as `strsignal` does: a task that another process
                // ended (`Killed`, `Terminated`, ...) is a consequence, one that crashed
                // (`Segmentation fault`, `Bus error`, `Aborted`, ...) a cause.
                let sent = SRUN_SENT_SIGNALS.iter().any(|s| what.starts_with(s));
                (Unknown, "srun_signal", sent)
            });
        }
    }
    if t.contains("srun: Job step aborted") {
        return Some((Cancelled, "srun_step_aborted", true));
    }
    // Time-outs.
    if t.contains(super::nccl_debug::WATCHDOG) {
        return Some((Timeout, "watchdog_timeout", false));
    }
    if t.contains(HEARTBEAT) || t.contains(WATCHDOG_STUCK) {
        return Some((Timeout, "heartbeat_timeout", false));
    }
    if let Some(i) = t.find(TEST_TIMEOUT)
        && super::leading_digits(&t[i + TEST_TIMEOUT.len()..])
            .1
            .starts_with("s)")
    {
        return Some((Timeout, "nccl_tests_timeout", false));
    }
    // NCCL. nccl-tests' checks of its NCCL and CUDA calls (`HOST: Test NCCL failure
    // common.cu:N 'msg'`; the tests of NCCL 1 printed `NCCL failure FILE.cu:N 'msg'`): the
    // collective test failed, whichever library reported it.
    if t.contains("NCCL failure") && (t.contains("Test NCCL failure") || t.contains(".cu:")) {
        return Some((Nccl, "nccl_test_failure", false));
    }
    if t.contains("Test CUDA failure") {
        return Some((Nccl, "cuda_test_failure", false));
    }
    if let Some(rest) = t.strip_prefix(OOB_VALUES)
        && rest.trim_end().ends_with("FAILED")
    {
        return Some((Nccl, "nccl_tests_wrong_results", false));
    }
    if t.contains("NCCL error")
        || t.contains("NCCL Error")
        || super::nccl_debug::error_code(t).is_some()
        || t.contains("NCCL communicator was aborted")
    {
        return Some((Nccl, "nccl_error", false));
    }
    if t.contains("NCCL WARN") {
        return Some((Nccl, "nccl_warn", true));
    }
    // A process killed by a signal: the crash (SIGSEGV, SIGABRT, SIGBUS, ...) is a cause with
    // no class of its own; a signal that another process sent is its consequence.
    if t.contains(SIGNAL_RECEIVED) && t.contains("SIG") {
        let sent = SENT_SIGNALS.iter().any(|s| t.contains(s));
        return Some((Unknown, "signal", sent));
    }
    if t.contains(FATAL_PYTHON) || t.contains(SEGFAULT) {
        return Some((Unknown, "signal", false));
    }
    None
}

/// PyTorch's C++ log prefix (c10's glog format: `[E ProcessGroupNCCL.cpp:458] `, 2.4 on
/// `[E1218 20:27:21.426415540 ProcessGroupNCCL.cpp:629] `).
static C10_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[[EWIF](?:\d{4} \d\d:\d\d:\d\d\.\d+(?: \d+)?)? ?[\w./-]+\.(?:cpp|cc|h):\d+\]")
        .expect("static regex")
});

/// A failure line's text as evidence: trimmed, and from PyTorch's C++ log prefix on where
/// something was glued before it (a progress bar that tqdm drew without a newline: the C++
/// logger writes straight to the stream after it).
fn evidence_text(text: &str) -> &str {
    let t = text.trim();
    match C10_PREFIX.find(t) {
        Some(m) if m.start() > 0 => &t[m.start()..],
        _ => t,
    }
}

/// The number of an Xid line from `NVRM: Xid` on: `NVRM: Xid (PCI:0000:3b:00): 79, pid=...`
/// (older drivers: `NVRM: Xid (0000:3b:00): 79, ...`).
fn xid_number(t: &str) -> Option<u32> {
    super::leading_digits(&t[t.find("): ")? + 3..])
        .0
        .parse()
        .ok()
}

#[derive(Debug)]
struct Trace {
    start: u64,
    idle: u32,
    /// An exception group's traceback (Python 3.11 on): every line of it is drawn behind
    /// `|` and `+` (see [`Parser::feed_group`]).
    group: bool,
}

/// How Python 3.11 on starts the traceback of an `ExceptionGroup` (`traceback.py`'s
/// `TracebackException.format`): `  + Exception Group Traceback (most recent call last):`, then
/// each line behind `  | `, each sub-exception's block behind a deeper `| ` after a `+-+---- N
/// ----` rule.
const GROUP_TRACEBACK: &str = "+ Exception Group Traceback (most recent call last)";

/// The exceptions CPython reports without a traceback when the main script does not compile:
/// `  File "train.py", line N`, the source line, a caret line, then `SyntaxError: ...`.
const COMPILE_ERRORS: &[&str] = &["SyntaxError: ", "IndentationError: ", "TabError: "];

/// Streaming failure detector.
#[derive(Debug, Default)]
pub struct Parser {
    failures: Vec<Failure>,
    /// Open tracebacks per (rank, host) stream.
    traces: BTreeMap<(Option<u32>, Option<String>), Trace>,
    capped: bool,
    /// Inside torchrun's `ChildFailedError` summary, before its `Root Cause` entry: the
    /// workers listed there under `Failures:` failed after the root cause.
    other_failures: bool,
    /// Inside the `Root Cause` entry, until its signal: the rank it names, once read.
    root_cause: Option<Option<u32>>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a traceback is open: every line may be its last.
    pub(crate) fn in_traceback(&self) -> bool {
        !self.traces.is_empty()
    }

    fn push(
        &mut self,
        line: &Line<'_>,
        class: FailureClass,
        kind: &'static str,
        weak: bool,
        w: &mut Warnings,
    ) -> Option<&mut Failure> {
        let f = Failure {
            line: line.no,
            class,
            kind,
            message: evidence_text(line.text).chars().take(500).collect(),
            rank: line.rank,
            host: line.host.map(str::to_string),
            weak,
        };
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(f);
            return self.failures.last_mut();
        }
        if !self.capped {
            self.capped = true;
            w.push(
                line.no,
                format!("more than {MAX_FAILURES} failure lines; the rest are not kept"),
            );
        }
        None
    }

    pub fn feed(&mut self, line: &Line<'_>, w: &mut Warnings) {
        let t = line.text.trim();
        if t.is_empty() {
            return;
        }
        if t.starts_with(ROOT_CAUSE) {
            self.other_failures = false;
            self.root_cause = Some(None);
            return;
        }
        if let Some(rank) = t.strip_prefix("rank").filter(|_| self.root_cause.is_some()) {
            // `rank      : 0 (local_rank: 0)`: the global rank of the first failure.
            if let Some(r) = rank.trim_start().strip_prefix(':') {
                self.root_cause = Some(super::leading_digits(r.trim_start()).0.parse().ok());
            }
            return;
        }
        let detected = detect(t);
        if let Some((class, kind, weak)) = detected {
            let later = self.other_failures && kind == "signal";
            match self.root_cause.take().filter(|_| kind == "signal" && !weak) {
                // The root cause a crash ended: its rank's own, ahead of the other ranks'
                // errors (see `primary_failure`).
                Some(rank) if CRASH_SIGNALS.iter().any(|s| t.contains(s)) => {
                    if let Some(f) = self.push(line, class, "root_cause_crash", false, w) {
                        f.rank = rank.or(f.rank);
                    }
                }
                _ => {
                    self.push(line, class, kind, weak || later, w);
                }
            }
        }
        let group = detected.is_none() && t.starts_with(GROUP_TRACEBACK);
        let starts = group || t.starts_with(TRACEBACK);
        if !starts && self.traces.is_empty() {
            if detected.is_none()
                && !line.text.starts_with([' ', '\t'])
                && COMPILE_ERRORS.iter().any(|e| t.starts_with(e))
            {
                self.push(line, FailureClass::PythonError, "syntax_error", false, w);
            }
            return;
        }
        let key = (line.rank, line.host.map(str::to_string));
        if starts {
            if self.traces.len() < 4096 {
                self.traces.insert(
                    key,
                    Trace {
                        start: line.no,
                        idle: 0,
                        group,
                    },
                );
            }
            return;
        }
        let Some(tr) = self.traces.get_mut(&key) else {
            return;
        };
        if tr.group {
            if self.feed_group(line, t, detected.is_some(), w) {
                return;
            }
            // The group's drawing ended (this line's own detections were made above).
            self.traces.remove(&key);
            return;
        }
        let indented = line.text.starts_with([' ', '\t']);
        if indented {
            tr.idle = 0;
            return;
        }
        if EXCEPTION.is_match(t) && (t.contains(':') || looks_like_exception_name(t)) {
            self.traces.remove(&key);
            if detected.is_none() {
                let (class, kind) = exception_cause(t);
                // torchrun's own exception once a worker failed: the worker's failure (its
                // traceback, its signal in the summary that follows) is the cause.
                let weak = t.contains(CHILD_FAILED);
                self.push(
                    line,
                    class,
                    if weak { "child_failed" } else { kind },
                    weak,
                    w,
                );
                self.other_failures |= weak;
            }
            return;
        }
        tr.idle += 1;
        if tr.idle > 50 {
            let start = tr.start;
            self.traces.remove(&key);
            w.push(start, "Python traceback without a final exception line");
        }
    }

    /// A line of an open exception group's traceback; false when `t` is no longer drawn as
    /// one. Each exception line (`| Type: message` with nothing indented after the bar) is a
    /// detection, as a traceback's last line is; the groups' own lines (`ExceptionGroup: msg
    /// (N sub-exceptions)`) are weak, the sub-exceptions under them being the causes.
    fn feed_group(&mut self, line: &Line<'_>, t: &str, detected: bool, w: &mut Warnings) -> bool {
        if t.starts_with('+') {
            return true;
        }
        let Some(rest) = t.strip_prefix('|') else {
            return false;
        };
        let content = rest.strip_prefix(' ').unwrap_or(rest);
        if detected
            || content.is_empty()
            || content.starts_with([' ', '\t', '|', '+'])
            || content.starts_with(TRACEBACK)
        {
            return true;
        }
        if EXCEPTION.is_match(content)
            && (content.contains(':') || looks_like_exception_name(content))
        {
            let name = content.split(':').next().unwrap_or(content);
            let weak = name.ends_with("ExceptionGroup");
            let (class, kind) = exception_cause(content);
            let l = Line {
                text: content,
                ..*line
            };
            self.push(&l, class, kind, weak, w);
        }
        true
    }

    pub fn finish(self, _w: &mut Warnings) -> Vec<Failure> {
        self.failures
    }
}

super::line_parser::line_parser!(Parser => Vec<Failure>);

fn looks_like_exception_name(t: &str) -> bool {
    ["Error", "Exception", "Interrupt", "Exit"]
        .iter()
        .any(|s| t.ends_with(s))
}

/// Chooses the primary failure of a job (rule in the module documentation).
pub fn primary_failure(failures: &[Failure]) -> Option<PrimaryFailure> {
    use FailureClass::*;
    let strong: Vec<&Failure> = failures.iter().filter(|f| !f.weak).collect();
    let first_of = |class: FailureClass| strong.iter().copied().find(|f| f.class == class);
    let evidence = first_of(Hardware)
        .or_else(|| first_of(Oom))
        .or_else(|| first_of(NodeFailure))
        .or_else(|| first_of(Preflight))
        .or_else(|| {
            let slurm_end = strong.iter().copied().find(|f| {
                matches!(
                    f.kind,
                    "slurm_time_limit" | "slurm_cancelled" | "slurm_preempted" | "slurm_requeued"
                )
            });
            let end_line = slurm_end.map_or(u64::MAX, |f| f.line);
            // A step cancelled for no reason Slurm gives (`*** STEP N ON node CANCELLED AT
            // T ***`) follows srun's own kill when a task crashed or exited non-zero: that
            // task, reported before it, is the cause.
            let plain_cancel = slurm_end.is_some_and(|f| f.kind == "slurm_cancelled");
            // torchrun's root cause, a rank that crashed: the other ranks' errors (a peer
            // that went away, a collective that failed) are its consequences, whenever they
            // were printed; that rank's own earlier error, if any, its cause.
            let crash = strong
                .iter()
                .copied()
                .find(|f| f.kind == "root_cause_crash");
            let same_rank =
                |f: &Failure| crash.is_none_or(|c| f.rank.is_none() || f.rank == c.rank);
            let early = strong.iter().copied().find(|f| {
                f.line < end_line
                    && (Some(*f) == crash
                        || same_rank(f)
                            // Every time-out but Slurm's own (the watchdog's, the heartbeat
                            // monitor's, nccl-tests'): a hang that the kill then ended.
                            && (matches!(f.class, Nccl | PythonError)
                                || (f.class == Timeout && f.kind != "slurm_time_limit")
                                || (plain_cancel && f.class == Unknown)))
            });
            early.or(slurm_end)
        })
        .or_else(|| first_of(Unknown))
        .or_else(|| first_of(Cancelled))?;
    let related = failures
        .iter()
        .filter(|f| *f != evidence)
        .take(20)
        .cloned()
        .collect();
    Some(PrimaryFailure {
        class: evidence.class,
        evidence: evidence.clone(),
        related,
    })
}

/// Detects failures in a reader (standalone use).
pub fn parse_reader<R: std::io::BufRead>(reader: R) -> (Vec<Failure>, Vec<super::Warning>) {
    super::parse_lines(Parser::new(), reader)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::device;
    use super::*;

    #[test]
    fn clean_device_logs_have_no_failure() {
        for name in [
            "ds-z2-torchrun.log",
            "nccl-allgather-debug.log",
            "nccl-collectives.log",
            "nccl-ts-periter.log",
            "nvsmi-train.csv",
            "sysinfo.txt",
        ] {
            let (f, _) = parse_reader(device(name).as_bytes());
            assert!(f.is_empty(), "{name}: {f:?}");
            assert!(primary_failure(&f).is_none());
        }
    }

    /// The heartbeat monitor's wording (from `ProcessGroupNCCL.cpp`; no real log of it here)
    /// is a time-out, as the watchdog's report is, in the primary-failure rule too.
    #[test]
    fn a_heartbeat_monitor_time_out_is_a_timeout() {
        assert_eq!(
            detect(HEARTBEAT),
            Some((FailureClass::Timeout, "heartbeat_timeout", false))
        );
        assert_eq!(
            super::super::gate::bits(HEARTBEAT) & super::super::gate::FAIL,
            super::super::gate::FAIL
        );
    }

    /// nccl-tests' `-T` time-out and NVML's lost GPU (wordings from their printing code; no real
    /// log of either here): the time-out ranks as the watchdog's does, before the abort's NCCL
    /// warnings and srun's exit line; a lost GPU is hardware wherever it appears.
    #[test]
    fn nccl_tests_timeout_and_lost_gpu_from_their_literals() {
        use FailureClass::*;
        let timeout = format!("{TEST_TIMEOUT}5s)");
        assert_eq!(
            detect(&timeout),
            Some((Timeout, "nccl_tests_timeout", false))
        );
        assert_eq!(detect(&format!("{TEST_TIMEOUT}of 30000ms exceeded")), None);
        assert_eq!(detect(GPU_IS_LOST), Some((Hardware, "gpu_lost", false)));
        // NCCL's own NVML warning names the lost GPU too: hardware, not a weak NCCL WARN.
        assert_eq!(
            detect(&format!("NCCL WARN {GPU_IS_LOST}")),
            Some((Hardware, "gpu_lost", false))
        );
        // Through the whole parser, behind the host prefix nccl-tests prints (`%s: Test
        // timeout (%ds) %s:%d`) and srun's `--label`: the gate's stems must lie past the
        // prefixes it strips.
        for text in [
            format!("node1: {timeout} common.cu:425\n"),
            format!("3: node1: {timeout} common.cu:425\n"),
        ] {
            let p = super::super::parse_str("t.log", &text);
            let kinds: Vec<_> = p.failures.iter().map(|f| f.kind).collect();
            assert_eq!(kinds, ["nccl_tests_timeout"], "{text:?}");
        }
        let at = |line, class, kind: &'static str, weak| Failure {
            line,
            class,
            kind,
            weak,
            message: String::new(),
            rank: None,
            host: None,
        };
        let f = [
            at(10, Timeout, "nccl_tests_timeout", false),
            at(11, Nccl, "nccl_warn", true),
            at(12, Unknown, "srun_exit", false),
        ];
        let p = primary_failure(&f).expect("a primary failure");
        assert_eq!((p.class, p.evidence.line), (Timeout, 10));
    }

    /// Real CPython 3.11 failures (`tests/local/python_failures.sh`): exception groups, drawn
    /// behind `|` and `+`, yield each sub-exception (the groups' own lines weak, so the first
    /// sub-exception is the evidence), also nested and behind PyTorch's `[rank0]:` prefix; a
    /// main script that does not compile prints `SyntaxError` without a traceback; chained
    /// exceptions yield both, the first (the cause) chosen.
    #[test]
    fn real_python_failure_shapes() {
        let read = |name: &str| {
            super::super::testdata::fixture(&format!("local-python-2026-12-04/{name}"))
        };
        let found = |text: &str| {
            let p = super::super::parse_str("t.log", text);
            let f: Vec<(u64, &'static str, bool, String)> = p
                .failures
                .iter()
                .map(|f| (f.line, f.kind, f.weak, f.message.clone()))
                .collect();
            let primary = primary_failure(&p.failures).map(|p| p.evidence.message);
            (f, primary)
        };
        let (f, primary) = found(&read("group.log"));
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].2 && f[0].3.starts_with("ExceptionGroup: two ranks failed"));
        assert_eq!(primary.as_deref(), Some("ValueError: rank 0 bad"));
        let nested = read("group-nested.log");
        let prefixed: String = nested.lines().map(|l| format!("[rank0]:{l}\n")).collect();
        for text in [nested.as_str(), prefixed.as_str()] {
            let (f, primary) = found(text);
            let strong: Vec<&str> = f.iter().filter(|x| !x.2).map(|x| x.3.as_str()).collect();
            assert_eq!(
                strong,
                [
                    "ValueError: shard 0 has no samples",
                    "ValueError: shard 1 has no samples"
                ]
            );
            assert_eq!(f.iter().filter(|x| x.2).count(), 2, "{f:?}");
            assert_eq!(primary.as_deref(), Some(strong[0]));
        }
        let (f, _) = found(&read("syntax.log"));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].0, f[0].1), (4, "syntax_error"));
        let (f, primary) = found(&read("chained-from.log"));
        assert_eq!(f.len(), 2);
        assert_eq!(primary.as_deref(), Some("KeyError: 'weight'"));
        for (name, evidence) in [
            ("note.log", "ValueError: bad shape"),
            ("sigint.log", "KeyboardInterrupt"),
            (
                "multiline.log",
                "RuntimeError: Error(s) in loading state_dict for Net:",
            ),
        ] {
            let (_, primary) = found(&read(name));
            assert_eq!(primary.as_deref(), Some(evidence), "{name}");
        }
    }

    /// Real crashes of a Python process (`tests/local/crashes.sh`): CPython's fault handler
    /// and the batch script's shell name the signal; no traceback follows. Each is `unknown`
    /// (a crash has no class of its own) of kind `signal`, with that line as evidence.
    #[test]
    fn real_crashes_name_their_signal() {
        for (name, line, evidence) in [
            (
                "faulthandler-segv.log",
                2,
                "Fatal Python error: Segmentation fault",
            ),
            ("faulthandler-abort.log", 2, "Fatal Python error: Aborted"),
            (
                "shell-segv.log",
                2,
                "job.sh: line 3: 17671 Segmentation fault      python3 -c 'import ctypes; \
                 ctypes.string_at(0)'",
            ),
        ] {
            let text = super::super::testdata::fixture(&format!("local-crash-2026-12-07/{name}"));
            let p = super::super::parse_str(name, &text);
            let primary = primary_failure(&p.failures).expect(name);
            assert_eq!(primary.class, FailureClass::Unknown, "{name}");
            assert_eq!(primary.evidence.kind, "signal", "{name}");
            assert_eq!(
                (primary.evidence.line, primary.evidence.message.as_str()),
                (line, evidence),
                "{name}"
            );
        }
    }

    /// Real launch failures and hangs under torchrun (`tests/device/launch-failures.sh`, torch
    /// 2.11 on an H100): each job's cause and its evidence line.
    #[test]
    fn real_launch_failures_and_hangs() {
        use FailureClass::*;
        let read = |name: &str| {
            let text = super::super::testdata::fixture(&format!("device-h100-2026-12-07/{name}"));
            let p = super::super::parse_str(name, &text);
            let primary = primary_failure(&p.failures).expect(name);
            (p.failures, primary)
        };
        // Rank 0 crashed (SIGSEGV); rank 1's `Connection reset by peer`, printed first, is its
        // consequence, as torchrun's `Root Cause` entry says.
        let (f, p) = read("segv.log");
        assert_eq!(
            (p.class, p.evidence.kind, p.evidence.line),
            (Unknown, "root_cause_crash", 53)
        );
        assert_eq!(p.evidence.rank, Some(0));
        assert!(
            f.iter()
                .any(|x| x.line == 14 && x.class == PythonError && x.rank == Some(1))
        );
        assert!(
            f.iter()
                .any(|x| x.line == 44 && x.kind == "signal" && x.weak)
        );
        // The watchdog's time-out, then PyTorch 2.11's heartbeat monitor (`watchdog got stuck`)
        // and the abort (SIGABRT, a consequence): the time-out.
        let (f, p) = read("heartbeat-gil.log");
        assert_eq!(
            (p.class, p.evidence.kind, p.evidence.line),
            (Timeout, "watchdog_timeout", 1)
        );
        assert!(
            f.iter()
                .any(|x| x.line == 3 && x.kind == "heartbeat_timeout")
        );
        let (_, p) = read("heartbeat-pin.log");
        assert_eq!((p.class, p.evidence.line), (Timeout, 1));
        // Two ranks on one GPU: NCCL's `Duplicate GPU detected` WARN (weak), then PyTorch's
        // `DistBackendError` (`invalid usage`).
        let (f, p) = read("dup-gpu.log");
        assert_eq!((p.class, p.evidence.line), (Nccl, 19));
        assert!(
            p.evidence
                .message
                .starts_with("torch.distributed.DistBackendError: NCCL error")
        );
        assert!(
            f.iter()
                .any(|x| x.line == 7 && x.kind == "nccl_warn" && x.weak)
        );
        // A rendezvous that never completed is a time-out, not a plain Python error.
        let (_, p) = read("store-timeout.log");
        assert_eq!(
            (p.class, p.evidence.kind, p.evidence.line),
            (Timeout, "rendezvous_timeout", 19)
        );
        // The Trainer's run has no failure.
        let text = super::super::testdata::fixture("device-h100-2026-12-07/hf-trainer.log");
        assert!(super::super::parse_str("t", &text).failures.is_empty());
    }

    /// Xids by the driver's wording (`NVRM: Xid (PCI:...): N, ...`): those NVIDIA's catalog
    /// resolves by restarting the application are evidence only, the rest hardware.
    #[test]
    fn application_xids_are_evidence_only() {
        use FailureClass::*;
        for (n, expect) in [
            (31, (Hardware, "xid_application", true)),
            (13, (Hardware, "xid_application", true)),
            (43, (Hardware, "xid_application", true)),
            (79, (Hardware, "xid", false)),
            (48, (Hardware, "xid", false)),
            (119, (Hardware, "xid", false)),
        ] {
            let line = format!("kernel: NVRM: Xid (PCI:0000:3b:00): {n}, pid=1234, name=python");
            assert_eq!(detect(&line), Some(expect), "{line}");
        }
        assert_eq!(
            detect("NVRM: Xid (0000:3b:00): 31, Ch 0000000a"),
            Some((Hardware, "xid_application", true))
        );
        // The tests of NCCL 1 printed `NCCL failure FILE.cu:LINE 'msg'` (nccl-tests' first
        // versions), later builds `HOST: Test NCCL failure ...`.
        assert_eq!(
            detect("NCCL failure all_reduce.cu:95 'unhandled cuda error'"),
            Some((Nccl, "nccl_test_failure", false))
        );
        assert_eq!(detect("an NCCL failure was seen"), None);
        assert_eq!(
            detect("  traceback : Signal 15 (SIGTERM) received by PID 2001"),
            Some((Unknown, "signal", true))
        );
        // srun's `_task_finish` names a task's signal by `strsignal`, or its exit code: sent
        // signals (and 128 + one) are evidence only, a crash or another exit code a cause.
        for (what, weak) in [
            ("task 0: Killed", true),
            ("tasks 2,4-5,7: Terminated", true),
            ("tasks 0,2-15: Exited with exit code 143", true),
            ("task 289: Bus error", false),
            ("task 3: Segmentation fault (core dumped)", false),
            ("task 1: Exited with exit code 1", false),
        ] {
            let line = format!("srun: error: gpu01: {what}");
            assert_eq!(detect(&line).map(|d| d.2), Some(weak), "{line}");
        }
    }

    /// PyTorch (2.3 on) writes a rank's traceback as `[rank0]: ` + each line: the traceback
    /// ends at its exception line (here a real `torch.OutOfMemoryError`, line 190), not never.
    #[test]
    fn a_rank_prefixed_traceback_ends_at_its_exception_line() {
        let text = super::super::testdata::fixture(
            "device-h200-2026-12-02/campaign/jobs/oom-mb64-ga1-dfpefalse-edf5305c/rank-0.log",
        );
        let open_after = |n: usize| {
            let head: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
            let mut w = Warnings::new();
            let mut parser = Parser::new();
            super::super::for_each_line(head.as_bytes(), &mut w, |l, w| parser.feed(l, w));
            parser.in_traceback()
        };
        assert!(
            text.lines()
                .nth(189)
                .is_some_and(|l| l.contains("OutOfMemoryError"))
        );
        assert!(!open_after(104), "no traceback before line 105");
        assert!(
            open_after(105) && open_after(189),
            "the frames keep it open"
        );
        assert!(!open_after(190), "the exception line closes it");
    }
}
