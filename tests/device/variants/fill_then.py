# Fills the GPU's memory, then does one more thing that needs device memory: `nccl` (the
# first collective, so NCCL's communicator is made now) or `matmul` (the first cuBLAS call).
import sys
import torch
import torch.distributed as dist

what = sys.argv[1]
torch.cuda.set_device(0)
if what == "nccl":
    dist.init_process_group("nccl")
# What the last step works on, allocated before the memory is full.
t = torch.ones(4, device="cuda")
x = torch.randn(64, 64, device="cuda", dtype=torch.bfloat16)
o = torch.empty(64, 64, device="cuda", dtype=torch.bfloat16)
hold = []
step = 1 << 30
while step >= 1 << 20:
    try:
        hold.append(torch.empty(step, dtype=torch.uint8, device="cuda"))
    except torch.OutOfMemoryError:
        step //= 2
free, total = torch.cuda.mem_get_info()
print(f"filled: {len(hold)} blocks, {free} bytes free of {total}", flush=True)
if what == "nccl":
    dist.all_reduce(t)
    torch.cuda.synchronize()
else:
    torch.matmul(x, x, out=o)
    torch.cuda.synchronize()
    print(o.float().sum().item())
