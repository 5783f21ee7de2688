"""Contrastive losses shared by method plugins."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def _distributed() -> bool:
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def _gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Every rank's ``z`` concatenated in rank order; gradients flow back to each rank's
    own part (torch's autograd all_gather sums the other ranks' gradients into it)."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float,
            gather: Optional[bool] = None) -> torch.Tensor:
    """In-batch NT-Xent (SimCLR; MatSSL's equation 2) over the 2N embeddings of two views.

    For each embedding the positive is its other view; the negatives are the
    other 2N-2 embeddings of the batch. Similarities are cosine similarities
    divided by ``temperature``; the loss is the mean over all 2N anchors. It is
    computed in float32 even under autocast: at temperature 0.07, bfloat16
    similarities would move the logits by several hundredths.

    With the batch split over ranks (``gather``; default: whenever torch.distributed
    runs with several processes) the batch is the global one: each rank's anchors
    take negatives from every rank's embeddings, gathered with gradients, and the
    mean of the ranks' losses (DDP averages their gradients) is the one-process loss.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f'expected two (N, D) embeddings, got {tuple(z1.shape)} and {tuple(z2.shape)}')
    n = z1.shape[0]
    gather = _distributed() if gather is None else gather
    with torch.autocast(z1.device.type, enabled=False):
        local1, local2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
        rank = torch.distributed.get_rank() if gather else 0
        all1, all2 = ((_gather_with_grad(local1), _gather_with_grad(local2)) if gather
                      else (local1, local2))
        total = all1.shape[0]
        logits = torch.cat([local1, local2]) @ torch.cat([all1, all2]).t() / temperature
        own = torch.arange(n, device=z1.device) + rank * n
        selves = torch.cat([own, own + total])
        positives = torch.cat([own + total, own])
        rows = torch.arange(2 * n, device=z1.device)
        logits = logits.index_put((rows, selves), torch.tensor(float('-inf'), device=z1.device))
        return F.cross_entropy(logits, positives)
