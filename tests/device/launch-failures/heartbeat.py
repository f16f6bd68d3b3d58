# Tries to stall ProcessGroupNCCL's watchdog thread itself, so that its heartbeat monitor (not
# the watchdog) reports: an all_reduce queued behind a ~100 s kernel times out after 5 s, while
# the main thread keeps a resource the watchdog's timeout path may need:
#   gil: one C call that never releases the GIL (the watchdog symbolizes Python stack traces);
#   pin: pinning a large host buffer (a long CUDA driver call).
import datetime
import sys
import time

import torch
import torch.distributed as dist

mode = sys.argv[1]
dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=5))
torch.cuda.set_device(0)
t = torch.ones(4, device="cuda")
dist.all_reduce(t)
torch.cuda.synchronize()
torch.cuda._sleep(200 * 10**9)
dist.all_reduce(t)
t0 = time.time()
if mode == "gil":
    s = sum(range(4 * 10**9))
elif mode == "pin":
    for _ in range(4):
        x = torch.empty(24 * 2**30, dtype=torch.uint8, pin_memory=True)
        del x
print(f"{mode}: main thread busy for {time.time() - t0:.1f} s", flush=True)
torch.cuda.synchronize()
print("not reached")
