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
# # Do extractors find different factors? (§4.5, Figs. 7–8)
#
# The paper takes 50 factors each of an FCN, a spatial and a temporal network, measures every
# pair of factors by the cross-entropy of Eq. 19, groups them into three clusters with k-means
# and draws the clusters on a plane: one centre at (0, 0), the others at their distances, every
# factor at its distance from its centre in a random direction. It reads from the picture that
# LSTM's factors are the most spread out, that the FCN and LeNet share much of their space
# (LeNet's information "a subset of the FCN's"), and — with deeper and wider networks (Fig. 8) —
# that the fully connected and recurrent structures find different information.
#
# Here the same map is drawn from the book's factor study (`params/study.yaml`) on a window's
# test days, beside a standard embedding of the same distances (classical multidimensional
# scaling, whose axes mean something; the paper's layout keeps only distances to a centre), and
# the picture's claims are measured instead of eyeballed: the mean divergence within and
# between families, each family's silhouette (1: apart from the others; 0 or below: shared
# space), the share of each factor's nearest neighbours from another family against its chance
# level, and how well the k-means clusters recover the families — on every window where the
# families were built, so the spread over years can be read.

# %% tags=["parameters"]
data = None  # data directory; None: NNAFC_DATA (the factor study needs real data)
seed = 0
results = None  # where this chapter records its claims for the front page (nnafc book sets it)
device = "cpu"
study = None  # a study parameter file; None: the repository's params/study.yaml and its committed zoo
maps = [["fcn", "lenet", "lstm"], ["fcn", "resnet", "tcn"], ["fcn-lite", "lenet", "lstm"]]  # Fig. 7 left, right,
#   and the left with the FCN trained under the other families' savings (like for like)
variants = ["fcn-deep", "lenet-wide", "lstm-deep"]  # Fig. 8: deeper / wider; [] skips it
bases = ["fcn-lite", "lenet", "lstm"]  # each variant's like-for-like base (same CPU savings), in order
window = 0  # the study window whose test days the maps are drawn on
n_clusters = 3  # k-means clusters (the paper: three)
neighbours = 5  # nearest factors counted for "neighbours from others"
days = None  # test days the distances average over; None: all of them, an int: that many at random

# %%
from IPython.display import Markdown
from myst_nb import glue

from nnafc import chapter, plotting
from nnafc.evaluate import clustering
from nnafc.study import Study

chapter.configure(seed=seed, device=device)
f_study = Study.load(study, data)
drawn = [m for m in [*maps, variants] if m]
Markdown(f"Factor study `{f_study.params.path.name}` on {f_study.panel}; maps on window {window} "
         f"(training from {f_study.window_label(window)}).")

# %% [markdown]
# What the study holds for these families, per window (`nnafc study inventory`):

# %% tags=["nbval-check-output"]
inventory = f_study.inventory()
wanted = list(dict.fromkeys(f for m in drawn for f in m))
inventory[inventory["family"].isin(wanted)].pivot(index="family", columns="window", values="present").loc[wanted]

# %% [markdown]
# ## Fig. 7 (left): FCN, a spatial and a temporal network
#
# Left, the paper's layout (marker: k-means cluster; colour: family; crosses: cluster centres);
# right, the classical scaling of the same distances.

# %% mystnb={"figure": {"caption": "Fig. 7 (left) on our data: the factors of the first map's families on the window's test days, in the paper's layout and in a classical MDS embedding of the same distances.", "name": "fig-map-left"}}
left = clustering.study_map(f_study, maps[0], window, n_clusters, days, seed)
axes = plotting.plot_factor_maps(left)

# %% [markdown]
# The measures behind the picture, per family: silhouette, neighbours from other families
# (beside the share expected if neighbours were drawn at random), the mean divergence within the
# family and to the nearest other family, and the share of its factors in its own main cluster.

# %% tags=["nbval-check-output"]
clustering.overlap(left, neighbours).round(3)

# %% mystnb={"figure": {"caption": "Mean divergence between the factors of each pair of families (diagonal: within a family) on the first map's window.", "name": "fig-map-distances"}}
ax = plotting.plot_family_distances(clustering.family_distances(left))

# %% [markdown]
# How well k-means' clusters recover the families: purity (the share of factors whose cluster's
# main family is their own) and the adjusted Rand index (0: no better than chance, 1: the
# clusters are the families).

# %%
glue("map_purity", clustering.purity(left), display=False)
glue("map_ari", clustering.adjusted_rand(left), display=False)
Markdown(f"Purity {clustering.purity(left):.2f}, adjusted Rand index {clustering.adjusted_rand(left):.2f}.")

# %% [markdown]
# ## The same measures on every window
#
# One picture is one window. The measures on every window where each family of a map has at
# least two factors, then their mean and spread over windows:

# %% tags=["nbval-check-output"]
every_window = {tuple(m): clustering.study_maps(f_study, m, n_clusters, days, seed) for m in drawn}
per_window = {m: clustering.window_measures(ms, neighbours) for m, ms in every_window.items()}
per_window[tuple(maps[0])].round(3)

# %% tags=["nbval-check-output"]
clustering.summary(per_window[tuple(maps[0])]).round(3)

# %% [markdown]
# ## Fig. 7 (right) and the like-for-like map
#
# The paper's right panel swaps in a ResNet and a TCN. Our LeNet, ResNet, LSTM and TCN train
# under CPU savings (a tenth of each day's stocks per batch, fewer epochs) that the FCN does
# not, so a map can separate families by how they were trained rather than by their structure;
# `fcn-lite` is the FCN under the same savings.

# %% mystnb={"figure": {"caption": "The other maps on the same window: Fig. 7 (right) and the like-for-like map, each in the paper's layout and in the MDS embedding.", "name": "fig-map-others"}}
others = [clustering.study_map(f_study, m, window, n_clusters, days, seed) for m in maps[1:]]
axes = plotting.plot_factor_map_rows(others) if others else None

# %% tags=["nbval-check-output"]
import pandas as pd

pd.concat({", ".join(m): clustering.summary(per_window[tuple(m)]) for m in maps[1:]}).round(3) if maps[1:] else None

# %% [markdown]
# ## Fig. 8: deeper and wider networks
#
# Twice the FCN's depth, twice LeNet's width, a two-layer LSTM (the study's `fcn-deep`,
# `lenet-wide`, `lstm-deep`, on the first window only, under the CPU savings).

# %% mystnb={"figure": {"caption": "Fig. 8 on our data: deeper and wider variants of the Fig. 7 networks, in the paper's layout and in the MDS embedding.", "name": "fig-map-variants"}}
deep = clustering.study_map(f_study, variants, window, n_clusters, days, seed) if variants else None
axes = plotting.plot_factor_maps(deep) if deep is not None else None

# %% tags=["nbval-check-output"]
clustering.summary(per_window[tuple(variants)]).round(3) if variants else None

# %% [markdown]
# Are the more complex variants better factors? Each variant beside its base built the same way
# (`fcn-lite` for the deep FCN), on the windows the variants were built on: mean test and
# validation rank IC over factors, and the drop from one to the other.

# %% tags=["nbval-check-output"]
from nnafc.evaluate import extractors

pairs = [f for pair in zip(bases, variants, strict=False) for f in pair]
built = extractors.factor_table(f_study, pairs)
on = built["window"].isin(set(built.loc[built["family"].isin(variants), "window"]))
complexity = extractors.table6(built[on], pairs) if pairs else None
columns = ["factors", "windows", "valid IC", "test IC", "test IC std", "valid - test"]
complexity[columns].round(4) if pairs else None

# %% tags=["hide-input"]
fig7 = clustering.mean_family_distances(every_window[tuple(maps[0])])
fig8 = clustering.mean_family_distances(every_window[tuple(variants)]) if variants else None
sil = clustering.summary(per_window[tuple(maps[0])])["silhouette"]
glue("map_families", ", ".join(maps[0]), display=False)
glue("map_windows", int(per_window[tuple(maps[0])].index.get_level_values("window").nunique()), display=False)
glue("map_sil_min", float(sil.min()), display=False)
glue("map_sil_min_family", str(sil.idxmin()), display=False)
glue("map_sparsest", str(pd.Series({f: fig7.loc[f, f] for f in fig7.index}).idxmax()), display=False)

# %% [markdown]
# ## What holds of §4.5 on our data
#
# Over the {glue:text}`map_windows` windows of the first map ({glue:text}`map_families`):
# the family whose factors are most spread out (largest mean divergence within it) is
# {glue:text}`map_sparsest`; the family with most shared space (lowest silhouette) is
# {glue:text}`map_sil_min_family` at {glue:text}`map_sil_min:.2f`. On the first window the
# k-means clusters recover the families with purity {glue:text}`map_purity:.2f` (adjusted Rand
# index {glue:text}`map_ari:.2f`). A silhouette well above zero and a purity near one mean
# the extractors' factors barely overlap — the paper's picture of a large space shared by
# the FCN and LeNet is then not what our factors show, although "nearer" (a smaller distance
# between two families than to a third) can still hold; the rows below say which.
#
# Why ours may differ: ten factors per family (the paper: 50), all-A-share windows of 2017–2020
# (the paper does not give its window), our spatial and temporal networks trained under CPU
# savings, and distances on cross-sectional ranks (the paper z-scores raw values; ranks keep
# one factor's tails from dominating its softmax).

# %% [markdown]
# ## The claims this chapter checks
#
# The rows this chapter records for the book's front page (distances averaged over windows):
# ours and a verdict by the rules stated in `nnafc.headline` (the paper gives no numbers here).

# %%
from nnafc import headline

headline.record(headline.clustering_claims(fig7, fig8), "clustering", results)
