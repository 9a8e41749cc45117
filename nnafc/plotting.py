"""Every figure of the book: functions that take computed results and return their axes.

Nothing here computes a statistic (that is `nnafc.evaluate` / `nnafc.metrics`), and nothing
calls `plt.show()`: the notebook displays what it gets back.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
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


FIELD_LABELS = ("open", "high", "low", "close", "volume")


def plot_saliency(saliency, ax=None, title: str = "Saliency (Eq. 17)", vmax: float | None = None):
    """Fig. 6: a (5, m) saliency map, red = positive contribution, blue = negative; x = days back."""
    import numpy as np

    ax = _axes(ax, figsize=(7.5, 2.6))
    values = np.asarray(saliency)
    vmax = vmax or float(np.abs(values).max()) or 1.0
    m = values.shape[1]
    image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_yticks(range(len(FIELD_LABELS)), FIELD_LABELS)
    ticks = list(range(0, m, 5)) + [m - 1]
    ax.set_xticks(ticks, [f"t-{m - 1 - t}" if t < m - 1 else "t" for t in ticks])
    ax.set(title=title, xlabel="input day (t = the factor's day)", ylabel="input field")
    ax.grid(False)
    ax.figure.colorbar(image, ax=ax, fraction=0.03, label="mean ∂ output / ∂ input")
    return ax


def plot_training_curve(curve: pd.DataFrame, ax=None, best_epoch: int | None = None):
    """Validation rank IC per IC-training epoch, with the chosen epoch marked."""
    ax = _axes(ax)
    epochs = range(1, len(curve) + 1)
    ax.plot(epochs, curve["valid_ic"], marker="o", label="validation rank IC")
    if best_epoch:
        ax.axvline(best_epoch, color="k", ls=":", label=f"chosen epoch {best_epoch}")
    ax.set(xlabel="epoch", ylabel="rank IC", title="IC training (Eq. 14), model choice on validation")
    ax.legend(fontsize=8)
    return ax


def plot_pruning(table: pd.DataFrame, ax=None):
    """Validation IC and correlation with the seed against the pruning rate (Eq. 16)."""
    ax = _axes(ax)
    ax.plot(table.index, table["valid rank IC"], marker="o", label="validation rank IC")
    ax.plot(table.index, table["rank corr with seed"], marker="s", label="rank correlation with the seed")
    ax.set(xlabel="pruning rate (share of weights set to zero)", ylabel="rank correlation (mean daily)",
           title="Effect of the pruning rate")
    ax.legend(fontsize=8)
    return ax


def plot_quality(table: pd.DataFrame, aim: float | None = None, paper: float | None = None, ax=None):
    """Test rank IC of every constructed factor per window, each linked to its own seed factor's."""
    ax = _axes(ax, figsize=(8, 4))
    windows = sorted(table["window"].unique())
    rng = np.random.default_rng(0)  # jitter only, so overlapping points stay visible
    for i, window in enumerate(windows):
        g = table[table["window"] == window]
        x = i + rng.uniform(-0.15, 0.15, len(g))
        ax.vlines(x, g["seed factor test IC"], g["test IC"], color="grey", lw=0.6, alpha=0.6)
        ax.scatter(x, g["seed factor test IC"], s=14, color="grey", label="seed factor" if i == 0 else None)
        ax.scatter(x, g["test IC"], s=18, color="C0", label="constructed (FCN)" if i == 0 else None)
        ax.hlines(g["test IC"].mean(), i - 0.3, i + 0.3, color="C0", lw=2)
    if aim is not None:
        ax.axhline(aim, color="C2", ls="--", lw=1, label=f"aim {aim:g}")
    if paper is not None:
        ax.axhline(paper, color=PAPER_COLOR, ls=":", lw=1, label=f"paper (Table 6) {paper:g}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(windows)), [f"train from\n{w}" for w in windows])
    ax.set(ylabel="mean daily rank IC, test days", title="Constructed factors vs their seeds, out of sample")
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_protocol_selection(selection: pd.DataFrame, baseline: float | None = None, ax=None):
    """Per candidate (rows of `protocol.selection_table`): mean validation and test rank IC of its
    factors; the chosen candidate's bars are outlined, the best-PK baseline a dashed line."""
    ax = _axes(ax, figsize=(8, 0.35 * len(selection) + 1.2))
    y = np.arange(len(selection))
    ax.barh(y + 0.2, selection["valid IC"], height=0.4, color="C0", alpha=0.35, label="validation days")
    edges = ["k" if c else "none" for c in selection.get("chosen", [False] * len(selection))]
    ax.barh(y - 0.2, selection["test IC"], height=0.4, color="C0", edgecolor=edges, label="test days")
    if baseline is not None:
        ax.axvline(baseline, color="C3", ls="--", lw=1, label=f"best PK factor, test {baseline:.3f}")
    ax.set_yticks(y, selection.index)
    ax.invert_yaxis()
    ax.set(xlabel="mean daily rank IC", title="Construction protocols on the selection windows")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_protocol_confirmation(table: pd.DataFrame, baselines: pd.DataFrame, ax=None):
    """Confirmation windows: each candidate's factors' test rank IC per window (points, mean as a
    bar) beside the best-PK baseline's test IC (red cross)."""
    ax = _axes(ax, figsize=(8, 4))
    windows = list(baselines.index)
    cands = list(dict.fromkeys(table["candidate"]))
    width = 0.8 / max(len(cands), 1)
    rng = np.random.default_rng(0)  # jitter only
    for k, cand in enumerate(cands):
        for i, window in enumerate(windows):
            g = table[(table["candidate"] == cand) & (table["window"] == window)]["test IC"]
            x = i - 0.4 + width * (k + 0.5)
            ax.scatter(x + rng.uniform(-width / 4, width / 4, len(g)), g, s=12, color=f"C{k}", alpha=0.6,
                       label=cand if i == 0 else None)
            ax.hlines(g.mean(), x - width / 2.5, x + width / 2.5, color=f"C{k}", lw=2)
    ax.scatter(range(len(windows)), baselines["test IC"], marker="x", s=60, color="C3", zorder=3,
               label="best PK factor (chosen on train + valid)")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(windows)), [f"train from\n{w}" for w in windows])
    ax.set(ylabel="mean daily rank IC, test days", title="Confirmation windows, read once")
    ax.legend(fontsize=8, loc="best")
    return ax


# --------------------------------------------------------------------------- factor tear sheet
# (nnafc.evaluate.tearsheet computes; these draw one of its tables each)


def plot_ic_series(daily: pd.Series, ax=None, window: int = 20):
    """A daily IC series as thin bars with its `window`-day rolling mean."""
    ax = _axes(ax)
    ax.bar(daily.index, daily.to_numpy(), width=1.0, color="C0", alpha=0.35, label="daily")
    ax.plot(daily.index, daily.rolling(window, min_periods=max(1, window // 2)).mean(), color="C0", lw=1.5,
            label=f"{window}-day mean")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(ylabel=daily.name or "IC", title=f"{daily.name or 'IC'} (mean {daily.mean():.4f})")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_quantile_returns(means: pd.Series, ax=None, horizon: int | None = None):
    """Mean forward return per factor quantile (1 = lowest factor values)."""
    ax = _axes(ax, figsize=(4.5, 3.5))
    ax.bar(means.index.astype(str), means.to_numpy() * 1e4, color="C1")
    ax.axhline(0, color="k", lw=0.8)
    h = f"{horizon}-day " if horizon else ""
    ax.set(xlabel="quantile", ylabel=f"mean {h}forward return (bp)", title=f"{means.name}: quantile returns")
    return ax


def plot_long_short(daily: pd.Series, ax=None, horizon: int = 1):
    """Cumulative top-minus-bottom spread: the daily h-day spread / h, summed (h staggered books)."""
    ax = _axes(ax)
    path = (daily.fillna(0.0) / horizon).cumsum()
    ax.plot(path.index, path.to_numpy(), color="C2")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(ylabel="cumulative spread", title=f"{daily.name}: long-short (top - bottom quantile)")
    return ax


def plot_ic_decay(decay: pd.DataFrame, ax=None):
    """Mean daily rank IC against the forward-return horizon, one line per factor."""
    ax = _axes(ax)
    for name in decay.columns:
        ax.plot(decay.index, decay[name], marker="o", label=str(name))
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="horizon (trading days)", ylabel="mean rank IC", title="IC decay")
    if len(decay.columns) <= 12:
        ax.legend(fontsize=8)
    return ax


def plot_factor_corr(corr: pd.DataFrame, ax=None):
    """Mean daily rank correlation between factors as a heatmap."""
    k = len(corr)
    ax = _axes(ax, figsize=(1.2 + 0.6 * k, 1.0 + 0.5 * k))
    sns.heatmap(corr, ax=ax, vmin=-1, vmax=1, cmap="RdBu_r", annot=k <= 12, fmt=".2f", square=True,
                cbar=k > 1)
    ax.set(title="Factor rank correlation", xlabel="", ylabel="")
    return ax


def plot_family_ics(factors: pd.DataFrame, paper: pd.Series | None = None, ax=None):
    """Table 6's spread: every factor's test rank IC by family (points), the family mean (bar) and
    the paper's IC (cross), families in the given order."""
    import numpy as np

    ax = _axes(ax, figsize=(8, 3.8))
    families = list(dict.fromkeys(factors["family"]))
    rng = np.random.default_rng(0)  # jitter only
    for i, family in enumerate(families):
        ic = factors.loc[factors["family"] == family, "test IC"].to_numpy(float)
        ax.scatter(i + rng.uniform(-0.18, 0.18, len(ic)), ic, s=12, alpha=0.6, color="C0",
                   label="one factor" if i == 0 else None)
        ax.hlines(np.nanmean(ic), i - 0.3, i + 0.3, color="k", lw=2, label="family mean" if i == 0 else None)
        if paper is not None and family in paper.index:
            ax.scatter(i, paper[family], marker="x", s=60, color="C3", label="paper" if i == 0 else None)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(families)), [f"{f}\n({int((factors['family'] == f).sum())})" for f in families])
    ax.set(xlabel="family (factors)", ylabel="mean daily rank IC, test days",
           title="Table 6: test IC of every factor, by feature extractor")
    ax.legend(fontsize=8)
    return ax


def plot_factor_map(fmap, ax=None, embedding: bool = False, title: str | None = None):
    """Figs. 7-8: a `clustering.FactorMap` in 2-D, one colour per family, one marker per k-means
    cluster. `embedding=False`: the paper's layout (centres as crosses, the first at (0, 0));
    `True`: the classical MDS embedding of the same distances."""
    ax = _axes(ax, figsize=(5, 4.5))
    xy = fmap.embedding if embedding else fmap.layout
    families = list(dict.fromkeys(fmap.families))
    fam = np.asarray(fmap.families)
    markers = "osD^v<>p"
    for i, family in enumerate(families):
        for c in np.unique(fmap.cluster):
            sel = (fam == family) & (fmap.cluster == c)
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=30, alpha=0.75, color=f"C{i}",
                           marker=markers[c % len(markers)],
                           label=family if c == fmap.cluster[fam == family].min() else None)
    if not embedding:
        ax.scatter(fmap.centres[:, 0], fmap.centres[:, 1], marker="x", s=80, color="k",
                   label="cluster centre")
    ax.set_aspect("equal", adjustable="datalim")
    kind = "classical MDS of the divergence" if embedding else "the paper's layout"
    ax.set(title=title or f"{', '.join(families)}: {kind}", xlabel="", ylabel="")
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_family_distances(table: pd.DataFrame, ax=None, title: str = "Mean divergence between families"):
    """A `clustering.family_distances` table as a heat map (diagonal: within a family)."""
    ax = _axes(ax, figsize=(4.5, 3.8))
    sns.heatmap(table.astype(float), annot=True, fmt=".3f", cmap="viridis_r", ax=ax, cbar=False)
    ax.set(title=title, xlabel="", ylabel="")
    return ax


def plot_factor_map_rows(fmaps):
    """`plot_factor_maps` for several maps in one figure, a row each (one figure per notebook cell,
    so that the cell's figure name is one target)."""
    _, grid = plt.subplots(len(fmaps), 2, figsize=(10, 4.5 * len(fmaps)), squeeze=False)
    for fmap, row in zip(fmaps, grid, strict=True):
        plot_factor_maps(fmap, axes=row)
    return grid


def plot_factor_maps(fmap, axes=None):
    """`plot_factor_map` twice, side by side: the paper's layout and the MDS embedding."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    plot_factor_map(fmap, ax=axes[0], title=f"paper's layout (window {fmap.window})")
    plot_factor_map(fmap, ax=axes[1], embedding=True, title="classical MDS of the divergence")
    return axes
