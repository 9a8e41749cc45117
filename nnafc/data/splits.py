"""Train / validation / test splits in trading days (§4.1: 250 / 30 / 90 days, then roll).

A `Split` holds day positions into a panel's dates, so it slices every `(T, N)` array the same
way. Splits are contiguous and ordered: train, then valid, then test. To keep training labels
from reading validation prices, build them with `period_labels(close, days, h)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral

import pandas as pd

from nnafc.data.panel import DataError, Panel

SIZES = ("n_train", "n_valid", "n_test")
WARMUP_DAYS = 65  # history before the first training day: PK 50's longest window is 61 days


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


def _window(panel: Panel, train_start: int, n_train: int, n_valid: int, test_stop: int) -> Split:
    a, b = train_start + n_train, train_start + n_train + n_valid
    return Split(slice(train_start, a), slice(a, b), slice(b, test_stop), calendar=panel.dates)


def windows_covering(
    panel: Panel, test_start: str, test_end: str, n_train: int = 250, n_valid: int = 30, n_test: int = 90
) -> list[Split]:
    """Rolling train / valid / test windows whose test periods tile `[test_start, test_end]` (§4.1).

    Each window trains on the `n_train` days and validates on the `n_valid` days just before
    its test days; the next window rolls forward by `n_test` days. The last test period may be
    shorter than `n_test` so that the whole span is covered. On a simulated panel whose dates
    do not hold the span, the same number of test days is placed at the end of the panel
    (calendar dates of a simulated market mean nothing). A remainder shorter than `n_valid`
    days is added to the last window instead of fitting a model for a handful of days.
    """
    if min(n_train, n_test) < 1 or n_valid < 1:
        raise ValueError(f"need n_train, n_valid, n_test >= 1, got {n_train}, {n_valid}, {n_test}")
    dates = panel.dates
    first = int(dates.searchsorted(pd.Timestamp(test_start)))
    stop = int(dates.searchsorted(pd.Timestamp(test_end), side="right"))
    history = WARMUP_DAYS + n_train + n_valid
    if stop - first < 1 or first < history:
        if not panel.simulated:
            raise DataError(
                f"test span {test_start}..{test_end} needs {history} trading days of data before it and "
                f"some inside it; the panel holds {dates[0].date()}..{dates[-1].date()}"
            )
        span = max(stop - first, len(pd.bdate_range(test_start, test_end)), 1)
        stop = len(dates)
        first = max(history, stop - span)
        if stop - first < 1:
            raise DataError(f"the simulated panel has {len(dates)} days: too short for {history} + test days")
    starts = list(range(first, stop, n_test))
    if len(starts) > 1 and stop - starts[-1] < n_valid:
        starts.pop()  # a remainder shorter than the validation split joins the last window
    ends = [*starts[1:], stop]
    return [
        _window(panel, a - n_train - n_valid, n_train, n_valid, b) for a, b in zip(starts, ends, strict=True)
    ]


def windows_frame(splits: Sequence[Split]) -> pd.DataFrame:
    """First and last date and length of each window's train / valid / test periods, one row per window."""
    rows = []
    for split in splits:
        row = {}
        for part, dates in split.dates().items():
            row[(part, "from")], row[(part, "to")] = dates[0].date(), dates[-1].date()
            row[(part, "days")] = len(dates)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index = pd.RangeIndex(1, len(rows) + 1, name="window")
    return frame


def calendar_windows(
    panel: Panel,
    windows: Sequence[tuple[str, str, str, str]],
) -> list[Split | None]:
    """Windows given by dates `(train start, train end, test start, test end)` as splits, with the
    days between training and test as the validation split (Table 5's windows: train on a calendar
    year, test on February-March of the next, validate on the January between, so no test day
    informs any choice).

    A window outside the data is None; on a simulated panel every window is moved by whole years
    so that the last one ends inside the panel.
    """
    shift = 0
    if panel.simulated and windows:
        last_end = pd.Timestamp(max(w[3] for w in windows))
        while last_end + pd.DateOffset(years=shift) > panel.dates[-1]:
            shift -= 1
    out: list[Split | None] = []
    for w in windows:
        tr0, tr1, te0, te1 = (pd.Timestamp(d) + pd.DateOffset(years=shift) for d in w)
        d = panel.dates
        a = int(d.searchsorted(tr0))
        b = int(d.searchsorted(tr1, side="right"))
        c = int(d.searchsorted(te0))
        e = int(d.searchsorted(te1, side="right"))
        ok = (
            a >= WARMUP_DAYS
            and b > a
            and c > b
            and e > c
            and e <= len(d)
            and d[-1] >= te1 - pd.Timedelta(days=7)
        )
        out.append(Split(slice(a, b), slice(b, c), slice(c, e), calendar=d) if ok else None)
    return out
