"""Who may do what, row by row (issue 13 rows 3, 4, 5 and 20), over real HTTP on SQLite and
PostgreSQL. The whole policy at a glance is tests/test_authorisation_matrix.py."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cloud_api import admin
from cloud_api.db.models import Customer, Device, Receipt
from cloud_api.db.session import make_engine, session_factory, transaction
from tests.cloud_fixtures import module_migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve
from tests.store_chain import Chain, build_chain, checkout_body, settings_for, sighting_body

pytestmark = pytest.mark.slow

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def chain(
    module_migrated_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    keys = build_chain(module_migrated_url)
    settings = settings_for(module_migrated_url, tmp_path_factory.mktemp("index"))
    with serve(settings) as server:
        yield Chain(server.url, module_migrated_url, keys)


def _count(chain: Chain, model: type[Customer] | type[Receipt]) -> int:
    with session_factory(make_engine(chain.database_url))() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_an_entrance_key_does_only_what_an_entrance_does(chain: Chain) -> None:
    """Row 3: an entrance device's key may not post checkouts, answer a possible-member card
    or read customers; a till's key may not post sightings."""
    keys = chain.keys
    customer, face = chain.member(f"E-{uuid.uuid4().hex[:8]}")
    decision = chain.pending_decision()
    customers, receipts = _count(chain, Customer), _count(chain, Receipt)

    refused = chain.request("POST", "/v1/checkouts", keys.entrance_a, checkout_body([face]))
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "forbidden" and "till" in refused.json()["detail"]
    assert (_count(chain, Customer), _count(chain, Receipt)) == (customers, receipts)
    for action in ("confirm", "reject"):
        answer = chain.request("POST", f"/v1/decisions/{decision}/{action}", keys.entrance_a)
        assert answer.status_code == 403, answer.text
    for method, path in (
        ("GET", f"/v1/customers/{customer}"),
        ("GET", f"/v1/customers/{customer}/history"),
        ("DELETE", f"/v1/customers/{customer}"),
    ):
        assert chain.request(method, path, keys.entrance_a).status_code == 403, path
    sighting = chain.request("POST", "/v1/sightings", keys.till_a, sighting_body([face]))
    assert sighting.status_code == 403
    # what each kind is for still works
    assert chain.request("POST", "/v1/sightings", keys.entrance_a, sighting_body([face])).is_success
    assert chain.request("POST", f"/v1/decisions/{decision}/reject", keys.till_a).is_success
    assert chain.request("GET", "/v1/device", keys.entrance_a).json()["kind"] == "entrance"


@dataclass
class Follower:
    """One alert stream, read in a thread: its alerts, and whether the server closed it."""

    chain: Chain
    key: str
    connected: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alerted: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._listen, daemon=True).start()
        assert self.connected.wait(DEADLINE_S), "the alert stream did not open"

    def _listen(self) -> None:
        url = f"{self.chain.url}/v1/stores/{self.chain.keys.store_a}/alerts"
        timeout = httpx.Timeout(10.0, read=DEADLINE_S * 2)
        try:
            with httpx.stream("GET", url, headers={"X-API-Key": self.key}, timeout=timeout) as s:
                for line in s.iter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    if line.startswith("data: "):
                        self.alerts.append(json.loads(line[6:]))
                        self.alerted.set()
                        return  # hang up: an open stream would hold the server's shutdown
            self.closed.set()  # the server ended the stream
        except httpx.HTTPError:
            pass


def test_a_revoked_keys_open_alert_stream_ends_and_hears_no_more(chain: Chain) -> None:
    """Row 4: open a stream, revoke its key (`admin revoke-device`), a VIP arrives: the revoked
    stream receives nothing of it and is closed; a stream on a valid key hears the arrival."""
    sessions = session_factory(make_engine(chain.database_url))
    with transaction(sessions) as session:
        device, doomed_key = admin.create_device(session, "N001", "till", "staff tablet")
        session.flush()
        doomed_id = device.id
    vip = f"R-{uuid.uuid4().hex[:8]}"
    customer, face = chain.member(vip)
    doomed, control = Follower(chain, doomed_key), Follower(chain, chain.keys.till_a)
    doomed.start()
    control.start()

    with transaction(sessions) as session:
        admin.revoke_device(session, doomed_id)
    arrival = chain.request(
        "POST", "/v1/sightings", chain.keys.entrance_a, sighting_body([face, face])
    )
    assert arrival.status_code == 200, arrival.text
    assert arrival.json()["is_vip"] is True and arrival.json()["customer_id"] == customer

    assert control.alerted.wait(DEADLINE_S), "the valid key's stream heard no arrival"
    assert control.alerts[0]["vip_number"] == vip
    assert doomed.closed.wait(DEADLINE_S), "the revoked key's stream was not closed"
    assert doomed.alerts == []
    with sessions() as session:
        assert session.get(Device, doomed_id) is not None
    # and it cannot open again
    again = chain.request("GET", f"/v1/stores/{chain.keys.store_a}/alerts", doomed_key)
    assert again.status_code == 401


def test_a_member_is_changed_and_deleted_only_in_their_home_region(chain: Chain) -> None:
    """Row 5: tills in store B (A's region) and C (another region) got a match on a member of
    store A: both may read what their store saw; C may neither rename nor delete them."""
    keys = chain.keys
    vip = f"H-{uuid.uuid4().hex[:8]}"
    customer, face = chain.member(vip)
    for till in (keys.till_b, keys.till_c):  # the match
        card = chain.checkout(till, [face, face])
        assert card["customer_id"] == customer and card["member"]["vip_number"] == vip, card
    path = f"/v1/customers/{customer}"
    rename = {"vip_number": "STOLEN-1", "name": "Mallory", "consent": True}

    assert chain.request("GET", path, keys.till_c).status_code == 200
    refused = chain.request("PUT", path + "/membership", keys.till_c, rename)
    assert refused.status_code == 403, refused.text
    assert "region" in refused.json()["detail"]
    assert chain.request("DELETE", path, keys.till_c).status_code == 403
    unchanged = chain.request("GET", path, keys.till_a).json()["member"]
    assert unchanged["vip_number"] == vip and unchanged["name"] == f"Member {vip}"

    # the home region's other store may (the policy: home region, see customers.py)
    moved = {"vip_number": vip, "name": "Member renamed at B", "consent": True}
    assert chain.request("PUT", path + "/membership", keys.till_b, moved).status_code == 200
    assert chain.request("DELETE", path, keys.till_b).status_code == 204
    assert chain.request("GET", path, keys.till_a).status_code == 404


def test_another_stores_customer_is_indistinguishable_from_a_missing_one(chain: Chain) -> None:
    """Row 20: store B's till asking for store A's customer gets what it gets for an id that
    does not exist: the same status and the same body but for the id."""
    customer, _ = chain.member(f"N-{uuid.uuid4().hex[:8]}")
    missing = customer + 10_000_000
    membership = {"vip_number": "X-1", "name": "X", "consent": True}
    for method, template, body in (
        ("GET", "/v1/customers/{}", None),
        ("GET", "/v1/customers/{}/history", None),
        ("PUT", "/v1/customers/{}/membership", membership),
        ("DELETE", "/v1/customers/{}", None),
    ):
        elsewhere = chain.request(method, template.format(customer), chain.keys.till_b, body)
        absent = chain.request(method, template.format(missing), chain.keys.till_b, body)
        assert elsewhere.status_code == absent.status_code == 404, (method, template)
        shown = elsewhere.text.replace(str(customer), "ID")
        assert shown == absent.text.replace(str(missing), "ID"), (method, template)
    assert chain.request("GET", f"/v1/customers/{customer}", chain.keys.till_a).status_code == 200
