"""The protocol study as the pre-training chapter reports it: its tables, and the facts its prose reads.

`report(params, data)` reads the committed study (`run_stage(..., build=False)`: a factor missing
from the zoo is an error naming the build command, never a silent rebuild) and adds the best-PK
baselines of both stages; `facts(report)` returns the values the chapter glues into its text, with
the same keys whatever universes the parameter file lists (NaN where one is not run, and for every
key when there is no report, e.g. on the simulated market).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnafc.evaluate import protocol


@dataclass
class ProtocolReport:
    chosen: str  # the candidate chosen on the last universe's selection windows
    selection: dict[str, pd.DataFrame]  # {universe: protocol_run table}, selection windows
    selection_base: dict[str, pd.DataFrame]  # {universe: best_pk_baselines}, selection windows
    confirmation: dict[str, pd.DataFrame]  # {universe: protocol_run table}, confirmation windows
    confirmation_base: dict[str, pd.DataFrame]

    def selection_table(self) -> pd.DataFrame:
        """`protocol.selection_table` per universe, stacked (index: universe, candidate); `chosen`
        marks the one choice (made on the last universe) in every universe's rows."""
        out = pd.concat({u: protocol.selection_table(t) for u, t in self.selection.items()},
                        names=["universe"])
        out["chosen"] = out.index.get_level_values("candidate") == self.chosen
        return out

    def confirmation_table(self) -> pd.DataFrame:
        """`protocol.confirmation_facts` per universe, stacked (index: universe, candidate)."""
        return pd.concat({u: protocol.confirmation_facts(t, self.confirmation_base[u])
                          for u, t in self.confirmation.items()}, names=["universe"])

    def aims(self) -> pd.DataFrame:
        """Per universe: the chosen candidate's confirmation figures against the issue's aims."""
        conf = self.confirmation_table()
        rows = {}
        for u in self.confirmation:
            row = conf.loc[(u, self.chosen)]
            rows[u] = {"chosen test IC": row["test IC"], "aim": protocol.AIMS.get(u, np.nan),
                       "test / valid": row["test / valid"], "ratio aim": protocol.RATIO_AIM,
                       "best PK test IC": row["best PK test IC"],
                       "windows above best PK": int(row["windows above best PK"]),
                       "windows": len(self.confirmation_base[u])}
        out = pd.DataFrame(rows).T
        out["IC aim met"] = out["chosen test IC"] >= out["aim"]
        out["ratio aim met"] = out["test / valid"] >= out["ratio aim"]
        out["above best PK"] = out["chosen test IC"] > out["best PK test IC"]
        return out


def report(params: protocol.ProtocolParams, data: str | None = None) -> ProtocolReport:
    """Read both stages of the committed protocol study and their best-PK baselines."""
    selection = protocol.run_stage(params, "selection", data, progress=False, build=False)
    chosen = protocol.chosen_candidate(selection)
    confirmation = protocol.run_stage(params, "confirmation", data, progress=False, build=False,
                                      chosen=chosen)

    def baselines(stage: str) -> dict[str, pd.DataFrame]:
        return {u: protocol.best_pk_baselines(protocol.stage_panel(params, u, stage, data),
                                              protocol.STAGES[stage]["starts"])
                for u in params.universes}

    return ProtocolReport(chosen, selection, baselines("selection"), confirmation, baselines("confirmation"))


def read(params_path: str | None, data: str | None, simulated: bool) -> tuple[ProtocolReport | None, str]:
    """The chapter's entry: `(report, "")`, or `(None, why)` where the committed study does not
    apply -- the simulated market, or data on which its factors were not measured (the reason
    then names the build command, from `run_stage`'s LookupError)."""
    if simulated:
        return None, "the protocol study was measured on the A-share data, not on the simulated market"
    try:
        return report(protocol.load_protocol_params(params_path), data), ""
    except LookupError as err:
        return None, f"the committed protocol study does not match this data: {err}"


def facts(rep: ProtocolReport | None) -> dict[str, float | int | str]:
    """The chapter's glued values: plain Python numbers and strings, one fixed set of keys.

    p_chosen, p_universe (the last universe, where the choice is made), p_chosen_test,
    p_defaults_test, p_chosen_ratio (its selection figures there), p_sel_base and
    p_sel_base_factors (the best-PK baseline there); per universe u of `protocol.AIMS`:
    p_{u}_ic, p_{u}_ratio, p_{u}_defaults, p_{u}_pk (confirmation test IC of the chosen candidate,
    its test / valid, the defaults', the best PK factor's) and p_{u}_wins (windows above the best PK).
    """
    out: dict[str, float | int | str] = {
        "p_chosen": "not available", "p_universe": "not available", "p_chosen_test": np.nan,
        "p_defaults_test": np.nan, "p_chosen_ratio": np.nan, "p_sel_base": np.nan,
        "p_sel_base_factors": "not available"}
    for u in protocol.AIMS:
        out.update({f"p_{u}_ic": np.nan, f"p_{u}_ratio": np.nan, f"p_{u}_defaults": np.nan,
                    f"p_{u}_pk": np.nan, f"p_{u}_wins": "not run"})
    if rep is None:
        return out
    last = list(rep.selection)[-1]
    sel = rep.selection_table().loc[last]
    base = rep.selection_base[last]
    out.update({"p_chosen": rep.chosen, "p_universe": last,
                "p_chosen_test": float(sel.loc[rep.chosen, "test IC"]),
                "p_defaults_test": float(sel.loc["defaults", "test IC"]),
                "p_chosen_ratio": float(sel.loc[rep.chosen, "test / valid"]),
                "p_sel_base": float(base["test IC"].mean()),
                "p_sel_base_factors": ", ".join(sorted(set(base["factor"])))})
    aims, conf = rep.aims(), rep.confirmation_table()
    for u in aims.index.intersection(list(protocol.AIMS)):
        out.update({f"p_{u}_ic": float(aims.loc[u, "chosen test IC"]),
                    f"p_{u}_ratio": float(aims.loc[u, "test / valid"]),
                    f"p_{u}_defaults": float(conf.loc[(u, "defaults"), "test IC"]),
                    f"p_{u}_pk": float(aims.loc[u, "best PK test IC"]),
                    f"p_{u}_wins": int(aims.loc[u, "windows above best PK"])})
    return out
