#!/usr/bin/env bash
# How tests/fixtures/local-python-2026-12-04/ was produced: real CPython tracebacks of the
# shapes a training script's failure takes, made on the development machine (no GPU needed):
# `bash tests/local/python_failures.sh DIR`. Each file is the run's stdout and stderr.
set -u
out=${1:?usage: python_failures.sh DIR}
mkdir -p "$out"
cd "$out" || exit 1
py() { local name=$1; shift; python3 "$@" > "$name" 2>&1; echo "$name rc=$?"; }
py chained-from.log -c '
def load():
    raise KeyError("weight")
try:
    load()
except KeyError as e:
    raise RuntimeError("checkpoint load failed") from e
'
py chained-during.log -c '
try:
    {}["a"]
except KeyError:
    1/0
'
printf 'def f(:\n  pass\n' > train.py
py syntax.log train.py
rm -f train.py
py multiline.log -c '
raise RuntimeError("Error(s) in loading state_dict for Net:\n\tMissing key(s) in state_dict: \"fc.weight\".\n\tUnexpected key(s) in state_dict: \"head.weight\".")
'
py group.log -c '
print("step 10 loss 2.3", flush=True)
raise ExceptionGroup("two ranks failed", [ValueError("rank 0 bad"), TypeError("rank 1 bad")])
'
py group-nested.log -c '
def shard(r):
    raise ValueError(f"shard {r} has no samples")
errs = []
for r in range(2):
    try:
        shard(r)
    except ValueError as e:
        errs.append(e)
raise ExceptionGroup("data loading failed", [errs[0], ExceptionGroup("retry failed", [errs[1]])])
'
py note.log -c '
e = ValueError("bad shape")
e.add_note("while loading batch 17")
raise e
'
py sigint.log -c 'import os, signal; os.kill(os.getpid(), signal.SIGINT)'
python3 --version > versions.txt 2>&1
