"""Network inputs and labels (§3.2, §4.1): `(n, 5, m)` windows per day and forward returns.

On day t a stock's input is its last m days of open, high, low, close, volume (t-m+1..t);
its label is the return over the next h days (Eq. 12). Both are causal with respect to what
they may read: inputs only days <= t, standardisation statistics only the fit (training)
days, and training labels only prices up to `last_day` (the last training day), so no
validation price leaks into training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from nnafc.data.panel import FIELDS, DataError, Panel

VOLUME = FIELDS.index("volume")
CLOSE = FIELDS.index("close")
CHUNK_ROWS = 1 << 13  # windows standardised per block: float64 temporaries stay in cache (~10 MB at m=30)


def forward_returns(close: np.ndarray, horizon: int = 5, last_day: int | None = None) -> np.ndarray:
    """`(T, N)` float32 label `close[t+h] / close[t] - 1` (Eq. 12) on adjusted closes.

    NaN where either close is NaN, where t+h is past the data, or where t+h > `last_day`
    (a day position): labels for training days then never read validation prices.
    """
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise DataError(f"horizon must be a positive integer, got {horizon!r}")
    if last_day is not None and last_day < 0:
        raise DataError(f"last_day must be a day position >= 0, got {last_day}")
    close = np.asarray(close, dtype=np.float64)  # (T, N)
    t = close.shape[0]
    out = np.full(close.shape, np.nan, dtype=np.float32)
    stop = t if last_day is None else min(t, last_day + 1)  # days readable: [0, stop)
    if stop > horizon:
        out[: stop - horizon] = close[horizon:stop] / close[: stop - horizon] - 1.0
    return out


def period_labels(close: np.ndarray, days: slice, horizon: int = 5, lag: int = 0) -> np.ndarray:
    """`(D, N)` labels of `days` (Eq. 12) that read no price after the period's last day.

    The one label cut of the package: training labels never read validation prices, validation
    labels never read test prices. The last `horizon + lag` days of the period get NaN. With a
    `lag`, day t's label is the return from day t + lag (Qlib's `Ref($close, -2) / Ref($close, -1)
    - 1` is horizon 1, lag 1: a signal computed at t's close can only trade at t + 1).
    """
    if not isinstance(lag, int | np.integer) or lag < 0:
        raise DataError(f"lag must be a non-negative integer, got {lag!r}")
    forward = forward_returns(close, horizon, last_day=days.stop - 1)
    if not lag:
        return forward[days]
    start, stop, _ = days.indices(len(forward))
    out = np.full((stop - start, forward.shape[1]), np.nan, dtype=np.float32)
    out[: max(0, stop - start - lag)] = forward[start + lag : stop]
    return out


@dataclass
class Windows:
    """Input windows for a set of (day, stock) rows, sorted by day (in the order asked) then stock.

    `x[r]` is the `(5, m)` window of stock `stock[r]` ending on day `day[r]`; fields in
    `FIELDS` order (open, high, low, close, volume), oldest day first.
    """

    x: torch.Tensor  # (R, 5, m) float32
    day: torch.Tensor  # (R,) long, day positions in the panel
    stock: torch.Tensor  # (R,) long, instrument positions in the panel

    def __len__(self) -> int:
        return int(self.day.shape[0])

    def gather(self, values: np.ndarray, first_day: int = 0) -> torch.Tensor:
        """`(R,)` float32 of a `(T, N)` array at each row's (day, stock): labels, seed factors.

        `first_day`: the day position of `values`' first row (e.g. `period_labels` of a period).
        """
        rows = self.day.numpy() - first_day
        return torch.as_tensor(np.asarray(values)[rows, self.stock.numpy()], dtype=torch.float32)

    def day_slices(self) -> list[tuple[int, slice]]:
        """`(day, rows)` per day: one cross-section per batch, as §3.2 samples them."""
        day = self.day.numpy()
        if len(day) == 0:
            return []
        cut = np.flatnonzero(np.diff(day)) + 1
        starts, stops = np.r_[0, cut], np.r_[cut, len(day)]
        return [(int(day[a]), slice(int(a), int(b))) for a, b in zip(starts, stops, strict=True)]

    def to_panel(self, values: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
        """Scatter `(R,)` values (e.g. network outputs) back into a `(T, N)` float32 array, NaN elsewhere."""
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        values = np.asarray(values).reshape(-1)
        if len(values) != len(self):
            raise DataError(f"got {len(values)} values for {len(self)} windows")
        out = np.full(shape, np.nan, dtype=np.float32)
        out[self.day.numpy(), self.stock.numpy()] = values
        return out


class Standardiser:
    """Builds standardised `(R, 5, m)` windows; statistics come from the fit days only.

    method="train_zscore" (the paper, §4.1): per stock and field, the time-series mean and
        standard deviation (ddof 0) over the fit days; volume is taken as log1p(volume) first,
        because raw volume is heavy-tailed and spans orders of magnitude. A stock needs at least
        m complete fit days and non-zero deviations, else it gets no windows.
    method="window": per window, no fitted state: prices / the window's last close - 1,
        volume / the window's mean volume - 1 (scale-free, so stocks need no history).
    """

    METHODS = ("train_zscore", "window")

    def __init__(self, method: str = "train_zscore", m: int = 30) -> None:
        if method not in self.METHODS:
            raise DataError(f"unknown standardisation {method!r}: use one of {self.METHODS}")
        if not isinstance(m, int | np.integer) or isinstance(m, bool) or m < 1:
            raise DataError(f"window length m must be a positive integer, got {m!r}")
        self.method, self.m = method, int(m)
        self.mean_: np.ndarray | None = None  # (N, 5) after fit (train_zscore)
        self.std_: np.ndarray | None = None  # (N, 5)
        self.instruments_ = None
        self.fit_days_: slice | None = None

    def __repr__(self) -> str:
        fit = self.fit_days_
        fitted = f", fitted on days {fit.start}..{fit.stop - 1}" if fit is not None else ""
        return f"Standardiser(method={self.method!r}, m={self.m}{fitted})"

    def fit(self, panel: Panel, days: slice) -> Standardiser:
        """Learn per-stock statistics from `panel` rows on `days` (complete rows only)."""
        if not isinstance(days, slice):
            raise DataError(f"fit days must be a slice of day positions, got {type(days).__name__}")
        start, stop, step = days.indices(len(panel.dates))
        if step != 1 or stop <= start:
            raise DataError(f"fit days {days} select no consecutive days of a {len(panel.dates)}-day panel")
        self.fit_days_ = slice(start, stop)
        self.instruments_ = panel.instruments
        if self.method == "window":
            return self
        data = _stack(panel, start, stop).astype(np.float64)  # (D, N, 5)
        data[..., VOLUME] = np.log1p(data[..., VOLUME])
        complete = np.isfinite(data).all(axis=-1, keepdims=True)  # (D, N, 1) all five fields
        count = complete.sum(axis=0)  # (N, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(complete, data, 0.0).sum(axis=0) / count  # (N, 5)
            std = np.sqrt((np.where(complete, data - mean, 0.0) ** 2).sum(axis=0) / count)  # (N, 5)
        unusable = (count < self.m) | ~(std > 0).all(axis=1, keepdims=True)  # (N, 1)
        mean[unusable[:, 0]], std[unusable[:, 0]] = np.nan, np.nan
        self.mean_, self.std_ = mean, std
        return self

    def transform(self, panel: Panel, days: slice | Sequence[int] | np.ndarray) -> Windows:
        """Windows ending on `days` for stocks in the universe with all 5 fields finite over the
        m days (and, for train_zscore, with fitted statistics). Days earlier than m-1 give none."""
        if self.method == "train_zscore" and self.mean_ is None:
            raise DataError("Standardiser(method='train_zscore') must be fit before transform")
        if self.instruments_ is not None and not self.instruments_.equals(panel.instruments):
            raise DataError("panel instruments differ from those the Standardiser was fit on")
        t_all, m = len(panel.dates), self.m
        days = np.arange(*days.indices(t_all)) if isinstance(days, slice) else np.asarray(days, np.int64)
        if days.size and (days.min() < 0 or days.max() >= t_all):
            raise DataError(f"days must be positions in 0..{t_all - 1}")
        days = days[days >= m - 1]
        if days.size == 0:
            return _empty(m)
        lo, hi = int(days.min()) - m + 1, int(days.max()) + 1
        data = _stack(panel, lo, hi)  # (D, N, 5) days lo..hi-1
        finite = np.isfinite(data).all(axis=-1)  # (D, N)
        csum = np.concatenate([np.zeros((1, finite.shape[1]), np.int64), np.cumsum(finite, axis=0)])
        r = days - lo  # (K,) window end positions within `data`
        complete = (csum[r + 1] - csum[r + 1 - m]) == m  # (K, N) m finite days ending at each day
        ok = complete & panel.in_universe[days]
        if self.method == "train_zscore":
            ok &= np.isfinite(self.std_).all(axis=1)[None, :]
        k, stock = np.nonzero(ok)  # rows in (day order, stock) order
        x = np.empty((len(k), len(FIELDS), m), dtype=np.float32)
        if self.method == "train_zscore":  # an affine map per (stock, field): scale each panel
            #   value once, then cut windows (the same float64 arithmetic as per window, m x fewer)
            view = sliding_window_view(self._zscore(data), m, axis=0)  # (D-m+1, N, 5, m) float32
            for a in range(0, len(k), CHUNK_ROWS):
                b = slice(a, a + CHUNK_ROWS)
                x[b] = view[r[k[b]] - m + 1, stock[b]]
        else:
            view = sliding_window_view(data, m, axis=0)  # (D-m+1, N, 5, m)
            for a in range(0, len(k), CHUNK_ROWS):  # blocks of rows, not stocks: bounds memory
                b = slice(a, a + CHUNK_ROWS)
                x[b] = self._scale(view[r[k[b]] - m + 1, stock[b]].astype(np.float64))
        keep = np.isfinite(x).all(axis=(1, 2))  # window method: a zero-volume window has no scale
        return Windows(x=torch.from_numpy(x[keep]), day=torch.from_numpy(days[k][keep]),
                       stock=torch.from_numpy(stock[keep].astype(np.int64)))

    def _zscore(self, data: np.ndarray) -> np.ndarray:
        """`(D, N, 5)` raw values -> float32 z-scores with the fitted per-stock statistics."""
        z = data.astype(np.float64)
        z[..., VOLUME] = np.log1p(z[..., VOLUME])
        z -= self.mean_[None]
        z /= self.std_[None]
        return z.astype(np.float32)

    @staticmethod
    def _scale(x: np.ndarray) -> np.ndarray:
        """Scale raw windows `(r, 5, m)` by their own last close and mean volume (method="window")."""
        with np.errstate(invalid="ignore", divide="ignore"):  # in place: no (r, 5, m) temporaries
            last_close = x[:, CLOSE, -1][:, None, None].copy()
            mean_volume = x[:, VOLUME].mean(axis=-1, keepdims=True)
            np.divide(x[:, :VOLUME], last_close, out=x[:, :VOLUME])
            np.divide(x[:, VOLUME], mean_volume, out=x[:, VOLUME])
            x -= 1.0
        return x


def _stack(panel: Panel, start: int, stop: int) -> np.ndarray:
    """`(D, N, 5)` float32 copy of the five input fields on days start..stop-1."""
    return np.stack([panel[f][start:stop] for f in FIELDS], axis=-1)


def _empty(m: int) -> Windows:
    return Windows(x=torch.empty((0, len(FIELDS), m)), day=torch.empty(0, dtype=torch.long),
                   stock=torch.empty(0, dtype=torch.long))
