"""Fitness: a formula's `(T, N)` values on a block of days, and its mean daily rank IC.

A tree is evaluated on the whole block at once; the values of its costly subtrees (rolling
windows, cross-sectional ranks) are memoised by their string in a bounded LRU (children share
subtrees with their parents), and the labels are ranked once for all formulas.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from deap import gp

from nnafc import ops
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.data.windows import period_labels
from nnafc.gp.config import DTYPES, GPConfig, as_config
from nnafc.gp.formula import FUNCTIONS, INPUTS, parse, structure

Tensor = torch.Tensor

__all__ = ["WORST", "CACHED", "Evaluator", "evaluate", "Block", "make_block", "train_block",
           "daily_rank_ic", "score", "tree_fitness", "train_ic"]

WORST = float("-inf")  # fitness of a failed or degenerate tree: below any achievable IC

# Subtrees worth memoising: rolling windows and cross-sectional ranks cost 5-300 ms on a year of
# CSI 300; elementwise ops and shifts cost ~1 ms, less than the page faults of keeping their
# (T, N) results (measured: caching every node made all-A-share evaluation slower, not faster).
CACHED = frozenset({"ts_mean", "ts_std", "ts_min", "ts_max", "ts_rank", "ts_corr", "cs_rank"})


def _fields(panel: Panel, start: int, stop: int, dtype: torch.dtype, device: str) -> dict[str, Tensor]:
    """The five inputs on days [start, stop) as `(T, N)` tensors."""
    return {k: torch.as_tensor(np.ascontiguousarray(panel[k][start:stop]), device=device).to(dtype)
            for k in INPUTS}


class Evaluator:
    """Evaluates trees on one block of days, memoising subtree values by their string (LRU).

    The cache holds at most `cache_mb` of `(T, N)` values of proper subtrees rooted at a `CACHED`
    (costly) op; whole formulas are memoised by their fitness instead. `hits` / `misses` count
    lookups of primitive nodes.
    """

    def __init__(self, fields: dict[str, Tensor], cache_mb: float = 512.0) -> None:
        self.fields = fields
        close = fields["close"]
        entry = max(1, close.numel() * close.element_size())
        self.capacity = int(cache_mb * 2**20 // entry)  # entries; 0 disables the cache
        self.cache: OrderedDict[str, Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, tree: str | gp.PrimitiveTree) -> Tensor:
        """`(T, N)` values of the formula on this block (may raise on invalid windows etc.)."""
        tree = parse(tree)
        keys, kids = structure(tree)
        return self._eval(tree, keys, kids, 0)

    def _eval(self, tree: Sequence, keys: list[str], kids: list[tuple[int, ...]], i: int) -> Any:
        node = tree[i]
        if node.arity == 0:
            value = node.value
            return self.fields[value] if isinstance(value, str) else value  # input or window
        key = keys[i]
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        out = FUNCTIONS[node.name][0](*(self._eval(tree, keys, kids, k) for k in kids[i]))
        if self.capacity > 0 and i > 0 and node.name in CACHED:  # not roots: a whole tree is never
            #   a subtree of its offspring (crossover swaps below the roots, mutation replaces parts)
            self.cache[key] = out
            if len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        return out

    def clear(self) -> None:
        self.cache.clear()


def evaluate(formula: str | gp.PrimitiveTree, panel: Panel, dtype: str = "float64",
             device: str = "cpu") -> np.ndarray:
    """`(T, N)` float32 values of a formula on the whole panel (NaN where undefined)."""
    values = Evaluator(_fields(panel, 0, len(panel.dates), DTYPES[dtype], device), cache_mb=0)(formula)
    return values.to(torch.float32).cpu().numpy()



@dataclass
class Block:
    """Days [start, stop) of a panel as tensors, with labels and a mask on the scored rows."""

    evaluator: Evaluator
    rows: slice  # scored rows, relative to start
    labels: Tensor  # (D, N) forward returns on the scored rows, float64
    mask: Tensor  # (D, N) bool: in the universe and labelled
    n_days: int  # scored days with at least 3 labelled stocks
    label_ranks: Tensor  # (D, N) average ranks of the labels over `mask`, reused by every formula


def make_block(panel: Panel, start: int, scored: slice, cfg: GPConfig, cache_mb: float) -> Block:
    """Days [start, scored.stop) as a block; its labels read no price after the last scored day."""
    stop = scored.stop
    labels = period_labels(panel["close"][:stop], scored, cfg.horizon)  # (D, N)
    labels_t = torch.as_tensor(labels, dtype=torch.float64, device=cfg.device)
    mask = torch.as_tensor(panel.in_universe[scored], device=cfg.device) & torch.isfinite(labels_t)
    fields = _fields(panel, start, stop, DTYPES[cfg.dtype], cfg.device)
    rows = slice(scored.start - start, scored.stop - start)
    label_ranks = ops.average_ranks(torch.where(mask, labels_t, torch.full_like(labels_t, float("nan"))))
    return Block(Evaluator(fields, cache_mb), rows, labels_t, mask, int((mask.sum(1) >= 3).sum()),
                  label_ranks)


def daily_rank_ic(values: Tensor, block: Block) -> Tensor:
    """`(D,)` daily rank IC of `(D, N)` values on the block: equal to `metrics.rank_ic(values,
    labels, mask)`, with the labels' ranks reused on days where the formula covers every
    labelled stock (most days), so a formula costs one ranking instead of two."""
    valid = block.mask & torch.isfinite(values)  # (D, N) pairs that count
    nan = torch.full_like(block.labels, float("nan"))
    fr = ops.average_ranks(torch.where(valid, values.to(torch.float64), nan))  # (D, N)
    lr = block.label_ranks
    redo = (valid != block.mask).any(dim=1)  # (D,) days where the formula misses labelled stocks
    if bool(redo.any()):
        lr = lr.clone()
        lr[redo] = ops.average_ranks(torch.where(valid[redo], block.labels[redo], nan[redo]))
    return _pearson(fr, lr, valid)


def _pearson(x: Tensor, y: Tensor, valid: Tensor) -> Tensor:
    """`(D,)` Pearson correlation of each row over `valid`; NaN below 3 pairs or without spread
    (the conventions of `nnafc.metrics`)."""
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    count = valid.sum(-1)  # (D,)
    n = count.clamp(min=1).to(x.dtype).unsqueeze(-1)  # (D, 1)
    mx = torch.where(valid, x, zero).sum(-1, keepdim=True) / n
    my = torch.where(valid, y, zero).sum(-1, keepdim=True) / n
    dx, dy = torch.where(valid, x - mx, zero), torch.where(valid, y - my, zero)  # (D, N)
    sxy, sxx, syy = (dx * dy).sum(-1), (dx * dx).sum(-1), (dy * dy).sum(-1)
    tol = (100 * torch.finfo(x.dtype).eps) ** 2 * count
    ok = (count >= 3) & (sxx > tol * mx.squeeze(-1) ** 2) & (syy > tol * my.squeeze(-1) ** 2)
    corr = (sxy / torch.where(ok, sxx * syy, torch.ones_like(sxx)).sqrt()).clamp(-1.0, 1.0)
    return torch.where(ok, corr, torch.full_like(corr, float("nan")))


def score(values: Tensor, block: Block, cfg: GPConfig) -> tuple[float, Tensor]:
    """(mean daily rank IC or WORST, daily ICs) of `(T, N)` values on the block's scored rows."""
    v = values[block.rows]
    if v.shape != block.labels.shape:  # e.g. a bare window (cannot happen for typed trees)
        return WORST, torch.full((block.labels.shape[0],), float("nan"))
    labelled = int(block.mask.sum())
    covered = int((block.mask & torch.isfinite(v)).sum())
    daily = daily_rank_ic(v, block)  # (D,) float64
    if labelled == 0 or covered < cfg.min_coverage * labelled:
        return WORST, daily
    defined = torch.isfinite(daily)
    if int(defined.sum()) == 0 or int(defined.sum()) < cfg.min_ic_days * block.n_days:
        return WORST, daily
    mean = float(daily[defined].mean())
    return (mean if math.isfinite(mean) else WORST), daily


def tree_fitness(tree: str | gp.PrimitiveTree, block: Block, cfg: GPConfig) -> float:
    """Mean training rank IC; WORST for anything that fails (bad windows, overflow, OOM...)."""
    try:
        return score(block.evaluator(tree), block, cfg)[0]
    except (ValueError, RuntimeError, ArithmeticError, IndexError):
        return WORST


def train_block(panel: Panel, split: Split, cfg: GPConfig) -> Block:
    start = max(0, split.train.start - cfg.history)
    return make_block(panel, start, split.train, cfg, cfg.cache_mb)


def train_ic(formula: str, panel: Panel, split: Split, cfg: GPConfig | dict | None = None) -> float:
    """The GP fitness of one formula: mean daily rank IC on the training days (WORST if degenerate)."""
    cfg = as_config(cfg)
    return tree_fitness(formula, train_block(panel, split, cfg), cfg)

