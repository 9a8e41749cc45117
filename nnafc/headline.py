"""The book's front page: one row per claim of the paper -- its number, ours, the difference and a
verdict computed from the chapter's own figures.

Each chapter ends by recording its rows (`record(rows, chapter, results)`: `<results>/<chapter>.json`,
the run's `results/` directory that `nnafc book` passes as the chapter's `results` parameter); the
front page (`book/intro.py`, executed after every chapter) reads them back (`collect`). A chapter
that failed or did not run shows as such; nothing is filled from the paper.

The verdict rules, stated once:

- `near(ours, paper, rel)`: **holds** when ours is within `rel` of the paper's value (relative),
  **partly** when it lies on the same side of zero but farther, **does not hold** otherwise;
- `at_least(ours, holds, partly)`: for a claim the paper makes without a number (e.g. "g performs
  almost the same function as rank()"): **holds** at or above `holds`, **partly** at or above `partly`;
- `same_sign(ours, paper)`: a claimed difference (A beats B): **holds** when ours points the same way;
- `positive(ours)`: a claimed difference the paper states without a number (read off a figure):
  **holds** when ours is above zero;
- a claim without our number is **not run**.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from nnafc import paper

HOLDS, PARTLY, FAILS, NOT_RUN, FAILED = "holds", "partly", "does not hold", "not run", "chapter failed"
COLUMNS = ["chapter", "claim", "paper", "ours", "difference", "unit", "verdict", "rule"]


@dataclass(frozen=True)
class Claim:
    """One row of the front page. `paper` is None where the paper states the claim without a number."""

    claim: str
    paper: float | None
    ours: float | None
    verdict: str
    rule: str
    unit: str = ""  # "%" for returns and shares shown as percentages, "" for plain numbers


def _missing(x: float | None) -> bool:
    return x is None or not math.isfinite(float(x))


def near(claim: str, ours: float | None, reference: float, rel: float = 0.25, unit: str = "") -> Claim:
    if _missing(ours):
        verdict = NOT_RUN
    elif abs(ours - reference) <= rel * abs(reference):
        verdict = HOLDS
    elif np.sign(ours) == np.sign(reference):
        verdict = PARTLY
    else:
        verdict = FAILS
    return Claim(claim, reference, None if _missing(ours) else float(ours), verdict,
                 f"holds within {rel:.0%} of the paper's; partly on its side of zero", unit)


def at_least(claim: str, ours: float | None, holds: float, partly: float, unit: str = "") -> Claim:
    verdict = NOT_RUN if _missing(ours) else HOLDS if ours >= holds else PARTLY if ours >= partly else FAILS
    return Claim(claim, None, None if _missing(ours) else float(ours), verdict,
                 f"holds at >= {holds:g}, partly at >= {partly:g}", unit)


def same_sign(claim: str, ours: float | None, reference: float, unit: str = "") -> Claim:
    verdict = NOT_RUN if _missing(ours) else HOLDS if np.sign(ours) == np.sign(reference) != 0 else FAILS
    return Claim(claim, reference, None if _missing(ours) else float(ours), verdict,
                 "holds when ours points the paper's way", unit)


def positive(claim: str, ours: float | None, unit: str = "") -> Claim:
    verdict = NOT_RUN if _missing(ours) else HOLDS if ours > 0 else FAILS
    return Claim(claim, None, None if _missing(ours) else float(ours), verdict,
                 "holds when ours is above zero (the paper gives no number)", unit)


# ----------------------------------------------------------------------------- each chapter's claims


def kernel_claims(tracking: pd.DataFrame, robust: pd.DataFrame) -> list[Claim]:
    """§3.2: the kernel IC (Eq. 14) can stand in for the rank IC, outliers included
    (`evaluate.kernel.tracking_table` without and with outliers in the returns)."""
    col = "corr(kernel IC, rank IC)"
    return [
        at_least("§3.2: the kernel IC moves with the exact rank IC (daily correlation, mean over PK factors)",
                 tracking[col].mean(), 0.9, 0.7),
        at_least("§3.2: ... and still does with outliers in the returns",
                 robust[col].mean(), 0.9, 0.7),
    ]


def pretraining_claims(best: pd.DataFrame, quality_summary: pd.DataFrame | None) -> list[Claim]:
    """§3.3 Table 3 (mimic accuracy of the better structure, test) and the FCN's Table 6 IC with
    the share of constructed factors that beat their own seed out of sample (the study's windows)."""
    rows = [near("Table 3: mean test accuracy of the pre-trained mimic", best["test accuracy"].mean(),
                 float(paper.TABLE3_ACCURACY["test"].mean()), rel=0.05, unit="%")]
    overall = None if quality_summary is None else quality_summary.loc["all windows"]
    rows.append(near("Table 6 (FCN): mean test rank IC of constructed factors",
                     None if overall is None else overall["test IC"],
                     float(paper.TABLE6_EXTRACTORS.loc["fcn", "IC"])))
    rows.append(at_least("§3: a constructed factor beats its own seed factor out of sample (share)",
                         None if overall is None else overall["beats seed factor"], 0.75, 0.5, unit="%"))
    return rows


def table4_claims(facts: pd.DataFrame) -> list[Claim]:
    """§4.2 Table 4 (`schemes.table4_facts`): each scheme's test IC, and NNAFC against GP per window."""
    rows = [near(f"Table 4: test IC of {s}", facts.loc[s, "IC ours"], float(facts.loc[s, "IC paper"]))
            for s in facts.index]
    for s in facts.index.drop("Only GP", errors="ignore"):
        n = facts.loc[s, "windows compared"]
        share = facts.loc[s, "beats Only GP"] / n if n else None
        rows.append(at_least(f"Table 4: {s} beats Only GP on test IC (share of windows)", share, 0.75, 0.5,
                             unit="%"))
    return rows


def table7_claims(table: pd.DataFrame) -> list[Claim]:
    """§4.4 Table 7 (`table7.table7`): PK 50's excess return, and each other set against PK 50 after
    costs: the paper has every Combine 50 above PK 50 and GP 50 alone below it; a row holds when
    ours points the same way."""
    theirs = paper.TABLE7_STRATEGY["revenue"]
    ran = table["status"] == "run"
    pk = table.loc["PK 50", "revenue"] if "PK 50" in table.index and ran.get("PK 50", False) else None
    rows = [near("Table 7: PK 50's annual excess return over the index", pk, float(theirs["PK 50"]),
                 rel=0.5, unit="%")]
    for group in [g for g in theirs.index if g not in ("ZZ500", "HS300", "PK 50")]:
        ours = (table.loc[group, "revenue"] - pk if pk is not None and group in table.index
                and ran.get(group, False) else None)
        rows.append(same_sign(f"Table 7: {group} against PK 50 (difference in excess return)", ours,
                              float(theirs[group] - theirs["PK 50"]), unit="%"))
    return rows


SIMPLER = [("lenet", "resnet"), ("lstm", "tcn"), ("lstm", "transformer")]  # (simpler, more sophisticated)


def table6_claims(table: pd.DataFrame) -> list[Claim]:
    """§4.3 Table 6 (`evaluate.extractors.table6`): each extractor's test IC, whether every network
    beats GP, and whether LSTM's IC is the highest (the paper's best)."""
    rows = [near(f"Table 6: test IC of {f}", table.loc[f, "test IC"] if table.loc[f, "factors"] else None,
                 float(table.loc[f, "IC paper"]))
            for f in table.index if np.isfinite(table.loc[f, "IC paper"])]
    nets = [f for f in table.index if f != "gp" and table.loc[f, "factors"]]
    gp = table.loc["gp", "test IC"] if "gp" in table.index and table.loc["gp", "factors"] else None
    share = None if gp is None or not nets else float(np.mean([table.loc[f, "test IC"] > gp for f in nets]))
    rows.append(at_least("Table 6: every network family beats GP on test IC (share of families)", share,
                         1.0, 0.5, unit="%"))
    theirs = paper.TABLE6_EXTRACTORS["IC"]
    others = [f for f in nets if f != "lstm"]
    lead = (table.loc["lstm", "test IC"] - max(table.loc[f, "test IC"] for f in others)
            if "lstm" in nets and others else None)
    rows.append(same_sign("Table 6: LSTM's test IC is the highest (its lead over the best other network)",
                          lead, float(theirs["lstm"] - theirs.drop(["lstm", "gp"]).max())))
    pairs = [(a, b) for a, b in SIMPLER if a in nets and b in nets]
    simple = (float(np.mean([table.loc[a, "test IC"] > table.loc[b, "test IC"] for a, b in pairs]))
              if pairs else None)
    rows.append(at_least("Table 6: within a type, the simpler network has the higher test IC (share of pairs "
                         "LeNet > ResNet, LSTM > TCN, LSTM > Transformer)", simple, 1.0, 0.5, unit="%"))
    if "diversity" not in table:
        return rows
    div = table["diversity"].where(table["factors"] > 0)
    gp_div = div.get("gp", np.nan)
    measured = [f for f in nets if np.isfinite(div[f])]
    share = float(np.mean([div[f] > gp_div for f in measured])) if measured and np.isfinite(gp_div) else None
    rows.append(at_least("Table 6: every network family beats GP on diversity (share of families)", share,
                         1.0, 0.5, unit="%"))
    from nnafc.evaluate.extractors import TYPES

    temporal = [f for f in measured if TYPES.get(f) == "Temporal"]
    rest = [f for f in measured if f not in temporal]
    gap = float(div[temporal].mean() - div[rest].mean()) if temporal and rest else None
    d = paper.TABLE6_EXTRACTORS["diversity"]
    theirs_gap = float(d[["lstm", "tcn", "transformer"]].mean() - d[["fcn", "lenet", "resnet"]].mean())
    rows.append(same_sign("Table 6: temporal extractors give more diversity (temporal minus other networks' "
                          "mean)", gap, theirs_gap))
    return rows


def clustering_claims(fig7: pd.DataFrame | None, fig8: pd.DataFrame | None) -> list[Claim]:
    """§4.5 (`evaluate.clustering.family_distances`, means over windows): Fig. 7's "LSTM's factors
    are the sparsest" and "a large space is shared by FCN and LeNet" (LeNet nearer the FCN than
    LSTM is), and Fig. 8's "Vanilla and Spatial still share more than Vanilla and Temporal"."""
    def get(t, a, b):
        return float(t.loc[a, b]) if t is not None and a in t.index and b in t.columns else None

    def gap(t, a, b, c):  # d(a, c) - d(a, b): b nearer a than c is
        x, y = get(t, a, c), get(t, a, b)
        return None if x is None or y is None else x - y

    lstm = get(fig7, "lstm", "lstm")
    others = [get(fig7, f, f) for f in ("fcn", "lenet")]
    sparsest = None if lstm is None or None in others else lstm - max(others)
    return [
        positive("Fig. 7: LSTM's factors are the sparsest (its within-family divergence minus the largest "
                 "other)",
                 sparsest),
        positive("Fig. 7: FCN shares more space with LeNet than with LSTM (d(FCN, LSTM) - d(FCN, LeNet))",
                 gap(fig7, "fcn", "lenet", "lstm")),
        positive("Fig. 8: deeper / wider, the same holds (d(FCN-deep, LSTM-deep) - d(FCN-deep, LeNet-wide))",
                 gap(fig8, "fcn-deep", "lenet-wide", "lstm-deep")),
    ]


# ----------------------------------------------------------------------------- recording and reading


def record(claims: Sequence[Claim], chapter: str, results: str | Path | None) -> pd.DataFrame:
    """Write a chapter's claims to `<results>/<chapter>.json` (atomically; nothing when `results`
    is None) and return them as a frame (shown under the chapter)."""
    rows = [{"chapter": chapter, **asdict(c)} for c in claims]
    if results is not None:
        from nnafc.files import atomic_path

        path = Path(results) / f"{chapter}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=1))
    return _frame(rows)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "difference"])
    frame.insert(4, "difference", frame["ours"].astype(float) - frame["paper"].astype(float))
    return frame[COLUMNS]


def collect(results: str | Path | None, chapters: Sequence[str], failed: Sequence[str] = ()) -> pd.DataFrame:
    """Every chapter's recorded claims, in the book's order; a chapter that failed, or recorded
    nothing in this run, is one row saying so."""
    rows: list[dict] = []
    for chapter in chapters:
        path = None if results is None else Path(results) / f"{chapter}.json"
        if chapter in failed or path is None or not path.is_file():
            rows.append({"chapter": chapter, "claim": "(this chapter's claims)", "paper": None, "ours": None,
                         "verdict": FAILED if chapter in failed else NOT_RUN, "rule": "", "unit": ""})
            continue
        rows += json.loads(path.read_text())
    return _frame(rows)


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many claims hold, partly hold, do not hold, did not run."""
    counts = table["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in (HOLDS, PARTLY, FAILS, NOT_RUN, FAILED)}


def front_table(table: pd.DataFrame) -> str:
    """The headline table as HTML (a Markdown output's pipe table is not rendered as a table), each
    chapter linked to its page."""
    import html

    def fmt(x, unit: str, signed: bool = False) -> str:
        if _missing(x):
            return "—"
        sign = "+" if signed else ""
        return f"{x:{sign}.1%}" if unit == "%" else f"{x:{sign}.3f}"

    shown = pd.DataFrame({
        "chapter": [f'<a href="{c}.html">{html.escape(c)}</a>' for c in table["chapter"]],
        "claim": [html.escape(c) for c in table["claim"]],
        "paper": [fmt(x, u) for x, u in zip(table["paper"], table["unit"], strict=True)],
        "ours": [fmt(x, u) for x, u in zip(table["ours"], table["unit"], strict=True)],
        "ours − paper": [fmt(x, u, True) for x, u in zip(table["difference"], table["unit"], strict=True)],
        "verdict": [f"<b>{html.escape(v)}</b>" for v in table["verdict"]],
    })
    return shown.to_html(index=False, escape=False, border=0, justify="left", classes="front-table")


def provenance(params_file: str | None, data: str | None) -> dict[str, str]:
    """What built the book: the parameter set, the data (its README's title, else its folder's
    name, never its path), the code version (`git describe`) and today's date."""
    from nnafc.params import ROOT

    name = "the simulated market"
    if data:
        readme = Path(data) / "README.md"
        title = readme.read_text().splitlines()[0].lstrip("# ").strip() if readme.is_file() else ""
        name = title or Path(data).name
    try:
        version = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        version = ""
    return {"parameters": params_file or "—", "data": name, "code": version or "unknown",
            "date": date.today().isoformat()}
