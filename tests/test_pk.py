"""nnafc.pk: Table 1 indicators and RSI/ROC/FORCE against independent pandas code on real data,
no look-ahead for every factor and signal, coverage, and the API."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from nnafc import pk
from nnafc.data import load_panel


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These many small ops run ~10x slower with 2 threads on shared, busy cores; restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def panel(data_dir):
    """A year and a half of the CSI 300 (any-time members) panel: 2016-06 .. 2017-12, ~390 x 610."""
    return load_panel(data_dir / "csi300_2010_2020.parquet", start="2016-06-01", end="2017-12-31")


@pytest.fixture(scope="module")
def frames(panel) -> dict[str, pd.DataFrame]:
    """The panel's fields as float64 DataFrames (dates x instruments): the independent side."""
    return {k: pd.DataFrame(np.asarray(v, dtype=np.float64)) for k, v in panel.fields.items()}


@pytest.fixture(scope="module")
def values(panel) -> dict[str, np.ndarray]:
    return pk.compute_all(panel)


# --------------------------------------------------------------------------- pandas references


def _ema(x: pd.DataFrame, n: int) -> pd.DataFrame:
    """Table 1's EMA: y = 2/(n+1) x + (n-1)/(n+1) y_prev, skipping gaps, warm-up n, NaN on gap days."""
    return x.ewm(span=n, adjust=False, ignore_na=True, min_periods=n).mean().where(x.notna())


def _finite(x: pd.DataFrame) -> pd.DataFrame:
    return x.replace([np.inf, -np.inf], np.nan)


def _div(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """ops.div's documented protection: NaN where |b| < 1e-12 (e.g. a volume EMA decayed by a halt)."""
    return (a / b).where(b.abs() >= 1e-12)


def _reference(d: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    c, h, lo, v = d["close"], d["high"], d["low"], d["volume"]
    ref: dict[str, pd.DataFrame] = {}
    for n in (5, 10, 20, 60):
        ref[f"MA{n}"] = c.rolling(n).mean() / c
        ref[f"EMA{n}"] = _ema(c, n) / c
    for name, fast, slow, sig in (("MACD", 12, 26, 9), ("MACD5_35", 5, 35, 5)):
        dif = _ema(c, fast) - _ema(c, slow)
        ref[name] = dif / c
        if name == "MACD":
            ref["MACD_HIST"] = (dif - _ema(dif, sig)) / c
    # PVT: Table 1's recursion itself, then its n-day increment per unit of n-day volume
    flow = v * (c - c.shift(1)) / c.shift(1)
    pvt = flow.fillna(0).cumsum()
    for n in (10, 20):
        gap = flow.isna().astype(float).rolling(n).sum() != 0
        ref[f"PVT{n}"] = _finite((pvt - pvt.shift(n)) / v.rolling(n).sum()).mask(gap)
    # TOP10 on unadjusted close; DC with Table 1's High x AdjClose / Close written out literally
    raw_close, raw_high, raw_low = c / d["factor"], h / d["factor"], lo / d["factor"]
    ma10 = raw_close.rolling(10).mean()
    ref["TOP10"] = ma10.div(ma10.quantile(0.9, axis=1), axis=0) - 1
    for n in (10, 20):
        big_h = (raw_high * c / raw_close).rolling(n).mean()
        big_l = (raw_low * c / raw_close).rolling(n).mean()
        ref[f"DC{n}"] = c / ((big_h + big_l) / 2)
        ref[f"BOLL{n}"] = (c.rolling(n).mean() - c.rolling(n).std()) / c
    dc = c.diff()
    up, down = dc.clip(lower=0), (-dc).clip(lower=0)
    rsi = {}
    for n in (6, 7, 12, 21, 24):
        su, sd = up.rolling(n).sum(), down.rolling(n).sum()
        rsi[n] = _finite(100 * su / (su + sd))
    for n in (6, 12, 24):
        ref[f"RSI{n}"] = rsi[n]
    ref["RSI6_12"], ref["RSI7_21"] = rsi[6] - rsi[12], rsi[7] - rsi[21]
    for n in (6, 12, 20):
        ref[f"ROC{n}"] = 100 * (c / c.shift(n) - 1)
    force = dc * v
    for n in (2, 13):
        ref[f"FORCE{n}"] = _div(_ema(force, n), _ema(v.where(force.notna()), n) * c)
    return ref


REFERENCED = [
    *(f"MA{n}" for n in (5, 10, 20, 60)), *(f"EMA{n}" for n in (5, 10, 20, 60)),
    "MACD", "MACD5_35", "MACD_HIST", "PVT10", "PVT20", "TOP10", "DC10", "DC20", "BOLL10", "BOLL20",
    "RSI6", "RSI12", "RSI24", "RSI6_12", "RSI7_21", "ROC6", "ROC12", "ROC20", "FORCE2", "FORCE13",
]  # fmt: skip


@pytest.fixture(scope="module")
def reference(frames):
    return _reference(frames)


def test_reference_covers_table1_and_rsi_roc_force():
    assert set(pk.names(table1_only=True)) <= set(REFERENCED)
    for family in ("RSI", "ROC", "FORCE"):
        assert any(n.startswith(family) for n in REFERENCED)


@pytest.mark.parametrize("name", REFERENCED)
def test_matches_independent_pandas(values, reference, name):
    got, want = values[name], reference[name].to_numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.isfinite(want).mean() > 0.5  # the comparison is not vacuous
    scale = np.nanstd(want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, equal_nan=True)


def _near(a: pd.DataFrame, b: pd.DataFrame, scale: pd.DataFrame) -> np.ndarray:
    """Days where a == b today or yesterday up to rounding: which side wins depends on summation order."""
    near = (a - b).abs() < 1e-6 * scale  # float32 prices: a few ulps
    return (near | near.shift(1, fill_value=False)).to_numpy()


def _cross_events(x: pd.DataFrame, up: pd.DataFrame, down: pd.DataFrame) -> np.ndarray:
    """+1 when x crosses above `up`, -1 when it crosses below `down` (pandas, independently)."""
    buy = (x > up) & (x.shift(1) <= up.shift(1))
    sell = (x < down) & (x.shift(1) >= down.shift(1))
    return np.where(buy, 1, np.where(sell, -1, 0))


def test_signals_match_pandas_rules(panel, frames):
    c = frames["close"]
    ma = c.rolling(10).mean()  # MA10: close crosses above / below MA_10
    want, tie = _cross_events(c, ma, ma), _near(c, ma, c)
    np.testing.assert_array_equal(pk.signal("MA10", panel)[~tie], want[~tie])
    assert tie.mean() < 0.05 and (want != 0).mean() > 0.1  # ties: flat placeholder prices of halts

    mean, std = c.rolling(20).mean(), c.rolling(20).std()  # BOLL20: below MA - std buys, above MA + std sells
    lb, ub = mean - std, mean + std
    want = -_cross_events(c, ub, lb)
    tie = _near(c, lb, c) | _near(c, ub, c)
    np.testing.assert_array_equal(pk.signal("BOLL20", panel)[~tie], want[~tie])
    assert tie.mean() < 0.05 and (want != 0).mean() > 0.05


# --------------------------------------------------------------------------- every factor


def test_library_size_and_pk50():
    assert len(pk.LIBRARY) >= 50 and len(set(pk.names())) == len(pk.names())
    assert len(pk.PK50) == 50 and len(set(pk.PK50)) == 50 and set(pk.PK50) <= set(pk.LIBRARY)
    assert set(pk.names(table1_only=True)) >= {"MA10", "EMA10", "MACD", "PVT20", "TOP10", "DC20", "BOLL20"}
    families = ("MA", "EMA", "MACD", "PVT", "TOP10", "DC", "BOLL", "RSI", "ROC", "FORCE")
    for family in families:
        assert any(n.startswith(family) for n in pk.PK50), family
    assert set(pk.PAPER_TABLE2.values()) <= set(pk.PK50)
    for spec in pk.LIBRARY.values():
        assert spec.formula and spec.rule and spec.window >= 1
        assert spec.formula in spec.__doc__


def test_every_factor_is_finite_on_most_eligible_stock_days(panel, values):
    for name, v in values.items():
        spec = pk.LIBRARY[name]
        eligible = panel.in_universe.copy()
        eligible[: spec.window + 40] = False  # past each definition's history (and EMA warm-ups)
        share = np.isfinite(v[eligible]).mean()
        assert share > 0.9, f"{name}: finite on {share:.1%} of eligible stock-days"


def test_signals_are_buy_sell_hold(panel):
    f = pk.fields(panel)
    for name in pk.names():
        s = pk.signal(name, f)
        assert s.dtype == np.int8 and s.shape == panel.shape
        assert set(np.unique(s)) <= {-1, 0, 1}, name
        assert (s == 1).any() and (s == -1).any(), f"{name} never trades"


def test_no_look_ahead_for_every_factor_and_signal(panel):
    """Rows after t replaced by other prices, volumes and gaps: every value and signal <= t unchanged."""
    small = pk.fields(panel)
    small = {k: v[:, :120].clone() for k, v in small.items()}  # (T, 120): the test's cost is in T
    t_len = small["close"].shape[0]
    base = pk.compute_all(small)
    base_sig = {n: pk.signal(n, small) for n in pk.names()}
    rng = np.random.default_rng(0)
    for t in (130, t_len - 30):
        bad = {k: v.clone() for k, v in small.items()}
        scale = torch.tensor(rng.lognormal(0, 0.3, size=bad["close"][t + 1 :].shape))
        gaps = torch.tensor(rng.random(scale.shape) < 0.05)
        for k in bad:
            tail = bad[k][t + 1 :] * scale
            bad[k][t + 1 :] = torch.where(gaps, torch.full_like(tail, float("nan")), tail)
        out = pk.compute_all(bad)
        for name in pk.names():
            np.testing.assert_array_equal(out[name][: t + 1], base[name][: t + 1], err_msg=name)
            sig = pk.signal(name, bad)
            np.testing.assert_array_equal(sig[: t + 1], base_sig[name][: t + 1], err_msg=name)
        assert any(not np.array_equal(out[n][t + 1 :], base[n][t + 1 :], equal_nan=True) for n in out)


# --------------------------------------------------------------------------- API


def test_factor_and_pk50(panel, values):
    f = pk.factor("RSI6")
    assert f.origin == "pk" and f.name == "RSI6" and f.meta["formula"] == pk.LIBRARY["RSI6"].formula
    np.testing.assert_array_equal(f.values(panel), values["RSI6"])
    assert pickle.loads(pickle.dumps(f)).name == "RSI6"  # runners ship factors to worker processes
    factors = pk.pk50()
    assert len(factors) == 50 and [x.name for x in factors] == list(pk.PK50)
    assert np.array_equal(pk.compute("TOP10", panel), values["TOP10"], equal_nan=True)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match="did you mean.*RSI12"):
        pk.compute("rsi13", None)
    with pytest.raises(ValueError, match="unknown prior-knowledge factor"):
        pk.factor("nonsense_factor_xyz")


def test_without_adjustment_factor_top10_uses_close(panel):
    no_factor = replace(panel, fields={k: v for k, v in panel.fields.items() if k != "factor"})
    v = pk.compute("TOP10", no_factor)
    c = pd.DataFrame(panel["close"].astype(np.float64)).rolling(10).mean()
    want = c.div(c.quantile(0.9, axis=1), axis=0) - 1
    np.testing.assert_allclose(v, want.to_numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)
