# Two ranks on one GPU (a launcher that did not bind each rank to its own GPU): NCCL refuses
# the communicator at its first collective.
import torch
import torch.distributed as dist

dist.init_process_group("nccl")
torch.cuda.set_device(0)
t = torch.ones(4, device="cuda")
dist.all_reduce(t)
torch.cuda.synchronize()
print("not reached")
