"""Differentiable rank-IC objectives for training factor networks (§3.2, Eq. 13-14).

Inputs are `(q, n)`: q trading days, n stocks per day (padded). A stock is missing where `mask`
is False or either value is NaN. Days with fewer than 3 stocks or a constant side are left out
of the mean; when no day is usable the loss is 0 with zero gradient, never NaN. Masking happens
before any arithmetic, so missing values cannot leak NaN into gradients.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from nnafc.ops import average_ranks

MIN_STOCKS = 3
_EPS = 1e-12


def _valid(x: torch.Tensor, mask: torch.Tensor | None, *others: torch.Tensor) -> torch.Tensor:
    valid = torch.isfinite(x)
    for other in others:
        valid = valid & torch.isfinite(other)
    if mask is not None:
        valid = valid & mask.bool()
    return valid


def _masked_standardise(x: torch.Tensor, valid: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """(x - mean) / std over the valid entries along `dim`; 0 at invalid entries."""
    n = valid.sum(dim, keepdim=True).clamp(min=1)
    x0 = torch.where(valid, x, torch.zeros_like(x))
    mean = x0.sum(dim, keepdim=True) / n
    centred = torch.where(valid, x0 - mean, torch.zeros_like(x))
    std = ((centred * centred).sum(dim, keepdim=True) / n).clamp(min=_EPS).sqrt()
    return centred / std


def kernel(x: torch.Tensor, mask: torch.Tensor | None = None, p: float = 1.83, dim: int = -1) -> torch.Tensor:
    """g(x) = 1 / (1 + exp(-p (x - mean) / (2 std))), Eq. 13, per cross-section along `dim`.

    A smooth, monotone stand-in for rank(): it keeps order and bounds the pull of outliers.
    NaN where the entry is missing.
    """
    valid = _valid(x, mask)
    g = torch.sigmoid(p * _masked_standardise(x, valid, dim) / 2)
    return torch.where(valid, g, torch.full_like(g, torch.nan))


def _masked_pearson(
    a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row Pearson over valid entries and whether the row is usable."""
    n = valid.sum(-1)
    za, zb = _masked_standardise(a, valid), _masked_standardise(b, valid)
    corr = (za * zb).sum(-1) / n.clamp(min=1)
    usable = (n >= MIN_STOCKS) & _has_spread(a, valid) & _has_spread(b, valid)
    return corr, usable


def _has_spread(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    x = x.detach()
    hi = torch.where(valid, x, torch.full_like(x, -torch.inf)).amax(-1)
    lo = torch.where(valid, x, torch.full_like(x, torch.inf)).amin(-1)
    return (hi - lo) > 1e-12 * (hi.abs() + lo.abs()).clamp(min=1.0)


def _mean_over_usable(values: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    count = usable.sum()
    total = torch.where(usable, values, torch.zeros_like(values)).sum()
    return total / count.clamp(min=1)


def kernel_ic(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
              p: float = 1.83) -> torch.Tensor:
    """Eq. 14's per-day IC: Pearson of g(pred) and g(target) -> `(q,)`, NaN on unusable days."""
    pred, target = _2d(pred), _2d(target)
    valid = _valid(pred, mask, target)
    safe_pred = torch.where(valid, pred, torch.zeros_like(pred))
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    g_pred = torch.sigmoid(p * _masked_standardise(safe_pred, valid) / 2)
    g_target = torch.sigmoid(p * _masked_standardise(safe_target, valid) / 2)
    corr, usable = _masked_pearson(g_pred, g_target, valid)
    return torch.where(usable, corr, torch.full_like(corr, torch.nan))


def kernel_rank_ic_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                        p: float = 1.83) -> torch.Tensor:
    """Loss = -(1/q) Σ IC(g(x_i), g(y_i)) over the usable days of the batch (Eq. 14)."""
    ic = kernel_ic(pred, target, mask, p)
    usable = torch.isfinite(ic)
    return -_mean_over_usable(torch.where(usable, ic, torch.zeros_like(ic)), usable)


def _2d(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(0) if x.dim() == 1 else x


def soft_rank(x: torch.Tensor, mask: torch.Tensor | None = None, tau: float = 0.05,
              chunk: int = 512) -> torch.Tensor:
    """Pairwise-sigmoid soft ranks along the last dim: r_i = Σ_j σ((x_i - x_j) / (τ·std)).

    A regularised rank (Qin et al. 2010's smooth rank): exact ranks as τ -> 0, smooth and
    differentiable for τ > 0. τ is relative to each cross-section's std, so it does not depend
    on the factor's scale. Memory stays O(chunk · n) per day through checkpointed chunks.
    NaN where missing.
    """
    x = _2d(x)
    valid = _valid(x, mask)
    z = _masked_standardise(torch.where(valid, x, torch.zeros_like(x)), valid)  # (q, n)
    out = [checkpoint(_soft_rank_chunk, z[:, i:i + chunk], z, valid, tau, use_reentrant=False)
           for i in range(0, z.shape[-1], chunk)]
    ranks = torch.cat(out, dim=-1)
    return torch.where(valid, ranks, torch.full_like(ranks, torch.nan))


def _soft_rank_chunk(zi: torch.Tensor, z: torch.Tensor, valid: torch.Tensor, tau: float) -> torch.Tensor:
    pairwise = torch.sigmoid((zi.unsqueeze(-1) - z.unsqueeze(-2)) / tau)  # (q, c, n)
    pairwise = pairwise * valid.unsqueeze(-2)
    return pairwise.sum(-1)  # the self-pair adds σ(0) = 1/2: r_i -> rank_i - 1/2 as τ -> 0


def soft_rank_ic(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 tau: float = 0.05) -> torch.Tensor:
    """Per-day Pearson of soft ranks of pred and exact (average) ranks of target -> `(q,)`."""
    pred, target = _2d(pred), _2d(target)
    valid = _valid(pred, mask, target)
    safe_pred = torch.where(valid, pred, torch.zeros_like(pred))
    r_pred = torch.where(valid, soft_rank(safe_pred, valid, tau), torch.zeros_like(pred))
    r_target = average_ranks(torch.where(valid, target, torch.nan).detach()).nan_to_num()
    corr, usable = _masked_pearson(r_pred, r_target, valid)
    return torch.where(usable, corr, torch.full_like(corr, torch.nan))


def soft_rank_ic_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                      tau: float = 0.05) -> torch.Tensor:
    """-(1/q) Σ soft-rank IC over the usable days: a closer surrogate of Spearman than Eq. 14."""
    ic = soft_rank_ic(pred, target, mask, tau)
    usable = torch.isfinite(ic)
    return -_mean_over_usable(torch.where(usable, ic, torch.zeros_like(ic)), usable)


LOSSES = {"kernel": kernel_rank_ic_loss, "softrank": soft_rank_ic_loss}
