"""The cloud API end to end: real HTTP, real database (SQLite and PostgreSQL), real faces."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cloud_api import admin
from cloud_api.db.models import Customer, FaceSample, Receipt, RecognitionDecision
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.settings import CloudSettings
from contract import CheckoutRequest, CheckoutResponse, LineItem
from contract import Receipt as ReceiptIn
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve, serve_process
from tests.conftest import require
from tests.face_samples import face_sample

pytestmark = pytest.mark.slow


@dataclass
class Chain:
    url: str
    database_url: str
    till_a: str
    till_b: str  # a till in another store
    entrance_a: str
    store_a: int
    store_b: int


@pytest.fixture
def chain(migrated_url: str, tmp_path: Path) -> Iterator[Chain]:  # noqa: F811
    sessions = session_factory(make_engine(migrated_url))
    with transaction(sessions) as session:
        admin.create_region(session, "North")
        store_a = admin.create_store(session, "North", "N001", "North One")
        store_b = admin.create_store(session, "North", "N002", "North Two")
        _, till_a = admin.create_device(session, "N001", "till", "till 1")
        _, till_b = admin.create_device(session, "N002", "till", "till 1")
        _, entrance_a = admin.create_device(session, "N001", "entrance", "door")
        ids = (store_a.id, store_b.id)
    settings = CloudSettings(
        database_url=migrated_url,
        index_dir=tmp_path / "index",
        sync_interval_s=0.1,
        alert_poll_interval_s=0.1,
        auto_migrate=False,
    )
    with serve(settings) as server:
        yield Chain(server.url, migrated_url, till_a, till_b, entrance_a, *ids)


def _photos(data_dir: Path, person: str) -> list[Path]:
    return sorted(require(data_dir / "faces" / "lfw" / person).glob("*.jpg"))


def _checkout(
    photo: Path | list[Path] | None, *, key: str | None = None, sku: str = "SKU-1"
) -> dict[str, Any]:
    """A checkout as the kiosk sends it; several photos stand for several frames of a track."""
    photos = [] if photo is None else photo if isinstance(photo, list) else [photo]
    samples = [face_sample(p) for p in photos]
    sample = samples[0] if samples else None
    request = CheckoutRequest(
        idempotency_key=key or uuid.uuid4().hex,
        captured_at=datetime.now(UTC),
        receipt=ReceiptIn(
            number=uuid.uuid4().hex[:10],
            scanned_at=datetime.now(UTC),
            items=[
                LineItem(
                    sku=sku,
                    name="Espresso beans",
                    category="coffee",
                    brand="Roastery",
                    quantity=2,
                    unit_price="12.50",
                ),
                LineItem(
                    sku="SKU-MILK",
                    name="Oat milk",
                    category="dairy",
                    brand="Oaty",
                    quantity=1,
                    unit_price="2.20",
                ),
            ],
        ),
        embeddings=[s.embedding for s in samples],
        face_crop=sample.crop if sample else None,
    )
    return request.model_dump(mode="json")


def _post(chain: Chain, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(chain.url + path, json=body, headers={"X-API-Key": key}, timeout=60)


def _get(chain: Chain, key: str, path: str) -> httpx.Response:
    return httpx.get(chain.url + path, headers={"X-API-Key": key}, timeout=60)


def test_the_card_says_which_currency_its_money_is_in(chain: Chain, data_dir: Path) -> None:
    """Issue 14 item 8: the spend and each visit's total carry the receipts' currency."""
    body = _checkout(_photos(data_dir, "Adrien_Brody")[0])
    body["receipt"]["currency"] = "GBP"
    answer = _post(chain, chain.till_a, "/v1/checkouts", body)
    assert answer.status_code == 200, answer.text
    card = CheckoutResponse.model_validate(answer.json()).card
    assert card.customer_id is not None and card.currency == "GBP"
    assert card.last_visits and card.last_visits[0].currency == "GBP"
    assert card.last_visits[0].total == Decimal("27.20")


def test_returning_customer_is_recognised_and_a_stranger_is_new(
    chain: Chain, data_dir: Path
) -> None:
    agassi = _photos(data_dir, "Andre_Agassi")
    # LFW photos span years; a till sees several frames of one visit: enrol three
    first = _post(
        chain, chain.till_a, "/v1/checkouts", _checkout([agassi[0], agassi[2], agassi[5]])
    )
    assert first.status_code == 200, first.text
    card = CheckoutResponse.model_validate(first.json()).card
    assert card.status == "new" and card.visit_count == 1 and card.customer_id is not None
    assert card.demographics is not None and card.demographics.gender == "male"
    assert card.lifetime_spend == Decimal("27.20")

    again = CheckoutResponse.model_validate(
        _post(chain, chain.till_a, "/v1/checkouts", _checkout(agassi[1], sku="SKU-2")).json()
    ).card
    assert again.status == "returning"
    assert again.customer_id == card.customer_id
    assert again.visit_count == 2
    assert again.match_distance is not None and again.match_distance < 0.5
    assert [v.store_id for v in again.last_visits] == [chain.store_a, chain.store_a]
    assert "coffee" in again.preferences.categories

    stranger = _photos(data_dir, "Angela_Bassett")[0]
    other = CheckoutResponse.model_validate(
        _post(chain, chain.till_a, "/v1/checkouts", _checkout(stranger)).json()
    ).card
    assert other.status == "new"
    assert other.customer_id not in (None, card.customer_id)


def test_a_child_is_neither_enrolled_nor_matched(chain: Chain, data_dir: Path) -> None:
    """A face estimated under the age limit: no profile, no samples, no match, ever."""
    baby = require(data_dir / "agegender" / "utkface" / "1_0_0_20161219154018476.jpg.chip.jpg")
    for _ in range(2):  # the second visit is not recognised either: nothing was kept
        answer = _post(chain, chain.till_a, "/v1/checkouts", _checkout([baby, baby]))
        assert answer.status_code == 200, answer.text
        card = CheckoutResponse.model_validate(answer.json()).card
        assert card.status == "unidentified" and card.customer_id is None
        assert card.demographics is not None and card.demographics.age_years < 16
    with session_factory(make_engine(chain.database_url))() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
        assert session.scalar(select(func.count()).select_from(FaceSample)) == 0
        outcomes = session.scalars(select(RecognitionDecision.outcome)).all()
        assert outcomes == ["child", "child"]


def test_idempotent_checkout_returns_the_first_answer_once(chain: Chain, data_dir: Path) -> None:
    photo = _photos(data_dir, "Ana_Palacio")[0]
    body = _checkout(photo, key="till-1:0001")
    answers = [_post(chain, chain.till_a, "/v1/checkouts", body) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    # and concurrently: the database's unique constraint settles the race
    racers = [_checkout(photo, key="till-1:0002") for _ in range(4)]
    results: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda b=b: results.append(_post(chain, chain.till_a, "/v1/checkouts", b))
        )
        for b in racers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in results} == {200}
    assert len({json.dumps(r.json(), sort_keys=True) for r in results}) == 1
    sessions = session_factory(make_engine(chain.database_url))
    with sessions() as session:
        keys = session.scalars(select(Receipt.idempotency_key)).all()
    assert sorted(keys) == ["till-1:0001", "till-1:0002"]


def test_bad_bodies_name_the_field(chain: Chain) -> None:
    body = _checkout(None)
    body["embeddings"] = [{"vector": [0.1] * 127, "quality": 0.9}]
    response = _post(chain, chain.till_a, "/v1/checkouts", body)
    assert response.status_code == 422
    fields = [f["field"] for f in response.json()["fields"]]
    assert "embeddings.0.vector" in fields

    body = _checkout(None)
    body["receipt"]["items"][0]["quantity"] = -1
    response = _post(chain, chain.till_a, "/v1/checkouts", body)
    assert response.status_code == 422
    assert "receipt.items.0.quantity" in response.json()["detail"]

    response = _post(chain, "ssk_nope", "/v1/checkouts", _checkout(None))
    assert response.status_code == 401


def test_another_stores_device_is_refused(chain: Chain, data_dir: Path) -> None:
    photo = _photos(data_dir, "Al_Sharpton")[0]
    card = _post(chain, chain.till_a, "/v1/checkouts", _checkout(photo)).json()["card"]
    customer = card["customer_id"]
    assert _get(chain, chain.till_a, f"/v1/customers/{customer}").status_code == 200
    # another store's customer looks exactly like one that does not exist (issue 13, row 20)
    for path in (f"/v1/customers/{customer}", f"/v1/customers/{customer}/history"):
        response = _get(chain, chain.till_b, path)
        assert response.status_code == 404, path
    assert _get(chain, chain.till_b, f"/v1/stores/{chain.store_a}/alerts").status_code == 403
    response = httpx.delete(
        f"{chain.url}/v1/customers/{customer}", headers={"X-API-Key": chain.till_b}
    )
    assert response.status_code == 404
    assert _get(chain, chain.till_a, "/v1/customers/999999").status_code == 404
    assert _get(chain, chain.till_a, f"/v1/customers/{customer}").status_code == 200


def test_membership_needs_consent_and_vip_arrival_is_alerted(chain: Chain, data_dir: Path) -> None:
    photos = _photos(data_dir, "Amelia_Vega")
    customer = _post(chain, chain.till_a, "/v1/checkouts", _checkout(photos[:3])).json()["card"][
        "customer_id"
    ]
    path = f"/v1/customers/{customer}/membership"
    refused = httpx.put(
        chain.url + path,
        json={"vip_number": "VIP-1", "name": "Amelia", "consent": False},
        headers={"X-API-Key": chain.till_a},
    )
    assert refused.status_code == 422 and "consent" in refused.text
    bound = httpx.put(
        chain.url + path,
        json={"vip_number": "VIP-1", "name": "Amelia", "level": "gold", "consent": True},
        headers={"X-API-Key": chain.till_a},
    )
    assert bound.status_code == 200, bound.text
    assert bound.json()["member"]["vip_number"] == "VIP-1"

    received: list[dict[str, Any]] = []
    connected = threading.Event()

    def listen() -> None:
        headers = {"X-API-Key": chain.till_a}
        url = f"{chain.url}/v1/stores/{chain.store_a}/alerts"
        with httpx.stream("GET", url, headers=headers, timeout=20) as stream:
            for line in stream.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(20)
    # two photos the chain has not seen, as two frames of the door camera's track: the member
    # card (here, a name sent to staff) is never given on one frame
    samples = [face_sample(p) for p in photos[3:5]]
    sighting = _post(
        chain,
        chain.entrance_a,
        "/v1/sightings",
        {
            "captured_at": datetime.now(UTC).isoformat(),
            "embeddings": [s.embedding.model_dump(mode="json") for s in samples],
            "face_crop": samples[0].crop.model_dump(mode="json"),
        },
    )
    assert sighting.status_code == 200, sighting.text
    assert sighting.json()["is_vip"] is True and sighting.json()["customer_id"] == customer
    assert sighting.json()["visitors_today"] >= 1
    listener.join(20)
    assert received and received[0]["vip_number"] == "VIP-1"
    assert received[0]["customer_id"] == customer
    # tills do not report sightings
    assert (
        _post(
            chain,
            chain.till_a,
            "/v1/sightings",
            {
                "captured_at": datetime.now(UTC).isoformat(),
                "embeddings": [samples[0].embedding.model_dump(mode="json")],
            },
        ).status_code
        == 403
    )


def test_delete_really_deletes(chain: Chain, data_dir: Path) -> None:
    photos = _photos(data_dir, "Andy_Roddick")
    first = _post(chain, chain.till_a, "/v1/checkouts", _checkout(photos[0])).json()
    customer = first["card"]["customer_id"]
    httpx.put(
        f"{chain.url}/v1/customers/{customer}/membership",
        json={"vip_number": "VIP-9", "name": "Andy R", "consent": True},
        headers={"X-API-Key": chain.till_a},
    ).raise_for_status()
    response = httpx.delete(
        f"{chain.url}/v1/customers/{customer}", headers={"X-API-Key": chain.till_a}
    )
    assert response.status_code == 204
    assert _get(chain, chain.till_a, f"/v1/customers/{customer}").status_code == 404
    sessions = session_factory(make_engine(chain.database_url))
    with sessions() as session:
        samples = session.scalar(
            select(func.count()).select_from(FaceSample).where(FaceSample.customer_id == customer)
        )
        receipt = session.scalar(select(Receipt).where(Receipt.id == first["receipt_id"]))
    assert samples == 0
    assert receipt is not None and receipt.customer_id is None  # the sale stays, unlinked
    assert "Andy R" not in json.dumps(receipt.response) and "VIP-9" not in json.dumps(
        receipt.response
    )
    # the very photo that enrolled them is a stranger's now
    again = _post(chain, chain.till_a, "/v1/checkouts", _checkout(photos[0])).json()["card"]
    assert again["status"] == "new" and again["customer_id"] != customer


def test_two_api_processes_agree_within_a_second(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
    data_dir: Path,
) -> None:
    """Two `storesight-cloud serve` processes on one database: what one learns, the other
    knows within a second (each polls the database for new samples and deletions)."""
    sessions = session_factory(make_engine(migrated_url))
    with transaction(sessions) as session:
        admin.create_region(session, "South")
        admin.create_store(session, "South", "S001", "South One")
        _, key = admin.create_device(session, "S001", "till", "till 1")
        admin.create_user(session, "ops@example.com", "Ops", "admin", "ops-password-1")
    photos = _photos(data_dir, "Ann_Veneman")
    headers = {"X-API-Key": key}
    fast_sync = {"STORESIGHT_CLOUD_SYNC_INTERVAL_S": "0.2"}
    with (
        serve_process(migrated_url, str(tmp_path / "one"), **fast_sync) as one,
        serve_process(migrated_url, str(tmp_path / "two"), **fast_sync) as two,
    ):
        login = {"email": "ops@example.com", "password": "ops-password-1"}
        token = httpx.post(two + "/v1/auth/login", json=login).json()["token"]
        ops = {"Authorization": f"Bearer {token}"}  # index figures: for admins, on /readyz
        before = httpx.get(two + "/readyz", headers=ops).json()["index"]["samples"]
        enrolled = httpx.post(
            one + "/v1/checkouts", json=_checkout(photos[:3]), headers=headers, timeout=60
        ).json()["card"]
        assert enrolled["status"] == "new"
        time.sleep(1.0)  # no request reaches `two` meanwhile: its background sync must do it
        assert httpx.get(two + "/readyz", headers=ops).json()["index"]["samples"] == before + 3
        seen = httpx.post(
            two + "/v1/checkouts", json=_checkout(photos[4]), headers=headers, timeout=60
        ).json()["card"]
        assert seen["status"] == "returning"
        assert seen["customer_id"] == enrolled["customer_id"]

        deleted = httpx.delete(f"{two}/v1/customers/{enrolled['customer_id']}", headers=headers)
        assert deleted.status_code == 204
        again = httpx.post(
            one + "/v1/checkouts", json=_checkout(photos[0]), headers=headers, timeout=60
        ).json()["card"]
        assert again["status"] == "new"
