"""Tests of the benchmark payload job-templates/payloads/llama_bench.py (CPU only).

    python3 -m pytest tests/payload -v

The arithmetic tests need only the standard library. The rest run the payload for real in
subprocesses of the interpreter running pytest, and are skipped (saying why) when it lacks torch,
transformers or deepspeed: collectives over gloo with 2 ranks, a tiny Llama trained with the plain
torch loop (1 and 2 ranks), SIGUSR1/SIGTERM handling, an exception mid-run, and a tiny ZeRO-3 run
through DeepSpeed with DS_ACCELERATOR=cpu (its first run JIT-compiles DeepSpeed's CPU shared-memory
op, which needs ninja and a C++ compiler, and takes about a minute on 2 cores).
"""

import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = REPO / "job-templates" / "payloads" / "llama_bench.py"
PREFIX = "SWEEP_METRICS "


def _load_module():
    spec = importlib.util.spec_from_file_location("llama_bench", PAYLOAD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


lb = _load_module()

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
HAVE_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed in this Python")
needs_transformers = pytest.mark.skipif(
    not (HAVE_TORCH and HAVE_TRANSFORMERS), reason="torch and transformers are not both installed")


# ----------------------------------------------------------------------------------------------
# Helpers


def metrics(text):
    """The JSON objects of the SWEEP_METRICS lines of a log."""
    out = []
    for line in text.splitlines():
        if line.startswith(PREFIX):
            out.append(json.loads(line[len(PREFIX):]))
    return out


def kinds(ms, kind):
    return [m for m in ms if m["kind"] == kind]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def base_env(extra=None):
    env = dict(os.environ)
    # Two ranks on a small shared machine: one intra-op thread each, or they thrash.
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK",
              "LOCAL_WORLD_SIZE"):
        env.pop(k, None)
    env.update(extra or {})
    return env


def launch(args, nranks, tmp_path, extra_env=None):
    """Starts nranks payload processes the way the rank wrapper does (env://, one per rank)."""
    port = free_port()
    procs = []
    for r in range(nranks):
        env = base_env(extra_env)
        env.update({"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(nranks),
                    "LOCAL_WORLD_SIZE": str(nranks), "NODE_RANK": "0",
                    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
        out = open(tmp_path / f"rank-{r}.log", "w+")
        err = open(tmp_path / f"rank-{r}.err", "w+")
        p = subprocess.Popen([sys.executable, "-u", str(PAYLOAD)] + args, env=env,
                             stdout=out, stderr=err, cwd=tmp_path)
        procs.append((p, out, err))
    return procs


def finish(procs, timeout=600):
    results = []
    for p, out, err in procs:
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        out.seek(0)
        err.seek(0)
        results.append((rc, out.read(), err.read()))
        out.close()
        err.close()
    return results


def run_ranks(args, nranks, tmp_path, extra_env=None, timeout=600):
    return finish(launch(args, nranks, tmp_path, extra_env), timeout)


def wait_for_steps(path, n, proc, timeout=300):
    """Waits until the log at path holds n step lines (or the process ended)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if len(kinds(metrics(Path(path).read_text()), "step")) >= n or proc.poll() is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {n} steps in {path} after {timeout} s")


TINY_MODEL = {"name": "tiny-llama", "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2,
              "ffn": 176, "vocab": 256, "seq_len": 64, "tied_embeddings": False}


def write_point(tmp_path, *, world=1, micro=2, accum=2, seq=64, steps=3, warmup=1,
                checkpointing=False, model=None, name="point.json", **params):
    """A point.json laid out as `sweep expand` writes it (src/campaign.rs render_job)."""
    model = dict(model or TINY_MODEL)
    model["params"] = lb.model_params(model)
    model["kv_heads"] = lb.kv_heads(model)
    gb = micro * accum * world
    p = {
        "job_id": "tiny-test-0001", "campaign": "payload-test", "stage": "tiny", "repeat": 0,
        "scaling": "weak", "axes": {"model": model["name"]},
        "params": {"zero_stage": 3, "activation_checkpointing": checkpointing, "steps": steps,
                   "warmup_steps": warmup, "model": model["name"], "micro_batch": micro,
                   "grad_accum": accum, "gpus": world, "world_size": world, "dp": world,
                   "global_batch": gb, "seq_len": seq, "tokens_per_step": gb * seq, **params},
        "batch": {"nodes": 1, "gpus_per_node": world, "gpus": world, "tensor_parallel": 1,
                  "pipeline_parallel": 1, "dp": world, "micro_batch": micro,
                  "grad_accum": accum, "global_batch": gb, "seq_len": seq,
                  "tokens_per_step": gb * seq},
        "model": model, "env": {}, "profile": "local",
    }
    path = tmp_path / name
    path.write_text(json.dumps(p, indent=2))
    return path


# ----------------------------------------------------------------------------------------------
# Standard library only


def test_help_works_without_torch(tmp_path):
    # Block torch/deepspeed/transformers even where they are installed, then run --help.
    blocker = (
        "import sys, runpy\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'deepspeed', 'transformers'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.argv = [{str(PAYLOAD)!r}, '--help']\n"
        f"runpy.run_path({str(PAYLOAD)!r}, run_name='__main__')\n"
    )
    r = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--point" in r.stdout and "--mode" in r.stdout and "--deepspeed_config" in r.stdout


def test_missing_torch_is_a_clear_error(tmp_path):
    blocker = (
        "import sys, runpy\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('No module named torch (blocked)')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.argv = [{str(PAYLOAD)!r}, '--mode', 'collectives']\n"
        f"runpy.run_path({str(PAYLOAD)!r}, run_name='__main__')\n"
    )
    r = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "cannot import torch" in r.stderr


def test_model_arithmetic_matches_src_model_rs():
    # The Llama-2 presets of src/model.rs; the parameter counts are the released models'.
    presets = {
        "llama2-7b": (32, 4096, 32, 32, 11008, 6738415616),
        "llama2-13b": (40, 5120, 40, 40, 13824, 13015864320),
        "llama2-70b": (80, 8192, 64, 8, 28672, 68976648192),
    }
    for name, (layers, hidden, heads, kv, ffn, params) in presets.items():
        m = {"layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv, "ffn": ffn,
             "vocab": 32000, "seq_len": 4096}
        assert lb.model_params(m) == params, name
    # src/model.rs's own test: 7B at 4096 tokens = 6 x (params - input embedding) + attention.
    m7 = {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 32, "ffn": 11008,
          "vocab": 32000, "seq_len": 4096}
    f = lb.train_flops_per_token(m7, 4096)
    assert f == 6.0 * (6738415616 - 32000 * 4096) + 12.0 * 32 * 4096 * 4096
    assert f == 46086512640.0
    # Tied embeddings: nothing is subtracted (the one matrix is also the LM head).
    tied = dict(m7, tied_embeddings=True)
    assert lb.model_params(tied) == 6738415616 - 32000 * 4096
    assert lb.train_flops_per_token(tied, 4096) == 6.0 * lb.model_params(tied) + 12.0 * 32 * 4096 * 4096
    assert lb.CHECKPOINT_HW_FACTOR == pytest.approx(4 / 3)


def test_sizes_like_nccl_tests():
    assert lb.parse_size("8") == 8
    assert lb.parse_size(8) == 8
    assert lb.parse_size("64K") == 64 * 1024
    assert lb.parse_size("1m") == 1 << 20
    assert lb.parse_size("16G") == 16 << 30
    assert lb.parse_size("0.5G") == 512 << 20
    for bad in ("", "G", "12Q", "-1"):
        with pytest.raises(ValueError):
            lb.parse_size(bad)
    assert lb.size_range(8, 64, 2, 0) == [8, 16, 32, 64]
    assert lb.size_range(8, 100, 4, 0) == [8, 32]
    assert lb.size_range(100, 400, 1, 100) == [100, 200, 300, 400]
    with pytest.raises(ValueError):
        lb.size_range(8, 64, 1, 0)
    assert len(lb.size_range(8, 16 << 30, 2, 0)) == 32  # 8 B .. 16 GiB


def test_collective_shapes_and_busbw_formulas():
    # all_reduce: the whole buffer; all_gather / reduce_scatter: S = per-rank count x size x n.
    assert lb.collective_shape("all_reduce", 1024, 4, 8) == (256, 1024)
    assert lb.collective_shape("all_gather", 1024, 4, 8) == (32, 1024)
    assert lb.collective_shape("reduce_scatter", 1000, 4, 8) == (31, 31 * 8 * 4)
    assert lb.collective_shape("all_gather", 8, 4, 16) == (0, 0)
    t = 1e-3
    for n in (2, 8, 16):
        alg, bus = lb.bandwidths("all_reduce", 1e9, t, n)
        assert alg == pytest.approx(1e9 / t / 1e9)
        assert bus == pytest.approx(alg * 2 * (n - 1) / n)
        for c in ("all_gather", "reduce_scatter"):
            alg, bus = lb.bandwidths(c, 1e9, t, n)
            assert bus == pytest.approx(alg * (n - 1) / n)
    # n = 2: busbw = algbw for all_reduce, algbw / 2 for the other two.
    assert lb.bandwidths("all_reduce", 4096, 1e-6, 2)[1] == pytest.approx(4.096)
    assert lb.bandwidths("all_gather", 4096, 1e-6, 2)[1] == pytest.approx(2.048)


def test_metrics_lines_are_valid_json():
    line = lb.metrics_line({"kind": "step", "loss": float("nan"), "x": float("inf"), "t": 1 / 3})
    assert line.startswith(PREFIX) and "\n" not in line
    obj = json.loads(line[len(PREFIX):])
    assert obj == {"kind": "step", "loss": None, "x": None, "t": 0.333333}


# ----------------------------------------------------------------------------------------------
# Collectives over gloo


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_collectives_two_ranks_gloo(tmp_path, dtype):
    res = run_ranks(["--mode", "collectives", "--min-bytes", "8", "--max-bytes", "1M",
                     "--factor", "8", "--iters", "3", "--warmup-iters", "1",
                     "--coll-dtype", dtype], 2, tmp_path, timeout=300)
    for rc, out, err in res:
        assert rc == 0, err[-3000:]
    ms = metrics(res[0][1])
    start = kinds(ms, "start")[0]
    assert start["world_size"] == 2 and start["mode"] == "collectives" and start["device"] == "cpu"
    cfg = kinds(ms, "config")[0]
    assert cfg["backend"] == "gloo" and cfg["nranks"] == 2
    lines = kinds(ms, "collective")
    want_sizes = lb.size_range(8, 1 << 20, 8, 0)  # 8, 64, 512, 4K, 32K, 256K
    elsize = 4 if dtype == "float32" else 2
    for name in lb.COLLECTIVES:
        ls = [x for x in lines if x["collective"] == name]
        expect = [lb.collective_shape(name, s, elsize, 2) for s in want_sizes]
        expect = [e for e in expect if e[0] > 0]
        assert [(x["count"], x["size_bytes"]) for x in ls] == expect, name
        for x in ls:
            assert x["dtype"] == dtype and x["nranks"] == 2 and x["wrong"] == 0
            alg = x["size_bytes"] / (x["time_us"] * 1e-6) / 1e9
            assert x["algbw_gbps"] == pytest.approx(alg, rel=1e-3)
            factor = 1.0 if name == "all_reduce" else 0.5  # 2(n-1)/n and (n-1)/n at n = 2
            assert x["busbw_gbps"] == pytest.approx(x["algbw_gbps"] * factor, rel=1e-3)
        summ = [s for s in kinds(ms, "collective_summary") if s["collective"] == name]
        assert len(summ) == 1 and summ[0]["completed"] is True and summ[0]["wrong"] == 0
        assert summ[0]["avg_busbw_gbps"] == pytest.approx(
            sum(x["busbw_gbps"] for x in ls) / len(ls), rel=1e-3)
    # Only rank 0 prints results; every rank prints its start line.
    other = metrics(res[1][1])
    assert [m["kind"] for m in other] == ["start"] and other[0]["rank"] == 1


@needs_torch
def test_collectives_from_point_params(tmp_path):
    point = tmp_path / "point.json"
    point.write_text(json.dumps({
        "job_id": "nccl-n1-all_gather-test", "params": {
            "payload_mode": "collectives", "collective": "all_gather", "min_bytes": "1K",
            "max_bytes": "4K", "step_factor": 2, "iters": 2, "warmup_iters": 1},
        "batch": {}, "model": None}))
    res = run_ranks(["--point", str(point)], 2, tmp_path, timeout=300)
    assert all(rc == 0 for rc, _, _ in res), res[0][2][-3000:]
    ms = metrics(res[0][1])
    lines = kinds(ms, "collective")
    assert [x["size_bytes"] for x in lines] == [1024, 2048, 4096]
    assert {x["collective"] for x in lines} == {"all_gather"}
    assert kinds(ms, "start")[0]["job_id"] == "nccl-n1-all_gather-test"


LONG_SWEEP = ["--mode", "collectives", "--collectives", "all_reduce,all_gather",
              "--min-bytes", "1K", "--max-bytes", "1M", "--factor", "2", "--iters", "200",
              "--warmup-iters", "1"]


def wait_for_kind(path, kind, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if kinds(metrics(Path(path).read_text()), kind) or proc.poll() is not None:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} line in {path} after {timeout} s")


@needs_torch
def test_collectives_sigusr1_stops_after_the_current_size(tmp_path):
    procs = launch(LONG_SWEEP, 2, tmp_path)
    wait_for_kind(tmp_path / "rank-0.log", "collective", procs[0][0])
    procs[1][0].send_signal(signal.SIGUSR1)
    res = finish(procs, timeout=120)
    for rc, out, err in res:
        assert rc == 0, err[-3000:]
    ms = metrics(res[0][1])
    summ = kinds(ms, "collective_summary")
    assert len(summ) == 1 and summ[0]["collective"] == "all_reduce"
    assert summ[0]["completed"] is False and summ[0]["reason"] == "SIGUSR1 before time limit"
    assert summ[0]["sizes"] == len(kinds(ms, "collective")) < 11


@needs_torch
def test_collectives_sigterm_prints_partial_summary(tmp_path):
    procs = launch(LONG_SWEEP, 2, tmp_path)
    wait_for_kind(tmp_path / "rank-0.log", "collective", procs[0][0])
    procs[0][0].send_signal(signal.SIGTERM)
    procs[1][0].send_signal(signal.SIGTERM)
    res = finish(procs, timeout=120)
    assert [rc for rc, _, _ in res] == [143, 143]
    summ = kinds(metrics(res[0][1]), "collective_summary")
    assert len(summ) == 1 and summ[0]["completed"] is False and summ[0]["reason"] == "SIGTERM"
    assert summ[0]["sizes"] >= 1


# ----------------------------------------------------------------------------------------------
# Training with the plain torch loop


def check_step_arithmetic(ms, world, seq, fpt, hw):
    for s in kinds(ms, "step"):
        cfg = kinds(ms, "config")[0]
        gb = cfg["global_batch"]
        assert s["samples_per_s"] == pytest.approx(gb / s["step_time_s"], rel=1e-4)
        assert s["tokens_per_s"] == pytest.approx(s["samples_per_s"] * seq, rel=1e-4)
        assert s["tflops_per_gpu"] == pytest.approx(fpt * s["tokens_per_s"] / world / 1e12, rel=1e-4)
        assert s["hw_tflops_per_gpu"] == pytest.approx(s["tflops_per_gpu"] * hw, rel=1e-4)
        assert s["step_time_min_s"] <= s["step_time_s"]
        assert math.isfinite(s["loss"]) and 3.0 < s["loss"] < 9.0  # ~ln(256) for random tokens


@needs_transformers
@pytest.mark.parametrize("checkpointing", [False, True])
def test_train_torch_one_rank(tmp_path, checkpointing):
    point = write_point(tmp_path, steps=3, warmup=2, checkpointing=checkpointing)
    res = run_ranks(["--point", str(point), "--no-deepspeed"], 1, tmp_path, timeout=300)
    rc, out, err = res[0]
    assert rc == 0, err[-3000:]
    ms = metrics(out)
    assert [m["kind"] for m in ms] == ["start", "config"] + ["step"] * 5 + ["summary"]
    cfg = kinds(ms, "config")[0]
    assert cfg["engine"] == "torch" and cfg["attn_implementation"] == "sdpa"
    assert cfg["params"] == cfg["params_formula"] == lb.model_params(TINY_MODEL)
    assert cfg["checkpointing_active"] is checkpointing
    fpt = lb.train_flops_per_token(TINY_MODEL, 64)
    assert cfg["flops_per_token"] == pytest.approx(fpt)
    hw = 4 / 3 if checkpointing else 1.0
    steps = kinds(ms, "step")
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    assert [s["warmup"] for s in steps] == [True, True, False, False, False]
    check_step_arithmetic(ms, 1, 64, fpt, hw)
    summ = kinds(ms, "summary")[0]
    assert summ["completed"] is True and "reason" not in summ
    assert summ["steps"] == 3 and summ["steps_run"] == 5 and summ["global_batch"] == 4
    times = [s["step_time_s"] for s in steps[2:]]
    assert summ["step_time_mean_s"] == pytest.approx(sum(times) / 3, rel=1e-4)
    assert summ["step_time_median_s"] == pytest.approx(sorted(times)[1], rel=1e-4)
    assert summ["samples_per_s"] == pytest.approx(4 / summ["step_time_mean_s"], rel=1e-4)
    assert summ["tflops_per_gpu"] == pytest.approx(
        fpt * summ["tokens_per_s"] / 1e12, rel=1e-4)


@needs_transformers
def test_train_torch_two_ranks_ddp(tmp_path):
    point = write_point(tmp_path, world=2, steps=2, warmup=1)
    res = run_ranks(["--point", str(point), "--no-deepspeed"], 2, tmp_path, timeout=400)
    for rc, out, err in res:
        assert rc == 0, err[-3000:]
    ms = metrics(res[0][1])
    assert kinds(ms, "warning") == []  # the point's global batch is what ran
    cfg = kinds(ms, "config")[0]
    assert cfg["world_size"] == 2 and cfg["global_batch"] == 8
    check_step_arithmetic(ms, 2, 64, lb.train_flops_per_token(TINY_MODEL, 64), 1.0)
    assert kinds(ms, "summary")[0]["completed"] is True
    assert [m["kind"] for m in metrics(res[1][1])] == ["start"]


@needs_transformers
def test_sigusr1_on_one_rank_stops_both_cleanly(tmp_path):
    point = write_point(tmp_path, world=2, steps=100000, warmup=1)
    procs = launch(["--point", str(point), "--no-deepspeed"], 2, tmp_path)
    wait_for_steps(tmp_path / "rank-0.log", 3, procs[0][0])
    procs[1][0].send_signal(signal.SIGUSR1)  # only rank 1: the ranks agree at the step's end
    res = finish(procs, timeout=120)
    for rc, out, err in res:
        assert rc == 0, err[-3000:]
    ms = metrics(res[0][1])
    summ = kinds(ms, "summary")
    assert len(summ) == 1
    assert summ[0]["completed"] is False
    assert summ[0]["reason"] == "SIGUSR1 before time limit"
    assert summ[0]["steps_run"] == len(kinds(ms, "step")) >= 3
    assert summ[0]["steps"] == summ[0]["steps_run"] - 1
    assert summ[0]["step_time_mean_s"] > 0


@needs_transformers
def test_sigterm_prints_summary_and_exits_143(tmp_path):
    point = write_point(tmp_path, steps=100000, warmup=1)
    procs = launch(["--point", str(point), "--no-deepspeed"], 1, tmp_path)
    wait_for_steps(tmp_path / "rank-0.log", 3, procs[0][0])
    procs[0][0].send_signal(signal.SIGTERM)
    rc, out, err = finish(procs, timeout=120)[0]
    assert rc == 143, err[-3000:]
    summ = kinds(metrics(out), "summary")
    assert len(summ) == 1 and summ[0]["completed"] is False and summ[0]["reason"] == "SIGTERM"
    assert summ[0]["steps_run"] >= 3


@needs_transformers
def test_exception_mid_run_propagates(tmp_path):
    # 3 KV heads for 4 query heads: the model builds, the first forward fails.
    bad = dict(TINY_MODEL, kv_heads=3)
    point = write_point(tmp_path, model=bad)
    rc, out, err = run_ranks(["--point", str(point), "--no-deepspeed"], 1, tmp_path, timeout=300)[0]
    assert rc != 0
    assert "Traceback (most recent call last)" in err
    ms = metrics(out)
    error = kinds(ms, "error")
    assert len(error) == 1 and error[0]["rank"] == 0 and error[0]["error_type"]
    summ = kinds(ms, "summary")
    assert len(summ) == 1 and summ[0]["completed"] is False
    assert summ[0]["reason"].startswith("exception: ")


@needs_transformers
def test_train_without_model_is_a_clear_error(tmp_path):
    point = tmp_path / "point.json"
    point.write_text(json.dumps({"job_id": "x", "params": {}, "batch": {}, "model": None}))
    rc, out, err = run_ranks(["--point", str(point), "--no-deepspeed"], 1, tmp_path)[0]
    assert rc != 0 and "has no `model`" in err


# ----------------------------------------------------------------------------------------------
# DeepSpeed on CPU


def ds_config(tmp_path, stage, profile_step=None):
    cfg = {
        "steps_per_print": 10, "wall_clock_breakdown": False, "gradient_clipping": 1.0,
        "zero_optimization": {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
                              "reduce_bucket_size": 100000000},
        "bf16": {"enabled": True},
        "optimizer": {"type": "AdamW", "params": {"lr": 0.0001, "weight_decay": 0.1}},
        "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2,
        "train_batch_size": 4,
    }
    if profile_step is not None:
        cfg["flops_profiler"] = {"enabled": True, "profile_step": profile_step, "detailed": False}
    path = tmp_path / f"ds_config_{stage}.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


needs_deepspeed = pytest.mark.skipif(
    not (HAVE_TORCH and HAVE_TRANSFORMERS and HAVE_DEEPSPEED)
    or shutil.which("c++") is None and shutil.which("g++") is None,
    reason="needs torch, transformers, deepspeed and a C++ compiler (DeepSpeed JIT-builds its "
    "CPU communication op)")


@needs_deepspeed
@pytest.mark.parametrize("stage,nranks", [(3, 2), (2, 1)])
def test_train_deepspeed_cpu(tmp_path, stage, nranks):
    point = write_point(tmp_path, world=nranks, steps=2, warmup=1, checkpointing=(stage == 2))
    cfg = ds_config(tmp_path, stage, profile_step=1)
    res = run_ranks(["--point", str(point), "--deepspeed", "--deepspeed_config", str(cfg)],
                    nranks, tmp_path, extra_env={"DS_ACCELERATOR": "cpu"}, timeout=900)
    for rc, out, err in res:
        assert rc == 0, (out + err)[-4000:]
    ms = metrics(res[0][1])
    cfgl = kinds(ms, "config")[0]
    assert cfgl["engine"] == "deepspeed" and cfgl["zero_stage"] == stage
    assert cfgl["dtype"] == "bfloat16"
    # Under ZeRO-3 each rank holds a partition; the count uses the full sizes (ds_numel).
    assert cfgl["params"] == lb.model_params(TINY_MODEL)
    assert "optimizer.params.torch_adam = true" in cfgl["ds_config_changes"]
    if nranks == 2:
        assert "ds_config train_batch_size 4 -> 8 (world size 2)" in cfgl["ds_config_changes"]
    steps = kinds(ms, "step")
    assert len(steps) == 3
    # DeepSpeed profiles the optimizer step whose global_steps == profile_step: our step 2.
    assert cfgl["flops_profiler_step"] == 2
    assert steps[1].get("excluded") is True
    check_step_arithmetic(ms, nranks, 64, lb.train_flops_per_token(TINY_MODEL, 64),
                          4 / 3 if stage == 2 else 1.0)
    summ = kinds(ms, "summary")[0]
    assert summ["completed"] is True and summ["excluded_steps"] == [2] and summ["steps"] == 1
