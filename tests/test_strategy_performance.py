"""Performance statistics against empyrical and hand formulas; index returns; table; bootstrap; plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnafc.data import DataError
from nnafc.strategy import (
    annual_return,
    backtest,
    bootstrap_sharpe,
    cost_sensitivity,
    excess_returns,
    load_index_returns,
    max_drawdown,
    performance_table,
    sharpe_ratio,
)

ep = pytest.importorskip("empyrical")


@pytest.fixture
def daily():
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2019-01-02", periods=300)
    port = pd.Series(rng.normal(8e-4, 0.012, 300), index=dates)
    index = pd.Series(0.7 * port.to_numpy() + rng.normal(0, 0.006, 300), index=dates)
    return port, index


def test_statistics_match_empyrical(daily):
    port, index = daily
    for r in (port, index, port - index):
        assert annual_return(r) == pytest.approx(ep.annual_return(r), rel=1e-12)
        assert sharpe_ratio(r) == pytest.approx(ep.sharpe_ratio(r), rel=1e-12)
        assert max_drawdown(r) == pytest.approx(-ep.max_drawdown(r), rel=1e-12)
    np.testing.assert_allclose(excess_returns(port, index), port - index)


def test_statistics_by_hand():
    r = np.array([0.10, -0.50, 0.20, 0.0])
    assert max_drawdown(r) == pytest.approx(0.5)  # 1.1 -> 0.55
    assert max_drawdown([-0.1]) == pytest.approx(0.1)  # from the starting value 1
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert annual_return([0.01] * 252) == pytest.approx(1.01**252 - 1)
    x = np.array([0.01, -0.02, 0.03])
    assert sharpe_ratio(x) == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(252))
    assert np.isnan(sharpe_ratio([0.01, 0.01]))  # zero volatility


def test_bootstrap_sharpe_interval(daily):
    port, _ = daily
    point, low, high = bootstrap_sharpe(port, n_boot=500, block=10, seed=1)
    assert point == pytest.approx(sharpe_ratio(port))
    assert low < point < high and high - low > 1.0  # 300 days cannot pin a Sharpe down
    assert bootstrap_sharpe(port, n_boot=500, block=10, seed=1) == (point, low, high)  # seeded
    # a single block spanning the whole series resamples it unchanged: a zero-width interval
    _, lo1, hi1 = bootstrap_sharpe(port, n_boot=20, block=len(port))
    assert lo1 == pytest.approx(point) and hi1 == pytest.approx(point)
    # i.i.d. returns with true Sharpe 0.1 / 1 * sqrt(252) = 1.587: the 95 % interval covers it
    iid = np.random.default_rng(5).normal(0.001, 0.01, 2000)
    _, lo2, hi2 = bootstrap_sharpe(iid, n_boot=1000, block=5)
    assert lo2 < 1.587 < hi2
    with pytest.raises(ValueError):
        bootstrap_sharpe(port, block=0)


def _toy_results():
    from test_strategy_portfolio import make_panel, no_limits

    rng = np.random.default_rng(0)
    close = 10 * np.cumprod(1 + rng.normal(5e-4, 0.02, (60, 10)), axis=0)
    panel = make_panel(close)
    scores = rng.normal(size=panel.shape)
    return panel, scores, no_limits(panel)


def test_performance_table_and_cost_sensitivity():
    panel, scores, limits = _toy_results()
    days = slice(1, 60)
    a = backtest(scores, panel, days, top_k=3, **limits)
    b = backtest(-scores, panel, days, top_k=3, **limits)
    rng = np.random.default_rng(1)
    zz = pd.Series(rng.normal(0, 0.01, 60), index=panel.dates, name="ZZ500")
    hs = pd.Series(rng.normal(0, 0.01, 60), index=panel.dates, name="HS300")
    table = performance_table({"A": a, "B": b}, {"ZZ500": zz, "HS300": hs})
    assert list(table.index) == ["ZZ500", "HS300", "A", "B"]
    ex = a.returns - zz.loc[a.dates]
    assert table.loc["A", "annual_excess"] == pytest.approx(ep.annual_return(ex))
    assert table.loc["A", "excess_max_drawdown"] == pytest.approx(-ep.max_drawdown(ex))
    assert table.loc["A", "excess_sharpe"] == pytest.approx(ep.sharpe_ratio(ex))
    assert table.loc["HS300", "sharpe"] == pytest.approx(ep.sharpe_ratio(hs.loc[a.dates]))
    assert np.isnan(table.loc["ZZ500", "annual_excess"])
    assert table.loc["A", "avg_holdings"] == pytest.approx(3.0)
    assert table.loc["A", "total_return"] == pytest.approx(a.nav.iloc[-1] - 1)  # Table 5's period return
    assert table.loc["A", "turnover"] == pytest.approx(a.turnover.mean() * 252)
    with pytest.raises(ValueError, match="benchmark"):
        performance_table({"A": a}, {"ZZ500": zz}, benchmark="CSI1000")
    with pytest.raises(DataError):
        performance_table({"A": a}, zz.iloc[5:])

    costs = cost_sensitivity(a, panel, zz, **limits)
    assert list(costs.index) == [0.0, 0.0015, 0.003]
    assert costs["costs"].iloc[0] == 0.0
    assert costs["costs"].is_monotonic_increasing and costs["annual_return"].is_monotonic_decreasing
    np.testing.assert_allclose(costs.loc[0.003, "annual_return"], table.loc["A", "annual_return"])
    same = a.rerun(panel, **limits)
    np.testing.assert_array_equal(same.weights, a.weights)
    np.testing.assert_array_equal(same.returns, a.returns)
    with pytest.raises(ValueError, match="unknown"):
        a.rerun(panel, cost=0.0)


def test_load_index_returns_real(data_dir):
    path = data_dir / "indices_2010_2020.parquet"
    dates = pd.DatetimeIndex(["2016-02-01", "2016-02-02", "2016-03-31"])
    zz = load_index_returns(path, "ZZ500", dates)
    raw = pd.read_parquet(path)
    close = raw[raw["instrument"] == "SH000905"].set_index("datetime")["close"].astype(float)
    expected = close.pct_change().loc[dates].to_numpy()
    np.testing.assert_allclose(zz.to_numpy(), expected, rtol=1e-12)
    assert zz.name == "SH000905"
    assert len(load_index_returns(path, "SH000300")) == 2673
    with pytest.raises(DataError, match="not found"):
        load_index_returns(path, "SH999999")
    with pytest.raises(DataError, match="no return"):
        load_index_returns(path, "ZZ500", pd.DatetimeIndex(["2016-02-06"]))  # a Saturday


def test_plot_cumulative_excess():
    import matplotlib

    matplotlib.use("Agg")
    from nnafc.strategy.plots import plot_cumulative_excess

    panel, scores, limits = _toy_results()
    res = {"A": backtest(scores, panel, slice(1, 60), top_k=3, **limits),
           "B": backtest(-scores, panel, slice(1, 60), top_k=3, **limits)}
    zz = pd.Series(0.001, index=panel.dates, name="ZZ500")
    ax = plot_cumulative_excess(res, zz)
    assert [line.get_label() for line in ax.get_lines()[:2]] == ["A", "B"]
    expected = 100 * ((1 + res["A"].returns - 0.001).prod() - 1)
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(expected)
    with pytest.raises(ValueError, match="index_returns"):
        plot_cumulative_excess(res)
    matplotlib.pyplot.close("all")
