"""Splits in trading days: sizes, order, calendar alignment, rolling, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnafc.data import DataError
from nnafc.data.splits import Split, make_split, rolling_splits

DATES = pd.bdate_range("2019-01-01", "2020-12-31")  # a stand-in trading calendar


def test_make_split_layout() -> None:
    s = make_split(DATES, "2019-01-05")  # a Saturday: training starts Monday 2019-01-07
    assert DATES[s.train.start] == pd.Timestamp("2019-01-07")
    sizes = [sl.stop - sl.start for sl in (s.train, s.valid, s.test)]
    assert sizes == [250, 30, 90]
    assert s.train.stop == s.valid.start and s.valid.stop == s.test.start  # contiguous, ordered
    assert s.span == slice(s.train.start, s.test.stop)
    d = s.dates()
    assert d["valid"][0] > d["train"][-1] and d["test"][0] > d["valid"][-1]
    assert len(np.arange(len(DATES))[s.span]) == 370
    assert repr(s).startswith("Split(train 2019-01-07..") and "(250d)" in repr(s) and "(90d)" in repr(s)


def test_split_indexes_any_array_the_same_way() -> None:
    s = make_split(DATES, "2019-03-01", n_train=10, n_valid=2, n_test=3)
    values = np.arange(len(DATES))[:, None] * np.ones((1, 4))  # (T, N)
    assert values[s.test][:, 0].tolist() == list(range(s.test.start, s.test.start + 3))
    assert Split(train=s.train, valid=s.valid, test=s.test) == s  # calendar does not count
    with pytest.raises(DataError, match="no calendar"):
        Split(train=s.train, valid=s.valid, test=s.test).dates()
    assert list(Split(s.train, s.valid, s.test).dates(DATES)["test"]) == list(s.dates()["test"])


def test_make_split_errors() -> None:
    with pytest.raises(DataError, match=r"needs 370 trading days; the data has \d+ \(up to 2020-12-31\)"):
        make_split(DATES, "2020-06-01")
    with pytest.raises(DataError, match="needs 370 trading days; the data has 0"):
        make_split(DATES, "2025-01-01")
    with pytest.raises(DataError, match="n_train >= 1"):
        make_split(DATES, "2019-01-01", n_train=0)
    with pytest.raises(DataError, match="integers"):
        make_split(DATES, "2019-01-01", n_test=2.5)
    with pytest.raises(DataError, match="not a date"):
        make_split(DATES, "soon")


def test_rolling_splits() -> None:
    splits = rolling_splits(DATES, "2019-01-01", n_windows=3, n_train=100, n_valid=10, n_test=20)
    assert len(splits) == 3
    for a, b in zip(splits, splits[1:], strict=False):
        assert b.train.start - a.train.start == 20 and b.test.start == a.test.stop  # tests tile
    custom = rolling_splits(DATES, "2019-01-01", n_windows=2, step=5, n_train=100)
    assert custom[1].train.start - custom[0].train.start == 5
    assert custom[0].test.stop - custom[0].test.start == 90  # default size kept


def test_rolling_splits_errors() -> None:
    with pytest.raises(DataError, match="needs 370 trading days"):
        rolling_splits(DATES, "2019-01-01", n_windows=3)  # the third window runs off the data
    with pytest.raises(DataError, match=r"unknown split sizes \['n_tset'\]"):
        rolling_splits(DATES, "2019-01-01", n_windows=1, n_tset=5)
    with pytest.raises(DataError, match="n_windows must be >= 1"):
        rolling_splits(DATES, "2019-01-01", n_windows=0)


def test_split_window_cuts_the_panel_around_one_split():
    from nnafc.data import split_window
    from nnafc.simulate import simulate_market

    panel = simulate_market(n_stocks=20, n_days=600, seed=1)
    split = make_split(panel.dates, panel.dates[200])
    sub, local = split_window(panel, split, lookback=50, horizon=5)
    assert len(sub.dates) == 50 + 370 + 5
    for part in ("train", "valid", "test"):
        assert (sub.dates[getattr(local, part)] == panel.dates[getattr(split, part)]).all()
    np.testing.assert_array_equal(sub["close"][local.test], panel["close"][split.test])
    edge = make_split(panel.dates, panel.dates[10])
    sub, local = split_window(panel, edge, lookback=50)
    assert local.train.start == 10 and sub.dates[0] == panel.dates[0]
