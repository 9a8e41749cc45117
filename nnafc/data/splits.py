"""Train / validation / test splits in trading days (§4.1: 250 / 30 / 90 days, then roll).

A `Split` holds day positions into a panel's dates, so it slices every `(T, N)` array the same
way. Splits are contiguous and ordered: train, then valid, then test. To keep training labels
from reading validation prices, build them with `period_labels(close, days, h)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral

import pandas as pd

from nnafc.data.panel import DataError, Panel

SIZES = ("n_train", "n_valid", "n_test")


@dataclass(frozen=True)
class Split:
    """Day positions `[start, stop)` of the train, validation and test periods."""

    train: slice
    valid: slice
    test: slice
    calendar: pd.DatetimeIndex | None = field(default=None, compare=False)  # the dates indexed, for repr

    @property
    def span(self) -> slice:
        """All three periods: from the first training day to the last test day."""
        return slice(self.train.start, self.test.stop)

    def dates(self, dates: pd.DatetimeIndex | None = None) -> dict[str, pd.DatetimeIndex]:
        """The dates of each period (`dates` defaults to the calendar the split was made on)."""
        dates = self.calendar if dates is None else pd.DatetimeIndex(dates)
        if dates is None:
            raise DataError("this Split has no calendar: pass the panel's dates")
        return {name: dates[getattr(self, name)] for name in ("train", "valid", "test")}

    def __repr__(self) -> str:
        parts = []
        for name in ("train", "valid", "test"):
            sl = getattr(self, name)
            n = sl.stop - sl.start
            if self.calendar is not None and n > 0:
                span = f"{self.calendar[sl.start].date()}..{self.calendar[sl.stop - 1].date()}"
            else:
                span = f"days {sl.start}..{sl.stop - 1}"
            parts.append(f"{name} {span} ({n}d)")
        return f"Split({', '.join(parts)})"


def make_split(dates: pd.DatetimeIndex, train_start: str | pd.Timestamp, n_train: int = 250,
               n_valid: int = 30, n_test: int = 90) -> Split:
    """Consecutive train / valid / test periods, training from the first date on/after `train_start`."""
    dates = pd.DatetimeIndex(dates)
    _check_sizes(n_train, n_valid, n_test)
    try:
        start_ts = pd.Timestamp(train_start)
    except (ValueError, TypeError):
        raise DataError(f"train_start {train_start!r} is not a date") from None
    i = int(dates.searchsorted(start_ts))
    need = n_train + n_valid + n_test
    if len(dates) == 0 or i + need > len(dates):
        last = dates[-1].date() if len(dates) else "no dates"
        raise DataError(f"a {n_train}/{n_valid}/{n_test}-day split from {start_ts.date()} needs {need} "
                        f"trading days; the data has {max(len(dates) - i, 0)} (up to {last})")
    a, b, c = i + n_train, i + n_train + n_valid, i + need
    return Split(train=slice(i, a), valid=slice(a, b), test=slice(b, c), calendar=dates)


def rolling_splits(dates: pd.DatetimeIndex, first_train_start: str | pd.Timestamp, n_windows: int,
                   step: int | None = None, **sizes: int) -> list[Split]:
    """`n_windows` splits, each starting `step` trading days after the previous (default: n_test,
    so the test periods tile the time line without overlap). `sizes`: n_train, n_valid, n_test."""
    unknown = set(sizes) - set(SIZES)
    if unknown:
        raise DataError(f"unknown split sizes {sorted(unknown)}: use {', '.join(SIZES)}")
    if n_windows < 1:
        raise DataError(f"n_windows must be >= 1, got {n_windows}")
    first = make_split(dates, first_train_start, **sizes)
    step = first.test.stop - first.test.start if step is None else step
    if step < 1:
        raise DataError(f"step must be >= 1 trading day, got {step}")
    dates = pd.DatetimeIndex(dates)
    out = []
    for k in range(n_windows):
        i = first.train.start + k * step
        if i >= len(dates):
            raise DataError(f"rolling window {k + 1} of {n_windows} starts after the last date "
                            f"({dates[-1].date()})")
        out.append(make_split(dates, dates[i], **sizes))
    return out


def _check_sizes(n_train: int, n_valid: int, n_test: int) -> None:
    if not all(isinstance(n, Integral) and not isinstance(n, bool) for n in (n_train, n_valid, n_test)):
        raise DataError(f"split sizes must be integers, got {n_train}, {n_valid}, {n_test}")
    if n_train < 1 or n_valid < 0 or n_test < 0:
        raise DataError(f"need n_train >= 1, n_valid >= 0, n_test >= 0; got {n_train}, {n_valid}, {n_test}")


def split_window(panel: Panel, split: Split, lookback: int = 150, horizon: int = 5) -> tuple[Panel, Split]:
    """The panel cut to one split's span, with `lookback` days before it (windows, indicators'
    own history) and `horizon` after (test labels), and the split re-based onto it.

    Constructing on this cut costs what one split needs instead of the whole history; the
    cut contains nothing the full panel would not give the same days.
    """
    start = max(0, split.train.start - lookback)
    stop = min(len(panel.dates), split.test.stop + horizon)
    sub = panel.slice_days(start, stop)

    def shift(sl: slice) -> slice:
        return slice(sl.start - start, sl.stop - start)

    return sub, Split(shift(split.train), shift(split.valid), shift(split.test), calendar=sub.dates)
