"""Windows and labels: equal to a naive per-stock construction, causal, and leak-free."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc.data import FIELDS, DataError, Panel, load_panel
from nnafc.data.windows import Standardiser, forward_returns, period_labels

M = 10


@pytest.fixture(scope="module")
def panel(data_dir: Path) -> Panel:
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2016-01-01", end="2017-06-30",
                      universe="csi300")


def _naive_stats(panel: Panel, days: slice, n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array([[panel[f][t, n] for f in FIELDS] for t in range(days.start, days.stop)], np.float64)
    rows = rows[np.isfinite(rows).all(axis=1)]
    rows[:, 4] = np.log1p(rows[:, 4])
    return rows.mean(axis=0), rows.std(axis=0)


def _naive_window(panel: Panel, t: int, n: int, m: int) -> np.ndarray:
    return np.array([[panel[f][s, n] for s in range(t - m + 1, t + 1)] for f in FIELDS], np.float64)


def test_forward_returns_known_answer() -> None:
    close = np.array([[10.0, 1.0], [11.0, np.nan], [12.0, 2.0], [13.2, 3.0], [np.nan, 4.0]])  # (5, 2)
    got = forward_returns(close, horizon=2)
    expected = np.array([[0.2, 1.0], [0.2, np.nan], [np.nan, 1.0], [np.nan, np.nan], [np.nan, np.nan]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.dtype == np.float32


def test_forward_returns_stop_at_last_day(panel: Panel) -> None:
    close, h, last = panel["close"], 5, 200
    y = forward_returns(close, h, last_day=last)
    naive = np.full(close.shape, np.nan)
    for t in range(len(close)):
        if t + h <= last:
            naive[t] = close[t + h].astype(np.float64) / close[t] - 1
    np.testing.assert_allclose(y, naive, rtol=1e-6)
    assert np.isnan(y[last - h + 1:]).all() and np.isfinite(y[last - h]).any()
    corrupted = close.copy()
    corrupted[last + 1:] *= 7.0  # validation/test prices must not reach training labels
    assert np.array_equal(forward_returns(corrupted, h, last_day=last), y, equal_nan=True)


def test_period_labels_read_nothing_after_the_period(panel: Panel) -> None:
    close, days, h = panel["close"], slice(100, 160), 5
    y = period_labels(close, days, h)  # (D, N)
    assert y.shape == (60, close.shape[1])
    np.testing.assert_allclose(y[:-h], close[105:160].astype(np.float64) / close[100:155] - 1, rtol=1e-6)
    assert np.isnan(y[-h:]).all()  # their t + h is after the period's last day
    corrupted = close.copy()
    corrupted[days.stop:] = 1e6
    assert np.array_equal(period_labels(corrupted, days, h), y, equal_nan=True)


def test_train_zscore_matches_naive(panel: Panel) -> None:
    fit = slice(40, 290)
    st = Standardiser("train_zscore", m=M).fit(panel, fit)
    days = [45, 300, 350]
    w = st.transform(panel, days)
    assert w.x.shape == (len(w), 5, M) and w.x.dtype == torch.float32 and w.day.dtype == torch.long
    assert w.day.tolist() == sorted(w.day.tolist())
    rng = np.random.default_rng(0)
    for r in rng.choice(len(w), size=12, replace=False):
        t, n = int(w.day[r]), int(w.stock[r])
        mean, std = _naive_stats(panel, fit, n)
        window = _naive_window(panel, t, n, M)
        window[4] = np.log1p(window[4])
        expected = (window - mean[:, None]) / std[:, None]
        np.testing.assert_allclose(w.x[r].numpy(), expected, rtol=1e-4, atol=1e-4)
    # exactly the rows a naive scan selects: in the universe, 5 fields finite over m days, fitted
    for t in days:
        naive = [n for n in range(len(panel.instruments))
                 if panel.in_universe[t, n] and np.isfinite(_naive_window(panel, t, n, M)).all()
                 and np.isfinite(st.std_[n]).all()]
        assert w.stock[w.day == t].tolist() == naive


def test_fit_reads_only_fit_days(panel: Panel) -> None:
    fit = slice(100, 200)
    a = Standardiser(m=M).fit(panel, fit)
    noisy = {f: v.copy() for f, v in panel.fields.items()}
    for f in FIELDS:
        noisy[f][:100] *= 3.0
        noisy[f][200:] = np.nan
    b = Standardiser(m=M).fit(replace(panel, fields=noisy), fit)
    assert np.isfinite(a.mean_).any()
    np.testing.assert_array_equal(a.mean_, b.mean_)
    np.testing.assert_array_equal(a.std_, b.std_)
    c = Standardiser(m=M).fit(replace(panel, fields=noisy), slice(99, 200))
    assert not np.array_equal(a.mean_, c.mean_, equal_nan=True)  # the fit days themselves do count


def _toy_panel(close: np.ndarray, volume: np.ndarray) -> Panel:
    t, n = close.shape
    fields = {"open": close * 0.99, "high": close * 1.01, "low": close * 0.98, "close": close,
              "volume": volume}
    fields = {k: v.astype(np.float32) for k, v in fields.items()}
    traded = np.isfinite(close) & (volume > 0)
    return Panel(dates=pd.bdate_range("2020-01-01", periods=t),
                 instruments=pd.Index([f"S{i}" for i in range(n)]),
                 fields=fields, traded=traded, in_universe=traded)


def test_window_method_known_answer() -> None:
    close = np.array([[10.0, 5.0], [11.0, 5.0], [12.0, np.nan], [16.0, 5.0]])  # (4, 2)
    volume = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0], [6.0, 2.0]])
    w = Standardiser("window", m=3).transform(_toy_panel(close, volume), slice(None))
    assert w.day.tolist() == [2, 3] and w.stock.tolist() == [0, 0]  # stock 1 has a gap
    np.testing.assert_allclose(w.x[0, 3].numpy(), [10 / 12 - 1, 11 / 12 - 1, 0.0], rtol=1e-6)
    np.testing.assert_allclose(w.x[0, 4].numpy(), [-0.5, 0.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(w.x[1, 2].numpy(), [11 * 0.98 / 16 - 1, 12 * 0.98 / 16 - 1, -0.02], rtol=1e-5)


def test_windows_scatter_and_gather(panel: Panel) -> None:
    w = Standardiser("window", m=M).transform(panel, slice(300, 305))
    y = forward_returns(panel["close"], 5)
    labels = w.gather(y)
    back = w.to_panel(labels, panel.shape)
    assert np.isnan(back[:300]).all() and np.isnan(back[305:]).all()
    at = (w.day.numpy(), w.stock.numpy())
    assert np.array_equal(back[at], y[at], equal_nan=True)
    assert [d for d, _ in w.day_slices()] == [300, 301, 302, 303, 304]
    assert sum(s.stop - s.start for _, s in w.day_slices()) == len(w)
    with pytest.raises(DataError, match="values for"):
        w.to_panel(np.zeros(3), panel.shape)


def test_early_days_and_errors(panel: Panel) -> None:
    assert len(Standardiser("window", m=M).transform(panel, range(M - 1))) == 0  # no full history yet
    with pytest.raises(DataError, match="must be fit"):
        Standardiser().transform(panel, [100])
    with pytest.raises(DataError, match="unknown standardisation 'minmax'"):
        Standardiser("minmax")
    with pytest.raises(DataError, match="positive integer"):
        Standardiser(m=0)
    with pytest.raises(DataError, match="positive integer"):
        forward_returns(panel["close"], horizon=0)
    st = Standardiser(m=M).fit(panel, slice(0, 100))
    with pytest.raises(DataError, match="instruments differ"):
        st.transform(replace(panel, instruments=panel.instruments[::-1]), [150])
    with pytest.raises(DataError, match="positions in"):
        st.transform(panel, [len(panel.dates)])
