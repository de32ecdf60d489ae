"""Receipt intake: valid receipts go to the handler, bad inputs to the dead-letter folder.

The server and the folder watcher share one `ReceiptIntake`. A bad input is rejected
(`ReceiptRejected`) and kept for staff in the dead-letter folder: the original bytes as
``<timestamp>-<source>-<n>.<ext>`` and the reason beside it as
``<timestamp>-<source>-<n>.reason.txt`` (see `reason_path`).
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from contract import Receipt
from kiosk_app.receipts.parsing import (
    InvalidReceipt,
    parse_csv_receipts,
    parse_json_receipt,
    utc_now,
)
from storesight_common.files import write_atomic

__all__ = [
    "ReceiptHandler",
    "ReceiptIntake",
    "ReceiptRejected",
    "reason_path",
]

log = structlog.get_logger(__name__)

ReceiptHandler = Callable[[Receipt, str], None]
"""Called with (receipt, source) for every valid receipt; source e.g. "http", "folder:x.csv"."""


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


def _safe_name(text: str, limit: int = 80) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:limit] or "unknown"


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
            receipt = parse_json_receipt(raw, source)
        except InvalidReceipt as invalid:
            raise self._reject(raw, source, "json", invalid.reason) from None
        self._deliver([receipt], source)
        return receipt

    def accept_csv(self, raw: bytes, source: str) -> list[Receipt]:
        """Validate a POS export (one or more receipts); all of them go through or none does."""
        try:
            receipts = parse_csv_receipts(raw, source)
        except InvalidReceipt as invalid:
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
        write_atomic(reason_path(target), self._reason_text(source, reason))
        shutil.move(str(path), str(target))
        log.warning("receipt_rejected", source=source, reason=reason, dead_letter=str(target))
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
                        "receipt_handler_failed",
                        source=source,
                        number=receipt.number,
                        delivered_before=delivered,
                    )
                    raise
                delivered.append(receipt.number)
                log.info(
                    "receipt_accepted",
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
            write_atomic(reason_path(target), self._reason_text(source, reason))
            write_atomic(target, raw)
        except OSError:
            log.exception("receipt_dead_letter_failed", source=source, reason=reason)
            target = None
        log.warning(
            "receipt_rejected",
            source=source,
            reason=reason,
            dead_letter=str(target) if target else None,
        )
        return ReceiptRejected(reason, source, target)

    def _dead_letter_target(self, source: str, ext: str) -> Path:
        self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
        stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
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
            f"received: {utc_now().isoformat(timespec='seconds')}\n"
        ).encode()
