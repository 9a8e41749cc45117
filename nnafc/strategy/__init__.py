"""The XGBoost multi-factor strategy of §4.2 (Table 5) and §4.4 (Table 7).

labels -> features -> `FactorModel` (XGBoost, tuned on validation) -> top-k long portfolio with
next-day execution, price limits and costs -> performance vs ZZ500 / HS300. Plots live in
`nnafc.strategy.plots` (the only module here that imports matplotlib).
"""

from nnafc.strategy.labels import build_features, make_labels, rank_labels, stack_rows, standardize
from nnafc.strategy.model import FactorModel
from nnafc.strategy.performance import (
    INDEX_CODES,
    annual_return,
    bootstrap_mean,
    bootstrap_sharpe,
    cost_sensitivity,
    excess_returns,
    load_index_returns,
    max_drawdown,
    performance_table,
    sharpe_ratio,
    summarize,
)
from nnafc.strategy.pipeline import fit_model, predict_scores, run_strategy
from nnafc.strategy.portfolio import BUY_COST, SELL_COST, BacktestResult, backtest, select_top_k, signal_days
from nnafc.strategy.selection import combine_importance, select_combine

__all__ = [
    "BUY_COST", "INDEX_CODES", "SELL_COST", "BacktestResult", "FactorModel", "annual_return", "backtest",
    "bootstrap_mean",
    "bootstrap_sharpe", "build_features", "combine_importance", "cost_sensitivity", "excess_returns",
    "fit_model", "load_index_returns", "make_labels", "max_drawdown", "performance_table",
    "predict_scores", "rank_labels", "run_strategy", "select_combine", "select_top_k", "sharpe_ratio",
    "signal_days", "stack_rows", "standardize", "summarize",
]
