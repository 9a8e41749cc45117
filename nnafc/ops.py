"""Vectorised, NaN-aware operators on `(T, N)` tensors: time series along dim 0, cross-section along dim 1.

Shared by the prior-knowledge library (`nnafc.pk`), the GP baseline (`nnafc.gp`, §3.1, formulas
9–10) and the metrics, so a formula means the same thing wherever it is evaluated. Every op is a
plain function of tensors and integer windows, float32 or float64, on any device.

NaN policy (one policy, everywhere):

- **Missing is NaN.** A suspended stock has no row, so its `(T, N)` entry is NaN. Rolling ops treat
  ±inf like NaN (it only arises from overflow upstream).
- **Rolling windows are strict.** A window that contains any NaN gives NaN: a suspended stock's
  20-day mean is undefined, not a mean of fewer days. The first `d - 1` rows are NaN. This is
  pandas' `rolling(d)` with its default `min_periods=d`.
- **Recursions skip.** `ema` is a recursion, and a strict window would leave it undefined forever
  after one suspension, so it carries its state over NaN days (a suspended day simply did not
  happen) and outputs NaN on those days — pandas' `ewm(adjust=False, ignore_na=True)`.
- **Cross-sections use what is there.** `cs_*` ops use the finite entries of each day.
- **Undefined arithmetic is NaN.** `div` by |den| < eps, `log`/`sqrt` of non-positive/negative
  numbers, a correlation or z-score with zero spread: NaN, never inf or an invented 0/1 that a
  ranking would then treat as a real value.
- **No look-ahead.** Every value at day t depends only on rows <= t (tested for every op).

Windows are validated: an integer `d >= 1` (`>= 2` where a spread is needed), else `ValueError`.
Rolling ops use `Tensor.unfold` along time — no loops over stocks or days; only `ema`'s recursion
loops over days, vectorised over stocks — in blocks of days that bound the memory of the
`(rows, N, d)` windows.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

import numpy as np
import torch

Tensor = torch.Tensor

_CHUNK_ELEMENTS = 1 << 23  # window elements materialised at once: 64 MiB in float64, whatever T, N, d

__all__ = [
    "average_ranks",
    # time series
    "delay", "delta", "ts_sum", "ts_mean", "ts_std", "ts_min", "ts_max", "ts_rank", "ts_skew",
    "ts_corr", "ts_cov", "ema", "wma", "decay_linear",
    # cross-section
    "cs_rank", "cs_zscore", "cs_demean",
    # elementwise
    "add", "sub", "mul", "div", "neg", "abs", "sign", "log", "sqrt",
]  # fmt: skip


# --------------------------------------------------------------------------- helpers


def _window(d: int, minimum: int = 1, name: str = "d") -> int:
    """`d` as an int >= minimum, or a ValueError that says what was given."""
    if isinstance(d, bool):
        raise ValueError(f"window {name} must be an integer >= {minimum}, got {d!r}")
    try:
        d = operator.index(d)
    except TypeError:
        raise ValueError(f"window {name} must be an integer >= {minimum}, got {d!r}") from None
    if d < minimum:
        raise ValueError(f"window {name} must be an integer >= {minimum}, got {d}")
    return d


def _nan(x: Tensor) -> Tensor:
    return torch.full_like(x, float("nan"))


def _eps(x: Tensor) -> float:
    return torch.finfo(x.dtype).eps


def _padded(x: Tensor, d: int) -> Tensor:
    """`(T + d - 1, ...)`: d - 1 leading NaN rows, non-finite entries as NaN."""
    x = torch.where(torch.isfinite(x), x, _nan(x))
    pad = x.new_full((d - 1, *x.shape[1:]), float("nan"))
    return torch.cat([pad, x], dim=0)


def _rolling(fn: Callable[..., Tensor], d: int, *xs: Tensor) -> Tensor:
    """`out[t] = fn(windows_t)` for every t, each window `(rows, N, d)` ordered oldest -> newest.

    Windows are `unfold` views of the NaN-padded inputs, taken in blocks of rows so that at most
    `_CHUNK_ELEMENTS` window entries exist at once; `fn` reduces the last axis.
    """
    x0 = xs[0]
    for other in xs[1:]:
        if other.shape != x0.shape:
            raise ValueError(f"shapes differ: {tuple(x0.shape)} vs {tuple(other.shape)}")
    t_len = x0.shape[0]
    if t_len == 0:
        return x0.clone()
    padded = [_padded(x, d) for x in xs]  # (T + d - 1, N)
    rows = max(1, _CHUNK_ELEMENTS // max(1, x0[0].numel() * d))
    out = []
    for a in range(0, t_len, rows):
        b = min(t_len, a + rows)
        windows = [p[a : b + d - 1].unfold(0, d, 1) for p in padded]  # (b - a, N, d)
        out.append(fn(*windows))
    return torch.cat(out, dim=0)  # (T, N)


def _any_nan(w: Tensor) -> Tensor:
    return torch.isnan(w).any(dim=-1)


def _central(w: Tensor) -> tuple[Tensor, Tensor]:
    """Window means `(rows, N)` and deviations `(rows, N, d)`, in float64.

    Two-pass and float64 because moments of price levels (~1e3) with small spread lose most
    float32 digits; callers cast the result back to the input dtype.
    """
    w = w.double()
    mean = w.mean(dim=-1, keepdim=True)
    return mean.squeeze(-1), w - mean


def _flat(var: Tensor, mean_sq: Tensor) -> Tensor:
    """True where a variance is rounding noise: relative spread below ~100 eps (a constant window)."""
    return var <= (100 * _eps(var)) ** 2 * mean_sq


# --------------------------------------------------------------------------- time series


def delay(x: Tensor, d: int) -> Tensor:
    """`x[t - d]`: the value d days ago; the first d rows are NaN."""
    d = _window(d)
    out = _nan(x)
    if d < x.shape[0]:
        out[d:] = x[:-d]
    return out


def delta(x: Tensor, d: int) -> Tensor:
    """`x[t] - x[t - d]`."""
    return x - delay(x, d)


def ts_sum(x: Tensor, d: int) -> Tensor:
    """Sum of the last d values (today included)."""
    d = _window(d)
    return _rolling(lambda w: w.sum(dim=-1), d, x)


def ts_mean(x: Tensor, d: int) -> Tensor:
    """Mean of the last d values: MA_d of Table 1 (with the paper's sum read as k = 0..d-1)."""
    d = _window(d)
    return _rolling(lambda w: w.mean(dim=-1), d, x)


def ts_std(x: Tensor, d: int) -> Tensor:
    """Sample standard deviation (ddof=1, pandas' default) of the last d values; 0 for a constant window.

    Two-pass (mean, then squared deviations), so price levels of 1e3 keep float32 precision.
    """
    d = _window(d, minimum=2)

    def fn(w: Tensor) -> Tensor:
        mean, dev = _central(w)
        var = (dev * dev).sum(dim=-1) / (d - 1)
        return torch.where(_flat(var, mean * mean), torch.zeros_like(var), var).sqrt().to(w.dtype)

    return _rolling(fn, d, x)


def ts_min(x: Tensor, d: int) -> Tensor:
    """Minimum of the last d values."""
    d = _window(d)
    return _rolling(lambda w: w.amin(dim=-1), d, x)  # amin propagates NaN


def ts_max(x: Tensor, d: int) -> Tensor:
    """Maximum of the last d values."""
    d = _window(d)
    return _rolling(lambda w: w.amax(dim=-1), d, x)


def ts_rank(x: Tensor, d: int) -> Tensor:
    """Rank of today's value among the last d values (ties averaged), scaled to [0, 1].

    `(rank - 1) / (d - 1)`: 1 = today is the highest of the window, 0 = the lowest; pandas'
    `rolling(d).rank()` rescaled.
    """
    d = _window(d, minimum=2)

    def fn(w: Tensor) -> Tensor:
        today = w[..., -1:]  # (rows, N, 1)
        below = (w < today).sum(dim=-1)
        ties = (w == today).sum(dim=-1)  # today included
        rank = below.to(w.dtype) + (ties.to(w.dtype) + 1) / 2  # average rank in 1..d
        out = (rank - 1) / (d - 1)
        return torch.where(_any_nan(w), _nan(out), out)

    return _rolling(fn, d, x)


def ts_skew(x: Tensor, d: int) -> Tensor:
    """Sample skewness of the last d values (adjusted Fisher–Pearson G1, pandas' `rolling.skew`).

    NaN for a constant window (skewness of no spread is undefined).
    """
    d = _window(d, minimum=3)

    def fn(w: Tensor) -> Tensor:
        mean, dev = _central(w)
        m2 = (dev * dev).mean(dim=-1)
        m3 = (dev * dev * dev).mean(dim=-1)
        g1 = m3 / m2.pow(1.5) * math.sqrt(d * (d - 1)) / (d - 2)
        return torch.where(_flat(m2, mean * mean), _nan(g1), g1).to(w.dtype)

    return _rolling(fn, d, x)


def ts_cov(x: Tensor, y: Tensor, d: int) -> Tensor:
    """Sample covariance (ddof=1) of x and y over the last d days; NaN if either has a gap."""
    d = _window(d, minimum=2)

    def fn(wx: Tensor, wy: Tensor) -> Tensor:
        _, dx = _central(wx)
        _, dy = _central(wy)
        return ((dx * dy).sum(dim=-1) / (d - 1)).to(wx.dtype)

    return _rolling(fn, d, x, y)


def ts_corr(x: Tensor, y: Tensor, d: int) -> Tensor:
    """Pearson correlation of x and y over the last d days; NaN if either is constant or has a gap."""
    d = _window(d, minimum=2)

    def fn(wx: Tensor, wy: Tensor) -> Tensor:
        mx, dx = _central(wx)
        my, dy = _central(wy)
        vx, vy = (dx * dx).mean(dim=-1), (dy * dy).mean(dim=-1)
        corr = (dx * dy).mean(dim=-1) / (vx * vy).sqrt()
        flat = _flat(vx, mx * mx) | _flat(vy, my * my)
        return torch.where(flat, _nan(corr), corr.clamp(-1.0, 1.0)).to(wx.dtype)

    return _rolling(fn, d, x, y)


def ema(
    x: Tensor, span: int | None = None, *, alpha: float | None = None, min_periods: int | None = None
) -> Tensor:
    """Exponential moving average `y_t = a x_t + (1 - a) y_{t-1}`, started at the first valid x.

    Table 1's EMA_N = 2/(N+1) sum_k ((N-1)/(N+1))^k x_{n-k}: give `span=N` (a = 2 / (N + 1)) or
    `alpha=a` directly (Wilder's smoothing is `alpha=1/N`). The recursion skips NaN days (carries
    its state; outputs NaN on them) and is NaN until `min_periods` valid values have been seen
    (default: `span`, or 1 with `alpha`), so that the arbitrary start value has decayed.
    Equals pandas' `ewm(span=N, adjust=False, ignore_na=True, min_periods=...)` on valid days.
    """
    if (span is None) == (alpha is None):
        raise ValueError("give exactly one of span (int >= 1) and alpha (0 < alpha <= 1)")
    if span is not None:
        span = _window(span, name="span")
        alpha = 2.0 / (span + 1.0)
    elif not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    min_periods = _window(min_periods if min_periods is not None else span or 1, name="min_periods")
    alpha = float(alpha)

    valid = torch.isfinite(x)  # (T, N)
    seen = valid.cumsum(dim=0)  # (T, N) valid values so far
    out = _nan(x)
    state = x.new_full(x.shape[1:], float("nan"))  # (N,)
    for t in range(x.shape[0]):  # the recursion: over days, vectorised over stocks
        step = torch.where(torch.isnan(state), x[t], alpha * x[t] + (1.0 - alpha) * state)
        state = torch.where(valid[t], step, state)
        out[t] = state
    return torch.where(valid & (seen >= min_periods), out, _nan(out))


def wma(x: Tensor, weights: Sequence[float] | Tensor) -> Tensor:
    """Weighted moving average over the last `len(weights)` days, weights ordered oldest -> newest.

    `sum_k w_k x_{t-d+1+k} / sum_k w_k`; the window length is the number of weights.
    """
    w = torch.as_tensor(weights, dtype=x.dtype, device=x.device).flatten()
    d = _window(w.numel(), name="len(weights)")
    total = w.sum()
    if not torch.isfinite(total) or total.abs() < _eps(x):
        raise ValueError("weights must be finite and not sum to 0")
    return _rolling(lambda win: (win * w).sum(dim=-1) / total, d, x)


def decay_linear(x: Tensor, d: int) -> Tensor:
    """Linearly decaying weighted mean: today weight d, yesterday d - 1, ..., d days ago 1 (classic WMA)."""
    d = _window(d)
    return wma(x, torch.arange(1, d + 1, dtype=x.dtype, device=x.device))


# --------------------------------------------------------------------------- cross-section


def cs_rank(x: Tensor) -> Tensor:
    """Each day's rank of the finite entries scaled to (0, 1] (rank / count, ties averaged)."""
    ranks = average_ranks(x, dim=-1)  # (T, N) 1..k
    count = torch.isfinite(x).sum(dim=-1, keepdim=True).to(ranks.dtype)  # (T, 1)
    return ranks / count


def _cs_moments(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per day: finite mask `(T, N)`, mean `(T, 1)`, sample std `(T, 1)` (NaN if < 2 finite)."""
    valid = torch.isfinite(x)
    filled = torch.where(valid, x, torch.zeros_like(x))
    count = valid.sum(dim=-1, keepdim=True).to(x.dtype)
    mean = filled.sum(dim=-1, keepdim=True) / count  # NaN for an empty day
    dev = torch.where(valid, x - mean, torch.zeros_like(x))
    var = (dev * dev).sum(dim=-1, keepdim=True) / (count - 1)
    var = torch.where(count > 1, var, _nan(var))
    return valid, mean, var.sqrt()


def cs_demean(x: Tensor) -> Tensor:
    """Each day's value minus that day's mean over finite entries."""
    valid, mean, _ = _cs_moments(x)
    return torch.where(valid, x - mean, _nan(x))


def cs_zscore(x: Tensor) -> Tensor:
    """`(x - mean) / std` per day over finite entries (sample std, ddof=1); NaN if the day has no spread."""
    valid, mean, std = _cs_moments(x)
    flat = std <= 100 * _eps(x) * mean.abs()
    z = (x - mean) / std
    return torch.where(valid & ~flat, z, _nan(x))


# --------------------------------------------------------------------------- elementwise


def add(a: Tensor, b: Tensor) -> Tensor:
    """`a + b` (a named function for the GP primitive set)."""
    return a + b


def sub(a: Tensor, b: Tensor) -> Tensor:
    """`a - b`."""
    return a - b


def mul(a: Tensor, b: Tensor) -> Tensor:
    """`a * b`."""
    return a * b


def neg(a: Tensor) -> Tensor:
    """`-a`."""
    return -a


def div(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Protected division: `a / b`, NaN where |b| < eps (not 1 or 0: an invented value would be ranked).

    Formula (9), (high - low) / volume, meets volume 0 on halted days; NaN keeps them out of ICs.
    """
    if torch.is_tensor(a):
        b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
    else:
        b = torch.as_tensor(b)
    bad = b.abs() < eps
    return torch.where(bad, torch.full_like(b, float("nan")), a / torch.where(bad, torch.ones_like(b), b))


def abs(a: Tensor) -> Tensor:
    """`|a|`."""
    return a.abs()


def sign(a: Tensor) -> Tensor:
    """-1, 0 or +1; NaN stays NaN (`torch.sign` alone maps NaN to 0)."""
    return torch.where(torch.isnan(a), a, torch.sign(a))


def log(a: Tensor) -> Tensor:
    """Protected natural log: NaN where a <= 0."""
    return torch.where(a > 0, torch.log(torch.where(a > 0, a, torch.ones_like(a))), _nan(a))


def sqrt(a: Tensor) -> Tensor:
    """Protected square root: NaN where a < 0."""
    return torch.where(a >= 0, torch.sqrt(torch.where(a >= 0, a, torch.zeros_like(a))), _nan(a))


# --------------------------------------------------------------------------- ranks


def average_ranks(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Ranks 1..k of the finite entries along `dim`, ties given their mean rank; NaN elsewhere.

    The same convention as `scipy.stats.rankdata(method="average")`, vectorised: one sort per
    row and a few linear passes, never a loop over days. On CPU the work is done in numpy, whose
    argsort is several times faster than torch's CPU sort; ranks carry no gradient either way.
    """
    xt = x.detach().transpose(dim, -1)
    if xt.device.type == "cpu":
        ranks = torch.from_numpy(_average_ranks_numpy(xt.numpy()))
    else:
        ranks = _average_ranks_torch(xt)
    return ranks.transpose(dim, -1)


def _tie_bounds(new_group: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last sorted position of each element's tie group, along the last axis."""
    idx = np.arange(n)
    first = np.maximum.accumulate(np.where(new_group, idx, 0), axis=-1)
    ends = np.ones_like(new_group)
    ends[..., :-1] = new_group[..., 1:]
    last = np.minimum.accumulate(np.where(ends, idx, n - 1)[..., ::-1], axis=-1)[..., ::-1]
    return first, last


def _average_ranks_numpy(a: np.ndarray) -> np.ndarray:
    valid = np.isfinite(a)
    filled = np.where(valid, a, np.inf)  # missing values sort last and are masked at the end
    order = np.argsort(filled, axis=-1)  # tie order is irrelevant: a tie group averages its positions
    sorted_vals = np.take_along_axis(filled, order, -1)
    new_group = np.ones(a.shape, dtype=bool)
    new_group[..., 1:] = sorted_vals[..., 1:] != sorted_vals[..., :-1]
    first, last = _tie_bounds(new_group, a.shape[-1])
    mean_rank = ((first + last) / 2 + 1).astype(a.dtype if a.dtype.kind == "f" else np.float64)
    ranks = np.empty_like(mean_rank)
    np.put_along_axis(ranks, order, mean_rank, -1)
    return np.where(valid, ranks, np.nan)


def _average_ranks_torch(x: torch.Tensor) -> torch.Tensor:
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
    return torch.where(valid, ranks, torch.full_like(x, float("nan")))
