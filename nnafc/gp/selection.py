"""Selection: hall of fame by training IC -> validation IC -> greedy correlation filter."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from nnafc import ops
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.data.windows import period_labels
from nnafc.factor import Factor
from nnafc.gp.config import GPConfig, as_config
from nnafc.gp.factors import factor_from_formula
from nnafc.gp.fitness import WORST, make_block, score

Tensor = torch.Tensor

__all__ = ["select", "max_abs_corr"]


def select(evaluated: pd.DataFrame, panel: Panel, split: Split,
           cfg: GPConfig | dict | None = None) -> tuple[list[Factor], pd.DataFrame, pd.DataFrame, str]:
    """Hall of fame by training IC -> validation IC -> greedy correlation filter.

    The best `hof_size` formulas by training IC are ranked by validation IC and kept greedily
    unless one kept before correlates at |corr| >= `corr_threshold`. A converged population
    fills the hall of fame with near-duplicates (CSI 300 2016, population 500 x 20 generations:
    27 of 250 passed at 0.9), so while fewer than `n_factors` are kept the next `hof_size`
    formulas by training IC are screened the same way (`round` 1, 2, ...), rather than ranking
    one huge hall of fame on a few noisy validation days.

    `evaluated` has columns formula and train_ic (NaN = failed). Returns (factors and their
    table, best validation IC first; the screened candidates with round / valid_ic / kept /
    max_corr / reason; "valid", or "train" when the split has no labelled validation day).
    """
    cfg = as_config(cfg)
    ranked = (evaluated.dropna(subset=["train_ic"])
              .sort_values(["train_ic", "formula"], ascending=[False, True], kind="stable")
              .reset_index(drop=True))
    valid_days = split.valid
    probe = period_labels(panel["close"][:valid_days.stop], valid_days, cfg.horizon)  # (D, N)
    has_valid = valid_days.stop > valid_days.start and bool(np.isfinite(probe).any())
    scored = valid_days if has_valid else split.train
    start = max(0, scored.start - cfg.history)  # the same warm-up as in training, not the whole past
    block = make_block(panel, start, scored, cfg, cfg.cache_mb)

    rounds: list[pd.DataFrame] = []
    kept: list[tuple[str, float, float, float]] = []  # formula, train IC, valid IC, max |corr|
    kept_ranks: list[Tensor] = []
    size = cfg.hall_of_fame
    for k, first in enumerate(range(0, len(ranked), size), start=1):
        hof = ranked.iloc[first:first + size].copy()
        hof.insert(0, "round", k)
        ranks, valid_ic = {}, []
        for i, formula in zip(hof.index, hof["formula"], strict=True):
            try:
                values = block.evaluator(formula)
                ic, _ = score(values, block, cfg)
                ranks[i] = ops.cs_rank(values[block.rows]).double()  # (D, N) for the correlation filter
            except (ValueError, RuntimeError, ArithmeticError, IndexError):
                ic = WORST
            valid_ic.append(ic if math.isfinite(ic) else np.nan)
        hof["valid_ic"] = valid_ic
        hof["kept"] = False
        hof["max_corr"] = np.nan
        hof["reason"] = np.where(hof["valid_ic"].isna(), "undefined validation IC", "")
        order = hof.dropna(subset=["valid_ic"]).sort_values(
            ["valid_ic", "train_ic", "formula"], ascending=[False, False, True], kind="stable").index
        for i in order:
            if len(kept) == cfg.n_factors:
                hof.loc[i, "reason"] = "enough factors"
                continue
            corr = max_abs_corr(ranks[i], kept_ranks) if kept_ranks else 0.0
            hof.loc[i, "max_corr"] = corr
            if corr >= cfg.corr_threshold:
                hof.loc[i, "reason"] = f"|corr| >= {cfg.corr_threshold}"
                continue
            kept.append((hof.loc[i, "formula"], hof.loc[i, "train_ic"], hof.loc[i, "valid_ic"], corr))
            kept_ranks.append(ranks[i])
            hof.loc[i, "kept"] = True
            hof.loc[i, "reason"] = "kept"
        rounds.append(hof)
        if len(kept) == cfg.n_factors:
            break
    block.evaluator.clear()
    columns = ["round", "formula", "generation", "train_ic", "valid_ic", "kept", "max_corr", "reason"]
    screened = pd.concat(rounds, ignore_index=True) if rounds else pd.DataFrame(columns=columns)

    on = "valid" if has_valid else "train"
    factors, rows = [], []
    for formula, tr, va, corr in sorted(kept, key=lambda x: (-x[2], -x[1], x[0])):
        meta = {"train_ic": float(tr), "valid_ic": float(va), "selected_on": on, "seed": cfg.seed}
        f = factor_from_formula(formula, meta=meta, dtype=cfg.dtype)
        factors.append(f)
        rows.append({"name": f.name, "formula": formula, "infix": f.meta["infix"], "rpn": f.meta["rpn"],
                     "train_ic": meta["train_ic"], "valid_ic": meta["valid_ic"], "max_corr": float(corr)})
    columns = ["name", "formula", "infix", "rpn", "train_ic", "valid_ic", "max_corr"]
    return factors, pd.DataFrame(rows, columns=columns), screened, on


def max_abs_corr(r: Tensor, others: list[Tensor]) -> float:
    """Largest |mean daily Pearson| between ranks `r` (D, N) and each of `others`, all at once."""
    o = torch.stack(others)  # (K, D, N)
    valid = torch.isfinite(o) & torch.isfinite(r)  # (K, D, N) jointly ranked stocks
    zero = torch.zeros((), dtype=o.dtype, device=o.device)
    n = valid.sum(-1, keepdim=True).clamp(min=1)
    x = torch.where(valid, r.expand_as(o), zero)
    y = torch.where(valid, o, zero)
    dx = torch.where(valid, x - x.sum(-1, keepdim=True) / n, zero)
    dy = torch.where(valid, y - y.sum(-1, keepdim=True) / n, zero)
    den = ((dx * dx).sum(-1) * (dy * dy).sum(-1)).sqrt()  # (K, D)
    ok = (valid.sum(-1) >= 3) & (den > 0)
    corr = torch.where(ok, (dx * dy).sum(-1) / torch.where(ok, den, torch.ones_like(den)), zero)
    days = ok.sum(-1)  # (K,)
    mean = corr.sum(-1) / days.clamp(min=1)  # (K,) mean daily correlation; 0 if never defined
    return float(mean.abs().max())
