"""Run by tests/test_distributed.py under torchrun (2 CPU processes, gloo): MatSSL's loss and
gradients with the global batch split over the ranks vs one process on the whole batch."""
import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import matssl_bench  # noqa: F401
from matssl_bench.models.losses import nt_xent
from matssl_bench.plugins import load_builtin_plugins

load_builtin_plugins()
from matssl_bench.methods.matssl import MatSSLModel  # noqa: E402

dist.init_process_group('gloo')
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
model = MatSSLModel('resnet18', hidden_dim=16, out_dim=8).eval()  # BN on running stats:
# per-sample embeddings, so only the loss couples the samples (SyncBN needs CUDA)
views = torch.randn(2, 4 * world, 3, 32, 32)

# one process, whole batch
model.zero_grad()
reference = nt_xent(model.embed(views[0]), model.embed(views[1]), 0.07, gather=False)
reference.backward()
ref_grads = {k: p.grad.clone() for k, p in model.named_parameters()}

# the batch split over ranks, through MatSSLModel's own loss and DDP
model.zero_grad()
ddp = DistributedDataParallel(model)
part = slice(rank * 4, (rank + 1) * 4)
loss = ddp([views[0][part], views[1][part]], mode='loss')['loss']
loss.backward()
mean_loss = loss.detach().clone()
dist.all_reduce(mean_loss)
mean_loss /= world
# without the gather each rank sees 4 negatives-pool of its own: a different loss
local_only = nt_xent(model.embed(views[0][part]), model.embed(views[1][part]), 0.07, gather=False)
local_mean = local_only.detach().clone()
dist.all_reduce(local_mean)
local_mean /= world
if rank == 0:
    diffs = {k: (p.grad - ref_grads[k]).abs().max().item() for k, p in model.named_parameters()}
    scale = max(g.abs().max().item() for g in ref_grads.values())
    json.dump(dict(reference=reference.item(), distributed=mean_loss.item(),
                   local_only=local_mean.item(), max_grad_diff=max(diffs.values()),
                   grad_scale=scale), open(sys.argv[1], 'w'))
dist.destroy_process_group()
