"""The tear sheet as files: a one-page HTML (tables + embedded figures) or a directory of PNGs and CSVs.

A short script over `nnafc.evaluate.tearsheet` (numbers) and `nnafc.plotting` (figures), the
way an alphalens tear sheet composes its compute and plot calls. Files are written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from nnafc.evaluate.tearsheet import TearSheet
from nnafc.files import atomic_path


def check_out(out: str | os.PathLike | None) -> None:
    """ValueError, before any work, for an output that is neither `*.html` nor a directory path."""
    if out is None:
        return
    out = Path(out)
    if out.suffix.lower() == ".html":
        if not out.parent.exists():
            raise ValueError(f"directory of {out} does not exist")
    elif out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a .html file or a directory, and {out} is a file")


def figures(sheet: TearSheet) -> dict[str, object]:
    """name -> matplotlib Figure: per factor its daily rank IC, quantile returns and long-short
    spread; for the set the IC decay and the correlation matrix."""
    from matplotlib.figure import Figure  # not pyplot: no backend, no global figure list

    from nnafc import plotting

    plotting.use_style()
    h = sheet.meta["horizon"]
    out = {}
    for i, name in enumerate(sheet.summary.index):
        fig = Figure(figsize=(15, 3.6))
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [2.2, 1, 2]})
        plotting.plot_ic_series(sheet.rank_ic[name].rename(f"{name}: daily rank IC ({h}d)"), ax=axes[0])
        plotting.plot_quantile_returns(sheet.quantile_returns.loc[name].rename(name), ax=axes[1], horizon=h)
        plotting.plot_long_short(sheet.long_short[name].rename(name), ax=axes[2], horizon=h)
        fig.tight_layout()
        out[f"factor{i + 1:02d}"] = fig
    fig = Figure(figsize=(13, 4.2))
    axes = fig.subplots(1, 2)
    plotting.plot_ic_decay(sheet.ic_decay, ax=axes[0])
    plotting.plot_factor_corr(sheet.corr, ax=axes[1])
    fig.tight_layout()
    out["decay_corr"] = fig
    return out


def tables(sheet: TearSheet) -> dict[str, object]:
    """name -> DataFrame of the report's tables."""
    return {"summary": sheet.summary, "ic_decay": sheet.ic_decay, "quantile_returns": sheet.quantile_returns,
            "factor_corr": sheet.corr}


def write_report(sheet: TearSheet, out: str | os.PathLike) -> Path:
    """`out` = *.html: one page; otherwise a directory of `<figure>.png` and `<table>.csv`."""
    check_out(out)
    out = Path(out)
    figs = figures(sheet)
    if out.suffix.lower() == ".html":
        _atomic(out, _html(sheet, figs).encode())
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, fig in figs.items():
            _atomic(out / f"{name}.png", _png(fig))
        for name, table in tables(sheet).items():
            _atomic(out / f"{name}.csv", table.to_csv().encode())
    return out


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _html(sheet: TearSheet, figs: dict) -> str:
    m = sheet.meta
    head = (f"<h1>Factor tear sheet</h1><p>{len(sheet.summary)} factors, "
            f"{m['first_date']} .. {m['last_date']}, {m['horizon']}-day forward returns, "
            f"{m['quantiles']} quantiles; prices: {html.escape(str(m.get('data', '')))}; "
            f"factor rows without data: {m.get('rows_unmatched', 0)}</p>")
    parts = [head]
    for name, table in tables(sheet).items():
        parts.append(f"<h2>{name.replace('_', ' ')}</h2>" + table.to_html(float_format=lambda x: f"{x:.4f}"))
    titles = [*map(str, sheet.summary.index), "IC decay and factor correlation"]
    for title, (name, fig) in zip(titles, figs.items(), strict=True):
        data = base64.b64encode(_png(fig)).decode()
        parts.append(f'<h2>{html.escape(title)}</h2><img alt="{name}" src="data:image/png;base64,{data}">')
    style = "body{font-family:sans-serif;max-width:1500px;margin:auto}table{border-collapse:collapse}" \
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>" \
           + "\n".join(parts) + "</body></html>"


def _atomic(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
