# A worker that dies of SIGSEGV (a native extension's null dereference) under torchrun: the
# elastic agent's `failed (exitcode: -11)` line and its ChildFailedError summary with `Signal 11
# (SIGSEGV) received by PID`, as a job's output holds them; rank 1 exits normally.
import ctypes
import os

import torch.distributed as dist

dist.init_process_group("gloo")
if dist.get_rank() == 0:
    print("rank 0: dereferencing NULL", flush=True)
    ctypes.string_at(0)
dist.barrier()
print("not reached", os.getpid())
