"""The book's factor study (`params/study.yaml`): the one place that says which factor sets the book reports.

Every chapter that compares constructed factors (Tables 4-7, the quality study, clustering) asks
the study instead of building splits or scanning zoo directories of its own:

    study = Study.load("params/study.yaml", data="../shared/data")
    study.windows()                       # [Split]: the one rolling 250/30/90 window list
    study.factor_set("lstm", 0)           # [Factor] of window 0, loaded from the committed zoo
    study.inventory()                     # family x window: wanted, present, missing, seconds
    study.build(families=["fcn"], windows=[0], max_minutes=60)   # construct what is missing

A **family** is a named factor set per window:

- a network name (`fcn`, `lenet`, `resnet`, `lstm`, `tcn`, `transformer`, `crossconv`), or any
  name with `net:` set (a deeper / wider variant for Fig. 8): NNAFC factors seeded by PK factors.
  With n factors from L seed factors, factor i uses `seeds[i * L // n]` (spread over the list,
  whose families are contiguous) when n <= L, else `seeds[i % L]` with init seed
  `init_seed + i // L`: every (seed factor, init seed) pair is distinct, fixed before any data;
- `gp`: one GP search per window (`nnafc.gp`), its `factors` best formulas (the "Only GP" scheme);
- `<net>+gp`: networks seeded by that window's GP formulas ("GP and NNAFC", §4.2).

Networks live in `<zoo>/<key>/` (`nnafc.zoo`; the study's zoo stores no values: they are recomputed
on load), GP sets in `<zoo>/sets/<key>.json`. A key hashes the data, the split, the seed factor,
the init seed, the config and the code's format, so a factor whose data or code changed is not
found under its old key: `inventory()` reports it missing (and the stale entry as `stale`), and
`build()` constructs it again — a changed factor is never used silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nnafc.construct import ConstructConfig, on_dates
from nnafc.data.panel import Panel
from nnafc.data.splits import Split, make_split, split_window
from nnafc.factor import Factor, ValueStore, cached
from nnafc.params import ROOT
from nnafc.study_params import GP, GP_SEEDED, Family, StudyParams, is_int, load_panel_for, load_params

if TYPE_CHECKING:
    from nnafc.gp import GPResult

__all__ = ["GP", "GP_SEEDED", "Family", "Member", "Study", "StudyParams", "format_inventory",
           "load_panel_for", "load_params"]

GP_RECORDS = ("table", "history", "lineage")  # GPResult frames kept with a study's GP set (Table 4's
#   formula examples and the inheritance measures read them)
GP_LOOKBACK = 150  # days before a window's first training day fed to the GP search (its formulas' history)


# ----------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class Member:
    """One factor the study wants: family, window, position in the set, and how it is built."""

    family: str
    window: int
    index: int
    seed_factor: str | None  # PK name; None for GP formulas and GP-seeded networks (known after GP)
    config: ConstructConfig | None


class Study:
    """The study's factor sets on one panel (the parameter file's data, universe and period)."""

    def __init__(self, params: StudyParams, panel: Panel, store: str | os.PathLike | None = None) -> None:
        """`store`: where factor values computed from the zoo's networks are kept (`ValueStore`);
        default `NNAFC_CACHE`, else the repository's `runs/cache/values`."""
        from nnafc.zoo import Zoo

        self.params, self.panel = params, panel
        self.zoo = Zoo(params.zoo, store_values=False)
        self.store = ValueStore(store or os.environ.get("NNAFC_CACHE") or ROOT / "runs" / "cache" / "values")
        self._windows = [make_split(panel.dates, str(d), n_train=params.n_train, n_valid=params.n_valid,
                                    n_test=params.n_test) for d in params.train_starts]
        self._gp_cache: dict[int, list[Factor]] = {}

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
             store: str | os.PathLike | None = None) -> Study:
        """The study of a parameter file on its data (`data` > the file's `data` > NNAFC_DATA)."""
        params = load_params(path)
        return cls(params, load_panel_for(params, data), store)

    def __repr__(self) -> str:
        return (f"Study({self.params.path.name}: {len(self._windows)} windows, "
                f"{', '.join(self.params.families)}; zoo {self.zoo.root})")

    # ---- windows

    def windows(self) -> list[Split]:
        """The rolling train / valid / test windows every table of the book uses."""
        return list(self._windows)

    def window_label(self, window: int) -> str:
        """A window's name in the book's tables: its first training day, e.g. "2014-12-24"."""
        return str(self._window(window).dates()["train"][0].date())

    def _window(self, window: int) -> Split:
        if not is_int(window) or not 0 <= window < len(self._windows):
            raise ValueError(f"window must be 0..{len(self._windows) - 1}, got {window!r}")
        return self._windows[window]

    def _family(self, family: str) -> Family:
        if family not in self.params.families:
            raise ValueError(f"unknown family {family!r}; the study has {', '.join(self.params.families)}")
        return self.params.families[family]

    # ---- members and keys

    def members(self, family: str, window: int) -> list[Member]:
        """The factors `family` wants on `window`: none on a window it is not built on."""
        fam, _ = self._family(family), self._window(window)
        if not fam.on(window):
            return []
        if fam.kind == "gp":
            return [Member(family, window, i, None, None) for i in range(fam.factors)]
        out = []
        n, n_seeds = fam.factors, len(fam.seeds)
        for i in range(n):
            if fam.kind == "nnafc+gp":
                seed, shift = None, i  # GP formula i seeds it; init seeds as the "GP and NNAFC" scheme
            elif n <= n_seeds:
                seed, shift = fam.seeds[i * n_seeds // n], 0  # spread over the list (families are contiguous)
            else:
                seed, shift = fam.seeds[i % n_seeds], i // n_seeds  # every seed, then again with new inits
            out.append(Member(family, window, i, seed,
                              replace(fam.config, seed=self.params.init_seed + shift)))
        return out

    def _gp_key(self, window: int) -> str:
        from nnafc.zoo import FORMAT, content_key, panel_fingerprint, split_dates

        split = self._window(window)
        return content_key({
            "format": FORMAT, "gp": self._gp_config(window).to_dict(), "lookback": GP_LOOKBACK,
            "data": {"fingerprint": panel_fingerprint(self.panel, split.test.stop),
                     "universe": self.panel.universe, "first_date": str(self.panel.dates[0].date())},
            "split": split_dates(split, self.panel.dates)})

    def _gp_config(self, window: int) -> Any:
        from nnafc import gp

        fam = self.params.families[GP]
        horizon = next((f.config.horizon for f in self.params.families.values() if f.config), 5)
        return gp.as_config({"horizon": horizon, "seed": self.params.init_seed, **fam.gp,
                             "n_factors": fam.factors, "progress": False})

    def _gp_set(self, window: int, build: bool) -> list[Factor] | None:
        if window in self._gp_cache:
            return self._gp_cache[window]
        key = self._gp_key(window)
        factors = self.zoo.load_set(key) if self.zoo.has_set(key) else None
        if factors is None and build:
            from nnafc import gp

            cut, cut_split = split_window(self.panel, self._window(window), lookback=GP_LOOKBACK)
            t0 = time.perf_counter()
            result = gp.run_gp(cut, cut_split, self._gp_config(window))
            seconds = time.perf_counter() - t0
            factors = result.factors[: self.params.families[GP].factors]
            record = {name: _frame_record(getattr(result, name)) for name in GP_RECORDS}
            self.zoo.save_set(key, factors, {"family": GP, "window": window, "seconds": seconds, **record,
                                             "stopped_early": result.stopped_early,
                                             "selected_on": result.selected_on})
            factors = self.zoo.load_set(key)
        if factors is not None:
            self._gp_cache[window] = factors
        return factors

    def gp_result(self, window: int, build: bool = False) -> GPResult:
        """The window's GP search as stored with its set (`gp.GPResult`: the kept formulas, their
        `table` with train / valid IC, per-generation `history`, the parent -> child `lineage` of the
        last generations; `hall_of_fame` and `evaluated` are not kept, so they are empty)."""
        from nnafc import gp

        factors = self._gp_set(window, build)
        if factors is None:
            raise LookupError(self._missing(GP, window))
        meta = self.zoo.set_meta(self._gp_key(window))
        frames = {name: pd.DataFrame(**meta[name]) for name in GP_RECORDS}
        return gp.GPResult(factors=factors, hall_of_fame=pd.DataFrame(), evaluated=pd.DataFrame(),
                           config=self._gp_config(window), seconds=float(meta["seconds"]),
                           stopped_early=bool(meta["stopped_early"]), selected_on=meta["selected_on"],
                           **frames)

    def _seeded(self, family: str, window: int, build: bool) -> list[tuple[Member, str | Factor]] | None:
        """The family's members on `window` with their seed factors; None while a GP-seeded family's
        GP set is not built. GP may keep fewer formulas than asked for: the set is then that long."""
        members = self.members(family, window)
        if self.params.families[family].kind != "nnafc+gp":
            return [(m, m.seed_factor) for m in members]
        gp_set = self._gp_set(window, build)
        return None if gp_set is None else list(zip(members, gp_set, strict=False))

    def _key(self, member: Member, seed: str | Factor) -> str:
        return self.zoo.key(seed, member.config, self.panel, self._window(member.window))

    # ---- what exists

    def factor_set(self, family: str, window: int, build: bool = False, device: str = "cpu",
                   partial: bool = False) -> list[Factor]:
        """The factors of `family` on `window`, loaded from the zoo (in the study's order).

        A missing factor raises `LookupError` naming the command that builds it, unless `build`
        is set, in which case it is constructed now (and stored), or `partial`: then the network
        factors built so far (a family still being built; members keep their order).
        """
        fam, _ = self._family(family), self._window(window)
        if not fam.on(window):
            raise LookupError(f"family {family!r} is built on windows {list(fam.windows)} only, not {window}")
        if fam.kind == "gp":
            factors = self._gp_set(window, build)
            if factors is None:
                raise LookupError(self._missing(family, window))
            return factors
        partial = partial and not build
        keys = self._built_keys(family, window) if partial else self._keys(family, window, build)
        return [self.zoo.load(key, device=device) for key in keys]

    def test_values(self, family: str, window: int, device: str = "cpu",
                    partial: bool = False) -> tuple[list[Factor], np.ndarray]:
        """The family's factors on `window` (`factor_set`) and their values on its test days,
        `(K, D, N)` float32, NaN where undefined: what Eq. 18-19 (diversity, clustering) compare.

        Computed on the test days with only the history they need before them (a network's input
        window `m`; GP's and a residual seed factor's warm-up, `GP_LOOKBACK`): the same values as on
        the whole panel at a fraction of the cost (a ResNet scores 90 days, not 1,600), kept in the
        value store for the next chapter and run."""
        fam = self._family(family)
        factors = self.factor_set(family, window, device=device, partial=partial)
        test = self._window(window).test
        plain = fam.kind != "gp" and not any((f.meta.get("residual") or {}).get("weight") for f in factors)
        start = max(0, test.start - (fam.config.m if plain else GP_LOOKBACK))
        cut = self.panel.slice_days(start, test.stop)
        values = [self.store.values(f, cut)[test.start - start:] for f in factors]
        shape = (0, test.stop - test.start, len(self.panel.instruments))
        return factors, np.stack(values) if values else np.empty(shape, dtype=np.float32)

    def window_of(self, split: Split, panel: Panel) -> int | None:
        """The study window that `split` (a split on `panel`, whose first day may differ from the
        study's) lies in: the same validation days, training days that end where the window's end
        (its last n of them, or all), test days that start where the window's start (its first n,
        or all); on the same universe and kind of data. None when there is none. The factors built
        on that window were trained on (some of) the split's training days and saw none of its test
        days; a factor built on another window has seen other days."""
        if panel.universe != self.panel.universe or panel.simulated != self.panel.simulated:
            return None
        mine = split.dates(panel.dates)
        for w, window in enumerate(self._windows):
            theirs = window.dates(self.panel.dates)
            if (mine["valid"].equals(theirs["valid"])
                    and _is_part(mine["train"], theirs["train"], at_end=True)
                    and _is_part(mine["test"], theirs["test"], at_end=False)):
                return w
        return None

    def sets_for(self, split: Split, panel: Panel, device: str = "cpu") -> dict[str, list[Factor]]:
        """Every family's complete factor set on the study window `split` lies in (`window_of`), by
        family name; {} when it lies in none. A family not fully built on it is left out (its
        table row reads "not run"), never filled from another window. Each factor computes only the
        split's days, first training day to last test day, from `GP_LOOKBACK` days before them
        (`construct.on_dates`), once: the values are kept with the set (`factor.cached`, in
        memory), for every table that trades it."""
        window = self.window_of(split, panel)
        if window is None:
            return {}
        first, last = panel.dates[split.train.start], panel.dates[split.test.stop - 1]
        sets = {}
        for family in self.params.families:
            try:
                factors = self.factor_set(family, window, device=device)
            except LookupError:
                continue
            sets[family] = cached([on_dates(f, first, last, GP_LOOKBACK) for f in factors], panel)
        return sets

    def ic_table(self, family: str, build: bool = False, partial: bool = False) -> pd.DataFrame:
        """One row per factor of a network family on every window, from its stored measurements
        (`quality.meta_row`: window, seed factor, init seed, the seed factor's and the factor's rank
        IC on train / valid / test, best epoch, seconds) and its key. Missing factors as `factor_set`,
        unless `partial`: then only the factors built so far (a family still being built)."""
        from nnafc.evaluate.quality import meta_row

        if self._family(family).kind == "gp":
            raise ValueError(f"{family!r} is a GP family: its sets keep formulas, not training measurements")
        if partial:
            keys = [k for w in range(len(self._windows)) for k in self._built_keys(family, w)]
        else:
            keys = [k for w in range(len(self._windows)) for k in self._keys(family, w, build)]
        columns = None if keys else ["window", "seed factor", "test IC", "valid IC", "seconds", "key"]
        return pd.DataFrame([{**meta_row(self.zoo.meta(key)), "key": key} for key in keys], columns=columns)

    def _built_keys(self, family: str, window: int) -> list[str]:
        """The zoo keys of a network family's factors on `window` that are built, in member order."""
        keys = (self._key(m, seed) for m, seed in self._seeded(family, window, build=False) or [])
        return [k for k in keys if self.zoo.has(k)]

    def _keys(self, family: str, window: int, build: bool) -> list[str]:
        """The zoo keys of a network family's factors on `window`, constructing the missing ones
        when `build` (else LookupError naming the build command)."""
        seeded = self._seeded(family, window, build)
        if seeded is None:
            raise LookupError(self._missing(family, window))
        keys = []
        for member, seed in seeded:
            key = self._key(member, seed)
            if not self.zoo.has(key):
                if not build:
                    raise LookupError(self._missing(family, window))
                self._construct(member, seed, key)
            keys.append(key)
        return keys

    def _missing(self, family: str, window: int) -> str:
        return (f"family {family!r} window {window} is not (fully) in {self.zoo.root}: build it with "
                f"`nnafc study build --params {self.params.path} --families {family} --windows {window}`")

    def _construct(self, member: Member, seed: str | Factor, key: str) -> None:
        from nnafc.construct import construct_factor

        factor = construct_factor(seed, None, self.panel, self._window(member.window), member.config)
        self.zoo.save(factor, self.panel, self._window(member.window), key=key)

    def built(self, family: str, window: int) -> int:
        """How many of the family's factors on `window` are in the zoo (GP: its kept formulas)."""
        fam, _ = self._family(family), self._window(window)
        if not fam.on(window):
            return 0
        if fam.kind == "gp":
            return len(self._gp_set(window, build=False) or [])
        return len(self._built_keys(family, window))

    def inventory(self) -> pd.DataFrame:
        """One row per (family, window): factors wanted, present, missing, and their construction
        seconds (wall time of each factor's construction, summed: CPU-hours when each ran on one core).

        `stale` (in the table's attrs) counts zoo entries no member of the study has the key of:
        built on other data, config or code. They are never loaded.
        """
        rows, wanted_keys = [], set()
        for family in self.params.families:
            fam = self.params.families[family]
            for window in range(len(self._windows)):
                present, seconds, wanted = 0, 0.0, len(self.members(family, window))
                if not fam.on(window):
                    pass  # not built on this window: nothing wanted
                elif fam.kind == "gp":
                    key = self._gp_key(window)
                    wanted_keys.add(key)
                    if self.zoo.has_set(key):
                        present = len(self.zoo.load_set(key))
                        wanted = present  # GP's correlation filter may keep fewer than asked
                        seconds = float(self.zoo.set_meta(key).get("seconds", 0.0))
                else:
                    seeded = self._seeded(family, window, build=False)
                    if seeded is not None:
                        wanted = len(seeded)  # a GP-seeded family: as many as GP kept, at most `factors`
                    for member, seed in seeded or []:
                        key = self._key(member, seed)
                        wanted_keys.add(key)
                        if self.zoo.has(key):
                            present += 1
                            seconds += float(self.zoo.meta(key).get("seconds") or 0.0)
                rows.append({"family": family, "window": window,
                             "train_start": self._windows[window].dates()["train"][0].date(),
                             "wanted": wanted, "present": present, "missing": max(wanted - present, 0),
                             "seconds": seconds})
        table = pd.DataFrame(rows)
        table.attrs["stale"] = sorted((set(self.zoo.keys()) | set(self.zoo.set_keys())) - wanted_keys)
        return table

    def build(self, families: Sequence[str] | None = None, windows: Sequence[int] | None = None,
              max_minutes: float | None = None, log: Callable[[str], None] = print) -> pd.DataFrame:
        """Construct what is missing (GP sets first: they seed the `+gp` families); returns `inventory()`.

        Resumable: what is in the zoo is skipped. `max_minutes` stops starting new work after that
        much wall time (a piece of a long build: jobs then start in rounds of two per worker, so a
        piece overruns by at most one round, and always does at least one); run it again to continue.
        """
        from nnafc.runner import Job, run_jobs

        families = list(self.params.families) if families is None else list(families)
        windows = list(range(len(self._windows))) if windows is None else list(windows)
        for f in families:
            self._family(f)
        for w in windows:
            self._window(w)
        rank = {"gp": 0, "nnafc": 1, "nnafc+gp": 2}  # GP sets first: they seed the "+gp" families
        order = sorted(families, key=lambda f: rank[self.params.families[f].kind])
        t0, started = time.monotonic(), False

        def out_of_time() -> bool:  # a piece always does one round of work: every run makes progress
            return started and max_minutes is not None and time.monotonic() - t0 > 60 * max_minutes

        for family in order:
            kind = self.params.families[family].kind
            for window in [w for w in windows if self.params.families[family].on(w)]:
                if out_of_time():
                    log(f"stopping after {max_minutes} min; run the same command again to continue")
                    return self.inventory()
                if kind == "gp":
                    if not self.zoo.has_set(self._gp_key(window)):
                        log(f"GP search: window {window}")
                        self._gp_set(window, build=True)
                        started = True
                    continue
                seeded = self._seeded(family, window, build=True)  # a "+gp" family: its GP set first
                jobs = [Job(seed, m.config.net, self._window(window), m.config) for m, seed in seeded
                        if not self.zoo.has(self._key(m, seed))]  # a round is new work, never skips
                if not jobs:
                    continue
                log(f"{family}: window {window}, {len(jobs)} of {len(seeded)} factors to build"
                    + (", seeded by GP" if kind == "nnafc+gp" else ""))
                # with a time limit, jobs go out in rounds of 2 per worker so a piece ends near it
                step = len(jobs) if max_minutes is None else 2 * self.params.n_jobs
                for first in range(0, len(jobs), step):
                    if out_of_time():
                        log(f"stopping after {max_minutes} min; run the same command again to continue")
                        return self.inventory()
                    run_jobs(jobs[first:first + step], self.panel, self.zoo, n_jobs=self.params.n_jobs,
                             backend=self.params.backend, retries=self.params.retries,
                             threads=self.params.threads, progress=self.params.progress)
                    started = True
        return self.inventory()


def _is_part(part: pd.DatetimeIndex, whole: pd.DatetimeIndex, at_end: bool) -> bool:
    """`part` is a non-empty run of `whole`'s last (`at_end`) or first days."""
    n = len(part)
    return 0 < n <= len(whole) and part.equals(whole[len(whole) - n:] if at_end else whole[:n])


def _frame_record(frame: pd.DataFrame) -> dict:
    """A frame as {"columns", "data"} (compact JSON; `pd.DataFrame(**record)` reads it back)."""
    split = frame.to_dict("split")
    return {"columns": split["columns"], "data": split["data"]}


def format_inventory(table: pd.DataFrame) -> str:
    """The inventory as text: per family and window, then totals and stale entries."""
    wide = table.pivot(index="family", columns="window", values="present").astype(int)
    wide.columns = [f"w{c}" for c in wide.columns]
    totals = table.groupby("family", sort=False)[["wanted", "present", "missing", "seconds"]].sum()
    totals["hours"] = totals.pop("seconds") / 3600
    out = wide.join(totals).loc[list(dict.fromkeys(table["family"]))]
    lines = [out.to_string(float_format=lambda v: f"{v:.2f}")]
    lines.append(f"total: {int(totals['present'].sum())} of {int(totals['wanted'].sum())} factors, "
                 f"{totals['hours'].sum():.2f} construction hours")
    stale = table.attrs.get("stale", [])
    if stale:
        lines.append(f"stale (not used; other data, config or code): {len(stale)} entries")
    return "\n".join(lines)
