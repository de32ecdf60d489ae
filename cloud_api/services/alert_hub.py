"""One alert fan-out per API process: every open staff stream is served from one read.

Each stream (a device's `GET /v1/stores/{id}/alerts`, the staff app's `GET /v1/staff/stream`)
follows its store through the process's `AlertHub` instead of polling the database itself. A
round of the hub reads, in one session and whatever the number of streams: the ids of the
followed stores' alerts (of the kinds some stream wants) above the lowest point any stream has
read to; the full alerts for those ids some stream has not been handed yet (only when there
are some); then which followed devices' keys and users' sessions are still active. Each
stream gets its own store's alerts of its own kinds from memory, each once.

Ids from concurrent transactions can commit out of order (alert 10 committed after alert 11
was read), so a round looks again LOOK_BACK_IDS below what it read last, as the recogniser
does for samples: a stream remembers what it was handed within that window and is handed a
late commit once, when it appears. A stream's SSE `id` is the highest id it was handed.

When a round runs:
- on PostgreSQL with the change feed listening: when an alert is committed for a followed
  store, a followed device is revoked or user sessions end (NOTIFY), and every
  `change_feed_safety_poll_s`;
- on SQLite, and while the feed's connection is lost: every `alert_poll_interval_s`;
- when a stream opens (its catch-up after Last-Event-ID, and its key checked);
never more often than every `alert_poll_interval_s` (unless catching up on a full batch),
and never while no stream is open.

A stream outlives the request's authentication, and its key may be revoked (or its user's
session ended) meanwhile. Keys and sessions are checked after the alerts are read, so an
alert raised after the revocation was committed is either not read yet, or read together with
the revocation (the check sees the same or a later snapshot): a revoked stream is ended
without it, never given anything raised after the revocation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import structlog
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.change_feed import (
    ALERTS,
    DEVICES,
    MAX_BACKOFF_S,
    MIN_BACKOFF_S,
    SESSIONS,
    ChangeFeed,
)
from cloud_api.db.session import error_line
from cloud_api.services.alerts import Alert, alert_ids_after, alerts_by_id
from cloud_api.services.devices import active_device_ids
from cloud_api.services.users import active_session_ids

log = structlog.get_logger(__name__)

#: the most alerts one round hands out
FANOUT_BATCH = 500
#: how far below what it read last a round looks again for late commits (alert ids)
LOOK_BACK_IDS = 500
#: the name of the hub's one database thread
THREAD_NAME = "alert-fanout"

Ending = Literal["revoked", "closing"]


class AlertFollower:
    """One open stream's place: its store, the kinds it wants, whose it is (a device's key or
    a user's session), and what the hub handed it."""

    def __init__(
        self,
        store_id: int,
        after: int,
        kinds: frozenset[str],
        *,
        device_id: int | None = None,
        session_id: int | None = None,
    ) -> None:
        if (device_id is None) == (session_id is None):
            raise ValueError("a stream is a device's or a user session's, exactly one")
        self.store_id = store_id
        self.kinds = kinds
        self.device_id = device_id
        self.session_id = session_id
        #: every alert of the store up to this id was handed out, or predates the stream
        self.after = after
        #: ids above `after` handed out (a late commit below them may still come)
        self.handed: set[int] = set()
        self.ending: Ending | None = None
        self._pending: list[Alert] = []
        self._ready = asyncio.Event()

    async def next(self, timeout: float) -> list[Alert] | None:
        """The alerts handed out since the last call; [] when none came within `timeout`
        seconds; None once the stream is over (see `ending`)."""
        if not self._pending and self.ending is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        if self._pending:
            batch, self._pending = self._pending, []
            return batch
        return None if self.ending is not None else []

    def wants(self, alert_id: int, store_id: int, kind: str) -> bool:
        return (
            store_id == self.store_id
            and kind in self.kinds
            and alert_id > self.after
            and alert_id not in self.handed
        )

    def active(self, devices: set[int], sessions: set[int]) -> bool:
        """Whether its key or session is among those still active."""
        if self.device_id is not None:
            return self.device_id in devices
        return self.session_id in sessions

    def receive(self, batch: list[Alert], read_through: int) -> None:
        """Hand over `batch` (what it wants of it), then forget what lies at or below
        `read_through`: every alert of the store up to there has now been seen."""
        fresh = [a for a in batch if self.wants(a.event_id, a.store_id, a.kind)]
        self.handed.update(a.event_id for a in fresh)
        self.after = max(self.after, read_through)
        self.handed = {i for i in self.handed if i > self.after}
        if fresh:
            self._pending.extend(fresh)
            self._ready.set()

    def finish(self, ending: Ending) -> None:
        self.ending = ending
        self._ready.set()


@dataclass(frozen=True)
class _Read:
    alerts: list[Alert]
    #: alerts up to this id were all seen by the read (late commits aside)
    reached: int
    #: the read stopped at a limit: more follows at once
    full: bool
    active_devices: set[int]
    active_sessions: set[int]


class AlertHub:
    """The process's open alert streams, fed from one database read per round."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        feed: ChangeFeed,
        *,
        poll_interval_s: float,
        batch: int = FANOUT_BATCH,
    ) -> None:
        self._sessions = sessions
        self._feed = feed
        self._poll_interval_s = poll_interval_s
        self._batch = batch
        self._followers: set[AlertFollower] = set()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        #: rounds run (each one read for all streams); for tests and figures
        self.rounds = 0
        #: rounds begun, and how many had begun when the newest stream joined: a round counted
        #: in `rounds` beyond that began after it joined, so it has served every stream
        self.rounds_begun = 0
        self.rounds_begun_at_join = 0
        feed.subscribe((ALERTS, DEVICES, SESSIONS), self._notified)

    @property
    def streams(self) -> int:
        return len(self._followers)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=THREAD_NAME)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True, cancel_futures=True)
        for follower in self._followers:
            follower.finish("closing")
        self._followers.clear()

    @contextlib.contextmanager
    def follow(
        self,
        store_id: int,
        after: int,
        kinds: frozenset[str],
        *,
        device_id: int | None = None,
        session_id: int | None = None,
    ) -> Iterator[AlertFollower]:
        """Follow `store_id`'s alerts of `kinds` after `after`, with `device_id`'s key or the
        user session `session_id`, while inside."""
        follower = AlertFollower(store_id, after, kinds, device_id=device_id, session_id=session_id)
        self._followers.add(follower)
        self.rounds_begun_at_join = self.rounds_begun
        self._wake.set()  # its first round: the catch-up, and its key checked
        try:
            yield follower
        finally:
            self._followers.discard(follower)

    # ---- notifications (called in the change feed's thread) -----------------------------

    def _notified(self, channel: str | None, payload: str) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: the process is stopping
            loop.call_soon_threadsafe(self._consider, channel, payload)

    def _consider(self, channel: str | None, payload: str) -> None:
        """Wake for a notification that concerns an open stream (or a change of the feed)."""
        if channel is not None and payload.isdigit():
            wanted = int(payload)
            if channel == ALERTS and all(f.store_id != wanted for f in self._followers):
                return
            if channel == DEVICES and all(f.device_id != wanted for f in self._followers):
                return
        if channel == SESSIONS and all(f.session_id is None for f in self._followers):
            return
        self._wake.set()

    # ---- rounds ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_round = -float("inf")
        hurry = False  # the last round stopped at a limit: read on at once
        pause = MIN_BACKOFF_S
        failing = False
        while True:
            if not hurry:
                with contextlib.suppress(TimeoutError):
                    wait = self._feed.poll_interval(self._poll_interval_s)
                    await asyncio.wait_for(self._wake.wait(), wait)
                too_soon = self._poll_interval_s - (loop.time() - last_round)
                if too_soon > 0:
                    await asyncio.sleep(too_soon)
            self._wake.clear()
            if not self._followers:
                hurry = False
                continue
            last_round = loop.time()
            try:
                hurry = await self._round(loop)
            except Exception as error:  # logged once, retried after a growing pause
                if not failing:
                    log.error(
                        "alert_fanout_failing",
                        error="the database is unavailable"
                        if isinstance(error, OperationalError)
                        else type(error).__name__,
                        detail=error_line(error),
                    )
                failing, hurry = True, False
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_BACKOFF_S)
                continue
            if failing:
                log.info("alert_fanout_recovered")
            failing, pause = False, MIN_BACKOFF_S

    async def _round(self, loop: asyncio.AbstractEventLoop) -> bool:
        """One read for every open stream, handed out; whether it stopped at a limit."""
        followers = list(self._followers)
        self.rounds_begun += 1
        read = await loop.run_in_executor(self._executor, self._read, followers)
        self.rounds += 1
        read_through = read.reached - LOOK_BACK_IDS
        by_store: defaultdict[int, list[Alert]] = defaultdict(list)
        for alert in read.alerts:
            by_store[alert.store_id].append(alert)
        for follower in followers:
            if follower not in self._followers:  # closed during the read
                continue
            if not follower.active(read.active_devices, read.active_sessions):
                self._followers.discard(follower)
                follower.finish("revoked")
                continue
            follower.receive(by_store.get(follower.store_id, []), read_through)
        return read.full

    def _read(self, followers: list[AlertFollower]) -> _Read:
        """In the hub's thread: the round's queries, in one session."""
        lower = min(f.after for f in followers)
        scan = LOOK_BACK_IDS + self._batch
        of_store: defaultdict[int, list[AlertFollower]] = defaultdict(list)
        for follower in followers:
            of_store[follower.store_id].append(follower)
        kinds = frozenset().union(*(f.kinds for f in followers))
        with self._sessions() as session:
            seen = alert_ids_after(session, of_store, lower, scan, kinds)
            wanted = [
                alert_id
                for alert_id, store_id, kind in seen
                if any(f.wants(alert_id, store_id, kind) for f in of_store[store_id])
            ]
            full = len(seen) >= scan or len(wanted) > self._batch
            reached = seen[-1][0] if seen else lower
            if len(wanted) > self._batch:
                wanted = wanted[: self._batch]
                reached = min(reached, wanted[-1])
            found = alerts_by_id(session, wanted) if wanted else []
            # keys and sessions after the alerts, in the same session: see the docstring
            devices = active_device_ids(
                session, {f.device_id for f in followers if f.device_id is not None}
            )
            sessions = active_session_ids(
                session, {f.session_id for f in followers if f.session_id is not None}
            )
        return _Read(found, reached, full, devices, sessions)
