"""The construction protocol study: which way of constructing factors holds up on unseen years.

A factor whose validation IC is high but whose test IC fades was chosen on noise. Candidates
(construction settings) are compared on **selection windows** (training starts 2012-2015), whose
test days may inform the choice, and the winner is then **confirmed** on windows the choice never
saw (training starts 2016-2019, the study's windows), read once:

    table = protocol_run(panel, CANDIDATES, SELECTION_STARTS, seeds, zoo="runs/protocol/zoo")
    selection_table(table)            # per candidate: valid IC, test IC, test / valid, cost; chosen
    best_pk_baselines(panel, SELECTION_STARTS)   # the bar: the best PK 50 factor (with its sign)

    ensemble_rows(table, panel, "defaults", k=3, zoo=...)   # K inits averaged into one factor

Every factor is one `nnafc.runner` job in a zoo, so a long study resumes where it stopped.
Seeds: the study's PK seed factors, or (`Candidate.seeds = "best pk"`) per window the PK 50 factors
with the highest |rank IC| on that window's training days. Not a candidate here: the
decorrelation term of Eq. 7, which needs a pool of factors built before each one (the study's
families are built independently).
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc import construct, metrics
from nnafc.data import Panel, Split, make_split
from nnafc.evaluate.quality import quality_run
from nnafc.params import ROOT

SELECTION_STARTS = ("2012-01-01", "2013-01-01", "2014-01-01", "2015-01-01")  # choose here
CONFIRMATION_STARTS = ("2016-01-01", "2017-01-01", "2018-01-01", "2019-01-01")  # report here, once
SIZES = {"n_train": 250, "n_valid": 30, "n_test": 90}  # §4.1
AIMS = {"all": 0.10, "csi300": 0.05}  # the issue's aims for the confirmation windows' mean test IC (FCN)
RATIO_AIM = 0.6  # ... and for test IC / validation IC


@dataclass(frozen=True)
class Candidate:
    """One construction protocol: ConstructConfig overrides and split-size overrides."""

    config: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)  # n_train / n_valid / n_test (a departure from §4.1)
    seeds: str = "given"  # "given": the run's seed factors; "best pk": per window, as many PK 50
    #   factors, those with the highest |rank IC| on the window's training days

    def __post_init__(self) -> None:
        if self.seeds not in SEED_RULES:
            raise ValueError(f"seeds must be one of {list(SEED_RULES)}, got {self.seeds!r}")


SEED_RULES = ("given", "best pk")


CANDIDATES: dict[str, Candidate] = {
    "defaults": Candidate(),
    "lr 1e-3": Candidate({"lr": 1e-3}),
    "10 epochs": Candidate({"epochs": 10}),
    "weight decay 0.01": Candidate({"weight_decay": 0.01}),
    "smoothed choice (3 epochs)": Candidate({"valid_smoothing": 3}),
    "half the stocks per step": Candidate({"stock_fraction": 0.5}),
    "soft-rank loss": Candidate({"loss": "softrank"}),
    "10-day label": Candidate({"horizon": 10}),
    "60 validation days": Candidate(sizes={"n_valid": 60}),
    "500 training days": Candidate(sizes={"n_train": 500}),
    "dropout 0.2": Candidate({"net_cfg": {"dropout": 0.2}}),
    "residual form": Candidate({"residual": 1.0}),
    "best-PK seeds": Candidate(seeds="best pk"),
    "residual form, best-PK seeds": Candidate({"residual": 1.0}, seeds="best pk"),
    # a second round, added after the first round's selection table: the two best together
    "500 training days, 10 epochs": Candidate({"epochs": 10}, sizes={"n_train": 500}),
}


def protocol_run(panel: Panel, candidates: Mapping[str, Candidate], train_starts: Sequence[str],
                 seeds: Sequence[str], net: str = "fcn", base: dict | None = None,
                 zoo: str | Path = "zoo", init_seeds: Sequence[int] = (0,), n_jobs: int = 1,
                 progress: bool = True, build: bool = True) -> pd.DataFrame:
    """Construct (or load) every candidate's factors on every window; one row per factor.

    The rows are `quality_run`'s (window, seed factor, init seed, train / valid / test IC, seconds)
    with the candidate's name first; `window` is the §4.1 window's first training day for every
    candidate. A candidate with a longer training or validation split starts that much earlier,
    so that every candidate is tested on the same days. `base`: ConstructConfig overrides shared
    by every candidate. `build=False`: only read the zoo (LookupError if a factor is missing).
    """
    frames = []
    for name, cand in candidates.items():
        cfg = {**(base or {}), **cand.config}
        sizes = {**SIZES, **cand.sizes}
        starts = _aligned_starts(panel, train_starts, sizes)
        if cand.seeds == "given":
            per_window = {start: list(seeds) for start in starts}
        else:  # each window's own seeds, chosen on its training days
            splits = [make_split(panel.dates, start, **sizes) for start in starts]
            chosen = best_pk_seeds(panel, splits, len(seeds), construct.as_config(cfg).horizon)
            per_window = dict(zip(starts, chosen, strict=True))
        if not build:
            _check_built(panel, per_window, net, cfg, zoo, init_seeds, sizes, name)
        table = pd.concat([quality_run(panel, s, [start], net, cfg, zoo=zoo, init_seeds=init_seeds,
                                       n_jobs=n_jobs, progress=progress, **sizes)
                           for start, s in per_window.items()], ignore_index=True)
        table["window"] = table["window"].map(starts)
        frames.append(table.assign(candidate=name))
    out = pd.concat(frames, ignore_index=True)
    return out[["candidate", *[c for c in out.columns if c != "candidate"]]]


def _check_built(panel: Panel, per_window: Mapping[str, list[str]], net: str, cfg: dict, zoo: str | Path,
                 init_seeds: Sequence[int], sizes: Mapping[str, int], name: str) -> None:
    from nnafc.evaluate.quality import quality_jobs
    from nnafc.zoo import Zoo, factor_key

    store = Zoo(zoo)
    for start, seeds in per_window.items():
        for job in quality_jobs(panel, seeds, [start], net, cfg, init_seeds, **sizes):
            if not store.has(factor_key(job.seed_factor, job.cfg, panel, job.split)):
                raise LookupError(f"candidate {name!r}: {job.label} is not in {store.root}; build the study "
                                  "with `nnafc protocol --params params/protocol.yaml --stage ...`")


def _aligned_starts(panel: Panel, train_starts: Sequence[str], sizes: Mapping[str, int]) -> dict[str, str]:
    """{first training day of the candidate: the §4.1 window's} so that the test days coincide."""
    extra = sizes["n_train"] + sizes["n_valid"] - SIZES["n_train"] - SIZES["n_valid"]
    out = {}
    for start in train_starts:
        j = int(panel.dates.searchsorted(pd.Timestamp(start)))  # the window's first training day
        if not 0 <= j - extra < len(panel.dates) or j >= len(panel.dates):
            raise ValueError(f"a {sizes['n_train']}/{sizes['n_valid']}-day split tested where the window "
                             f"from {start} is needs {extra} more trading days before it")
        out[str(panel.dates[j - extra].date())] = str(panel.dates[j].date())
    return out


def selection_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per candidate, over its factors: mean valid and test IC, test / valid (how much survives),
    the share of factors whose test IC beats their seed factor's, seconds per factor, and which
    candidate is chosen: the highest mean test IC of the selection windows (never a confirmation
    window's)."""
    g = table.groupby("candidate", sort=False)
    out = pd.DataFrame({
        "factors": g.size(),
        "valid IC": g["valid IC"].mean(),
        "test IC": g["test IC"].mean(),
        "test IC std": g["test IC"].std(),
        "beats seed factor": g.apply(lambda f: float((f["test IC"] > f["seed factor test IC"]).mean()),
                                     include_groups=False),
        "seconds per factor": g["seconds"].mean(),
    })
    out["test / valid"] = out["test IC"] / out["valid IC"]
    out["chosen"] = out.index == out["test IC"].idxmax()
    return out


def pk_daily_ics(panel: Panel, horizon: int = 5, factors: Sequence | None = None) -> dict[str, np.ndarray]:
    """{PK factor: its `(T,)` daily rank IC on the whole panel}, labels `horizon` days ahead.

    A period's no-look-ahead mean IC is then `period_ic(daily, days, horizon)`: day t's label reads
    close[t + horizon], so on the days whose label stays inside the period the full-panel labels
    are the period's own (`period_labels`), and the last `horizon` days have none. Kept for the
    last few panels asked for, so that many windows and candidates compute each factor once.
    """
    from nnafc import pk
    from nnafc.data.windows import forward_returns

    factors = list(factors) if factors is not None else pk.pk50()
    key = (id(panel), horizon, tuple(f.name for f in factors))
    if key in _PK_ICS and _PK_ICS[key][0] is panel:
        return _PK_ICS[key][1]
    labels = forward_returns(panel["close"], horizon)  # (T, N)
    out = {f.name: np.asarray(metrics.rank_ic(f.values(panel), labels, panel.in_universe)) for f in factors}
    _PK_ICS[key] = (panel, out)
    while len(_PK_ICS) > 4:
        _PK_ICS.pop(next(iter(_PK_ICS)))
    return out


_PK_ICS: dict = {}  # (id(panel), horizon, names) -> (panel, daily ICs): pk_daily_ics' memory


def period_ic(daily: np.ndarray, days: slice, horizon: int) -> float:
    """Mean daily rank IC of a period from full-panel daily ICs, as `period_rank_ic` would give it:
    only the days whose label reads no price after the period's last day."""
    return metrics.mean_ic(daily[days.start:max(days.start, days.stop - horizon)])


def best_pk_seeds(panel: Panel, splits: Sequence[Split], k: int, horizon: int = 5,
                  factors: Sequence | None = None) -> list[list[str]]:
    """Per split, the k PK 50 factors with the highest |mean rank IC| on its TRAINING days (labels cut
    at the last training day): seeds chosen with nothing the model choice or the test reads."""
    daily = pk_daily_ics(panel, horizon, factors)
    out = []
    for split in splits:
        ics = {name: abs(ic) for name, d in daily.items()
               if np.isfinite(ic := period_ic(d, split.train, horizon))}
        if len(ics) < k:
            raise ValueError(f"only {len(ics)} PK factors have a defined rank IC on the training days; "
                             f"{k} asked")
        out.append(sorted(ics, key=lambda n: (-ics[n], n))[:k])
    return out


def ensemble_rows(table: pd.DataFrame, panel: Panel, candidate: str, k: int, zoo: str | Path,
                  horizon: int = 5, build: bool = True) -> pd.DataFrame:
    """`candidate`'s first k init seeds averaged into one factor per (window, seed factor): the mean
    of their daily `rank_score`s. Rows shaped as `protocol_run`'s, candidate "<candidate>, K inits"
    (valid and test IC of the averaged factor; seconds: the sum of its members').

    The averaged factor's ICs are kept in the zoo (`ensembles/<key>.json`, the key hashing its
    members' keys), so a zoo that keeps measurements but not networks still answers.
    """
    from nnafc.files import atomic_path
    from nnafc.zoo import Zoo, content_key

    store = Zoo(zoo)
    rows = []
    mine = table[(table["candidate"] == candidate) & (table["init seed"] < k)]
    for (window, seed), g in mine.groupby(["window", "seed factor"], sort=False):
        if len(g) < k:
            raise ValueError(f"{candidate}: {len(g)} of {k} init seeds on {window} / {seed}; run them first")
        record = store.root / "ensembles" / f"{content_key({'members': list(g['key']), 'h': horizon})}.json"
        if record.is_file():
            ic = json.loads(record.read_text())["ic"]
        elif not build:
            raise LookupError(f"the {k}-init ensemble of {candidate!r} on {window} / {seed} is not in "
                              f"{store.root}; build it with `nnafc protocol --stage selection`")
        else:
            ic = _ensemble_ic([store.load(key) for key in g["key"]], panel, horizon)
            record.parent.mkdir(exist_ok=True)
            with atomic_path(record) as tmp:
                Path(tmp).write_text(json.dumps({"members": list(g["key"]), "horizon": horizon, "ic": ic},
                                                indent=1) + "\n")
        first = g.iloc[0]
        rows.append({**first.to_dict(), "candidate": f"{candidate}, {k} inits", "init seed": -1,
                     **{f"{part} IC": ic[part] for part in ic}, "best epoch": np.nan,
                     "seconds": float(g["seconds"].sum()), "key": ",".join(g["key"])})
    return pd.DataFrame(rows, columns=table.columns)


def _ensemble_ic(members: list, panel: Panel, horizon: int) -> dict[str, float]:
    with warnings.catch_warnings():  # a day no member scores stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.nanmean([metrics.rank_score(f.values(panel)) for f in members], axis=0)  # (T, N)
    days = {part: _stored_days(panel, members[0].meta, part) for part in ("train", "valid", "test")}
    return {part: metrics.mean_ic(metrics.period_rank_ic(values, panel, d, horizon))
            for part, d in days.items()}


def _stored_days(panel: Panel, meta: dict, part: str) -> slice:
    """Panel positions of a stored factor's split part, from its first and last date."""
    first, last = (pd.Timestamp(d) for d in meta["split"][part])
    return slice(int(panel.dates.searchsorted(first)), int(panel.dates.searchsorted(last)) + 1)


def best_pk_baselines(panel: Panel, train_starts: Sequence[str], horizon: int = 5,
                      factors: Sequence | None = None) -> pd.DataFrame:
    """The bar any construction must clear, per §4.1 window: the PK 50 factor with the highest
    |mean rank IC| on the window's training + validation days, traded with that sign; its test IC
    measured after the choice. One row per window (its first training day): factor, sign, train+valid
    IC (signed), test IC."""
    daily = pk_daily_ics(panel, horizon, factors)
    rows = []
    for start in train_starts:
        split = make_split(panel.dates, start, **SIZES)
        chosen_on = slice(split.train.start, split.valid.stop)
        ics = {name: ic for name, d in daily.items() if np.isfinite(ic := period_ic(d, chosen_on, horizon))}
        if not ics:
            raise ValueError(f"no PK factor has a rank IC on the training + validation days of {start}")
        name = max(ics, key=lambda n: (abs(ics[n]), n))
        sign = float(np.sign(ics[name]))
        rows.append({"window": str(panel.dates[split.train.start].date()),  # as protocol_run names it
                     "factor": name, "sign": sign, "train+valid IC": abs(ics[name]),
                     "test IC": sign * period_ic(daily[name], split.test, horizon)})
    return pd.DataFrame(rows).set_index("window")


def confirmation_facts(table: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Per candidate of a confirmation table (one universe): mean test IC, test / valid, and per
    window its mean test IC against the best-PK baseline -- the figures the aims are read from."""
    per_window = table.groupby(["candidate", "window"], sort=False)["test IC"].mean().unstack("window")
    per_window = per_window[[w for w in baselines.index if w in per_window.columns]]
    summary = selection_table(table)[["factors", "valid IC", "test IC", "test / valid"]]
    beats = per_window.gt(baselines["test IC"].reindex(per_window.columns), axis=1)
    out = summary.join(per_window.add_prefix("test IC "))
    out["windows above best PK"] = beats.sum(axis=1)
    out["best PK test IC"] = float(baselines["test IC"].mean())
    return out


# ---------------------------------------------------------------------------- the study, from its file

STAGES = {  # the panel each stage reads: history for the longest candidate split, and its test days
    "selection": {"starts": SELECTION_STARTS, "period": ("2010-03-01", "2016-12-31")},
    "confirmation": {"starts": CONFIRMATION_STARTS, "period": ("2014-06-01", "2020-12-31")},
}
DEFAULT_PARAMS = ROOT / "params" / "protocol.yaml"  # the repository's
TOP_KEYS = ("data", "zoo", "net", "n_jobs", "universes", "confirm")
UNIVERSE_KEYS = ("candidates", "seeds", "ensemble")


@dataclass(frozen=True)
class ProtocolParams:
    """params/protocol.yaml: per universe its candidates (all, or a shortlist of the previous
    universe's best `k` plus the defaults) and seed factors; the zoo; the confirmation's rule."""

    universes: dict  # {universe: {"candidates": "all" | int k, "seeds": [PK names], "ensemble": K}}
    zoo: str = "study/protocol/zoo"  # relative to the file's repository (its parent's parent) or absolute
    net: str = "fcn"
    n_jobs: int = 1
    data: str | None = None


def load_protocol_params(path: str | Path | None = None) -> ProtocolParams:
    """The protocol study's parameter file (default: the repository's params/protocol.yaml),
    checked before any work (one clear error)."""
    from nnafc import pk
    from nnafc.params import ParamsError, check_keys, read_mapping, repo_file

    path = DEFAULT_PARAMS if path is None else repo_file(path)

    raw = read_mapping(path)
    check_keys(path, "key", raw, TOP_KEYS)
    universes = raw.get("universes")
    if not isinstance(universes, dict) or not universes:
        raise ParamsError(f"{path}: `universes` must map universe names to their candidates and seeds")
    known = set(pk.names())
    for i, (name, spec) in enumerate(universes.items()):
        if name not in ("csi300", "all"):
            raise ParamsError(f"{path}: universe {name!r}: the protocol study runs on 'csi300' or 'all'")
        check_keys(path, f"key of universe {name!r}", spec, UNIVERSE_KEYS)
        cands, seeds = spec.get("candidates", "all"), spec.get("seeds")
        if not (cands == "all" or (isinstance(cands, int) and not isinstance(cands, bool) and cands >= 1
                                   and i > 0)):
            raise ParamsError(f"{path}: universe {name!r}: candidates must be 'all' or (after the first "
                              f"universe) a number k of its best, got {cands!r}")
        if not isinstance(seeds, list) or not seeds or any(s not in known for s in seeds):
            raise ParamsError(f"{path}: universe {name!r}: seeds must be a list of PK factor names")
        k = spec.get("ensemble")
        if k is not None and not (isinstance(k, int) and not isinstance(k, bool) and k >= 2):
            raise ParamsError(f"{path}: universe {name!r}: ensemble must be a number of inits >= 2, "
                              f"got {k!r}")
    n_jobs = raw.get("n_jobs", 1)
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise ParamsError(f"{path}: n_jobs must be an integer >= 1, got {n_jobs!r}")
    zoo = Path(raw.get("zoo", "study/protocol/zoo"))
    if not zoo.is_absolute():
        zoo = Path(path).resolve().parent.parent / zoo  # params/<file> -> the repository root
    return ProtocolParams(universes=universes, zoo=str(zoo),
                          net=str(raw.get("net", "fcn")), n_jobs=n_jobs, data=raw.get("data"))


def stage_panel(params: ProtocolParams, universe: str, stage: str, data: str | None = None) -> Panel:
    """The panel a stage reads on one universe. The same object for the same source, universe and
    stage (the last few kept), so the PK ICs of `pk_daily_ics` are computed once per panel whether
    `run_stage` or a baseline asks first."""
    from nnafc.data.locate import data_dir, source_for
    from nnafc.data.panel import DataError

    root = data_dir(data if data not in (None, "") else params.data)
    if root is None:
        raise DataError("the protocol study needs real data: pass --data or set NNAFC_DATA")
    return _load_stage_panel(source_for(root, universe), universe, stage)


@functools.lru_cache(maxsize=4)
def _load_stage_panel(source: Path, universe: str, stage: str) -> Panel:
    from nnafc.data.sources import load_panel

    start, end = STAGES[stage]["period"]
    return load_panel(source, start=start, end=end, universe=universe)


def run_stage(params: ProtocolParams, stage: str, data: str | None = None, progress: bool = True,
              build: bool = True, chosen: str | None = None) -> dict[str, pd.DataFrame]:
    """Build (or load) one stage of the study; {universe: protocol_run table}.

    selection: each universe's candidates on the selection windows; a universe with `candidates: k`
        runs the previous universe's k best (by selection test IC) and the defaults.
    confirmation: the defaults and the candidate chosen on the last universe's selection windows,
        on the confirmation windows of every universe -- the only time those test days are read.
        `chosen`: that candidate when the selection is already at hand (else it is read or built).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    out = {}
    if stage == "confirmation" and chosen is None:
        chosen = chosen_candidate(run_stage(params, "selection", data, progress, build))
    previous = None
    for universe, spec in params.universes.items():
        panel = stage_panel(params, universe, stage, data)
        if stage == "confirmation":
            names = list(dict.fromkeys(["defaults", chosen]))
        elif spec.get("candidates", "all") == "all":
            names = list(CANDIDATES)
        else:
            ranked = selection_table(previous)["test IC"].sort_values(ascending=False).index
            names = list(dict.fromkeys(["defaults", *ranked[: int(spec["candidates"])]]))
        table = protocol_run(panel, {n: CANDIDATES[n] for n in names}, STAGES[stage]["starts"],
                             spec["seeds"], params.net, zoo=params.zoo, n_jobs=params.n_jobs,
                             progress=progress, build=build)
        previous = table
        if stage == "selection" and spec.get("ensemble"):
            table = pd.concat([table, _ensembles(params, panel, spec, table, int(spec["ensemble"]), progress,
                                                 build)], ignore_index=True)
        out[universe] = table.assign(universe=universe)
    return out


def _ensembles(params: ProtocolParams, panel: Panel, spec: dict, table: pd.DataFrame, k: int,
               progress: bool, build: bool) -> pd.DataFrame:
    """K-init ensembles of the defaults and of the universe's best single-init candidate."""
    best = selection_table(table)["test IC"].idxmax()
    names = list(dict.fromkeys(["defaults", best]))
    inits = protocol_run(panel, {n: CANDIDATES[n] for n in names}, SELECTION_STARTS, spec["seeds"],
                         params.net, zoo=params.zoo, init_seeds=range(k), n_jobs=params.n_jobs,
                         progress=progress, build=build)
    return pd.concat([ensemble_rows(inits, panel, n, k, params.zoo, build=build) for n in names],
                     ignore_index=True)


def chosen_candidate(selection: Mapping[str, pd.DataFrame]) -> str:
    """The candidate with the highest selection-window test IC on the last universe (all A-shares,
    the paper's universe, when the file lists it last); ensembles of a universe are not candidates
    of the confirmation (they are reported beside the single-init ones)."""
    last = list(selection.values())[-1]
    return str(selection_table(last[last["candidate"].isin(list(CANDIDATES))])["test IC"].idxmax())
