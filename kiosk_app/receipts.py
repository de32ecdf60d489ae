"""Receipt inputs on the till: the POS hands the kiosk the receipt it just scanned.

Every input validates against the wire contract (`contract.Receipt`) and calls one
`ReceiptHandler(receipt, source)` for every valid receipt. A bad input is rejected with a reason
naming what was wrong (pydantic's field path and message, the CSV row) and kept for staff in the
dead-letter folder: the original bytes as ``<timestamp>-<source>-<n>.<ext>`` and the reason
beside it as ``<timestamp>-<source>-<n>.reason.txt`` (see `reason_path`). Nothing else is
affected: the receipts before and after it go through as usual.

Inputs
------
* `LocalReceiptServer` — ``POST /receipts`` on the loopback interface (JSON, 1 MB at most):
  202 ``{"accepted": "<number>"}``; 422 ``{"error": "<reason>"}`` for a bad receipt; 413 for a
  body over the limit; 415 for a body that is not ``application/json``; 404/405 otherwise.
* `ExportFolderWatcher` — a folder the POS exports ``*.json`` / ``*.csv`` files into. A file is
  read once its size and modification time are unchanged over two polls; temporary names
  (``*.tmp``, ``*~``, ``~*``, dotfiles) are ignored. Valid files move to ``<folder>/processed/``,
  invalid ones to the dead-letter folder, and a file whose receipts the handler failed to take
  to ``<folder>/failed/`` (with a ``.reason.txt``) so staff can drop it in again.
* `parse_scanned_number` — a receipt number from a keyboard-wedge barcode scanner or typed in.

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
import ipaddress
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import structlog
from pydantic import ValidationError

from contract import Receipt

__all__ = [
    "CSV_COLUMNS",
    "CSV_OPTIONAL_COLUMNS",
    "MAX_HTTP_BODY_BYTES",
    "ExportFolderWatcher",
    "LocalReceiptServer",
    "ReceiptHandler",
    "ReceiptIntake",
    "ReceiptRejected",
    "parse_scanned_number",
    "reason_path",
]

log = structlog.get_logger(__name__)

ReceiptHandler = Callable[[Receipt, str], None]
"""Called with (receipt, source) for every valid receipt; source e.g. "http", "folder:x.csv"."""

CSV_COLUMNS = (
    "number",
    "scanned_at",
    "sku",
    "name",
    "category",
    "brand",
    "quantity",
    "unit_price",
)
CSV_OPTIONAL_COLUMNS = ("currency", "loyalty_id", "payment_token")
#: Columns that describe the whole receipt: every row of one receipt must agree on them.
_RECEIPT_COLUMNS = ("scanned_at", *CSV_OPTIONAL_COLUMNS)
#: Identify a customer: never quoted in a reason (reasons are logged and kept beside the file).
_PRIVATE_COLUMNS = ("loyalty_id", "payment_token")
_ITEM_COLUMNS = ("sku", "name", "category", "brand", "quantity", "unit_price")

MAX_HTTP_BODY_BYTES = 1024 * 1024
MAX_FILE_BYTES = 32 * 1024 * 1024
#: Reasons list at most this many problems (a file of 300 bad rows needs only a few examples).
_MAX_PROBLEMS = 20
_REASON_SUFFIX = ".reason.txt"


class ReceiptRejected(ValueError):
    """The input is not a valid receipt; `reason` says what was wrong, for staff and the POS."""

    def __init__(self, reason: str, source: str = "", dead_letter: Path | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source
        #: where the original bytes were kept (None if even that failed; the error is logged)
        self.dead_letter = dead_letter


def reason_path(dead_letter: Path) -> Path:
    """The ``.reason.txt`` file kept beside a dead letter (or a file in ``failed/``)."""
    return dead_letter.with_suffix(_REASON_SUFFIX)


def _now() -> datetime:
    return datetime.now(UTC)


def _safe_name(text: str, limit: int = 80) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:limit] or "unknown"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside `path` under a dotfile name, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)


def _problems(error: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"])
        where = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or "receipt")
        out.append(f"{where}: {item['msg']}")
    return out


def _join(problems: list[str]) -> str:
    shown = problems[:_MAX_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; … and {more} more" if more > 0 else "")


class _Invalid(Exception):
    """Internal: validation failed with this reason (ReceiptIntake adds the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Parsing


def _parse_json(raw: bytes, source: str) -> Receipt:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _Invalid(f"not UTF-8 text (byte {error.start}: {error.reason})") from None
    if not text.strip():
        raise _Invalid("empty body: expected a JSON receipt")

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a number a receipt can carry")

    try:
        data = json.loads(text, parse_float=Decimal, parse_constant=no_constants)
    except json.JSONDecodeError as error:
        raise _Invalid(f"not valid JSON: {error}") from None
    except ValueError as error:
        raise _Invalid(f"not valid JSON: {error}") from None

    prefix = ""
    if isinstance(data, dict) and set(data) == {"receipt"}:
        data, prefix = data["receipt"], "receipt."
    if not isinstance(data, dict):
        where = "receipt" if prefix else "body"
        raise _Invalid(
            f'{where}: expected a JSON object (a receipt, or {{"receipt": {{...}}}}), '
            f"got {type(data).__name__}"
        )
    if data.get("scanned_at") is None:
        data = {**data, "scanned_at": _now()}
        log.warning(
            "receipt.scanned_at_filled",
            source=source,
            number=str(data.get("number")),
            scanned_at=data["scanned_at"].isoformat(),
            note="the POS sent no scanned_at; using the kiosk's current UTC time",
        )
    try:
        return Receipt.model_validate(data)
    except ValidationError as error:
        raise _Invalid(_join(_problems(error, prefix))) from None


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
        raise _Invalid(f"row 1 (header): columns are separated by {sep}; expected commas")
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
        raise _Invalid(f"row 1 (header): {'; '.join(problems)} (expected {expected})")
    return header


def _parse_csv(raw: bytes, source: str) -> list[Receipt]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _Invalid(f"not UTF-8 text (byte {error.start}: {error.reason})") from None
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
            raise _Invalid(f"row {row}: not valid CSV ({error})") from None
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
        raise _Invalid("empty file: expected a header row and line items")
    if not groups and not problems:
        raise _Invalid("no line items: the file has a header and nothing else")

    receipts: list[Receipt] = []
    for group in groups.values():
        data: dict[str, Any] = {"number": group.number, "items": group.items}
        for name in CSV_OPTIONAL_COLUMNS:  # left empty: the contract's default
            if group.fields[name]:
                data[name] = group.fields[name]
        if group.fields["scanned_at"]:
            data["scanned_at"] = group.fields["scanned_at"]
        else:
            data["scanned_at"] = _now()
            log.warning(
                "receipt.scanned_at_filled",
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
        raise _Invalid(_join([f"row {row}: {text}" for row, text in problems]))
    return receipts


# --------------------------------------------------------------------------------------------
# Intake


class ReceiptIntake:
    """Validates receipts, hands valid ones to the handler and dead-letters the rest.

    Thread-safe: the server and the folder watcher share one intake. The handler is called one
    receipt at a time (never concurrently) from the thread that delivered the input; if it
    raises, the exception propagates to that input (the receipt was valid, so it is not
    dead-lettered) — the server answers 500, the watcher moves the file to ``failed/``.
    """

    def __init__(self, dead_letter_dir: Path, handler: ReceiptHandler) -> None:
        self.dead_letter_dir = Path(dead_letter_dir)
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        self._handler = handler
        self._handler_lock = threading.Lock()
        self._name_lock = threading.Lock()
        self._counter = 0

    def accept_json(self, raw: bytes, source: str) -> Receipt:
        """Validate one JSON receipt and hand it over; raise ReceiptRejected if it is bad."""
        try:
            receipt = _parse_json(raw, source)
        except _Invalid as invalid:
            raise self._reject(raw, source, "json", invalid.reason) from None
        self._deliver([receipt], source)
        return receipt

    def accept_csv(self, raw: bytes, source: str) -> list[Receipt]:
        """Validate a POS export (one or more receipts); all of them go through or none does."""
        try:
            receipts = _parse_csv(raw, source)
        except _Invalid as invalid:
            raise self._reject(raw, source, "csv", invalid.reason) from None
        self._deliver(receipts, source)
        return receipts

    def dead_letters(self) -> list[Path]:
        """The rejected inputs kept for staff, oldest first (each has a `reason_path`)."""
        try:
            entries = list(self.dead_letter_dir.iterdir())
        except FileNotFoundError:
            return []
        letters = []
        for path in entries:
            if path.name.startswith(".") or path.name.endswith(_REASON_SUFFIX):
                continue
            try:
                if path.is_file():
                    letters.append((path.stat().st_mtime_ns, path.name, path))
            except OSError:
                continue
        return [path for _, _, path in sorted(letters)]

    def dead_letter_file(self, path: Path, source: str, reason: str) -> Path:
        """Move a file that will not be read (e.g. far too large) into the dead letters."""
        target = self._dead_letter_target(source, path.suffix.lstrip(".") or "bin")
        _write_atomic(reason_path(target), self._reason_text(source, reason))
        shutil.move(str(path), str(target))
        log.warning("receipt.rejected", source=source, reason=reason, dead_letter=str(target))
        return target

    # ----------------------------------------------------------------------------------------

    def _deliver(self, receipts: list[Receipt], source: str) -> None:
        delivered: list[str] = []
        with self._handler_lock:
            for receipt in receipts:
                try:
                    self._handler(receipt, source)
                except Exception:
                    log.exception(
                        "receipt.handler_failed",
                        source=source,
                        number=receipt.number,
                        delivered_before=delivered,
                    )
                    raise
                delivered.append(receipt.number)
                log.info(
                    "receipt.accepted",
                    source=source,
                    number=receipt.number,
                    items=len(receipt.items),
                    total=str(receipt.total),
                    currency=receipt.currency,
                )

    def _reject(self, raw: bytes, source: str, ext: str, reason: str) -> ReceiptRejected:
        target: Path | None = None
        try:
            target = self._dead_letter_target(source, ext)
            # the reason first: a dead letter that staff can see always has its reason
            _write_atomic(reason_path(target), self._reason_text(source, reason))
            _write_atomic(target, raw)
        except OSError:
            log.exception("receipt.dead_letter_failed", source=source, reason=reason)
            target = None
        log.warning(
            "receipt.rejected",
            source=source,
            reason=reason,
            dead_letter=str(target) if target else None,
        )
        return ReceiptRejected(reason, source, target)

    def _dead_letter_target(self, source: str, ext: str) -> Path:
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        stamp = _now().strftime("%Y%m%dT%H%M%SZ")
        with self._name_lock:
            while True:
                self._counter += 1
                stem = f"{stamp}-{_safe_name(source)}-{self._counter}"
                target = self.dead_letter_dir / f"{stem}.{_safe_name(ext, 8)}"
                reason = reason_path(target)
                if not target.exists() and not reason.exists():
                    # claim the name now, so another intake on the same folder cannot take it
                    try:
                        reason.touch(exist_ok=False)
                    except FileExistsError:
                        continue
                    return target

    @staticmethod
    def _reason_text(source: str, reason: str) -> bytes:
        return (
            f"Receipt rejected: {reason}\n"
            f"source: {source}\n"
            f"received: {_now().isoformat(timespec='seconds')}\n"
        ).encode()


# --------------------------------------------------------------------------------------------
# Keyboard-wedge scanner / typed entry

_SCANNED_NUMBER = re.compile(r"[A-Za-z0-9-]{1,64}")


def parse_scanned_number(text: str) -> str | None:
    """The receipt number from a scan or typed entry, or None if it cannot be one.

    Surrounding whitespace and the scanner's CR/LF are stripped; what is left must be 1-64
    ASCII letters, digits or hyphens.
    """
    candidate = text.strip()
    return candidate if _SCANNED_NUMBER.fullmatch(candidate) else None


# --------------------------------------------------------------------------------------------
# Local HTTP server


def _loopback_host(host: str) -> str:
    if host.strip().lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(
            f"LocalReceiptServer binds to the loopback interface only: give an address such "
            f"as 127.0.0.1 or ::1, not {host!r}"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"LocalReceiptServer binds to the loopback interface only (127.0.0.1 or ::1); "
            f"{host!r} would let other machines on the network post receipts to this till"
        )
    return str(address)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    intake: ReceiptIntake
    max_body: int

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("receipt_server.connection_error", client=str(client_address))


class _Server6(_Server):
    address_family = socket.AF_INET6


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "StoreSightKiosk/1"
    timeout = 10.0  # per socket operation: a stalled client does not hold a thread forever

    def _app(self) -> _Server:
        assert isinstance(self.server, _Server)
        return self.server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("receipt_server.http", client=self.client_address[0], message=format % args)

    def _reply(self, status: HTTPStatus, body: dict[str, str], **headers: str) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _not_post(self) -> None:
        if self._path() == "/receipts":
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"}, Allow="POST")
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self._path()}"})

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_post

    def _drain(self, length: int, cap: int) -> None:
        """Read and drop a refused body, so the client sees our answer and not a reset."""
        if length > cap:
            self.close_connection = True
            return
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 64 * 1024))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            self.close_connection = True

    def do_POST(self) -> None:
        if self._path() != "/receipts":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self._path()}"})
            return
        app = self._app()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            self._reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
            return
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "Content-Length is not a number"})
            return
        if length > app.max_body:
            self._drain(length, cap=8 * app.max_body)
            log.warning("receipt_server.too_large", bytes=length, limit=app.max_body)
            self._reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                {"error": f"body of {length} bytes is over the limit of {app.max_body}"},
            )
            return
        content_type = self.headers.get_content_type()
        if content_type != "application/json" and not content_type.endswith("+json"):
            self._drain(length, cap=app.max_body)
            self._reply(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"error": f"Content-Type must be application/json, not {content_type}"},
            )
            return
        try:
            raw = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return  # the client went away (or stalled past the timeout); nothing to answer
        if len(raw) != length:
            self.close_connection = True
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body shorter than Content-Length"})
            return
        try:
            receipt = app.intake.accept_json(raw, "http")
        except ReceiptRejected as rejected:
            self._reply(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": rejected.reason})
            return
        except Exception:  # the handler failed; logged by the intake
            self._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": "the receipt is valid but the kiosk could not take it; retry"},
            )
            return
        self._reply(HTTPStatus.ACCEPTED, {"accepted": receipt.number})


class LocalReceiptServer:
    """``POST /receipts`` on loopback, for a POS on the same PC (stdlib server, daemon thread)."""

    def __init__(
        self,
        intake: ReceiptIntake,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = MAX_HTTP_BODY_BYTES,
    ) -> None:
        self.intake = intake
        self.host = _loopback_host(host)
        self.port = port
        self.max_body_bytes = max_body_bytes
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the port the server actually bound, once started)."""
        if self._server is None:
            raise RuntimeError("LocalReceiptServer.url is known once the server is started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> None:
        if self._server is not None:
            return
        cls = _Server6 if ":" in self.host else _Server
        server = cls((self.host, self.port), _RequestHandler)
        server.intake = self.intake
        server.max_body = self.max_body_bytes
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="receipt-server",
            daemon=True,
        )
        self._thread.start()
        log.info("receipt_server.started", url=f"{self.url}/receipts")

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        log.info("receipt_server.stopped")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Export folder watcher

_Outcome = Literal["processed", "rejected", "failed"]


def _is_temporary(name: str) -> bool:
    lowered = name.lower()
    return (
        name.startswith((".", "~"))
        or name.endswith("~")
        or lowered.endswith((".tmp", ".part", ".partial", ".crdownload"))
    )


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix = target.stem, target.suffix
    n = 1
    while target.exists() or reason_path(target).exists():
        target = folder / f"{stem}-{n}{suffix}"
        n += 1
    return target


class ExportFolderWatcher:
    """Polls a folder the POS exports receipts into; every file is read once, when complete.

    A ``*.json`` / ``*.csv`` file is read when its size and modification time are the same on
    two polls in a row (an empty file waits ten polls). Valid files move to
    ``<folder>/processed/``, invalid ones to the intake's dead-letter folder, and files whose
    receipts the handler failed on to ``<folder>/failed/`` with a ``.reason.txt``. A file that
    vanishes meanwhile is forgotten. Files over `max_file_bytes` are dead-lettered unread.
    """

    EMPTY_FILE_POLLS = 10

    def __init__(
        self,
        intake: ReceiptIntake,
        folder: Path,
        poll_s: float = 0.5,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.intake = intake
        self.folder = Path(folder)
        self.poll_s = poll_s
        self.max_file_bytes = max_file_bytes
        self.processed_dir = self.folder / "processed"
        self.failed_dir = self.folder / "failed"
        if self.folder.resolve() == intake.dead_letter_dir.resolve():
            raise ValueError(
                f"the dead-letter folder must not be the export folder {self.folder} itself "
                "(a subfolder is fine)"
            )
        #: name -> (size, mtime_ns, polls unchanged) of files not yet read
        self._pending: dict[str, tuple[int, int, int]] = {}
        #: name -> (size, mtime_ns, outcome, detail) of files read but not yet moved away
        self._finished: dict[str, tuple[int, int, _Outcome, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder_missing_logged = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="receipt-folder", daemon=True)
        self._thread.start()
        log.info("receipt_watcher.started", folder=str(self.folder), poll_s=self.poll_s)

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=max(5.0, 4 * self.poll_s))
        self._thread = None
        log.info("receipt_watcher.stopped", folder=str(self.folder))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # keep watching whatever one file did
                log.exception("receipt_watcher.poll_failed", folder=str(self.folder))
            if self._stop.wait(self.poll_s):
                return

    def poll(self) -> None:
        """One scan of the folder (the thread calls this every `poll_s`)."""
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            if not self._folder_missing_logged:
                log.warning("receipt_watcher.folder_missing", folder=str(self.folder))
                self._folder_missing_logged = True
            return
        self._folder_missing_logged = False
        present: dict[str, tuple[int, int]] = {}
        for entry in entries:
            name = entry.name
            if _is_temporary(name) or Path(name).suffix.lower() not in (".json", ".csv"):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            present[name] = (stat.st_size, stat.st_mtime_ns)
        for gone in set(self._pending) - set(present):
            del self._pending[gone]
        for gone in set(self._finished) - set(present):
            del self._finished[gone]

        ready: list[tuple[int, str, int]] = []
        for name, (size, mtime) in present.items():
            finished = self._finished.get(name)
            if finished is not None:
                if finished[:2] == (size, mtime):
                    self._finish(name, finished[2], finished[3])  # retry the move only
                    continue
                del self._finished[name]  # a new file under the same name
            before = self._pending.get(name)
            polls = before[2] + 1 if before is not None and before[:2] == (size, mtime) else 0
            self._pending[name] = (size, mtime, polls)
            needed = 1 if size > 0 else self.EMPTY_FILE_POLLS
            if polls >= needed:
                ready.append((mtime, name, size))
        for _, name, size in sorted(ready):
            self._read(name, size)

    def _read(self, name: str, size: int) -> None:
        path = self.folder / name
        source = f"folder:{name}"
        stat = self._pending.pop(name)
        if size > self.max_file_bytes:
            reason = f"file of {size} bytes is over the limit of {self.max_file_bytes}"
            try:
                self.intake.dead_letter_file(path, source, reason)
            except FileNotFoundError:
                log.info("receipt_watcher.vanished", file=name)
            except OSError:  # nothing was read: the next polls try again
                log.exception("receipt_watcher.move_failed", file=name)
            return
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            log.info("receipt_watcher.vanished", file=name)
            return
        except OSError as error:  # e.g. still locked by the POS on Windows: try again later
            log.info("receipt_watcher.not_readable", file=name, error=str(error))
            return
        if len(raw) != size:  # grew (or shrank) since the last poll: wait until it settles
            return
        outcome: _Outcome
        detail = ""
        try:
            if name.lower().endswith(".csv"):
                self.intake.accept_csv(raw, source)
            else:
                self.intake.accept_json(raw, source)
            outcome = "processed"
        except ReceiptRejected:
            outcome = "rejected"  # the intake kept a copy in the dead letters
        except Exception as error:
            outcome, detail = "failed", f"the handler failed: {type(error).__name__}: {error}"
        self._finished[name] = (stat[0], stat[1], outcome, detail)
        self._finish(name, outcome, detail)

    def _finish(self, name: str, outcome: _Outcome, detail: str) -> None:
        path = self.folder / name
        try:
            if outcome == "rejected":
                path.unlink()
            else:
                folder = self.processed_dir if outcome == "processed" else self.failed_dir
                folder.mkdir(exist_ok=True)
                target = _free_name(folder, name)
                path.rename(target)
                if outcome == "failed":
                    _write_atomic(
                        reason_path(target),
                        f"Receipts not taken: {detail}\nsource: folder:{name}\n".encode(),
                    )
                log.info("receipt_watcher.moved", file=name, to=str(target), outcome=outcome)
        except FileNotFoundError:
            log.info("receipt_watcher.vanished", file=name, outcome=outcome)
        except OSError as error:
            log.warning("receipt_watcher.move_failed", file=name, outcome=outcome, error=str(error))
            return  # stays in _finished: the next poll retries the move, never the receipts
        self._finished.pop(name, None)
