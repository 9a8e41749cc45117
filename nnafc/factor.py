"""The `Factor`: the unit that flows from construction (PK formula, GP tree, network) to evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nnafc.data.panel import Panel


@dataclass(frozen=True)
class Factor:
    """A named alpha factor and a way to compute its `(T, N)` values on any panel.

    `origin` says where it came from ("pk", "gp", "nnafc"); `meta` holds its provenance
    (formula, GP tree, network config + seed factor + metrics) as JSON-serialisable values.
    Values at day t may use only panel data up to day t.
    """

    name: str
    origin: str
    compute: Callable[[Panel], np.ndarray] = field(repr=False)
    meta: dict = field(default_factory=dict)

    def values(self, panel: Panel) -> np.ndarray:
        """`(T, N)` float32 factor values, NaN where undefined."""
        out = np.asarray(self.compute(panel), dtype=np.float32)
        if out.shape != panel.shape:
            raise ValueError(f"factor {self.name!r} returned shape {out.shape}, panel is {panel.shape}")
        return out


class CachedValues:
    """A factor's compute that keeps its values on one panel (and serves any day-prefix of it).

    Every window and every factor set reads the same PK values; recomputing them on the full
    panel per window would dominate the chapter's run time. A prefix (`panel.slice_days(0, k)`,
    what `select_combine` cuts the panel to) gets the first k rows: factor values at day t use
    data up to t only (the `Factor` contract), so they are the same on the prefix.
    """

    def __init__(self, factor: Factor, panel: Panel, values: np.ndarray | None = None) -> None:
        self.factor, self.panel, self._values = factor, panel, values

    def __call__(self, panel: Panel) -> np.ndarray:
        if panel is self.panel or _is_prefix(panel, self.panel):
            if self._values is None:
                self._values = self.factor.values(self.panel)  # (T, N) float32
            return self._values[: len(panel.dates)]
        return self.factor.values(panel)


def _is_prefix(panel: Panel, ref: Panel) -> bool:
    n = len(panel.dates)
    return (
        0 < n <= len(ref.dates)
        and panel.instruments.equals(ref.instruments)
        and panel.dates.equals(ref.dates[:n])
        and np.may_share_memory(panel["close"], ref["close"])
    )


def cached(factors: Sequence[Factor], panel: Panel) -> list[Factor]:
    """The same factors, their values computed once on `panel` (lazily) and reused."""
    return [Factor(f.name, f.origin, CachedValues(f, panel), f.meta) for f in factors]
