"""The staff app's API (`/v1/staff/*`) and the `store_staff` role, over real HTTP, on SQLite
and PostgreSQL.

The chain is tests/store_chain.py (stores A and B in region North, C in South) with two staff
members of A, one of B, and the chain's store managers, head office and admin. A member of A
comes in at A's entrance: A's staff (and A's manager) see the arrival's card, with the face
the entrance sent; B's staff and B's manager see nothing of it, head office and admins are
refused, and staff are refused every report. Greeting, the live stream (arrivals, greetings,
withdrawals; resuming; ending when the session is revoked), opt-out, deletion and retention
are each checked against what the staff see.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import select, update

from cloud_api import admin
from cloud_api.db.models import AlertEvent, Customer, UserSession
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.services.context import Services
from cloud_api.services.retention import purge_expired
from tests.cloud_fixtures import module_migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve
from tests.store_chain import PASSWORD, Chain, build_chain, login, settings_for, sighting_body

pytestmark = pytest.mark.slow

STAFF_A = "sam@example.com"
STAFF_A2 = "tess@example.com"
STAFF_B = "bea@example.com"
FREQUENT_VISITS = 3


def face_crop() -> str:
    """A 150x150 JPEG, as the entrance sends the aligned chip."""
    chip = np.full((150, 150, 3), 128, np.uint8)
    cv2.circle(chip, (75, 75), 50, (40, 90, 200), -1)
    ok, jpeg = cv2.imencode(".jpg", chip)
    assert ok
    return base64.b64encode(jpeg.tobytes()).decode()


@dataclass
class World:
    chain: Chain
    url: str
    tokens: dict[str, str]
    sessions: Any
    services: Services | None = None
    crop: str = field(default_factory=face_crop)

    def get(self, who: str, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.auth(who), timeout=60)

    def post(self, who: str, path: str) -> httpx.Response:
        return httpx.post(self.url + path, headers=self.auth(who), timeout=60)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def arrive(self, face: NDArray[np.float32], *, crop: bool = True) -> dict[str, Any]:
        body = sighting_body([face, face])
        if crop:
            body["face_crop"] = {"jpeg_base64": self.crop}
        answer = self.chain.request("POST", "/v1/sightings", self.chain.keys.entrance_a, body)
        assert answer.status_code == 200, answer.text
        seen: dict[str, Any] = answer.json()
        return seen

    def arrival_ids(self, who: str) -> list[int]:
        answer = self.get(who, "/v1/staff/arrivals")
        assert answer.status_code == 200, answer.text
        return [card["arrival_id"] for card in answer.json()["arrivals"]]

    def newest_arrival(self, customer_id: int) -> int:
        with self.sessions() as session:
            found = session.scalar(
                select(AlertEvent.id)
                .where(
                    AlertEvent.customer_id == customer_id,
                    AlertEvent.kind.in_(("vip_arrival", "frequent_arrival")),
                )
                .order_by(AlertEvent.id.desc())
                .limit(1)
            )
        assert found is not None, f"no arrival alert for customer {customer_id}"
        return int(found)


@pytest.fixture(scope="module")
def world(
    module_migrated_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    keys = build_chain(module_migrated_url, users=True)
    sessions = session_factory(make_engine(module_migrated_url))
    with transaction(sessions) as session:
        admin.create_user(session, STAFF_A, "Sam Staff", "store_staff", PASSWORD, "N001")
        admin.create_user(session, STAFF_A2, "Tess Till", "store_staff", PASSWORD, "N001")
        admin.create_user(session, STAFF_B, "Bea Other", "store_staff", PASSWORD, "N002")
    settings = settings_for(module_migrated_url, tmp_path_factory.mktemp("index")).model_copy(
        update={"frequent_visits": FREQUENT_VISITS}
    )
    with serve(settings) as server:
        chain = Chain(server.url, module_migrated_url, keys)
        tokens = {
            who: login(server.url, email)
            for who, email in (
                ("staff_a", STAFF_A),
                ("staff_a2", STAFF_A2),
                ("staff_b", STAFF_B),
                ("mgr_a", "a@example.com"),
                ("mgr_b", "b@example.com"),
                ("head", "head@example.com"),
                ("admin", "admin@example.com"),
            )
        }
        yield World(chain, server.url, tokens, sessions)


# ---- who sees what --------------------------------------------------------------------------


def test_staff_of_the_store_see_the_arrival_with_its_card_and_others_see_nothing(
    world: World,
) -> None:
    member, face = world.chain.member("STAFF-1")
    seen = world.arrive(face)
    assert seen["is_vip"] and seen["customer_id"] == member
    arrival = world.newest_arrival(member)

    answer = world.get("staff_a", "/v1/staff/arrivals")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    cards = {c["arrival_id"]: c for c in answer.json()["arrivals"]}
    card = cards[arrival]
    assert card["kind"] == "vip"
    assert card["customer_id"] == member
    assert card["member"] == {
        "vip_number": "STAFF-1",
        "name": "Member STAFF-1",
        "level": "standard",
    }
    assert card["face_jpeg_base64"] == world.crop
    assert card["visit_count"] >= 1
    assert card["preferences"]["categories"] == ["coffee"]
    assert card["preferences"]["brands"] == ["Roastery"]
    assert [p["name"] for p in card["last_purchases"]] == ["Espresso beans"]
    assert card["last_visits"] and card["last_visits"][0]["total"] == "10.00"
    assert card["greeted"] is None
    assert world.get("staff_a", f"/v1/staff/arrivals/{arrival}").json() == card
    # the store's manager sees it too
    assert arrival in world.arrival_ids("mgr_a")

    # another store's staff and manager: nothing of it
    for other in ("staff_b", "mgr_b"):
        assert arrival not in world.arrival_ids(other)
        assert world.get(other, f"/v1/staff/arrivals/{arrival}").status_code == 404
        assert world.post(other, f"/v1/staff/arrivals/{arrival}/greeted").status_code == 404
    # head office and admins have no staff app
    for refused in ("head", "admin"):
        for path in ("/v1/staff/me", "/v1/staff/arrivals", f"/v1/staff/arrivals/{arrival}"):
            assert world.get(refused, path).status_code == 403, (refused, path)


def test_staff_have_no_reports_and_no_device_endpoints(world: World) -> None:
    me = world.get("staff_a", "/v1/staff/me")
    assert me.status_code == 200, me.text
    assert me.json()["user"]["role"] == "store_staff"
    assert me.json()["store"]["code"] == "N001"
    for path in ("/v1/reports", "/v1/reports/traffic", "/v1/scope"):
        answer = world.get("staff_a", path)
        assert answer.status_code == 403, (path, answer.text)
        assert "store_staff" in answer.json()["detail"]
    # a session is not a device key
    assert world.get("staff_a", "/v1/customers/1").status_code == 401
    assert world.get("staff_a", f"/v1/stores/{world.chain.keys.store_a}/alerts").status_code == 401
    # and no session at all is no staff app
    assert httpx.get(world.url + "/v1/staff/arrivals", timeout=60).status_code == 401


def test_a_staff_sign_in_lasts_long_a_managers_a_working_day(world: World) -> None:
    def lasts(email: str) -> float:
        answer = httpx.post(
            world.url + "/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=60
        )
        assert answer.status_code == 200
        expires = datetime.fromisoformat(answer.json()["expires_at"])
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        return (expires - datetime.now(UTC)).total_seconds() / 3600

    assert 24 * 30 - 1 < lasts(STAFF_A2) <= 24 * 30
    assert 11 < lasts("a@example.com") <= 12


# ---- greeting ---------------------------------------------------------------------------------


def test_the_first_to_greet_wins_and_everyone_sees_who(world: World) -> None:
    member, face = world.chain.member("STAFF-2")
    world.arrive(face)
    arrival = world.newest_arrival(member)

    first = world.post("staff_a", f"/v1/staff/arrivals/{arrival}/greeted")
    assert first.status_code == 200, first.text
    assert first.json()["greeted"]["by_name"] == "Sam Staff"
    again = world.post("staff_a", f"/v1/staff/arrivals/{arrival}/greeted")
    assert again.status_code == 200 and again.json()["greeted"] == first.json()["greeted"]

    second = world.post("staff_a2", f"/v1/staff/arrivals/{arrival}/greeted")
    assert second.status_code == 409
    assert "Sam Staff greeted this customer" in second.json()["detail"]
    seen_by_colleague = world.get("mgr_a", f"/v1/staff/arrivals/{arrival}").json()
    assert seen_by_colleague["greeted"]["by_name"] == "Sam Staff"

    missing = world.post("staff_a", f"/v1/staff/arrivals/{arrival + 10_000_000}/greeted")
    assert missing.status_code == 404


def test_concurrent_greetings_have_one_winner(world: World) -> None:
    member, face = world.chain.member("STAFF-3")
    world.arrive(face)
    arrival = world.newest_arrival(member)
    statuses: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def press(who: str) -> None:
        barrier.wait()
        statuses[who] = world.post(who, f"/v1/staff/arrivals/{arrival}/greeted").status_code

    threads = [threading.Thread(target=press, args=(w,)) for w in ("staff_a", "staff_a2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses.values()) == [200, 409], statuses


# ---- the live stream --------------------------------------------------------------------------


class Stream:
    """A staff app's event stream, on a session of its own, read in a thread: (event, data)
    pairs as they come. `close` signs that session out, which ends the stream server-side."""

    def __init__(self, world: World, email: str, after: int | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ended = threading.Event()
        self.last_id: str | None = None
        self._url = world.url
        self._headers = {"Authorization": f"Bearer {login(world.url, email)}"}
        path = "/v1/staff/stream" + (f"?after={after}" if after is not None else "")
        self._thread = threading.Thread(target=self._read, args=(world.url + path,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        try:
            with httpx.stream("GET", url, headers=self._headers, timeout=30) as answer:
                assert answer.status_code == 200
                assert answer.headers["cache-control"] == "no-store"
                name, data = "", ""
                for line in answer.iter_lines():
                    if line.startswith("id: "):
                        self.last_id = line[4:]
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line == "" and name:
                        self.events.append((name, json.loads(data)))
                        name, data = "", ""
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def sign_out(self) -> None:
        httpx.post(self._url + "/v1/auth/logout", headers=self._headers, timeout=60)

    def close(self) -> None:
        self.sign_out()
        assert self.ended.wait(15), "the stream outlived its signed-out session"

    def wait_for(self, what: str, test: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, data in list(self.events):
                if name == what and test(data):
                    return data
            time.sleep(0.05)
        raise AssertionError(f"no {what} event within {timeout} s: {self.events}")


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    """Streams a test opens, hung up after it (an open stream holds the server's shutdown)."""
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def test_the_stream_brings_arrivals_greetings_and_withdrawals(
    world: World, streams: list[Stream]
) -> None:
    start = world.get("staff_a2", "/v1/staff/arrivals").json()["latest_event_id"]
    stream = Stream(world, STAFF_A2, after=start)
    other_store = Stream(world, STAFF_B, after=start)
    streams += [stream, other_store]
    member, face = world.chain.member("STAFF-4")
    world.arrive(face)
    arrival = world.newest_arrival(member)

    card = stream.wait_for("arrival", lambda d: d["arrival_id"] == arrival)
    assert card["member"]["name"] == "Member STAFF-4" and card["face_jpeg_base64"] == world.crop
    assert world.post("staff_a", f"/v1/staff/arrivals/{arrival}/greeted").status_code == 200
    greeted = stream.wait_for("greeted", lambda d: d["arrival_id"] == arrival)
    assert greeted["greeted"]["by_name"] == "Sam Staff"

    # the member withdraws their consent at the till: the card leaves every list at once
    opted = world.chain.request(
        "DELETE", f"/v1/customers/{member}/membership", world.chain.keys.till_a
    )
    assert opted.status_code == 200, opted.text
    assert opted.json()["status"] == "anonymous" and opted.json()["member"] is None
    gone = stream.wait_for("withdrawn", lambda d: arrival in d["arrival_ids"])
    assert gone == {"arrival_ids": [arrival]}
    assert arrival not in world.arrival_ids("staff_a")
    assert world.get("staff_a", f"/v1/staff/arrivals/{arrival}").status_code == 404
    # and is never announced again, not even as a frequent customer
    world.arrive(face)
    with world.sessions() as session:
        assert not session.scalars(
            select(AlertEvent.id).where(AlertEvent.customer_id == member)
        ).all()

    # another store's staff stream was handed nothing of it
    time.sleep(0.5)
    assert other_store.events == []


def test_the_stream_resumes_after_the_last_event_id(world: World) -> None:
    member, face = world.chain.member("STAFF-5")
    before = world.get("staff_a", "/v1/staff/arrivals").json()["latest_event_id"]
    world.arrive(face)
    arrival = world.newest_arrival(member)
    # a reconnect names the last event it saw: what came after is sent
    headers = world.auth("staff_a") | {"Last-Event-ID": str(before)}
    with httpx.stream(
        "GET", world.url + "/v1/staff/stream?after=999999999", headers=headers, timeout=30
    ) as answer:
        text = ""
        for chunk in answer.iter_text():
            text += chunk
            if f'"arrival_id":{arrival}' in text:
                break
    assert "event: arrival" in text


def test_the_stream_ends_when_the_session_is_revoked(world: World, streams: list[Stream]) -> None:
    stream = Stream(world, STAFF_B)
    signed_out = Stream(world, STAFF_B)
    streams.append(stream)
    time.sleep(0.5)
    assert not stream.ended.is_set() and not signed_out.ended.is_set()
    signed_out.sign_out()  # one device signs out: its stream ends, the other's lives on
    assert signed_out.ended.wait(15), "the stream outlived its signed-out session"
    assert not stream.ended.is_set()
    with transaction(world.sessions) as session:
        admin.revoke_sessions(session, STAFF_B)  # every device of the user, at once
    assert stream.ended.wait(15), "the stream outlived its revoked session"
    assert world.get("staff_b", "/v1/staff/me").status_code == 401
    world.tokens["staff_b"] = login(world.url, STAFF_B)


# ---- quiet when it should be --------------------------------------------------------------


def test_a_deleted_customer_leaves_every_list(world: World) -> None:
    member, face = world.chain.member("STAFF-6")
    world.arrive(face)
    arrival = world.newest_arrival(member)
    assert arrival in world.arrival_ids("staff_a")
    deleted = world.chain.request("DELETE", f"/v1/customers/{member}", world.chain.keys.till_a)
    assert deleted.status_code == 204
    assert arrival not in world.arrival_ids("staff_a")
    assert world.get("staff_a", f"/v1/staff/arrivals/{arrival}").status_code == 404


def test_a_frequent_customer_is_announced_without_photo_or_name(world: World) -> None:
    face = world.chain.unit()
    card = world.chain.checkout(world.chain.keys.till_a, [face, face])
    customer = card["customer_id"]
    with transaction(world.sessions) as session:
        session.execute(
            update(Customer).where(Customer.id == customer).values(visit_count=FREQUENT_VISITS)
        )
    world.arrive(face)  # the crop is sent, but a non-member's is never kept
    arrival = world.newest_arrival(customer)
    shown = world.get("staff_a", f"/v1/staff/arrivals/{arrival}").json()
    assert shown["kind"] == "frequent"
    assert shown["member"] is None and shown["face_jpeg_base64"] is None
    with world.sessions() as session:
        payload = session.scalar(select(AlertEvent.payload).where(AlertEvent.id == arrival))
    assert payload is not None and "face_jpeg_base64" not in payload

    # one visit fewer: not announced
    face2 = world.chain.unit()
    second = world.chain.checkout(world.chain.keys.till_a, [face2, face2])["customer_id"]
    world.arrive(face2)
    with world.sessions() as session:
        assert not session.scalars(
            select(AlertEvent.id).where(AlertEvent.customer_id == second)
        ).all()


def test_retention_removes_old_arrivals(world: World, tmp_path: Path) -> None:
    member, face = world.chain.member("STAFF-7")
    world.arrive(face)
    arrival = world.newest_arrival(member)
    with transaction(world.sessions) as session:
        session.execute(
            update(AlertEvent)
            .where(AlertEvent.id == arrival)
            .values(created_at=datetime.now(UTC) - timedelta(hours=13))
        )
    # past the list's hours: off the list, though still stored
    assert arrival not in world.arrival_ids("staff_a")
    assert world.get("staff_a", f"/v1/staff/arrivals/{arrival}").status_code == 404
    with transaction(world.sessions) as session:
        session.execute(
            update(AlertEvent)
            .where(AlertEvent.id == arrival)
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    from cloud_api.api.app import start_services

    settings = settings_for(world.chain.database_url, tmp_path / "index")
    services = start_services(settings)
    try:
        purge_expired(services)
    finally:
        services.recognizer.close()
    with world.sessions() as session:
        assert session.get(AlertEvent, arrival) is None


def test_signing_out_ends_the_session(world: World) -> None:
    token = login(world.url, STAFF_A)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(world.url + "/v1/staff/me", headers=headers, timeout=60).status_code == 200
    out = httpx.post(world.url + "/v1/auth/logout", headers=headers, timeout=60)
    assert out.status_code == 204
    assert httpx.get(world.url + "/v1/staff/me", headers=headers, timeout=60).status_code == 401
    with world.sessions() as session:
        assert session.scalars(select(UserSession.id)).all()  # the others' sessions live on


# ---- staff accounts, managed by the store's manager -------------------------------------------


def test_a_manager_opens_signs_out_and_closes_their_stores_staff_accounts(
    world: World, streams: list[Stream]
) -> None:
    store_a = world.chain.keys.store_a
    body = {"email": "new.hire@example.com", "name": "New Hire", "password": PASSWORD}

    def call(who: str, method: str, path: str, json: Any = None) -> httpx.Response:
        return httpx.request(
            method, world.url + path, json=json, headers=world.auth(who), timeout=60
        )

    for refused in ("mgr_b", "staff_a", "head"):
        assert call(refused, "POST", f"/v1/stores/{store_a}/staff", body).status_code == 403
    opened = call("mgr_a", "POST", f"/v1/stores/{store_a}/staff", body)
    assert opened.status_code == 201, opened.text
    hire = opened.json()
    assert hire["store_id"] == store_a and hire["disabled_at"] is None
    assert call("mgr_a", "POST", f"/v1/stores/{store_a}/staff", body).status_code == 409
    short = body | {"email": "x@example.com", "password": "short"}
    assert call("mgr_a", "POST", f"/v1/stores/{store_a}/staff", short).status_code == 422

    # the new account works at once, for store A only
    stream = Stream(world, "new.hire@example.com")
    streams.append(stream)
    world.tokens["hire"] = login(world.url, "new.hire@example.com")
    assert world.get("hire", "/v1/staff/me").json()["store"]["id"] == store_a
    listed = call("mgr_a", "GET", f"/v1/stores/{store_a}/staff").json()
    mine = {a["email"]: a for a in listed}
    assert mine["new.hire@example.com"]["signed_in_devices"] == 2
    assert STAFF_B not in mine  # B's staff are B's manager's
    assert call("mgr_b", "GET", f"/v1/stores/{store_a}/staff").status_code == 403

    # a lost phone: signed out everywhere, open streams included; the account stays
    ended = call("mgr_a", "DELETE", f"/v1/stores/{store_a}/staff/{hire['id']}/sessions")
    assert ended.status_code == 204
    assert stream.ended.wait(15), "the stream outlived the manager's sign-out"
    assert world.get("hire", "/v1/staff/me").status_code == 401
    world.tokens["hire"] = login(world.url, "new.hire@example.com")

    # another store's manager cannot touch it; closing it ends sign-in for good
    store_b = world.chain.keys.store_b
    assert call("mgr_b", "DELETE", f"/v1/stores/{store_b}/staff/{hire['id']}").status_code == 404
    assert call("mgr_a", "DELETE", f"/v1/stores/{store_a}/staff/{hire['id']}").status_code == 204
    assert world.get("hire", "/v1/staff/me").status_code == 401
    again = httpx.post(
        world.url + "/v1/auth/login",
        json={"email": "new.hire@example.com", "password": PASSWORD},
        timeout=60,
    )
    assert again.status_code == 401
    closed = {a["email"]: a for a in call("mgr_a", "GET", f"/v1/stores/{store_a}/staff").json()}
    assert closed["new.hire@example.com"]["disabled_at"] is not None


def test_the_list_costs_the_same_queries_for_two_arrivals_as_for_six(world: World) -> None:
    """Cards are read for the whole list at once (preferences, visits, purchases, currency:
    one query each), not once per card: the phones refetch it every 30 s."""
    from sqlalchemy import event

    from cloud_api.services import staff_arrivals

    engine = make_engine(world.chain.database_url)
    sessions = session_factory(engine)
    settings = settings_for(world.chain.database_url, Path("/nonexistent"))
    services = Services(settings=settings, sessions=sessions, recognizer=None, demographics=None)  # type: ignore[arg-type]
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def cost() -> tuple[int, int]:
        statements.clear()
        listed = staff_arrivals.todays_arrivals(services, world.chain.keys.store_a)
        return len(listed.arrivals), len(statements)

    for n in range(2):
        _, face = world.chain.member(f"COST-{n}")
        world.arrive(face)
    few, few_cost = cost()
    for n in range(2, 6):
        _, face = world.chain.member(f"COST-{n}")
        world.arrive(face)
    many, many_cost = cost()
    engine.dispose()
    assert many >= few + 4
    assert many_cost == few_cost, (few_cost, many_cost)


def test_a_stream_whose_alerts_cannot_be_read_ends_for_the_client_to_resume() -> None:
    """When rendering a batch fails (the database went away mid-stream), the stream ends
    before it, its SSE id still the last one sent: the client reconnects with that
    Last-Event-ID and is handed the batch again. (Hub and request are fakes: the boundary.)"""
    import asyncio
    import contextlib
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    from cloud_api.api.alert_stream import alert_stream
    from cloud_api.services.alerts import Alert

    alert = Alert(7, 1, "vip_arrival", 3, {}, datetime.now(UTC))

    class Follower:
        ending = None

        async def next(self, timeout: float) -> list[Alert]:
            return [alert]

    class Hub:
        @contextlib.contextmanager
        def follow(self, *args: Any, **kwargs: Any) -> Iterator[Follower]:
            yield Follower()

    async def is_disconnected() -> bool:
        return False

    request = SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(alert_hub=Hub())),
        is_disconnected=is_disconnected,
    )

    async def render(batch: list[Alert]) -> list[tuple[int, str, str]]:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    async def body() -> str:
        response = alert_stream(
            request,  # type: ignore[arg-type]
            store_id=1,
            after=5,
            kinds=frozenset({"vip_arrival"}),
            render=render,
            session_id=1,
        )
        text = ""
        async for chunk in response.body_iterator:
            text += chunk if isinstance(chunk, str) else bytes(chunk).decode()
        return text

    text = asyncio.run(asyncio.wait_for(body(), 10))
    assert "id: 5\n" in text and "id: 7" not in text and "event:" not in text
    assert text.endswith(": the server could not read these alerts; reconnect to resume\n\n")
