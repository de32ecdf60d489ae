"""A cloud cluster on one machine (issue 16): Debian's HAProxy with deploy/haproxy.cfg in front of
three `storesight-cloud serve` processes, each with its own index directory as separate machines
would have, and one PostgreSQL database.

For a minute, 20 tills ring up checkouts with real LFW descriptors and face crops into the
kiosk's own outbox, whose uplink delivers them through the proxy; members walk in at the
entrance one after another, and a staff screen follows the store's VIP alerts through the proxy
with the kiosk's AlertStream. Meanwhile the process serving the staff screen's stream is
SIGKILLed and started again, and later the one serving it then is SIGTERMed while requests are
in flight, and started again. Then:

- every checkout put into an outbox is stored exactly once (receipts counted by idempotency
  key in the database), none missing once the outboxes have drained, none dead;
- a customer enrolled through one process (its own port) is recognised through each of the
  others within 1 s (sync interval 0.25 s): a sighting sent more than 1 s after the enrolment
  was answered must recognise them (how long the answer took is not held against it);
- the staff screen receives each VIP alert exactly once, across the kill;
- the SIGTERMed process finishes the requests it had in flight, no client sees an error while
  it drains, its alert stream ends at once (not cut by the grace period), and it exits.

`make test-cluster` runs it (it installs haproxy); the default run leaves it out (`cluster`
marker). It prints the run's figures: checkouts/s through the proxy, latency, the recognition
visibility delay, alert counts.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from bench.cloud_load import Face, People, checkout_body, load_faces
from cloud_api import admin
from cloud_api.db.migrate import upgrade
from cloud_api.db.models import AlertEvent, Receipt
from cloud_api.db.session import make_engine, session_factory, transaction
from contract import CheckoutRequest, VipArrival
from demo.run import CATALOGUE, receipt_body
from kiosk_app.alerts import AlertStream
from kiosk_app.outbox import Outbox
from kiosk_app.uplink import Uplink
from tests.cloud_fixtures import skip_unless_postgres, temporary_postgres_database
from tests.cloud_server import free_port
from tests.cluster import GRACE_EXCEEDED, Attempt, Node, Proxy, Traffic, haproxy_binary
from tests.face_samples import FaceSample, face_sample

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NODES = ("api1", "api2", "api3")  # as deploy/haproxy.cfg names them
TILLS = 20
RUN_S = 60.0
QUEUED_PER_TILL = 2  # a till rings up the next checkout while at most this many wait
LOAD_PEOPLE = 40  # distinct faces at the tills (bench/cloud_load.py's)
MEMBERS = 12
ARRIVAL_EVERY_S = 4.0
SYNC_INTERVAL_S = 0.25
VISIBILITY_BOUND_S = 1.0
GRACE_S = 30
FIRST_PROBE_AT_S = 6.0
KILL_AT_S = 12.0
TERM_AT_S = 30.0
SECOND_PROBE_AT_S = 44.0
DRAIN_TIMEOUT_S = 90.0


# --- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    id: int
    tills: list[tuple[int, str]]  # (device id, API key) of the 20 load tills
    staff_key: str  # a till the staff screen uses
    desk_key: str  # the till where members and probes are enrolled
    door_key: str  # the entrance PC


@dataclass(frozen=True)
class Member:
    """A customer with a VIP number, and the face the entrance camera sees."""

    customer_id: int
    vip_number: str
    samples: list[FaceSample]


def create_store(url: str) -> Store:
    with transaction(session_factory(make_engine(url))) as session:
        admin.create_region(session, "Cluster")
        store = admin.create_store(session, "Cluster", "CL-1", "Cluster store")
        tills = []
        for n in range(1, TILLS + 1):
            device, key = admin.create_device(session, "CL-1", "till", f"till {n}")
            tills.append((device.id, key))
        staff = admin.create_device(session, "CL-1", "till", "staff screen")[1]
        desk = admin.create_device(session, "CL-1", "till", "member desk")[1]
        door = admin.create_device(session, "CL-1", "entrance", "door")[1]
        return Store(store.id, tills, staff, desk, door)


# --- faces -------------------------------------------------------------------------------------


def two_photo_people(lfw: Path, skip: int, count: int) -> list[list[FaceSample]]:
    """`count` people with two photos that show a face, after the first `skip` people (the
    tills' faces are among the first ones)."""
    chosen: list[list[FaceSample]] = []
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[skip:]:
        photos = sorted(person.glob("*.jpg"))[:2]
        if len(photos) < 2:
            continue
        try:
            chosen.append([face_sample(photo) for photo in photos])
        except AssertionError:  # no face found in one of them
            continue
        if len(chosen) == count:
            return chosen
    raise AssertionError(f"only {len(chosen)} people with two usable photos under {lfw}")


def embeddings(samples: list[FaceSample]) -> list[dict[str, Any]]:
    return [s.embedding.model_dump(mode="json") for s in samples]


def sighting(samples: list[FaceSample]) -> dict[str, Any]:
    return {"captured_at": datetime.now(UTC).isoformat(), "embeddings": embeddings(samples)}


def enrol(client: httpx.Client, samples: list[FaceSample]) -> int:
    """A checkout with this face at the member desk: the new customer's id."""
    key = uuid.uuid4().hex
    answer = client.post(
        "/v1/checkouts",
        json={
            "idempotency_key": key,
            "captured_at": datetime.now(UTC).isoformat(),
            "receipt": receipt_body(f"DESK-{key[:10]}", [(CATALOGUE[0], 1)]),
            "embeddings": embeddings(samples),
        },
    )
    assert answer.status_code == 200, answer.text
    customer: int | None = answer.json()["card"]["customer_id"]
    assert customer is not None
    return customer


def make_member(client: httpx.Client, samples: list[FaceSample]) -> Member:
    customer = enrol(client, samples)
    vip = f"VIP-{customer}"
    bound = client.put(
        f"/v1/customers/{customer}/membership",
        json={"vip_number": vip, "name": f"Member {customer}", "level": "gold", "consent": True},
    )
    assert bound.status_code == 200, bound.text
    return Member(customer, vip, samples)


# --- the clients -------------------------------------------------------------------------------


class Till:
    """A till: checkouts rung up into the kiosk's outbox, delivered by its uplink via the proxy."""

    def __init__(
        self, number: int, key: str, cloud: str, directory: Path, traffic: Traffic, people: People
    ) -> None:
        self.number = number
        self.outbox = Outbox(directory / f"till-{number:02d}" / "outbox.sqlite3")
        self._delivered = threading.Event()
        self.uplink = Uplink(
            self.outbox,
            cloud,
            key,
            transport=traffic.transport(f"till {number}"),
            backoff_initial_s=0.2,
            backoff_max_s=2.0,
            poll_interval_s=0.5,
            on_card=lambda _item, _answer: self._delivered.set(),
        )
        self.keys: list[str] = []
        self.error: BaseException | None = None
        self._people = people
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ring_up, name=f"till-{number}", daemon=True)

    def start(self) -> None:
        self.uplink.start()
        self._thread.start()

    def stop_ringing(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _ring_up(self) -> None:
        rng = np.random.default_rng(self.number)
        n = 0
        try:
            while not self._stop.is_set():
                if self.outbox.depth() >= QUEUED_PER_TILL:
                    self._delivered.wait(0.5)
                    self._delivered.clear()
                    continue
                n += 1
                face: Face = self._people.faces[self._people.next()]
                body = checkout_body(face, rng, self.number, n)
                request = CheckoutRequest.model_validate_json(body)
                self.outbox.put(request)
                self.keys.append(request.idempotency_key)
                self.uplink.wake()
        except BaseException as error:  # the test fails on it
            self.error = error


class Door:
    """The entrance PC: members walk in one after another; each sighting through the proxy is
    sent again after a failure, as the kiosk's entrance mode does."""

    def __init__(self, cloud: str, key: str, traffic: Traffic) -> None:
        self._client = httpx.Client(
            base_url=cloud,
            headers={"X-API-Key": key},
            transport=traffic.transport("entrance"),
            timeout=30,
        )
        self.arrived: list[Member] = []
        self.problems: list[str] = []

    def walk_in(self, members: list[Member], every_s: float, stop: threading.Event) -> None:
        try:
            for member in members:
                if stop.wait(every_s):
                    return
                self._arrive(member)
        except BaseException as error:  # the test fails on it
            self.problems.append(f"{type(error).__name__}: {error}")
        finally:
            self._client.close()

    def _arrive(self, member: Member) -> None:
        for _ in range(60):
            try:
                answer = self._client.post("/v1/sightings", json=sighting(member.samples))
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if answer.status_code >= 500:
                time.sleep(0.5)
                continue
            body = answer.json()
            if answer.status_code != 200 or not body.get("is_vip"):
                self.problems.append(f"member {member.customer_id}: {answer.status_code} {body}")
            elif body["customer_id"] != member.customer_id:
                self.problems.append(f"member {member.customer_id} seen as {body['customer_id']}")
            else:
                self.arrived.append(member)
            return
        self.problems.append(f"member {member.customer_id}: no answer after 60 attempts")


class StaffScreen:
    """What the staff window's AlertStream hands over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[VipArrival] = []

    def arrival(self, arrival: VipArrival) -> None:
        with self._lock:
            self._arrivals.append(arrival)

    def arrivals(self) -> list[VipArrival]:
        with self._lock:
            return list(self._arrivals)


# --- recognition visibility --------------------------------------------------------------------


@dataclass(frozen=True)
class Poll:
    sent_s: float  # after the enrolment's answer
    answered_s: float
    recognised: bool


@dataclass(frozen=True)
class Visibility:
    enrolled_at: str
    asked: str
    polls: list[Poll]

    @property
    def late(self) -> list[Poll]:
        """Sightings sent after the bound that did not recognise the customer."""
        return [p for p in self.polls if not p.recognised and p.sent_s > VISIBILITY_BOUND_S]

    @property
    def recognised(self) -> bool:
        return bool(self.polls) and self.polls[-1].recognised

    def describe(self) -> str:
        if not self.polls:
            return f"{self.enrolled_at} -> {self.asked}: not asked"
        last = self.polls[-1]
        return (
            f"{self.enrolled_at} -> {self.asked}: {len(self.polls) - 1} sighting(s) did not "
            f"recognise them, the one sent {last.sent_s * 1000:.0f} ms after the enrolment's "
            f"answer did (answered after {last.answered_s * 1000:.0f} ms)"
        )


def visibility(
    enrol_at: Node, others: list[Node], samples: list[FaceSample], store: Store
) -> list[Visibility]:
    """Enrol a new customer through `enrol_at`'s own port, then ask each of `others` (their
    own ports, all at once, from clients made beforehand) with entrance sightings until it
    recognises them, or a sighting sent after the bound does not."""
    enrolled = threading.Event()
    customer: list[tuple[int, float]] = []  # (id, when enrolled)
    body = sighting(samples)

    def ask(node: Node) -> Visibility:
        polls: list[Poll] = []
        with httpx.Client(
            base_url=node.url, headers={"X-API-Key": store.door_key}, timeout=30
        ) as door:
            enrolled.wait()
            assert customer, "the probe was not enrolled"
            customer_id, at = customer[0]
            while True:
                sent = time.monotonic() - at
                answer = door.post("/v1/sightings", json=body)
                assert answer.status_code == 200, answer.text
                recognised = answer.json()["customer_id"] == customer_id
                polls.append(Poll(sent, time.monotonic() - at, recognised))
                if recognised or sent > VISIBILITY_BOUND_S:
                    return Visibility(enrol_at.name, node.name, polls)
                time.sleep(0.02)

    with ThreadPoolExecutor(len(others)) as pool:
        asked = [pool.submit(ask, node) for node in others]
        try:
            with httpx.Client(base_url=enrol_at.url, headers={"X-API-Key": store.desk_key}) as desk:
                time.sleep(0.2)  # the askers' clients are made
                customer.append((enrol(desk, samples), time.monotonic()))
        finally:
            enrolled.set()
        return [future.result() for future in asked]


# --- the cluster -------------------------------------------------------------------------------


@dataclass
class Stopped:
    """A process stopped during the run: when (time.monotonic(), and the wall clock the
    proxy logs by), and when it had exited."""

    node: str
    at: float
    wall: float
    exited_at: float = float("nan")
    exit_code: int | None = None


@dataclass
class Cluster:
    database_url: str
    store: Store
    nodes: dict[str, Node]
    proxy: Proxy
    directory: Path
    traffic: Traffic = field(default_factory=Traffic)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    skip_unless_postgres()
    binary = haproxy_binary()
    if binary is None:
        pytest.fail("Debian's haproxy is not installed: `make test-cluster` installs it")
    with temporary_postgres_database() as url, ExitStack() as running:
        upgrade(url)
        store = create_store(url)
        env = {
            "STORESIGHT_CLOUD_DATABASE_URL": url,
            "STORESIGHT_CLOUD_AUTO_MIGRATE": "false",
            "STORESIGHT_CLOUD_SYNC_INTERVAL_S": str(SYNC_INTERVAL_S),
            "STORESIGHT_CLOUD_SHUTDOWN_GRACE_S": str(GRACE_S),
        }
        nodes = {name: Node(name, free_port(), tmp_path / name, env) for name in NODES}
        for node in nodes.values():
            running.callback(node.stop)
            node.start()
        for node in nodes.values():
            node.wait_ready()
        proxy = Proxy(binary, free_port(), list(nodes.values()), tmp_path)
        running.callback(proxy.stop)
        proxy.start()
        proxy.wait_serving(set(NODES))
        yield Cluster(url, store, nodes, proxy, tmp_path)


def _at(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _percentile(values: list[float], q: int) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --- the test ----------------------------------------------------------------------------------


def test_the_cluster_loses_nothing_when_a_process_is_killed_or_stopped(
    cluster: Cluster, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, nodes, traffic = cluster.store, cluster.nodes, cluster.traffic
    lfw = data_dir / "faces" / "lfw"
    people = People(load_faces(LOAD_PEOPLE), returning=0.6, rng=random.Random(0))
    others = two_photo_people(lfw, skip=LOAD_PEOPLE + 200, count=MEMBERS + 2)
    probes, member_faces = others[:2], others[2:]
    with httpx.Client(base_url=cluster.proxy.url, headers={"X-API-Key": store.desk_key}) as desk:
        members = [make_member(desk, samples) for samples in member_faces]

    tills = [
        Till(n, key, cluster.proxy.url, cluster.directory, traffic, people)
        for n, (_, key) in enumerate(store.tills, 1)
    ]
    screen = StaffScreen()
    stream = AlertStream(
        cluster.proxy.url,
        store.staff_key,
        store.id,
        screen.arrival,
        transport=traffic.transport("staff"),
        backoff_initial_s=0.1,
        backoff_max_s=1.0,
        slow_retry_s=1.0,
    )
    door = Door(cluster.proxy.url, store.door_key, traffic)
    stop_door = threading.Event()
    door_thread = threading.Thread(
        target=door.walk_in, args=(members, ARRIVAL_EVERY_S, stop_door), daemon=True
    )

    with ExitStack() as running:
        stream.start()
        running.callback(stream.stop)
        deadline = time.monotonic() + 30
        while stream.state != "connected":
            assert time.monotonic() < deadline, f"the alert stream: {stream.state} {stream.detail}"
            time.sleep(0.05)
        for till in tills:
            running.callback(till.outbox.close)
            running.callback(till.uplink.stop)
            running.callback(till.stop_ringing)
            till.start()
        running.callback(stop_door.set)
        started = time.monotonic()
        door_thread.start()

        # a customer enrolled through api1 is recognised through api2 and api3
        _at(started + FIRST_PROBE_AT_S)
        first_probe = visibility(nodes["api1"], [nodes["api2"], nodes["api3"]], probes[0], store)

        # SIGKILL: the process serving the staff screen's stream, then started again
        _at(started + KILL_AT_S)
        killed = traffic.last_node("/alerts")
        assert killed in nodes, f"the staff screen's stream is on {killed!r}"
        victim = nodes[killed]
        kill = Stopped(killed, time.monotonic(), time.time())
        victim.kill()
        kill.exited_at = time.monotonic()
        victim.start()
        victim.wait_ready()
        back_at = time.monotonic()
        deadline = back_at + 30
        while not any(
            a.node == victim.name and a.started > back_at for a in traffic.attempts("till")
        ):
            assert time.monotonic() < deadline, f"the proxy sends nothing to {victim.name} again"
            time.sleep(0.1)

        # SIGTERM, requests in flight: the process serving the stream now, then started again
        _at(max(started + TERM_AT_S, time.monotonic() + 2))
        stopped_name = traffic.last_node("/alerts")
        assert stopped_name in nodes, f"the staff screen's stream is on {stopped_name!r}"
        stopped = nodes[stopped_name]
        log_before = len(stopped.log())
        term = Stopped(stopped.name, time.monotonic(), time.time())
        stopped.terminate()
        term.exit_code = stopped.wait_exit(GRACE_S + 30)
        term.exited_at = time.monotonic()
        shutdown_log = stopped.log()[log_before:]
        stopped.start()
        stopped.wait_ready()

        # a customer enrolled through the SIGKILLed process is recognised through the others
        _at(max(started + SECOND_PROBE_AT_S, time.monotonic()))
        second_probe = visibility(
            victim, [n for n in nodes.values() if n is not victim], probes[1], store
        )

        _at(started + RUN_S)
        for till in tills:
            till.stop_ringing()
        rang_for = time.monotonic() - started
        door_thread.join(timeout=60)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while any(till.outbox.depth() for till in tills):
            assert time.monotonic() < deadline, "the outboxes did not drain"
            time.sleep(0.2)
        drained_at = time.monotonic()
        dead = [item.last_error for till in tills for item in till.outbox.dead_items()]
        for till in tills:
            till.uplink.stop()
        deadline = time.monotonic() + 20
        while len(screen.arrivals()) < len(door.arrived):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        time.sleep(2.0)  # several polls of the stream: anything twice would show by now
        closing_at = time.monotonic()  # cutting the stream now is no failure of the cluster
        assert stream.stop(5)

    # --- the clients did their part
    assert [t.error for t in tills if t.error is not None] == []
    assert door.problems == []
    assert len(door.arrived) == MEMBERS

    # --- every checkout put into an outbox is stored once
    assert dead == [], "checkouts the cloud refused"
    put = [key for till in tills for key in till.keys]
    assert len(put) == len(set(put))
    engine = make_engine(cluster.database_url)
    try:
        with engine.connect() as connection:
            stored = dict(
                connection.execute(
                    select(Receipt.idempotency_key, func.count())
                    .where(Receipt.device_id.in_([device for device, _ in store.tills]))
                    .group_by(Receipt.idempotency_key)
                ).all()
            )
            alert_ids = list(
                connection.scalars(
                    select(AlertEvent.id).where(AlertEvent.store_id == store.id).order_by("id")
                )
            )
    finally:
        engine.dispose()
    assert {key: n for key, n in stored.items() if n != 1} == {}, "receipts stored twice"
    assert sorted(set(put) - set(stored)) == [], "checkouts never stored"
    assert sorted(set(stored) - set(put)) == [], "receipts nobody put"

    # --- recognition is visible on every other process within the bound
    for probe in first_probe + second_probe:
        assert probe.late == [] and probe.recognised, probe

    # --- each VIP alert reached the staff screen once, across the kill
    arrivals = screen.arrivals()
    ids = [a.event_id for a in arrivals]
    assert ids == sorted(set(ids)), "an alert arrived twice or out of order"
    assert ids == alert_ids
    assert sorted(a.customer_id for a in arrivals) == sorted(m.customer_id for m in members)
    for gone in (kill, term):  # the staff screen followed the alerts on another process
        assert any(
            a.status == 200 and a.node != gone.node and a.started > gone.at
            for a in traffic.attempts("staff")
            if a.path.endswith("/alerts")
        ), f"the staff screen did not resume elsewhere after {gone}"

    # --- SIGKILL: it had requests in flight, which the proxy or the outboxes sent again
    replayed = [r for r in cluster.proxy.replays() if r.accepted < kill.wall < r.ended]
    failed_at_kill = [a for a in traffic.attempts() if a.failed and a.overlaps(kill.at, back_at)]
    assert replayed or failed_at_kill, f"nothing was in flight on {kill.node} when it was killed"

    # --- SIGTERM: what was in flight finished, nobody saw an error, the stream ended at once
    assert term.exit_code in (0, -signal.SIGTERM), term
    assert GRACE_EXCEEDED not in shutdown_log, f"see {stopped.log_path}"
    finished = [
        a
        for a in traffic.attempts("till")
        if a.node == term.node and a.started < term.at < a.ended and a.status == 200
    ]
    assert finished, f"no checkout was in flight on {term.node} at SIGTERM"
    failed_while_draining = [
        a
        for a in traffic.attempts()
        if a.failed and a.overlaps(term.at, term.exited_at) and a.ended < closing_at
    ]
    assert failed_while_draining == []

    checkouts = [a for a in traffic.attempts("till") if a.status == 200 and a.error is None]
    latencies = [(a.ended - a.started) * 1000 for a in checkouts]
    failed = [a for a in traffic.attempts("till") if a.failed]
    lines = [
        "",
        f"cluster: HAProxy + {len(NODES)} serve processes + PostgreSQL; {TILLS} tills for "
        f"{rang_for:.0f} s (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
        f"  checkouts: {len(put)} put into the outboxes, {len(stored)} stored once each; "
        f"{len(stored) / rang_for:.1f}/s through the proxy; p50 {_percentile(latencies, 50):.0f}"
        f" ms, p95 {_percentile(latencies, 95):.0f} ms, p99 {_percentile(latencies, 99):.0f} ms;"
        f" the outboxes drained {drained_at - started - rang_for:.1f} s after the last one",
        f"  SIGKILL {kill.node}: {len(replayed)} requests in flight replayed on the others by "
        f"HAProxy; failed attempts the clients saw: {_by_client(failed_at_kill)} (tills, whole "
        f"run: {len(failed)}, absorbed by their outboxes); ready again after "
        f"{back_at - kill.at:.1f} s",
        f"  SIGTERM {term.node}: {len(finished)} checkouts in flight finished, exited after "
        f"{term.exited_at - term.at:.1f} s, its alert stream ended at once, 0 failed "
        "attempts while it drained",
        *(f"  recognition: {probe.describe()}" for probe in first_probe + second_probe),
        f"  VIP alerts: {len(alert_ids)} raised, {len(arrivals)} received by the staff "
        "screen, each once",
    ]
    with capsys.disabled():
        print("\n".join(lines))


def _by_client(attempts: list[Attempt]) -> str:
    """ "2 till, 1 staff": how many attempts each kind of client made."""
    kinds = Counter(a.client.split()[0] for a in attempts)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
