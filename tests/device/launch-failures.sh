#!/usr/bin/env bash
# Run on 2026-12-07 on a borrowed one-GPU H100 (`device` tool; written 2026-12-04, when none was
# lent): what it gave is tests/fixtures/device-h100-2026-12-07/ (PROVENANCE.md there).
# Real hang and launch failures, and an HF Trainer run, on a borrowed one-GPU machine (the
# `device` tool), from the repository root; each case's stdout and stderr go to one file in $OUT, as a batch script's
# `--output` would hold them. Nothing but the image's torch and transformers is needed, and
# accelerate for the Trainer (in the image; else carry .whl/hf: `pip download --no-deps -d .whl/hf accelerate
# psutil --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64`).
set -uo pipefail
export PYTHONUNBUFFERED=1
H=tests/device/launch-failures
tr() { local t=$1 n=$2; shift 2; timeout "$t" torchrun --standalone --nproc-per-node "$n" "$@"; }
{ date -u; nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())'; } > "$OUT/versions.txt" 2>&1
NCCL_DEBUG=WARN tr 60 2 $H/dup_gpu.py > "$OUT/dup-gpu.log" 2>&1; echo "dup-gpu rc=$?" >> "$OUT/rc.txt"
python3 -c 'import accelerate' 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /tmp/acc .whl/hf/*.whl
PYTHONPATH=/tmp/acc timeout 300 python3 $H/hf_trainer.py > "$OUT/hf-trainer.log" 2>&1; echo "hf-trainer rc=$?" >> "$OUT/rc.txt"
tr 60 2 $H/segv.py > "$OUT/segv.log" 2>&1; echo "segv rc=$?" >> "$OUT/rc.txt"
timeout 60 python3 $H/store_timeout.py > "$OUT/store-timeout.log" 2>&1; echo "store-timeout rc=$?" >> "$OUT/rc.txt"
# The longest and least sure case last: what ran before it comes back even if the call runs out.
for m in gil pin; do
  TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC=8 tr 75 1 $H/heartbeat.py $m 2>&1 | head -c 262144 > "$OUT/heartbeat-$m.log"
  echo "heartbeat-$m rc=${PIPESTATUS[0]}" >> "$OUT/rc.txt"
done
cat "$OUT/rc.txt"; for f in "$OUT"/*.log; do echo "== $f"; grep -v '^ *frame\|^#' "$f" | cut -c1-220 | head -25; done
