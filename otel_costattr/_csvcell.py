"""CSV cells that spreadsheets never run as formulas: shared by every CSV the package writes (reports, FOCUS)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

__all__ = ["csv_cell"]

#: OWASP "CSV injection": a cell starting with one of these may be read as a formula by a spreadsheet.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell that no spreadsheet runs as a formula (OWASP "CSV injection"): text starting with = + - @,
    tab or carriage return gets a leading ``'``. Numbers (``-1.5``) are left as they are; None is empty."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return text
        try:
            Decimal(text)
            return text  # a plain negative number is data, not a formula
        except ArithmeticError:
            return "'" + text
    return text
