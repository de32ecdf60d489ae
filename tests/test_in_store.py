"""In-store mode end to end: a store server keeps faces and receipts, head office gets
aggregates only, and its reports show the in-store store as they show a cloud store.

Head office runs over real HTTP (SQLite and PostgreSQL) with a cloud store C001 and an
in-store store S001 of the same region; S001's store server is a second app over real HTTP
on its own SQLite database. The same three days of activity (checkouts of new and returning
customers, entrance sightings, a member joining) go to C001's devices at head office and to
S001's devices at the store server; the store server then sends its days upstream through a
transport that records every byte.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from numpy.typing import NDArray
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import admin
from cloud_api.api.app import create_app
from cloud_api.db.migrate import upgrade
from cloud_api.db.models import Customer, FaceSample, Receipt, RollupBuyers, UpstreamPending
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.settings import CloudSettings
from cloud_api.upstream.days import DAY_TABLES
from cloud_api.upstream.pusher import UpstreamPusher, UpstreamRefused
from contract import CheckoutRequest, Embedding, LineItem, UpstreamPush
from contract import Receipt as ReceiptIn
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve
from tests.store_chain import PASSWORD, POLICY

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = [TODAY - timedelta(days=n) for n in (3, 2, 1)]
#: store server customer ids start here, so that an id found in the upstream bytes is one
FIRST_CUSTOMER_ID = 4_100_000_000
BASKETS = [
    [("SKU-COF", "Espresso beans", "coffee", "Roastery", 1, "12.50")],
    [
        ("SKU-TEA", "Green tea", "tea", "Leaf & Co", 2, "4.20"),
        ("SKU-BRD", "Rye", "bakery", "", 1, "3.10"),
    ],
    [("SKU-COF", "Espresso beans", "coffee", "Roastery", 2, "12.50")],
]


@dataclass
class Till:
    url: str
    till: str
    entrance: str

    def post(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(self.url + path, json=body, headers={"X-API-Key": key}, timeout=60)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def put(self, path: str, body: dict[str, Any]) -> None:
        answer = httpx.put(self.url + path, json=body, headers={"X-API-Key": self.till}, timeout=60)
        assert answer.status_code == 200, answer.text


@dataclass
class Activity:
    """What was sent on a day, for the hand-checked figures and the capture search."""

    receipts: int = 0
    revenue: Decimal = Decimal(0)
    sightings: int = 0
    secrets: list[str] = field(default_factory=list)  # receipt numbers, keys, tokens, names


def _shots(face: NDArray[np.float32], rng: np.random.Generator) -> list[Embedding]:
    out = []
    for _ in range(3):
        v = face + rng.normal(0.0, 0.01, face.shape)
        out.append(Embedding.compact([float(x) for x in v / np.linalg.norm(v)], 0.9))
    return out


def run_day(
    till: Till, day: datetime, faces: list[NDArray[np.float32]], seed: int, activity: Activity
) -> None:
    """Five checkouts (the day's new people and some returning ones) and a sighting of each
    person: the same for both stores, given the same `seed`."""
    rng = np.random.default_rng(seed)
    people = [int(i) for i in rng.choice(len(faces), size=5, replace=False)]
    for n, person in enumerate(people):
        at = day + timedelta(hours=9 + 2 * n, minutes=int(rng.integers(0, 59)))
        lines = BASKETS[(person + n) % len(BASKETS)]
        number = f"RCPT-{uuid.uuid4().hex[:12]}"
        token = uuid.uuid4().hex + uuid.uuid4().hex  # a POS payment token (hashed card)
        key = uuid.uuid4().hex
        request = CheckoutRequest(
            idempotency_key=key,
            captured_at=at,
            receipt=ReceiptIn(
                number=number,
                scanned_at=at,
                payment_token=token,
                items=[
                    LineItem(
                        sku=sku, name=name, category=cat, brand=brand, quantity=q, unit_price=p
                    )
                    for sku, name, cat, brand, q, p in lines
                ],
            ),
            embeddings=_shots(faces[person], rng),
        )
        till.post("/v1/checkouts", till.till, request.model_dump(mode="json", exclude_none=True))
        activity.receipts += 1
        activity.revenue += sum(Decimal(p) * q for *_, q, p in lines)
        activity.secrets += [number, token, key]
        sighting = {
            "captured_at": (at - timedelta(minutes=5)).isoformat(),
            "embeddings": [
                s.model_dump(mode="json", exclude_none=True) for s in _shots(faces[person], rng)
            ],
        }
        till.post("/v1/sightings", till.entrance, sighting)
        activity.sightings += 1


class Recorder(httpx.BaseTransport):
    """Every byte the store server sends upstream (then sent on, or failed: head office
    unreachable)."""

    def __init__(self, online: bool = True) -> None:
        self.sent: list[bytes] = []
        self.online = online
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        head = f"{request.method} {request.url}\n".encode()
        head += b"".join(f"{k}: {v}\n".encode() for k, v in request.headers.items())
        self.sent.append(head + b"\n" + request.read())
        if not self.online:
            raise httpx.ConnectError("head office unreachable (simulated)", request=request)
        return self._inner.handle_request(request)


@dataclass
class Chain:
    head_office: str
    head_url: str
    cloud_till: Till
    store_till: Till
    store_app: FastAPI
    store_settings: CloudSettings
    upstream_key: str
    store_database: str
    faces: list[NDArray[np.float32]]

    def pusher(self, recorder: Recorder) -> UpstreamPusher:
        settings = self.store_settings.model_copy(
            update={"upstream_url": self.head_office, "upstream_key": SecretStr(self.upstream_key)}
        )
        sessions: sessionmaker[Session] = self.store_app.state.services.sessions
        return UpstreamPusher(sessions, settings, transport=recorder)


def _settings(url: str, index_dir: Path, **more: Any) -> CloudSettings:
    return CloudSettings(
        database_url=url,
        index_dir=index_dir,
        auto_migrate=False,
        estimate_demographics=False,
        recognition=POLICY,
        sync_interval_s=0.1,
        login_ip_burst=10_000,  # one address signs in for every report here
        login_ip_per_minute=10_000.0,
        **more,
    )


@pytest.fixture
def chain(migrated_url: str, tmp_path: Path) -> Iterator[Chain]:  # noqa: F811
    head = session_factory(make_engine(migrated_url))
    with transaction(head) as session:
        admin.create_region(session, "North")
        admin.create_store(session, "North", "C001", "Cloud Street")
        admin.create_store(session, "North", "S001", "Store Lane", mode="store")
        _, cloud_till = admin.create_device(session, "C001", "till", "till 1")
        _, cloud_door = admin.create_device(session, "C001", "entrance", "door")
        _, upstream_key = admin.create_device(session, "S001", "store_server", "server")
        admin.create_user(session, "head@example.com", "Head", "head_office", PASSWORD)
        admin.create_user(session, "s@example.com", "Sam", "store_manager", PASSWORD, "S001")
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(store_url)
    local = session_factory(make_engine(store_url))
    with transaction(local) as session:
        admin.create_region(session, "North")
        lane = admin.create_store(session, "North", "S001", "Store Lane")
        _, store_till = admin.create_device(session, "S001", "till", "till 1")
        _, store_door = admin.create_device(session, "S001", "entrance", "door")
        # customer ids the capture search can find unambiguously: the next ones follow this
        session.add(
            Customer(
                id=FIRST_CUSTOMER_ID - 1,
                region_id=lane.region_id,
                first_store_id=lane.id,
                visit_count=0,
                lifetime_spend=Decimal(0),
            )
        )
    rng = np.random.default_rng(5)
    faces = []
    for _ in range(8):
        v = rng.normal(size=128)
        faces.append((v / np.linalg.norm(v)).astype(np.float32))
    store_settings = _settings(store_url, tmp_path / "store-index", mode="store", store_code="S001")
    store_app = create_app(store_settings)
    with (
        serve(_settings(migrated_url, tmp_path / "head-index")) as head_server,
        serve(store_settings, app=store_app) as store_server,
    ):
        yield Chain(
            head_office=head_server.url,
            head_url=migrated_url,
            cloud_till=Till(head_server.url, cloud_till, cloud_door),
            store_till=Till(store_server.url, store_till, store_door),
            store_app=store_app,
            store_settings=store_settings,
            upstream_key=upstream_key,
            store_database=store_url,
            faces=faces,
        )


def _rows(url: str, store_code: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row of a store (without the store's id), per table."""
    sessions = session_factory(make_engine(url))
    out: dict[str, list[tuple[Any, ...]]] = {}
    with sessions() as session:
        store = admin.get_store(session, store_code).id
        for name, (table, row_model) in DAY_TABLES.items():
            columns = ["day", *row_model.model_fields]
            rows = session.execute(
                select(*(getattr(table, c) for c in columns)).where(
                    table.store_id == store  # type: ignore[attr-defined]
                )
            ).all()
            out[name] = sorted(tuple(_plain(v) for v in r) for r in rows)
        buyers = session.execute(
            select(RollupBuyers.day, RollupBuyers.buyers, RollupBuyers.new_customers).where(
                RollupBuyers.scope == "store", RollupBuyers.scope_id == store
            )
        ).all()
        out["buyers"] = sorted(tuple(_plain(v) for v in r) for r in buyers)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        return date.fromisoformat(value)
    return value


def _report(
    chain: Chain, name: str, store: int | None, *, email: str = "head@example.com", **more: Any
) -> Any:
    with httpx.Client(base_url=chain.head_office, timeout=60) as client:
        signed = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        query = {"from": DAYS[0].date().isoformat(), "to": DAYS[-1].date().isoformat(), **more}
        if store is not None:
            query["store"] = store
        return client.get(f"/v1/reports/{name}", params=query)


def _store_ids(chain: Chain) -> tuple[int, int]:
    with session_factory(make_engine(chain.head_url))() as session:
        return admin.get_store(session, "C001").id, admin.get_store(session, "S001").id


def _pending(chain: Chain) -> int:
    with session_factory(make_engine(chain.store_database))() as session:
        return len(session.scalars(select(UpstreamPending)).all())


def test_in_store_days_at_head_office_equal_the_same_days_in_the_cloud(chain: Chain) -> None:
    """Three days offline, then one catch-up: head office's rollups of S001 equal those it
    computed itself for the same activity at C001, each day arrives once, and the report
    figures are the hand-counted ones."""
    recorder = Recorder(online=False)
    pusher = chain.pusher(recorder)
    cloud, store = Activity(), Activity()
    for n, day in enumerate(DAYS):
        run_day(chain.cloud_till, day, chain.faces, seed=n, activity=cloud)
        run_day(chain.store_till, day, chain.faces, seed=n, activity=store)
        with pytest.raises(UpstreamRefused, match="unreachable"):
            pusher.push_once()  # head office unreachable: the day waits in the outbox
    assert _pending(chain) == 3
    recorder.online = True
    first = pusher.push_once()
    assert first.days_sent == 3 and first.requests == 1
    again = pusher.push_once()
    assert again.days_sent == 0 and again.requests == 0  # nothing sent twice
    assert _pending(chain) == 0

    # head office's reports refresh its own rollups (C001's) first
    cloud_id, store_id = _store_ids(chain)
    assert _report(chain, "traffic", cloud_id).status_code == 200
    at_head_office = _rows(chain.head_url, "S001")
    assert at_head_office == _rows(chain.head_url, "C001")
    assert at_head_office == _rows(chain.store_database, "S001")  # as the store computed them

    # hand-counted: 5 receipts and 5 visitors a day
    assert store.receipts == cloud.receipts == 15 and store.sightings == 15
    for name in ("traffic", "heatmap", "categories", "basket"):
        mine, theirs = _report(chain, name, store_id), _report(chain, name, cloud_id)
        assert mine.status_code == theirs.status_code == 200, mine.text
        assert mine.json()["rows"] == theirs.json()["rows"], name
    traffic = _report(chain, "traffic", store_id).json()
    assert traffic["summary"]["transactions"] == 15
    assert traffic["summary"]["visitors"] == 15
    assert [row[1:3] for row in traffic["rows"]] == [[5, 5]] * 3
    basket = _report(chain, "basket", store_id).json()
    assert Decimal(str(basket["summary"]["revenue"])) == store.revenue
    # the region's and the chain's buyers per day add the in-store store's to head office's
    # own (its customers are distinct people); the period's buyers of an in-store store are
    # the sum of its days' (no ids at head office to tell repeat buyers apart)
    per_store = [row[3] for row in traffic["rows"]]
    assert sum(per_store) >= 5
    cloud_rows = _report(chain, "traffic", cloud_id).json()["rows"]
    assert [row[3] for row in cloud_rows] == per_store
    with session_factory(make_engine(chain.head_url))() as session:
        region = admin.get_store(session, "S001").region_id
    scopes: list[dict[str, Any]] = [{"region": region}, {}]  # a region, the chain
    for scope in scopes:
        wide = _report(chain, "traffic", None, **scope).json()
        assert [row[3] for row in wide["rows"]] == [2 * n for n in per_store], scope
        assert wide["summary"]["transactions"] == 30
    assert traffic["summary"]["buyers"] == sum(per_store)
    mine = _report(chain, "customers", store_id).json()
    theirs = _report(chain, "customers", cloud_id).json()
    assert mine["rows"] == theirs["rows"]  # new and returning per day
    assert mine["summary"]["new_customers"] == theirs["summary"]["new_customers"] == 8
    assert mine["summary"]["buyers"] == sum(per_store)

    # retention cohorts: first-time buyers per week and how many came back within N days
    for days in (1, 2, 30):
        mine = _report(chain, "retention", store_id, days=days).json()
        theirs = _report(chain, "retention", cloud_id, days=days).json()
        # all but "complete": an in-store cohort is complete once its store's last day with
        # sales has ended past it (head office has no receipt times from the store)
        assert [r[:4] for r in mine["rows"]] == [r[:4] for r in theirs["rows"]], days
        assert mine["summary"] == theirs["summary"], days
        wide = _report(chain, "retention", None, days=days).json()["summary"]
        assert wide["first_time_buyers"] == 2 * mine["summary"]["first_time_buyers"]
        assert wide["returned"] == 2 * mine["summary"]["returned"]
    retention = _report(chain, "retention", store_id, days=30).json()["summary"]
    assert retention["first_time_buyers"] == 8 and retention["returned"] > 0  # 8 people

    # a recomputation at head office leaves the pushed rows alone
    from cloud_api.reports import rollups

    with transaction(session_factory(make_engine(chain.head_url))) as session:
        rollups.rebuild(session)
    assert _rows(chain.head_url, "S001") == at_head_office

    # the day pushed again (a lost answer) replaces, never adds
    with session_factory(make_engine(chain.store_database))() as session, session.begin():
        from cloud_api.upstream.outbox import mark_pending

        mark_pending(session, [(pusher.store_id, DAYS[1].date())])
    assert pusher.push_once().days_sent == 1
    assert _rows(chain.head_url, "S001") == at_head_office


def test_nothing_personal_or_biometric_goes_upstream(chain: Chain) -> None:
    recorder = Recorder()
    pusher = chain.pusher(recorder)
    activity = Activity()
    for n, day in enumerate(DAYS):
        run_day(chain.store_till, day, chain.faces, seed=10 + n, activity=activity)
    # a member joins at the store: name and VIP number exist only there
    with session_factory(make_engine(chain.store_database))() as session:
        someone = session.scalars(
            select(Customer.id).where(Customer.id >= FIRST_CUSTOMER_ID).order_by(Customer.id)
        ).first()
    assert someone is not None and someone >= FIRST_CUSTOMER_ID
    chain.store_till.put(
        f"/v1/customers/{someone}/membership",
        {"vip_number": "VIP-99887766", "name": "Zebulon Quartermaine", "consent": True},
    )
    activity.secrets += ["VIP-99887766", "Zebulon", "Quartermaine"]
    assert pusher.push_once().days_sent == 3
    sent = b"\n".join(recorder.sent)
    text_sent = sent.decode()

    # every body is the strict aggregate contract, nothing more
    bodies = [chunk.split(b"\n\n", 1)[1] for chunk in recorder.sent]
    assert bodies and all(UpstreamPush.model_validate_json(b) for b in bodies)

    with session_factory(make_engine(chain.store_database))() as session:
        ids = list(session.scalars(select(Customer.id)))
        descriptors = list(session.scalars(select(FaceSample.descriptor)))
        receipts = list(session.scalars(select(Receipt.id)))
    assert len(ids) >= 5 and len(descriptors) >= 5
    for customer in ids:
        assert not re.search(rf"\b{customer}\b", text_sent), f"customer id {customer} sent"
    for raw in descriptors:
        assert raw not in sent
        assert base64.b64encode(raw) not in sent
        first = np.frombuffer(raw, dtype=np.float32)[:2]
        assert repr(float(first[0]))[:9] not in text_sent
    for secret in activity.secrets:
        assert secret not in text_sent, f"{secret!r} sent upstream"
    assert len(receipts) == activity.receipts
    assert chain.store_till.till not in text_sent and chain.store_till.entrance not in text_sent


def test_a_store_manager_of_the_in_store_store_sees_only_it(chain: Chain) -> None:
    pusher = chain.pusher(Recorder())
    run_day(chain.store_till, DAYS[-1], chain.faces, seed=1, activity=Activity())
    pusher.push_once()
    cloud_id, store_id = _store_ids(chain)
    mine = _report(chain, "traffic", store_id, email="s@example.com")
    assert mine.status_code == 200 and mine.json()["summary"]["visitors"] == 5
    assert _report(chain, "traffic", cloud_id, email="s@example.com").status_code == 403


def test_head_office_refuses_days_from_anyone_but_an_in_store_stores_server(chain: Chain) -> None:
    day = {"days": [{"day": DAYS[0].date().isoformat()}]}
    url = chain.head_office + "/v1/upstream/days"
    till = httpx.put(url, json=day, headers={"X-API-Key": chain.cloud_till.till}, timeout=30)
    assert till.status_code == 403
    nobody = httpx.put(url, json=day, timeout=30)
    assert nobody.status_code == 401
    extra = {"days": [{"day": DAYS[0].date().isoformat(), "customers": [1]}]}
    refused = httpx.put(url, json=extra, headers={"X-API-Key": chain.upstream_key}, timeout=30)
    assert refused.status_code == 422 and "customers" in refused.text
    twice = {"days": [{"day": DAYS[0].date().isoformat()}] * 2}
    refused = httpx.put(url, json=twice, headers={"X-API-Key": chain.upstream_key}, timeout=30)
    assert refused.status_code == 422 and "twice" in refused.text
    # the in-store store's faces and receipts never come here, even from a till of its own
    with transaction(session_factory(make_engine(chain.head_url))) as session:
        _, stray = admin.create_device(session, "S001", "till", "stray till")
    body = {"captured_at": datetime.now(UTC).isoformat(), "embeddings": []}
    refused = httpx.post(
        chain.head_office + "/v1/checkouts", json=body, headers={"X-API-Key": stray}, timeout=30
    )
    assert refused.status_code == 403 and "in-store mode" in refused.text
    with transaction(session_factory(make_engine(chain.head_url))) as session:
        admin.set_store_mode(session, "S001", "cloud")
    moved = httpx.put(url, json=day, headers={"X-API-Key": chain.upstream_key}, timeout=30)
    assert moved.status_code == 409 and "cloud mode" in moved.text
    # the store server keeps its days and says why
    run_day(chain.store_till, DAYS[-1], chain.faces, seed=4, activity=Activity())
    with pytest.raises(UpstreamRefused, match="HTTP 409 .*cloud mode"):
        chain.pusher(Recorder()).push_once()
    assert _pending(chain) == 1


def test_a_deletion_at_the_store_reaches_head_office_figures(chain: Chain) -> None:
    """Deleting a customer at the store server re-sends the days they bought on: head
    office's buyers and cohorts of those days no longer count them."""
    pusher = chain.pusher(Recorder())
    run_day(chain.store_till, DAYS[-1], chain.faces, seed=3, activity=Activity())
    pusher.push_once()
    _, store_id = _store_ids(chain)
    before = _rows(chain.head_url, "S001")["buyers"]
    with session_factory(make_engine(chain.store_database))() as session:
        victim = session.scalars(
            select(Customer.id).where(Customer.id >= FIRST_CUSTOMER_ID).order_by(Customer.id)
        ).first()
    assert victim is not None
    gone = httpx.delete(
        f"{chain.store_till.url}/v1/customers/{victim}",
        headers={"X-API-Key": chain.store_till.till},
        timeout=30,
    )
    assert gone.status_code == 204, gone.text
    assert pusher.push_once().days_sent == 1
    after = _rows(chain.head_url, "S001")["buyers"]
    assert [(d, b - 1, n - 1) for d, b, n in before] == after
    retention = _report(chain, "retention", store_id, days=30).json()["summary"]
    assert retention["first_time_buyers"] == before[0][2] - 1


def test_a_long_absence_catches_up_seven_days_a_request(chain: Chain) -> None:
    """Twenty days queued (here: days with nothing in them, which empty head office's
    slices) go in three requests, oldest first, each day once."""
    recorder = Recorder()
    pusher = chain.pusher(recorder)
    days = [TODAY.date() - timedelta(days=n) for n in range(40, 20, -1)]
    from cloud_api.upstream.outbox import mark_pending

    with session_factory(make_engine(chain.store_database))() as session, session.begin():
        mark_pending(session, [(pusher.store_id, d) for d in days])
    done = pusher.push_once()
    assert (done.days_sent, done.requests) == (20, 3)
    pushed = [
        [d.day for d in UpstreamPush.model_validate_json(chunk.split(b"\n\n", 1)[1]).days]
        for chunk in recorder.sent
    ]
    assert [d for request in pushed for d in request] == days
    assert _pending(chain) == 0
