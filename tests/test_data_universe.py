"""Point-in-time universes: eligibility, CSI 300 membership, top-N liquidity, no look-ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc.data import DataError, eligible, load_panel
from nnafc.data.universe import membership_mask, parse_universe, read_memberships, top_liquidity

CSI = "csi300_2010_2020.parquet"


def test_eligible_known_answer() -> None:
    traded = np.array([[1, 0], [1, 1], [0, 1], [1, 1], [1, 0]], dtype=bool)  # (T=5, N=2)
    expected = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [1, 0]], dtype=bool)
    assert np.array_equal(eligible(traded, min_history=2), expected)
    assert np.array_equal(eligible(traded, min_history=0), traded)
    # 3 traded days before the panel start: eligible whenever traded
    assert np.array_equal(eligible(traded, 4, prior=np.array([3, 0])), traded & np.array([True, False]))


def test_eligible_matches_naive_count() -> None:
    traded = np.random.default_rng(0).random((200, 30)) < 0.8
    naive = np.array([[traded[t, n] and traded[: t + 1, n].sum() >= 60 for n in range(30)]
                      for t in range(200)])
    assert np.array_equal(eligible(traded, 60), naive)


def test_parse_universe() -> None:
    assert parse_universe("top1000") == ("top", 1000)
    assert parse_universe("csi300") == ("csi300", None)
    for bad in ("top0", "top", "TOP10", "csi500", "top-5"):
        with pytest.raises(DataError, match="unknown universe"):
            parse_universe(bad)


def test_membership_mask_known_answer(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("sh600000\t2020-01-07\t2020-01-08\nSZ000001\t2020-01-01\t2020-01-06\n"
                                    "SZ000001\t2020-01-09\t2020-12-31\nSH999999\t2020-01-01\t2020-12-31\n")
    dates = pd.bdate_range("2020-01-06", periods=5)  # Mon 6 .. Fri 10
    mask = membership_mask(read_memberships(tmp_path / "m.txt"), dates, pd.Index(["SH600000", "SZ000001"]))
    expected = np.array([[0, 1], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    assert np.array_equal(mask, expected)
    (tmp_path / "bad.txt").write_text("SH600000\t2020-01-07\n")
    with pytest.raises(DataError, match="3 columns"):
        read_memberships(tmp_path / "bad.txt")


def test_top_liquidity_known_answer() -> None:
    close = np.ones((3, 4), dtype=np.float32)
    volume = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [9, 2, np.nan, 4]], dtype=np.float32)
    allowed = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=bool)
    top = top_liquidity(close, volume, allowed, n=2, window=2)
    # day 0: stock 3 not allowed -> 2, 1; day 1: sums 2,4,6,8 -> 3, 2; day 2: 10,4,3,8 -> 0, 3
    expected = np.array([[0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1]], dtype=bool)
    assert np.array_equal(top, expected)


@pytest.fixture(scope="module")
def csi300(data_dir: Path):
    return load_panel(data_dir / CSI, start="2018-01-01", end="2019-12-31", universe="csi300")


def test_csi300_universe_on_real_data(csi300, data_dir: Path) -> None:
    spells = pd.read_csv(data_dir / "instruments_csi300.txt", sep="\t", header=None,
                         names=["code", "start", "end"], parse_dates=["start", "end"])
    counts = csi300.in_universe.sum(axis=1)
    assert counts.max() <= 300 and counts.min() > 200
    for t in (0, 123, len(csi300.dates) - 1):
        day = csi300.dates[t]
        members = set(spells.loc[(spells.start <= day) & (spells.end >= day), "code"])
        got = set(csi300.instruments[csi300.in_universe[t]])
        assert got <= members
        history = np.cumsum(csi300.traded, axis=0)[t]  # within-panel lower bound of the history
        naive = {c for c in members if c in csi300.instruments
                 and csi300.traded[t, csi300.instruments.get_loc(c)]
                 and history[csi300.instruments.get_loc(c)] >= 60}
        assert naive <= got


@pytest.mark.parametrize("universe", ["all", "top50", "csi300"])
def test_masks_are_point_in_time(tmp_path: Path, data_dir: Path, universe: str) -> None:
    """Corrupting every value after a cut-off day (and adding a stock that only trades later)
    changes no mask value on or before it."""
    rows = pd.read_parquet(data_dir / CSI, filters=[("datetime", ">=", pd.Timestamp("2017-06-01")),
                                                    ("datetime", "<=", pd.Timestamp("2018-06-30"))])
    rows["instrument"] = rows["instrument"].astype(str)
    cut = pd.Timestamp("2018-01-31")
    after = rows["datetime"] > cut
    noisy = rows.copy()
    rng = np.random.default_rng(1)
    noisy.loc[after, "volume"] = rng.permutation(noisy.loc[after, "volume"].to_numpy()) * 50
    noisy.loc[after, ["open", "high", "low", "close"]] *= 3.0
    noisy = noisy[~(after & (rng.random(len(noisy)) < 0.2))]  # suspensions that never happened
    spells = (data_dir / "instruments_csi300.txt").read_bytes()
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "instruments_csi300.txt").write_bytes(spells)
    rows.to_parquet(tmp_path / "a" / "x.parquet")
    noisy.to_parquet(tmp_path / "b" / "x.parquet")
    a = load_panel(tmp_path / "a" / "x.parquet", universe=universe, min_history=20)
    b = load_panel(tmp_path / "b" / "x.parquet", universe=universe, min_history=20)
    t = a.dates.searchsorted(cut, side="right")
    # a csi300 / top-N panel keeps the stocks ever in its universe: compare those both hold, and
    # check that every stock in either universe up to the cut is held by both
    for p, q in ((a, b), (b, a)):
        assert set(p.instruments[p.in_universe[:t].any(axis=0)]) <= set(q.instruments)
    common = a.instruments.intersection(b.instruments)
    ca, cols = a.instruments.get_indexer(common), b.instruments.get_indexer(common)
    assert not np.array_equal(a.in_universe[t:, ca], b.in_universe[t:, cols])  # the corruption bites
    assert np.array_equal(a.in_universe[:t, ca], b.in_universe[:t, cols])
    assert np.array_equal(a.traded[:t, ca], b.traded[:t, cols])
