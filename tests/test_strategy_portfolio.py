"""Backtest known answers: next-day execution, exact costs, price limits, weights, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnafc.data import Panel
from nnafc.strategy import BacktestResult, backtest, signal_days
from nnafc.strategy.portfolio import select_dropout


def make_panel(close, open_=None, traded=None, in_universe=None) -> Panel:
    close = np.asarray(close, dtype=np.float32)  # (T, N)
    t, n = close.shape
    open_ = close.copy() if open_ is None else np.asarray(open_, dtype=np.float32)
    traded = np.isfinite(close) if traded is None else np.asarray(traded, dtype=bool)
    in_universe = traded.copy() if in_universe is None else np.asarray(in_universe, dtype=bool)
    fields = {"open": open_, "high": np.fmax(open_, close), "low": np.fmin(open_, close), "close": close,
              "volume": np.where(traded, 1.0, 0.0).astype(np.float32)}
    return Panel(pd.bdate_range("2021-01-04", periods=t), pd.Index([f"S{i}" for i in range(n)]),
                 fields, traded, in_universe)


def no_limits(panel: Panel) -> dict:
    z = np.zeros(panel.shape, dtype=bool)
    return {"limit_up": z, "limit_down": z.copy()}


def random_case(seed: int, t: int = 40, n: int = 12):
    rng = np.random.default_rng(seed)
    close = 10 * np.cumprod(1 + rng.normal(0, 0.03, (t, n)), axis=0)
    open_ = close * (1 + rng.normal(0, 0.01, (t, n)))
    traded = rng.random((t, n)) > 0.1
    close[~traded] = np.nan
    open_[~traded] = np.nan
    close[:, 0] = np.where(np.isfinite(close[:, 0]), close[:, 0], 10.0)  # keep one column fully priced
    open_[:, 0] = np.where(np.isfinite(open_[:, 0]), open_[:, 0], 10.0)
    traded[:, 0] = True
    panel = make_panel(close, open_, traded)
    scores = rng.normal(size=(t, n))
    limits = {"limit_up": rng.random((t, n)) < 0.15, "limit_down": rng.random((t, n)) < 0.15}
    return panel, scores, limits


def test_signal_days_start_the_day_before_the_test():
    assert signal_days(slice(10, 22), 5, 30).tolist() == [9, 14, 19]
    with pytest.raises(Exception, match="one day before"):
        signal_days(slice(0, 10), 5, 30)


def test_costs_are_charged_exactly_on_turnover():
    """Hand-computed: buy 2 from cash, A gains 10 %, then switch A -> C (B re-weighted)."""
    b, s = 0.001, 0.002
    close = np.ones((4, 3)) * 10.0
    close[2:, 0] = 11.0  # A +10 % on day 2
    scores = np.array([[3.0, 2.0, 1.0], [0, 0, 0], [1.0, 2.0, 3.0], [0, 0, 0]])  # day 0: A, B; day 2: C, B
    panel = make_panel(close)
    res = backtest(scores, panel, slice(1, 4), top_k=2, rebalance=2, execution="close",
                   buy_cost=b, sell_cost=s, **no_limits(panel))
    x = 1 / (2 * (1 + b))  # day 1: 2 x + b * 2 x = 1
    v2 = 2.1 * x
    y = (2.1 * x - s * 1.1 * x + b * x) / (2 + 2 * b)  # day 3: 2 y + s * 1.1 x + b * (2 y - x) = 2.1 x
    bought3, sold3 = 2 * y - x, 1.1 * x
    np.testing.assert_allclose(res.returns.to_numpy(), [2 * x - 1, 0.05, 2 * y / v2 - 1], rtol=0, atol=1e-14)
    cost3 = (b * bought3 + s * sold3) / v2
    np.testing.assert_allclose(res.costs.to_numpy(), [2 * b * x, 0, cost3], atol=1e-15)
    np.testing.assert_allclose(res.turnover.to_numpy(), [2 * x, 0, (bought3 + sold3) / v2], atol=1e-15)
    np.testing.assert_allclose(res.costs, b * res.bought + s * res.sold, atol=1e-15)
    np.testing.assert_allclose(res.weights[-1], [0, 0.5, 0.5], atol=1e-14)
    assert res.cash.abs().max() < 1e-12
    assert list(res.execution_dates) == [panel.dates[1], panel.dates[3]]


@pytest.mark.parametrize("execution", ["open", "close"])
def test_orders_fill_at_the_next_day_price_not_the_signal_price(execution):
    """A gaps +10 % overnight after the signal: buying at the next open / close must not earn it."""
    close = np.full((4, 2), 10.0)
    open_ = close.copy()
    close[2:, 0] = 11.0
    open_[2:, 0] = 11.0  # gap at the open of day 2, the execution day of the day-1 signal
    scores = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    panel = make_panel(close, open_)
    res = backtest(scores, panel, slice(1, 4), top_k=1, rebalance=1, execution=execution,
                   buy_cost=0.0, sell_cost=0.0, **no_limits(panel))
    # day 1: holds B (flat); day 2: switches to A at 11 -> no gain; day 3: flat
    np.testing.assert_allclose(res.returns.to_numpy(), [0.0, 0.0, 0.0], atol=1e-15)
    assert res.weights[1, 0] == 1.0
    # a portfolio that does hold A over the gap earns it
    held = backtest(np.array([[1.0, 0.0]] * 4), panel, slice(1, 4), top_k=1, rebalance=5,
                    execution=execution, buy_cost=0.0, sell_cost=0.0, **no_limits(panel))
    np.testing.assert_allclose(held.returns.iloc[1], 0.1, atol=1e-6)


def test_limit_up_is_never_bought_and_limit_down_is_not_sold():
    t, n = 12, 4
    close = np.full((t, n), 10.0)
    panel = make_panel(close)
    scores = np.zeros((t, n))
    scores[:5] = [4, 3, 2, 1]  # signal day 0: A, B
    scores[5:] = [1, 2, 3, 4]  # signal day 5: D, C
    limit_up, limit_down = no_limits(panel).values()
    limit_up[1, 0] = True  # A at limit-up on the first execution day
    limit_down[6, 1] = True  # B at limit-down when the day-5 signal wants it sold
    res = backtest(scores, panel, slice(1, t), top_k=2, rebalance=5, execution="open",
                   buy_cost=0.0, sell_cost=0.0, limit_up=limit_up, limit_down=limit_down)
    w = pd.DataFrame(res.weights, index=res.dates, columns=panel.instruments)
    assert (w["S0"] == 0).all()  # never bought
    np.testing.assert_allclose(w.iloc[:5]["S1"], 1.0)  # the capital went to the buyable target
    # day 6 (index 5): B cannot be sold -> carried; C and D share the rest
    np.testing.assert_allclose(w.iloc[5].to_numpy(), [0, 1.0, 0, 0])  # nothing to sell, so nothing to buy
    limit_down[6, 1] = False
    limit_down[6:11, 1] = True  # still at limit-down at the next rebalance (day 11 is free again)
    res2 = backtest(scores, panel, slice(1, t), top_k=2, rebalance=5, execution="open",
                    buy_cost=0.0, sell_cost=0.0, limit_up=limit_up, limit_down=limit_down)
    assert res2.weights[5:10, 1].min() == 1.0  # carried through the whole period
    assert res2.weights[-1, 1] == 0.0 and res2.weights[-1, 2:].tolist() == [0.5, 0.5]  # sold on day 11


def test_suspended_stocks_are_neither_bought_nor_sold_and_keep_their_last_close():
    close = np.full((8, 3), 10.0)
    close[3, 0] = np.nan  # A suspended on day 3 (an execution day below)
    close[4:, 0] = 12.0
    panel = make_panel(close)
    scores = np.array([[3.0, 2.0, 1.0]] * 2 + [[1.0, 2.0, 3.0]] * 6)
    res = backtest(scores, panel, slice(1, 8), top_k=2, rebalance=2, execution="close",
                   buy_cost=0.0, sell_cost=0.0, **no_limits(panel))
    # execution day 3 wants A out, but A has no row: still held, valued at 10
    assert res.weights[2, 0] == pytest.approx(0.5)
    np.testing.assert_allclose(res.returns.iloc[2], 0.0, atol=1e-15)
    np.testing.assert_allclose(res.returns.iloc[3], 0.5 * 0.2, atol=1e-12)  # A resumes at 12
    assert res.weights[-1, 0] == 0.0  # sold at the next execution (day 5)


def test_cash_is_the_share_that_could_not_be_bought():
    close = np.full((6, 3), 10.0)
    panel = make_panel(close)
    up = np.zeros(panel.shape, dtype=bool)
    up[1] = True  # every stock at limit-up on the first execution day
    res = backtest(np.tile([3.0, 2.0, 1.0], (6, 1)), panel, slice(1, 6), top_k=2, rebalance=3,
                   execution="open", limit_up=up, limit_down=np.zeros_like(up))
    assert res.cash.iloc[:3].tolist() == [1.0, 1.0, 1.0] and res.n_holdings.iloc[:3].tolist() == [0, 0, 0]
    assert res.cash.iloc[3] == 0.0 and res.n_holdings.iloc[3] == 2  # bought at the next rebalance


@pytest.mark.parametrize("execution", ["open", "close"])
def test_weights_and_cash_sum_to_one(execution):
    panel, scores, limits = random_case(0)
    res = backtest(scores, panel, slice(3, 40), top_k=4, rebalance=3, execution=execution, **limits)
    np.testing.assert_allclose(res.weights.sum(axis=1) + res.cash.to_numpy(), 1.0, atol=1e-12)
    assert (res.weights >= 0).all() and (res.cash >= -1e-12).all()
    assert (res.cash == 0).all()  # some target is always buyable here, so no cash is left over
    assert res.n_holdings.min() >= 1 and res.n_holdings.max() > 4  # carried unsellable positions exceed k
    b, s = res.params["buy_cost"], res.params["sell_cost"]
    np.testing.assert_allclose(res.costs, b * res.bought + s * res.sold)
    # nothing is bought on an execution day at limit-up, nothing sold at limit-down
    day = {d: i for i, d in enumerate(res.dates)}
    for d in res.execution_dates:
        i, j = day[d], panel.dates.get_loc(d)
        before = res.weights[i - 1] if i > 0 else np.zeros(panel.shape[1])
        assert not (limits["limit_up"][j] & (before == 0) & (res.weights[i] > 0)).any()
        assert not (limits["limit_down"][j] & (before > 0) & (res.weights[i] == 0)).any()


@pytest.mark.parametrize(("execution", "rule"), [("open", "topk"), ("close", "topk"), ("open", "dropout")])
def test_no_look_ahead_changing_the_future_changes_no_position(execution, rule):
    panel, scores, limits = random_case(1)
    days = slice(3, 40)
    drop = {"rule": rule, "n_drop": 2} if rule == "dropout" else {}
    base = backtest(scores, panel, days, top_k=4, rebalance=3, execution=execution, **drop, **limits)
    rng = np.random.default_rng(7)
    for t in (5, 11, 20, 33):  # panel day positions
        fields = {k: v.copy() for k, v in panel.fields.items()}
        for v in fields.values():
            v[t + 1:] *= rng.uniform(0.5, 1.5, v[t + 1:].shape).astype(np.float32)
        traded = panel.traded.copy()
        traded[t + 1:] = rng.random(traded[t + 1:].shape) > 0.5
        future = Panel(panel.dates, panel.instruments, fields, traded, traded.copy())
        s2 = scores.copy()
        s2[t + 1:] = rng.normal(size=s2[t + 1:].shape)
        lim2 = {k: np.where(np.arange(panel.shape[0])[:, None] > t, ~m, m) for k, m in limits.items()}
        other = backtest(s2, future, days, top_k=4, rebalance=3, execution=execution, **drop, **lim2)
        k = t - days.start + 1  # result rows for days <= t
        np.testing.assert_array_equal(other.weights[:k], base.weights[:k])
        np.testing.assert_array_equal(other.returns.to_numpy()[:k], base.returns.to_numpy()[:k])
        assert not np.array_equal(other.weights[k + 3:], base.weights[k + 3:])  # the perturbation bites


def test_parameters_are_validated():
    panel, scores, limits = random_case(2, t=10, n=4)
    bads = ({"top_k": 0}, {"rebalance": 0}, {"execution": "vwap"}, {"buy_cost": -0.1}, {"sell_cost": 0.5},
            {"rule": "topkdrop"}, {"rule": "dropout", "n_drop": 51}, {"rule": "dropout", "n_drop": -1})
    for bad in bads:
        with pytest.raises(ValueError):
            backtest(scores, panel, slice(1, 10), **limits, **bad)
    with pytest.raises(ValueError, match="shape"):
        backtest(scores[:, :3], panel, slice(1, 10), **limits)
    assert isinstance(backtest(scores, panel, slice(1, 10), **limits), BacktestResult)


# ----------------------------------------------------------------------------- Qlib's TopkDropout


def test_dropout_decision_is_qlibs():
    """Qlib's TopkDropoutStrategy (bottom / top), by hand: held A, B, C, D; E the best not held."""
    scores = np.array([0.9, 0.8, 0.1, 0.5, 0.95, 0.3, 0.2, np.nan])  # A..H
    eligible = np.ones(8, dtype=bool)
    held = np.zeros(8, dtype=bool)
    held[:4] = True
    sell, buy = select_dropout(scores, eligible, held, k=4, n_drop=1)
    assert sell.tolist() == [2] and buy.tolist() == [4]  # C (lowest of held + candidates) out, E in
    sell, buy = select_dropout(scores, eligible, held, k=4, n_drop=2)
    assert sell.tolist() == [2] and buy.tolist() == [4]  # the 2 lowest are C and F: F is not held
    two = np.array([0.9, 0.8, 0.1, 0.2, 0.95, 0.85, 0.0, np.nan])
    sell, buy = select_dropout(two, eligible, held, k=4, n_drop=2)
    assert sell.tolist() == [3, 2] and buy.tolist() == [4, 5]  # D and C out for E and F
    sell, buy = select_dropout(scores, eligible, held, k=4, n_drop=0)
    assert sell.size == 0 and buy.size == 0
    left = eligible.copy()
    left[0] = False  # A left the universe: it ranks last and goes first
    sell, buy = select_dropout(scores, left, held, k=4, n_drop=1)
    assert sell.tolist() == [0] and buy.tolist() == [4]
    sell, buy = select_dropout(scores, eligible, np.zeros(8, dtype=bool), k=4, n_drop=1)
    assert sell.size == 0 and buy.tolist() == [4, 0, 1, 3]  # from cash: the top k
    worse = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.05, 0.0, np.nan])  # no candidate beats a held stock
    sell, buy = select_dropout(worse, eligible, held, k=4, n_drop=1)
    assert sell.size == 0 and buy.size == 0  # no selling high to buy low


def test_dropout_backtest_by_hand():
    """k = 2, n_drop = 1: buy A, B from cash; then C beats B: sell B, buy C with B's cash, A untouched."""
    b, s = 0.001, 0.002
    close = np.ones((4, 3)) * 10.0
    close[2:, 0] = 11.0  # A +10 % on day 2
    scores = np.array([[3.0, 2.0, 1.0], [0, 0, 0], [3.0, 1.0, 2.0], [0, 0, 0]])
    panel = make_panel(close)
    res = backtest(scores, panel, slice(1, 4), top_k=2, rebalance=2, execution="close", rule="dropout",
                   n_drop=1, buy_cost=b, sell_cost=s, **no_limits(panel))
    x = 0.5 / (1 + b)  # day 1: half the cash each, cost included
    c = x * (1 - s)  # day 3: B sold, its cash (less the sale cost) buys C
    end = 1.1 * x + c / (1 + b)  # A untouched, C bought
    np.testing.assert_allclose(res.weights[-1] * end, [1.1 * x, 0, c / (1 + b)], atol=1e-14)
    np.testing.assert_allclose(res.returns.to_numpy(), [2 * x - 1, 0.05, end / (2.1 * x) - 1], atol=1e-14)
    np.testing.assert_allclose(res.costs, b * res.bought + s * res.sold, atol=1e-15)
    assert res.params["rule"] == "dropout" and res.params["n_drop"] == 1


def test_dropout_trades_less_and_changes_at_most_n_drop_names():
    rng = np.random.default_rng(3)
    panel = make_panel(10 * np.cumprod(1 + rng.normal(0, 0.03, (60, 30)), axis=0))  # always tradable
    scores = rng.normal(size=(60, 30))
    days = slice(3, 60)
    full = backtest(scores, panel, days, top_k=8, rebalance=3, **no_limits(panel))
    drop = backtest(scores, panel, days, top_k=8, rebalance=3, rule="dropout", n_drop=2, **no_limits(panel))
    assert drop.turnover.sum() < 0.6 * full.turnover.sum()
    names = [set(np.flatnonzero(w > 0)) for w in drop.weights]
    assert len(names[0]) == 8
    for i in range(1, len(names)):
        assert len(names[i] - names[i - 1]) <= 2 and len(names[i]) == 8
    np.testing.assert_allclose(drop.weights.sum(axis=1) + drop.cash.to_numpy(), 1.0, atol=1e-12)
    again = full.rerun(panel, rule="dropout", n_drop=2, **no_limits(panel))
    np.testing.assert_array_equal(again.weights, drop.weights)
