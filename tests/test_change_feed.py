"""The change feed (issue 16 point 3): one alert fan-out per process, over real HTTP.

- 500 open alert streams on one process cost no more idle database queries than one stream
  (counted statement by statement, by the thread that ran them), on SQLite (polling) and on
  PostgreSQL (LISTEN/NOTIFY with a slow safety poll); an alert is delivered exactly once to
  every stream of its store and to no other store's; a revoked key's streams end and hear
  nothing raised after the revocation.
- PostgreSQL: notifications wake the streams and the recogniser's sync long before the safety
  poll would; after the LISTEN connection is killed (pg_terminate_backend) alerts still arrive,
  by polling while it is down and by notification again once it is back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from fastapi import FastAPI
from numpy.typing import NDArray
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from cloud_api import admin, change_feed
from cloud_api.api import app as app_module
from cloud_api.api.app import create_app
from cloud_api.db.models import AlertEvent, Customer
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.services.alert_hub import THREAD_NAME as FANOUT_THREAD
from cloud_api.services.checkout import enrol
from cloud_api.services.context import Services
from cloud_api.services.customers import purge
from cloud_api.services.recognizer import context_for
from cloud_api.settings import CloudSettings
from contract import Embedding
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve
from tests.store_chain import Chain, Keys, build_chain, settings_for, sighting_body

pytestmark = pytest.mark.slow

DEADLINE_S = 30.0
STREAMS = 500
#: how long each idle window counts queries
WINDOW_S = 8.0
#: what one periodic task may add to a window by its phase alone (one more tick in one window
#: than in the other): a fan-out round is 2 statements (alert ids, active keys), a recogniser
#: sync 2 (new samples, new deletions); on SQLite each also begins its transaction (BEGIN)
ONE_TICK = {FANOUT_THREAD: 3, "index-sync": 3}


# ---- the streams ---------------------------------------------------------------------------


@dataclass
class Stream:
    """One staff client's alert stream, as the server sent it."""

    store_id: int
    key: str
    status: int | None = None
    arrivals: list[dict[str, Any]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    revoked_note: bool = False
    ended: bool = False  # the server closed it

    def vip_numbers(self) -> list[str]:
        return [a["vip_number"] for a in self.arrivals]


class Fleet:
    """Many streams held open at once by one asyncio client in its own thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.streams: list[Stream] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._tasks: list[concurrent.futures.Future[None]] = []
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        timeout = httpx.Timeout(10.0, read=None)
        self._client = self._call(self._make_client(limits, timeout))

    @staticmethod
    async def _make_client(limits: httpx.Limits, timeout: httpx.Timeout) -> httpx.AsyncClient:
        return httpx.AsyncClient(limits=limits, timeout=timeout)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(DEADLINE_S)

    def open(self, store_id: int, key: str, count: int) -> list[Stream]:
        opened = [Stream(store_id, key) for _ in range(count)]
        self.streams += opened
        for stream in opened:
            self._tasks.append(asyncio.run_coroutine_threadsafe(self._follow(stream), self._loop))
        return opened

    async def _follow(self, stream: Stream) -> None:
        path = f"{self.url}/v1/stores/{stream.store_id}/alerts"
        async with self._client.stream("GET", path, headers={"X-API-Key": stream.key}) as answer:
            stream.status = answer.status_code
            async for line in answer.aiter_lines():
                if line.startswith("data: "):
                    stream.arrivals.append(json.loads(line[6:]))
                elif line.startswith("id: "):
                    stream.ids.append(int(line[4:]))
                elif line.startswith(": the device key was revoked"):
                    stream.revoked_note = True
        stream.ended = True

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._call(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=DEADLINE_S)


@contextmanager
def fleet_of(url: str) -> Iterator[Fleet]:
    fleet = Fleet(url)
    try:
        yield fleet
    finally:
        fleet.close()  # before the server stops: an open stream would hold its shutdown


# ---- counting queries ----------------------------------------------------------------------


class QueryCounter:
    """Every SQL statement the app runs on one database, by the thread that ran it (the
    alert fan-out, index syncing, request threads, ...)."""

    def __init__(self, database_url: str) -> None:
        self._database = make_url(database_url).database
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, connection: Any, *_: Any) -> None:
        if connection.engine.url.database != self._database:
            return
        name = threading.current_thread().name
        group = FANOUT_THREAD if name.startswith(FANOUT_THREAD) else name
        with self._lock:
            self._counts[group] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


@contextmanager
def counting(database_url: str) -> Iterator[QueryCounter]:
    counter = QueryCounter(database_url)
    event.listen(Engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(Engine, "before_cursor_execute", counter)


@dataclass(frozen=True)
class Idle:
    statements: Counter[str]
    rounds: int
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.statements.values())


def idle_window(app: FastAPI, counter: QueryCounter) -> Idle:
    hub = app.state.alert_hub
    before, rounds = counter.snapshot(), hub.rounds
    started = time.monotonic()
    time.sleep(WINDOW_S)
    after = counter.snapshot()
    after.subtract(before)
    return Idle(+after, hub.rounds - rounds, time.monotonic() - started)


# ---- helpers ---------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def settled(app: FastAPI, streams: int) -> None:
    """Every stream followed by the hub, and a round that began after the last one joined
    has run. (Not "a round after this call": the joins' own rounds may all be over by then,
    and with the feed live and quiet the next round is a safety poll away.)"""
    hub = app.state.alert_hub
    wait_for(lambda: hub.streams == streams, f"{streams} streams followed")
    wait_for(lambda: hub.rounds > hub.rounds_begun_at_join, "a fan-out round")


def member(chain: Chain) -> tuple[str, NDArray[np.float32]]:
    """A new member of store A: their VIP number and face."""
    vip = f"F-{uuid.uuid4().hex[:8]}"
    _, face = chain.member(vip)
    return vip, face


def enrol_elsewhere(database_url: str, services: Services, chain: Chain) -> int:
    """A customer and their faces written as another process would (its own connection,
    the service's own writer): the new customer's id."""
    sessions = session_factory(make_engine(database_url))
    with transaction(sessions) as session:
        store = admin.get_store(session, "N002")
        customer = Customer(region_id=store.region_id, first_store_id=store.id)
        session.add(customer)
        session.flush()
        shots = [Embedding.compact([float(v) for v in chain.unit()], 0.9) for _ in range(2)]
        enrol(
            session, services, customer, shots, context_for(store.region_id, store.id, None, None)
        )
        return customer.id


def arrive(chain: Chain, entrance_key: str, face: NDArray[np.float32]) -> None:
    answer = chain.request("POST", "/v1/sightings", entrance_key, sighting_body([face, face]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["is_vip"] is True, answer.json()


def new_device(database_url: str, store_code: str, kind: str) -> tuple[int, str]:
    sessions = session_factory(make_engine(database_url))
    with transaction(sessions) as session:
        device, key = admin.create_device(session, store_code, kind, f"{kind} {uuid.uuid4().hex}")
        session.flush()
        return device.id, key


def revoke(database_url: str, device_id: int) -> None:
    sessions = session_factory(make_engine(database_url))
    with transaction(sessions) as session:
        admin.revoke_device(session, device_id)


@contextmanager
def running(
    database_url: str, tmp_path: Path, **changes: Any
) -> Iterator[tuple[FastAPI, Chain, Keys]]:
    keys = build_chain(database_url)
    settings: CloudSettings = settings_for(database_url, tmp_path / "index").model_copy(
        update=changes
    )
    app = create_app(settings)
    with serve(settings, app=app) as server:
        yield app, Chain(server.url, database_url, keys), keys


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


# ---- 500 streams against one -------------------------------------------------------------


def test_five_hundred_streams_cost_no_more_idle_queries_than_one(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # report rollups refresh every 30 s whatever the streams: kept out of the windows
    monkeypatch.setattr(app_module, "ROLLUP_INTERVAL_S", 3600.0)
    postgres = is_postgres(migrated_url)
    with (
        running(
            migrated_url,
            tmp_path,
            alert_poll_interval_s=0.5,
            sync_interval_s=0.25,
            change_feed_safety_poll_s=2.0,
        ) as (app, chain, keys),
        counting(migrated_url) as counter,
        fleet_of(chain.url) as fleet,
    ):
        if postgres:
            wait_for(lambda: app.state.change_feed.live, "the change feed listening")
        entrance_b = new_device(migrated_url, "N002", "entrance")[1]
        doomed_id, doomed_key = new_device(migrated_url, "N001", "till")
        first, second, third = (member(chain) for _ in range(3))

        [lone] = fleet.open(keys.store_a, keys.till_a, 1)
        settled(app, 1)
        time.sleep(1.0)
        one = idle_window(app, counter)

        store_a = [lone, *fleet.open(keys.store_a, keys.entrance_a, 300)]
        doomed = fleet.open(keys.store_a, doomed_key, 3)
        store_b = fleet.open(keys.store_b, keys.till_b, 150)
        store_c = fleet.open(keys.store_c, keys.till_c, STREAMS - 1 - 300 - 3 - 150)
        assert len(fleet.streams) == STREAMS
        settled(app, STREAMS)
        time.sleep(1.0)
        many = idle_window(app, counter)

        print(f"\n{'backend':<11}{'streams':>8}{'statements/s':>14}{'rounds/s':>10}  by thread")
        for label, idle in (("1", one), (str(STREAMS), many)):
            print(
                f"{make_url(migrated_url).get_backend_name():<11}{label:>8}"
                f"{idle.total / idle.seconds:>14.1f}{idle.rounds / idle.seconds:>10.2f}"
                f"  {dict(idle.statements)}"
            )
        polls = STREAMS * 2 * WINDOW_S / 0.5
        print(f"(one poll per stream, as before, would have been about {polls:.0f} statements)")
        # the streams themselves never query while idle: only the fan-out and index syncing
        assert set(one.statements) <= set(ONE_TICK), one.statements
        assert set(many.statements) <= set(ONE_TICK), many.statements
        assert many.rounds <= one.rounds + 1
        for thread, tick in ONE_TICK.items():
            assert many.statements[thread] <= one.statements[thread] + tick, thread
        assert many.total <= one.total + sum(ONE_TICK.values())
        assert one.rounds >= 1 and one.statements[FANOUT_THREAD] >= 2  # it was measured
        assert all(s.status == 200 for s in fleet.streams)

        # an alert reaches every stream of its store once, and no other store's
        arrive(chain, keys.entrance_a, first[1])
        wait_for(lambda: all(s.arrivals for s in store_a + doomed), "store A's streams hear it")
        revoke(migrated_url, doomed_id)
        wait_for(lambda: all(s.ended for s in doomed), "the revoked key's streams end")
        arrive(chain, entrance_b, second[1])
        arrive(chain, keys.entrance_a, third[1])
        wait_for(lambda: all(len(s.arrivals) == 2 for s in store_a), "store A's second alert")
        wait_for(lambda: all(s.arrivals for s in store_b), "store B's streams hear theirs")
        settled(app, STREAMS - len(doomed))
        time.sleep(1.5)  # more rounds: nothing is handed out twice

        a_vips, b_vips = [first[0], third[0]], [second[0]]
        assert all(s.vip_numbers() == a_vips for s in store_a)
        assert all(s.vip_numbers() == b_vips for s in store_b)
        assert all(s.arrivals == [] for s in store_c)
        for stream in doomed:  # what was raised before the revocation, then nothing
            assert stream.vip_numbers() == [first[0]] and stream.revoked_note
        for stream in store_a + store_b:
            assert stream.ids == sorted(stream.ids) and not stream.ended
            assert [a["event_id"] for a in stream.arrivals] == stream.ids[1:]


# ---- PostgreSQL: woken by notifications ----------------------------------------------------


def test_notifications_wake_streams_and_index_sync_long_before_the_safety_poll(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    if not is_postgres(migrated_url):
        pytest.skip("SQLite has no notifications: its processes poll (the test above)")
    safety_s = 600.0
    with (
        running(migrated_url, tmp_path, change_feed_safety_poll_s=safety_s) as (app, chain, keys),
        fleet_of(chain.url) as fleet,
    ):
        wait_for(lambda: app.state.change_feed.live, "the change feed listening")
        recognizer = app.state.services.recognizer
        doomed_id, doomed_key = new_device(migrated_url, "N001", "till")
        customer, face = chain.member(f"W-{uuid.uuid4().hex[:8]}")
        [stream] = fleet.open(keys.store_a, keys.till_a, 1)
        [doomed] = fleet.open(keys.store_a, doomed_key, 1)
        settled(app, 2)
        started = time.monotonic()

        arrive(chain, keys.entrance_a, face)
        wait_for(lambda: bool(stream.arrivals), "the alert, by notification", 10.0)
        revoke(migrated_url, doomed_id)  # no alert follows: only its notification ends it
        wait_for(lambda: doomed.ended, "the revoked stream's end, by notification", 10.0)
        assert doomed.revoked_note and len(doomed.arrivals) == 1

        # samples and a deletion committed by "another process" (the test's own connection)
        newcomer = enrol_elsewhere(migrated_url, app.state.services, chain)
        wait_for(lambda: recognizer.knows(newcomer), "index sync woken by the new samples", 10.0)
        with transaction(session_factory(make_engine(migrated_url))) as session:
            purge(session, [newcomer])  # as retention or another process deletes
        wait_for(lambda: not recognizer.knows(newcomer), "index sync woken by the deletion", 10.0)
        assert recognizer.knows(customer)
        assert time.monotonic() - started < safety_s / 4  # none of it waited for a poll


# ---- PostgreSQL: the LISTEN connection lost --------------------------------------------------


def _listener_pid(database_url: str) -> int | None:
    name = make_url(database_url).database
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as db:
        row = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (name, change_feed.APPLICATION_NAME),
        ).fetchone()
        return int(row[0]) if row else None


def _terminate(database_url: str, pid: int) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        killed = connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        assert killed.scalar() is True
    engine.dispose()


def test_alerts_still_arrive_after_the_listen_connection_is_killed(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not is_postgres(migrated_url):
        pytest.skip("SQLite has no LISTEN connection")
    refusing = threading.Event()  # while set, the feed cannot reconnect
    connect = change_feed.listen_connection

    def listen_connection(url: str, timeout_s: float) -> psycopg.Connection[Any]:
        if refusing.is_set():
            raise psycopg.OperationalError("connection refused (the test's doing)")
        return connect(url, timeout_s)

    monkeypatch.setattr(change_feed, "listen_connection", listen_connection)
    with (
        running(
            migrated_url, tmp_path, change_feed_safety_poll_s=600.0, alert_poll_interval_s=0.2
        ) as (app, chain, keys),
        fleet_of(chain.url) as fleet,
    ):
        feed = app.state.change_feed
        wait_for(lambda: feed.live, "the change feed listening")
        members = [member(chain) for _ in range(3)]
        streams = fleet.open(keys.store_a, keys.till_a, 3)
        settled(app, 3)
        pid = _listener_pid(migrated_url)
        assert pid is not None

        # killed and back at once: the alert arrives, the feed listens on a new backend
        _terminate(migrated_url, pid)
        arrive(chain, keys.entrance_a, members[0][1])
        wait_for(lambda: all(len(s.arrivals) == 1 for s in streams), "the first alert")
        wait_for(lambda: feed.live, "the feed listening again")
        again = _listener_pid(migrated_url)
        assert again is not None and again != pid

        # killed and kept away: the streams poll meanwhile
        refusing.set()
        _terminate(migrated_url, again)
        wait_for(lambda: not feed.live, "the feed noticing its loss")
        arrive(chain, keys.entrance_a, members[1][1])
        wait_for(lambda: all(len(s.arrivals) == 2 for s in streams), "the alert, by polling")

        # back: notifications again (the safety poll is 10 minutes away)
        refusing.clear()
        wait_for(lambda: feed.live, "the feed reconnected after its pause", 60.0)
        arrive(chain, keys.entrance_a, members[2][1])
        wait_for(lambda: all(len(s.arrivals) == 3 for s in streams), "the alert, notified")
        time.sleep(1.0)  # nothing twice
    vips = [vip for vip, _ in members]
    assert all(s.vip_numbers() == vips for s in streams)


# ---- PostgreSQL: ids committed out of order --------------------------------------------------


def _alert_row(store_id: int, vip: str) -> AlertEvent:
    """A VIP arrival as `sightings` writes it (no customer behind it: only the stream reads)."""
    payload = {"customer_id": 1, "vip_number": vip, "name": "Late", "level": "gold"}
    return AlertEvent(store_id=store_id, kind="vip_arrival", customer_id=None, payload=payload)


def test_an_alert_committed_after_a_higher_id_is_delivered_once(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Alert ids are taken at insert and committed in any order: a round that read id n+1
    must still hand out id n when its transaction commits later, and only once."""
    if not is_postgres(migrated_url):
        pytest.skip("SQLite writers take the write lock first: ids commit in order")
    with (
        running(migrated_url, tmp_path) as (app, chain, keys),
        fleet_of(chain.url) as fleet,
    ):
        [stream] = fleet.open(keys.store_a, keys.till_a, 1)
        settled(app, 1)
        sessions = session_factory(make_engine(migrated_url))
        with sessions() as slow, slow.begin():
            early = _alert_row(keys.store_a, "EARLY")
            slow.add(early)
            slow.flush()  # its id is taken; not committed yet
            with transaction(sessions) as quick:
                late = _alert_row(keys.store_a, "LATE")
                quick.add(late)
                quick.flush()
                change_feed.notify(quick, change_feed.ALERTS, str(keys.store_a))
            assert late.id > early.id
            wait_for(lambda: len(stream.arrivals) == 1, "the higher id, committed first")
            change_feed.notify(slow, change_feed.ALERTS, str(keys.store_a))
        wait_for(lambda: len(stream.arrivals) == 2, "the lower id, committed later")
        settled(app, 1)
        time.sleep(1.0)  # more rounds: nothing twice
    assert [a["event_id"] for a in stream.arrivals] == [late.id, early.id]
    assert stream.ids[1:] == [late.id, late.id]  # the resume point never moves back
