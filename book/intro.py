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
# # NNAFC, reproduced
#
# This book re-executes the paper *Neural Network-based Automatic Factor Construction*
# (Fang, Chen, Xu et al.) on real Chinese A-share daily data (2010–2020), with the `nnafc`
# Python package. Every number on these pages was computed when the book was built, from the
# parameters recorded in each chapter; where the paper reports a number, it stands beside ours
# in a column marked *paper*, and where they differ the text says so.

# %% tags=["parameters"]
results = None  # the run's results directory, where each chapter recorded its claims (nnafc book sets it)
chapters = []  # the chapters of this run, in the book's order (nnafc book sets them)
failed = []  # chapters that failed to execute
params_file = None  # the parameter set that built the book
data = None  # the data directory it read (shown by name, never by path)

# %% [markdown]
# ## The paper's claims, ours beside them
#
# One row per claim: the paper's number (— where it states the claim without one), ours, the
# difference, and a verdict computed from the chapter's own figures by the rules of
# `nnafc.headline` — *holds* within a stated tolerance of the paper's number (or above a stated
# level where the paper gives none), *partly* on the paper's side of zero but farther, *does not
# hold* otherwise; *not run* where the chapter has no number for it yet. Each chapter shows the
# rows it recorded at its end, and the text there says why ours differ.

# %% tags=["remove-input"]
from IPython.display import HTML, Markdown
from myst_nb import glue

from nnafc import headline

claims = headline.collect(results, chapters, failed)
counts = headline.verdict_counts(claims)
for verdict, n in counts.items():
    glue(f"front_{verdict.replace(' ', '_')}", n, display=False)
HTML(headline.front_table(claims))

# %% [markdown]
# Of these claims {glue:text}`front_holds` hold, {glue:text}`front_partly` hold partly,
# {glue:text}`front_does_not_hold` do not hold and {glue:text}`front_not_run` are not run yet.

# %% tags=["remove-input"]
built = headline.provenance(params_file, data)
Markdown(f"Built from `{built['parameters']}` on *{built['data']}*, code `{built['code']}`, "
         f"on {built['date']}.")

# %% [markdown]
# How the pages were made: `nnafc book --params params/<set>.yaml` executes each chapter with
# papermill into a run directory, then renders the executed notebooks with execution off; this
# page is executed last, from what the chapters recorded. Re-run it on other dates, universes or
# networks by writing another parameter file.
#
# - {doc}`kernel` (§3.2, Fig. 3): the differentiable rank-IC kernel g(x) against rank, its
#   sensitivity to p, and how it tracks the exact rank IC on real days.
# - {doc}`pretraining` (§3.3, Tables 2–3, Fig. 6): how well the MLP and the cross-sectional
#   structure mimic the Table 1 indicators; one factor's construction (ICs, saliency maps); the
#   pruning rate; the factor study's FCN factors out of sample.
# - {doc}`gp_vs_nnafc` (§3.1, §4.2, Table 4): Only GP / GP and NNAFC / Only NNAFC on the study's
#   rolling windows (test rank IC, ICIR, diversity beside the paper); the formulas GP found;
#   formulas (9) → (10) and whether a GP child or an NNAFC update keeps its parent's IC.
# - {doc}`extractors` (§4.3, Table 6): GP, FCN, LeNet, ResNet, LSTM, TCN and Transformer on the
#   study's windows: test IC beside the paper's, spread over factors, validation against test,
#   each family against FCN and GP window by window, diversity on equally many factors,
#   construction time.
# - {doc}`clustering` (§4.5, Figs. 7–8): the factors of FCN, spatial and temporal networks (and
#   of deeper and wider variants) clustered by their Eq. 19 distances, drawn as the paper does
#   and by classical scaling, with the overlap the paper reads off its figures measured per window.
# - {doc}`real_world` (§4.4, Table 7, and §4.2, Table 5): the XGBoost multi-factor strategy on
#   PK 50, GP 50 and Combine 50 per network against ZZ500 / HS300 on a window of the factor study,
#   with bootstrap Sharpe intervals, a paired test of each Combine 50 against PK 50, costs and
#   Qlib's TopkDropout; Table 5's three schemes in the study's windows; Qlib's CSI 300 protocol.

