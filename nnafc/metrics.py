"""Exact evaluation of factors: daily IC / rank IC, their summaries, diversity (Eq. 18-19), pool IC (Eq. 6).

Everything is vectorised over days: a `(T, N)` factor and a `(T, N)` return give a `(T,)` series in
one pass (float64 inside). Pairs count on a day when both values are finite and `mask` is true;
a day with fewer than 3 pairs or a constant side has no IC (NaN). Nothing here trains anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from nnafc.ops import average_ranks

MIN_PAIRS = 3


def _to_torch(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.from_numpy(np.array(x, dtype=np.float64))  # a copy: inputs may be read-only


def _valid_pairs(f: torch.Tensor, r: torch.Tensor, mask) -> torch.Tensor:
    valid = torch.isfinite(f) & torch.isfinite(r)
    if mask is not None:
        valid &= torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask).bool()
    return valid


def _pearson_rows(x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Row-wise Pearson correlation over the valid entries; NaN for degenerate rows."""
    n = valid.sum(-1)
    x = torch.where(valid, x, 0.0)
    y = torch.where(valid, y, 0.0)
    mx = x.sum(-1, keepdim=True) / n.clamp(min=1).unsqueeze(-1)
    my = y.sum(-1, keepdim=True) / n.clamp(min=1).unsqueeze(-1)
    dx = torch.where(valid, x - mx, 0.0)
    dy = torch.where(valid, y - my, 0.0)
    vx, vy = (dx * dx).sum(-1), (dy * dy).sum(-1)
    corr = (dx * dy).sum(-1) / (vx * vy).clamp(min=1e-300).sqrt()
    ok = (n >= MIN_PAIRS) & (vx > 1e-24 * n) & (vy > 1e-24 * n)
    return torch.where(ok, corr.clamp(-1.0, 1.0), torch.nan)


def _like_input(result: torch.Tensor, reference):
    return result if isinstance(reference, torch.Tensor) else result.numpy()


def ic(factor, returns, mask=None):
    """Daily Pearson IC of a `(T, N)` factor with `(T, N)` returns -> `(T,)` (Eq. 3's IC)."""
    f, r = _to_torch(factor), _to_torch(returns)
    return _like_input(_pearson_rows(f, r, _valid_pairs(f, r, mask)), factor)


def rank_ic(factor, returns, mask=None):
    """Daily Spearman rank IC (ties averaged, ranks among the valid pairs only) -> `(T,)`."""
    f, r = _to_torch(factor), _to_torch(returns)
    valid = _valid_pairs(f, r, mask)
    rf = average_ranks(torch.where(valid, f, torch.nan), dim=-1)
    rr = average_ranks(torch.where(valid, r, torch.nan), dim=-1)
    return _like_input(_pearson_rows(rf, rr, valid), factor)


def ic_summary(daily) -> dict:
    """Mean, std, ICIR (mean / std), t-stat (mean / std * sqrt(n)), days and share of positive days."""
    values = np.asarray(daily.detach().cpu() if isinstance(daily, torch.Tensor) else daily, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    mean = values.mean() if n else np.nan
    std = values.std(ddof=1) if n > 1 else np.nan
    return {
        "mean": mean,
        "std": std,
        "icir": mean / std if n > 1 and std > 0 else np.nan,
        "t_stat": mean / std * np.sqrt(n) if n > 1 and std > 0 else np.nan,
        "n_days": n,
        "positive": (values > 0).mean() if n else np.nan,
    }


def ic_table(factors: dict, returns, mask=None, method: str = "rank") -> pd.DataFrame:
    """One row of `ic_summary` per factor; method "rank" (Spearman) or "pearson"."""
    if method not in ("rank", "pearson"):
        raise ValueError(f"method must be 'rank' or 'pearson', got {method!r}")
    fn = rank_ic if method == "rank" else ic
    rows = {name: ic_summary(fn(values, returns, mask)) for name, values in factors.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


# --- diversity (Eq. 18-19) ---------------------------------------------------------------

def cross_entropy_distance(factors) -> np.ndarray:
    """`(K, K)` distances of one day's K factor cross-sections `(K, N)`, Eq. 18-19.

    Each cross-section is z-scored over the stocks where every factor is finite (the paper
    says "normalised at first" without saying how; z-scoring keeps the scale out, as Eq. 18
    intends), turned into a distribution by softmax (Eq. 18), and
    distance(f1, f2) = sum softmax(f1) * log(1 / softmax(f2)) (Eq. 19). It is a cross-entropy,
    so not symmetric, and its diagonal is the entropy of each factor, not 0.
    """
    x = _to_torch(factors)
    x = x[:, torch.isfinite(x).all(0)]
    if x.shape[1] < 2:
        return np.full((x.shape[0], x.shape[0]), np.nan)
    z = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True).clamp(min=1e-12)
    log_p = torch.log_softmax(z, dim=1)  # (K, N)
    return -(log_p.exp() @ log_p.T).numpy()  # [i, j] = -sum p_i log p_j


def diversity_by_day(factors, n_clusters: int = 5, days=None, seed: int = 0) -> pd.Series:
    """Per day: k-means on the rows of the Eq. 19 distance matrix, mean distance between centres.

    The paper clusters "the distance matrix" with k-means and averages the distance between
    cluster centres; we take each factor's row of distances as its point, use
    `min(n_clusters, K)` clusters and Euclidean distance between centres. `factors` is
    `(K, T, N)` or a list of `(T, N)`; `days` optionally subsamples day positions.
    """
    from sklearn.cluster import KMeans

    stack = np.stack([np.asarray(f, dtype=np.float64) for f in factors])  # (K, T, N)
    k = stack.shape[0]
    if k < 2:
        raise ValueError("diversity needs at least two factors")
    days = range(stack.shape[1]) if days is None else days
    out = {}
    for t in days:
        dist = cross_entropy_distance(stack[:, t, :])
        if not np.isfinite(dist).all():
            continue
        clusters = min(n_clusters, k)
        km = KMeans(n_clusters=clusters, n_init=4, random_state=seed).fit(dist)
        centres = km.cluster_centers_
        gaps = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=-1)
        out[t] = gaps[np.triu_indices(clusters, 1)].mean()
    return pd.Series(out, dtype=float, name="diversity")


def diversity(factors, n_clusters: int = 5, days=None, seed: int = 0) -> float:
    """Mean over days of `diversity_by_day` (Table 4 / Table 6's diversity column)."""
    return float(diversity_by_day(factors, n_clusters, days, seed).mean())


# --- pool IC (Eq. 5-6) --------------------------------------------------------------------

def _ic_moments(ic_daily) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(ic_daily, dtype=np.float64)
    x = x[np.isfinite(x).all(1)]
    if len(x) < 2:
        raise ValueError("pool IC needs at least two days on which every factor has an IC")
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def pool_weights(ic_daily) -> np.ndarray:
    """Optimal factor weights v* = Σ⁻¹ IC (Eq. 5, λ dropped), with a pseudo-inverse."""
    mean, cov = _ic_moments(ic_daily)
    return np.linalg.pinv(cov) @ mean


def pool_ic(ic_daily) -> float:
    """IC* = ICᵀ Σ⁻¹ IC (Eq. 6) of factors whose daily ICs are the columns of `(T, K)`."""
    mean, cov = _ic_moments(ic_daily)
    return float(mean @ np.linalg.pinv(cov) @ mean)
