#!/usr/bin/env bash
# How tests/fixtures/device-h200-2026-12-04/ was produced: run on the borrowed one-GPU H200
# machine (the `device` tool) from the repository root, with .whl/new (DeepSpeed 0.19.8 built
# here with DS_BUILD_OPS=0, and its missing dependencies) and .whl/old (DeepSpeed 0.10.0 built
# the same way, pydantic 1.10) carried along. Each case's stdout and stderr go to one file in
# $OUT, as a batch script's `--output` would hold them.
set -uo pipefail
export PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0
V=tests/device/variants
pip() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$1" "${@:2}"; }
pip /tmp/new .whl/new/*.whl || exit 1
pip /tmp/old .whl/old/*.whl .whl/new/hjson-*.whl .whl/new/py_cpuinfo-*.whl .whl/new/typing_extensions-*.whl || exit 1
# DeepSpeed 0.10.0 imports numpy's `BUFSIZE`, gone in numpy 2 (the image's), in its autotuner,
# which `import deepspeed` loads: the value it stood for, in place of the import.
sed -i 's/^from numpy import BUFSIZE$/BUFSIZE = 8192/' /tmp/old/deepspeed/autotuning/scheduler.py
tr1() { timeout "$1" torchrun --standalone --nproc-per-node 1 "${@:2}"; }
{ date -u; nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())'; } > "$OUT/versions.txt" 2>&1
tr1 60 $V/excepthook.py > "$OUT/excepthook.log" 2>&1; echo "rc=$?" >> "$OUT/rc.txt"
NCCL_DEBUG=INFO tr1 90 $V/fill_then.py nccl > "$OUT/fill-nccl.log" 2>&1; echo "fill-nccl rc=$?" >> "$OUT/rc.txt"
tr1 90 $V/fill_then.py matmul > "$OUT/fill-matmul.log" 2>&1; echo "fill-matmul rc=$?" >> "$OUT/rc.txt"
# (A watchdog's dump can be long: the first 256 KiB are kept.)
TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC=20 tr1 120 $V/watchdog.py 2>&1 | head -c 262144 > "$OUT/watchdog.log"; echo "watchdog rc=${PIPESTATUS[0]}" >> "$OUT/rc.txt"
PYTHONPATH=/tmp/new tr1 150 $V/ds_pipe.py pipe > "$OUT/ds0.19.8-pipe.log" 2>&1; echo "ds-new-pipe rc=$?" >> "$OUT/rc.txt"
PYTHONPATH=/tmp/old tr1 150 $V/ds_pipe.py engine > "$OUT/ds0.10.0-engine.log" 2>&1; echo "ds-old-engine rc=$?" >> "$OUT/rc.txt"
PYTHONPATH=/tmp/old tr1 150 $V/ds_pipe.py pipe > "$OUT/ds0.10.0-pipe.log" 2>&1; echo "ds-old-pipe rc=$?" >> "$OUT/rc.txt"
cat "$OUT/rc.txt"; for f in "$OUT"/*.log; do echo "== $f"; tail -n 5 "$f" | cut -c1-200; done
