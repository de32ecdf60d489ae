"""Open-set decisions through the real API: possible members, cashier answers, ground truth.

Over real HTTP on SQLite and PostgreSQL. Descriptors are synthetic (random unit vectors are
about 1.41 apart) and the decision policy is set to round numbers, so every test places a
probe at a distance that gives exactly the decision it is about: with the margin test off,
the returning threshold is 0.3 and the member threshold 0.2 at every gallery size.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api import admin
from cloud_api.db.models import Customer, FaceSample, Receipt, RecognitionDecision
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.recognition.policy import DecisionPolicy, ThresholdCurve
from cloud_api.settings import CloudSettings
from contract import (
    CheckoutResponse,
    DecisionAnswer,
)
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve
from tests.store_chain import checkout_body

pytestmark = pytest.mark.slow

CURVE = ThresholdCurve(base=0.3, per_doubling=0.0, per_decade=0.1)
POLICY = DecisionPolicy(visit_curve=CURVE, single_curve=CURVE, margin_weight=0.0)
PASSWORD = "correct horse battery"


@dataclass
class Shop:
    url: str
    database_url: str
    till: str
    other_till: str  # another store's
    entrance: str
    rng: np.random.Generator

    def post(self, path: str, body: dict[str, Any] | None = None, key: str = "") -> httpx.Response:
        headers = {"X-API-Key": key or self.till}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=60)

    def checkout(
        self,
        shots: list[NDArray[np.float32]],
        *,
        loyalty_id: str | None = None,
        payment_token: str | None = None,
        key: str | None = None,
    ) -> CheckoutResponse:
        body = checkout_body(shots, loyalty_id=loyalty_id, payment_token=payment_token, key=key)
        answer = self.post("/v1/checkouts", body)
        assert answer.status_code == 200, answer.text
        return CheckoutResponse.model_validate(answer.json())

    def unit(self) -> NDArray[np.float32]:
        v = self.rng.normal(size=128)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def near(self, centre: NDArray[np.float32], distance: float) -> NDArray[np.float32]:
        direction = self.rng.normal(size=128)
        return (centre + distance * direction / np.linalg.norm(direction)).astype(np.float32)

    def member(self, name: str, vip: str) -> tuple[int, NDArray[np.float32]]:
        """A customer enrolled by a checkout (two shots of one face) who joined the programme."""
        face = self.unit()
        card = self.checkout([face, face]).card
        assert card.status == "new" and card.customer_id is not None
        joined = httpx.put(
            f"{self.url}/v1/customers/{card.customer_id}/membership",
            json={"vip_number": vip, "name": name, "consent": True},
            headers={"X-API-Key": self.till},
            timeout=60,
        )
        assert joined.status_code == 200, joined.text
        return card.customer_id, face


@pytest.fixture
def shop(migrated_url: str, tmp_path: Path) -> Iterator[Shop]:  # noqa: F811
    sessions = session_factory(make_engine(migrated_url))
    with transaction(sessions) as session:
        admin.create_region(session, "North")
        admin.create_store(session, "North", "N001", "North One")
        admin.create_store(session, "North", "N002", "North Two")
        _, till = admin.create_device(session, "N001", "till", "till 1")
        _, other = admin.create_device(session, "N002", "till", "till 1")
        _, door = admin.create_device(session, "N001", "entrance", "door")
        admin.create_user(session, "boss@example.com", "Boss", "head_office", PASSWORD)
    settings = CloudSettings(
        database_url=migrated_url,
        index_dir=tmp_path / "index",
        sync_interval_s=0.1,
        auto_migrate=False,
        estimate_demographics=False,
        recognition=POLICY,
    )
    with serve(settings) as server:
        yield Shop(server.url, migrated_url, till, other, door, np.random.default_rng(5))


def _db(shop: Shop) -> Session:
    return session_factory(make_engine(shop.database_url))()


def _samples(shop: Shop, customer_id: int) -> tuple[int, int]:
    """(samples, verified samples) of a customer."""
    with _db(shop) as session:
        rows = session.scalars(select(FaceSample).where(FaceSample.customer_id == customer_id))
        flags = [r.verified for r in rows]
    return len(flags), sum(flags)


def _decision(shop: Shop, decision_id: int) -> RecognitionDecision:
    with _db(shop) as session:
        row = session.get(RecognitionDecision, decision_id)
        assert row is not None
        session.expunge(row)
        return row


def test_a_possible_member_is_asked_about_and_a_confirmation_adds_verified_samples(
    shop: Shop,
) -> None:
    alex_id, face = shop.member("Alex Example", "VIP-7")
    assert _samples(shop, alex_id) == (2, 0)

    probe = shop.near(face, 0.25)  # within the returning threshold, not the member one
    key = uuid.uuid4().hex
    card = shop.checkout([probe, probe], key=key).card
    assert card.status == "possible_member"
    assert card.customer_id is None and card.member is None and card.last_visits == []
    assert card.possible_member is not None and card.possible_member.first_name == "Alex"
    assert card.decision_id == card.possible_member.decision_id
    with _db(shop) as session:  # held: the receipt is nobody's until the cashier answers
        held = session.scalar(select(Receipt).order_by(Receipt.id.desc()).limit(1))
        assert held is not None and held.customer_id is None
    decision_id = card.decision_id
    assert decision_id is not None

    # another store's till, an entrance device, an unknown decision: refused
    assert shop.post(f"/v1/decisions/{decision_id}/confirm", key=shop.other_till).status_code == 403
    assert shop.post(f"/v1/decisions/{decision_id}/confirm", key=shop.entrance).status_code == 403
    assert shop.post("/v1/decisions/999999/confirm").status_code == 404
    assert shop.post(f"/v1/decisions/{2**63}/confirm").status_code == 422

    answer = shop.post(f"/v1/decisions/{decision_id}/confirm")
    assert answer.status_code == 200, answer.text
    confirmed = DecisionAnswer.model_validate(answer.json())
    assert confirmed.outcome == "confirmed"
    assert confirmed.card.customer_id == alex_id and confirmed.card.status == "returning"
    assert confirmed.card.member is not None and confirmed.card.member.name == "Alex Example"
    assert confirmed.card.visit_count == 2
    assert _samples(shop, alex_id) == (4, 2)  # the visit's two shots, verified
    row = _decision(shop, decision_id)
    assert (row.cashier, row.truth_customer_id, row.truth_source) == (
        "confirmed",
        alex_id,
        "cashier",
    )
    assert row.visit_descriptors is None  # the held shots are gone once used

    # answered once; a retried checkout now returns what the cashier sees
    assert shop.post(f"/v1/decisions/{decision_id}/confirm").status_code == 409
    assert shop.post(f"/v1/decisions/{decision_id}/reject").status_code == 409
    replay = shop.checkout([probe, probe], key=key).card
    assert replay.status == "returning" and replay.customer_id == alex_id


def test_a_rejected_member_is_not_proposed_again_for_the_visit(shop: Shop) -> None:
    alex_id, face = shop.member("Alex Example", "VIP-8")
    first = shop.near(face, 0.25)
    card = shop.checkout([first, first]).card
    assert card.status == "possible_member" and card.decision_id is not None
    answer = shop.post(f"/v1/decisions/{card.decision_id}/reject")
    assert answer.status_code == 200, answer.text
    rejected = DecisionAnswer.model_validate(answer.json())
    assert rejected.outcome == "rejected"
    assert rejected.card.status == "new" and rejected.card.member is None
    assert rejected.card.customer_id not in (None, alex_id)
    assert _samples(shop, alex_id) == (2, 0)  # nothing of the stranger went to Alex

    # the same customer, still at the counter, buys something else: Alex is not asked about
    second = shop.near(face, 0.25)
    again = shop.checkout([second, second]).card
    assert again.status != "possible_member" and again.possible_member is None
    assert again.customer_id != alex_id
    # a face close enough to be Alex beyond doubt is still not Alex at this till for now
    sure = shop.checkout([shop.near(face, 0.05)] * 2).card
    assert sure.customer_id != alex_id and sure.member is None


def test_a_loyalty_scan_links_the_visit_without_a_face_and_teaches_the_payment_token(
    shop: Shop,
) -> None:
    alex_id, face = shop.member("Alex Example", "VIP-9")
    token = hashlib.sha256(b"salt:4111111111111111").hexdigest()

    scanned = shop.checkout([], loyalty_id="VIP-9", payment_token=token).card
    assert scanned.status == "returning" and scanned.customer_id == alex_id
    assert scanned.member is not None and scanned.member.vip_number == "VIP-9"
    assert scanned.decision_id is not None
    row = _decision(shop, scanned.decision_id)
    assert (row.outcome, row.truth_customer_id, row.truth_source) == ("no_face", alex_id, "loyalty")

    paid = shop.checkout([], payment_token=token).card  # the card alone now says who
    assert paid.customer_id == alex_id
    assert (
        paid.decision_id is not None and _decision(shop, paid.decision_id).truth_source == "payment"
    )

    # the face right, the card scanned: a correct acceptance, and verified samples
    right = shop.checkout([shop.near(face, 0.05)] * 2, loyalty_id="VIP-9").card
    assert right.decision_id is not None
    assert _decision(shop, right.decision_id).outcome == "member"
    assert _samples(shop, alex_id) == (4, 2)

    # a face the recogniser does not know, with the card scanned: still Alex
    other_look = shop.unit()
    missed = shop.checkout([other_look, other_look], loyalty_id="VIP-9").card
    assert missed.customer_id == alex_id
    assert _samples(shop, alex_id) == (6, 4)
    assert missed.decision_id is not None
    row = _decision(shop, missed.decision_id)
    assert (row.outcome, row.truth_had_face) == ("new", True)  # a false reject, on record

    # an unknown loyalty id is no ground truth: the face decides alone
    with _db(shop) as session:
        customers_before = session.scalar(select(func.count()).select_from(Customer)) or 0
    unknown = shop.checkout([shop.unit()] * 2, loyalty_id="VIP-NOPE").card
    assert unknown.status == "new" and unknown.customer_id != alex_id
    with _db(shop) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == customers_before + 1

    # the recognition-quality report sees exactly these decisions
    with httpx.Client(base_url=shop.url, timeout=60) as client:
        login = client.post(
            "/v1/auth/login", json={"email": "boss@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token_header = {"Authorization": f"Bearer {login.json()['token']}"}
        today = datetime.now(UTC).date().isoformat()
        report = client.get(
            "/v1/reports/recognition", params={"from": today, "to": today}, headers=token_header
        )
    assert report.status_code == 200, report.text
    table = report.json()
    columns = table["columns"]
    (row_values,) = [r for r in table["rows"] if r[columns.index("store_id")] is not None]
    figures = dict(zip(columns, row_values, strict=True))
    # decisions with a face: Alex's enrolment (new), the right one (member, truth Alex), the
    # missed one (new, truth Alex), the unknown card (new): 4; the two no-face scans are not
    assert figures["decisions"] == 4
    assert figures["with_truth"] == 2 and figures["truth_findable"] == 2
    assert figures["false_rejects"] == 1 and figures["false_reject_rate"] == 0.5
    assert figures["false_accepts"] == 0 and figures["false_accept_rate"] == 0.0
