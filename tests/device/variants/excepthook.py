# A rank that dies of a Python exception after the process group is up (PyTorch >= 2.3
# prefixes each line of the traceback with `[rankN]: `).
import torch
import torch.distributed as dist

dist.init_process_group("nccl")
torch.cuda.set_device(0)
t = torch.ones(4, device="cuda")
dist.all_reduce(t)
a = torch.randn(3, 4, device="cuda")
b = torch.randn(5, 6, device="cuda")
print(a @ b)
