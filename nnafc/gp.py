"""The genetic-programming baseline of §3.1: strongly typed GP over `nnafc.ops`, on rank IC.

The paper's baseline ("Only GP", Table 4) searches closed-form formulas in reverse Polish
notation with the same objective as NNAFC: the Spearman correlation (rank IC) of the factor
with the forward return. Here every tree is a formula over the five inputs (open, high, low,
close, volume) built from the same operators the PK library uses, so a GP factor is a formula
the prior-knowledge library could have contained, and it can be evaluated on any panel.

- **Types.** `Series` nodes are `(T, N)` tensors; `int` nodes are windows, only terminals from
  a small set (3, 5, 10, 20), so `ts_mean(close, 20)` is expressible and `ts_mean(close, close)`
  is not. Types with no primitives (windows) are always filled with a terminal (DEAP's own
  generator would fail on them).
- **Fitness.** Mean daily rank IC on the training days, labels cut at the last training day
  (`forward_returns(..., last_day=...)`), in the panel's point-in-time universe. A tree that
  fails, covers too few stocks or defines too few days' IC gets `WORST` (-inf): never a crash.
- **Search.** Tournament selection, one-point crossover, uniform subtree mutation (`genFull`),
  static limits on height and size, all seeded; stops at `generations` or the wall-clock budget.
- **Speed.** A tree is evaluated on the whole `(T, N)` block at once; the values of its costly
  subtrees (rolling windows, cross-sectional ranks) are memoised by their string in a bounded
  LRU shared across the run (children share subtrees with their parents), each formula's
  fitness is computed once, and the labels are ranked once for all formulas.
- **Selection.** The hall of fame (the best `hof_size` distinct formulas by training IC) is
  ranked by validation rank IC and filtered greedily so that no two kept factors' validation
  values correlate (mean daily Spearman) at |corr| >= `corr_threshold`.

Formulas are DEAP's prefix strings, e.g. formula (9) is `div(sub(high, low), volume)`;
`to_infix` gives `(high - low) / volume` and `to_rpn` the reverse Polish `high low sub volume div`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import math
import operator
import random
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from deap import base, gp, tools

from nnafc import ops
from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.data.windows import forward_returns
from nnafc.factor import Factor

Tensor = torch.Tensor

__all__ = [
    "GPConfig", "GPResult", "GPFormula", "Evaluator", "Series", "WORST", "FUNCTIONS", "INPUTS", "CACHED",
    "as_config", "primitive_set", "parse", "to_infix", "to_rpn", "evaluate", "train_ic", "select",
    "daily_rank_ic", "inheritance",
    "factor_from_formula", "to_json", "from_json", "run_gp",
]  # fmt: skip

WORST = float("-inf")  # fitness of a failed or degenerate tree: below any achievable IC
INPUTS = ("open", "high", "low", "close", "volume")  # the terminals: §3.2's five series
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Series:
    """Type tag of a `(T, N)` tensor node (windows use the built-in `int`)."""


# name -> (function, argument types); the order is the primitive set's (it matters for seeding)
FUNCTIONS: dict[str, tuple[Callable[..., Tensor], tuple[type, ...]]] = {
    "add": (ops.add, (Series, Series)),
    "sub": (ops.sub, (Series, Series)),
    "mul": (ops.mul, (Series, Series)),
    "div": (ops.div, (Series, Series)),  # protected: NaN where |den| < eps
    "neg": (ops.neg, (Series,)),
    "abs": (ops.abs, (Series,)),
    "sign": (ops.sign, (Series,)),
    "log": (ops.log, (Series,)),  # protected: NaN where x <= 0
    "delay": (ops.delay, (Series, int)),
    "delta": (ops.delta, (Series, int)),
    "ts_mean": (ops.ts_mean, (Series, int)),
    "ts_std": (ops.ts_std, (Series, int)),
    "ts_min": (ops.ts_min, (Series, int)),
    "ts_max": (ops.ts_max, (Series, int)),
    "ts_rank": (ops.ts_rank, (Series, int)),
    "ts_corr": (ops.ts_corr, (Series, Series, int)),
    "cs_rank": (ops.cs_rank, (Series,)),
}


# Subtrees worth memoising: rolling windows and cross-sectional ranks cost 5-300 ms on a year of
# CSI 300; elementwise ops and shifts cost ~1 ms, less than the page faults of keeping their
# (T, N) results (measured: caching every node made all-A-share evaluation slower, not faster).
CACHED = frozenset({"ts_mean", "ts_std", "ts_min", "ts_max", "ts_rank", "ts_corr", "cs_rank"})


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class GPConfig:
    """Everything that defines one GP run (besides the data and the split)."""

    population: int = 300  # trees per generation
    generations: int = 20  # generations after the initial population
    tournament_size: int = 3  # selection pressure: best of k random trees
    cxpb: float = 0.6  # probability a pair is recombined by one-point crossover
    mutpb: float = 0.3  # probability a tree gets a uniform subtree mutation
    init_depth: tuple[int, int] = (1, 3)  # min/max height of initial trees (half full, half grow)
    mutation_depth: tuple[int, int] = (0, 2)  # min/max height of a mutation's new subtree (genFull)
    max_depth: int = 6  # static limit on tree height: deeper children are replaced by a parent
    max_size: int = 30  # static limit on nodes (windows count): keeps formulas readable
    windows: tuple[int, ...] = (3, 5, 10, 20)  # the integer window terminals (days)
    n_factors: int = 50  # factors returned (§4.2 compares 50-factor sets)
    hof_size: int | None = None  # hall of fame re-ranked on validation; None: 5 x n_factors (more
    #   rounds of this size follow while the correlation filter leaves fewer than n_factors)
    corr_threshold: float = 0.9  # keep a factor only if |corr| with every kept one is below this
    horizon: int = 5  # label: the h-day forward return (Eq. 12), as NNAFC
    history: int = 100  # days before the scored (training / validation) days fed to the formulas:
    #   their windows' warm-up; a formula whose nested windows reach further is NaN on early days
    min_coverage: float = 0.5  # share of labelled (stock, day) pairs a tree must cover, else WORST
    min_ic_days: float = 0.5  # share of labelled days whose IC must be defined, else WORST
    seed: int = 0  # seeds random (all DEAP draws) and torch: same seed + data -> same factors
    time_budget_s: float | None = None  # stop after the generation that exceeds this wall time
    cache_mb: float = 512.0  # memory for memoised subtree values (LRU); 0 turns caching off
    dtype: str = "float32"  # evaluation precision; ops use float64 internally where it matters
    device: str = "cpu"  # "cpu" or "cuda": where the (T, N) blocks live
    lineage_generations: int = 3  # keep the parent -> child records of the last k generations
    progress: bool = False  # tqdm bar over generations

    def __post_init__(self) -> None:
        for name, minimum in (("population", 2), ("generations", 0), ("tournament_size", 1),
                              ("max_depth", 1), ("max_size", 1), ("n_factors", 1), ("horizon", 1),
                              ("history", 0), ("seed", 0), ("lineage_generations", 0)):
            _check_int(name, getattr(self, name), minimum)
        if self.tournament_size > self.population:
            raise ValueError(f"tournament_size ({self.tournament_size}) exceeds population "
                             f"({self.population})")
        if self.hof_size is not None:
            _check_int("hof_size", self.hof_size, self.n_factors)
        for name in ("cxpb", "mutpb", "min_coverage", "min_ic_days"):
            _check_unit(name, getattr(self, name))
        if not (_is_number(self.corr_threshold) and 0 < self.corr_threshold <= 1):
            raise ValueError(f"corr_threshold must be in (0, 1], got {self.corr_threshold!r}")
        for name in ("init_depth", "mutation_depth"):
            lo_hi = getattr(self, name)
            if (not isinstance(lo_hi, tuple | list) or len(lo_hi) != 2
                    or any(not isinstance(v, int) or isinstance(v, bool) for v in lo_hi)
                    or not 0 <= lo_hi[0] <= lo_hi[1]):
                raise ValueError(f"{name} must be (min, max) heights with 0 <= min <= max, got {lo_hi!r}")
            object.__setattr__(self, name, tuple(lo_hi))
        if self.init_depth[1] > self.max_depth:
            raise ValueError(f"init_depth max {self.init_depth[1]} exceeds max_depth {self.max_depth}")
        if not isinstance(self.windows, tuple | list) or not self.windows:
            raise ValueError(f"windows must be a non-empty list of integers >= 2, got {self.windows!r}")
        for w in self.windows:
            _check_int("window", w, 2)  # ts_std / ts_rank / ts_corr need 2 days
        object.__setattr__(self, "windows", tuple(sorted(set(self.windows))))
        if self.time_budget_s is not None and not (_is_number(self.time_budget_s) and self.time_budget_s > 0):
            raise ValueError(f"time_budget_s must be a positive number or None, got {self.time_budget_s!r}")
        if not (_is_number(self.cache_mb) and self.cache_mb >= 0):
            raise ValueError(f"cache_mb must be a number >= 0, got {self.cache_mb!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be true or false, got {self.progress!r}")

    @property
    def hall_of_fame(self) -> int:
        """Formulas re-ranked on validation: `hof_size`, or 5 x n_factors."""
        return self.hof_size if self.hof_size is not None else 5 * self.n_factors

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> GPConfig:
        """A config from a mapping (YAML); an unknown key raises ValueError naming the closest one."""
        d = dict(d or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in valid:
                close = difflib.get_close_matches(str(key), valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown GP config key {key!r}{hint}; valid: {', '.join(valid)}")
        for key in ("init_depth", "mutation_depth", "windows"):  # YAML gives lists
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        d = asdict(self)
        for key in ("init_depth", "mutation_depth", "windows"):
            d[key] = list(d[key])
        return d


def as_config(cfg: GPConfig | dict | None) -> GPConfig:
    """`cfg` as a GPConfig (a mapping is validated, None gives the defaults)."""
    return cfg if isinstance(cfg, GPConfig) else GPConfig.from_dict(cfg)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_unit(name: str, value: Any) -> None:
    if not (_is_number(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


# --------------------------------------------------------------------------- primitive set and trees


def primitive_set(windows: Iterable[int] = GPConfig.windows) -> gp.PrimitiveSetTyped:
    """The typed primitive set: `FUNCTIONS` over the five inputs and the integer `windows`."""
    pset = gp.PrimitiveSetTyped("factor", [Series] * len(INPUTS), Series)
    pset.renameArguments(**{f"ARG{i}": name for i, name in enumerate(INPUTS)})
    for name, (fn, args) in FUNCTIONS.items():
        pset.addPrimitive(fn, list(args), Series, name=name)
    for w in sorted(set(windows)):
        pset.addTerminal(int(w), int)  # name "20", formatted as 20
    return pset


_PARSE_PSET = primitive_set()  # parsing accepts any integer window, not only the defaults
_TOKEN = re.compile(r"[ \t\n\r\f\v(),]")


def parse(formula: str | gp.PrimitiveTree) -> gp.PrimitiveTree:
    """A tree from its prefix string, e.g. `div(sub(high, low), volume)`; ValueError if malformed.

    Tokens must be known primitives, inputs or positive integer windows: nothing is `eval`-ed
    that is not a plain integer (DEAP's parser would `eval` any other token).
    """
    if isinstance(formula, gp.PrimitiveTree):
        return formula
    if not isinstance(formula, str):
        raise ValueError(f"a formula must be a string, got {type(formula).__name__}")
    for token in filter(None, _TOKEN.split(formula)):
        if token not in _PARSE_PSET.mapping and not token.isdigit():
            raise ValueError(f"unknown token {token!r} in formula {formula!r}; "
                             f"primitives: {', '.join(FUNCTIONS)}; inputs: {', '.join(INPUTS)}")
    try:
        tree = gp.PrimitiveTree.from_string(formula, _PARSE_PSET)
    except (TypeError, SyntaxError, IndexError) as err:
        raise ValueError(f"malformed formula {formula!r}: {err}") from None
    if not len(tree):
        raise ValueError("empty formula")
    if tree[0].ret is not Series:
        raise ValueError(f"formula {formula!r} is a window, not a series")
    _structure(tree)  # raises on missing / extra arguments
    return tree


def _structure(tree: Sequence) -> tuple[list[str], list[tuple[int, ...]]]:
    """Each node's subtree string (= `str` of that subtree) and its children's indices.

    One reverse pass over the prefix list with a stack: O(size), no subtree searches.
    """
    n = len(tree)
    keys: list[str] = [""] * n
    kids: list[tuple[int, ...]] = [()] * n
    stack: list[int] = []
    for i in range(n - 1, -1, -1):
        node = tree[i]
        if node.arity == 0:
            keys[i] = node.format()
        else:
            if len(stack) < node.arity:
                raise ValueError(f"{node.name} is missing arguments in {_loose(tree)}")
            kids[i] = tuple(stack.pop() for _ in range(node.arity))  # first child first
            keys[i] = node.format(*(keys[k] for k in kids[i]))
        stack.append(i)
    if len(stack) != 1:
        raise ValueError(f"not one formula: {len(stack)} trees in {_loose(tree)}")
    return keys, kids


def _loose(tree: Sequence) -> str:
    return " ".join(node.name for node in tree)


_INFIX = {"add": ("+", 1), "sub": ("-", 1), "mul": ("*", 2), "div": ("/", 2)}  # operator, precedence
_ATOM = 4  # precedence of a name, number or function call


def to_infix(tree: str | gp.PrimitiveTree) -> str:
    """Readable infix with minimal parentheses: formula (9) -> `(high - low) / volume`."""
    tree = parse(tree)
    _, kids = _structure(tree)

    def rec(i: int) -> tuple[str, int]:
        node = tree[i]
        if node.arity == 0:
            return node.format(), _ATOM
        args = [rec(k) for k in kids[i]]
        if node.name in _INFIX:
            sym, prec = _INFIX[node.name]
            (left, lp), (right, rp) = args
            left = f"({left})" if lp < prec else left
            right = f"({right})" if rp < prec or (rp == prec and sym in "-/") else right
            return f"{left} {sym} {right}", prec
        if node.name == "neg":
            text, p = args[0]
            return f"-({text})" if p < _ATOM else f"-{text}", 3
        return f"{node.name}({', '.join(a for a, _ in args)})", _ATOM

    return rec(0)[0]


def to_rpn(tree: str | gp.PrimitiveTree) -> str:
    """Reverse Polish (postfix), the paper's representation: `high low sub volume div`."""
    tree = parse(tree)
    _, kids = _structure(tree)
    out: list[str] = []

    def rec(i: int) -> None:
        for k in kids[i]:
            rec(k)
        out.append(tree[i].format() if tree[i].arity == 0 else tree[i].name)

    rec(0)
    return " ".join(out)


# --------------------------------------------------------------------------- evaluation


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
        keys, kids = _structure(tree)
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


class GPFormula:
    """A GP factor's `compute`: holds only the formula string, so it pickles and ships to workers.

    The tree is rebuilt with `gp.PrimitiveTree.from_string` (via `parse`) on first use.
    """

    def __init__(self, formula: str, dtype: str = "float64") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        self.formula = str(parse(formula))  # canonical form; fails early on a bad formula
        self.dtype = dtype

    def __call__(self, panel: Panel) -> np.ndarray:
        return evaluate(self.formula, panel, self.dtype)

    def __repr__(self) -> str:
        return f"GPFormula({self.formula!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GPFormula) and (self.formula, self.dtype) == (other.formula, other.dtype)

    def __hash__(self) -> int:
        return hash((self.formula, self.dtype))


def _name(formula: str) -> str:
    return "gp_" + hashlib.blake2b(formula.encode(), digest_size=4).hexdigest()


def factor_from_formula(formula: str, name: str | None = None, meta: dict | None = None,
                        dtype: str = "float64") -> Factor:
    """A `Factor` (origin "gp") computing `formula` with `nnafc.ops` on any panel.

    `name` defaults to `gp_<hash of the formula>`, stable across runs; `meta` gains formula,
    infix and rpn.
    """
    compute = GPFormula(formula, dtype)
    canonical = compute.formula
    info = {"formula": canonical, "infix": to_infix(canonical), "rpn": to_rpn(canonical), **(meta or {})}
    info["formula"] = canonical
    return Factor(name=name or _name(canonical), origin="gp", compute=compute, meta=info)


def to_json(factors: Factor | Sequence[Factor]) -> str:
    """GP factors as JSON (name, formula, meta): the zoo stores networks, this stores formulas."""
    single = isinstance(factors, Factor)
    items = [factors] if single else list(factors)
    out = []
    for f in items:
        if not isinstance(f.compute, GPFormula):
            raise ValueError(f"factor {f.name!r} (origin {f.origin!r}) is not a GP formula")
        out.append({"name": f.name, "origin": f.origin, "dtype": f.compute.dtype, "meta": f.meta})
    return json.dumps(out[0] if single else out, indent=1, sort_keys=True, default=_json_default)


def from_json(text: str) -> Factor | list[Factor]:
    """Factors from `to_json` (one or a list, as written); formulas are parsed, never eval-ed."""
    data = json.loads(text)

    def one(d: dict) -> Factor:
        meta = dict(d.get("meta", {}))
        dtype = d.get("dtype", "float64")
        return factor_from_formula(meta["formula"], name=d["name"], meta=meta, dtype=dtype)

    return one(data) if isinstance(data, dict) else [one(d) for d in data]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# --------------------------------------------------------------------------- fitness


@dataclass
class _Block:
    """Days [start, stop) of a panel as tensors, with labels and a mask on the scored rows."""

    evaluator: Evaluator
    rows: slice  # scored rows, relative to start
    labels: Tensor  # (D, N) forward returns on the scored rows, float64
    mask: Tensor  # (D, N) bool: in the universe and labelled
    n_days: int  # scored days with at least 3 labelled stocks
    label_ranks: Tensor  # (D, N) average ranks of the labels over `mask`, reused by every formula


def _block(panel: Panel, start: int, stop: int, scored: slice, cfg: GPConfig, cache_mb: float) -> _Block:
    """A block whose labels read no price after day `stop - 1` (the last scored day's period end)."""
    close = panel["close"][:stop]  # nothing after stop - 1 is read for labels
    labels = forward_returns(close, cfg.horizon, last_day=stop - 1)[scored]  # (D, N)
    labels_t = torch.as_tensor(labels, dtype=torch.float64, device=cfg.device)
    mask = torch.as_tensor(panel.in_universe[scored], device=cfg.device) & torch.isfinite(labels_t)
    fields = _fields(panel, start, stop, DTYPES[cfg.dtype], cfg.device)
    rows = slice(scored.start - start, scored.stop - start)
    label_ranks = ops.average_ranks(torch.where(mask, labels_t, torch.full_like(labels_t, float("nan"))))
    return _Block(Evaluator(fields, cache_mb), rows, labels_t, mask, int((mask.sum(1) >= 3).sum()),
                  label_ranks)


def daily_rank_ic(values: Tensor, block: _Block) -> Tensor:
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


def _score(values: Tensor, block: _Block, cfg: GPConfig) -> tuple[float, Tensor]:
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


def _fitness(tree: str | gp.PrimitiveTree, block: _Block, cfg: GPConfig) -> float:
    """Mean training rank IC; WORST for anything that fails (bad windows, overflow, OOM...)."""
    try:
        return _score(block.evaluator(tree), block, cfg)[0]
    except (ValueError, RuntimeError, ArithmeticError, IndexError):
        return WORST


def _train_block(panel: Panel, split: Split, cfg: GPConfig) -> _Block:
    start = max(0, split.train.start - cfg.history)
    return _block(panel, start, split.train.stop, split.train, cfg, cfg.cache_mb)


def train_ic(formula: str, panel: Panel, split: Split, cfg: GPConfig | dict | None = None) -> float:
    """The GP fitness of one formula: mean daily rank IC on the training days (WORST if degenerate)."""
    cfg = as_config(cfg)
    return _fitness(formula, _train_block(panel, split, cfg), cfg)


# --------------------------------------------------------------------------- variation


class _FitnessMax(base.Fitness):
    weights = (1.0,)


class Individual(gp.PrimitiveTree):
    """A tree with a fitness (defined here, not via `deap.creator`, so it pickles anywhere)."""

    def __init__(self, content: Iterable) -> None:
        super().__init__(content)
        self.fitness = _FitnessMax()


def _generate(pset: gp.PrimitiveSetTyped, min_: int, max_: int, condition: Callable[[int, int], bool],
              type_: type | None = None) -> list:
    """DEAP's `gp.generate`, except that a type without primitives (windows) takes a terminal."""
    type_ = pset.ret if type_ is None else type_
    expr = []
    height = random.randint(min_, max_)
    stack = [(0, type_)]
    while stack:
        depth, type_ = stack.pop()
        if condition(height, depth) or not pset.primitives[type_]:
            expr.append(random.choice(pset.terminals[type_]))
        else:
            prim = random.choice(pset.primitives[type_])
            expr.append(prim)
            for arg in reversed(prim.args):
                stack.append((depth + 1, arg))
    return expr


def gen_full(pset: gp.PrimitiveSetTyped, min_: int, max_: int, type_: type | None = None) -> list:
    """`gp.genFull` for the typed set: every branch reaches the drawn height (windows stop early)."""
    return _generate(pset, min_, max_, lambda height, depth: depth == height, type_)


def gen_grow(pset: gp.PrimitiveSetTyped, min_: int, max_: int, type_: type | None = None) -> list:
    """`gp.genGrow` for the typed set."""

    def condition(height: int, depth: int) -> bool:
        return depth == height or (depth >= min_ and random.random() < pset.terminalRatio)

    return _generate(pset, min_, max_, condition, type_)


def gen_half_and_half(pset: gp.PrimitiveSetTyped, min_: int, max_: int, type_: type | None = None) -> list:
    """Ramped half-and-half initialisation (Koza)."""
    return (gen_grow if random.random() < 0.5 else gen_full)(pset, min_, max_, type_)


def cx_one_point(ind1: gp.PrimitiveTree, ind2: gp.PrimitiveTree) -> tuple[gp.PrimitiveTree, gp.PrimitiveTree]:
    """`gp.cxOnePoint`, with the common types drawn in a fixed order.

    DEAP draws from a `set` of type objects, whose order follows their memory addresses and so
    differs between processes: the same seed would give different runs.
    """
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1, ind2
    types1: dict[type, list[int]] = {}
    types2: dict[type, list[int]] = {}
    for idx, node in enumerate(ind1[1:], 1):
        types1.setdefault(node.ret, []).append(idx)
    for idx, node in enumerate(ind2[1:], 1):
        types2.setdefault(node.ret, []).append(idx)
    common = sorted(set(types1) & set(types2), key=lambda t: t.__name__)
    if common:
        type_ = random.choice(common)
        slice1 = ind1.searchSubtree(random.choice(types1[type_]))
        slice2 = ind2.searchSubtree(random.choice(types2[type_]))
        ind1[slice1], ind2[slice2] = ind2[slice2], ind1[slice1]
    return ind1, ind2


def _toolbox(cfg: GPConfig) -> base.Toolbox:
    pset = primitive_set(cfg.windows)
    tb = base.Toolbox()
    tb.register("expr", gen_half_and_half, pset=pset, min_=cfg.init_depth[0], max_=cfg.init_depth[1])
    tb.register("individual", lambda: Individual(tb.expr()))
    tb.register("select", tools.selTournament, tournsize=cfg.tournament_size)
    tb.register("mate", cx_one_point)
    lo, hi = cfg.mutation_depth
    tb.register("mutate", gp.mutUniform, expr=partial(gen_full, min_=lo, max_=hi), pset=pset)
    for op in ("mate", "mutate"):
        tb.decorate(op, gp.staticLimit(key=operator.attrgetter("height"), max_value=cfg.max_depth))
        tb.decorate(op, gp.staticLimit(key=len, max_value=cfg.max_size))
    return tb


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed `random` (every DEAP draw) and torch; restore the caller's states afterwards.

    Nothing here draws from numpy's global RNG, so it is left alone.
    """
    states = random.getstate(), torch.get_rng_state()
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        torch.set_rng_state(states[1])


# --------------------------------------------------------------------------- the run


@dataclass
class GPResult:
    """What a GP run produced.

    `factors`: the selected formulas as `Factor`s (best validation IC first); `table`: one row
    each (name, formula, infix, rpn, train_ic, valid_ic, max_corr with the factors kept before
    it when selected); `hall_of_fame`: the screened candidates (round, validation IC, why each
    was or was not kept; see `select`);
    `evaluated`: every distinct formula scored (formula, generation, train_ic; NaN = WORST);
    `history`: one row per generation; `lineage`: parent -> child records of the last generations.
    """

    factors: list[Factor]
    table: pd.DataFrame
    hall_of_fame: pd.DataFrame
    evaluated: pd.DataFrame
    history: pd.DataFrame
    lineage: pd.DataFrame
    config: GPConfig
    seconds: float  # wall time of the whole run, selection included
    stopped_early: bool  # True when the time budget ended the search
    selected_on: str  # "valid", or "train" when the split has no labelled validation days
    cache: dict = field(default_factory=dict)  # subtree cache: capacity, hits, misses


class _Search:
    """The evolutionary loop, with a fitness memo per formula and lineage records."""

    def __init__(self, block: _Block, cfg: GPConfig) -> None:
        self.block, self.cfg = block, cfg
        self.memo: dict[str, tuple[float, int]] = {}  # formula -> (train IC, generation first scored)

    def evaluate(self, individuals: Sequence[Individual], generation: int) -> int:
        """Give every individual without a fitness one; returns how many formulas were new."""
        new = 0
        for ind in individuals:
            if ind.fitness.valid:
                continue
            key = str(ind)
            if key not in self.memo:
                self.memo[key] = (_fitness(ind, self.block, self.cfg), generation)
                new += 1
            ind.fitness.values = (self.memo[key][0],)
        return new

    def vary(self, parents: list[Individual], tb: base.Toolbox, generation: int) -> tuple[list, list[dict]]:
        """`varAnd` with records: crossover pairs, then mutation; the parent of a child is the tree
        whose root it kept (a crossover swaps a subtree below the root)."""
        cfg = self.cfg
        children = [copy.deepcopy(p) for p in parents]
        ops_used = [[] for _ in children]
        for i in range(1, len(children), 2):
            if random.random() < cfg.cxpb:
                children[i - 1], children[i] = tb.mate(children[i - 1], children[i])
                for j in (i - 1, i):
                    ops_used[j].append("crossover")
                    del children[j].fitness.values
        for i in range(len(children)):
            if random.random() < cfg.mutpb:
                (children[i],) = tb.mutate(children[i])
                ops_used[i].append("mutation")
                del children[i].fitness.values
        records = [{"generation": generation, "operator": "+".join(used), "parent": str(parents[i]),
                    "parent_ic": parents[i].fitness.values[0], "child": str(children[i]), "_i": i}
                   for i, used in enumerate(ops_used) if used]
        return children, records


def run_gp(panel: Panel, split: Split, cfg: GPConfig | dict | None = None) -> GPResult:
    """Search formulas by GP on the training days and select up to `n_factors` on validation.

    Reads prices up to the end of the validation period only (labels cut there); the search
    itself reads nothing after the last training day.
    """
    from tqdm.auto import tqdm  # progress is optional and cheap to import lazily

    cfg = as_config(cfg)
    t0 = time.perf_counter()
    block = _train_block(panel, split, cfg)
    search = _Search(block, cfg)
    tb = _toolbox(cfg)
    history, lineage = [], []
    stopped = False

    def log(gen: int, pop: list[Individual], new: int, lookups: tuple[int, int]) -> None:
        fit = np.array([ind.fitness.values[0] for ind in pop])
        ok = fit[np.isfinite(fit)]
        ev = block.evaluator
        history.append({"generation": gen, "best": ok.max() if ok.size else np.nan,
                        "mean": ok.mean() if ok.size else np.nan, "worst_share": 1 - ok.size / fit.size,
                        "evaluations": new, "cache_hits": ev.hits - lookups[0],
                        "cache_misses": ev.misses - lookups[1], "seconds": time.perf_counter() - t0})

    with _seeded(cfg.seed):
        lookups = (block.evaluator.hits, block.evaluator.misses)
        pop = [tb.individual() for _ in range(cfg.population)]
        log(0, pop, search.evaluate(pop, 0), lookups)
        bar = tqdm(range(1, cfg.generations + 1), desc="GP", disable=not cfg.progress, leave=False)
        for gen in bar:
            if cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s:
                stopped = True
                break
            lookups = (block.evaluator.hits, block.evaluator.misses)
            parents = tb.select(pop, len(pop))
            pop, records = search.vary(parents, tb, gen)
            new = search.evaluate(pop, gen)
            for r in records:
                r["child_ic"] = pop[r.pop("_i")].fitness.values[0]
            lineage.extend(records)
            log(gen, pop, new, lookups)
            bar.set_postfix(best=f"{history[-1]['best']:.4f}")
        bar.close()
    cache_info = {"capacity": block.evaluator.capacity, "hits": block.evaluator.hits,
                  "misses": block.evaluator.misses}
    block.evaluator.clear()  # free the training cache before validation

    evaluated = pd.DataFrame([(f, g, ic) for f, (ic, g) in search.memo.items()],
                             columns=["formula", "generation", "train_ic"])
    evaluated["train_ic"] = evaluated["train_ic"].replace(WORST, np.nan)
    factors, table, hof, selected_on = select(evaluated, panel, split, cfg)
    lineage_df = _lineage_frame(lineage, cfg, len(history) - 1)
    return GPResult(factors=factors, table=table, hall_of_fame=hof, evaluated=evaluated,
                    history=pd.DataFrame(history), lineage=lineage_df, config=cfg,
                    seconds=time.perf_counter() - t0, stopped_early=stopped, selected_on=selected_on,
                    cache=cache_info)


def inheritance(lineage: pd.DataFrame) -> pd.DataFrame:
    """Does a GP child inherit its parent's IC? One row per operator (and "all").

    §3.1 argues with formulas (9) -> (10) that a small edit can make a child unrelated to its
    parent. Over the children that differ from their parent: how many (`n`), the correlation of
    parent and child training IC, the share whose IC fell, the mean change, and the share of
    children that failed outright (undefined IC).
    """
    cols = ["n", "ic_corr", "worse_share", "mean_change", "failed_share"]
    changed = lineage[lineage["changed"]]

    def row(frame: pd.DataFrame) -> dict[str, float]:
        ok = frame.dropna(subset=["parent_ic", "child_ic"])
        diff = ok["child_ic"] - ok["parent_ic"]
        corr = ok["parent_ic"].corr(ok["child_ic"]) if len(ok) > 2 else np.nan
        return {"n": len(frame), "ic_corr": corr, "worse_share": (diff < 0).mean() if len(ok) else np.nan,
                "mean_change": diff.mean() if len(ok) else np.nan,
                "failed_share": frame["child_ic"].isna().mean() if len(frame) else np.nan}

    rows = {op: row(frame) for op, frame in changed.groupby("operator", sort=True)}
    rows["all"] = row(changed)
    out = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    out.index.name = "operator"
    return out


def _lineage_frame(records: list[dict], cfg: GPConfig, last_generation: int) -> pd.DataFrame:
    cols = ["generation", "operator", "parent", "parent_ic", "child", "child_ic"]
    frame = pd.DataFrame(records, columns=cols)
    frame = frame[frame["generation"] > last_generation - cfg.lineage_generations].reset_index(drop=True)
    for c in ("parent_ic", "child_ic"):
        frame[c] = frame[c].astype(float).replace(WORST, np.nan)
    frame["changed"] = frame["parent"] != frame["child"]  # a static limit may give the parent back
    return frame


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
    probe = forward_returns(panel["close"][:valid_days.stop], cfg.horizon, last_day=valid_days.stop - 1)
    has_valid = valid_days.stop > valid_days.start and bool(np.isfinite(probe[valid_days]).any())
    scored = valid_days if has_valid else split.train
    start = max(0, scored.start - cfg.history)  # the same warm-up as in training, not the whole past
    block = _block(panel, start, scored.stop, scored, cfg, cfg.cache_mb)

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
                score, _ = _score(values, block, cfg)
                ranks[i] = ops.cs_rank(values[block.rows]).double()  # (D, N) for the correlation filter
            except (ValueError, RuntimeError, ArithmeticError, IndexError):
                score = WORST
            valid_ic.append(score if math.isfinite(score) else np.nan)
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
            corr = _max_abs_corr(ranks[i], kept_ranks) if kept_ranks else 0.0
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


def _max_abs_corr(r: Tensor, others: list[Tensor]) -> float:
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
