"""Display helpers shared by the strategy tables: paper beside ours, "not run" cells, percentages."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from nnafc import paper

NOT_RUN = "not run"


def with_paper(ours: pd.DataFrame, theirs: pd.DataFrame) -> pd.DataFrame:
    """`paper.beside` plus our `status` column (run / not run / index): a NaN ours never reads as a number."""
    table = paper.beside(ours, theirs)
    if "status" in ours:
        table["status"] = ours["status"].reindex(table.index).fillna(NOT_RUN)
    return table


def formatted(
    table: pd.DataFrame, percent: Sequence[str] = ("revenue", "max_drawdown", "return"), digits: int = 3
) -> pd.DataFrame:
    """Strings for display: percentages for return / drawdown columns, "not run" for a set we did not run.

    A column is a percentage when its name contains one of `percent` (and not "sharpe"); `factors`
    columns are counts. A missing *paper* value shows as "—"; a missing *ours* in a "not run" row
    as "not run".
    """
    status = table["status"] if "status" in table else pd.Series("", index=table.index)
    out = pd.DataFrame(index=table.index)
    for col in table.columns:
        if col == "status":
            out[col] = table[col]
            continue
        is_pct = any(p in col for p in percent) and "sharpe" not in col
        is_ours = not col.endswith("paper")
        cells = []
        for row, v in zip(table.index, table[col], strict=True):
            if isinstance(v, str):
                cells.append(v)
            elif pd.isna(v):
                cells.append(NOT_RUN if is_ours and status.get(row) == NOT_RUN else "—")
            elif col.startswith("factors"):
                cells.append(str(int(v)))
            else:
                cells.append(f"{100 * v:.1f} %" if is_pct else f"{v:.{digits}f}")
        out[col] = cells
    return out
