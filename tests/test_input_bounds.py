"""Issue 13, rows 1, 2, 11 and 12: untrusted input is bounded, refused with a 422 (or 413)
naming what was wrong, and never a 500 — over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from cloud_api import admin
from cloud_api.api.alert_stream import resume_point
from cloud_api.db.models import Customer, Receipt
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.reports import rollups, run_report
from cloud_api.services import demographics
from cloud_api.services.checkout import MAX_LIFETIME_SPEND
from cloud_api.services.context import Services
from cloud_api.services.errors import Unprocessable
from cloud_api.settings import CloudSettings
from contract import (
    MAX_CROP_BYTES,
    MAX_RECEIPT_TOTAL,
    MAX_VISIT_EMBEDDINGS,
    Demographics,
    FaceCrop,
    ReportFilters,
    jpeg_size,
)
from contract.bodies import CROP_SIZE
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve

pytestmark = pytest.mark.slow

TOO_BIG_ID = 2**63
PASSWORD = "correct horse battery"


@dataclass
class Api:
    url: str
    database_url: str
    till: str
    entrance: str
    store_id: int
    token: str

    def post(self, path: str, body: object, key: str | None = None) -> httpx.Response:
        return self.device("POST", path, body, key)

    def device(
        self, method: str, path: str, body: object = None, key: str | None = None
    ) -> httpx.Response:
        # escaped JSON: a lone surrogate travels as \ud800, as a hostile client would send it
        headers = {"X-API-Key": key or self.till, "Content-Type": "application/json"}
        content = None if body is None else json.dumps(body, ensure_ascii=True)
        return httpx.request(method, self.url + path, content=content, headers=headers, timeout=60)

    def report(self, name: str, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.get(
            f"{self.url}/v1/reports/{name}", params=params, headers=headers, timeout=60
        )


@pytest.fixture
def api(migrated_url: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811
    sessions = session_factory(make_engine(migrated_url))
    with transaction(sessions) as session:
        admin.create_region(session, "North")
        store = admin.create_store(session, "North", "N001", "North One")
        _, till = admin.create_device(session, "N001", "till", "till 1")
        _, entrance = admin.create_device(session, "N001", "entrance", "door")
        admin.create_user(session, "boss@example.com", "Boss", "head_office", PASSWORD)
        store_id = store.id
    settings = CloudSettings(
        database_url=migrated_url,
        index_dir=tmp_path / "index",
        auto_migrate=False,
        estimate_demographics=False,
    )
    with serve(settings) as server:
        login = httpx.post(
            server.url + "/v1/auth/login",
            json={"email": "boss@example.com", "password": PASSWORD},
            timeout=60,
        )
        assert login.status_code == 200, login.text
        yield Api(server.url, migrated_url, till, entrance, store_id, login.json()["token"])


def checkout(
    scanned_at: str | None = None,
    captured_at: str | None = None,
    **item: object,
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    line: dict[str, object] = {
        "sku": "SKU-1",
        "name": "Espresso beans",
        "category": "coffee",
        "brand": "Roastery",
        "quantity": "1",
        "unit_price": "12.50",
        **item,
    }
    return {
        "idempotency_key": uuid.uuid4().hex,
        "captured_at": captured_at or now,
        "receipt": {"number": "R-1", "scanned_at": scanned_at or now, "items": [line]},
    }


def refused(response: httpx.Response, field: str, status: int = 422) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "fields"}
    # request validation names where a parameter was (path.customer_id, query.sku)
    names = [f["field"].removeprefix("path.").removeprefix("query.") for f in body["fields"]]
    assert any(name == field or name.startswith(field + ".") for name in names), body


# ---- row 1: timestamps bounded against the server's clock ---------------------------------


def test_timestamps_outside_the_servers_window_are_refused(api: Api) -> None:
    far = "9999-12-31T23:59:59+14:00"
    refused(api.post("/v1/checkouts", checkout(scanned_at=far)), "receipt.scanned_at")
    refused(api.post("/v1/checkouts", checkout(captured_at=far)), "captured_at")
    year_one = "0001-01-01T00:00:00+14:00"
    refused(api.post("/v1/checkouts", checkout(scanned_at=year_one)), "receipt.scanned_at")
    now = datetime.now(UTC)
    stale = (now - timedelta(days=31)).isoformat()
    refused(api.post("/v1/checkouts", checkout(scanned_at=stale)), "receipt.scanned_at")
    ahead = (now + timedelta(hours=1)).isoformat()
    refused(api.post("/v1/checkouts", checkout(captured_at=ahead)), "captured_at")
    sighting = {"captured_at": far, "embeddings": [{"vector": [0.1] * 128, "quality": 0.9}]}
    refused(api.post("/v1/sightings", sighting, key=api.entrance), "captured_at")
    sighting["captured_at"] = stale
    refused(api.post("/v1/sightings", sighting, key=api.entrance), "captured_at")
    # an outbox replaying what a till queued while it was offline for days is still taken
    replay = (now - timedelta(days=29)).isoformat()
    answer = api.post("/v1/checkouts", checkout(scanned_at=replay, captured_at=replay))
    assert answer.status_code == 200, answer.text
    # and nothing refused reached the reports
    assert api.report("traffic").status_code == 200


def test_rollups_and_reports_survive_a_far_future_row_stored_before_validation(
    migrated_url: str,  # noqa: F811
) -> None:
    sessions = session_factory(make_engine(migrated_url))
    # what the API stored for scanned_at 9999-12-31T23:59:59+14:00 before it was validated
    at = datetime(9999, 12, 31, 9, 59, 59, tzinfo=UTC)
    with transaction(sessions) as session:
        admin.create_region(session, "North")
        store = admin.create_store(session, "North", "N001", "North One")
        till, _ = admin.create_device(session, "N001", "till", "till 1")
    rollups.ensure_fresh(sessions)  # the first refresh rebuilds; later ones take slices
    with transaction(sessions) as session:
        session.add(
            Receipt(
                store_id=store.id,
                device_id=till.id,
                idempotency_key="far-future",
                number="R-far",
                currency="EUR",
                total=Decimal("1.00"),
                scanned_at=at,
                response={},
                items=[],
            )
        )
        store_id = store.id
    assert rollups.ensure_fresh(sessions).mode == "slices"  # was OverflowError: date value...
    today = datetime.now(UTC).date()
    filters = ReportFilters(date_from=today - timedelta(days=6), date_to=today, store_id=store_id)
    assert run_report(sessions, "traffic", filters).rows
    last = ReportFilters(date_from=date(8999, 12, 1), date_to=date(8999, 12, 31))
    assert run_report(sessions, "basket", last).rows


# ---- row 2: face crops checked from the header, decoded outside the shared lock ----------


def crafted_jpeg(width: int, height: int) -> bytes:
    """A real tiny JPEG whose frame header claims width x height."""
    ok, encoded = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    assert ok
    raw = bytearray(encoded.tobytes())
    at = raw.index(b"\xff\xc0")
    struct.pack_into(">HH", raw, at + 5, height, width)
    assert jpeg_size(bytes(raw)) == (width, height)
    return bytes(raw)


def crop_of(raw: bytes) -> dict[str, str]:
    return {"jpeg_base64": base64.b64encode(raw).decode("ascii")}


@pytest.mark.parametrize("side", [30000, 60000])
def test_a_crop_claiming_a_huge_size_is_refused_before_any_decode(
    api: Api, side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("the crop was decoded")

    monkeypatch.setattr(cv2, "imdecode", never)  # the one cv2 module the server uses
    raw = crafted_jpeg(side, side)
    assert len(raw) < 1024
    body = checkout()
    body["face_crop"] = crop_of(raw)
    refused(api.post("/v1/checkouts", body), "face_crop")
    sighting = {
        "captured_at": datetime.now(UTC).isoformat(),
        "embeddings": [{"vector": [0.1] * 128, "quality": 0.9}],
        "face_crop": crop_of(raw),
    }
    refused(api.post("/v1/sightings", sighting, key=api.entrance), "face_crop")


def test_decode_crop_checks_the_header_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real = cv2.imdecode

    def recording(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(cv2, "imdecode", recording)
    for side in (30000, 60000, CROP_SIZE + 1):
        # past the contract's own check (which refuses it first), as a caller might build it
        crop = FaceCrop.model_construct(
            jpeg_base64=crop_of(crafted_jpeg(side, side))["jpeg_base64"]
        )
        with pytest.raises(Unprocessable, match="face_crop: the JPEG header claims"):
            demographics.decode_crop(crop)
    assert calls == []
    ok, encoded = cv2.imencode(".jpg", np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8))
    chip = demographics.decode_crop(FaceCrop(jpeg_base64=crop_of(encoded.tobytes())["jpeg_base64"]))
    assert chip.shape == (CROP_SIZE, CROP_SIZE, 3) and len(calls) == 1


def test_a_crop_is_decoded_before_the_models_and_never_by_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The untrusted JPEG is decoded (after its header check) by `prepare`, on the request's
    own thread; the shared models only ever see the decoded chips. (No lock is held at all:
    onnxruntime sessions run concurrently, see test_age_gender.)"""
    events: list[str] = []
    real = demographics.decode_crop

    def decode(crop: FaceCrop) -> Any:
        events.append("decode")
        return real(crop)

    class Estimator:
        def infer(self, chips: demographics.Chips) -> Demographics:
            events.append("infer")
            return Demographics(
                age_years=30, age_confidence=1, gender="female", gender_confidence=1
            )

    monkeypatch.setattr(demographics, "decode_crop", decode)
    services = Services(
        settings=CloudSettings(),
        sessions=None,  # type: ignore[arg-type]
        recognizer=None,  # type: ignore[arg-type]
        demographics=Estimator(),  # type: ignore[arg-type]
    )
    ok, encoded = cv2.imencode(".jpg", np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8))
    assert services.estimate(FaceCrop(**crop_of(encoded.tobytes()))) is not None
    assert events == ["decode", "infer"]


# ---- row 11: ids, Last-Event-ID, far report dates ----------------------------------------


def test_ids_beyond_64_bits_are_refused_not_500(api: Api) -> None:
    membership = {"vip_number": "V-1", "name": "Alex", "consent": True}
    for method, path, body in (
        ("GET", f"/v1/customers/{TOO_BIG_ID}", None),
        ("GET", f"/v1/customers/{TOO_BIG_ID}/history", None),
        ("PUT", f"/v1/customers/{TOO_BIG_ID}/membership", membership),
        ("DELETE", f"/v1/customers/{TOO_BIG_ID}", None),
        ("POST", f"/v1/decisions/{TOO_BIG_ID}/confirm", None),
        ("POST", f"/v1/decisions/{TOO_BIG_ID}/reject", None),
        ("GET", f"/v1/stores/{TOO_BIG_ID}/alerts", None),
        ("GET", f"/v1/customers/{-TOO_BIG_ID}", None),
    ):
        response = api.device(method, path, body)
        refused(response, path.split("/")[2][:-1] + "_id" if "stores" not in path else "store_id")
    for param in ("store", "region"):
        refused(api.report("traffic", **{param: str(TOO_BIG_ID)}), param)
    for param in ("days", "limit"):
        refused(api.report("retention", **{param: str(10**30)}), param)


def test_far_report_dates_are_refused_not_500(api: Api) -> None:
    refused(api.report("traffic", **{"from": "9999-12-25"}), "from")
    refused(api.report("traffic", **{"from": "9999-12-25", "to": "9999-12-31"}), "from")
    refused(api.report("traffic", to="0001-01-01"), "to")
    refused(api.report("forecast", to="9999-12-31"), "to")
    assert api.report("traffic", **{"from": "2026-01-01", "to": "2026-01-31"}).status_code == 200


def test_last_event_id_out_of_range_restarts_cleanly(api: Api) -> None:
    assert resume_point(None) is None
    assert resume_point("41") == 41
    for bad in (str(10**23), "abc", "-1", "٣", " ", str(TOO_BIG_ID)):
        assert resume_point(bad) is None, bad
    for header in (str(10**23), "not-a-number"):
        url = f"{api.url}/v1/stores/{api.store_id}/alerts"
        headers = {"X-API-Key": api.till, "Last-Event-ID": header}
        with httpx.stream("GET", url, headers=headers, timeout=60) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines) == ": connected"
            assert next(lines) == ""
            assert next(lines) == "id: 0"  # from now on: no alert yet in this store


# ---- row 12: control characters, a total the columns cannot hold -------------------------


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\n", "\ud800"])
def test_control_characters_are_refused_on_both_backends(api: Api, char: str) -> None:
    for field in ("sku", "name", "category", "brand"):
        refused(api.post("/v1/checkouts", checkout(**{field: f"A{char}B"})), "receipt.items.0")
    body = checkout()
    body["receipt"]["number"] = f"R{char}1"
    refused(api.post("/v1/checkouts", body), "receipt.number")
    membership = {"vip_number": "V-1", "name": f"Alex{char}", "consent": True}
    refused(api.device("PUT", "/v1/customers/1/membership", membership), "name")
    membership = {"vip_number": f"V{char}1", "name": "Alex", "consent": True}
    refused(api.device("PUT", "/v1/customers/1/membership", membership), "vip_number")
    if char != "\ud800":  # a URL cannot carry a lone surrogate at all
        refused(api.report("portrait", sku=f"A{char}B"), "sku")


def test_a_receipt_total_the_columns_cannot_hold_is_refused(api: Api) -> None:
    # the contract's own maxima: quantity 9,999,999.999 at 9,999,999,999.99 each
    biggest = checkout(quantity="9999999.999", unit_price="9999999999.99")
    refused(api.post("/v1/checkouts", biggest), "receipt")
    many = checkout(quantity="2", unit_price=str(MAX_RECEIPT_TOTAL))
    refused(api.post("/v1/checkouts", many), "receipt")
    # the largest total accepted is stored, on PostgreSQL's NUMERIC columns too
    largest = checkout(quantity="1", unit_price=str(MAX_RECEIPT_TOTAL))
    answer = api.post("/v1/checkouts", largest)
    assert answer.status_code == 200, answer.text
    assert api.report("basket").status_code == 200


def test_a_members_lifetime_spend_saturates_instead_of_overflowing(api: Api) -> None:
    sessions = session_factory(make_engine(api.database_url))
    with transaction(sessions) as session:
        store = admin.get_store(session, "N001")
        member = Customer(
            region_id=store.region_id,
            first_store_id=store.id,
            vip_number="V-RICH",
            name="Rich",
            level="gold",
            consent_at=datetime.now(UTC),
            lifetime_spend=MAX_LIFETIME_SPEND - 1,
        )
        session.add(member)
        session.flush()
        member_id = member.id
    body = checkout(quantity="1", unit_price=str(MAX_RECEIPT_TOTAL))
    body["receipt"]["loyalty_id"] = "V-RICH"
    answer = api.post("/v1/checkouts", body)
    assert answer.status_code == 200, answer.text  # 500 on PostgreSQL: numeric field overflow
    assert answer.json()["card"]["customer_id"] == member_id
    with sessions() as session:
        stored = session.get(Customer, member_id)
        assert stored is not None and stored.lifetime_spend == MAX_LIFETIME_SPEND


# ---- one body-size limit for every endpoint -----------------------------------------------


def test_bodies_over_the_limit_are_refused_with_413_before_parsing(api: Api) -> None:
    limit = CloudSettings().max_request_bytes
    oversized = b"{" + b" " * limit + b"}"
    for path in ("/v1/checkouts", "/v1/sightings", "/v1/auth/login", "/v1/customers/1/membership"):
        response = httpx.post(
            api.url + path, content=oversized, headers={"X-API-Key": api.till}, timeout=60
        )
        refused_413 = (
            response.status_code == 413 and response.json()["error"] == "payload_too_large"
        )
        assert refused_413, (path, response.status_code, response.text[:200])

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = httpx.post(
        api.url + "/v1/checkouts", content=chunks(), headers={"X-API-Key": api.till}, timeout=60
    )
    assert response.status_code == 413, response.text[:200]
    # a body within the limit still arrives whole
    assert api.post("/v1/checkouts", checkout()).status_code == 200


def test_the_largest_valid_checkout_fits_the_default_limit() -> None:
    """Every field at its maximum, every character escaped as JSON may escape it."""
    crop = {"jpeg_base64": "A" * ((MAX_CROP_BYTES * 4) // 3 + 4)}
    vector = {"vector": [-0.012345678901234567] * 128, "quality": 0.123456789}
    embeddings = [vector] * MAX_VISIT_EMBEDDINGS
    astral = "\U0001f600"  # 12 bytes as \ud83d\ude00
    item = {
        "sku": astral * 64,
        "name": astral * 200,
        "category": astral * 100,
        "brand": astral * 100,
        "quantity": "9999999.999",
        "unit_price": "9999999999.99",
    }
    body = {
        "idempotency_key": "k" * 128,
        "captured_at": "2026-11-25T10:00:00.123456+14:00",
        "receipt": {
            "number": astral * 64,
            "currency": "EUR",
            "scanned_at": "2026-11-25T10:00:00.123456+14:00",
            "items": [item] * 500,
            "loyalty_id": "9" * 32,
            "payment_token": "f" * 64,
        },
        "embeddings": embeddings,
        "face_crop": crop,
        "companions": [{"embeddings": embeddings, "face_crop": crop}] * 5,
    }
    size = len(json.dumps(body, ensure_ascii=True).encode())
    assert size < CloudSettings().max_request_bytes, size


def test_a_disconnect_while_the_body_arrives_is_not_an_error(api: Api) -> None:
    """The limit reads the body before the app: a client going away mid-body ends quietly."""
    done = threading.Event()

    def slow_client() -> None:
        try:
            with httpx.Client(timeout=5) as client:

                def partial() -> Iterator[bytes]:
                    yield b'{"idempotency_key": '
                    raise ConnectionError("client gone")

                client.post(api.url + "/v1/checkouts", content=partial())
        except Exception:  # the point is that the client gave up
            pass
        finally:
            done.set()

    threading.Thread(target=slow_client, daemon=True).start()
    assert done.wait(60)
    assert api.post("/v1/checkouts", checkout()).status_code == 200
