"""The whole system end to end: cloud API process, kiosk service on a real clip, receipts
posted to the till's local endpoint by a simulated POS, two passes (issue 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud_api.db.models import Receipt
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
