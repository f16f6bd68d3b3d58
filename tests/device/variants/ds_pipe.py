# DeepSpeed's pipeline engine on one GPU (one stage): it prints `steps: N loss: .. iter time
# (s): .. samples/sec: ..` and its wall_clock_breakdown timers every steps_per_print steps.
# argv[1]: "pipe" or "engine" (the plain engine, for DeepSpeed versions' timer names).
import sys
import torch
import deepspeed
from deepspeed.pipe import PipelineModule

mode = sys.argv[1]
torch.manual_seed(0)
H = 2048
layers = [torch.nn.Linear(H, H) for _ in range(8)]
cfg = {
    "train_batch_size": 32,
    "train_micro_batch_size_per_gpu": 8,
    "gradient_accumulation_steps": 4,
    "steps_per_print": 5,
    "wall_clock_breakdown": True,
    "bf16": {"enabled": True},
    "optimizer": {"type": "Adam", "params": {"lr": 1e-4, "torch_adam": True}},
}
deepspeed.init_distributed()
if mode == "pipe":
    model = PipelineModule(layers=layers, num_stages=1, loss_fn=torch.nn.MSELoss())
else:
    model = torch.nn.Sequential(*layers)
engine, _, _, _ = deepspeed.initialize(model=model, config=cfg, model_parameters=model.parameters())
data = [(torch.randn(8, H, dtype=torch.bfloat16), torch.randn(8, H, dtype=torch.bfloat16)) for _ in range(4)]
if mode == "pipe":
    it = deepspeed.utils.RepeatingLoader(data)
    it = iter(it)
    for _ in range(20):
        engine.train_batch(data_iter=it)
else:
    for step in range(12):
        for x, y in data:
            x, y = x.cuda(), y.cuda()
            loss = torch.nn.functional.mse_loss(engine(x), y)
            engine.backward(loss)
            engine.step()
