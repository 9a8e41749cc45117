"""The simulated market: deterministic, internally consistent, with the stylised facts and the
planted signals its docstring promises (measured with pandas / scipy, and with nnafc.metrics.rank_ic
checked against scipy.stats.spearmanr)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnafc.data.panel import DataError
from nnafc.metrics import rank_ic
from nnafc.simulate import TRUTH, planted_factors, simulate_market


@pytest.fixture(scope="module")
def market():
    return simulate_market()  # the default market the book runs on without data


def daily_returns(panel) -> np.ndarray:
    close = panel["close"].astype(np.float64)
    return np.log(close[1:] / close[:-1])  # (T-1, N), NaN across missing rows


def mean_rank_ic(factor: np.ndarray, forward: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean daily rank IC (nnafc.metrics.rank_ic) and its t-stat over non-overlapping 5-day steps."""
    ics = rank_ic(factor, forward, mask)
    ics = ics[np.isfinite(ics)]
    return float(ics.mean()), float(ics.mean() / ics.std() * np.sqrt(len(ics) / 5))


def forward_5d(panel) -> np.ndarray:
    close = pd.DataFrame(panel["close"].astype(np.float64))
    return (close.shift(-5) / close - 1.0).to_numpy()


def test_deterministic_for_a_seed():
    a, b = simulate_market(n_stocks=40, n_days=120, seed=3), simulate_market(n_stocks=40, n_days=120, seed=3)
    for name in a.fields:
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(a.in_universe, b.in_universe)
    c = simulate_market(n_stocks=40, n_days=120, seed=4)
    assert not np.allclose(np.nan_to_num(a["close"]), np.nan_to_num(c["close"]))


def test_panel_contract(market):
    assert market.simulated and market.universe == "all" and market.shape == (750, 300)
    assert market.dates[0] == pd.Timestamp("2015-01-05") and (market.dates.day_of_week < 5).all()
    assert set(market.fields) == {"open", "high", "low", "close", "volume", "factor"}
    assert all(v.dtype == np.float32 for v in market.fields.values())
    np.testing.assert_array_equal(market.traded, np.isfinite(market["close"]))
    assert (market["factor"][market.traded] == 1).all() and (market["volume"][market.traded] >= 100).all()
    assert set(market.meta["truth"]) == set(TRUTH)
    assert all(v["sign"] == 1 and v["formula"] for v in market.meta["truth"].values())


def test_ohlc_consistent_and_within_price_limits(market):
    o, h, lo, c = (market[k] for k in ("open", "high", "low", "close"))
    ok = market.traded
    assert (lo[ok] > 0).all()
    assert (h[ok] >= np.maximum(o, c)[ok]).all() and (lo[ok] <= np.minimum(o, c)[ok]).all()
    assert (h[ok] > lo[ok]).mean() > 0.99  # a real range almost every day
    prev = pd.DataFrame(np.where(ok, c, np.nan)).ffill().shift(1).to_numpy()  # last traded close
    for price in (o, h, lo, c):
        move = (price / prev - 1)[ok & np.isfinite(prev)]
        assert np.abs(move).max() <= 0.1 + 1e-5
    move = (c / prev - 1)[ok & np.isfinite(prev)]
    assert 0 < (np.abs(move) > 0.0999).mean() < 0.01  # limits bind, rarely


def test_listings_and_suspensions(market):
    exists = market.traded
    first = exists.argmax(axis=0)
    last = len(exists) - 1 - exists[::-1].argmax(axis=0)
    assert 0.1 < (first > 0).mean() < 0.3  # listings during the period
    assert 0 < (last < len(exists) - 1).mean() < 0.1  # delistings
    span = (np.arange(len(exists))[:, None] >= first) & (np.arange(len(exists))[:, None] <= last)
    missing = (span & ~exists).sum() / span.sum()
    assert 0.005 < missing < 0.06  # suspensions inside the listed span
    assert (market.in_universe <= market.traded).all()
    late = int(np.flatnonzero(first > 100)[0])  # a stock listed well after the start
    days_in = np.flatnonzero(market.in_universe[:, late])
    assert days_in[0] == np.flatnonzero(exists[:, late])[59]  # enters on its 60th traded day


def test_fat_tails_and_volatility_clustering(market):
    r = daily_returns(market)
    kurt = [stats.kurtosis(x[np.isfinite(x)]) for x in r.T if np.isfinite(x).sum() > 200]
    assert np.median(kurt) > 1
    acf = pd.DataFrame(r).apply(lambda s: s.autocorr(1))
    acf_abs = pd.DataFrame(np.abs(r)).apply(lambda s: s.autocorr(1))
    assert acf_abs.mean() > 0.05 and (acf_abs > 0).mean() > 0.8
    assert abs(acf.mean()) < 0.04


def test_market_factor_and_volume(market):
    r = daily_returns(market)
    corr = pd.DataFrame(r).corr(min_periods=200).to_numpy()
    assert np.nanmean(corr[np.triu_indices_from(corr, 1)]) > 0.15
    logv = np.log(market["volume"].astype(np.float64))
    assert pd.DataFrame(logv).apply(lambda s: s.autocorr(1)).mean() > 0.5
    per_stock = [pd.Series(logv[1:, i]).corr(pd.Series(np.abs(r[:, i]))) for i in range(r.shape[1])]
    assert np.nanmean(per_stock) > 0.15  # busy days are big-move days


def test_planted_signals_predict_and_noise_does_not(market):
    close = pd.DataFrame(market["close"].astype(np.float64))
    volume = pd.DataFrame(market["volume"].astype(np.float64))
    ours = {  # TRUTH's formulas, written out independently of planted_factors
        "reversal_5d": -(close.pct_change(5, fill_method=None)),
        "abnormal_volume": -np.log(volume / volume.rolling(20).mean()),
        "ma20_distance_u": (close / close.rolling(20).mean() - 1).abs(),
    }
    fwd = forward_5d(market)
    for name, values in planted_factors(market).items():
        np.testing.assert_allclose(values, ours[name].to_numpy(), rtol=1e-9, equal_nan=True)
        for t in (100, 400, 700):  # the IC used here is scipy's Spearman correlation
            ok = market.in_universe[t] & np.isfinite(values[t]) & np.isfinite(fwd[t])
            expected = stats.spearmanr(values[t, ok], fwd[t, ok]).statistic
            day = slice(t, t + 1)
            assert rank_ic(values[day], fwd[day], market.in_universe[day])[0] == pytest.approx(expected)
        ic, t = mean_rank_ic(values, fwd, market.in_universe)
        assert 0.03 < ic < 0.15 and t > 4, (name, ic, t)
    noise = np.random.default_rng(7).standard_normal(market.shape)
    ic, t = mean_rank_ic(noise, fwd, market.in_universe)
    assert abs(ic) < 0.01 and abs(t) < 3
    # a linear function of the U-shaped signal's input carries no U-shape
    u_linear = (close / close.rolling(20).mean() - 1).to_numpy()
    assert mean_rank_ic(u_linear, fwd, market.in_universe)[0] < 0  # only the reversal's sign


def test_signals_come_from_the_planting():
    off = simulate_market(n_stocks=200, n_days=400, seed=1,
                          strength={"reversal_5d": 0, "abnormal_volume": 0, "ma20_distance_u": 0})
    fwd = forward_5d(off)
    for name, values in planted_factors(off).items():
        ic, _ = mean_rank_ic(values, fwd, off.in_universe)
        assert abs(ic) < 0.02, (name, ic)


def test_bad_arguments():
    with pytest.raises(DataError, match="unknown planted signal"):
        simulate_market(n_stocks=10, n_days=30, strength={"momentum": 0.1})
    with pytest.raises(DataError, match="listing_share"):
        simulate_market(n_stocks=10, n_days=30, listing_share=1.5)
    with pytest.raises(DataError, match="at least 2"):
        simulate_market(n_stocks=1)
