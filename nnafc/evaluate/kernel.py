"""§3.2: how the kernel g(x) of Eq. 13 behaves, and how well kernel-IC (Eq. 14) tracks rank IC.

g(x) = 1 / (1 + exp(-p (x - mean) / (2 std))) is a location-scale invariant squashing, so
only the *shape* of a cross-section (tails, modes) decides how far g(x) is from rank(x).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from nnafc import losses, metrics
from nnafc.ops import average_ranks

# Fig. 3: four Gaussians of different mean and deviation (the paper gives no values).
FIG3_GAUSSIANS = {
    "N(0, 1)": (0.0, 1.0), "N(2, 0.5)": (2.0, 0.5), "N(-1, 2)": (-1.0, 2.0), "N(5, 4)": (5.0, 4.0)
}


def _normalised_rank(x: torch.Tensor) -> torch.Tensor:
    return (average_ranks(x) - 0.5) / x.shape[-1]  # in (0, 1)


def kernel_samples(
    gaussians: dict = FIG3_GAUSSIANS, n: int = 2000, p: float = 1.83, seed: int = 0
) -> pd.DataFrame:
    """Fig. 3 data: per Gaussian, x, its normalised rank and g(x); plus all four pooled.

    Each Gaussian alone gives the same g-vs-rank curve (g is location-scale invariant); the
    pooled cross-section, a mixture, is where the shape differs.
    """
    gen = torch.Generator().manual_seed(seed)
    rows, pooled = [], []
    for name, (mean, std) in gaussians.items():
        x = mean + std * torch.randn(n, generator=gen, dtype=torch.float64)
        pooled.append(x)
        rows.append(_sample_frame(name, x, p))
    rows.append(_sample_frame("all four pooled", torch.cat(pooled), p))
    return pd.concat(rows, ignore_index=True)


def _sample_frame(name: str, x: torch.Tensor, p: float) -> pd.DataFrame:
    return pd.DataFrame({
        "group": name,
        "x": x.numpy(),
        "rank": _normalised_rank(x).numpy(),
        "g": losses.kernel(x, p=p).numpy(),
    })


def distributions(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Cross-sections of different shapes, to see where g(x) departs from rank(x)."""
    gen = torch.Generator().manual_seed(seed)
    normal = torch.randn(n, generator=gen, dtype=torch.float64)
    chi = torch.randn(n, 3, generator=gen, dtype=torch.float64).pow(2).sum(1)
    student_t3 = normal / (chi / 3).sqrt()
    lognormal = (0.8 * torch.randn(n, generator=gen, dtype=torch.float64)).exp()
    mixture = torch.cat([mean + std * torch.randn(n // 4, generator=gen, dtype=torch.float64)
                         for mean, std in FIG3_GAUSSIANS.values()])
    return {"normal": normal, "student-t(3)": student_t3, "lognormal(0.8)": lognormal,
            "Fig. 3 mixture": mixture}


def p_sensitivity(samples: dict[str, torch.Tensor], p_values) -> pd.DataFrame:
    """Per distribution and p: Pearson corr of g_p(x) with rank(x), and the share of g in (0.05, 0.95).

    A correlation near 1 means Pearson on g(x) behaves like Spearman (Eq. 14's intent).
    """
    rows = []
    for name, x in samples.items():
        rank = _normalised_rank(x)
        for p in p_values:
            g = losses.kernel(x, p=float(p))
            rows.append({
                "distribution": name,
                "p": float(p),
                "corr_with_rank": float(torch.corrcoef(torch.stack([g, rank]))[0, 1]),
                "max_abs_gap": float((g - rank).abs().max()),
                "share_unsaturated": float(((g > 0.05) & (g < 0.95)).double().mean()),
            })
    return pd.DataFrame(rows)


def daily_ics(factor: np.ndarray, returns: np.ndarray, mask: np.ndarray | None = None,
              p: float = 1.83, dates=None) -> pd.DataFrame:
    """Per day: exact rank IC (Spearman), Pearson IC and kernel IC (Eq. 14) of one factor."""
    f = torch.as_tensor(factor, dtype=torch.float64)
    r = torch.as_tensor(returns, dtype=torch.float64)
    m = None if mask is None else torch.as_tensor(mask)
    frame = pd.DataFrame({
        "rank IC": metrics.rank_ic(f, r, m).numpy(),
        "Pearson IC": metrics.ic(f, r, m).numpy(),
        "kernel IC": losses.kernel_ic(f, r, m, p=p).detach().numpy(),
    }, index=dates)
    return frame.dropna(how="any")


def with_outliers(returns: np.ndarray, share: float, size: float = 1.0, seed: int = 0) -> np.ndarray:
    """Returns with a random `share` of finite entries replaced by ±`size` (bad ticks, splits)."""
    gen = np.random.default_rng(seed)
    out = returns.copy()
    hit = np.isfinite(out) & (gen.random(out.shape) < share)
    out[hit] = np.where(gen.random(hit.sum()) < 0.5, -size, size)
    return out


def tracking_table(factors: dict[str, np.ndarray], returns: np.ndarray, mask: np.ndarray | None = None,
                   p: float = 1.83, outlier_share: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """How closely kernel IC and Pearson IC track the exact rank IC, across days, per factor."""
    target = with_outliers(returns, outlier_share, seed=seed) if outlier_share > 0 else returns
    rows = []
    for name, values in factors.items():
        daily = daily_ics(values, target, mask, p=p)
        row = {"factor": name, "days": len(daily), "mean rank IC": daily["rank IC"].mean()}
        for measure in ("kernel IC", "Pearson IC"):
            gap = daily[measure] - daily["rank IC"]
            row[f"corr({measure}, rank IC)"] = daily[measure].corr(daily["rank IC"])
            row[f"bias {measure}"] = gap.mean()
        rows.append(row)
    return pd.DataFrame(rows).set_index("factor")
