"""`GPConfig`: everything that defines one GP run besides the data and the split."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from nnafc.params import unknown_key

__all__ = ["GPConfig", "as_config", "DTYPES"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
        wrong = unknown_key("GP config key", d, valid)
        if wrong:
            raise ValueError(wrong)
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

