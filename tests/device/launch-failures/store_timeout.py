# A job whose second process never starts (a node that did not come up): rank 0 waits for it
# at the rendezvous store until its 10 s timeout.
import datetime
import os

import torch.distributed as dist

os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29531")
dist.init_process_group(
    "nccl", rank=0, world_size=2, timeout=datetime.timedelta(seconds=10)
)
print("not reached")
