#!/usr/bin/env bash
# How tests/fixtures/local-crash-2026-12-07/ was produced: real crashes of a Python process as
# a batch script's output holds them, made on the development machine (no GPU needed):
# `bash tests/local/crashes.sh DIR`. Each file is the stdout and stderr of one run.
set -u
out=${1:?usage: crashes.sh DIR}
mkdir -p "$out"
cd "$out" || exit 1
# CPython's fault handler (on under `-X faulthandler` or PYTHONFAULTHANDLER, and in many
# launchers) prints the fatal signal and the Python stack.
python3 -X faulthandler -c '
import ctypes
print("step 3 loss 2.71", flush=True)
ctypes.string_at(0)
' > faulthandler-segv.log 2>&1; echo "faulthandler-segv.log rc=$?"
python3 -X faulthandler -c '
import os
print("step 3 loss 2.71", flush=True)
os.abort()
' > faulthandler-abort.log 2>&1; echo "faulthandler-abort.log rc=$?"
# Without the fault handler, the batch script's shell reports the signal of its child.
cat > job.sh <<'JOB'
#!/bin/bash
echo "step 3 loss 2.71"
python3 -c 'import ctypes; ctypes.string_at(0)'
echo "exit code $?"
JOB
bash job.sh > shell-segv.log 2>&1; echo "shell-segv.log rc=$?"
rm -f job.sh
{ python3 --version; bash --version | head -1; } > versions.txt 2>&1
