"""The front page's claims (`nnafc.headline`): the verdict rules on cases with known answers, each
chapter's claims from constructed figures, and the record -> collect round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnafc import headline, paper
from nnafc.headline import FAILED, FAILS, HOLDS, NOT_RUN, PARTLY


@pytest.mark.parametrize(("ours", "expected"), [
    (0.10, HOLDS), (0.124, HOLDS), (0.074, PARTLY), (0.30, PARTLY), (-0.01, FAILS), (None, NOT_RUN),
    (float("nan"), NOT_RUN),
])
def test_near(ours, expected) -> None:
    assert headline.near("x", ours, 0.1, rel=0.25).verdict == expected


@pytest.mark.parametrize(("ours", "expected"), [(0.95, HOLDS), (0.9, HOLDS), (0.8, PARTLY), (0.2, FAILS),
                                                (None, NOT_RUN)])
def test_at_least(ours, expected) -> None:
    claim = headline.at_least("x", ours, 0.9, 0.7)
    assert claim.verdict == expected and claim.paper is None


@pytest.mark.parametrize(("ours", "ref", "expected"), [(0.02, 0.05, HOLDS), (-0.02, 0.05, FAILS),
                                                       (0.0, 0.05, FAILS), (None, 0.05, NOT_RUN)])
def test_same_sign(ours, ref, expected) -> None:
    assert headline.same_sign("x", ours, ref).verdict == expected


def test_kernel_and_pretraining_claims() -> None:
    tracking = pd.DataFrame({"corr(kernel IC, rank IC)": [0.99, 0.97]})
    robust = pd.DataFrame({"corr(kernel IC, rank IC)": [0.8, 0.7]})
    assert [c.verdict for c in headline.kernel_claims(tracking, robust)] == [HOLDS, PARTLY]
    best = pd.DataFrame({"test accuracy": [0.90, 0.88]})
    summary = pd.DataFrame({"test IC": [0.05], "beats seed factor": [0.6]}, index=["all windows"])
    rows = headline.pretraining_claims(best, summary)
    assert [c.verdict for c in rows] == [HOLDS, PARTLY, PARTLY]
    assert rows[0].paper == pytest.approx(paper.TABLE3_ACCURACY["test"].mean())
    assert [c.verdict for c in headline.pretraining_claims(best, None)][1:] == [NOT_RUN, NOT_RUN]


def test_table4_and_table7_claims() -> None:
    facts = pd.DataFrame({"IC ours": [0.05, 0.11, 0.10], "IC paper": [0.094, 0.122, 0.107],
                          "beats Only GP": [np.nan, 3, 1], "windows compared": [np.nan, 4, 4]},
                         index=["Only GP", "GP and NNAFC", "Only NNAFC"])
    rows = headline.table4_claims(facts)
    assert [c.verdict for c in rows] == [PARTLY, HOLDS, HOLDS, HOLDS, FAILS]
    assert rows[3].ours == 0.75
    table = pd.DataFrame({"revenue": [0.1, -0.05, -0.08, np.nan],
                          "status": ["index", "run", "run", "not run"]},
                         index=["ZZ500", "PK 50", "GP 50", "fcn Combine 50"])
    claims = headline.table7_claims(table)
    rows = {c.claim.split(": ")[1].split(" against")[0].split("'s")[0]: c for c in claims}
    assert rows["PK 50"].verdict == FAILS and rows["PK 50"].ours == -0.05  # the paper's PK 50 beat its index
    assert rows["GP 50"].verdict == HOLDS and rows["GP 50"].ours == pytest.approx(-0.03)  # below PK 50 too
    assert rows["fcn Combine 50"].verdict == NOT_RUN and rows["GP Combine 50"].verdict == NOT_RUN


def test_record_collect_and_front_table(tmp_path) -> None:
    claims = [headline.near("Table 4: test IC of Only NNAFC", 0.108, 0.107),
              headline.at_least("beats its seed", 0.9, 0.75, 0.5, unit="%")]
    shown = headline.record(claims, "gp_vs_nnafc", tmp_path)
    assert list(shown.columns) == headline.COLUMNS and shown.loc[0, "difference"] == pytest.approx(0.001)
    assert headline.record(claims, "kernel", None).shape == (2, len(headline.COLUMNS))  # nothing written
    assert not (tmp_path / "kernel.json").exists()
    table = headline.collect(tmp_path, ["kernel", "gp_vs_nnafc", "real_world"], failed=["real_world"])
    assert list(table["verdict"]) == [NOT_RUN, HOLDS, HOLDS, FAILED]
    assert headline.verdict_counts(table) == {HOLDS: 2, PARTLY: 0, FAILS: 0, NOT_RUN: 1, FAILED: 1}
    html = headline.front_table(table)
    cells = ['<a href="gp_vs_nnafc.html">gp_vs_nnafc</a>', "Table 4: test IC of Only NNAFC", "0.107", "0.108",
             "+0.001", "<b>holds</b>"]
    assert "".join(f"<td>{c}</td>" for c in cells) in html.replace("\n", "").replace("      ", "")
    assert "<td>90.0%</td>" in html  # shares as percentages
