"""The evolutionary search: typed tree generation, variation, and `run_gp`.

Tournament selection, one-point crossover, uniform subtree mutation (`gen_full`), static limits
on height and size, all seeded; stops at `generations` or the wall-clock budget. Each
formula's fitness is computed once (memo by its string); parent -> child records of the last
generations feed `evaluate.schemes.inheritance`, the paper's formulas (9) -> (10) argument measured.
"""

from __future__ import annotations

import copy
import operator
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd
import torch
from deap import base, gp, tools

from nnafc.data.panel import Panel
from nnafc.data.splits import Split
from nnafc.factor import Factor
from nnafc.gp.config import GPConfig, as_config
from nnafc.gp.fitness import WORST, Block, train_block, tree_fitness
from nnafc.gp.formula import primitive_set
from nnafc.gp.selection import select
from nnafc.progress import bar as progress_bar

__all__ = ["Individual", "gen_full", "gen_grow", "gen_half_and_half", "cx_one_point", "GPResult",
           "run_gp"]


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

    Nothing here draws from numpy's global RNG (the project uses explicit `Generator`s), so it
    is left alone.
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

    def __init__(self, block: Block, cfg: GPConfig) -> None:
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
                self.memo[key] = (tree_fitness(ind, self.block, self.cfg), generation)
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
    cfg = as_config(cfg)
    t0 = time.perf_counter()
    block = train_block(panel, split, cfg)
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
        gens = progress_bar(range(1, cfg.generations + 1), desc="GP", disable=not cfg.progress, leave=False)
        for gen in gens:
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
            gens.set_postfix(best=f"{history[-1]['best']:.4f}")
        gens.close()
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


def _lineage_frame(records: list[dict], cfg: GPConfig, last_generation: int) -> pd.DataFrame:
    cols = ["generation", "operator", "parent", "parent_ic", "child", "child_ic"]
    frame = pd.DataFrame(records, columns=cols)
    frame = frame[frame["generation"] > last_generation - cfg.lineage_generations].reset_index(drop=True)
    for c in ("parent_ic", "child_ic"):
        frame[c] = frame[c].astype(float).replace(WORST, np.nan)
    frame["changed"] = frame["parent"] != frame["child"]  # a static limit may give the parent back
    return frame

