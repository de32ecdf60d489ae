"""The whole system end to end: cloud API process, kiosk service on a real clip, receipts
posted to the till's local endpoint by a simulated POS, two passes (issue 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud_api.db.models import Customer, FaceSample, Receipt, Sighting, Store, Visit
from cloud_api.db.session import make_engine, session_factory
from models.store import ModelStore
from tests.conftest import require

pytestmark = pytest.mark.slow


def test_demo_stores_every_receipt_once_and_recognises_returning_faces(
    data_dir: Path, tmp_path: Path, store: ModelStore
) -> None:
    from demo import run as demo

    clip = require(data_dir / "video" / "facenet-pytorch_video.mp4")
    summary_path = tmp_path / "summary.json"
    assert (
        demo.main(
            ["--source", str(clip), "--dir", str(tmp_path / "demo"), "--summary", str(summary_path)]
        )
        == 0
    )
    summary = json.loads(summary_path.read_text())
    assert {
        "checkouts",
        "stored",
        "returning",
        "latency_p50_ms",
        "latency_p95_ms",
        "bytes_per_checkout",
    } <= set(summary)
    assert summary["checkouts"] >= 2
    assert summary["stored"] == summary["checkouts"]  # every receipt stored, once
    # head office's reports, read over HTTP as a signed-in user, agree with the receipts
    assert summary["report_transactions"] == summary["stored"]
    # a fresh database: everyone recognised first bought within the report's period
    assert summary["report_new_customers"] == summary["report_buyers"] >= 1
    assert summary["report_returning_customers"] == 0

    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'demo' / 'cloud.db'}"))
    with sessions() as session:
        keys = session.scalars(select(Receipt.idempotency_key)).all()
        bound = session.scalar(
            select(func.count()).select_from(Receipt).where(Receipt.customer_id.is_not(None))
        )
    assert len(keys) == len(set(keys)) == summary["checkouts"]
    assert bound and bound >= summary["checkouts"] - 1
    assert summary["returning_second_pass"] >= 1  # the same people, recognised on pass two
    assert summary["bytes_per_checkout"] < 16_000  # descriptors and one small chip, no frames
    # the clip again through the entrance camera: the member who joined after pass one walks
    # in, and the store's staff app lists the arrival (read over HTTP as a store_staff user)
    assert summary["entrance_sightings"] >= 1
    assert summary["staff_app_member_arrivals"] >= 1


def test_demo_in_store_store_reaches_head_office_as_aggregates_only(
    data_dir: Path, tmp_path: Path, store: ModelStore
) -> None:
    from demo import run as demo

    clip = require(data_dir / "video" / "facenet-pytorch_video.mp4")
    summary_path = tmp_path / "summary.json"
    argv = ["--source", str(clip), "--dir", str(tmp_path / "demo"), "--summary", str(summary_path)]
    assert demo.main([*argv, "--in-store"]) == 0
    summary = json.loads(summary_path.read_text())
    in_store = summary["in_store_stored_in_store"]
    assert summary["in_store_store"] == "DEMO-2"
    assert in_store == summary["in_store_checkouts"] >= 1  # every checkout kept in the store
    # head office reports it beside the cloud store, from the aggregates its server sent
    assert summary["head_office_demo_2_mode"] == "store"
    assert summary["head_office_demo_2_transactions"] == in_store
    assert summary["head_office_demo_1_mode"] == "cloud"
    assert summary["head_office_demo_1_transactions"] == summary["stored"]
    assert summary["report_transactions"] == summary["stored"] + in_store
    # and holds nothing personal of it
    assert summary["in_store_receipts_at_head_office"] == 0
    head_office = session_factory(make_engine(f"sqlite:///{tmp_path / 'demo' / 'cloud.db'}"))
    with head_office() as session:
        store_id = session.scalar(select(Store.id).where(Store.code == "DEMO-2"))
        for model in (Receipt, Sighting, Visit, FaceSample):
            found = select(func.count()).select_from(model).where(model.store_id == store_id)
            assert session.scalar(found) == 0, model.__tablename__
        enrolled = select(func.count()).where(Customer.first_store_id == store_id)
        assert session.scalar(enrolled) == 0
    in_store_db = session_factory(
        make_engine(f"sqlite:///{tmp_path / 'demo' / 'store' / 'store.db'}")
    )
    with in_store_db() as session:  # where the faces are
        assert session.scalar(select(func.count()).select_from(Receipt)) == in_store
        assert session.scalar(select(func.count()).select_from(FaceSample))
