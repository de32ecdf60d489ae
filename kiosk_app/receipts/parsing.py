"""Receipt formats: a POS receipt as JSON or as a CSV export, validated into `contract.Receipt`.

A bad input raises `InvalidReceipt` whose reason names what was wrong (pydantic's field path
and message, the CSV row); `kiosk_app.receipts.intake` turns it into a dead letter.

JSON
----
A `contract.Receipt` object, or the same wrapped as ``{"receipt": {...}}``. Numbers are read as
exact decimals. ``loyalty_id`` and ``payment_token`` (optional) go to the cloud unchanged, or
the receipt is rejected naming the field. A missing (or null) ``scanned_at`` is filled with
the current UTC time and the fill is logged (``receipt.scanned_at_filled``); a timestamp
without a time zone is rejected.

CSV (POS export)
----------------
UTF-8, with or without a byte-order mark, comma-separated, RFC 4180 quoting. The first line is
the header; its columns may come in any order (names are case-insensitive)::

    number,scanned_at,sku,name,category,brand,quantity,unit_price[,currency]

One row per line item; rows with the same ``number`` form one receipt (in the order they were
first seen) and must agree on ``scanned_at`` and ``currency``. Decimals use a dot
(``12.50``, never ``12,50``). ``scanned_at`` is ISO 8601 with a zone (``2026-11-25T10:00:00Z``,
``2026-11-25T11:00:00+01:00``); left empty it is filled like a missing JSON one. ``brand`` may
be empty; ``currency`` (ISO 4217, default ``EUR``) may be left out or empty. So may
``loyalty_id`` (the member card number the POS scanned) and ``payment_token`` (the POS's
salted SHA-256 of the payment card, 64 lowercase hex digits); like ``scanned_at`` and
``currency`` they must agree on every row of a receipt. Blank lines are
skipped. A file is all-or-nothing: one bad row and the whole file is dead-lettered, the reason
naming the row by its line in the file (the header is row 1, as in a spreadsheet).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from pydantic import ValidationError

from contract import LineItem, Receipt
from storesight_common.validation import problems

__all__ = [
    "CSV_COLUMNS",
    "CSV_OPTIONAL_COLUMNS",
    "InvalidReceipt",
    "parse_csv_receipts",
    "parse_json_receipt",
    "utc_now",
]

log = structlog.get_logger(__name__)

#: a receipt's number and time, then one line item's fields, in the contract's order
CSV_COLUMNS: tuple[str, ...] = ("number", "scanned_at", *LineItem.model_fields)
CSV_OPTIONAL_COLUMNS = ("currency", "loyalty_id", "payment_token")
#: Columns that describe the whole receipt: every row of one receipt must agree on them.
_RECEIPT_COLUMNS = ("scanned_at", *CSV_OPTIONAL_COLUMNS)
#: Identify a customer: never quoted in a reason (reasons are logged and kept beside the file).
_PRIVATE_COLUMNS = ("loyalty_id", "payment_token")
_ITEM_COLUMNS = ("sku", "name", "category", "brand", "quantity", "unit_price")

#: Reasons list at most this many problems (a file of 300 bad rows needs only a few examples).
_MAX_PROBLEMS = 20


def utc_now() -> datetime:
    return datetime.now(UTC)


def _join(problems: list[str]) -> str:
    shown = problems[:_MAX_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; … and {more} more" if more > 0 else "")


class InvalidReceipt(Exception):
    """Validation failed with this reason (`ReceiptIntake` adds the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_json_receipt(raw: bytes, source: str) -> Receipt:
    """One JSON receipt (bare or ``{"receipt": {...}}``); raise InvalidReceipt if it is bad."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidReceipt(f"not UTF-8 text (byte {error.start}: {error.reason})") from None
    if not text.strip():
        raise InvalidReceipt("empty body: expected a JSON receipt")

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a number a receipt can carry")

    try:
        data = json.loads(text, parse_float=Decimal, parse_constant=no_constants)
    except json.JSONDecodeError as error:
        raise InvalidReceipt(f"not valid JSON: {error}") from None
    except ValueError as error:
        raise InvalidReceipt(f"not valid JSON: {error}") from None

    prefix = ""
    if isinstance(data, dict) and set(data) == {"receipt"}:
        data, prefix = data["receipt"], "receipt."
    if not isinstance(data, dict):
        where = "receipt" if prefix else "body"
        raise InvalidReceipt(
            f'{where}: expected a JSON object (a receipt, or {{"receipt": {{...}}}}), '
            f"got {type(data).__name__}"
        )
    if data.get("scanned_at") is None:
        data = {**data, "scanned_at": utc_now()}
        log.warning(
            "receipt_scanned_at_filled",
            source=source,
            number=str(data.get("number")),
            scanned_at=data["scanned_at"].isoformat(),
            note="the POS sent no scanned_at; using the kiosk's current UTC time",
        )
    try:
        return Receipt.model_validate(data)
    except ValidationError as error:
        raise InvalidReceipt(_join(problems(error, prefix=prefix, whole="receipt"))) from None


class _Group:
    """The rows of one receipt in a CSV file."""

    def __init__(self, number: str, row: int, fields: dict[str, str]) -> None:
        self.number = number
        self.rows: list[int] = [row]
        self.fields = fields  # scanned_at and the optional receipt columns, as in its first row
        self.items: list[dict[str, str]] = []


def _csv_header(cells: list[str]) -> list[str]:
    header = [cell.strip().lower() for cell in cells]
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        sep = "';'" if ";" in header[0] else "a tab"
        raise InvalidReceipt(f"row 1 (header): columns are separated by {sep}; expected commas")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in CSV_COLUMNS if name not in header]
    unknown = [n for n in header if n not in CSV_COLUMNS and n not in CSV_OPTIONAL_COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(n) for n in unknown)}")
    if duplicated:
        problems.append(f"repeated column(s) {', '.join(duplicated)}")
    if problems:
        expected = ",".join(CSV_COLUMNS) + "".join(f"[,{c}]" for c in CSV_OPTIONAL_COLUMNS)
        raise InvalidReceipt(f"row 1 (header): {'; '.join(problems)} (expected {expected})")
    return header


def parse_csv_receipts(raw: bytes, source: str) -> list[Receipt]:
    """The receipts of a POS export, all or none; raise InvalidReceipt naming the bad rows."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidReceipt(f"not UTF-8 text (byte {error.start}: {error.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    groups: dict[str, _Group] = {}
    problems: list[tuple[int, str]] = []
    header: list[str] | None = None
    while True:
        row = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise InvalidReceipt(f"row {row}: not valid CSV ({error})") from None
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = _csv_header(cells)
            continue
        if len(cells) != len(header):
            problems.append((row, f"expected {len(header)} values, found {len(cells)}"))
            continue
        values = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        number = values["number"]
        fields = {name: values.get(name, "") for name in _RECEIPT_COLUMNS}
        group = groups.get(number)
        if group is None:
            group = groups[number] = _Group(number, row, fields)
        else:
            group.rows.append(row)
            first = group.rows[0]
            for name in _RECEIPT_COLUMNS:
                value, expected = fields[name], group.fields[name]
                if value != expected:
                    # a customer's card numbers are never quoted (reasons are logged)
                    shown = "" if name in _PRIVATE_COLUMNS else f" {value!r}"
                    was = "the value" if name in _PRIVATE_COLUMNS else repr(expected)
                    problems.append(
                        (
                            row,
                            f"{name}{shown} differs from {was} on row {first} "
                            f"of receipt {number!r}",
                        )
                    )
        group.items.append({name: values[name] for name in _ITEM_COLUMNS})
    if header is None:
        raise InvalidReceipt("empty file: expected a header row and line items")
    if not groups and not problems:
        raise InvalidReceipt("no line items: the file has a header and nothing else")

    receipts: list[Receipt] = []
    for group in groups.values():
        data: dict[str, Any] = {"number": group.number, "items": group.items}
        for name in CSV_OPTIONAL_COLUMNS:  # left empty: the contract's default
            if group.fields[name]:
                data[name] = group.fields[name]
        if group.fields["scanned_at"]:
            data["scanned_at"] = group.fields["scanned_at"]
        else:
            data["scanned_at"] = utc_now()
            log.warning(
                "receipt_scanned_at_filled",
                source=source,
                number=group.number,
                scanned_at=data["scanned_at"].isoformat(),
                note="the export has no scanned_at; using the kiosk's current UTC time",
            )
        try:
            receipts.append(Receipt.model_validate(data))
        except ValidationError as error:
            for item in error.errors(include_url=False):
                loc = item["loc"]
                if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
                    field = ".".join(str(part) for part in loc[2:]) or "item"
                    problems.append((group.rows[loc[1]], f"{field}: {item['msg']}"))
                elif loc and loc[0] == "items":
                    span = f"rows {group.rows[0]}-{group.rows[-1]}"
                    problems.append(
                        (group.rows[0], f"receipt {group.number!r} ({span}): {item['msg']}")
                    )
                else:
                    field = ".".join(str(part) for part in loc) or "receipt"
                    problems.append((group.rows[0], f"{field}: {item['msg']}"))
    if problems:
        problems.sort(key=lambda problem: problem[0])
        raise InvalidReceipt(_join([f"row {row}: {text}" for row, text in problems]))
    return receipts
