"""Checking a chapter's papermill parameters before any chapter runs: names, types and ranges.

A chapter declares its parameters in its `parameters` cell (`name = default  # why`). A value
given in a params file must be a declared name, have the default's type (an int default wants
an int, a float default any real number, a None default anything) and pass the rule below for
its name, if any. Every failure is one `ParamsError` line naming the chapter and the key.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from nnafc.params import ParamsError, did_you_mean, repo_file

Rule = Callable[[Any], str | None]  # value -> what is wrong, or None


def declared(source: Path) -> dict[str, Any]:
    """The `parameters` cell of a py:percent chapter: name -> default (literals; else None)."""
    text = Path(source).read_text()
    match = re.search(r"^# %% tags=\[\"parameters\"\]\n(.*?)(?=^# %%)", text, re.S | re.M)
    if match is None:
        raise ParamsError(f"{source.name} has no parameters cell")
    out = {}
    for node in ast.parse(match.group(1)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                out[node.targets[0].id] = None
    return out


# ----------------------------------------------------------------------------- rules


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _int(lo: int) -> Rule:
    return lambda v: None if _is_int(v) and v >= lo else f"must be an integer >= {lo}"


def _real(lo: float, hi: float = math.inf, lo_open: bool = False) -> Rule:
    def rule(v: Any) -> str | None:
        ok = _is_real(v) and (v > lo if lo_open else v >= lo) and v < hi
        left = "(" if lo_open else "["
        return None if ok else f"must be a number in {left}{lo}, {hi})"
    return rule


def _each(rule: Rule, what: str = "list") -> Rule:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or not v:
            return f"must be a non-empty {what}"
        for item in v:
            wrong = rule(item)
            if wrong:
                return f"entry {item!r} {wrong}"
        return None
    return check


def _date(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a date string YYYY-MM-DD"
    try:
        pd.Timestamp(v)
    except (ValueError, TypeError):
        return "is not a date"
    return None


def _span(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) != 2 or _date(v[0]) or _date(v[1]):
        return "must be [first date, last date]"
    return None if pd.Timestamp(v[0]) <= pd.Timestamp(v[1]) else "starts after it ends"


def _universe(v: Any) -> str | None:
    from nnafc.data.universe import UNIVERSE_FORMS, parse_universe

    try:
        parse_universe(v)
    except ValueError:
        return f"must be {UNIVERSE_FORMS}"
    return None


def _device(v: Any) -> str | None:
    if not isinstance(v, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", v):
        return "must be 'cpu', 'cuda' or 'cuda:N'"
    if v.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return "asks for CUDA but torch sees no CUDA device"
    return None


def _one_of(*choices: Any) -> Rule:
    return lambda v: None if v in choices else f"must be one of {list(choices)}"


def _pk_name(v: Any) -> str | None:
    from nnafc import pk

    return None if isinstance(v, str) and v in pk.names() else "is not a PK factor (nnafc.pk.names())"


def _net(v: Any) -> str | None:
    from nnafc import nets

    return None if isinstance(v, str) and v in nets.names() else f"must be one of {nets.names()}"


def _xgb_grid(v: Any) -> str | None:
    rules = {"max_depth": _each(_int(1)), "learning_rate": _each(_real(0, lo_open=True)),
             "n_estimators": _each(_int(1))}
    if not isinstance(v, dict) or set(v) - set(rules):
        return f"must be a mapping with keys among {list(rules)}"
    for key, value in v.items():
        wrong = rules[key](value)
        if wrong:
            return f"{key} {wrong}"
    return None


def _table5_windows(v: Any) -> str | None:
    from nnafc import paper

    n = len(paper.TABLE5_WINDOWS)
    if not isinstance(v, list):
        return f"must be a list of window numbers 0..{n - 1}"
    return None if all(_is_int(i) and 0 <= i < n for i in v) else f"entries must be in 0..{n - 1}"


def _params_file(what: str) -> Rule:
    """null (the repository's own file) or a parameter file that exists (`params.repo_file`)."""
    def rule(v: Any) -> str | None:
        if v is None or (isinstance(v, str) and repo_file(v).is_file()):
            return None
        return f"must be null or the path of an existing {what} parameter file (YAML)"
    return rule


def _family_list(empty: bool) -> Rule:
    def rule(v: Any) -> str | None:
        if not isinstance(v, list) or not all(isinstance(f, str) and f for f in v):
            return "must be a list of study family names"
        if len(set(v)) < (0 if empty else 2) or (empty and len(set(v)) == 1):
            return "must name at least two distinct families" + (" (or none)" if empty else "")
        return None
    return rule


RULES: dict[str, Rule] = {
    "seed": _int(0), "device": _device, "universe": _universe,
    "start": _date, "end": _date, "test_start": _date, "test_end": _date, "train_start": _date,
    "selection_start": _date, "selection_end": _date,
    "mimic_train": _span, "mimic_test": _span, "train_starts": _each(_date),
    "p": _real(0, lo_open=True), "p_values": _each(_real(0, lo_open=True)),
    "outlier_share": _real(0, 0.5), "round_trip_cost": _real(0, 1), "cost_grid": _each(_real(0, 1)),
    "prune_rates": _each(_real(0, 1)), "learning_rate": _each(_real(0, lo_open=True)),
    "max_depth": _each(_int(1)), "n_estimators": _each(_int(1)),
    "pretrain_epochs": _int(0), "max_gp_pairs": _int(0),
    "factors": _each(_pk_name), "construct_seed": _pk_name, "structures": _each(_net), "construct_net": _net,
    "quality_family": lambda v: None if isinstance(v, str) and v else "must be a family name (string)",
    "strategy_model": _xgb_grid, "benchmark": _one_of("ZZ500", "HS300"), "rule": _one_of("topk", "dropout"),
    "table5_windows": _table5_windows, "protocol_params": _params_file("protocol"),
    "study": _params_file("study"), "qlib_protocol": _params_file("Qlib protocol"),
    "qlib_study": _params_file("study"),
    "window": _int(0), "n_clusters": _int(2), "neighbours": _int(1), "diversity_days": _int(2),
    "days": lambda v: None if v is None else _int(2)(v),
    "maps": _each(_family_list(empty=False), "list of family lists"), "variants": _family_list(empty=True),
    "bases": _family_list(empty=True),
    "families": _family_list(empty=False),
    "pk_factors": lambda v: None if v is None else _int(1)(v),
    "data": lambda v: None if v is None or isinstance(v, str) else "must be a path (string) or null",
}
ORDERED = (("start", "end", False), ("test_start", "test_end", False),  # (a, b, strict): a <= b (a < b)
           ("selection_start", "selection_end", False), ("selection_end", "test_start", True))


def _by_default(default: Any) -> Rule | None:
    """The rule a default implies: its type, and >= 1 for integers (counts, sizes, epochs)."""
    if isinstance(default, bool):
        return lambda v: None if isinstance(v, bool) else "must be true or false"
    if _is_int(default):
        return _int(1)
    if isinstance(default, float):
        return _real(-math.inf)
    for kind, name in ((str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(default, kind):
            return lambda v, kind=kind, name=name: None if isinstance(v, kind) else f"must be {name}"
    return None


def check(chapter: str, parameters: dict, defaults: dict[str, Any]) -> None:
    """ParamsError (one line) for the first unknown, mistyped or out-of-range parameter."""
    unknown = sorted(set(parameters) - set(defaults))
    if unknown:
        hint = did_you_mean(unknown[0], defaults)
        raise ParamsError(f"chapter {chapter!r} has no parameter(s) {unknown}{hint}; "
                          f"it declares {sorted(defaults)}")
    for key, value in parameters.items():
        rule = RULES.get(key) or _by_default(defaults[key])
        wrong = rule(value) if rule is not None else None
        if wrong:
            raise ParamsError(f"chapter {chapter!r}: {key} {wrong}, got {value!r}")
    values = {**defaults, **parameters}
    for a, b, strict in ORDERED:
        if a in values and b in values and None not in (values[a], values[b]):
            ta, tb = pd.Timestamp(values[a]), pd.Timestamp(values[b])
            if ta > tb or (strict and ta == tb):
                order = "is not before" if strict else "is after"
                raise ParamsError(f"chapter {chapter!r}: {a} {values[a]} {order} {b} {values[b]}")
    if {"quality_family", "study", "maps", "variants", "bases", "window"} & set(parameters):
        _check_study_families(chapter, values)
    if parameters.get("qlib_protocol"):
        from nnafc.evaluate.qlib_protocol import load_protocol

        load_protocol(parameters["qlib_protocol"])  # ParamsError (one line) for a bad key or value


def _check_study_families(chapter: str, values: dict) -> None:
    """The study file loads (its own checks), `quality_family` is one of its network families, the
    families of `maps` / `variants` / `bases` (the clustering chapter) are its families and `window`
    one of its windows."""
    from nnafc.study import load_params

    params = load_params(values.get("study"))
    fams = params.families
    family = values.get("quality_family")
    if family is not None and (family not in fams or fams[family].kind == "gp"):
        nets = [f for f, spec in fams.items() if spec.kind != "gp"]
        raise ParamsError(f"chapter {chapter!r}: quality_family {family!r} is not a network family of "
                          f"the study; it has {nets}")
    for key in ("maps", "variants", "bases"):
        for name in [f for m in values.get(key) or [] for f in (m if isinstance(m, list) else [m])]:
            if name not in fams:
                raise ParamsError(f"chapter {chapter!r}: {key} names {name!r}, not a family of the study "
                                  f"{params.path.name}{did_you_mean(name, fams)}; it has {', '.join(fams)}")
    window = values.get("window")
    if window is not None and window >= len(params.train_starts):
        raise ParamsError(f"chapter {chapter!r}: window {window} is not one of the study's windows "
                          f"0..{len(params.train_starts) - 1}")
