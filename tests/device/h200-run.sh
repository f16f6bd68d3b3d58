#!/usr/bin/env bash
# How the fixtures in tests/fixtures/device-h200-*/ were produced: run on the borrowed one-GPU
# H200 machine (the `device` tool), from the repository root, with
#   .whl/      DeepSpeed 0.19.8 built here with DS_BUILD_OPS=0, and its missing dependencies
#   .device/sweep   this repository's release binary (x86-64)
# carried along. Writes into $OUT: sysinfo.txt, pytest.log, run.log and device-run.tar.gz (the
# campaign directory with every job's logs, and the collected tables).
set -uo pipefail
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
S="$PWD/.device/sweep"
{
  echo "### date"; date -u
  echo "### nvidia-smi"; nvidia-smi
  echo "### nvidia-smi topo -m"; nvidia-smi topo -m
  echo "### lscpu"; lscpu
  echo "### numactl -H"; numactl -H 2>&1 || echo "numactl not installed"
  echo "### /sys NUMA nodes"; for n in /sys/devices/system/node/node*; do echo "$n: $(cat "$n/cpulist" 2>/dev/null)"; done
  echo "### Cpus_allowed_list"; grep Cpus_allowed_list /proc/self/status
  echo "### versions"
  python3 -c 'import sys, torch; print("python", sys.version.split()[0]); print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version())'
  python3 -c 'import deepspeed, transformers; print("deepspeed", deepspeed.__version__, "transformers", transformers.__version__)' 2>&1 | tail -n 1
} > "$OUT/sysinfo.txt" 2>&1
{
  "$S" expand sweeps/device-h200.toml --out runs/device-h200
  timeout 420 "$S" submit --executor local runs/device-h200
  "$S" status runs/device-h200
  "$S" collect runs/device-h200 --out results/device-h200
} > "$OUT/run.log" 2>&1
tar czf "$OUT/device-run.tar.gz" runs/device-h200 results/device-h200
# The payload's own tests, now with torch and DeepSpeed present (CPU/gloo; the DeepSpeed CPU
# tests JIT-compile an op and are left out for time).
if [ -z "${SKIP_PYTEST:-}" ]; then
  timeout 150 python3 -m pytest -q tests/payload -k "not deepspeed_cpu" > "$OUT/pytest.log" 2>&1
  tail -n 5 "$OUT/pytest.log"
fi
cat "$OUT/run.log" | tail -n 40
