"""Contrastive losses shared by method plugins."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch NT-Xent (SimCLR; MatSSL's equation 2) over the 2N embeddings of two views.

    For each embedding the positive is its other view; the negatives are the
    other 2N-2 embeddings of the batch. Similarities are cosine similarities
    divided by ``temperature``; the loss is the mean over all 2N anchors. It is
    computed in float32 even under autocast: at temperature 0.07, bfloat16
    similarities would move the logits by several hundredths.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f'expected two (N, D) embeddings, got {tuple(z1.shape)} and {tuple(z2.shape)}')
    n = z1.shape[0]
    with torch.autocast(z1.device.type, enabled=False):
        z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
        logits = z @ z.t() / temperature
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                    float('-inf'))
        positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, positives)
