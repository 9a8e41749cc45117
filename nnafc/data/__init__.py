"""Loading, validating and slicing daily market data without look-ahead."""

from nnafc.data.panel import FIELDS, PRICE_FIELDS, DataError, Panel

__all__ = ["FIELDS", "PRICE_FIELDS", "DataError", "Panel"]
