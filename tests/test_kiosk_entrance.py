"""Entrance mode: no receipts; every visitor reported once; a member's arrival is an alert."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from cloud_api.db.models import AlertEvent, Sighting
from cloud_api.db.session import make_engine, session_factory
from kiosk_app.events import CheckoutQueued, EventCollector, SightingReported
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.service import KioskService
from models.store import ModelStore
from tests.conftest import require

pytestmark = pytest.mark.slow


def test_entrance_reports_visitors_and_raises_vip_arrivals(
    data_dir: Path, tmp_path: Path, store: ModelStore
) -> None:
    from demo import run as demo

    clip = str(require(data_dir / "video" / "facenet-pytorch_video.mp4"))
    demo.DEMO_DIR = tmp_path / "demo"
    (demo.DEMO_DIR / "logs").mkdir(parents=True)
    database = f"sqlite:///{demo.DEMO_DIR / 'cloud.db'}"
    keys = demo.setup_cloud(database)
    port = demo.free_port()
    cloud = f"http://127.0.0.1:{port}"
    process = demo.start_cloud(database, port, demo.DEMO_DIR / "logs")
    try:
        till_events = EventCollector()
        demo.run_pass(1, clip, cloud, keys, till_events)  # customers enrolled at the till
        member = demo.enrol_first_member(cloud, keys["till"], till_events)
        assert member is not None

        events = EventCollector()
        config = KioskConfig(
            mode="entrance",
            detector=demo.kiosk_detector(clip),
            source=clip,
            cloud_url=cloud,
            api_key=keys["entrance"],
            device="door-1",
            receipts_port=0,
            data_dir=tmp_path / "entrance",
        )
        service = KioskService(config, events)
        service.start()
        service.source_ended.wait(timeout=300)
        service.stop()
    finally:
        process.terminate()
        process.wait(timeout=30)

    sightings = events.of(SightingReported)
    assert len(sightings) >= 3
    assert len({s.track_id for s in sightings}) == len(sightings)  # one report per visitor
    assert any(s.is_vip and s.customer_id == member for s in sightings)
    assert not events.of(CheckoutQueued)  # no receipts at the door
    sessions = session_factory(make_engine(database))
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Sighting))
        alerts = session.scalars(select(AlertEvent.customer_id)).all()
    assert stored == len(sightings)
    assert list(alerts) == [member]  # one alert, however often the member is seen
