"""Loading, validating and slicing daily market data without look-ahead."""

from nnafc.data.panel import FIELDS, PRICE_FIELDS, DataError, Panel
from nnafc.data.sources import load_panel
from nnafc.data.splits import Split, make_split, rolling_splits, split_window
from nnafc.data.tradability import hits_limit_down, hits_limit_up, limit_prices, price_limit_rate
from nnafc.data.universe import eligible
from nnafc.data.windows import Standardiser, Windows, forward_returns, period_labels

__all__ = [
    "FIELDS", "PRICE_FIELDS", "DataError", "Panel", "Split", "Standardiser", "Windows", "eligible",
    "forward_returns", "period_labels", "hits_limit_down", "hits_limit_up", "limit_prices", "load_panel",
    "make_split",
    "price_limit_rate", "rolling_splits", "split_window",
]
