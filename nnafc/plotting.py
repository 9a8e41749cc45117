"""Every figure of the book: functions that take computed results and return their axes.

Nothing here computes a statistic (that is `nnafc.evaluate` / `nnafc.metrics`), and nothing
calls `plt.show()`: the notebook displays what it gets back.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PAPER_COLOR = "0.55"  # the paper's numbers are drawn in grey beside ours


def use_style() -> None:
    """One style for every figure of the book."""
    sns.set_theme(context="notebook", style="whitegrid", palette="deep")
    plt.rcParams.update({"figure.figsize": (7.5, 4.0), "figure.dpi": 110, "axes.titleweight": "bold"})


def _axes(ax, figsize=None):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_kernel_vs_rank(samples: pd.DataFrame, ax=None):
    """Fig. 3: g(x) (Eq. 13) against the normalised rank, one colour per simulated Gaussian.

    `samples` has columns group, x, rank, g (see `evaluate.kernel.kernel_samples`).
    """
    ax = _axes(ax)
    for group, frame in samples.groupby("group", sort=False):
        frame = frame.sort_values("rank")
        ax.plot(frame["rank"], frame["g"], lw=2, label=f"{group}: g(x)")
    ax.plot([0, 1], [0, 1], ls="--", color="k", lw=1, label="rank (identity)")
    ax.set(xlabel="normalised rank of x", ylabel="g(x)", title="Kernel g(x) vs rank (Fig. 3)")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_p_sensitivity(table: pd.DataFrame, ax=None, value: str = "corr_with_rank"):
    """How closely g(x) follows rank(x), against p, one line per distribution."""
    ax = _axes(ax)
    for name, frame in table.groupby("distribution", sort=False):
        ax.plot(frame["p"], frame[value], marker="o", label=name)
    ax.axvline(1.83, color=PAPER_COLOR, ls=":", label="paper p = 1.83")
    ax.set(xlabel="p", ylabel=value.replace("_", " "), title="Sensitivity of g(x) to p")
    ax.legend(fontsize=8)
    return ax


def plot_daily_ic(daily: pd.DataFrame, ax=None, title: str = "Daily IC"):
    """Daily IC series (one column per measure) against dates."""
    ax = _axes(ax)
    daily.plot(ax=ax, lw=1)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="", ylabel="IC", title=title)
    return ax


def plot_ic_scatter(x: pd.Series, y: pd.Series, ax=None, title: str = ""):
    """One measure of daily IC against another, with the identity line."""
    ax = _axes(ax, figsize=(4.5, 4.5))
    ax.scatter(x, y, s=8, alpha=0.6)
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([lo, hi], [lo, hi], ls="--", color="k", lw=1)
    ax.set(xlabel=x.name, ylabel=y.name, title=title)
    return ax
