"""Price limits: exchange rules on constructed prices, and plausibility on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnafc.data import DataError, Panel, load_panel
from nnafc.data.tradability import hits_limit_down, hits_limit_up, limit_prices, price_limit_rate


def _panel(raw_close: list[list[float]], factor: list[list[float]] | None = None,
           codes: tuple[str, ...] = ("SH600000",), start: str = "2020-08-19") -> Panel:
    """A panel from raw closes (NaN = no row); adjusted = raw x factor, as in qlib."""
    raw = np.array(raw_close, dtype=np.float64)  # (T, N)
    fac = np.ones_like(raw) if factor is None else np.array(factor, dtype=np.float64)
    adj = (raw * fac).astype(np.float32)
    vol = np.where(np.isnan(raw), np.nan, 100.0).astype(np.float32)
    fields = {f: adj for f in ("open", "high", "low", "close")}
    fields |= {"volume": vol, "factor": np.where(np.isnan(raw), np.nan, fac).astype(np.float32)}
    traded = ~np.isnan(raw)
    return Panel(dates=pd.bdate_range(start, periods=raw.shape[0]), instruments=pd.Index(codes),
                 fields=fields, traded=traded, in_universe=traded)


def test_rates_by_board_and_date() -> None:
    dates = pd.DatetimeIndex(["2019-08-01", "2020-08-21", "2020-08-24"])
    rate = price_limit_rate(["SH600000", "sz300750", "SH688981", "SZ000001", "SZ002594"], dates)
    expected = [[0.1, 0.1, 0.2, 0.1, 0.1], [0.1, 0.1, 0.2, 0.1, 0.1], [0.1, 0.2, 0.2, 0.1, 0.1]]
    np.testing.assert_array_equal(rate, expected)


def test_limit_prices_round_half_up() -> None:
    # 4.45 * 1.1 = 4.895 -> 4.90; 4.45 * 0.9 = 4.005 -> 4.01 (exchange rounding, half up)
    up, down = limit_prices(_panel([[4.45], [4.90], [4.41]]))
    assert np.isnan(up[0, 0]) and np.isnan(down[0, 0])  # no previous close in the panel
    assert up[1, 0] == pytest.approx(4.90) and down[1, 0] == pytest.approx(4.01)
    assert up[2, 0] == pytest.approx(5.39) and down[2, 0] == pytest.approx(4.41)


def test_hits_known_answer() -> None:
    # day 1: +10 % limit-up; day 2: suspended; day 3: -10 % from day 1's close; day 4: +9.9 %
    p = _panel([[10.00], [11.00], [np.nan], [9.90], [10.88]])
    assert hits_limit_up(p).ravel().tolist() == [False, True, False, False, False]
    assert hits_limit_down(p).ravel().tolist() == [False, False, False, True, False]


def test_chinext_widens_on_reform_day() -> None:
    # 2020-08-21 (Fri) +10 % is the ChiNext limit; 2020-08-24 (Mon) +10 % is not, +20 % is
    p = _panel([[10.0, 10.0, 10.0], [11.0, 11.0, 11.0], [12.1, 13.2, 13.2]],
               codes=("SZ300001", "SZ300002", "SH688001"), start="2020-08-20")
    assert hits_limit_up(p)[1].tolist() == [True, True, False]
    assert hits_limit_up(p)[2].tolist() == [False, True, True]


def test_ex_rights_day_uses_adjusted_reference() -> None:
    # 2-for-1 split on day 1: raw halves, factor doubles; raw 5.50 is +10 % on the 5.00 reference
    p = _panel([[10.0], [5.5], [5.0]], factor=[[1.0], [2.0], [2.0]])
    up, down = limit_prices(p)
    assert up[1, 0] == pytest.approx(5.50) and down[1, 0] == pytest.approx(4.50)
    assert hits_limit_up(p)[1, 0] and not hits_limit_down(p)[2, 0]


def test_bad_field() -> None:
    with pytest.raises(DataError, match="not 'volume'"):
        hits_limit_up(_panel([[1.0], [1.1]]), field="volume")


@pytest.fixture(scope="module")
def crash_years(data_dir: Path) -> Panel:
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2014-12-01", end="2017-12-31")


def test_real_data_plausible(crash_years: Panel) -> None:
    p = crash_years
    up, down = hits_limit_up(p), hits_limit_down(p)
    year = np.asarray(p.dates.year)
    share = {y: up[year == y].sum() / p.traded[year == y].sum() for y in (2015, 2017)}
    assert share[2015] > 3 * share[2017] > 0  # the 2015 bubble and crash vs a calm year
    # 2015-08-24 ("Black Monday"): most of the market closed limit-down, almost none limit-up
    t = p.day_index("2015-08-24")
    assert down[t].sum() > 0.7 * p.traded[t].sum() and up[t].sum() < 0.05 * p.traded[t].sum()
    # a close within the band: outside it only in rare data quirks
    raw = p.raw("close").astype(np.float64)
    hi, lo = limit_prices(p)
    ok = p.traded & np.isfinite(hi)
    assert ((raw > hi + 0.005) | (raw < lo - 0.005))[ok].mean() < 1e-3
