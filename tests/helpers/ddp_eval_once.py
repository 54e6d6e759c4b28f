"""Run under torchrun (2 gloo processes): evaluation and training shards, written as JSON by rank 0."""

import json
import sys

import torch
import torch.distributed as dist

from trainlab.data.base import ImageSet
from trainlab.data.loaders import BatchTransform, TensorLoader
from trainlab.engine import distributed, evaluate_model
from trainlab.tasks.classification import ClassificationTask
from trainlab.config import TaskConfig

N = 13  # not divisible by the world of 2; with batch 4 the tail batch of 1 leaves one rank empty
device = distributed.setup("cpu", 1)
rank, world = distributed.rank_world()
g = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (N, 1, 4, 4), generator=g, dtype=torch.uint8)
data = ImageSet(images, torch.arange(N) % 3)
tf = BatchTransform([0.5], [0.25])
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
task = ClassificationTask(TaskConfig(), 3)
loader = TensorLoader(data, 4, shuffle=False, seed=0, transform=tf, device=device)
result, meter = evaluate_model(model, task, loader, device, keep_predictions=True)
train = TensorLoader(data, 4, shuffle=True, seed=0, transform=tf, device=device)
mine = [b["index"].tolist() for b in train.iterate(1)]
shards: list = [None] * world
dist.all_gather_object(shards, mine)
if rank == 0:
    json.dump({"samples": result["samples"], "index": sorted(torch.cat(meter.index).tolist()),
               "train_len": len(train), "train_shards": shards}, open(sys.argv[1], "w"))
distributed.teardown()
