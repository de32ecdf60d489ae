"""The kiosk's outbox and uplink: unit tests on a mock transport, then faults against the
real cloud API process (down, 500s, dropped connections, too slow, the kiosk SIGKILLed)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import structlog
from sqlalchemy import select

import tests.cloud_server as cloud_server
from cloud_api import admin
from cloud_api.db.migrate import upgrade
from cloud_api.db.models import Receipt
from cloud_api.db.session import make_engine, session_factory, transaction
from contract import (
    CheckoutRequest,
    CheckoutResponse,
    ErrorBody,
    FieldError,
    LineItem,
    Preferences,
    VipCard,
)
from contract import Receipt as ReceiptIn
from kiosk_app.outbox import Outbox, OutboxFull, OutboxItem
from kiosk_app.uplink import Uplink
from tests.fault_proxy import FaultProxy, Mode

REPO = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------


def checkout(key: str | None = None, *, items: int = 1) -> CheckoutRequest:
    key = key or f"test-{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    return CheckoutRequest(
        idempotency_key=key,
        captured_at=now,
        receipt=ReceiptIn(
            number=f"R-{key[-12:]}",
            scanned_at=now,
            items=[
                LineItem(
                    sku=f"SKU-{n}",
                    name="Espresso beans",
                    category="coffee",
                    brand="Roastery",
                    quantity=Decimal(2),
                    unit_price=Decimal("12.50"),
                )
                for n in range(items)
            ],
        ),
    )


def answer(receipt_id: int, customer_id: int | None = None) -> CheckoutResponse:
    card = VipCard(
        customer_id=customer_id,
        status="unidentified" if customer_id is None else "returning",
        visit_count=0 if customer_id is None else 3,
        member=None,
        purchase_level="new",
        lifetime_spend=Decimal(0),
        preferences=Preferences(categories=[], brands=[]),
        last_visits=[],
        recommendations=[],
        demographics=None,
        match_distance=None,
    )
    return CheckoutResponse(receipt_id=receipt_id, card=card, companions=[])


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Handler = Callable[[httpx.Request], httpx.Response]


class Cloud:
    """A mock cloud: records the keys it was sent and answers by a replaceable rule."""

    def __init__(self, rule: Handler | None = None) -> None:
        self.keys: list[str] = []
        self.rule = rule
        self.api_keys: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = json.loads(request.content)["idempotency_key"]
        self.keys.append(key)
        self.api_keys.add(request.headers.get("X-API-Key", ""))
        assert request.url.path == "/v1/checkouts"
        if self.rule is not None:
            return self.rule(request)
        return httpx.Response(200, json=answer(len(self.keys)).model_dump(mode="json"))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def ok(receipt_id: int = 1) -> httpx.Response:
    return httpx.Response(200, json=answer(receipt_id).model_dump(mode="json"))


def error(status: int, detail: str, fields: list[FieldError] | None = None) -> httpx.Response:
    body = ErrorBody(error="x", detail=detail, fields=fields or [])
    return httpx.Response(status, json=body.model_dump(mode="json"))


def drain(uplink: Uplink, clock: Clock | None = None, limit: int = 1000) -> None:
    """deliver_once until nothing is due (advancing a fake clock past each backoff)."""
    for _ in range(limit):
        if uplink.deliver_once():
            continue
        head = uplink.outbox.head()
        if head is None or clock is None:
            return
        clock.now = max(clock.now, head.next_attempt_at)
    raise AssertionError("the outbox did not drain")


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def head_attempts(box: Outbox) -> int:
    head = box.head()
    return 0 if head is None else head.attempts


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


# --- the outbox ------------------------------------------------------------------------


def test_put_is_durable_idempotent_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "kiosk" / "outbox.db"
    first, second = checkout(), checkout()
    with Outbox(path) as box:
        a = box.put(first)
        assert box.put(first) == a  # the same key again: the same item, nothing new
        b = box.put(second)
        assert b > a
        assert box.stats().pending == 2
        assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2
    with Outbox(path) as box:  # reopened: still there, in order, byte for byte
        head = box.next_due()
        assert head is not None and head.id == a and head.state == "pending"
        assert head.request() == first
        assert head.receipt_number == first.receipt.number
        assert box.put(first) == a


def test_outbox_full_refuses_without_touching_what_is_stored(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_items=3) as box:
        requests = [checkout() for _ in range(3)]
        ids = [box.put(r) for r in requests]
        with pytest.raises(OutboxFull, match=r"3 checkouts waiting.*limit 3"):
            box.put(checkout())
        assert box.put(requests[1]) == ids[1]  # a known key is no new item, even when full
        assert box.stats().pending == 3
        # dead items count too: they are kept until staff act
        head = box.next_due()
        assert head is not None
        box.mark_dead(head.id, 422, "bad")
        with pytest.raises(OutboxFull):
            box.put(checkout())
        # delivered ones do not
        second = box.next_due()
        assert second is not None
        box.mark_delivered(second.id, answer(1), 5.0)
        box.put(checkout())
    one = len(checkout().model_dump_json())
    with Outbox(tmp_path / "b.db", max_bytes=one * 2 + one // 2) as box:
        box.put(checkout())
        box.put(checkout())
        with pytest.raises(OutboxFull, match=r"2 checkouts waiting use \d+ bytes"):
            box.put(checkout())
        assert box.stats().pending == 2


def test_next_due_is_strictly_in_order(outbox: Outbox) -> None:
    clock = time.time()
    first = outbox.put(checkout())
    second = outbox.put(checkout())
    outbox.mark_retry(first, "503", next_attempt_at=clock + 10)
    assert outbox.next_due(clock) is None  # the second waits behind the first
    due = outbox.next_due(clock + 10)
    assert due is not None and due.id == first and due.attempts == 1
    outbox.mark_dead(first, 422, "invalid")
    due = outbox.next_due(clock + 10)
    assert due is not None and due.id == second  # a dead item holds nothing


def test_delivered_items_drop_their_body_and_are_pruned(tmp_path: Path) -> None:
    clock = Clock()
    with Outbox(tmp_path / "o.db", keep_delivered=5, keep_delivered_s=3600, clock=clock) as box:
        ids = [box.put(checkout(items=20)) for _ in range(30)]
        for n, item_id in enumerate(ids):
            box.mark_delivered(item_id, answer(n), 12.5)
        delivered = box.get(ids[-1])
        assert delivered is not None and delivered.body is None
        assert delivered.response == answer(len(ids) - 1)
        assert box.prune() == 25
        assert box.stats().delivered == 5
        assert box.get(ids[0]) is None and box.get(ids[-1]) is not None
        clock.now += 7200  # and by age
        assert box.prune() == 5
        stats = box.stats()
        assert (stats.pending, stats.dead, stats.delivered) == (0, 0, 0)
        assert stats.bytes_on_disk > 0
        assert stats.oldest_pending_age_s is None
        box.put(checkout())
        clock.now += 42
        assert box.stats().oldest_pending_age_s == pytest.approx(42)


def test_requeue_dead_sends_it_again(outbox: Outbox) -> None:
    item_id = outbox.put(checkout())
    outbox.mark_dead(item_id, 409, "conflict")
    (dead,) = outbox.dead_items()
    assert (dead.id, dead.last_status, dead.last_error) == (item_id, 409, "conflict")
    assert dead.body is not None  # kept for staff
    assert outbox.requeue_dead(item_id)
    assert not outbox.requeue_dead(item_id)
    due = outbox.next_due()
    assert due is not None and due.id == item_id and due.attempts == 0


# --- the uplink on a mock transport ----------------------------------------------------


def test_delivers_in_order_and_a_retry_holds_the_queue(outbox: Outbox) -> None:
    clock = Clock()
    failures = iter([503, 500, 429])

    def rule(request: httpx.Request) -> httpx.Response:
        status = next(failures, 200)
        return ok() if status == 200 else error(status, "busy")

    cloud = Cloud(rule)
    cards: list[tuple[OutboxItem, CheckoutResponse]] = []
    uplink = Uplink(
        outbox,
        "http://cloud.test/",
        "ssk_test",
        transport=cloud.transport(),
        clock=clock,
        on_card=lambda item, response: cards.append((item, response)),
    )
    requests = [checkout() for _ in range(5)]
    for request in requests:
        outbox.put(request)
    drain(uplink, clock)
    first_key = requests[0].idempotency_key
    assert cloud.keys[:4] == [first_key] * 4  # nothing behind it went while it failed
    assert cloud.keys[4:] == [r.idempotency_key for r in requests[1:]]
    assert cloud.api_keys == {"ssk_test"}
    assert [item.idempotency_key for item, _ in cards] == [r.idempotency_key for r in requests]
    stats = outbox.stats()
    assert (stats.pending, stats.delivered, stats.dead) == (0, 5, 0)


def test_one_checkout_id_follows_a_checkout_through_retries_and_logs(outbox: Outbox) -> None:
    clock = Clock()
    failures = iter([503, 503])
    sent: list[tuple[str, str]] = []

    def rule(request: httpx.Request) -> httpx.Response:
        key = json.loads(request.content)["idempotency_key"]
        sent.append((key, request.headers.get("X-Request-ID", "")))
        status = next(failures, 200)
        return ok() if status == 200 else error(status, "busy")

    uplink = Uplink(
        outbox, "http://cloud.test/", "ssk_test", transport=Cloud(rule).transport(), clock=clock
    )
    first, second = checkout(), checkout()
    outbox.put(first)
    outbox.put(second)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        drain(uplink, clock)
    ids = {key: {rid for k, rid in sent if k == key} for key, _ in sent}
    assert [k for k, _ in sent] == [first.idempotency_key] * 3 + [second.idempotency_key]
    (first_id,) = ids[first.idempotency_key]  # every retry: the same id
    (second_id,) = ids[second.idempotency_key]
    assert first_id != second_id and first_id.startswith("ck-")
    assert first.receipt.number not in first_id  # the id shows no receipt
    delivered = {e["key"]: e.get("checkout_id") for e in logs if e["event"] == "checkout_delivered"}
    assert delivered == {first.idempotency_key: first_id, second.idempotency_key: second_id}
    by_item = {1: first_id, 2: second_id}  # the outbox numbers items in the order put
    about_items = [e for e in logs if "item" in e]
    assert {e["event"] for e in about_items} >= {"checkout_retry", "checkout_delivered", "vip_card"}
    assert all(e.get("checkout_id") == by_item[e["item"]] for e in about_items)


def test_backoff_doubles_up_to_the_maximum(outbox: Outbox) -> None:
    clock = Clock()
    uplink = Uplink(
        outbox,
        "http://cloud.test",
        "k",
        transport=Cloud(lambda _: error(503, "the database is unavailable")).transport(),
        backoff_initial_s=0.5,
        backoff_max_s=5.0,
        jitter=0.0,
        clock=clock,
    )
    item_id = outbox.put(checkout())
    waits = []
    for _ in range(7):
        assert uplink.deliver_once()
        item = outbox.get(item_id)
        assert item is not None
        waits.append(item.next_attempt_at - clock.now)
        assert not uplink.deliver_once()  # not due yet
        clock.now = item.next_attempt_at
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    item = outbox.get(item_id)
    assert item is not None and item.attempts == 7 and item.last_status == 503
    assert item.last_error == "x: the database is unavailable"


def test_backoff_jitter_is_small_and_retry_after_is_honoured(outbox: Outbox) -> None:
    import random

    uplink = Uplink(outbox, "http://c", "k", rng=random.Random(7), backoff_max_s=30.0)
    samples = [uplink.backoff_s(3) for _ in range(200)]
    assert all(1.8 <= s <= 2.2 for s in samples) and len(set(samples)) > 100
    assert uplink.backoff_s(10_000) <= 30.0  # no overflow after a long outage

    clock = Clock()
    busy = httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"})
    limited = Uplink(
        outbox, "http://c", "k", transport=Cloud(lambda _: busy).transport(), clock=clock
    )
    item_id = outbox.put(checkout())
    limited.deliver_once()
    item = outbox.get(item_id)
    assert item is not None and item.next_attempt_at == clock.now + 7
    assert item.last_error is not None and item.last_error.startswith("HTTP 429")


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_transport_errors_are_retried(outbox: Outbox, failure: httpx.HTTPError) -> None:
    clock = Clock()
    calls: list[int] = []

    def rule(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 2:
            raise failure
        return ok()

    uplink = Uplink(outbox, "http://c", "k", transport=Cloud(rule).transport(), clock=clock)
    item_id = outbox.put(checkout())
    assert uplink.deliver_once()
    item = outbox.get(item_id)
    assert item is not None and item.state == "pending"
    assert item.last_error is not None and type(failure).__name__ in item.last_error
    drain(uplink, clock)
    item = outbox.get(item_id)
    assert item is not None and item.state == "delivered" and item.attempts == 3


def test_a_4xx_is_dead_lettered_and_the_next_goes_on(outbox: Outbox) -> None:
    bad, good = checkout(), checkout()

    def rule(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["idempotency_key"] == bad.idempotency_key:
            fields = [FieldError(field="receipt.items", message="too many")]
            return error(422, "invalid fields: receipt.items", fields)
        return ok()

    cloud = Cloud(rule)
    uplink = Uplink(outbox, "http://c", "k", transport=cloud.transport())
    bad_id = outbox.put(bad)
    outbox.put(good)
    with structlog.testing.capture_logs() as logs:
        drain(uplink)
    assert cloud.keys == [bad.idempotency_key, good.idempotency_key]  # sent once each
    (dead,) = outbox.dead_items()
    assert dead.id == bad_id and dead.last_status == 422
    assert dead.last_error == "x: invalid fields: receipt.items (receipt.items: too many)"
    assert dead.request() == bad
    stats = outbox.stats()
    assert (stats.pending, stats.dead, stats.delivered) == (0, 1, 1)
    events = [entry["event"] for entry in logs]
    assert events.count("checkout_dead") == 1 and events.count("checkout_delivered") == 1
    # staff requeue it once the cause is fixed
    cloud.rule = None
    assert outbox.requeue_dead(bad_id)
    drain(uplink)
    assert outbox.stats().delivered == 2 and outbox.dead_items() == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_device_holds_the_queue_rather_than_killing_every_item(
    outbox: Outbox, status: int
) -> None:
    clock = Clock()
    uplink = Uplink(
        outbox,
        "http://c",
        "k",
        transport=Cloud(lambda _: error(status, "unknown API key")).transport(),
        clock=clock,
    )
    outbox.put(checkout())
    outbox.put(checkout())
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            drain(uplink)
            clock.now += 60
    stats = outbox.stats()
    assert (stats.pending, stats.dead) == (2, 0)
    assert {entry["event"] for entry in logs} == {"checkout_held"}
    # a caller that prefers dead-lettering them can say so
    strict = Uplink(
        outbox,
        "http://c",
        "k",
        transport=Cloud(lambda _: error(status, "no")).transport(),
        hold_statuses=(),
        clock=clock,
    )
    drain(strict)
    assert outbox.stats().dead == 2


def test_the_card_is_logged_and_handed_over_and_the_api_key_never_logged(
    outbox: Outbox,
) -> None:
    cloud = Cloud(lambda _: httpx.Response(201, json=answer(9, 77).model_dump(mode="json")))
    seen: list[CheckoutResponse] = []
    uplink = Uplink(
        outbox,
        "http://c",
        "ssk_secret_key",
        transport=cloud.transport(),
        on_card=lambda _, response: seen.append(response),
    )
    item_id = outbox.put(checkout())
    with structlog.testing.capture_logs() as logs:
        assert uplink.deliver_once()
    assert seen == [answer(9, 77)]
    (card,) = [entry for entry in logs if entry["event"] == "vip_card"]
    assert (card["customer_id"], card["status"], card["receipt_id"]) == (77, "returning", 9)
    (done,) = [entry for entry in logs if entry["event"] == "checkout_delivered"]
    assert done["depth"] == 0 and done["item"] == item_id and done["latency_ms"] >= 0
    assert "ssk_secret_key" not in repr(logs)


def test_an_unreadable_2xx_is_delivered_not_resent_forever(outbox: Outbox) -> None:
    cloud = Cloud(lambda _: httpx.Response(200, text="<html>ok</html>"))
    uplink = Uplink(outbox, "http://c", "k", transport=cloud.transport(), on_card=None)
    item_id = outbox.put(checkout())
    drain(uplink)
    item = outbox.get(item_id)
    assert item is not None and item.state == "delivered" and item.response is None
    assert len(cloud.keys) == 1


# --- the uplink thread -----------------------------------------------------------------


def test_wake_delivers_at_once_and_stop_during_backoff_is_prompt(outbox: Outbox) -> None:
    cloud = Cloud()
    uplink = Uplink(outbox, "http://c", "k", transport=cloud.transport(), poll_interval_s=30)
    uplink.start()
    try:
        time.sleep(0.1)  # the thread is now waiting out its 30 s poll
        outbox.put(checkout())
        uplink.wake()
        wait_for(lambda: outbox.stats().delivered == 1, 2.0, "delivery after wake()")
        cloud.rule = lambda _: error(503, "down")
        outbox.put(checkout())
        uplink.backoff_initial_s = uplink.backoff_max_s = 30.0
        uplink.wake()
        wait_for(lambda: len(cloud.keys) == 2, 2.0, "the failing attempt")
    finally:
        started = time.monotonic()
        assert uplink.stop()
        assert time.monotonic() - started < 1.0
    assert not uplink.running


def test_the_thread_survives_unexpected_errors(outbox: Outbox) -> None:
    broken = threading.Event()
    broken.set()

    def rule(request: httpx.Request) -> httpx.Response:
        if broken.is_set():
            raise RuntimeError("a bug in a transport")
        return ok()

    def bad_screen(item: OutboxItem, response: CheckoutResponse) -> None:
        raise ValueError("the screen is gone")

    uplink = Uplink(
        outbox,
        "http://c",
        "k",
        transport=Cloud(rule).transport(),
        backoff_initial_s=0.02,
        backoff_max_s=0.05,
        on_card=bad_screen,
    )
    with structlog.testing.capture_logs() as logs:
        uplink.start()
        try:
            outbox.put(checkout())
            uplink.wake()
            wait_for(lambda: sum(e["event"] == "uplink_error" for e in logs) >= 2, 2.0, "errors")
            assert uplink.running
            broken.clear()
            wait_for(lambda: outbox.stats().delivered == 1, 2.0, "delivery")
            outbox.put(checkout())
            uplink.wake()
            wait_for(lambda: outbox.stats().delivered == 2, 2.0, "delivery after on_card")
            assert uplink.running
        finally:
            assert uplink.stop()
    assert sum(e["event"] == "on_card_failed" for e in logs) == 2


# --- against the real cloud API process ------------------------------------------------


@dataclass(frozen=True)
class CloudDb:
    url: str
    index_dir: str
    api_key: str
    device_id: int


@pytest.fixture
def cloud_db(tmp_path: Path) -> CloudDb:
    url = f"sqlite:///{tmp_path}/cloud.db"
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            admin.create_region(session, "North")
            admin.create_store(session, "North", "N001", "North One")
            device, api_key = admin.create_device(session, "N001", "till", "till 1")
            device_id = device.id
    finally:
        engine.dispose()
    return CloudDb(url, str(tmp_path / "index"), api_key, device_id)


CLOUD_ENV = {"STORESIGHT_CLOUD_ESTIMATE_DEMOGRAPHICS": "false", "STORESIGHT_LOG_LEVEL": "WARNING"}


def assert_in_cloud_exactly_once(db: CloudDb, requests: list[CheckoutRequest]) -> None:
    engine = make_engine(db.url)
    try:
        with session_factory(engine)() as session:
            keys = session.scalars(
                select(Receipt.idempotency_key).where(Receipt.device_id == db.device_id)
            ).all()
    finally:
        engine.dispose()
    assert len(keys) == len(requests)
    assert sorted(keys) == sorted(r.idempotency_key for r in requests)


def assert_outbox_delivered(path: Path, count: int) -> None:
    with Outbox(path) as box:
        stats = box.stats()
    assert (stats.pending, stats.dead, stats.delivered) == (0, 0, count)


@pytest.mark.slow
def test_cloud_down_at_first_then_everything_is_delivered(
    cloud_db: CloudDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = cloud_server.free_port()
    monkeypatch.setattr(cloud_server, "free_port", lambda: port)  # the server comes up here
    path = tmp_path / "outbox.db"
    requests = [checkout() for _ in range(10)]
    with Outbox(path) as box:
        uplink = Uplink(
            box,
            f"http://127.0.0.1:{port}",
            cloud_db.api_key,
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
        )
        uplink.start()
        try:
            for request in requests:
                box.put(request)
                uplink.wake()
            wait_for(lambda: head_attempts(box) >= 3, 5, "refused connections")
            first = box.head()
            assert first is not None and "ConnectError" in (first.last_error or "")
            assert box.stats().delivered == 0
            with cloud_server.serve_process(cloud_db.url, cloud_db.index_dir, **CLOUD_ENV) as url:
                assert url.endswith(f":{port}")
                wait_for(lambda: box.stats().pending == 0, 30, "the outbox to drain")
        finally:
            assert uplink.stop()
    assert_in_cloud_exactly_once(cloud_db, requests)
    assert_outbox_delivered(path, len(requests))


@pytest.mark.slow
def test_500s_dropped_connections_and_a_slow_cloud_then_everything_is_delivered(
    cloud_db: CloudDb, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    requests = [checkout() for _ in range(10)]
    timeout = httpx.Timeout(connect=1.0, read=1.0, write=1.0, pool=1.0)
    with (
        cloud_server.serve_process(cloud_db.url, cloud_db.index_dir, **CLOUD_ENV) as url,
        FaultProxy(url, mode=Mode.ERROR) as proxy,
        Outbox(path) as box,
    ):
        uplink = Uplink(
            box,
            proxy.url,
            cloud_db.api_key,
            timeout=timeout,
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
        )
        uplink.start()
        try:
            for request in requests:
                box.put(request)
                uplink.wake()
            wait_for(lambda: proxy.counts[Mode.ERROR] >= 4, 10, "500s")
            proxy.set_mode(Mode.DROP)
            wait_for(lambda: proxy.counts[Mode.DROP] >= 3, 10, "dropped connections")
            # longer than the read timeout: the client gives up, the proxy forwards anyway,
            # so the cloud stores checkouts whose answers the kiosk never sees
            proxy.set_mode(Mode.SLOW, delay_s=1.6)
            wait_for(lambda: proxy.counts[Mode.SLOW] >= 3, 10, "timeouts")
            assert box.stats().delivered == 0
            head = box.head()
            assert head is not None and "ReadTimeout" in (head.last_error or "")
            proxy.set_mode(Mode.PASS)
            wait_for(lambda: box.stats().pending == 0, 30, "the outbox to drain")
            wait_for(lambda: proxy.counts["in_flight"] == 0, 5, "the slow forwards to end")
        finally:
            assert uplink.stop()
        assert proxy.counts["forwarded"] > len(requests)  # some checkouts reached it twice
    assert_in_cloud_exactly_once(cloud_db, requests)
    assert_outbox_delivered(path, len(requests))


CHILD = """
import sys, time
from pathlib import Path
from storesight_common.logs import configure_logging
from kiosk_app.outbox import Outbox
from kiosk_app.uplink import Uplink

configure_logging(json=True)
outbox = Outbox(Path(sys.argv[1]))
uplink = Uplink(outbox, sys.argv[2], sys.argv[3], backoff_initial_s=0.05, backoff_max_s=0.3)
uplink.start()
while outbox.depth():
    time.sleep(0.05)
uplink.stop()
print("drained", flush=True)
"""


def run_kiosk(path: Path, url: str, api_key: str, log: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), url, api_key],
            cwd=REPO,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
def test_kiosk_killed_mid_send_loses_and_duplicates_nothing(
    cloud_db: CloudDb, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    log = tmp_path / "kiosk.log"
    requests = [checkout() for _ in range(10)]
    with Outbox(path) as box:
        for request in requests:
            box.put(request)
    with (
        cloud_server.serve_process(cloud_db.url, cloud_db.index_dir, **CLOUD_ENV) as url,
        FaultProxy(url, mode=Mode.SLOW_AFTER, delay_s=0.3) as proxy,
    ):
        kiosk = run_kiosk(path, proxy.url, cloud_db.api_key, log)
        try:
            # the cloud has committed a checkout whose answer the kiosk is waiting for
            wait_for(
                lambda: proxy.counts["handled"] >= 3 and proxy.counts["held"] >= 1,
                20,
                f"requests in flight (kiosk log: {log})",
            )
            kiosk.send_signal(signal.SIGKILL)
        finally:
            kiosk.kill()
            kiosk.wait(10)
        assert kiosk.returncode == -signal.SIGKILL
        with Outbox(path) as box:
            stats = box.stats()
        assert 0 < stats.delivered < len(requests) and stats.pending > 0
        assert stats.pending + stats.delivered == len(requests)
        # the one in flight is in the cloud, but still pending here: it will be sent again
        wait_for(lambda: proxy.counts["in_flight"] == 0, 5, "the held answer to end")
        assert proxy.counts["forwarded"] > stats.delivered

        restarted = run_kiosk(path, proxy.url, cloud_db.api_key, log)
        try:
            assert restarted.wait(30) == 0, log.read_text()
        finally:
            if restarted.poll() is None:
                restarted.kill()
                restarted.wait(10)
        assert proxy.counts["forwarded"] > len(requests)  # the one in flight went twice
    assert "drained" in log.read_text()
    assert_in_cloud_exactly_once(cloud_db, requests)
    assert_outbox_delivered(path, len(requests))
