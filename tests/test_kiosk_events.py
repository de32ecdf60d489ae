"""The kiosk's typed events: JSON lines that read back into the same objects, and refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from kiosk_app.events import (
    BestShot,
    CardReceived,
    CheckoutQueued,
    EventCollector,
    InvalidEvent,
    JsonLinesWriter,
    KioskEvent,
    ReceiptReceived,
    ReceiptScanned,
    ScanCaptured,
    SightingReported,
    TrackEnded,
    TrackStarted,
    parse_event,
)

ENDED = TrackEnded(
    track_id=3,
    first_seen=0.48,
    last_seen=4.2,
    frames=90,
    role="primary",
    shots=5,
    quality=0.7311,
    best_quality=0.8123,
    embedding=tuple(round(0.0123456 * (i - 64), 6) for i in range(128)),
)
#: One event of every kind, with the values the kiosk gives them.
SAMPLES: list[KioskEvent] = [
    TrackStarted(track_id=3, frame=12, t=0.48, box=(101.5, 40.0, 180.2, 131.9)),
    BestShot(track_id=3, frame=14, t=0.56, quality=0.8123),
    ENDED,
    # a track that never had a shot good enough: no embedding
    ENDED.model_copy(update={"track_id": 4, "role": "passer_by", "shots": 0, "embedding": None}),
    ReceiptScanned(number="R-1001", already_bound=False),
    ReceiptReceived(number="R-1001", source="folder:till-1.csv"),
    ScanCaptured(number="R-1001", track_id=None, opted_out=True),
    CheckoutQueued(
        number="R-1001",
        idempotency_key="5f0c",
        track_id=3,
        companions=(5, 7),
        embeddings=4,
        opted_out=False,
        scanned=True,
        bytes=9876,
    ),
    CardReceived(
        idempotency_key="5f0c",
        receipt_id=41,
        customer_id=None,
        status="possible_member",
        visit_count=0,
        member=False,
        purchase_level="new",
        decision_id=17,
        track_id=3,
        latency_ms=812.4,
    ),
    SightingReported(track_id=9, customer_id=2, status="returning", is_vip=True, visitors_today=31),
]


def test_every_kind_of_event_has_a_sample() -> None:
    (union, _) = get_args(KioskEvent)
    assert {type(e) for e in SAMPLES} == set(get_args(union))


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{e.event}")
def test_an_event_reads_back_from_its_json_line_as_an_equal_object(event: KioskEvent) -> None:
    stream = io.StringIO()
    JsonLinesWriter(stream)(event)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert line.startswith(f'{{"event":"{event.event}",')  # the kind first, as before
    back = parse_event(line)
    assert type(back) is type(event) and back == event


def test_a_line_keeps_the_shape_of_the_events_written_as_dicts() -> None:
    """The lines other programs follow: the same keys, order and values as before the classes."""
    started = TrackStarted(track_id=3, frame=12, t=0.48, box=(101.5, 40.0, 180.2, 131.9))
    before: dict[str, object] = {
        "event": "track_started",
        "track_id": 3,
        "frame": 12,
        "t": 0.48,
        "box": [101.5, 40.0, 180.2, 131.9],
    }
    assert started.model_dump_json() == json.dumps(before, separators=(",", ":"))
    queued = next(e for e in SAMPLES if isinstance(e, CheckoutQueued))
    assert json.loads(queued.model_dump_json()) == {
        "event": "checkout_queued",
        "number": "R-1001",
        "idempotency_key": "5f0c",
        "track_id": 3,
        "companions": [5, 7],
        "embeddings": 4,
        "opted_out": False,
        "scanned": True,
        "bytes": 9876,
    }


def test_the_writer_appends_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    for batch in (SAMPLES[:2], SAMPLES[2:]):
        writer = JsonLinesWriter(path)
        for event in batch:
            writer(event)
        writer.close()
    assert [parse_event(line) for line in path.read_text().splitlines()] == SAMPLES


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"event":"teleported","track_id":1}', "Input tag 'teleported' found using 'event'"),
        ('{"track_id":1,"frame":2}', "Unable to extract tag using discriminator 'event'"),
        ('{"event":"best_shot","track_id":1,"frame":2,"t":0.1}', "best_shot.quality: Field"),
        (
            '{"event":"receipt_scanned","number":"R-1","already_bound":false,"pass":2}',
            "receipt_scanned.pass: Extra inputs are not permitted",
        ),
        (
            '{"event":"sighting","track_id":1,"customer_id":null,"status":"vip",'
            '"is_vip":true,"visitors_today":3}',
            "sighting.status: Input should be 'new' or 'returning'",
        ),
        (
            '{"event":"track_ended","track_id":1,"first_seen":0,"last_seen":1,"frames":2,'
            '"role":"cashier","shots":0,"quality":0,"best_quality":0,"embedding":null}',
            "track_ended.role: Input should be 'primary', 'companion' or 'passer_by'",
        ),
        ("not json", "Invalid JSON"),
    ],
)
def test_a_line_that_is_not_a_kiosk_event_is_refused_with_the_reason(
    line: str, message: str
) -> None:
    with pytest.raises(InvalidEvent, match="^not a kiosk event: ") as refused:
        parse_event(line)
    assert message in str(refused.value)


def test_events_are_frozen_and_refuse_unknown_fields() -> None:
    shot = BestShot(track_id=1, frame=2, t=0.1, quality=0.5)
    with pytest.raises(ValidationError, match="frozen"):
        shot.quality = 0.9  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        BestShot(track_id=1, frame=2, t=0.1, quality=0.5, pass_no=1)  # type: ignore[call-arg]


def test_the_collector_returns_only_events_of_the_class_asked_in_order() -> None:
    collector = EventCollector()
    for event in SAMPLES:
        collector(event)
    ended = collector.of(TrackEnded)
    assert ended == [SAMPLES[2], SAMPLES[3]]
    assert all(type(e) is TrackEnded for e in ended)
    assert collector.of(SightingReported) == [SAMPLES[-1]]
    assert collector.of(ReceiptReceived)[0].source == "folder:till-1.csv"  # typed: attributes
    assert collector.events == SAMPLES
