"""The `Factor`: the unit that flows from construction (PK formula, GP tree, network) to evaluation."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


class ValueStore:
    """Factor values on disk (`<root>/<code>/<id>.npy`, float32 `(T, N)`), for values that cost
    minutes to recompute (networks on every window of the study) and are read by several chapters.

    A file's name hashes the factor (its zoo key when it has one, else its origin, name and meta)
    and the panel (`zoo.panel_fingerprint`: dates, instruments, fields, masks); `<code>` hashes the
    package's source, so values computed by other code are never read. Writes are atomic
    (a crash leaves no half-written file). Delete the directory to reclaim the space.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root) / _code_hash()

    def __repr__(self) -> str:
        return f"ValueStore({self.root})"

    def path(self, factor: Factor, panel: Panel) -> Path:
        from nnafc.zoo import panel_fingerprint  # lazily: the zoo imports this module

        ident = factor.meta.get("key") or {"origin": factor.origin, "name": factor.name, "meta": factor.meta}
        if factor.meta.get("key") and factor.meta.get("dates"):  # a network limited to some days
            #   (a factor without a key has its dates in `meta`, hashed above)
            ident = {"key": ident, "dates": factor.meta["dates"]}
        blob = json.dumps({"factor": ident, "panel": panel_fingerprint(panel)}, sort_keys=True, default=str)
        return self.root / f"{hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()}.npy"

    def values(self, factor: Factor, panel: Panel) -> np.ndarray:
        """The factor's values on `panel`: read from disk, else computed and written."""
        path = self.path(factor, panel)
        if path.is_file():
            out = np.load(path, allow_pickle=False)
            if out.shape == panel.shape:
                return out
        out = factor.values(panel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, out, allow_pickle=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # a failed write (disk full, killed) leaves nothing behind
        return out


def _code_hash() -> str:
    """Hash of the package's Python source (any code change gives a fresh value store)."""
    h = hashlib.blake2b(digest_size=8)
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class CachedValues:
    """A factor's compute that keeps its values on one panel (and serves any day-prefix of it).

    Every window and every factor set reads the same PK values; recomputing them on the full
    panel per window would dominate the chapter's run time. A prefix (`panel.slice_days(0, k)`,
    what `select_combine` cuts the panel to) gets the first k rows: factor values at day t use
    data up to t only (the `Factor` contract), so they are the same on the prefix. With a `store`
    (`ValueStore`) the values live on disk, not in memory, and outlive the process.
    """

    def __init__(self, factor: Factor, panel: Panel, values: np.ndarray | None = None,
                 store: ValueStore | None = None) -> None:
        self.factor, self.panel, self._values, self.store = factor, panel, values, store

    def __call__(self, panel: Panel) -> np.ndarray:
        if panel is self.panel or _is_prefix(panel, self.panel):
            if self._values is not None:
                return self._values[: len(panel.dates)]
            if self.store is not None:
                return self.store.values(self.factor, self.panel)[: len(panel.dates)]
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


def cached(factors: Sequence[Factor], panel: Panel, store: ValueStore | None = None) -> list[Factor]:
    """The same factors, their values computed once on `panel` (lazily) and reused: kept in memory,
    or with a `store` on disk (read back by later chapters and runs)."""
    return [Factor(f.name, f.origin, CachedValues(f, panel, store=store), f.meta) for f in factors]
