"""Training labels and model features of the XGBoost multi-factor strategy (§4.4, Table 7).

Labels follow §4.4 (after Fama & French, 1993): on each training day the stocks whose forward
return ranks in the top 30 % are labelled 1, the bottom 30 % are labelled 0, the middle 40 % are
dropped. Features are the factors' values standardised cross-sectionally per day, NaN kept so that
XGBoost routes missing values itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnafc.data import period_labels
from nnafc.data.panel import DataError, Panel
from nnafc.factor import Factor


def _check_days(days: slice, n_days: int) -> tuple[int, int]:
    start, stop, step = days.indices(n_days)
    if step != 1 or stop <= start:
        raise ValueError(f"days must be a non-empty contiguous slice, got {days!r}")
    if days.stop is not None and days.stop > n_days:
        raise DataError(f"days {days!r} run past the panel's {n_days} dates")
    return start, stop


def rank_labels(forward: np.ndarray, mask: np.ndarray | None = None, top: float = 0.3,
                bottom: float = 0.3) -> np.ndarray:
    """Per-day binary labels: the top `top` share of `forward` -> 1, the bottom `bottom` -> 0, rest NaN.

    On a day with `n` eligible stocks (finite `forward` and `mask`), exactly `floor(top * n)`
    stocks are labelled 1 and `floor(bottom * n)` are labelled 0. Ties are broken by instrument
    order (stable sort), so the labels are deterministic.
    """
    if not (0 < top < 1 and 0 < bottom < 1 and top + bottom <= 1):
        raise ValueError(f"need 0 < top, bottom < 1 and top + bottom <= 1, got top={top}, bottom={bottom}")
    forward = np.asarray(forward, dtype=np.float64)  # (D, N)
    valid = np.isfinite(forward)
    if mask is not None:
        if mask.shape != forward.shape:
            raise ValueError(f"mask shape {mask.shape} differs from forward returns {forward.shape}")
        valid &= mask
    n = valid.sum(axis=1)  # (D,)
    n_top = np.floor(top * n + 1e-9).astype(np.int64)  # (D,) the epsilon absorbs 0.3 * 10 = 2.9999...
    n_bottom = np.floor(bottom * n + 1e-9).astype(np.int64)
    # ascending order with invalid entries pushed to the end: position = rank among valid stocks
    keyed = np.where(valid, forward, np.inf)
    order = np.argsort(keyed, axis=1, kind="stable")  # (D, N)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(forward.shape[1])[None, :], axis=1)  # (D, N) 0 = lowest
    labels = np.full(forward.shape, np.nan, dtype=np.float32)  # (D, N)
    labels[valid & (rank < n_bottom[:, None])] = 0.0
    labels[valid & (rank >= (n - n_top)[:, None])] = 1.0
    return labels


def make_labels(panel: Panel, days: slice, horizon: int = 5, top: float = 0.3,
                bottom: float = 0.3, lag: int = 0) -> np.ndarray:
    """§4.4 labels on `days` (e.g. the training split), `(D, N)` float32 of 1 / 0 / NaN.

    Forward returns over `horizon` days (§4.1: the next 5 trading days) never read a price after
    the last day of `days`: the last `horizon` days of the split get no label. Only stocks in the
    panel's point-in-time universe on the label day are ranked. `lag`: the return from day t + lag
    (`period_labels`).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 trading day, got {horizon}")
    start, stop = _check_days(days, panel.shape[0])
    forward = period_labels(panel["close"], slice(start, stop), horizon, lag)  # (D, N)
    return rank_labels(forward, panel.in_universe[start:stop], top=top, bottom=bottom)


def standardize(values: np.ndarray, mask: np.ndarray | None = None, clip: float | None = 3.0) -> np.ndarray:
    """Cross-sectional z-score per day (row), then clipped to [-clip, clip]; NaN kept.

    Entries outside `mask` (e.g. not in the universe) become NaN and do not enter the mean / std.
    A day with fewer than two finite values, or zero dispersion, is all NaN.
    """
    if clip is not None and clip <= 0:
        raise ValueError(f"clip must be positive or None, got {clip}")
    x = np.asarray(values, dtype=np.float64)  # (D, N)
    x = np.where(np.isfinite(x), x, np.nan)
    if mask is not None:
        x = np.where(mask, x, np.nan)
    count = np.isfinite(x).sum(axis=1, keepdims=True)  # (D, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=1, keepdims=True) / count
        std = np.sqrt(np.nansum((x - mean) ** 2, axis=1, keepdims=True) / (count - 1))
        z = (x - mean) / std
    z[(count < 2).ravel() | ~(std > 0).ravel()] = np.nan
    if clip is not None:
        z = np.clip(z, -clip, clip)
    return z.astype(np.float32)


def build_features(factors: Sequence[Factor], panel: Panel, days: slice,
                   clip: float | None = 3.0) -> np.ndarray:
    """The model's input: each factor standardised per day over the universe, `(D, N, F)` float32.

    Factor values at day t use data up to t only (the `Factor` contract), and the standardisation
    uses day t's cross-section only, so features on day t never see a later day.
    """
    if len(factors) == 0:
        raise ValueError("need at least one factor")
    names = [f.name for f in factors]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"factor names must be unique; repeated: {dup}")
    start, stop = _check_days(days, panel.shape[0])
    mask = panel.in_universe[start:stop]  # (D, N)
    out = np.empty((stop - start, panel.shape[1], len(factors)), dtype=np.float32)  # (D, N, F)
    for j, factor in enumerate(factors):
        out[:, :, j] = standardize(factor.values(panel)[start:stop], mask, clip)
    return out


def stack_rows(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten `(D, N, F)` features and `(D, N)` labels to the labelled rows `(n, F)`, `(n,)`."""
    if features.shape[:2] != labels.shape:
        raise ValueError(f"features {features.shape[:2]} and labels {labels.shape} differ in days/stocks")
    keep = np.isfinite(labels)  # (D, N)
    return features[keep], labels[keep].astype(np.int8)
