#!/usr/bin/env python3
"""sweep's reference benchmark payload: Llama-2-shaped training steps, or collective bandwidth.

Launched by `deepspeed-train.sbatch.j2` as one process per GPU through srun (no deepspeed/torchrun
launcher); the rank wrapper exports RANK, LOCAL_RANK, WORLD_SIZE, NODE_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR and MASTER_PORT, and forwards SIGTERM/SIGUSR1:

    python3 -u llama_bench.py --point JOB_DIR/point.json \
        --deepspeed --deepspeed_config JOB_DIR/ds_config.json [train_args]

Modes
  train (default)  A Llama-2-shaped `LlamaForCausalLM` (transformers) with random weights, built
                   from point.json's `model`, trained on synthetic random tokens for
                   params.warmup_steps + params.steps optimizer steps through DeepSpeed (or, with
                   --no-deepspeed, a plain torch AdamW loop, DDP when WORLD_SIZE > 1).
  collectives      all_reduce / all_gather / reduce_scatter bandwidth over a size range, with
                   nccl-tests' algbw/busbw definitions (nccl backend on GPU, gloo on CPU).
                   Selected by `--mode collectives` or point params `payload_mode = "collectives"`.

Output: every machine-readable line starts with `SWEEP_METRICS ` followed by one JSON object on
the same line; `grep '^SWEEP_METRICS ' rank-0.log | cut -d' ' -f2-` gives JSON lines. Kinds:
  start               every rank, first thing: versions, rank layout, device, job id, mode
  config              rank 0, once the model/engine is ready (train) or the sweep is set (collectives)
  step                rank 0, one per optimizer step (train)
  summary             rank 0, at the end of training (also on SIGUSR1 / SIGTERM / an exception)
  collective          rank 0, one per (collective, size)
  collective_summary  rank 0, one per collective at the end
  warning, error      the rank concerned
Non-finite floats are written as null so every line is valid JSON. Main fields:
  step     step, warmup, step_time_s, step_time_min_s, samples_per_s, tokens_per_s,
           tflops_per_gpu, hw_tflops_per_gpu, mem_alloc_gib, mem_max_alloc_gib, mem_reserved_gib,
           loss [, excluded, note]
  summary  completed [, reason], steps (steady-state: not warm-up, not excluded), steps_run,
           step_time_mean_s, step_time_median_s, samples_per_s, tokens_per_s, tflops_per_gpu,
           hw_tflops_per_gpu, mem_max_alloc_gib, mem_reserved_max_gib, global_batch, seq_len, ...
  collective          collective, size_bytes, count, dtype, nranks, time_us, algbw_gbps,
                      busbw_gbps, wrong
  collective_summary  collective, dtype, nranks, sizes, avg_busbw_gbps, max_busbw_gbps,
                      max_algbw_gbps, completed [, reason]
samples/s = global batch / step time; tokens/s = samples/s x seq_len; tflops_per_gpu = model
FLOPs per token (src/model.rs train_flops_per_token) x tokens/s / world size / 1e12;
hw_tflops_per_gpu = tflops_per_gpu x 4/3 with activation checkpointing (the recomputed forward),
else equal. Memory in GiB (2^30 bytes); bandwidths in GB/s (1e9 bytes/s, as nccl-tests prints).
A step DeepSpeed's flops profiler runs in (profile_step + 1) is marked excluded and left out of
the summary, as its hooks slow it down.

Timing (train): each optimizer step (grad_accum micro-steps of forward, backward, engine step) is
timed with torch.cuda.synchronize() + time.perf_counter() on every rank; `step_time_s` is the
maximum over ranks and `step_time_min_s` the minimum (one small all-reduce after the timed region),
and the memory fields are the maximum over ranks. `loss` is rank 0's mean over the step's
micro-batches. Throughput counts the global batch micro_batch x grad_accum x WORLD_SIZE (data
parallel only: tensor/pipeline parallelism are not implemented here).

Signals: SIGUSR1 (Slurm's --signal=USR1@N before the time limit) sets a flag; the flag is agreed
across ranks at the end of the current step (or collective size), rank 0 prints the summary with
"completed": false and every rank exits 0. SIGTERM: rank 0 prints the summary of the steps so far at
once and the process exits 143. Exceptions (a CUDA OOM included) are reported on a `kind: error`
line and re-raised, so the traceback is printed and the exit status is non-zero.

Only the standard library is imported at module level: `--help` works without torch.
"""

import argparse
import contextlib
import json
import math
import os
import re
import signal
import socket
import statistics
import sys
import time

PREFIX = "SWEEP_METRICS "
GIB = float(1 << 30)

# ----------------------------------------------------------------------------------------------
# Output


def _clean(v):
    """JSON-safe copy: non-finite floats -> None, floats rounded to 6 significant digits."""
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    try:  # numpy / torch scalars
        return _clean(v.item())
    except Exception:
        return str(v)


def metrics_line(obj):
    return PREFIX + json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False)


def emit(obj):
    print(metrics_line(obj), flush=True)


def log(msg):
    print(f"[llama_bench] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------
# Model arithmetic: the same formulas as src/model.rs (ModelShape::params, train_flops_per_token)


def kv_heads(m):
    kv = m.get("kv_heads")
    return int(kv) if kv else int(m["heads"])


def params_per_layer(m):
    h = int(m["hidden"])
    kv = kv_heads(m) * (h // max(int(m["heads"]), 1))
    attn = 2 * h * h + 2 * h * kv
    mlp = 3 * h * int(m["ffn"])
    return attn + mlp + 2 * h


def model_params(m):
    h = int(m["hidden"])
    emb = int(m["vocab"]) * h
    head = 0 if m.get("tied_embeddings") else emb
    return int(m["layers"]) * params_per_layer(m) + emb + head + h


def train_flops_per_token(m, seq_len):
    """6 x (parameters - input embedding unless tied) + 12 x layers x hidden x seq_len."""
    emb = float(int(m["vocab"]) * int(m["hidden"]))
    dense = 6.0 * (float(model_params(m)) - (0.0 if m.get("tied_embeddings") else emb))
    attn = 12.0 * float(m["layers"]) * float(m["hidden"]) * float(seq_len)
    return dense + attn


# Recomputing the forward pass under activation checkpointing adds one forward (2 of the 6 FLOPs
# per parameter and token; 4 of the 12 attention FLOPs): hardware FLOPs = model FLOPs x 4/3.
CHECKPOINT_HW_FACTOR = 4.0 / 3.0


# ----------------------------------------------------------------------------------------------
# Sizes like nccl-tests' -b/-e: a number with an optional K/M/G suffix (binary: K = 1024).

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(v):
    if isinstance(v, bool):
        raise ValueError(f"not a size: {v!r}")
    if isinstance(v, (int, float)):
        return int(v)
    m = _SIZE_RE.match(str(v))
    if not m:
        raise ValueError(f"not a size: {v!r} (expected e.g. 8, 64K, 128M, 16G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def size_range(min_bytes, max_bytes, factor, step_bytes):
    """nccl-tests' loop: size from min while size <= max, times factor (> 1) or plus step."""
    if min_bytes <= 0 or max_bytes < min_bytes:
        raise ValueError(f"bad size range: min {min_bytes}, max {max_bytes}")
    if factor is not None and factor > 1:
        step = lambda s: s * factor  # noqa: E731
    elif step_bytes and step_bytes > 0:
        step = lambda s: s + step_bytes  # noqa: E731
    else:
        raise ValueError("need a step factor > 1 or a positive step in bytes")
    out, s = [], min_bytes
    while s <= max_bytes:
        out.append(s)
        s = step(s)
    return out


# Bus bandwidth, nccl-tests doc/PERFORMANCE.md: busbw = algbw x factor, with algbw = S / t.
#   all_reduce:      2(n-1)/n, S = the buffer each rank reduces (count x element size)
#   all_gather:      (n-1)/n,  S = the TOTAL gathered buffer = sendcount x element size x n
#   reduce_scatter:  (n-1)/n,  S = the TOTAL input buffer    = recvcount x element size x n
# (sendcount/recvcount being the per-rank counts). As nccl-tests does, a requested size is split
# as per_rank = (size / element size) // n elements, the reported size_bytes is per_rank x n x
# element size, and the reported `count` is the per-rank count passed to NCCL.
BUSBW_FACTOR = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
}
COLLECTIVES = tuple(BUSBW_FACTOR)


def collective_shape(name, size_bytes, elsize, nranks):
    """(count, size_bytes) as nccl-tests reports them for a requested size in bytes."""
    count = size_bytes // elsize
    if name == "all_reduce":
        return count, count * elsize
    per_rank = count // nranks
    return per_rank, per_rank * nranks * elsize


def bandwidths(name, size_bytes, seconds, nranks):
    """(algbw, busbw) in GB/s (1e9 bytes/s, as nccl-tests prints them)."""
    algbw = size_bytes / seconds / 1e9
    return algbw, algbw * BUSBW_FACTOR[name](nranks)


# ----------------------------------------------------------------------------------------------
# Signals


class StopFlag:
    """SIGUSR1 -> stop at the end of the current step; SIGTERM -> summary now, exit 143."""

    def __init__(self):
        self.usr1 = False
        self.on_term = None  # callable returning the summary line (str) or None

    def install(self):
        signal.signal(signal.SIGUSR1, self._usr1)
        signal.signal(signal.SIGTERM, self._term)

    def _usr1(self, signum, frame):
        self.usr1 = True

    def _term(self, signum, frame):
        line = None
        try:
            line = self.on_term() if self.on_term else None
        except Exception:
            line = None
        try:
            if line:
                # os.write, not print: the main thread may be inside a print of its own.
                os.write(1, (line + "\n").encode())
            os.write(2, b"[llama_bench] SIGTERM: exiting\n")
        finally:
            os._exit(128 + signal.SIGTERM)


STOP = StopFlag()
USR1_REASON = "SIGUSR1 before time limit"


# ----------------------------------------------------------------------------------------------
# Environment


def dist_env():
    """Rank layout from the environment (the rank wrapper's or torchrun's); single process if unset."""
    g = lambda k, d: int(os.environ.get(k, d))  # noqa: E731
    return {
        "rank": g("RANK", 0),
        "local_rank": g("LOCAL_RANK", 0),
        "world_size": g("WORLD_SIZE", 1),
        "node_rank": g("NODE_RANK", 0),
        "local_world_size": g("LOCAL_WORLD_SIZE", 1),
    }


def ensure_rendezvous_env():
    """A lone process (no launcher) still gets a valid env:// rendezvous on this host."""
    if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        return
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        os.environ["MASTER_PORT"] = str(s.getsockname()[1])
        s.close()
    for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(k, v)


def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError as e:
        sys.exit(
            f"llama_bench: cannot import torch ({e}). This payload needs PyTorch in the job's "
            "Python environment (set the profile's [paths].python or [paths].setup)."
        )
    return torch


def versions(torch):
    out = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        out["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())
    except Exception:
        out["nccl"] = None
    # Installed versions without importing (importing deepspeed initialises its accelerator).
    from importlib import metadata
    for mod in ("deepspeed", "transformers"):
        try:
            out[mod] = metadata.version(mod)
        except Exception:
            m = sys.modules.get(mod)
            out[mod] = getattr(m, "__version__", None) if m else None
    return out


def pick_device(torch, want, local_rank):
    if want == "cpu" or (want == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        sys.exit("llama_bench: --device cuda asked for, but torch sees no CUDA device")
    n = torch.cuda.device_count()
    # srun --gpu-bind may leave each task a single visible GPU: then it is device 0.
    idx = local_rank if local_rank < n else 0
    torch.cuda.set_device(idx)
    return torch.device("cuda", idx)


def device_name(torch, device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        sys.exit(f"llama_bench: cannot read {what} {path}: {e}")
    except json.JSONDecodeError as e:
        sys.exit(f"llama_bench: {what} {path} is not valid JSON: {e}")


def first(*vals):
    for v in vals:
        if v is not None:
            return v
    return None


def as_bool(v):
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


# ----------------------------------------------------------------------------------------------
# Command line


def build_parser():
    p = argparse.ArgumentParser(
        prog="llama_bench.py",
        description="sweep's benchmark payload: Llama-2-shaped DeepSpeed training steps "
        "(--mode train) or collective bandwidth (--mode collectives). Machine-readable output: "
        "lines starting with 'SWEEP_METRICS ' followed by one JSON object.",
    )
    p.add_argument("--point", help="the job's point.json (written by `sweep expand`)")
    p.add_argument("--mode", choices=["train", "collectives"],
                   help="default: point params payload_mode, else train")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                   help="auto: the GPU of LOCAL_RANK when CUDA is available, else the CPU")

    t = p.add_argument_group("training")
    t.add_argument("--deepspeed", action="store_true", help="train through DeepSpeed")
    t.add_argument("--deepspeed_config", "--deepspeed-config", dest="deepspeed_config",
                   help="DeepSpeed JSON config (ds_config.json)")
    t.add_argument("--local_rank", "--local-rank", type=int, default=None,
                   help="accepted for DeepSpeed-launcher compatibility; LOCAL_RANK is used")
    t.add_argument("--no-deepspeed", action="store_true",
                   help="plain torch AdamW loop (DDP when WORLD_SIZE > 1) instead of DeepSpeed")
    t.add_argument("--steps", type=int, help="measured steps (default: params.steps, else 20)")
    t.add_argument("--warmup-steps", type=int, help="warm-up steps (default: params.warmup_steps, else 5)")
    t.add_argument("--micro-batch", type=int, help="override the point's micro-batch")
    t.add_argument("--grad-accum", type=int, help="override the point's gradient accumulation")
    t.add_argument("--seq-len", type=int, help="override the point's sequence length")
    t.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                   help="--no-deepspeed only: auto = bf16 on GPU, fp32 on CPU")
    t.add_argument("--torch-adam", choices=["auto", "on", "off"], default="auto",
                   help="DeepSpeed Adam/AdamW: set optimizer.params.torch_adam (auto: true unless "
                   "the config says otherwise, as FusedAdam's JIT build fails on some images)")
    t.add_argument("--seed", type=int, default=1234)

    c = p.add_argument_group("collectives")
    c.add_argument("--collectives", help="comma list of all_reduce,all_gather,reduce_scatter "
                   "(default: params.collective, else all three)")
    c.add_argument("--min-bytes", help="smallest size, nccl-tests style (8, 64K, 1M, 16G); "
                   "default params.min_bytes, else 8")
    c.add_argument("--max-bytes", help="largest size; default params.max_bytes, else 8G")
    c.add_argument("--factor", type=int, help="size multiplier; default params.step_factor, else 2")
    c.add_argument("--step-bytes", help="size increment when the factor is 1")
    c.add_argument("--iters", type=int, help="timed iterations per size; default params.iters, else 20")
    c.add_argument("--warmup-iters", type=int,
                   help="untimed iterations per size; default params.warmup_iters, else 5")
    c.add_argument("--coll-dtype", choices=["float32", "bfloat16", "fp32", "bf16"],
                   help="element type; default params.dtype, else float32 (nccl-tests' default)")
    c.add_argument("--no-check", action="store_true", help="skip the per-size result check")
    return p


# ----------------------------------------------------------------------------------------------
# Training


class Recorder:
    """Per-step records on rank 0 and the summary built from them."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.steps = []
        self.t_start = time.perf_counter()
        self.summary_printed = False

    def add(self, rec):
        self.steps.append(rec)

    def summary(self, completed, reason=None):
        c = self.ctx
        measured = [s for s in self.steps if not s["warmup"] and not s.get("excluded")]
        times = [s["step_time_s"] for s in measured]
        out = {
            "kind": "summary",
            "job_id": c["job_id"],
            "mode": "train",
            "engine": c["engine"],
            "completed": completed,
        }
        if reason:
            out["reason"] = reason
        out.update({
            "steps": len(measured),
            "steps_run": len(self.steps),
            "warmup_steps_run": sum(1 for s in self.steps if s["warmup"]),
            "excluded_steps": [s["step"] for s in self.steps if s.get("excluded")],
            "planned_steps": c["steps"],
            "planned_warmup_steps": c["warmup_steps"],
            "world_size": c["world_size"],
            "global_batch": c["global_batch"],
            "seq_len": c["seq_len"],
        })
        if times:
            mean = statistics.fmean(times)
            med = statistics.median(times)
            sps = c["global_batch"] / mean
            tps = sps * c["seq_len"]
            tfl = c["flops_per_token"] * tps / c["world_size"] / 1e12
            out.update({
                "step_time_mean_s": mean,
                "step_time_median_s": med,
                "step_time_min_s": min(times),
                "step_time_max_s": max(times),
                "step_time_stdev_s": statistics.stdev(times) if len(times) > 1 else 0.0,
                "samples_per_s": sps,
                "samples_per_s_median": c["global_batch"] / med,
                "tokens_per_s": tps,
                "tflops_per_gpu": tfl,
                "hw_tflops_per_gpu": tfl * c["hw_factor"],
            })
        else:
            for k in ("step_time_mean_s", "step_time_median_s", "samples_per_s", "tokens_per_s",
                      "tflops_per_gpu", "hw_tflops_per_gpu"):
                out[k] = None
        mem = lambda k: max((s[k] for s in self.steps if s.get(k) is not None), default=None)  # noqa: E731
        out["mem_max_alloc_gib"] = mem("mem_max_alloc_gib")
        out["mem_reserved_max_gib"] = mem("mem_reserved_gib")
        out["final_loss"] = self.steps[-1]["loss"] if self.steps else None
        out["wall_s"] = time.perf_counter() - self.t_start
        return out

    def print_summary(self, completed, reason=None):
        if self.summary_printed:
            return
        self.summary_printed = True
        emit(self.summary(completed, reason))

    def term_line(self):
        if self.summary_printed:
            return None
        self.summary_printed = True
        return metrics_line(self.summary(False, "SIGTERM"))


def resolve_train(args, point, ds_config, world_size):
    params = point.get("params") or {}
    batch = point.get("batch") or {}
    model = point.get("model")
    if not model:
        sys.exit("llama_bench: point.json has no `model`: training mode needs one "
                 "(or use --mode collectives)")
    for k in ("tensor_parallel", "pipeline_parallel"):
        if int(batch.get(k) or params.get(k) or 1) != 1:
            sys.exit(f"llama_bench: {k} > 1 is not implemented by this payload (data parallel only)")
    ds = ds_config or {}
    micro = first(args.micro_batch, batch.get("micro_batch"), params.get("micro_batch"),
                  ds.get("train_micro_batch_size_per_gpu"))
    ga = first(args.grad_accum, batch.get("grad_accum"), params.get("grad_accum"),
               ds.get("gradient_accumulation_steps"), 1)
    seq = first(args.seq_len, batch.get("seq_len"), params.get("seq_len"), model.get("seq_len"))
    if micro is None or seq is None:
        sys.exit("llama_bench: the point gives no micro_batch or seq_len")
    micro, ga, seq = int(micro), int(ga), int(seq)
    steps = int(first(args.steps, params.get("steps"), 20))
    warm = int(first(args.warmup_steps, params.get("warmup_steps"), 5))
    ac = as_bool(params.get("activation_checkpointing", False))
    zero = ((ds.get("zero_optimization") or {}).get("stage"))
    zero = int(first(zero, params.get("zero_stage"), 0))
    return {
        "model": model, "micro_batch": micro, "grad_accum": ga, "seq_len": seq,
        "steps": steps, "warmup_steps": warm, "activation_checkpointing": ac, "zero_stage": zero,
        "global_batch": micro * ga * world_size,
        "planned_global_batch": batch.get("global_batch"),
    }


def prepare_ds_config(ds_config, run, world_size, torch_adam):
    """The batch keys as this run really uses them; torch_adam per --torch-adam. Returns notes."""
    cfg = json.loads(json.dumps(ds_config))
    notes = []
    want = {
        "train_micro_batch_size_per_gpu": run["micro_batch"],
        "gradient_accumulation_steps": run["grad_accum"],
        "train_batch_size": run["global_batch"],
    }
    for k, v in want.items():
        if k in cfg and cfg[k] != v:
            notes.append(f"ds_config {k} {cfg[k]} -> {v} (world size {world_size})")
        cfg[k] = v
    opt = cfg.get("optimizer")
    if isinstance(opt, dict) and str(opt.get("type", "")).lower() in ("adam", "adamw"):
        params = opt.setdefault("params", {})
        if torch_adam == "on" or (torch_adam == "auto" and "torch_adam" not in params):
            if params.get("torch_adam") is not True:
                notes.append("optimizer.params.torch_adam = true")
            params["torch_adam"] = True
        elif torch_adam == "off":
            params["torch_adam"] = False
    return cfg, notes


def build_model(torch, run, device, dtype, ds_config, deepspeed):
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        sys.exit(f"llama_bench: cannot import transformers ({e}); training mode needs it")
    m = run["model"]
    shape = dict(
        vocab_size=int(m["vocab"]),
        hidden_size=int(m["hidden"]),
        intermediate_size=int(m["ffn"]),
        num_hidden_layers=int(m["layers"]),
        num_attention_heads=int(m["heads"]),
        num_key_value_heads=kv_heads(m),
        max_position_embeddings=max(int(m.get("seq_len") or 0), run["seq_len"]),
        tie_word_embeddings=bool(m.get("tied_embeddings", False)),
        use_cache=False,
    )
    try:
        cfg = LlamaConfig(**shape, attn_implementation="sdpa")
    except TypeError:
        cfg = LlamaConfig(**shape)
    cfg._attn_implementation = "sdpa"
    if deepspeed is not None and run["zero_stage"] == 3:
        # Parameters are partitioned across ranks as each submodule is built.
        with deepspeed.zero.Init(config_dict_or_path=ds_config):
            model = LlamaForCausalLM(cfg)
    else:
        prev = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = LlamaForCausalLM(cfg)
        finally:
            torch.set_default_dtype(prev)
    if run["activation_checkpointing"]:
        # Non-reentrant torch.utils.checkpoint. Newer transformers renamed the method
        # (gradient_checkpointing_enable is a deprecated alias there).
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def checkpointing_active(model):
    """Whether any submodule has activation checkpointing switched on (transformers' own test)."""
    return any(bool(getattr(m, "gradient_checkpointing", False)) for m in model.modules())


def count_params(model):
    # Under ZeRO-3 each parameter is a partition; ds_numel is its full size.
    return sum(int(getattr(p, "ds_numel", 0) or p.numel()) for p in model.parameters())


def train(args, torch, point, env, device, t_start_line):
    ds_path = args.deepspeed_config
    use_ds = not args.no_deepspeed and (args.deepspeed or ds_path is not None)
    ds_config = load_json(ds_path, "DeepSpeed config") if ds_path else None
    if use_ds and ds_config is None:
        sys.exit("llama_bench: --deepspeed needs --deepspeed_config FILE")
    world = env["world_size"]
    rank = env["rank"]
    run = resolve_train(args, point, ds_config if use_ds else None, world)

    deepspeed = None
    notes = []
    import torch.distributed as dist
    if use_ds:
        try:
            import deepspeed  # noqa: F811
        except ImportError as e:
            sys.exit(f"llama_bench: cannot import deepspeed ({e}); install it or run with --no-deepspeed")
        ds_config, notes = prepare_ds_config(ds_config, run, world, args.torch_adam)
        deepspeed.init_distributed()
        bf16 = as_bool((ds_config.get("bf16") or {}).get("enabled", False))
        fp16 = as_bool((ds_config.get("fp16") or {}).get("enabled", False))
        dtype = torch.bfloat16 if bf16 else (torch.float16 if fp16 else torch.float32)
    else:
        if world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        want = args.dtype
        if want == "auto":
            want = "bf16" if device.type == "cuda" else "fp32"
        dtype = torch.bfloat16 if want == "bf16" else torch.float32
    warnings = []
    if run["planned_global_batch"] not in (None, run["global_batch"]):
        warnings.append(f"global batch {run['global_batch']} (micro {run['micro_batch']} x accum "
                     f"{run['grad_accum']} x {world} ranks) differs from the point's "
                     f"{run['planned_global_batch']}")
    if rank == 0:
        for n in warnings:
            emit({"kind": "warning", "rank": rank, "message": n})

    torch.manual_seed(args.seed + rank)
    model = build_model(torch, run, device, dtype, ds_config, deepspeed if use_ds else None)
    n_actual = count_params(model)
    m = run["model"]
    n_formula = model_params(m)
    if n_actual != n_formula and rank == 0:
        emit({"kind": "warning", "rank": rank,
              "message": f"model has {n_actual} parameters, the shape formula {n_formula}"})

    clip = None
    ddp = False
    if use_ds:
        engine, _, _, _ = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=ds_config)
        optimizer = None
        flops_prof = ds_config.get("flops_profiler") or {}
        prof_step = (int(flops_prof.get("profile_step", 1)) + 1
                     if as_bool(flops_prof.get("enabled", False)) else None)
        engine_name = "deepspeed"
    else:
        engine = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            engine = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
            ddp = True
        op = ((ds_config or {}).get("optimizer") or {}).get("params") or {}
        optimizer = torch.optim.AdamW(model.parameters(), lr=float(op.get("lr", 1e-4)),
                                      weight_decay=float(op.get("weight_decay", 0.0)))
        clip = (ds_config or {}).get("gradient_clipping")
        prof_step = None
        engine_name = "torch"

    fpt = train_flops_per_token(m, run["seq_len"])
    hw_factor = CHECKPOINT_HW_FACTOR if run["activation_checkpointing"] else 1.0
    ctx = {
        "job_id": point.get("job_id"), "engine": engine_name, "world_size": world,
        "global_batch": run["global_batch"], "seq_len": run["seq_len"], "steps": run["steps"],
        "warmup_steps": run["warmup_steps"], "flops_per_token": fpt, "hw_factor": hw_factor,
    }
    rec = Recorder(ctx)
    if rank == 0:
        STOP.on_term = rec.term_line
        emit({
            "kind": "config", "job_id": point.get("job_id"), "engine": engine_name,
            "model": m.get("name"), "layers": m["layers"], "hidden": m["hidden"],
            "heads": m["heads"], "kv_heads": kv_heads(m), "ffn": m["ffn"], "vocab": m["vocab"],
            "params": n_actual, "params_formula": n_formula,
            "flops_per_token": fpt, "hw_flops_factor": hw_factor,
            "micro_batch": run["micro_batch"], "grad_accum": run["grad_accum"],
            "global_batch": run["global_batch"], "seq_len": run["seq_len"],
            "world_size": world, "zero_stage": run["zero_stage"] if use_ds else None,
            "activation_checkpointing": run["activation_checkpointing"],
            "checkpointing_active": checkpointing_active(model),
            "attn_implementation": getattr(model.config, "_attn_implementation", None),
            "dtype": str(dtype).replace("torch.", ""), "steps": run["steps"],
            "warmup_steps": run["warmup_steps"], "flops_profiler_step": prof_step,
            "ds_config_changes": notes if use_ds else None,
            "setup_s": time.perf_counter() - t_start_line,
        })

    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed * 1000 + rank)
    vocab = int(m["vocab"])
    shape = (run["micro_batch"], run["seq_len"])
    dist_on = dist.is_available() and dist.is_initialized()
    cuda = device.type == "cuda"
    total = run["warmup_steps"] + run["steps"]

    try:
        for step in range(1, total + 1):
            sync(torch, device)
            t0 = time.perf_counter()
            losses = []
            for micro in range(run["grad_accum"]):
                ids = torch.randint(0, vocab, shape, device=device, generator=gen)
                if use_ds:
                    loss = engine(input_ids=ids, labels=ids).loss
                    engine.backward(loss)
                    engine.step()  # the optimizer steps at the accumulation boundary
                else:
                    # DDP: gradients are all-reduced on the last micro-batch only.
                    last = micro == run["grad_accum"] - 1
                    with (engine.no_sync() if ddp and not last else contextlib.nullcontext()):
                        loss = engine(input_ids=ids, labels=ids).loss
                        (loss / run["grad_accum"]).backward()
                losses.append(loss.detach())
            if not use_ds:
                if clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            sync(torch, device)
            dt = time.perf_counter() - t0

            mem = ([torch.cuda.memory_allocated(device) / GIB,
                    torch.cuda.max_memory_allocated(device) / GIB,
                    torch.cuda.memory_reserved(device) / GIB] if cuda else [0.0, 0.0, 0.0])
            vec = [dt, -dt] + mem + [1.0 if STOP.usr1 else 0.0]
            if dist_on:
                t = torch.tensor(vec, dtype=torch.float64, device=device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                vec = t.tolist()
            step_max, step_min = vec[0], -vec[1]
            stop = vec[5] > 0
            loss_v = float(torch.stack(losses).float().mean().item())

            if rank == 0:
                gb = run["global_batch"]
                sps = gb / step_max
                tps = sps * run["seq_len"]
                tfl = fpt * tps / world / 1e12
                r = {
                    "kind": "step", "step": step, "warmup": step <= run["warmup_steps"],
                    "step_time_s": step_max, "step_time_min_s": step_min,
                    "samples_per_s": sps, "tokens_per_s": tps,
                    "tflops_per_gpu": tfl, "hw_tflops_per_gpu": tfl * hw_factor,
                    "mem_alloc_gib": vec[2] if cuda else None,
                    "mem_max_alloc_gib": vec[3] if cuda else None,
                    "mem_reserved_gib": vec[4] if cuda else None,
                    "loss": loss_v,
                }
                if prof_step is not None and step == prof_step:
                    r["excluded"] = True
                    r["note"] = "DeepSpeed flops profiler ran in this step"
                rec.add(r)
                emit(r)
            if stop:
                break
    except BaseException as e:
        if rank == 0 and not isinstance(e, SystemExit):
            rec.print_summary(False, f"exception: {type(e).__name__}")
        raise

    if rank == 0:
        if STOP.usr1 or len(rec.steps) < total:
            rec.print_summary(False, USR1_REASON)
        else:
            rec.print_summary(True)
    return 0


# ----------------------------------------------------------------------------------------------
# Collectives


def collectives(args, torch, point, env, device):
    import torch.distributed as dist

    params = point.get("params") or {}
    names = args.collectives or params.get("collective") or ",".join(COLLECTIVES)
    if isinstance(names, str):
        names = [x.strip() for x in names.split(",") if x.strip()]
    names = [str(x).replace("-", "_").lower() for x in names]
    for n in names:
        if n not in COLLECTIVES:
            sys.exit(f"llama_bench: unknown collective {n!r} (known: {', '.join(COLLECTIVES)})")
    try:
        min_b = parse_size(first(args.min_bytes, params.get("min_bytes"), 8))
        max_b = parse_size(first(args.max_bytes, params.get("max_bytes"), "8G"))
        step_b = parse_size(first(args.step_bytes, params.get("step_bytes"), 0))
        factor = int(first(args.factor, params.get("step_factor"), 2))
        sizes = size_range(min_b, max_b, factor, step_b)
    except ValueError as e:
        sys.exit(f"llama_bench: {e}")
    iters = int(first(args.iters, params.get("iters"), 20))
    warm = int(first(args.warmup_iters, params.get("warmup_iters"), 5))
    dname = str(first(args.coll_dtype, params.get("collective_dtype"), params.get("dtype"),
                      "float32")).lower()
    dtype = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}.get(dname)
    if dtype is None:
        sys.exit(f"llama_bench: unsupported collective dtype {dname!r} (float32 or bfloat16)")
    dtype_name = str(dtype).replace("torch.", "")
    elsize = torch.empty((), dtype=dtype).element_size()

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kw = {"device_id": device} if device.type == "cuda" else {}
        try:
            dist.init_process_group(backend, **kw)
        except TypeError:
            dist.init_process_group(backend)
    n = dist.get_world_size()
    rank = dist.get_rank()
    # Exact small integers, so the check compares equal; bf16 holds integers up to 256 exactly.
    check = not args.no_check and (dtype != torch.bfloat16 or n <= 256)
    if rank == 0:
        emit({"kind": "config", "job_id": point.get("job_id"), "mode": "collectives",
              "backend": backend, "collectives": names, "nranks": n, "dtype": dtype_name,
              "min_bytes": min_b, "max_bytes": max_b, "step_factor": factor,
              "step_bytes": step_b or None, "iters": iters, "warmup_iters": warm,
              "sizes": len(sizes), "check": check, "in_place": False, "op": "sum"})

    def barrier():
        t = torch.zeros(1, device=device)
        dist.all_reduce(t)
        sync(torch, device)

    stopped = failed = False
    state = {}  # the collective under way, for a summary on SIGTERM

    def coll_summary(name, results, skipped, wrong_total, completed, reason=None):
        bus = [r["busbw_gbps"] for r in results]
        best = max(results, key=lambda r: r["busbw_gbps"]) if results else None
        s = {"kind": "collective_summary", "collective": name, "dtype": dtype_name,
             "nranks": n, "backend": backend, "sizes": len(results), "skipped_sizes": skipped,
             "avg_busbw_gbps": statistics.fmean(bus) if bus else None,
             "max_busbw_gbps": best["busbw_gbps"] if best else None,
             "max_algbw_gbps": max(r["algbw_gbps"] for r in results) if results else None,
             "max_busbw_size_bytes": best["size_bytes"] if best else None,
             "wrong": wrong_total if check else None, "completed": completed}
        if reason:
            s["reason"] = reason
        return s

    def on_term():
        if not state:
            return None
        st = dict(state)
        state.clear()
        return metrics_line(coll_summary(st["name"], st["results"], st["skipped"],
                                         st["wrong_total"], False, "SIGTERM"))

    if rank == 0:
        STOP.on_term = on_term
    for name in names:
        shapes = [(s,) + collective_shape(name, s, elsize, n) for s in sizes]
        max_count = max(c for _, c, _ in shapes)
        if name == "all_reduce":
            buf_a = torch.empty(max_count, dtype=dtype, device=device)
            buf_b = None
        elif name == "all_gather":
            buf_a = torch.empty(max_count, dtype=dtype, device=device)  # per-rank input
            buf_b = torch.empty(max_count * n, dtype=dtype, device=device)  # gathered output
        else:
            buf_a = torch.empty(max_count * n, dtype=dtype, device=device)  # full input
            buf_b = torch.empty(max_count, dtype=dtype, device=device)  # this rank's block
        results, skipped, wrong_total = [], [], 0
        state.update(name=name, results=results, skipped=skipped, wrong_total=0)

        for req, count, size_bytes in shapes:
            if count == 0:
                skipped.append(req)
                continue
            if name == "all_reduce":
                x = buf_a[:count]
                op = lambda: dist.all_reduce(x)  # noqa: E731
            elif name == "all_gather":
                x, y = buf_a[:count], buf_b[:count * n]
                op = lambda: dist.all_gather_into_tensor(y, x)  # noqa: E731
            else:
                x, y = buf_a[:count * n], buf_b[:count]
                op = lambda: dist.reduce_scatter_tensor(y, x)  # noqa: E731

            wrong = None
            if check:
                if name == "all_reduce":
                    x.fill_(1)
                    op()
                    wrong = int((x != n).sum().item())
                    x.zero_()  # the timed loop reduces in place: zeros stay zeros
                elif name == "all_gather":
                    x.fill_(rank % 256)
                    op()
                    # Block r of the output must hold rank r's value (broadcast, no full copy).
                    want = (torch.arange(n, device=device) % 256).to(dtype).view(n, 1)
                    wrong = int((y.view(n, count) != want).sum().item())
                else:
                    x.fill_(1)
                    op()
                    wrong = int((y != n).sum().item())
            for _ in range(warm):
                op()
            barrier()
            t0 = time.perf_counter()
            for _ in range(iters):
                op()
            sync(torch, device)
            dt = (time.perf_counter() - t0) / max(iters, 1)
            # nccl-tests' default (-a 1): the time averaged over ranks.
            # The stop flag and the check's wrong-element count (summed over ranks) ride along.
            v = torch.tensor([dt, 1.0 if STOP.usr1 else 0.0, float(wrong or 0)],
                             dtype=torch.float64, device=device)
            dist.all_reduce(v)
            dt = v[0].item() / n
            stopped = v[1].item() > 0
            if check:
                wrong = int(v[2].item())
                wrong_total += wrong
                state["wrong_total"] = wrong_total
            algbw, busbw = bandwidths(name, size_bytes, dt, n)
            r = {"kind": "collective", "collective": name, "size_bytes": size_bytes,
                 "count": count, "dtype": dtype_name, "nranks": n, "time_us": dt * 1e6,
                 "algbw_gbps": algbw, "busbw_gbps": busbw, "wrong": wrong}
            results.append(r)
            if rank == 0:
                emit(r)
            if stopped:
                break
        del buf_a, buf_b
        state.clear()
        if rank == 0:
            emit(coll_summary(name, results, skipped, wrong_total, not stopped,
                              USR1_REASON if stopped else None))
        if stopped:
            break
        failed = failed or wrong_total > 0
    if failed:
        emit({"kind": "error", "rank": rank, "error_type": "WrongResults",
              "message": "a collective returned wrong values (see the `wrong` fields)"})
        return 1
    return 0


# ----------------------------------------------------------------------------------------------


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    STOP.install()
    point = load_json(args.point, "point file") if args.point else {}
    mode = args.mode or (point.get("params") or {}).get("payload_mode") or "train"
    if mode not in ("train", "collectives"):
        sys.exit(f"llama_bench: unknown mode {mode!r} (train or collectives)")
    if mode == "train" and not args.point:
        sys.exit("llama_bench: training mode needs --point point.json")

    torch = import_torch()
    ensure_rendezvous_env()
    env = dist_env()
    device = pick_device(torch, args.device, env["local_rank"])
    emit({
        "kind": "start", "job_id": point.get("job_id"), "campaign": point.get("campaign"),
        "stage": point.get("stage"), "repeat": point.get("repeat"), "mode": mode,
        **env, "hostname": socket.gethostname(), "pid": os.getpid(),
        "device": device_name(torch, device), "device_type": device.type,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        **versions(torch),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    try:
        if mode == "collectives":
            rc = collectives(args, torch, point, env, device)
        else:
            rc = train(args, torch, point, env, device, t0)
    except SystemExit:
        raise
    except BaseException as e:
        emit({"kind": "error", "rank": env["rank"], "error_type": type(e).__name__,
              "message": str(e)[:2000]})
        raise
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:
            pass
    return rc


if __name__ == "__main__":
    sys.exit(main())
