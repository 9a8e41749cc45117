"""The `Factor`: the unit that flows from construction (PK formula, GP tree, network) to evaluation."""

from __future__ import annotations

from collections.abc import Callable
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
