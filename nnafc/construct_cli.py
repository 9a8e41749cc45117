"""`nnafc construct --params X.yaml [--data PATH] [--out RUN_DIR]`: construct a zoo of factors.

A construction parameter file (params/construct-*.yaml) names the data, the seeds, the nets,
the splits and the construction config; every (split, net, seed) becomes one job of
`nnafc.runner`, written into `<out>/zoo`. Re-running the same file resumes: factors already in
the zoo are skipped. Keys (unknown ones fail):

    data: null            # file or directory; null: --data, else NNAFC_DATA, else the simulated market
    universe: csi300      # all | csi300 | top<N>
    start: "2015-01-01"   # first day loaded: history for the windows and the seeds' lookbacks
    end: "2020-12-31"
    min_history: 60
    simulate: {}          # simulate_market(...) arguments when there is no data
    seeds: [MA10, RSI12]  # PK names, or "table1" / "pk50" / "all"
    nets: [fcn]           # names, or a mapping name -> that net's config overrides
    splits: ["2019-01-01"]  # first training dates (or day positions); 250 / 30 / 90 days each
    n_train: 250
    n_valid: 30
    n_test: 90
    config: {epochs: 30}  # ConstructConfig overrides (everything but net / net_cfg)
    n_jobs: 1
    retries: 1
    backend: local        # local | ray
    threads: null         # torch threads per worker (null: cores / n_jobs)
    progress: true
    stocks: null          # regex of stock codes (null: the data's manifest, else the A-share rule)

Everything here, and `--out` (a writable directory), is checked before any data is loaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from nnafc.construct import ConstructConfig
from nnafc.data.panel import DataError, Panel
from nnafc.data.splits import Split, make_split
from nnafc.params import ParamsError, check_keys, read_mapping
from nnafc.runner import Job, RunError, run_jobs
from nnafc.zoo import Zoo

DEFAULTS: dict[str, Any] = {
    "data": None, "universe": "csi300", "start": None, "end": None, "min_history": 60, "simulate": {},
    "seeds": None, "nets": ["fcn"], "splits": None, "n_train": 250, "n_valid": 30, "n_test": 90,
    "config": {}, "n_jobs": 1, "retries": 1, "backend": "local", "threads": None, "progress": True,
    "stocks": None,
}
REQUIRED = ("seeds", "splits")


@dataclass
class ConstructParams:
    """A validated construction parameter file."""

    name: str  # the file's stem: names the default run directory
    raw: dict = field(default_factory=dict)  # every key, defaults filled in
    seeds: list[str] = field(default_factory=list)
    nets: dict[str, dict] = field(default_factory=dict)  # net -> its config overrides
    config: ConstructConfig = field(default_factory=ConstructConfig)

    def __getattr__(self, key: str) -> Any:
        raw = self.__dict__.get("raw", {})
        if key in raw:
            return raw[key]
        raise AttributeError(key)


def load_construct_params(path: str | Path) -> ConstructParams:
    """Read and validate a construction YAML; ParamsError (one line) on anything wrong."""
    from nnafc import nets, pk

    path = Path(path)
    raw = read_mapping(path)
    check_keys(path, "key", raw, DEFAULTS)
    for key in REQUIRED:
        if not raw.get(key):
            raise ParamsError(f"{path}: '{key}' is required")
    full = {**DEFAULTS, **raw}

    seeds = full["seeds"]
    if isinstance(seeds, str):
        groups = {"table1": pk.names(table1_only=True), "all": pk.names(),
                  "pk50": [f.name for f in pk.pk50()]}
        if seeds not in groups:
            raise ParamsError(f"{path}: seeds must be a list of PK names or one of {list(groups)}, "
                              f"got {seeds!r}")
        seeds = groups[seeds]
    if not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds):
        raise ParamsError(f"{path}: seeds must be a list of PK names")
    for s in seeds:
        try:
            pk.get(s)
        except ValueError as exc:
            raise ParamsError(f"{path}: {exc}") from None

    net_spec = full["nets"]
    if isinstance(net_spec, str):
        net_spec = [net_spec]
    if isinstance(net_spec, list):
        net_spec = {n: {} for n in net_spec}
    if not isinstance(net_spec, dict) or not net_spec:
        raise ParamsError(f"{path}: nets must be a list of net names or a mapping name -> config")
    config = full["config"] or {}
    if not isinstance(config, dict) or {"net", "net_cfg"} & set(config):
        raise ParamsError(f"{path}: config must be a mapping of construct settings; set nets under 'nets'")
    try:
        base = ConstructConfig.from_dict(config)
        for n, overrides in net_spec.items():
            if n not in nets.names():
                raise ValueError(f"unknown net {n!r}; valid: {', '.join(nets.names())}")
            replace(base, net=n, net_cfg=dict(overrides or {}))  # validates the net's config now
    except ValueError as exc:
        raise ParamsError(f"{path}: {exc}") from None

    if not isinstance(full["splits"], list):
        raise ParamsError(f"{path}: splits must be a list of first training dates")
    for key in ("n_jobs", "retries", "n_train", "n_valid", "n_test", "min_history"):
        if not isinstance(full[key], int) or isinstance(full[key], bool) or full[key] < 0:
            raise ParamsError(f"{path}: {key} must be a non-negative integer, got {full[key]!r}")
    if full["n_jobs"] < 1:
        raise ParamsError(f"{path}: n_jobs must be >= 1")
    if full["backend"] not in ("local", "ray"):
        raise ParamsError(f"{path}: backend must be 'local' or 'ray', got {full['backend']!r}")
    if not isinstance(full["simulate"], dict):
        raise ParamsError(f"{path}: simulate must be a mapping of simulate_market arguments")
    _check_run_keys(full, path)
    net_cfgs = {n: dict(c or {}) for n, c in net_spec.items()}
    return ConstructParams(path.stem, full, list(seeds), net_cfgs, base)


def _check_run_keys(full: dict, path: Path) -> None:
    """threads, progress, data, universe, dates, splits and stocks: ParamsError before any work."""
    from nnafc.data.kinds import stock_regex
    from nnafc.data.universe import parse_universe

    threads = full["threads"]
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ParamsError(f"{path}: threads must be a positive integer or null, got {threads!r}")
    if not isinstance(full["progress"], bool):
        raise ParamsError(f"{path}: progress must be true or false, got {full['progress']!r}")
    if full["data"] is not None and not isinstance(full["data"], str):
        raise ParamsError(f"{path}: data must be a path or null, got {full['data']!r}")
    for key in ("universe", "stocks"):
        value = full[key]
        if value is not None and not isinstance(value, str):
            raise ParamsError(f"{path}: {key} must be a string, got {value!r}")
    try:
        parse_universe(full["universe"])
        stock_regex(full["stocks"])
    except DataError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    dates = {}
    for key in ("start", "end"):
        if full[key] is not None:
            dates[key] = _date(full[key], key, path)
    if len(dates) == 2 and dates["start"] > dates["end"]:
        raise ParamsError(f"{path}: start {full['start']} is after end {full['end']}")
    for s in full["splits"]:
        if not (isinstance(s, int) and not isinstance(s, bool)):
            _date(s, "splits entry", path)


def _date(value: Any, what: str, path: Path) -> pd.Timestamp:
    try:
        if isinstance(value, bool | float | list | dict) or value is None:
            raise TypeError
        return pd.Timestamp(value)  # a string, or a date YAML read unquoted
    except (ValueError, TypeError):
        raise ParamsError(f"{path}: {what} {value!r} is not a date") from None


def check_out(out: Path) -> None:
    """ParamsError unless `out` is (or can be made) a writable directory. Tried for real (a probe
    file), since permission bits say nothing to root or on a read-only mount; nothing stays."""
    if out.exists() and not out.is_dir():
        raise ParamsError(f"--out {out} is a file, not a directory")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ParamsError(f"--out {out}: {existing} is a file, not a directory")
    try:  # in `out` itself, or the closest directory above it that exists
        with tempfile.TemporaryDirectory(prefix=".nnafc-probe.", dir=existing):
            pass
    except OSError as err:
        raise ParamsError(f"--out {out} is not writable ({err.strerror or err})") from None


def load_data(params: ConstructParams, data: str | Path | None = None) -> Panel:
    """The panel a run constructs on: --data, the file's `data`, NNAFC_DATA, else the simulated market."""
    from nnafc.data.locate import data_dir, source_for
    from nnafc.data.sources import load_panel

    chosen = data if data not in (None, "") else params.data
    if chosen == "simulated":
        root = None
    else:
        root = data_dir(chosen)
    if root is None:
        from nnafc.simulate import simulate_market

        return simulate_market(**params.simulate)
    return load_panel(source_for(root, params.universe), start=params.start, end=params.end,
                      universe=params.universe, min_history=params.min_history, stocks=params.stocks)


def make_jobs(params: ConstructParams, panel: Panel) -> list[Job]:
    """One job per (split, net, seed), in that order."""
    splits = [_split(panel, s, params) for s in params.splits]
    return [Job(seed, net, split, replace(params.config, net=net, net_cfg=overrides))
            for split in splits for net, overrides in params.nets.items() for seed in params.seeds]


def _split(panel: Panel, start: Any, params: ConstructParams) -> Split:
    sizes = {"n_train": params.n_train, "n_valid": params.n_valid, "n_test": params.n_test}
    if isinstance(start, int) and not isinstance(start, bool):
        if not 0 <= start < len(panel.dates):
            raise DataError(f"split start position {start} is outside the {len(panel.dates)}-day panel")
        start = panel.dates[start]
    return make_split(panel.dates, start, **sizes)


def run(params_path: str | Path, data: str | Path | None = None,
        out: str | Path | None = None) -> pd.DataFrame:
    """Construct every factor of the parameter file into `<out>/zoo`; print and return the summary.

    `out` defaults to runs/construct-<file stem>. Factors already in the zoo are skipped (resume).
    Jobs that still fail after their retries are listed, then raised as RunError.
    """
    params = load_construct_params(params_path)
    out = Path(out) if out is not None else Path("runs") / f"construct-{params.name}"
    check_out(out)
    panel = load_data(params, data)
    jobs = make_jobs(params, panel)
    zoo = Zoo(out / "zoo")
    print(f"constructing {len(jobs)} factors on {panel} into {zoo.root}", flush=True)
    result = run_jobs(jobs, panel, zoo, n_jobs=params.n_jobs, backend=params.backend,
                      retries=params.retries, threads=params.threads, progress=params.progress,
                      raise_on_failure=False)
    table = result.summary()
    stored = zoo.list().set_index("key")
    for col in ("seed_factor_test_ic", "valid_ic", "test_ic", "best_epoch"):
        table[col] = [stored[col].get(k) if k in stored.index else None for k in table["key"]]
    table.to_csv(out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
        print(table.drop(columns=["error"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    done = table[table["status"] != "failed"]
    if len(done) and done["test_ic"].notna().any():
        seeds_ic = done["seed_factor_test_ic"].mean()
        print(f"mean test rank IC {done['test_ic'].mean():.4f} (seed factors {seeds_ic:.4f}) "
              f"over {len(done)} factors", flush=True)
    if result.failed:
        raise RunError(result)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnafc construct", description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="construction parameter file (YAML)")
    parser.add_argument("--data", default=None, help="data file or directory (default: NNAFC_DATA)")
    parser.add_argument("--out", default=None, help="run directory (default: runs/construct-<params>)")
    args = parser.parse_args(argv)
    try:
        run(args.params, data=args.data, out=args.out)
    except (ParamsError, DataError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
