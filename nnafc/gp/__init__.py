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
  (`nnafc.data.period_labels`), in the panel's point-in-time universe. A tree that
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
`to_infix` gives `(high - low) / volume` and `to_rpn` the reverse Polish `high low sub volume div`;
`from_infix` and `parse_rpn` read them back.

Modules: `config` (GPConfig), `formula` (primitive set, parsing, infix / RPN), `fitness`
(evaluation with the subtree cache, rank-IC fitness), `factors` (Factor and JSON), `search`
(the evolutionary loop, `run_gp`, lineage), `selection` (validation re-ranking, correlation filter).
"""

from nnafc.gp.config import DTYPES, GPConfig, as_config
from nnafc.gp.factors import GPFormula, factor_from_formula, from_json, to_json
from nnafc.gp.fitness import CACHED, WORST, Evaluator, daily_rank_ic, evaluate, train_ic
from nnafc.gp.formula import (
    FUNCTIONS,
    INPUTS,
    Series,
    from_infix,
    parse,
    parse_rpn,
    primitive_set,
    to_infix,
    to_rpn,
)
from nnafc.gp.search import GPResult, Individual, run_gp
from nnafc.gp.selection import select

__all__ = [
    "GPConfig", "GPResult", "GPFormula", "Evaluator", "Individual", "Series", "WORST", "FUNCTIONS",
    "INPUTS", "CACHED", "DTYPES", "as_config", "primitive_set", "parse", "parse_rpn", "from_infix",
    "to_infix", "to_rpn", "evaluate", "train_ic", "select", "daily_rank_ic",
    "factor_from_formula", "to_json", "from_json", "run_gp",
]  # fmt: skip
