"""Differentiable rank-IC objectives for training factor networks (§3.2, Eq. 13–14).

rank() has no useful gradient, so NNAFC trains on a smooth stand-in for the Spearman rank IC:

- **kernel** (the paper's, Eq. 13–14): each cross-section is squashed by
  g(x) = 1 / (1 + exp(-p (x - mean) / (2 std))), and the day's IC is the Pearson correlation of
  g(pred) and g(target). Eq. 14's denominator, as printed, is E(g - ḡ) E(g - ḡ) = 0: a typo for
  the product of standard deviations, which is what we use. `std` is the population std
  (ddof=0) of the day's valid entries.
- **soft rank** (ours, for comparison): the pairwise-sigmoid rank of Qin et al. (2010),
  rank_i ≈ 1/2 + Σ_j σ((x_i - x_j) / τ'), τ' = τ · std(x). The j = i term adds σ(0) = 1/2, so
  as τ → 0 it tends to 1 + #{x_j < x_i} + #{x_j = x_i, j ≠ i} / 2: the exact average rank.
  τ relative to the std makes it scale-free like rank(). The target's ranks are exact
  (`average_ranks`), as no gradient flows into returns.

Inputs are `(q, n)` (q days of n stocks; any `(..., n)` works, 1-D is one day). A stock counts
on a day where pred and target are finite and `mask` is true. A day with fewer than 3 stocks or
no spread on either side has IC NaN and is left out of the loss's mean; with no usable day the
loss is 0 with zero gradient (still attached to the graph), never NaN. Missing entries are
replaced before any arithmetic (`torch.where` on inputs, not outputs), so a NaN in pred or
target never reaches a gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

from nnafc.ops import average_ranks

Tensor = torch.Tensor

MIN_STOCKS = 3  # fewer valid stocks on a day: no correlation (the day is left out)
_CHUNK_ELEMENTS = 1 << 22  # pairwise soft-rank entries materialised at once (32 MiB in float64)

__all__ = [
    "kernel", "kernel_ic", "kernel_rank_ic_loss",
    "soft_rank", "soft_rank_ic", "soft_rank_ic_loss", "LOSSES",
]  # fmt: skip


# --------------------------------------------------------------------------- masked statistics


def _valid(x: Tensor, mask: Tensor | None, *others: Tensor) -> Tensor:
    """Entries that count: finite in x and all `others`, and mask true (broadcast to x)."""
    valid = torch.isfinite(x)
    for other in others:
        valid = valid & torch.isfinite(other)
    if mask is not None:
        valid = valid & torch.as_tensor(mask, device=x.device).bool()
    return valid.expand(x.shape)


def _standardise(x: Tensor, valid: Tensor, dim: int = -1) -> Tensor:
    """(x - mean) / std over valid entries along `dim` (population std); 0 where invalid or flat.

    x must already be finite everywhere (invalid entries filled). A cross-section whose variance
    is at the level of rounding of its mean has no spread: z = 0, which makes g = 1/2.
    """
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    n = valid.sum(dim, keepdim=True).clamp(min=1).to(x.dtype)
    mean = torch.where(valid, x, zero).sum(dim, keepdim=True) / n
    dev = torch.where(valid, x - mean, zero)
    var = (dev * dev).sum(dim, keepdim=True) / n
    flat = var <= (100 * torch.finfo(x.dtype).eps) ** 2 * mean.detach() ** 2
    std = torch.where(flat, torch.ones_like(var), var).sqrt()  # no sqrt(0) in the graph
    return torch.where(flat, zero, dev / std)


def _pearson(a: Tensor, b: Tensor, valid: Tensor) -> Tensor:
    """Per-row Pearson of a and b over valid entries (last dim), NaN where < 3 stocks or no spread.

    a, b finite everywhere. Unusable rows compute with a denominator of 1, so their (discarded)
    branch has finite gradients and `torch.where` passes exact zeros back.
    """
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    count = valid.sum(-1)
    n = count.clamp(min=1).to(a.dtype).unsqueeze(-1)
    da = torch.where(valid, a - torch.where(valid, a, zero).sum(-1, keepdim=True) / n, zero)
    db = torch.where(valid, b - torch.where(valid, b, zero).sum(-1, keepdim=True) / n, zero)
    saa, sbb, sab = (da * da).sum(-1), (db * db).sum(-1), (da * db).sum(-1)
    tiny = count.to(a.dtype) * (10 * torch.finfo(a.dtype).eps) ** 2  # (g or rank) spread of rounding only
    ok = (count >= MIN_STOCKS) & (saa.detach() > tiny * a.detach().abs().amax(-1) ** 2)
    ok = ok & (sbb.detach() > tiny * b.detach().abs().amax(-1) ** 2)
    corr = sab / torch.where(ok, saa * sbb, torch.ones_like(saa)).sqrt()
    return torch.where(ok, corr, torch.full_like(corr, float("nan")))


def _mean_usable(daily: Tensor) -> Tensor:
    """Mean over the non-NaN days; 0 (with zero gradient) when there are none."""
    usable = ~torch.isnan(daily)
    total = torch.where(usable, daily, torch.zeros_like(daily)).sum()
    return total / usable.sum().clamp(min=1).to(daily.dtype)


# --------------------------------------------------------------------------- kernel (Eq. 13-14)


def _g(x: Tensor, valid: Tensor, p: float, dim: int = -1) -> Tensor:
    """Eq. 13 on finite x: sigmoid(p · z / 2) with z the cross-sectional z-score."""
    return torch.sigmoid(p * _standardise(x, valid, dim) / 2)


def kernel(x: Tensor, mask: Tensor | None = None, p: float = 1.83, dim: int = -1) -> Tensor:
    """g(x) = 1 / (1 + exp(-p (x - x̄) / (2 std(x)))), Eq. 13, per cross-section along `dim`.

    A smooth, monotone stand-in for rank() in (0, 1): it keeps the order and bounds the pull of
    outliers; p = 1.83 is the paper's choice (≈ 95 % of a Gaussian cross-section in
    [mean - 2 std, mean + 2 std]). Mean/std use the valid entries (finite, mask true); NaN
    elsewhere; a flat cross-section maps to 1/2.
    """
    valid = _valid(x, mask)
    g = _g(torch.where(valid, x, torch.zeros_like(x)), valid, p, dim)
    return torch.where(valid, g, torch.full_like(g, float("nan")))


def kernel_ic(pred: Tensor, target: Tensor, mask: Tensor | None = None, p: float = 1.83) -> Tensor:
    """Eq. 14's per-day IC: Pearson of g(pred) and g(target) over the jointly valid stocks. `(q,)`.

    pred, target: `(q, n)`. Both kernels use the same stocks (those valid on both sides).
    NaN on unusable days (< 3 stocks, no spread).
    """
    valid = _valid(pred, mask, target)  # (q, n)
    gp = _g(torch.where(valid, pred, torch.zeros_like(pred)), valid, p)
    gt = _g(torch.where(valid, target, torch.zeros_like(target)), valid, p)
    return _pearson(gp, gt, valid)


def kernel_rank_ic_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, p: float = 1.83) -> Tensor:
    """Loss = -(1/q) Σ_i IC(g(x_i), g(y_i)) over the batch's usable days (Eq. 14); a scalar."""
    return -_mean_usable(kernel_ic(pred, target, mask, p))


# --------------------------------------------------------------------------- soft rank


class _PairwiseSigmoidRank(torch.autograd.Function):
    """r_i = 1/2 + Σ_j w_j σ(y_i - y_j) along the last dim of `(R, n)`, in chunks of rows i.

    Autograd through the `(R, n, n)` pairwise matrix would keep it all for the backward pass
    (20 days x 3,000 stocks: 180 M entries); here forward and backward each rebuild it one
    chunk at a time, so memory is O(R · chunk · n). With S_kj = σ'(y_k - y_j) (symmetric):
    ∂L/∂y_k = G_k Σ_j S_kj w_j - w_k Σ_j S_kj G_j.
    """

    @staticmethod
    def forward(ctx, y: Tensor, w: Tensor, chunk: int) -> Tensor:  # y, w: (R, n)
        ctx.save_for_backward(y, w)
        ctx.chunk = chunk
        out = torch.empty_like(y)
        for a in range(0, y.shape[-1], chunk):
            sig = torch.sigmoid(y[:, a : a + chunk, None] - y[:, None, :])  # (R, c, n)
            out[:, a : a + chunk] = 0.5 + torch.bmm(sig, w.unsqueeze(-1)).squeeze(-1)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None]:
        y, w = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        out = torch.empty_like(y)
        wg = torch.stack([w, grad], dim=-1)  # (R, n, 2)
        for a in range(0, y.shape[-1], ctx.chunk):
            sig = torch.sigmoid(y[:, a : a + ctx.chunk, None] - y[:, None, :])  # (R, c, n)
            s = sig.sub_(sig * sig)  # σ' = σ (1 - σ), in place
            sw, sg = torch.bmm(s, wg).unbind(-1)  # (R, c) each: Σ_j S_kj w_j, Σ_j S_kj G_j
            out[:, a : a + ctx.chunk] = grad[:, a : a + ctx.chunk] * sw - w[:, a : a + ctx.chunk] * sg
        return out, None, None


def _soft_rank(x: Tensor, valid: Tensor, tau: float, chunk: int | None) -> Tensor:
    """Soft ranks of finite x `(..., n)` among the valid entries (values at invalid ones: garbage)."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    shape, n = x.shape, x.shape[-1]
    z = _standardise(x, valid)  # scale-free: τ is in units of the day's std; flat days: all 0
    y = (z / tau).reshape(-1, n)  # (R, n)
    w = valid.reshape(-1, n).to(x.dtype)
    if chunk is None:
        chunk = max(1, _CHUNK_ELEMENTS // max(1, y.shape[0] * n))
    return _PairwiseSigmoidRank.apply(y, w, int(chunk)).reshape(shape)


def soft_rank(x: Tensor, mask: Tensor | None = None, tau: float = 0.05, chunk: int | None = None) -> Tensor:
    """Differentiable ranks along the last dim: 1/2 + Σ_j σ((x_i - x_j) / (τ · std(x))).

    Same scale as `average_ranks` (1..k over the k valid entries) and equal to it in the limit
    τ → 0; larger τ smooths more (spreads the gradient over more neighbours). NaN where missing.
    `chunk` rows of the pairwise matrix are built at a time (default: ~4 M entries per chunk).
    """
    valid = _valid(x, mask)
    ranks = _soft_rank(torch.where(valid, x, torch.zeros_like(x)), valid, tau, chunk)
    return torch.where(valid, ranks, torch.full_like(ranks, float("nan")))


def soft_rank_ic(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, tau: float = 0.05, chunk: int | None = None
) -> Tensor:
    """Per-day Pearson of soft ranks of pred and exact average ranks of target. `(q,)`, NaN if unusable."""
    valid = _valid(pred, mask, target)
    rp = _soft_rank(torch.where(valid, pred, torch.zeros_like(pred)), valid, tau, chunk)
    nan = torch.full_like(target, float("nan"))
    rt = average_ranks(torch.where(valid, target, nan).detach()).nan_to_num(0.0)  # exact, no gradient
    return _pearson(rp, rt, valid)


def soft_rank_ic_loss(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, tau: float = 0.05, chunk: int | None = None
) -> Tensor:
    """-(1/q) Σ soft-rank IC over the usable days: a surrogate closer to Spearman than Eq. 14's."""
    return -_mean_usable(soft_rank_ic(pred, target, mask, tau, chunk))


LOSSES: dict[str, Callable[..., Tensor]] = {"kernel": kernel_rank_ic_loss, "softrank": soft_rank_ic_loss}
