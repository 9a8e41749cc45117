"""The study's parameter file (`params/study.yaml`): read, validated, and turned into families.

Everything wrong with a file (an unknown key, a bad family, an unknown PK seed or net) is one
`ParamsError` line naming the file, before any data is loaded; `nnafc.study.Study` builds on the
`StudyParams` this returns. The keys and their defaults are `TOP_KEYS` and `FAMILY_KEYS`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nnafc.construct import ConstructConfig
from nnafc.data.panel import DataError, Panel
from nnafc.params import ROOT, ParamsError, check_keys, read_mapping

DEFAULT_PARAMS = ROOT / "params" / "study.yaml"  # the book's study
GP = "gp"
GP_SEEDED = "+gp"  # suffix of a family whose networks are seeded by the window's GP formulas
TOP_KEYS: dict[str, Any] = {
    "data": None,  # file or directory; null: --data, else NNAFC_DATA
    "universe": "all",
    "start": None,  # first day loaded: history for the first window's inputs and seed factors
    "end": None,
    "min_history": 60,
    "train_starts": None,  # first training date of each window
    "n_train": 250,
    "n_valid": 30,
    "n_test": 90,
    "zoo": "study/zoo",  # relative to the parameter file's repository (its parent's parent) or absolute
    "init_seed": 0,
    "config": {},  # ConstructConfig overrides shared by every network family
    "families": None,
    "n_jobs": 1,
    "backend": "local",
    "threads": None,
    "retries": 1,
    "progress": True,
}
FAMILY_KEYS = {"factors", "seeds", "net", "net_cfg", "config", "gp", "windows"}


@dataclass(frozen=True)
class Family:
    """One factor set per window: what it is built from and how."""

    name: str
    kind: str  # "nnafc" (PK-seeded networks), "gp" (a GP search) or "nnafc+gp" (GP-seeded networks)
    factors: int  # per window
    seeds: tuple[str, ...] = ()  # PK seed factors of an "nnafc" family
    config: ConstructConfig | None = None  # networks' construction config (None for "gp")
    gp: dict = field(default_factory=dict)  # GPConfig overrides of a "gp" family
    windows: tuple[int, ...] | None = None  # the study windows it is built on; None: every window

    def on(self, window: int) -> bool:
        """Whether the family has a set on `window` (Fig. 8's variants are built on one window)."""
        return self.windows is None or window in self.windows


@dataclass
class StudyParams:
    """A validated study parameter file."""

    path: Path
    raw: dict
    families: dict[str, Family]
    zoo: Path

    def __getattr__(self, key: str) -> Any:
        raw = self.__dict__.get("raw", {})
        if key in raw:
            return raw[key]
        raise AttributeError(key)


def load_params(path: str | os.PathLike | None = None) -> StudyParams:
    """Read and validate a study YAML (None: the repository's params/study.yaml; a relative path as
    `params.repo_file`); `ParamsError` (one line) on anything wrong, before any work."""
    from nnafc import gp, nets, pk
    from nnafc.params import repo_file

    path = DEFAULT_PARAMS if path is None else repo_file(path)
    raw = read_mapping(path)
    check_keys(path, "key", raw, TOP_KEYS)
    full = {**TOP_KEYS, **raw}
    for key in ("train_starts", "families"):
        if not full[key]:
            raise ParamsError(f"{path}: '{key}' is required")
    if not isinstance(full["train_starts"], list):
        raise ParamsError(f"{path}: train_starts must be a list of first training dates")
    for d in full["train_starts"]:
        try:
            pd.Timestamp(str(d))
        except ValueError:
            raise ParamsError(f"{path}: train_starts entry {d!r} is not a date") from None
    for key in ("n_train", "n_valid", "n_test", "min_history", "init_seed", "n_jobs", "retries"):
        positive = key in ("n_train", "n_jobs")
        if not is_int(full[key]) or full[key] < int(positive):
            raise ParamsError(f"{path}: {key} must be a {'positive' if positive else 'non-negative'} "
                              f"integer, got {full[key]!r}")
    if full["threads"] is not None and (not is_int(full["threads"]) or full["threads"] < 1):
        raise ParamsError(f"{path}: threads must be null or a positive integer, got {full['threads']!r}")
    if full["backend"] not in ("local", "ray"):
        raise ParamsError(f"{path}: backend must be 'local' or 'ray', got {full['backend']!r}")
    if not isinstance(full["progress"], bool):
        raise ParamsError(f"{path}: progress must be true or false, got {full['progress']!r}")
    if not isinstance(full["config"], dict) or {"net", "net_cfg"} & set(full["config"]):
        raise ParamsError(f"{path}: config must be a mapping of construct settings (nets go in families)")
    if not isinstance(full["families"], dict):
        raise ParamsError(f"{path}: families must be a mapping name -> {{factors, seeds, ...}}")

    families: dict[str, Family] = {}
    for name, spec in full["families"].items():
        where = f"{path}: family {name!r}"
        spec = dict(spec or {})
        check_keys(path, f"key of family {name!r}", spec, FAMILY_KEYS)
        n = spec.get("factors")
        if not is_int(n) or n < 1:
            raise ParamsError(f"{where}: factors must be a positive integer, got {n!r}")
        windows = _window_list(spec.get("windows"), len(full["train_starts"]), where)
        try:
            if name == GP:
                gp.as_config({**dict(spec.get("gp") or {}), "n_factors": n})  # validates now
                families[name] = Family(name, "gp", n, gp=dict(spec.get("gp") or {}), windows=windows)
                continue
            seeded_by_gp = name.endswith(GP_SEEDED)
            net = spec.get("net", name[: -len(GP_SEEDED)] if seeded_by_gp else name)
            if net not in nets.names():
                raise ValueError(f"unknown net {net!r} (set 'net:' for a variant); "
                                 f"valid: {', '.join(nets.names())}")
            cfg = ConstructConfig.from_dict({**full["config"], **dict(spec.get("config") or {}),
                                             "net": net, "net_cfg": dict(spec.get("net_cfg") or {})})
            if seeded_by_gp:
                if GP not in full["families"]:
                    raise ValueError("a '+gp' family needs the 'gp' family (its seeds) in the study")
                families[name] = Family(name, "nnafc+gp", n, config=cfg, windows=windows)
                continue
            seeds = _seed_names(spec.get("seeds", "table1"), pk)
            families[name] = Family(name, "nnafc", n, tuple(seeds), cfg, windows=windows)
        except (ValueError, TypeError) as exc:
            raise ParamsError(f"{where}: {exc}") from None
    zoo = Path(full["zoo"])
    if not zoo.is_absolute():
        zoo = path.resolve().parent.parent / zoo  # params/<file> -> the repository root
    return StudyParams(path, full, families, zoo)


def is_study_file(path: str | os.PathLike) -> bool:
    """Whether a parameter file is a study (it has `families`), not a plain construction file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False  # the construction loader says what is wrong with it
    return isinstance(raw, dict) and "families" in raw


def is_int(v: Any) -> bool:
    """An int that is not a bool (YAML's `true` is not a count)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _window_list(windows: Any, n_windows: int, where: str) -> tuple[int, ...] | None:
    """A family's `windows:` (positions in `train_starts`), checked; None (absent): every window."""
    if windows is None:
        return None
    if (not isinstance(windows, list) or not windows
            or not all(is_int(w) and 0 <= w < n_windows for w in windows)):
        raise ParamsError(f"{where}: windows must be a non-empty list of window positions "
                          f"0..{n_windows - 1}, got {windows!r}")
    return tuple(sorted(set(windows)))


def _seed_names(seeds: Any, pk: Any) -> list[str]:
    groups = {"table1": pk.names(table1_only=True), "pk50": [f.name for f in pk.pk50()], "all": pk.names()}
    if isinstance(seeds, str):
        if seeds not in groups:
            raise ValueError(f"seeds must be a list of PK names or one of {list(groups)}, got {seeds!r}")
        return groups[seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, str) for s in seeds):
        raise ValueError("seeds must be a non-empty list of PK names")
    for s in seeds:
        pk.get(s)  # ValueError naming the closest PK factor
    return list(seeds)


def load_panel_for(params: StudyParams, data: str | os.PathLike | None = None) -> Panel:
    """The panel of the study: its universe and period on `data` (else the file's, else NNAFC_DATA)."""
    from nnafc.data.locate import data_dir, source_for
    from nnafc.data.sources import load_panel

    root = data_dir(data if data not in (None, "") else params.data)
    if root is None:
        raise DataError("the study needs real data: pass --data or set NNAFC_DATA")
    return load_panel(source_for(root, params.universe), start=params.start, end=params.end,
                      universe=params.universe, min_history=params.min_history)
