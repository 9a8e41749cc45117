"""Stocks, indices and funds on real qlib layouts: universes hold stocks only, indices serve as
benchmarks, data files are found by role (issue 13 §1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc.cli import main
from nnafc.data import DataError, load_panel
from nnafc.data.indices import index_closes, index_returns
from nnafc.data.kinds import count_kinds, instrument_kinds
from nnafc.data.locate import find_role, source_for
from nnafc.download import data_info

DAYS = pd.bdate_range("2020-01-02", periods=80)
# code -> (first calendar index, price level, volume): the indices and funds trade far more
# value than any stock, so a top-N universe that let them in would hold nothing else
CODES = {
    "SH600000": (0, 10.0, 1e6), "SZ000001": (0, 12.0, 2e6), "SZ300750": (0, 50.0, 3e5),
    "SH688001": (0, 30.0, 5e5), "BJ830799": (0, 8.0, 1e5),
    "SH000300": (0, 4000.0, 1e9), "SH000905": (0, 6000.0, 1e9), "SZ399001": (0, 12000.0, 1e9),
    "SH510300": (0, 4.0, 1e9), "SZ159915": (0, 2.5, 1e9), "SH110001": (0, 100.0, 1e8),
}
KINDS = {"stock": 5, "index": 3, "fund": 2, "other": 1}


def build_qlib(root: Path, corrupt: str | None = None) -> dict[str, np.ndarray]:
    """A qlib directory in the genuine format with stocks, indices, funds and a bond; CSI 300
    spells for SH600000 and SZ000001 throughout and SZ300750 from day 60. Returns the closes."""
    (root / "calendars").mkdir(parents=True)
    (root / "calendars" / "day.txt").write_text("\n".join(str(d.date()) for d in DAYS) + "\n")
    (root / "instruments").mkdir()
    (root / "instruments" / "all.txt").write_text(
        "".join(f"{c}\t{DAYS[0].date()}\t{DAYS[-1].date()}\n" for c in CODES))
    (root / "instruments" / "csi300.txt").write_text(
        f"SH600000\t{DAYS[0].date()}\t{DAYS[-1].date()}\nSZ000001\t{DAYS[0].date()}\t{DAYS[-1].date()}\n"
        f"SZ300750\t{DAYS[60].date()}\t{DAYS[-1].date()}\n")
    rng = np.random.default_rng(3)
    closes = {}
    for code, (first, level, volume) in CODES.items():
        close = level * np.exp(np.cumsum(rng.normal(0, 0.01, len(DAYS) - first)))
        feat = root / "features" / code.lower()
        feat.mkdir(parents=True)
        for name, v in {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                        "volume": np.full(len(close), volume), "factor": np.ones(len(close))}.items():
            np.concatenate([[first], v]).astype("<f4").tofile(feat / f"{name}.day.bin")
        closes[code] = close.astype(np.float32).astype(np.float64)
    if corrupt is not None:
        (root / "features" / corrupt.lower() / "close.day.bin").write_bytes(b"")
    return closes


def test_kinds_by_code():
    codes = ["SH600000", "sh601318", "SH688981", "SZ000001", "SZ002594", "SZ300750", "SZ301001",
             "BJ830799", "BJ430047", "SH000300", "SH000905", "SZ399001", "SZ399006", "BJ899050",
             "SH510300", "SH588000", "SZ159915", "SZ161725", "SH110001", "SZ128001", "SH900901",
             "SZ200002", "AAPL"]
    kinds = instrument_kinds(codes)
    assert list(kinds) == ["stock"] * 9 + ["index"] * 5 + ["fund"] * 4 + ["other"] * 5
    assert count_kinds(["600000.SH", "000300.SH"], stocks=r"\d{6}\.S[HZ]") == \
        {"stock": 2, "index": 0, "fund": 0, "other": 0}  # a user's own rule


def test_universes_on_a_qlib_dir_hold_stocks_only(tmp_path):
    build_qlib(tmp_path / "q")
    stocks = sorted(c for c, k in zip(CODES, instrument_kinds(CODES), strict=True) if k == "stock")
    whole = load_panel(tmp_path / "q", universe="all", min_history=5)
    assert list(whole.instruments) == stocks
    top = load_panel(tmp_path / "q", universe="top2", min_history=5)
    day = 40
    held = set(top.instruments[top.in_universe[day]])
    value = {c: whole["close"][day - 19:day + 1, k].mean() * CODES[c][2]
             for k, c in enumerate(whole.instruments)}
    assert held == set(sorted(value, key=value.get)[-2:])  # the two most liquid stocks, no index
    assert set(top.instruments) <= set(stocks) and len(top.instruments) < len(stocks)  # ever in top 2


def test_csi300_on_a_qlib_dir_reads_only_members(tmp_path):
    build_qlib(tmp_path / "q", corrupt="SH688001")  # a non-member's file is broken: never read
    early = load_panel(tmp_path / "q", end=str(DAYS[50].date()), universe="csi300", min_history=5)
    assert list(early.instruments) == ["SH600000", "SZ000001"]  # SZ300750 joins on day 60
    late = load_panel(tmp_path / "q", universe="csi300", min_history=5)
    assert list(late.instruments) == ["SH600000", "SZ000001", "SZ300750"]
    assert not late.in_universe[:60, 2].any() and late.in_universe[60:, 2].all()
    with pytest.raises(DataError, match="sh688001/close.day.bin: empty or corrupt"):
        load_panel(tmp_path / "q", universe="all")


def test_indices_are_read_as_benchmarks_from_the_qlib_dir(tmp_path):
    from nnafc.strategy.benchmarks import benchmarks

    closes = build_qlib(tmp_path / "q")
    got = index_closes(tmp_path / "q", ["SH000905", "SH000300"])
    np.testing.assert_allclose(got["SH000905"].to_numpy(), closes["SH000905"])
    panel = load_panel(tmp_path / "q", start=str(DAYS[5].date()), universe="all", min_history=5)
    bench = benchmarks(panel, str(tmp_path / "q"))
    assert not bench.simulated and "`q`" in bench.source
    want = pd.Series(closes["SH000300"], index=DAYS).pct_change().iloc[5:]
    np.testing.assert_allclose(bench.returns["HS300"].to_numpy(), want.to_numpy(), rtol=1e-6)
    with pytest.raises(DataError, match="index SH000300 has no return on 1 of the dates"):
        index_returns(tmp_path / "q", {"HS300": "SH000300"}, DAYS[:3])  # the first day has no prior close
    with pytest.raises(DataError, match="no index SH000852"):
        index_closes(tmp_path / "q", ["SH000852"])


def test_data_info_counts_kinds(tmp_path, capsys):
    build_qlib(tmp_path / "q")
    assert data_info(tmp_path / "q")["instruments_by_kind"] == KINDS
    assert main(["data", "info", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "5 stocks, 3 indices, 2 funds, 1 others" in out and "stocks:        5 (" in out
    assert main(["data", "info", str(tmp_path / "q"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["instruments"] == 5


def _long(codes: list[str], n: int = 30) -> pd.DataFrame:
    rows = [(d, c, 10.0, 10.5, 9.5, 10.0 + 0.01 * t, 1e5) for c in codes for t, d in enumerate(DAYS[:n])]
    return pd.DataFrame(rows, columns=["datetime", "instrument", "open", "high", "low", "close", "volume"])


def test_other_naming_needs_a_stock_rule(tmp_path):
    _long(["600000.SH", "000001.SZ"]).to_parquet(tmp_path / "ashare.parquet")
    with pytest.raises(DataError, match=r"no instrument code is a stock by the rule .*stocks: PATTERN"):
        load_panel(tmp_path / "ashare.parquet")
    assert load_panel(tmp_path / "ashare.parquet", stocks=r"\d{6}\.S[HZ]", min_history=1).shape == (30, 2)
    (tmp_path / "nnafc-data.yaml").write_text('stocks: "[0-9]{6}[.]S[HZ]"\n')
    assert load_panel(source_for(tmp_path, "all"), min_history=1).shape == (30, 2)


def test_files_are_found_by_role_not_by_year(tmp_path):
    _long(["SH600000", "SH000300"]).to_parquet(tmp_path / "ashare_2012_2026.parquet")
    _long(["SH000905", "SH000300"]).to_parquet(tmp_path / "indices_2012_2026.parquet")
    assert source_for(tmp_path, "csi300") == tmp_path / "ashare_2012_2026.parquet"  # no csi300 file
    assert list(load_panel(source_for(tmp_path, "all"), min_history=1).instruments) == ["SH600000"]
    assert list(index_closes(tmp_path / "ashare_2012_2026.parquet", ["SH000905"]).columns) == ["SH000905"]
    _long(["SH600000"]).to_parquet(tmp_path / "ashare_2010_2020.parquet")
    with pytest.raises(DataError, match="several all files .*: ashare_2010_2020.parquet, ashare_2012_2026"):
        source_for(tmp_path, "all")
    (tmp_path / "nnafc-data.yaml").write_text("all: ashare_2010_2020.parquet\nindices: null\n")
    assert source_for(tmp_path, "all") == tmp_path / "ashare_2010_2020.parquet"
    assert index_closes(tmp_path, ["SH000905"]) is None  # the manifest says: no indices
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "prices.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"no all-A-share data under .*found prices.parquet"):
        source_for(empty, "all")


@pytest.mark.data
def test_shared_layout_is_found_by_role(data_dir):
    assert source_for(data_dir, "all").name == "ashare_2010_2020.parquet"
    assert source_for(data_dir, "csi300").name == "csi300_2010_2020.parquet"
    assert find_role(data_dir, "indices").name == "indices_2010_2020.parquet"
    assert find_role(data_dir, "memberships").name == "instruments_csi300.txt"


@pytest.mark.data
def test_shared_qlib_sample_universes_hold_no_index(data_dir):
    sample = data_dir / "qlib_cn_sample"
    indices = {"SH000001", "SH000300", "SH000905"}
    for universe in ("all", "top10"):
        panel = load_panel(sample, start="2018-01-01", end="2018-12-31", universe=universe)
        assert not indices & set(panel.instruments)
        assert panel.in_universe.any(axis=1).all()
    top = load_panel(sample, start="2018-01-01", end="2018-12-31", universe="top10")
    assert (top.in_universe.sum(axis=1) == 10).all()
    csi = load_panel(sample, start="2018-01-01", end="2018-12-31", universe="csi300")
    assert csi.in_universe.any(axis=0).all() and len(csi.instruments) < 40  # members in 2018 only
    # the sample's own index closes give the same benchmark returns as the shared indices file
    a = index_returns(sample, {"ZZ500": "SH000905", "HS300": "SH000300"}, csi.dates)
    b = index_returns(data_dir, {"ZZ500": "SH000905", "HS300": "SH000300"}, csi.dates)
    assert a.attrs["source"] != b.attrs["source"]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)


def test_table5_without_windows_has_facts():
    from nnafc.evaluate import table5
    from nnafc.simulate import simulate_market
    from nnafc.strategy.benchmarks import benchmarks

    panel = simulate_market(n_days=200, n_stocks=30, seed=0)
    t5 = table5.table5(panel, {}, lambda split: {}, benchmarks(panel), cfg=None)
    facts = table5.table5_facts(t5)
    assert facts.empty and facts.attrs["schemes_not_run"] == list(table5.TABLE5_SCHEMES)  # nothing ran
    assert len(table5.table5_vs_paper(t5)) == 4  # the paper's four windows, ours empty
