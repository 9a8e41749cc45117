"""The `Panel`: the one daily data structure every part of nnafc reads.

A panel is dense: `T` trading dates x `N` instruments, one float32 `(T, N)` array per field,
NaN where the stock has no row that day (suspended, not yet listed, delisted). Dense arrays
make every operator, metric and loss a vectorised tensor operation over days and stocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

PRICE_FIELDS = ("open", "high", "low", "close")
FIELDS = (*PRICE_FIELDS, "volume")  # the five network inputs of §3.2, in this order


class DataError(ValueError):
    """Bad input data or parameters; the message is one line a user can act on."""


@dataclass(frozen=True)
class Panel:
    """Daily market data as dense `(T, N)` arrays.

    Prices are adjusted (qlib convention: raw = adjusted / factor). `traded` marks days on
    which the stock has a row with positive volume; `in_universe` is the point-in-time
    universe (see `nnafc.data.universe`), always a subset of `traded`.
    """

    dates: pd.DatetimeIndex  # (T,) trading dates, increasing
    instruments: pd.Index  # (N,) upper-case codes, e.g. "SH600000"
    fields: dict[str, np.ndarray]  # name -> (T, N) float32; open/high/low/close/volume [+ factor]
    traded: np.ndarray  # (T, N) bool
    in_universe: np.ndarray  # (T, N) bool
    universe: str = "all"  # how in_universe was built, e.g. "all", "csi300", "top1000"
    simulated: bool = False  # True for `simulate_market` panels: books must say so
    meta: dict = field(default_factory=dict)  # free-form provenance (source path, ground truth)

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.instruments))
        for name, values in self.fields.items():
            if values.shape != shape:
                raise DataError(f"field {name!r} has shape {values.shape}, expected {shape}")
        for name in ("traded", "in_universe"):
            if getattr(self, name).shape != shape:
                raise DataError(f"mask {name!r} has shape {getattr(self, name).shape}, expected {shape}")

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.fields[name]
        except KeyError:
            raise DataError(f"panel has no field {name!r}; it has {sorted(self.fields)}") from None

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dates), len(self.instruments)

    def raw(self, name: str) -> np.ndarray:
        """Unadjusted prices (adjusted / factor), what exchange price limits apply to."""
        if "factor" not in self.fields:
            return self[name]
        return self[name] / self.fields["factor"]

    def day_index(self, date: str | pd.Timestamp) -> int:
        """Index of the first trading date on or after `date`."""
        i = int(self.dates.searchsorted(pd.Timestamp(date)))
        if i >= len(self.dates):
            raise DataError(f"{pd.Timestamp(date).date()} is after the last date {self.dates[-1].date()}")
        return i

    def slice_days(self, start: int, stop: int) -> Panel:
        """Days `start..stop-1` (integer positions), all instruments, masks included."""
        sl = slice(start, stop)
        return replace(
            self,
            dates=self.dates[sl],
            fields={k: v[sl] for k, v in self.fields.items()},
            traded=self.traded[sl],
            in_universe=self.in_universe[sl],
        )

    def __repr__(self) -> str:
        t, n = self.shape
        span = f"{self.dates[0].date()}..{self.dates[-1].date()}" if t else "empty"
        tag = ", SIMULATED" if self.simulated else ""
        return f"Panel({t} days {span}, {n} instruments, universe={self.universe!r}{tag})"
