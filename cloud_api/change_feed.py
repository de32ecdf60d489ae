"""The per-process change feed: PostgreSQL notifications wake what would otherwise poll.

Writers call `notify(session, channel, payload)` inside the transaction that writes the change
(a face sample, a customer's deletion, a VIP alert, a device's revocation, a
sign-out). On PostgreSQL that
is `pg_notify`, which the server delivers only when (and only if) the transaction commits; on
SQLite it does nothing.

Each API process runs one `ChangeFeed`: on PostgreSQL one dedicated connection (application
name `storesight-change-feed`) `LISTEN`s on every channel and calls the listeners subscribed to
it (the alert hub, which fans alerts out to all of the process's streams; the index sync,
which it wakes early). Nobody relies on notifications alone: consumers keep polling, at
`poll_interval(fast)`:

- while the feed is listening, at `change_feed_safety_poll_s` (a slow safety poll);
- on SQLite, with `change_feed` off, and while the connection is lost, at their own fast
  interval (`alert_poll_interval_s`, `sync_interval_s`), as before the feed existed.

A lost connection is logged once, reconnected with a growing pause (MIN_BACKOFF_S doubling to
MAX_BACKOFF_S), and its recovery logged once; both transitions call every listener with
channel None ("anything may have changed"), so consumers switch their pace at once and catch
up on what was committed while nobody listened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import psycopg
import structlog
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cloud_api.db.session import error_line
from cloud_api.settings import CloudSettings

log = structlog.get_logger(__name__)

SAMPLES = "storesight_samples"  # payload: empty
DELETIONS = "storesight_deletions"  # payload: empty
ALERTS = "storesight_alerts"  # payload: the alert's store id
DEVICES = "storesight_devices"  # payload: the revoked device's id
SESSIONS = "storesight_sessions"  # payload: empty (user sessions ended: sign-out, revocation)
CHANNELS = (SAMPLES, DELETIONS, ALERTS, DEVICES, SESSIONS)
APPLICATION_NAME = "storesight-change-feed"
MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
#: how long one wait for notifications lasts before the listener checks whether to stop
WAIT_S = 1.0

#: called with (channel, payload) in the feed's thread; channel None: the feed connected or
#: lost its connection, so anything may have changed
Listener = Callable[[str | None, str], None]


#: where a session remembers the channels it notified (`Session.info`)
_NOTIFIED = "storesight_notified"


def notify(session: Session, channel: str, payload: str = "") -> None:
    """Tell every process's feed about a change, when this session's transaction commits
    (PostgreSQL); nothing on SQLite, whose processes poll. Either way the session remembers
    the channel (`notified`), so its own process can act at once after the commit."""
    session.info.setdefault(_NOTIFIED, set()).add(channel)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(channel, payload)))


def notified(session: Session) -> frozenset[str]:
    """The channels `notify` was called with in this session."""
    return frozenset(session.info.get(_NOTIFIED, ()))


def listen_connection(database_url: str, connect_timeout_s: float) -> psycopg.Connection[TupleRow]:
    """A new autocommit connection for LISTEN, with TCP keepalives so a silently dead peer is
    noticed without any query being sent."""
    url = make_url(database_url).set(drivername="postgresql")
    return psycopg.connect(
        url.render_as_string(hide_password=False),
        autocommit=True,
        connect_timeout=max(1, round(connect_timeout_s)),
        application_name=APPLICATION_NAME,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


class ChangeFeed:
    """One process's notifications: one LISTEN connection on PostgreSQL, none elsewhere."""

    def __init__(
        self,
        database_url: str,
        *,
        enabled: bool = True,
        safety_poll_s: float = 10.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._url = database_url
        self._listens = enabled and make_url(database_url).get_backend_name() == "postgresql"
        self._safety_poll_s = safety_poll_s
        self._connect_timeout_s = connect_timeout_s
        self._listeners: list[tuple[frozenset[str], Listener]] = []
        self._live = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> ChangeFeed:
        return cls(
            settings.database_url,
            enabled=settings.change_feed,
            safety_poll_s=settings.change_feed_safety_poll_s,
            connect_timeout_s=settings.database_connect_timeout_s,
        )

    @property
    def listens(self) -> bool:
        """Whether this feed listens at all (PostgreSQL with the feed enabled)."""
        return self._listens

    @property
    def live(self) -> bool:
        """Whether notifications arrive now (the LISTEN connection is up)."""
        return self._live.is_set()

    def poll_interval(self, fast: float) -> float:
        """How long a consumer polling every `fast` seconds waits between reads now."""
        return max(fast, self._safety_poll_s) if self.live else fast

    def subscribe(self, channels: Iterable[str], listener: Listener) -> None:
        """Call `listener` for each notification on `channels` and at every change of state.
        Subscribe before `start`."""
        self._listeners.append((frozenset(channels), listener))

    def start(self) -> None:
        if self._listens:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=WAIT_S * 5)

    # ---- the listening thread ------------------------------------------------------------

    def _run(self) -> None:
        pause = MIN_BACKOFF_S
        lost_logged = False
        while not self._stop.is_set():
            try:
                with listen_connection(self._url, self._connect_timeout_s) as connection:
                    for channel in CHANNELS:
                        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._live.set()
                    log.info("change_feed_listening", backend_pid=connection.info.backend_pid)
                    lost_logged = False
                    pause = MIN_BACKOFF_S
                    self._announce(None, "")  # catch up on what was committed unheard
                    while not self._stop.is_set():
                        for note in connection.notifies(timeout=WAIT_S):
                            self._announce(note.channel, note.payload)
            except (psycopg.Error, OSError) as error:
                was_live = self.live
                self._live.clear()
                if self._stop.is_set():
                    break
                if was_live:
                    self._announce(None, "")  # consumers poll at their fast pace meanwhile
                if not lost_logged:
                    log.warning(
                        "change_feed_lost",
                        error="the LISTEN connection failed; polling until it is back",
                        detail=error_line(error),
                    )
                    lost_logged = True
                self._stop.wait(pause)
                pause = min(pause * 2, MAX_BACKOFF_S)
        self._live.clear()

    def _announce(self, channel: str | None, payload: str) -> None:
        for channels, listener in self._listeners:
            if channel is not None and channel not in channels:
                continue
            try:
                listener(channel, payload)
            except Exception:  # one consumer's bug must not end the feed
                log.exception("change_feed_listener_failed", channel=channel)
