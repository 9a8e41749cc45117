"""Exact factor metrics: daily IC and rank IC, their summaries, diversity (Eq. 18–19), pool IC (Eq. 5–6).

Everything here measures; nothing trains and nothing plots. Panels are `(T, N)` arrays (days x
stocks, NaN = missing), torch or numpy; a function returns the type its first array came in.

- **IC** (§2.1, Eq. 3) is the daily cross-sectional Pearson correlation of a factor with the
  forward returns; **rank IC** is the Spearman correlation (Pearson of average ranks, ties
  averaged exactly like `scipy.stats.spearmanr`). Both are computed for all days at once in
  float64: a pair (stock, day) counts when factor and return are finite and `mask` is true;
  a day with fewer than 3 pairs, or with no spread in either, is NaN.
- **Diversity** (§4.1): per day, each factor's cross-section is z-scored, turned into a
  distribution by a softmax (Eq. 18), and factors are compared by cross-entropy (Eq. 19); the
  rows of that `(K, K)` distance matrix are clustered by k-means, and the day's diversity is the
  mean distance between the cluster centres.
- **Pool IC** (§2.2, Eq. 4–6): the IC of the optimally weighted combination of sub-factors,
  `IC* = ICᵀ Σ⁻¹ IC`, with λ dropped as the paper does (Eq. 7).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from nnafc.ops import average_ranks

Tensor = torch.Tensor
Array = Any  # torch.Tensor | np.ndarray | array-like

_CHUNK_ELEMENTS = 1 << 22  # entries ranked at once (rows x N): 32 MiB per float64 buffer
_MIN_PAIRS = 3  # fewer valid pairs than this: the day's correlation is undefined (NaN)

__all__ = [
    "ic", "rank_ic", "ICSummary", "ic_summary", "ic_table",
    "cross_entropy_distance", "diversity", "diversity_by_day",
    "pool_ic", "pool_weights",
]  # fmt: skip


# --------------------------------------------------------------------------- helpers


def _to_tensor(x: Array, device: torch.device | None = None) -> Tensor:
    """float64 tensor on `device` (default: its own / CPU); float64 numpy memory is shared, not written."""
    if torch.is_tensor(x):
        return x.detach().to(device=device or x.device, dtype=torch.float64)
    a = np.asarray(x, dtype=np.float64)
    if not a.flags.writeable:  # e.g. pandas' read-only views; torch wants writable memory
        a = a.copy()
    return torch.as_tensor(a, device=device)


def _joint_valid(f: Tensor, r: Tensor, mask: Array | None) -> Tensor:
    """`(..., N)` bool: both finite and, if given, mask true."""
    valid = torch.isfinite(f) & torch.isfinite(r)
    if mask is not None:
        m = mask.to(f.device) if torch.is_tensor(mask) else torch.as_tensor(np.asarray(mask), device=f.device)
        valid = valid & m.bool()
    return valid


def _pearson_rows(x: Tensor, y: Tensor, valid: Tensor) -> Tensor:
    """Pearson correlation of x and y along the last axis over `valid` entries, `(...,)`, float64.

    Two-pass (means, then deviations) for accuracy; NaN where < 3 pairs or either side has no
    spread (variance at the level of float64 rounding of the mean).
    """
    count = valid.sum(dim=-1)  # (...,)
    n = count.clamp(min=1).to(x.dtype).unsqueeze(-1)  # (..., 1)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    xf, yf = torch.where(valid, x, zero), torch.where(valid, y, zero)
    mx, my = xf.sum(-1, keepdim=True) / n, yf.sum(-1, keepdim=True) / n  # (..., 1)
    dx, dy = torch.where(valid, x - mx, zero), torch.where(valid, y - my, zero)  # (..., N)
    sxy, sxx, syy = (dx * dy).sum(-1), (dx * dx).sum(-1), (dy * dy).sum(-1)  # (...,)
    eps = torch.finfo(x.dtype).eps
    flat_x = sxx <= (100 * eps) ** 2 * mx.squeeze(-1) ** 2 * count
    flat_y = syy <= (100 * eps) ** 2 * my.squeeze(-1) ** 2 * count
    ok = (count >= _MIN_PAIRS) & ~flat_x & ~flat_y
    denom = torch.where(ok, sxx * syy, torch.ones_like(sxx)).sqrt()
    corr = (sxy / denom).clamp(-1.0, 1.0)
    return torch.where(ok, corr, torch.full_like(corr, float("nan")))


def _spearman_rows(ra: Tensor, rb: Tensor, valid: Tensor) -> Tensor:
    """Pearson of average ranks `(..., N)` (NaN where invalid) along the last axis, `(...,)`.

    Ranks over the valid set have mean (n + 1) / 2 whatever the ties, so one pass of raw sums
    suffices, and it is exact: ranks are multiples of 1/2, so their products and sums are
    integers / 4 that float64 holds exactly (below 2^51, i.e. any realistic N).
    """
    count = valid.sum(dim=-1)  # (...,)
    n = count.to(ra.dtype)
    ra, rb = ra.nan_to_num(0.0), rb.nan_to_num(0.0)
    centre = n * ((n + 1) / 2) ** 2  # n m²
    saa = (ra * ra).sum(-1) - centre
    sbb = (rb * rb).sum(-1) - centre
    sab = (ra * rb).sum(-1) - centre
    ok = (count >= _MIN_PAIRS) & (saa > 0) & (sbb > 0)  # all tied: exactly 0
    corr = (sab / torch.where(ok, saa * sbb, torch.ones_like(saa)).sqrt()).clamp(-1.0, 1.0)
    return torch.where(ok, corr, torch.full_like(corr, float("nan")))


def _daily_corr(factor: Array, returns: Array, mask: Array | None, ranked: bool) -> Array:
    """Shared body of `ic` / `rank_ic`: flatten leading axes, work in row chunks, restore the type."""
    is_numpy = not torch.is_tensor(factor)
    f = _to_tensor(factor)
    r = _to_tensor(returns, device=f.device)
    if f.shape != r.shape:
        raise ValueError(f"factor and returns differ in shape: {tuple(f.shape)} vs {tuple(r.shape)}")
    if f.ndim == 0:
        raise ValueError("factor must have at least one axis (stocks)")
    valid = _joint_valid(f, r, mask)
    if valid.shape != f.shape:
        valid = valid.expand(f.shape)
    lead, n_stocks = f.shape[:-1], f.shape[-1]
    f2, r2, v2 = f.reshape(-1, n_stocks), r.reshape(-1, n_stocks), valid.reshape(-1, n_stocks)  # (R, N)
    rows = max(1, _CHUNK_ELEMENTS // max(1, n_stocks))
    out = []
    for a in range(0, f2.shape[0], rows):
        fc, rc, vc = f2[a : a + rows], r2[a : a + rows], v2[a : a + rows]
        if ranked:  # rank only the jointly valid pairs, so both sides rank the same stocks
            nan = torch.full_like(fc, float("nan"))
            fc = average_ranks(torch.where(vc, fc, nan), dim=-1)
            rc = average_ranks(torch.where(vc, rc, nan), dim=-1)
            out.append(_spearman_rows(fc, rc, vc))
        else:
            out.append(_pearson_rows(fc, rc, vc))
    res = torch.cat(out).reshape(lead) if out else f.new_empty(lead)  # (...,) e.g. (T,)
    return res.cpu().numpy() if is_numpy else res


# --------------------------------------------------------------------------- IC


def ic(factor: Array, returns: Array, mask: Array | None = None) -> Array:
    """Daily Pearson IC (Eq. 3): correlation across stocks of factor and forward returns.

    factor, returns: `(T, N)` (any `(..., N)`: the last axis is the cross-section); mask: bool,
    broadcastable. Returns `(T,)` float64, numpy if `factor` is numpy else a tensor on its device.
    """
    return _daily_corr(factor, returns, mask, ranked=False)


def rank_ic(factor: Array, returns: Array, mask: Array | None = None) -> Array:
    """Daily Spearman rank IC, ties averaged (= `scipy.stats.spearmanr` per day); `(T,)`.

    The quantity NNAFC optimises (Eq. 14 approximates it) and the paper's reported "IC".
    Same conventions as `ic`.
    """
    return _daily_corr(factor, returns, mask, ranked=True)


def period_rank_ic(values: np.ndarray, panel: Any, days: slice, horizon: int = 5) -> np.ndarray:
    """Daily rank IC `(D,)` of `(T, N)` factor values on `days` of a panel, in its point-in-time
    universe, against labels cut at the period's end (`nnafc.data.period_labels`: no look-ahead)."""
    from nnafc.data.windows import period_labels  # lazily: data imports metrics' neighbours

    labels = period_labels(panel["close"], days, horizon)  # (D, N)
    return rank_ic(np.asarray(values)[days], labels, panel.in_universe[days])


def signal_ics(values: np.ndarray, panel: Any, days: slice, horizon: int = 5,
               lag: int = 0) -> dict[str, float]:
    """A signal's IC, ICIR, rank IC and rank ICIR on `days` (Qlib's report of a model's score): the
    means of the daily Pearson and rank ICs of `(T, N)` values against labels cut at the period's
    end (`period_labels`, with its `lag`), each over its standard deviation (not annualised)."""
    from nnafc.data.windows import period_labels  # lazily: data imports metrics' neighbours

    labels = period_labels(panel["close"], days, horizon, lag)  # (D, N)
    values, mask = np.asarray(values)[days], panel.in_universe[days]
    out = {}
    for name, daily in (("IC", ic(values, labels, mask)), ("Rank IC", rank_ic(values, labels, mask))):
        daily = daily[np.isfinite(daily)]
        std = daily.std(ddof=1) if len(daily) > 1 else np.nan
        out[name], out[f"{name}IR"] = float(daily.mean()), float(daily.mean() / std) if std > 0 else np.nan
    return {k: out[k] for k in ("IC", "ICIR", "Rank IC", "Rank ICIR")}


def rank_score(values: np.ndarray) -> np.ndarray:
    """Each day's cross-sectional ranks of `(T, N)` values as unit-variance scores, NaN where missing.

    The rank r (1..n, ties averaged) of a stock among the day's n finite values becomes
    (r - (n + 1) / 2) / sqrt((n² - 1) / 12): mean 0 and variance 1 without ties, whatever the
    factor's scale -- only the day's ordering is kept (the input of a rank IC). A day reads
    nothing but its own values, so the scores of a day never change when later days do.
    """
    v = np.asarray(values, dtype=np.float64)
    ranks = average_ranks(torch.from_numpy(v), dim=-1).numpy()  # (T, N) NaN stays NaN
    n = np.isfinite(v).sum(axis=1, keepdims=True).astype(np.float64)  # (T, 1)
    scale = np.sqrt(np.maximum(n * n - 1, 0) / 12)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ranks - (n + 1) / 2) / scale
    return np.where(scale > 0, out, np.nan).astype(np.float32)


def mean_ic(daily: Array) -> float:
    """Mean over the days with a defined IC; NaN when there is none (never a warning)."""
    d = np.asarray(daily, dtype=np.float64)
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


@dataclass(frozen=True)
class ICSummary:
    """Summary of a daily IC series over its defined (non-NaN) days."""

    mean: float
    std: float  # sample std (ddof=1) across days
    icir: float  # mean / std: the IC information ratio (not annualised)
    t_stat: float  # mean / std * sqrt(n_days): t-statistic of mean IC = 0, days taken as independent
    n_days: int  # days with a defined IC
    positive: float  # share of those days with IC > 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __getitem__(self, key: str) -> float | int:  # dict-style access, summary["icir"]
        return getattr(self, key)


def ic_summary(daily: Array) -> ICSummary:
    """Mean, std, ICIR, t-stat, number of days and share of positive days of a daily IC series.

    NaN days (undefined IC) are ignored. With fewer than 2 days (or no spread) std-based fields are NaN.
    """
    x = np.asarray(daily.detach().cpu() if torch.is_tensor(daily) else daily, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    n = int(x.size)
    nan = float("nan")
    if n == 0:
        return ICSummary(nan, nan, nan, nan, 0, nan)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else nan
    icir = mean / std if n > 1 and std > 0 else nan
    return ICSummary(
        mean=mean,
        std=std,
        icir=icir,
        t_stat=icir * math.sqrt(n),
        n_days=n,
        positive=float((x > 0).mean()),
    )


def ic_table(
    factors: Mapping[str, Array], returns: Array, mask: Array | None = None, method: str = "rank"
) -> pd.DataFrame:
    """One row per factor (index: its name) with the `ICSummary` fields of its daily IC.

    method: "rank" (Spearman, the paper's IC) or "pearson".
    """
    if method not in ("rank", "pearson"):
        raise ValueError(f"method must be 'rank' or 'pearson', got {method!r}")
    fn = rank_ic if method == "rank" else ic
    r = _to_tensor(returns)
    rows = {name: ic_summary(fn(_to_tensor(f), r, mask)).as_dict() for name, f in factors.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(ICSummary.__dataclass_fields__))
    frame.index.name = "factor"
    return frame


# --------------------------------------------------------------------------- diversity (Eq. 18-19)


def _log_softmax_cs(f: Tensor, valid: Tensor) -> Tensor:
    """Eq. 18 on z-scored cross-sections: `log softmax(z)` over valid stocks, 0 elsewhere. `(..., N)`.

    The z-score removes scale and location (the paper: "each factor value should be normalized
    at first"), so the softmax sees rank-like information, not units. A cross-section with no
    spread gets z = 0: a uniform distribution (it carries no ordering).
    """
    zero = torch.zeros((), dtype=f.dtype, device=f.device)
    count = valid.sum(-1, keepdim=True).clamp(min=1).to(f.dtype)
    mean = torch.where(valid, f, zero).sum(-1, keepdim=True) / count
    dev = torch.where(valid, f - mean, zero)
    std = ((dev * dev).sum(-1, keepdim=True) / (count - 1).clamp(min=1)).sqrt()
    flat = std <= 100 * torch.finfo(f.dtype).eps * mean.abs()
    z = torch.where(flat, zero, dev / torch.where(flat, torch.ones_like(std), std))
    logits = torch.where(valid, z, torch.full_like(z, float("-inf")))
    logp = torch.log_softmax(logits, dim=-1)
    return torch.where(valid, logp, zero)


def _ce_matrices(f: Tensor) -> Tensor:
    """`(K, D, N)` factors -> `(D, K, K)` cross-entropy matrices over the stocks valid in all K."""
    valid = torch.isfinite(f).all(dim=0, keepdim=True).expand_as(f)  # (K, D, N) common stocks
    logp = _log_softmax_cs(f, valid)  # (K, D, N)
    p = torch.where(valid, logp.exp(), torch.zeros_like(logp))
    dist = -torch.einsum("idn,jdn->dij", p, logp)  # (D, K, K): dist[d, i, j] = H(p_i, p_j)
    enough = valid[0].sum(-1) >= 2  # (D,) a distribution over < 2 stocks compares nothing
    return torch.where(enough[:, None, None], dist, torch.full_like(dist, float("nan")))


def cross_entropy_distance(factors: Array) -> Array:
    """Eq. 19 for one day: `(K, N)` factors -> `(K, K)`, `D[i, j] = sum_s p_i(s) log(1 / p_j(s))`.

    `p_i = softmax(zscore(f_i))` over the stocks finite in all K factors (Eq. 18). Not symmetric
    (cross-entropy, as the paper writes it; `D[i, j] - D[i, i]` is KL(p_i || p_j) >= 0), and the
    diagonal is each factor's entropy, not 0. NaN if fewer than 2 common stocks.
    """
    is_numpy = not torch.is_tensor(factors)
    f = _to_tensor(factors)
    if f.ndim != 2:
        raise ValueError(f"factors must be (K, N) for one day, got shape {tuple(f.shape)}")
    out = _ce_matrices(f[:, None, :])[0]  # (K, K)
    return out.cpu().numpy() if is_numpy else out


def _stack_factors(factors: Array | Sequence[Array] | Mapping[str, Array]) -> Tensor:
    if isinstance(factors, Mapping):
        factors = list(factors.values())
    if isinstance(factors, (list, tuple)):
        f = torch.stack([_to_tensor(x).cpu() for x in factors])
    else:
        f = _to_tensor(factors).cpu()
    if f.ndim != 3:
        raise ValueError(f"factors must be (K, T, N) or K arrays (T, N), got shape {tuple(f.shape)}")
    return f  # (K, T, N)


def cross_sectional_ranks(values: np.ndarray) -> np.ndarray:
    """Per-day ranks of `(..., D, N)` values across stocks (NaN kept), float64: Eq. 18 asks for
    normalised values, and ranks keep a factor's heavy tails (common in raw GP output) from
    dominating its softmax. What the diversity and the clustering compare."""
    return average_ranks(torch.from_numpy(np.asarray(values, dtype=np.float64))).numpy()


def _day_positions(t_len: int, days: int | Sequence[int] | None, seed: int) -> np.ndarray:
    """Day positions: all (None), that many drawn at random (an int, seeded), or the ones given."""
    if days is None:
        return np.arange(t_len)
    if isinstance(days, (int, np.integer)):
        return np.sort(np.random.default_rng(seed).choice(t_len, size=min(int(days), t_len), replace=False))
    return np.asarray(days, dtype=np.int64)


def _centre_spread(points: np.ndarray, n_clusters: int, seed: int) -> float:
    """k-means on the rows of one day's distance matrix; mean pairwise distance of the centres."""
    from sklearn.cluster import KMeans  # heavy import, only needed here

    scale = max(float(np.abs(points).max()), 1e-300)
    distinct = np.unique(np.round(points / scale, 10), axis=0).shape[0]
    k = min(n_clusters, distinct)  # fewer distinct factors than clusters: one cluster each
    if k < 2:
        return 0.0  # all factors identical: no spread
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on near-duplicate points
        centres = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(points).cluster_centers_
    gaps = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)  # (k, k)
    return float(gaps[np.triu_indices(k, 1)].mean())


def diversity_by_day(
    factors: Array | Sequence[Array] | Mapping[str, Array],
    n_clusters: int = 5,
    days: int | Sequence[int] | None = None,
    seed: int = 0,
) -> pd.Series:
    """Per-day diversity of K factors (§4.1, Eq. 18–19): a Series indexed by day position.

    factors: `(K, T, N)`, or K arrays `(T, N)` (list or name -> array). Per day: the `(K, K)`
    cross-entropy matrix of `cross_entropy_distance`; its K rows are the points for k-means
    (scikit-learn, `random_state=seed`, 10 restarts) with `min(n_clusters, distinct factors)`
    clusters; the value is the mean Euclidean distance between the cluster centres. The paper
    gives no number of clusters; 5 is our default. Identical factors give 0 (the minimum); a
    day with < 2 stocks common to all factors gives NaN; K < 2 is a ValueError. Values grow
    with K (points live in R^K), so compare diversities of equally many factors, as the
    paper's tables do (50 each).
    days: None = all days, an int = that many days drawn at random (seeded, for speed), or
    the day positions to use.
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    f = _stack_factors(factors)  # (K, T, N)
    k_factors, t_len = f.shape[0], f.shape[1]
    if k_factors < 2:
        raise ValueError(f"diversity needs at least two factors, got {k_factors}")
    idx = _day_positions(t_len, days, seed)
    values = np.full(len(idx), np.nan)
    per_chunk = max(1, _CHUNK_ELEMENTS // max(1, k_factors * f.shape[2]))
    for a in range(0, len(idx), per_chunk):
        sel = torch.as_tensor(idx[a : a + per_chunk])
        mats = _ce_matrices(f[:, sel]).numpy()  # (D, K, K)
        # one k-means fit per day (no batched form) on K points: threads only cost here, and an
        # OpenMP pool left busy by torch makes scikit-learn's fits ~40x slower unless limited
        with threadpool_limits(limits=1):
            for i, mat in enumerate(mats):
                if np.isfinite(mat).all():
                    values[a + i] = _centre_spread(mat, n_clusters, seed)
    return pd.Series(values, index=pd.Index(idx, name="day"), name="diversity")


def mean_cross_entropy(
    factors: Array | Sequence[Array] | Mapping[str, Array],
    days: int | Sequence[int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Eq. 19 over many days: the mean of the days' `(K, K)` cross-entropy matrices
    (`cross_entropy_distance`; days with < 2 common stocks skipped), `(K, K)`.

    factors: `(K, T, N)` or K arrays `(T, N)`; `days` as `diversity_by_day`. What the clustering
    of §4.5 (Figs. 7-8) places factors by: row i is factor i's distance to every factor.
    """
    f = _stack_factors(factors)  # (K, T, N)
    t_len = f.shape[1]
    idx = _day_positions(t_len, days, seed)
    total, count = np.zeros((f.shape[0],) * 2), 0
    per_chunk = max(1, _CHUNK_ELEMENTS // max(1, f.shape[0] * f.shape[2]))
    for a in range(0, len(idx), per_chunk):
        mats = _ce_matrices(f[:, torch.as_tensor(idx[a : a + per_chunk])]).double().numpy()  # (D, K, K)
        ok = np.isfinite(mats).all(axis=(1, 2))
        total += mats[ok].sum(axis=0)
        count += int(ok.sum())
    if count == 0:
        raise ValueError("no day has two or more stocks common to all factors")
    return total / count


def diversity(
    factors: Array | Sequence[Array] | Mapping[str, Array],
    n_clusters: int = 5,
    days: int | Sequence[int] | None = None,
    seed: int = 0,
) -> float:
    """Diversity of a factor set: the mean over days of `diversity_by_day` (NaN days ignored)."""
    by_day = diversity_by_day(factors, n_clusters=n_clusters, days=days, seed=seed)
    return float(by_day.mean()) if by_day.notna().any() else float("nan")


# --------------------------------------------------------------------------- pool IC (Eq. 4-6)


def _ic_moments(ic_daily: Array, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean IC vector `(K,)` and the pseudo-inverse of its (ridged) covariance `(K, K)`.

    Days where any factor's IC is NaN are dropped, so Σ is a proper (PSD) sample covariance.
    """
    x = np.asarray(ic_daily.detach().cpu() if torch.is_tensor(ic_daily) else ic_daily, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"ic_daily must be (T, K), got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]  # (T', K)
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 days with every factor's IC defined, got {x.shape[0]}")
    mean = x.mean(axis=0)  # (K,) the ĨC vector
    cov = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))  # (K, K) Σ_ĨC
    if ridge > 0:
        cov = cov + ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    return mean, np.linalg.pinv(cov, hermitian=True)


def pool_weights(ic_daily: Array, ridge: float = 0.0) -> np.ndarray:
    """Eq. 5 with λ = 1: the optimal sub-factor weights `v* = Σ⁻¹ ĨC`, `(K,)`.

    ic_daily: `(T, K)` daily ICs of K factors. Σ⁻¹ is a pseudo-inverse (collinear factors, e.g.
    duplicates, share weight instead of exploding); `ridge` adds `ridge * mean(diag Σ) * I` first.
    """
    mean, inv = _ic_moments(ic_daily, ridge)
    return inv @ mean


def pool_ic(ic_daily: Array, ridge: float = 0.0) -> float:
    """Eq. 6 (λ dropped, Eq. 7): `IC* = ĨCᵀ Σ⁻¹ ĨC`, the squared IC-IR of the best combination.

    For uncorrelated factors it is `sum_k mean_k² / var_k`: each factor adds its own ICIR²,
    so a new factor raises IC* by having a high IC *and* low correlation with the pool.
    """
    mean, inv = _ic_moments(ic_daily, ridge)
    return float(mean @ inv @ mean)
