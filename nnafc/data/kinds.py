"""What an instrument is — stock, index, fund or other — decided from its code.

A qlib `instruments/all.txt` lists index codes and funds beside stocks; a stock universe must
never hold them (indices have the largest traded value and would fill a top-N universe). The
rule, on upper-case codes `<exchange><6 digits>` (the qlib / shared-data naming):

| kind  | codes                                                                  |
|-------|------------------------------------------------------------------------|
| stock | SH60xxxx, SH68xxxx (STAR), SZ00xxxx, SZ30xxxx (ChiNext); BJ43/83/87/88/92xxxx |
| index | SH000xxx (SSE and CSI indices: SH000300, SH000905, ...), SZ399xxx, BJ899xxx |
| fund  | SH5xxxxx (ETFs, LOFs, closed-end), SZ1[5-8]xxxx                         |
| other | anything else: bonds (SH01/SH11/SZ10/SZ12 ...), B shares (SH900, SZ200), other naming |

Data that names stocks otherwise (`600000.SH`, US tickers) passes its own regular expression of
stock codes: `stocks=` of `load_panel`, or `stocks:` in the data directory's `nnafc-data.yaml`
(see `nnafc.data.locate`). Indices and funds keep the default rule whatever `stocks` says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from nnafc.data.panel import DataError

STOCK_PATTERN = r"SH6[08]\d{4}|SZ00\d{4}|SZ30\d{4}|BJ(?:43|83|87|88|92)\d{4}"
INDEX_PATTERN = r"SH000\d{3}|SZ399\d{3}|BJ899\d{3}"
FUND_PATTERN = r"SH5\d{5}|SZ1[5-8]\d{4}"
KINDS = ("stock", "index", "fund", "other")


def stock_regex(stocks: str | None = None) -> re.Pattern:
    """The compiled stock-code rule (`stocks`: a regular expression matched against the whole
    upper-case code; None: the A-share rule above). DataError for an invalid expression."""
    try:
        return re.compile(STOCK_PATTERN if stocks is None else str(stocks), re.IGNORECASE)
    except re.error as err:
        raise DataError(f"stocks pattern {stocks!r} is not a regular expression: {err}") from None


def instrument_kinds(codes: Iterable[str], stocks: str | None = None) -> np.ndarray:
    """`(N,)` object array of "stock" / "index" / "fund" / "other", one per code."""
    stock = stock_regex(stocks)
    index, fund = re.compile(INDEX_PATTERN), re.compile(FUND_PATTERN)
    out = []
    for code in codes:
        c = str(code).strip().upper()
        if index.fullmatch(c):
            out.append("index")
        elif fund.fullmatch(c):
            out.append("fund")
        elif stock.fullmatch(c):
            out.append("stock")
        else:
            out.append("other")
    return np.array(out, dtype=object)


def is_stock(codes: Iterable[str], stocks: str | None = None) -> np.ndarray:
    """`(N,)` bool: the codes a stock universe may hold."""
    return instrument_kinds(codes, stocks) == "stock"


def count_kinds(codes: Iterable[str], stocks: str | None = None) -> dict[str, int]:
    """How many codes of each kind (every kind listed, zeros included)."""
    kinds = instrument_kinds(codes, stocks)
    return {k: int((kinds == k).sum()) for k in KINDS}
