"""Loading, validating and slicing daily market data without look-ahead."""

from nnafc.data.panel import FIELDS, PRICE_FIELDS, DataError, Panel
from nnafc.data.sources import load_panel
from nnafc.data.universe import eligible

__all__ = ["FIELDS", "PRICE_FIELDS", "DataError", "Panel", "eligible", "load_panel"]
