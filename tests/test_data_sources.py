"""load_panel: parquet / CSV / qlib readers agree with the raw rows, and bad input fails clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc.data import DataError, load_panel

CSI = "csi300_2010_2020.parquet"


def _frame(n_days: int = 8, codes: tuple[str, ...] = ("SH600000", "SZ000001")) -> pd.DataFrame:
    """A tiny valid long-format frame: one row per (day, code)."""
    dates = pd.bdate_range("2020-01-06", periods=n_days)
    rows = []
    for k, code in enumerate(codes):
        for t, d in enumerate(dates):
            c = 10.0 + k + 0.1 * t
            rows.append((d, code, c - 0.05, c + 0.2, c - 0.2, c, 1000.0 * (t + 1), 1.5))
    return pd.DataFrame(rows, columns=["datetime", "instrument", "open", "high", "low", "close",
                                       "volume", "factor"])


def _write(frame: pd.DataFrame, tmp_path: Path, kind: str = "csv") -> Path:
    path = tmp_path / f"bad.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def csi_rows(data_dir: Path) -> pd.DataFrame:
    """CSI 300 parquet rows in 2016-2017 (independent of load_panel)."""
    rows = pd.read_parquet(data_dir / CSI, filters=[("datetime", ">=", pd.Timestamp("2016-01-01")),
                                                    ("datetime", "<=", pd.Timestamp("2017-12-31"))])
    rows["instrument"] = rows["instrument"].astype(str)
    return rows


@pytest.fixture(scope="module")
def csi_panel(data_dir: Path):
    return load_panel(data_dir / CSI, start="2016-01-01", end="2017-12-31")


def test_parquet_panel_matches_rows(csi_panel, csi_rows, data_dir: Path) -> None:
    p = csi_panel
    assert list(p.dates) == sorted(csi_rows["datetime"].unique())
    assert list(p.instruments) == sorted(csi_rows["instrument"].unique())
    assert all(v.dtype == np.float32 and v.shape == p.shape for v in p.fields.values())
    assert set(p.fields) == {"open", "high", "low", "close", "volume", "factor"}
    assert p.meta["source"] == str(data_dir / CSI)
    t = p.dates.get_indexer(csi_rows["datetime"])
    n = p.instruments.get_indexer(csi_rows["instrument"])
    for f in ("open", "close", "volume", "factor"):
        np.testing.assert_array_equal(p[f][t, n], csi_rows[f].to_numpy(np.float32))
    has_row = np.zeros(p.shape, dtype=bool)
    has_row[t, n] = True
    assert np.array_equal(np.isnan(p["close"]), ~has_row)  # NaN exactly where no row
    traded = np.zeros(p.shape, dtype=bool)
    traded[t, n] = csi_rows["volume"].to_numpy() > 0
    assert np.array_equal(p.traded, traded)
    assert not (p.in_universe & ~p.traded).any()


def test_start_cut_keeps_history(csi_panel, data_dir: Path) -> None:
    """A panel starting later has the same universe as the longer panel sliced: history before
    `start` is counted (min_history) without being returned."""
    late = load_panel(data_dir / CSI, start="2017-03-01", end="2017-12-31", universe="top100")
    full = load_panel(data_dir / CSI, start="2016-01-01", end="2017-12-31", universe="top100")
    i = full.day_index("2017-03-01")
    cols = full.instruments.get_indexer(late.instruments)
    assert (cols >= 0).all() and late.dates[0] == full.dates[i]
    assert np.array_equal(late.in_universe, full.in_universe[i:, cols])
    assert np.array_equal(late["close"], full["close"][i:, cols], equal_nan=True)


def test_qlib_matches_parquet(data_dir: Path) -> None:
    q = load_panel(data_dir / "qlib_cn_sample", end="2020-12-31")
    p = load_panel(data_dir / CSI)
    stocks = [c for c in q.instruments if c in p.instruments]
    assert len(stocks) == 40  # the sample's 40 CSI 300 members (the other 3 are indices)
    qi, pi = q.instruments.get_indexer(stocks), p.instruments.get_indexer(stocks)
    qt = q.dates.get_indexer(p.dates)
    assert (qt >= 0).all()
    for f in ("open", "high", "low", "close", "volume", "factor"):
        a, b = q[f][qt][:, qi], p[f][:, pi]
        np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True, err_msg=f)
    assert np.array_equal(q.traded[qt][:, qi], p.traded[:, pi])


def test_qlib_csi300_universe_uses_its_own_list(data_dir: Path) -> None:
    q = load_panel(data_dir / "qlib_cn_sample", start="2018-01-01", universe="csi300")
    spells = pd.read_csv(data_dir / "qlib_cn_sample" / "instruments" / "csi300.txt", sep="\t",
                         header=None, names=["code", "start", "end"], parse_dates=["start", "end"])
    day = q.dates[100]
    members = set(spells.loc[(spells.start <= day) & (spells.end >= day), "code"])
    got = set(q.instruments[q.in_universe[100]])
    assert got <= members and len(got) > 0
    assert got == {c for c in members if q.traded[100, q.instruments.get_loc(c)]}  # all have history


def test_csv_matches_parquet_and_codes_case_insensitive(tmp_path: Path) -> None:
    frame = _frame()
    lower = frame.assign(instrument=frame["instrument"].str.lower())
    a = load_panel(_write(lower, tmp_path, "csv"), min_history=1)
    b = load_panel(_write(frame, tmp_path, "parquet"), min_history=1)
    assert list(a.instruments) == ["SH600000", "SZ000001"]
    for f in a.fields:
        np.testing.assert_array_equal(a[f], b[f])
    assert a.in_universe.all()


def test_nan_volume_row_is_not_traded(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[3, "volume"] = np.nan
    p = load_panel(_write(frame, tmp_path), min_history=1)
    assert not p.traded[3, 0] and p.traded[2, 0] and np.isfinite(p["close"][3, 0])


def test_end_excludes_later_rows(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[frame.datetime > "2020-01-10", "close"] = -1.0  # invalid, but after `end`
    p = load_panel(_write(frame, tmp_path, "parquet"), end="2020-01-10", min_history=1)
    assert p.dates[-1] == pd.Timestamp("2020-01-10")


def test_fields_subset(tmp_path: Path) -> None:
    p = load_panel(_write(_frame(), tmp_path), fields=["close"], min_history=1)
    assert list(p.fields) == ["close"]
    with pytest.raises(DataError, match="unknown fields"):
        load_panel(_write(_frame(), tmp_path), fields=["vwap"])


def _corrupt(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    frame = frame.copy()
    if how == "missing":
        return frame.drop(columns=["high"])
    if how == "nonpositive":
        frame.loc[2, "close"] = 0.0
    elif how == "nonfinite":
        frame.loc[2, "open"] = np.inf
    elif how == "highlow":
        frame.loc[2, "high"] = frame.loc[2, "low"] - 1
    elif how == "duplicate":
        frame = pd.concat([frame, frame.iloc[[4]]])
    elif how == "date":
        frame["datetime"] = frame["datetime"].astype(str)
        frame.loc[1, "datetime"] = "2020-13-45"
    elif how == "volume":
        frame.loc[2, "volume"] = -5.0
    elif how == "factor":
        frame.loc[2, "factor"] = np.nan
    return frame


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize(("how", "message"), [
    ("missing", r"missing columns \['high'\]"),
    ("nonpositive", "non-positive or non-finite close for SH600000 on 2020-01-08"),
    ("nonfinite", "non-positive or non-finite open"),
    ("highlow", "high < low for SH600000"),
    ("duplicate", r"duplicate rows for \(2020-01-10, SH600000\)"),
    ("date", "unparseable date '2020-13-45'"),
    ("volume", "negative or infinite volume"),
    ("factor", "non-positive or non-finite factor"),
])
def test_bad_rows_raise(tmp_path: Path, kind: str, how: str, message: str) -> None:
    path = _write(_corrupt(_frame(), how), tmp_path, kind)
    with pytest.raises(DataError, match=message):
        load_panel(path)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"start": "2025-01-01"}, r"start 2025-01-01 is after the last date in the data \(2020-01-15\)"),
    ({"end": "2019-01-01"}, r"end 2019-01-01 is before the first date in the data \(2020-01-06\)"),
    ({"start": "2020-01-10", "end": "2020-01-07"}, "start 2020-01-10 is after end 2020-01-07"),
    ({"start": "2020-01-11", "end": "2020-01-12"}, "no trading dates between 2020-01-11 and 2020-01-12"),
    ({"start": "yesterday-ish"}, "start 'yesterday-ish' is not a date"),
    ({"universe": "sp500"}, "unknown universe 'sp500': use 'all', 'csi300' or 'top<N>'"),
    ({"universe": "csi300"}, "universe 'csi300' needs a membership file"),
    ({"min_history": -1}, "min_history must be >= 0"),
])
@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_bad_parameters_raise(tmp_path: Path, kwargs: dict, message: str, kind: str) -> None:
    with pytest.raises(DataError, match=message):
        load_panel(_write(_frame(), tmp_path, kind), **kwargs)


def test_bad_sources_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data source not found"):
        load_panel(tmp_path / "nope.parquet")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(DataError, match="unknown source type 'x.xlsx'"):
        load_panel(tmp_path / "x.xlsx")
    with pytest.raises(DataError, match="not a qlib directory"):
        load_panel(tmp_path)
    (tmp_path / "empty.csv").write_text("datetime,instrument,open,high,low,close,volume\n")
    with pytest.raises(DataError, match="no rows in"):
        load_panel(tmp_path / "empty.csv")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read"):
        load_panel(tmp_path / "junk.parquet")
