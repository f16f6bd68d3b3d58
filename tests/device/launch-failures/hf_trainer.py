# A small GPT-2 (built from its config: nothing is downloaded) trained by transformers' Trainer
# on random tokens for 40 steps, logging every 10 and evaluating once: the per-step dicts, the
# eval dict and the end-of-training summary as the image's transformers prints them, then
# `trainer.log_metrics` ("***** train metrics *****").
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n, seq):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 50257, (n, seq), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


model = GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=256, n_head=4, n_positions=512))
args = TrainingArguments(
    output_dir="/tmp/hf-out",
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    max_steps=40,
    logging_steps=10,
    eval_strategy="steps",
    eval_steps=40,
    save_strategy="no",
    report_to=[],
    bf16=True,
)
trainer = Trainer(model=model, args=args, train_dataset=Tokens(512, 512), eval_dataset=Tokens(64, 512))
result = trainer.train()
trainer.log_metrics("train", result.metrics)
