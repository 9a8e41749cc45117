"""Vectorised, NaN-aware operators on `(T, N)` tensors: time series along dim 0, cross-section along dim 1.

Shared by the prior-knowledge library (`nnafc.pk`), the GP baseline (`nnafc.gp`) and the metrics,
so a formula means the same thing wherever it is evaluated.
"""

from __future__ import annotations

import torch


def average_ranks(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Ranks 1..k of the finite entries along `dim`, ties given their mean rank; NaN elsewhere.

    The same convention as `scipy.stats.rankdata(method="average")`, vectorised: one sort and
    two scatters instead of a loop over days.
    """
    x = x.transpose(dim, -1)
    valid = torch.isfinite(x)
    filled = torch.where(valid, x, torch.full_like(x, float("inf")))
    sorted_vals, order = filled.sort(dim=-1, stable=True)
    position = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device).expand_as(x)
    new_group = torch.ones_like(valid)
    new_group[..., 1:] = sorted_vals[..., 1:] != sorted_vals[..., :-1]
    group = new_group.long().cumsum(-1) - 1  # tie-group id of each sorted element
    total = torch.zeros_like(x).scatter_add_(-1, group, position)
    count = torch.zeros_like(x).scatter_add_(-1, group, torch.ones_like(position))
    mean_rank = (total / count.clamp(min=1)).gather(-1, group)
    ranks = torch.empty_like(x).scatter_(-1, order, mean_rank)
    ranks = torch.where(valid, ranks, torch.full_like(x, float("nan")))
    return ranks.transpose(dim, -1)
