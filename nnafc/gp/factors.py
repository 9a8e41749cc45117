"""GP formulas as `Factor`s (origin "gp") that compute on any panel, and their JSON form."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from nnafc.data.panel import Panel
from nnafc.factor import Factor
from nnafc.gp.config import DTYPES
from nnafc.gp.fitness import evaluate
from nnafc.gp.formula import parse, to_infix, to_rpn

__all__ = ["GPFormula", "factor_from_formula", "to_json", "from_json"]


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

