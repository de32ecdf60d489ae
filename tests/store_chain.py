"""A small chain over real HTTP for the authorisation tests: two regions, three stores, their
devices and users, and synthetic faces (random descriptors: no models, no photos needed).

North holds stores A (N001) and B (N002), South holds C (S001). The recognition policy is
permissive and flat, so a face checked out twice is recognised anywhere in the chain and a
probe 0.25 away from a member's face makes a "possible member" card.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from cloud_api import admin
from cloud_api.db.models import Device, Visit, utcnow
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.recognition.policy import DecisionPolicy, ThresholdCurve
from cloud_api.settings import CloudSettings
from contract import CheckoutRequest, Embedding, LineItem
from contract import Receipt as ReceiptIn

CURVE = ThresholdCurve(base=0.3, per_doubling=0.0, per_decade=0.1)
POLICY = DecisionPolicy(visit_curve=CURVE, single_curve=CURVE, margin_weight=0.0)
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Keys:
    till_a: str
    till_b: str
    till_c: str
    entrance_a: str
    revoked_till_a: str
    store_a: int
    store_b: int
    store_c: int


def build_chain(database_url: str, *, users: bool = False) -> Keys:
    """Regions, stores and devices (one of store A's tills revoked); with `users`, also
    head office, an admin and a store manager of A and of B (password PASSWORD)."""
    sessions = session_factory(make_engine(database_url))
    with transaction(sessions) as session:
        admin.create_region(session, "North")
        admin.create_region(session, "South")
        a = admin.create_store(session, "North", "N001", "North One")
        b = admin.create_store(session, "North", "N002", "North Two")
        c = admin.create_store(session, "South", "S001", "South One")
        _, till_a = admin.create_device(session, "N001", "till", "till 1")
        _, till_b = admin.create_device(session, "N002", "till", "till 1")
        _, till_c = admin.create_device(session, "S001", "till", "till 1")
        _, entrance_a = admin.create_device(session, "N001", "entrance", "door")
        revoked, revoked_key = admin.create_device(session, "N001", "till", "stolen till")
        session.flush()
        admin.revoke_device(session, revoked.id)
        if users:
            admin.create_user(session, "head@example.com", "Head", "head_office", PASSWORD)
            admin.create_user(session, "admin@example.com", "Admin", "admin", PASSWORD)
            admin.create_user(session, "a@example.com", "Ann", "store_manager", PASSWORD, "N001")
            admin.create_user(session, "b@example.com", "Bob", "store_manager", PASSWORD, "N002")
            admin.create_user(session, "gone@example.com", "Gone", "head_office", PASSWORD)
            admin.create_user(session, "out@example.com", "Out", "head_office", PASSWORD)
            admin.create_user(session, "probe@example.com", "Probe", "head_office", PASSWORD)
        ids = (a.id, b.id, c.id)
    return Keys(till_a, till_b, till_c, entrance_a, revoked_key, *ids)


def settings_for(database_url: str, index_dir: Path) -> CloudSettings:
    """The chain's server settings. Sign-in limits are lifted: every test here signs in from
    one address, as often as its table needs, and how many sign-ins fit the default bucket
    would depend on how long the run takes (the limits have their own tests)."""
    return CloudSettings(
        database_url=database_url,
        index_dir=index_dir,
        sync_interval_s=0.1,
        alert_poll_interval_s=0.1,
        auto_migrate=False,
        estimate_demographics=False,
        recognition=POLICY,
        login_ip_burst=10_000,
        login_ip_per_minute=10_000.0,
    )


def login(url: str, email: str) -> str:
    """A session token for the chain's user `email` (password PASSWORD), signed in over HTTP."""
    answer = httpx.post(
        url + "/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def checkout_body(
    shots: list[NDArray[np.float32]],
    *,
    loyalty_id: str | None = None,
    payment_token: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """A checkout as the kiosk sends it: f16 shots, one line item, fresh keys and numbers."""
    request = CheckoutRequest(
        idempotency_key=key or uuid.uuid4().hex,
        captured_at=datetime.now(UTC),
        receipt=ReceiptIn(
            number=uuid.uuid4().hex[:10],
            scanned_at=datetime.now(UTC),
            items=[
                LineItem(
                    sku="SKU-1",
                    name="Espresso beans",
                    category="coffee",
                    brand="Roastery",
                    quantity=1,
                    unit_price="10.00",
                )
            ],
            loyalty_id=loyalty_id,
            payment_token=payment_token,
        ),
        embeddings=[Embedding.compact([float(v) for v in s], 0.9) for s in shots],
    )
    return request.model_dump(mode="json", exclude_none=True)


def sighting_body(shots: list[NDArray[np.float32]]) -> dict[str, Any]:
    return {
        "captured_at": datetime.now(UTC).isoformat(),
        "embeddings": [
            Embedding.compact([float(v) for v in s], 0.9).model_dump(mode="json", exclude_none=True)
            for s in shots
        ],
    }


@dataclass
class Chain:
    """The running app and the chain's keys, with helpers that act as its devices."""

    url: str
    database_url: str
    keys: Keys
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(13))

    def request(
        self, method: str, path: str, key: str | None, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"X-API-Key": key} if key else {}
        return httpx.request(method, self.url + path, json=body, headers=headers, timeout=60)

    def unit(self) -> NDArray[np.float32]:
        v = self.rng.normal(size=128)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def near(self, centre: NDArray[np.float32], distance: float) -> NDArray[np.float32]:
        direction = self.rng.normal(size=128)
        return (centre + distance * direction / np.linalg.norm(direction)).astype(np.float32)

    def checkout(self, key: str, shots: list[NDArray[np.float32]]) -> dict[str, Any]:
        answer = self.request("POST", "/v1/checkouts", key, checkout_body(shots))
        assert answer.status_code == 200, answer.text
        card: dict[str, Any] = answer.json()["card"]
        return card

    def member(self, vip: str, *, seen_in: tuple[int, ...] = ()) -> tuple[int, NDArray[np.float32]]:
        """A member of store A (enrolled by A's till, joined there), also seen in the stores
        `seen_in`: a visit there, as a till's match at a checkout leaves (written directly, so
        the authorisation tests do not hang on recognition)."""
        face = self.unit()
        card = self.checkout(self.keys.till_a, [face, face])
        assert card["status"] == "new", card
        customer: int = card["customer_id"]
        joined = self.request(
            "PUT",
            f"/v1/customers/{customer}/membership",
            self.keys.till_a,
            {"vip_number": vip, "name": f"Member {vip}", "consent": True},
        )
        assert joined.status_code == 200, joined.text
        sessions = session_factory(make_engine(self.database_url))
        with transaction(sessions) as session:
            for store in seen_in:
                device = session.scalar(select(Device.id).where(Device.store_id == store).limit(1))
                assert device is not None
                session.add(
                    Visit(
                        customer_id=customer,
                        store_id=store,
                        device_id=device,
                        kind="checkout",
                        at=utcnow(),
                    )
                )
        return customer, face

    def pending_decision(self) -> int:
        """A "possible member" card at store A's till, not yet answered: its decision id."""
        _, face = self.member(f"P-{uuid.uuid4().hex[:8]}")
        probe = self.near(face, 0.25)
        card = self.checkout(self.keys.till_a, [probe, probe])
        assert card["status"] == "possible_member", card
        decision: int = card["decision_id"]
        return decision
