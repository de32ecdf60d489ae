"""A report as CSV, safe to open in a spreadsheet.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would be read as
a formula by Excel, LibreOffice or Sheets (CSV injection: a member named
`=HYPERLINK("http://...")`). Such cells get a leading single quote, as OWASP advises, so the
spreadsheet shows the text instead of running it. Numbers are written as they are: a negative
amount is a number, not a formula.
"""

from __future__ import annotations

import csv
import io

from contract import Report
from contract.reports import Cell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(cell: Cell) -> str | int | float:
    """`cell` as written to CSV: None as empty, formula-like text quoted."""
    if cell is None:
        return ""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def to_csv(report: Report) -> str:
    """The report's columns and rows as CSV (RFC 4180 line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(name) for name in report.columns])
    writer.writerows([safe_cell(cell) for cell in row] for row in report.rows)
    return buffer.getvalue()
