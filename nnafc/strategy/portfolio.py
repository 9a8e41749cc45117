"""Long-only top-k portfolio backtest with next-day execution, price limits and costs (§4.4, Table 7).

Timing (no look-ahead): on a signal day `s` the top-k stocks by score (computed from data up to
`s`) are chosen; the orders execute on day `s + 1` at that day's open or close, never at the
price the signal saw. A stock cannot be bought when it is suspended or at limit-up on the
execution day, nor sold when suspended or at limit-down: an unsellable position is carried
until a later rebalance can sell it. The free capital is spread equally over the target stocks
that can be traded, so the portfolio is fully invested unless nothing can be bought.

Costs: `buy_cost` and `sell_cost` are charged on the traded value. The defaults read the paper's
"commission fee is 0.3 %" (Table 7) as a 0.3 % round trip: 0.1 % commission + slippage on each
side plus the 0.1 % stamp duty on sales that China levied until August 2023.

Daily returns are close-to-close with weights drifting between rebalances; a suspended stock
keeps its last close.

Two rules (`rule`):

- `"topk"` (the paper's): every rebalance holds the top-k stocks in equal value, re-weighting the
  ones kept;
- `"dropout"`: Qlib's `TopkDropoutStrategy` (method_sell="bottom", method_buy="top"): of the held
  stocks and the best `n_drop + k - held` stocks not held, sell the held ones among the `n_drop`
  lowest scores and buy as many of the best not held as keep k stocks; the stocks kept are not
  traded, the cash from sales (and any left over) is spread equally over the buys. A held stock
  without a score (it left the universe) ranks last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnafc.data.panel import DataError, Panel
from nnafc.data.tradability import hits_limit_down, hits_limit_up

BUY_COST = 0.001  # commission + slippage on a purchase
SELL_COST = 0.002  # commission + slippage 0.1 % + stamp duty 0.1 % on a sale
EXECUTIONS = ("open", "close")
RULES = ("topk", "dropout")
BACKTEST_PARAMS = ("top_k", "rebalance", "execution", "buy_cost", "sell_cost", "rule", "n_drop")


@dataclass(frozen=True)
class BacktestResult:
    """One backtest: daily series over the test days and the end-of-day weights.

    `turnover` is (bought + sold) / portfolio value before trading (two-sided), `costs` the cost
    charged that day in the same unit, `cash` the weight not invested. Weights plus cash sum to one.
    """

    returns: pd.Series  # (D,) daily net portfolio returns, close to close
    weights: np.ndarray = field(repr=False)  # (D, N) end-of-day weights
    cash: pd.Series = field(repr=False)  # (D,) end-of-day cash weight
    turnover: pd.Series = field(repr=False)  # (D,) two-sided, 0 on days without trading
    bought: pd.Series = field(repr=False)  # (D,) bought value / pre-trade value
    sold: pd.Series = field(repr=False)  # (D,) sold value / pre-trade value
    costs: pd.Series = field(repr=False)  # (D,) costs / pre-trade value
    n_holdings: pd.Series = field(repr=False)  # (D,) stocks held at the close
    instruments: pd.Index = field(repr=False)  # (N,)
    execution_dates: pd.DatetimeIndex = field(repr=False)  # days on which orders were placed
    scores: np.ndarray = field(repr=False)  # (D + 1, N) scores from the day before the first day
    params: dict = field(default_factory=dict)

    @property
    def dates(self) -> pd.DatetimeIndex:
        return self.returns.index

    @property
    def nav(self) -> pd.Series:
        """Net asset value, starting from 1 the day before the first return."""
        return (1.0 + self.returns).cumprod()

    def rerun(self, panel: Panel, **overrides) -> BacktestResult:
        """The same backtest (same scores, days and parameters) with some parameters changed, e.g. costs."""
        unknown = set(overrides) - set(BACKTEST_PARAMS) - {"limit_up", "limit_down"}
        if unknown:
            raise ValueError(f"unknown backtest parameters {sorted(unknown)}; known: {BACKTEST_PARAMS}")
        scores, days = self.panel_scores(panel)
        kwargs = {k: v for k, v in self.params.items() if k in BACKTEST_PARAMS} | overrides
        return backtest(scores, panel, days, **kwargs)

    def panel_scores(self, panel: Panel) -> tuple[np.ndarray, slice]:
        """The scores laid on `panel`'s days, `(T, N)` NaN elsewhere, and the slice of the backtest's days."""
        start = int(panel.dates.get_indexer(self.dates[:1])[0])
        if start < 1 or not panel.dates[start: start + len(self.dates)].equals(self.dates):
            raise ValueError("panel does not hold this backtest's dates")
        scores = np.full(panel.shape, np.nan)  # (T, N)
        scores[start - 1: start + len(self.dates)] = self.scores
        return scores, slice(start, start + len(self.dates))

    def holdings(self, date: str | pd.Timestamp) -> pd.Series:
        """Non-zero end-of-day weights on `date`, by instrument."""
        i = self.dates.get_loc(pd.Timestamp(date))
        w = self.weights[i]
        return pd.Series(w[w > 0], index=self.instruments[w > 0], name=pd.Timestamp(date))


def _ffill(x: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along time (axis 0)."""
    x = np.asarray(x, dtype=np.float64)  # (T, N)
    idx = np.where(np.isfinite(x), np.arange(x.shape[0])[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = x[idx, np.arange(x.shape[1])[None, :]]
    return out


def select_top_k(scores: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest finite scores among `eligible` stocks (ties: instrument order)."""
    ok = np.isfinite(scores) & eligible  # (N,)
    cand = np.flatnonzero(ok)
    order = np.argsort(-scores[cand], kind="stable")
    return cand[order[:k]]


def select_dropout(scores: np.ndarray, eligible: np.ndarray, held: np.ndarray, k: int,
                   n_drop: int) -> tuple[np.ndarray, np.ndarray]:
    """Qlib's TopkDropout decision (method_sell="bottom", method_buy="top"): indices to sell and
    to buy, the buys best first. `held (N,)` bool; a held stock without a finite, eligible score
    ranks below every scored one."""
    ok = np.isfinite(scores) & eligible  # (N,)
    rank_score = np.where(ok, scores, -np.inf)
    last = np.flatnonzero(held)
    last = last[np.argsort(-rank_score[last], kind="stable")]  # held, best first
    cand = np.flatnonzero(ok & ~held)
    today = cand[np.argsort(-scores[cand], kind="stable")][: max(n_drop + k - len(last), 0)]
    comb = np.concatenate([last, today])
    comb = comb[np.argsort(-rank_score[comb], kind="stable")]
    bottom = set(comb[len(comb) - n_drop:].tolist()) if n_drop > 0 else set()
    sell = np.array([i for i in last if i in bottom], dtype=np.int64)
    buy = today[: max(len(sell) + k - len(last), 0)]
    return sell, buy


def _swap(h: np.ndarray, cash: float, sell: np.ndarray, buy: np.ndarray, can_buy: np.ndarray,
          can_sell: np.ndarray, buy_cost: float, sell_cost: float
          ) -> tuple[np.ndarray, float, float, float, float]:
    """TopkDropout's trades: sell `sell` where it can, then spread all cash equally over `buy`
    (each buy's value plus its cost is one share of the cash; a buy that cannot trade keeps its
    share in cash). Kept positions are not traded. Returns as `_rebalance`."""
    new = h.copy()
    sellable = sell[can_sell[sell]] if len(sell) else sell
    sold = float(new[sellable].sum())
    new[sellable] = 0.0
    cash = cash + sold * (1.0 - sell_cost)
    bought = 0.0
    if len(buy):
        share = cash / len(buy)
        buyable = buy[can_buy[buy]]
        new[buyable] += share / (1.0 + buy_cost)
        bought = float(len(buyable) * share / (1.0 + buy_cost))
        cash -= len(buyable) * share
    if abs(cash) < 1e-12:
        cash = 0.0
    return new, cash, bought, sold, buy_cost * bought + sell_cost * sold


def _equal_value(value: float, locked: float, fixed_cost: float, h_free: np.ndarray,
                 buy_cost: float, sell_cost: float) -> float:
    """The value `x` per free target solving  m x + locked + fixed_cost + costs(x) = value.

    costs(x) = buy_cost * sum((x - h)+) + sell_cost * sum((h - x)+) has slope < 1 per unit of
    m x, so the fixed-point iteration is a contraction (factor <= max cost rate).
    """
    m = h_free.shape[0]
    x = (value - locked - fixed_cost) / m
    for _ in range(100):
        trade = x - h_free
        costs = buy_cost * trade[trade > 0].sum() - sell_cost * trade[trade < 0].sum()
        x_next = (value - locked - fixed_cost - costs) / m
        if abs(x_next - x) <= 1e-15 * max(1.0, abs(value)):
            return x_next
        x = x_next
    return x


def _rebalance(h: np.ndarray, cash: float, target: np.ndarray, can_buy: np.ndarray, can_sell: np.ndarray,
               buy_cost: float, sell_cost: float) -> tuple[np.ndarray, float, float, float, float]:
    """Trade position values `h (N,)` toward equal value over `target`.

    Returns the new values, cash, bought value, sold value and cost. Held stocks outside the
    target are sold when they can be; a target that must trade in a blocked direction keeps its
    value (fixing it only pushes the others' value further the same way, so one pass suffices).
    """
    value = h.sum() + cash
    is_target = np.zeros(h.shape[0], dtype=bool)  # (N,)
    is_target[target] = True
    held = h > 0
    exits = held & ~is_target
    carried = exits & ~can_sell  # unsellable positions outside the target
    sold_exit = h[exits & can_sell].sum()
    active = is_target & (can_buy | held)  # a target neither held nor buyable drops out
    fixed = np.zeros_like(active)
    x = 0.0
    while True:
        free = active & ~fixed
        if not free.any():
            break
        locked = h[fixed | carried].sum()
        x = _equal_value(value, locked, sell_cost * sold_exit, h[free], buy_cost, sell_cost)
        blocked = free & (((x > h) & ~can_buy) | ((x < h) & ~can_sell))
        if not blocked.any():
            break
        fixed |= blocked
    new = np.where(carried | fixed, h, 0.0)  # (N,)
    new[active & ~fixed] = max(x, 0.0)
    delta = new - h
    bought = float(delta[delta > 0].sum())
    sold = float(-delta[delta < 0].sum())
    cost = buy_cost * bought + sell_cost * sold
    cash_new = value - new.sum() - cost
    if abs(cash_new) < 1e-12 * max(1.0, abs(value)):
        cash_new = 0.0
    return new, cash_new, bought, sold, cost


def signal_days(days: slice, rebalance: int, n_days: int) -> np.ndarray:
    """Signal days of a backtest over `days`: the day before the first test day, then every `rebalance` days.

    Each signal day's orders execute on the next day, so every execution day lies inside `days`.
    """
    start, stop, step = days.indices(n_days)
    if step != 1 or stop - start < 1:
        raise ValueError(f"days must be a non-empty contiguous slice, got {days!r}")
    if start < 1:
        raise DataError("a backtest needs one day before its first day to compute the first signal")
    return np.arange(start - 1, stop - 1, rebalance)


def backtest(
    scores: np.ndarray,
    panel: Panel,
    days: slice,
    *,
    top_k: int = 50,  # stocks held, equal weight (§4.4)
    rebalance: int = 5,  # trading days between signals: the 5-day label horizon (§4.1)
    execution: str = "open",  # price of the day after the signal at which orders fill
    buy_cost: float = BUY_COST,
    sell_cost: float = SELL_COST,
    limit_up: np.ndarray | None = None,  # (T, N) bool; default: nnafc.data.tradability at `execution`
    limit_down: np.ndarray | None = None,
    rule: str = "topk",  # "topk": equal value over the top k; "dropout": Qlib's TopkDropout
    n_drop: int = 5,  # "dropout": stocks replaced at most per rebalance (Qlib's benchmark: 5)
) -> BacktestResult:
    """Long the top-k stocks by `scores (T, N)` (only signal-day rows are read), daily returns over `days`."""
    t_all, n = panel.shape
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (t_all, n):
        raise ValueError(f"scores have shape {scores.shape}, panel is {panel.shape}")
    if not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if not isinstance(rebalance, int | np.integer) or rebalance < 1:
        raise ValueError(f"rebalance must be a positive number of days, got {rebalance!r}")
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "dropout" and (not isinstance(n_drop, int | np.integer) or not 0 <= n_drop <= top_k):
        raise ValueError(f"n_drop must be an integer in 0..top_k ({top_k}), got {n_drop!r}")
    for name, c in (("buy_cost", buy_cost), ("sell_cost", sell_cost)):
        if not 0 <= c < 0.1:
            raise ValueError(f"{name} is a fraction of traded value in [0, 0.1), got {c}")
    signals = signal_days(days, rebalance, t_all)
    start, stop, _ = days.indices(t_all)
    if limit_up is None or limit_down is None:
        limit_up = hits_limit_up(panel, field=execution) if limit_up is None else limit_up
        limit_down = hits_limit_down(panel, field=execution) if limit_down is None else limit_down
    for name, m in (("limit_up", limit_up), ("limit_down", limit_down)):
        if m.shape != (t_all, n):
            raise ValueError(f"{name} has shape {m.shape}, panel is {panel.shape}")

    close = _ffill(panel["close"][: stop])  # (T', N) last known close
    open_ = np.asarray(panel["open"][: stop], dtype=np.float64)
    open_ = np.where(np.isfinite(open_), open_, close)  # (T', N) suspended: last close
    traded = panel.traded

    d_count = stop - start
    weights = np.zeros((d_count, n))  # (D, N)
    rec = {k: np.zeros(d_count) for k in ("returns", "cash", "turnover", "bought", "sold", "costs")}
    h = np.zeros(n)  # (N,) position values at the last close
    cash, nav_prev = 1.0, 1.0
    is_signal = set(signals.tolist())
    executions = []
    for i, d in enumerate(range(start, stop)):
        held = h > 0
        if execution == "open":
            h = np.where(held, h * open_[d] / close[d - 1], 0.0)
        else:
            h = np.where(held, h * close[d] / close[d - 1], 0.0)
        if d - 1 in is_signal:
            can_buy = traded[d] & ~limit_up[d]
            can_sell = traded[d] & ~limit_down[d]
            value = h.sum() + cash
            costs = (buy_cost, sell_cost)
            if rule == "topk":
                target = select_top_k(scores[d - 1], panel.in_universe[d - 1], top_k)
                h, cash, bought, sold, cost = _rebalance(h, cash, target, can_buy, can_sell, *costs)
            else:
                sell, buy = select_dropout(scores[d - 1], panel.in_universe[d - 1], h > 0, top_k, n_drop)
                h, cash, bought, sold, cost = _swap(h, cash, sell, buy, can_buy, can_sell, *costs)
            rec["bought"][i], rec["sold"][i], rec["costs"][i] = bought / value, sold / value, cost / value
            rec["turnover"][i] = (bought + sold) / value
            executions.append(d)
        if execution == "open":
            h = np.where(h > 0, h * close[d] / open_[d], 0.0)
        nav = h.sum() + cash
        rec["returns"][i] = nav / nav_prev - 1.0
        weights[i] = h / nav
        rec["cash"][i] = cash / nav
        nav_prev = nav

    dates = panel.dates[start:stop]
    series = {k: pd.Series(v, index=dates, name=k) for k, v in rec.items()}
    return BacktestResult(
        returns=series["returns"], weights=weights, cash=series["cash"], turnover=series["turnover"],
        bought=series["bought"], sold=series["sold"], costs=series["costs"],
        n_holdings=pd.Series((weights > 0).sum(axis=1), index=dates, name="n_holdings"),
        instruments=panel.instruments, execution_dates=panel.dates[executions],
        scores=scores[start - 1: stop].copy(),
        params={"top_k": int(top_k), "rebalance": int(rebalance), "execution": execution,
                "buy_cost": float(buy_cost), "sell_cost": float(sell_cost), "rule": rule,
                "n_drop": int(n_drop)},
    )
