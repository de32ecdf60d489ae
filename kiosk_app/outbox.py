"""The kiosk's durable outbox: checkouts wait here, on disk, until the cloud has them.

A local SQLite database in WAL mode with ``synchronous=FULL``: `Outbox.put` returns only
after the checkout is committed to disk, so a receipt acknowledged to the POS survives a
crash or a power cut. Each item is, at every instant, in exactly one state:

- ``pending``: not yet confirmed by the cloud. Delivered strictly in order: `next_due`
  only ever offers the oldest pending item, so one that keeps failing with a retryable
  error holds the ones behind it.
- ``dead``: the cloud refused it for good (a 4xx). Kept, with the status and the error,
  for staff (`dead_items`, `requeue_dead`); the items behind it go on.
- ``delivered``: the cloud answered 2xx. The request body (which holds face descriptors
  and a face crop) is dropped at once; only the key, the receipt number and the cloud's
  answer are kept, and delivered rows are pruned (`keep_delivered`, `keep_delivered_s`),
  so disk use is bounded.

A crash at any point leaves a put item pending or delivered, never lost: the state only
moves to delivered after a 2xx, and a resend of a pending item carries the same
idempotency key, so the cloud answers it from its first record and stores nothing twice.

Times are wall-clock seconds since the epoch (`time.time`), since they outlive restarts.
Thread-safe: one connection, guarded by a lock. Several processes may open the same file
(SQLite locks it), though one kiosk should run one uplink.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from contract import CheckoutRequest, CheckoutResponse

__all__ = [
    "ItemState",
    "Outbox",
    "OutboxError",
    "OutboxFull",
    "OutboxItem",
    "OutboxStats",
    "checkout_body",
]

ItemState = Literal["pending", "dead", "delivered"]

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_MS = 30_000
_PRUNE_EVERY = 100  # deliveries between two prunes (a prune is also run on open)

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    receipt_number  TEXT    NOT NULL,
    body            TEXT,               -- the request JSON; NULL once delivered
    size            INTEGER NOT NULL,   -- bytes of the body as put
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'dead', 'delivered')),
    enqueued_at     REAL    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    finished_at     REAL,               -- when it was delivered, or declared dead
    latency_ms      REAL,
    response        TEXT                -- the cloud's CheckoutResponse JSON
)""",
    "CREATE INDEX IF NOT EXISTS outbox_state_id ON outbox (state, id)",
)


#: the outbox's database in the kiosk's data folder
OUTBOX_FILE = "outbox.sqlite3"


def outbox_path(data_dir: Path) -> Path:
    return data_dir / OUTBOX_FILE


def checkout_body(request: CheckoutRequest) -> str:
    """The checkout as stored and sent: the contract's JSON without empty (None) fields, so an
    f16 embedding carries no `"vector": null`."""
    return request.model_dump_json(exclude_none=True)


class OutboxError(Exception):
    """The outbox cannot do what was asked; the message says why."""


class OutboxFull(OutboxError):
    """No room for another checkout; nothing stored was touched."""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    idempotency_key: str
    receipt_number: str
    body: str | None  # the CheckoutRequest JSON; None once delivered
    size: int
    state: ItemState
    enqueued_at: float
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    finished_at: float | None
    latency_ms: float | None
    response: CheckoutResponse | None

    def request(self) -> CheckoutRequest:
        """The stored checkout, parsed (only while the body is kept: pending or dead)."""
        if self.body is None:
            raise OutboxError(f"outbox item {self.id} no longer keeps its body ({self.state})")
        return CheckoutRequest.model_validate_json(self.body)


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    dead: int
    delivered: int
    bytes_on_disk: int  # the database file and its write-ahead log
    oldest_pending_age_s: float | None  # None when nothing is pending


#: the outbox table's columns read into an `OutboxItem`, named as its fields
_FIELDS = tuple(f.name for f in fields(OutboxItem))
_COLUMNS = ", ".join(_FIELDS)


def _item(row: tuple[Any, ...]) -> OutboxItem:
    values = dict(zip(_FIELDS, row, strict=True))
    stored = values["response"]
    values["response"] = None if stored is None else CheckoutResponse.model_validate_json(stored)
    return OutboxItem(**values)


class Outbox:
    """A durable FIFO of checkouts waiting for the cloud (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        max_items: int = 10_000,
        max_bytes: int = 100 * 2**20,
        keep_delivered: int = 1000,
        keep_delivered_s: float = 7 * 24 * 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("max_items and max_bytes must be positive")
        self.path = Path(path)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.keep_delivered = keep_delivered
        self.keep_delivered_s = keep_delivered_s
        self._clock = clock
        self._lock = threading.RLock()
        self._since_prune = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path,
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # shared by threads, serialised by self._lock
        )
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # Must precede the first table; lets prune() give freed pages back to the disk.
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"{self.path}: could not switch to WAL journaling (got {mode!r})")
        db.execute("PRAGMA synchronous=FULL")  # a committed put survives a power cut
        db.execute("PRAGMA journal_size_limit=4194304")  # the WAL shrinks after checkpoints
        with self._transaction():
            for statement in _SCHEMA:
                db.execute(statement)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise OutboxError(
                    f"{self.path}: outbox schema version {version}, this kiosk knows "
                    f"{SCHEMA_VERSION}"
                )
        self.prune()

    # --- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; ROLLBACK on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the queue -----------------------------------------------------------------------

    def put(self, request: CheckoutRequest) -> int:
        """Store a checkout; its id once it is committed to disk.

        The same idempotency key put again returns the first item's id and stores nothing.
        Raises `OutboxFull` when the undelivered items (pending and dead) already reach
        `max_items` or would pass `max_bytes`.
        """
        body = checkout_body(request)
        size = len(body.encode())
        now = self._clock()
        with self._transaction() as db:
            existing = db.execute(
                "SELECT id FROM outbox WHERE idempotency_key = ?", (request.idempotency_key,)
            ).fetchone()
            if existing is not None:
                found: int = existing[0]
                return found
            depth, used = db.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM outbox "
                "WHERE state IN ('pending', 'dead')"
            ).fetchone()
            if depth >= self.max_items:
                raise OutboxFull(
                    f"outbox full: {depth} checkouts waiting (pending or dead), "
                    f"limit {self.max_items} items"
                )
            if used + size > self.max_bytes:
                raise OutboxFull(
                    f"outbox full: {depth} checkouts waiting use {used} bytes; this one "
                    f"({size} bytes) would pass the limit of {self.max_bytes} bytes"
                )
            cursor = db.execute(
                "INSERT INTO outbox (idempotency_key, receipt_number, body, size, state, "
                "enqueued_at, next_attempt_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (request.idempotency_key, request.receipt.number, body, size, now, now),
            )
            new_id = cursor.lastrowid
        assert new_id is not None
        return new_id

    def head(self) -> OutboxItem | None:
        """The oldest pending item, whether or not its next attempt is due."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1"
        )
        return _item(rows[0]) if rows else None

    def next_due(self, now: float | None = None) -> OutboxItem | None:
        """The oldest pending item if its next attempt time has come, else None.

        Never an item behind it: delivery is strictly in order.
        """
        item = self.head()
        at = self._clock() if now is None else now
        return item if item is not None and item.next_attempt_at <= at else None

    def get(self, item_id: int) -> OutboxItem | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (item_id,))
        return _item(rows[0]) if rows else None

    def mark_delivered(
        self, item_id: int, response: CheckoutResponse | None, latency_ms: float
    ) -> None:
        """The cloud has it (2xx). Drops the body; `response` is None if it was unreadable."""
        now = self._clock()
        answer = None if response is None else response.model_dump_json()
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'delivered', body = NULL, response = ?, "
                "latency_ms = ?, finished_at = ?, attempts = attempts + 1, last_status = NULL, "
                "last_error = NULL WHERE id = ? AND state = 'pending'",
                (answer, latency_ms, now, item_id),
            )
        with self._lock:
            self._since_prune += 1
            due = self._since_prune >= _PRUNE_EVERY
        if due:
            self.prune()

    def mark_retry(
        self, item_id: int, error: str, next_attempt_at: float, *, status: int | None = None
    ) -> None:
        """A retryable failure: try again at `next_attempt_at`; the items behind it wait."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_status = ?, "
                "next_attempt_at = ? WHERE id = ? AND state = 'pending'",
                (error, status, next_attempt_at, item_id),
            )

    def mark_dead(self, item_id: int, status: int, error: str) -> None:
        """Refused for good (4xx): kept for staff, never retried; the items behind go on."""
        now = self._clock()
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_status = ?, "
                "last_error = ?, finished_at = ? WHERE id = ? AND state = 'pending'",
                (status, error, now, item_id),
            )

    def requeue_dead(self, item_id: int) -> bool:
        """Staff: send a dead item again, at once (it keeps its place: it is older than the
        items put after it). False when the item is not dead."""
        now = self._clock()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
                "finished_at = NULL WHERE id = ? AND state = 'dead'",
                (now, item_id),
            )
            return cursor.rowcount == 1

    def dead_items(self) -> list[OutboxItem]:
        """Items the cloud refused, oldest first, with their status and error."""
        rows = self._read(f"SELECT {_COLUMNS} FROM outbox WHERE state = 'dead' ORDER BY id")
        return [_item(row) for row in rows]

    def depth(self) -> int:
        """Pending items (what still has to go to the cloud)."""
        rows = self._read("SELECT count(*) FROM outbox WHERE state = 'pending'")
        count: int = rows[0][0]
        return count

    def stats(self) -> OutboxStats:
        now = self._clock()
        rows = self._read("SELECT state, count(*), min(enqueued_at) FROM outbox GROUP BY state")
        counts = {state: (count, oldest) for state, count, oldest in rows}
        pending, oldest = counts.get("pending", (0, None))
        on_disk = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                on_disk += Path(f"{self.path}{suffix}").stat().st_size
            except FileNotFoundError:
                pass
        return OutboxStats(
            pending=pending,
            dead=counts.get("dead", (0, None))[0],
            delivered=counts.get("delivered", (0, None))[0],
            bytes_on_disk=on_disk,
            oldest_pending_age_s=None if oldest is None else max(0.0, now - oldest),
        )

    def prune(self) -> int:
        """Forget delivered items beyond the newest `keep_delivered` or older than
        `keep_delivered_s`; give the freed pages back. The number of rows removed."""
        cutoff = self._clock() - self.keep_delivered_s
        with self._transaction() as db:
            removed = db.execute(
                "DELETE FROM outbox WHERE state = 'delivered' AND (finished_at < ? OR id NOT IN "
                "(SELECT id FROM outbox WHERE state = 'delivered' ORDER BY id DESC LIMIT ?))",
                (cutoff, self.keep_delivered),
            ).rowcount
        with self._lock:
            self._since_prune = 0
            if removed:
                self._db.execute("PRAGMA incremental_vacuum").fetchall()
        return removed
