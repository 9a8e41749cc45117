# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The differentiable rank-IC kernel (§3.2, Fig. 3)
#
# NNAFC trains networks to maximise the Spearman rank IC between their output and the next
# $\Delta t$-day return. `rank()` has no gradient, so the paper replaces it by a kernel
#
# $$ g(x) = \frac{1}{1 + \exp\!\big(-p\,\frac{x - \bar x}{2\,\mathrm{std}(x)}\big)} \qquad (13) $$
#
# and maximises the mean over $q$ days of the Pearson correlation of $g(\text{factor})$ and
# $g(\text{return})$ (Eq. 14), with $p = 1.83$. This chapter checks what that buys: how close
# $g(x)$ is to $\mathrm{rank}(x)$, how that depends on $p$ and on the shape of the data, and how
# closely the kernel IC tracks the exact rank IC on real A-share days.

# %% tags=["parameters"]
data = None  # data directory; None: NNAFC_DATA, else the simulated market
seed = 0
results = None  # where this chapter records its claims for the front page (nnafc book sets it)
device = "cpu"
universe = "csi300"
start = "2016-01-01"
end = "2020-12-31"
horizon = 5  # Δt of Eq. 12
p = 1.83  # the paper's kernel parameter
p_values = [0.5, 1.0, 1.83, 2.5, 3.4, 5.0, 8.0]
n_samples = 20000  # draws per simulated distribution
factors = ["REV5", "ROC20", "MA20", "BOLL20", "VOL20", "AMP20", "VSTD20", "RSI12"]
outlier_share = 0.01  # share of forward returns replaced by ±100 % in the robustness check

# %%
import matplotlib.pyplot as plt

from nnafc import chapter, plotting
from nnafc.evaluate import kernel

ch = chapter.setup(data=data, universe=universe, start=start, end=end, seed=seed, device=device)
ch.banner()

# %% [markdown]
# ## Figure 3: g(x) against rank on simulated Gaussians
#
# The paper draws four Gaussians of different mean and deviation but does not give them; we
# use the four below. Because $g$ standardises $x$ first, **each Gaussian on its own gives the
# same curve**: mean and deviation alone cannot change how $g$ relates to rank. What the
# figure can show is the shape of that curve, and what happens when the four are pooled
# into one cross-section (a mixture, like stocks from different groups on one day).

# %% mystnb={"figure": {"caption": "Fig. 3 reproduced: the kernel g(x) against the normalised rank of x, on simulated cross-sections of several shapes.", "name": "fig-kernel"}}
samples = kernel.kernel_samples(n=n_samples // 4, p=p, seed=seed)
ax = plotting.plot_kernel_vs_rank(samples)

# %% [markdown]
# ## Sensitivity to p
#
# For $g$ to stand in for rank, Pearson on $g(x)$ should behave like Spearman on $x$: $g(x)$
# should be close to linear in rank$(x)$. Below: the correlation of $g_p(x)$ with rank$(x)$
# for cross-sections of different shapes, and the share of values $g$ leaves unsaturated.
# For Gaussian data, rank$/n \approx \Phi(z) \approx$ sigmoid$(1.70 z)$, so $p \approx 3.4$
# (not 1.83) would make $g$ match the normal rank transform most closely.

# %% mystnb={"figure": {"caption": "How the kernel's p changes its agreement with rank: correlation of g(x) with rank(x), left, and the share of values g leaves unsaturated, right, per distribution.", "name": "fig-p-sensitivity"}}
table = kernel.p_sensitivity(kernel.distributions(n_samples, seed=seed), p_values)
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
plotting.plot_p_sensitivity(table, ax=axes[0])
ax = plotting.plot_p_sensitivity(table, ax=axes[1], value="share_unsaturated")

# %% tags=["nbval-check-output"]
table.pivot(index="p", columns="distribution", values="corr_with_rank").round(4)

# %% [markdown]
# ## Kernel IC against the exact rank IC on real days
#
# For a set of prior-knowledge factors (`nnafc.pk`), per trading day: the exact rank IC
# (Spearman) with the forward return of Eq. 12, the Pearson IC, and the kernel IC of Eq. 14.
# A good surrogate tracks the rank IC closely across days (high correlation) with little bias.

# %%
from nnafc import pk
from nnafc.data import forward_returns

panel = ch.panel
returns = forward_returns(panel["close"], horizon=horizon)
values = {name: pk.compute(name, panel) for name in factors}
tracking = kernel.tracking_table(values, returns, panel.in_universe, p=p)
tracking.round(4)

# %% mystnb={"figure": {"caption": "The first PK factor's daily rank, Pearson and kernel IC on real days (20-day means), left, and the kernel IC against the exact rank IC day by day, right.", "name": "fig-kernel-daily"}}
daily = kernel.daily_ics(values[factors[0]], returns, panel.in_universe, p=p, dates=panel.dates)
fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
plotting.plot_daily_ic(daily.rolling(20).mean(), ax=axes[0], title=f"{factors[0]}: 20-day mean of daily IC")
ax = plotting.plot_ic_scatter(daily["rank IC"], daily["kernel IC"], ax=axes[1], title="kernel vs rank IC")

# %% [markdown]
# ## With outliers in the returns
#
# Real return data has bad ticks and extreme moves. Replace a share of the forward returns by
# ±100 % and measure again: the rank IC is by construction barely moved, the Pearson IC is
# dragged by the outliers, and the kernel IC — which squashes them — should stay close to the
# rank IC.

# %%
robust = kernel.tracking_table(
    values, returns, panel.in_universe, p=p, outlier_share=outlier_share, seed=seed
)
robust.round(4)

# %%
from IPython.display import Markdown

clean_k, dirty_k = tracking["corr(kernel IC, rank IC)"].mean(), robust["corr(kernel IC, rank IC)"].mean()
clean_p, dirty_p = tracking["corr(Pearson IC, rank IC)"].mean(), robust["corr(Pearson IC, rank IC)"].mean()
Markdown(
    f"Averaged over the {len(factors)} factors, the kernel IC's correlation with the exact rank IC "
    f"goes from **{clean_k:.3f}** to **{dirty_k:.3f}** when {outlier_share:.0%} of returns are "
    f"outliers; the Pearson IC's goes from **{clean_p:.3f}** to **{dirty_p:.3f}**."
)

# %% [markdown]
# ## What we take from this
#
# * $g$ is a monotone, location-scale invariant squashing: on its own it cannot reproduce the
#   *rank* of a cross-section, only bound the influence of its tails. The paper's claim that $g$
#   "performs almost the same function as rank()" holds to the degree measured above, and
#   depends on the shape of the cross-section, not on its mean or deviation.
# * The choice $p = 1.83$ is not the value that makes $g$ closest to rank for Gaussian data;
#   the sensitivity table shows how much that matters (little, for the correlation).
# * As a training objective, what matters is that the kernel IC moves with the rank IC from day
#   to day and resists outliers — the tracking tables measure exactly that.

# %% [markdown]
# ## The claims this chapter checks
#
# The rows this chapter records for the book's front page: the paper's number, ours and a
# verdict by the rules stated in `nnafc.headline`.

# %%
from nnafc import headline

headline.record(headline.kernel_claims(tracking, robust), "kernel", results)
