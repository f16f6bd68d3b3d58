# A collective that cannot finish: the NCCL stream waits on a long kernel queued before it,
# so the watchdog's timeout (5 s here) fires.
import datetime
import torch
import torch.distributed as dist

dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=5))
torch.cuda.set_device(0)
t = torch.ones(4, device="cuda")
dist.all_reduce(t)
torch.cuda.synchronize()
torch.cuda._sleep(200 * 10**9)  # ~100 s of GPU cycles
dist.all_reduce(t)
torch.cuda.synchronize()
print("not reached")
