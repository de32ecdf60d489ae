"""The kiosk vision pipeline: tracker, quality, primary customer, and the real clip end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelib.config import DetectorSettings
from facelib.types import Box, Detection
from kiosk_app.events import EventCollector, TrackEnded, TrackStarted, parse_event
from kiosk_app.pipeline import FrameResult, weighted_descriptor
from kiosk_app.quality import geometry_quality, sharpness
from kiosk_app.runner import run
from kiosk_app.settings import PipelineSettings
from kiosk_app.tracking import Tracker, TrackerSettings, TrackState
from kiosk_app.zone import Candidate, CounterZone, assign_roles
from models.store import ModelStore
from tests.conftest import require


def _face(cx: float, cy: float, w: float = 60.0, *, yaw: float = 0.0) -> Detection:
    eyes = w * 0.4
    landmarks = np.array(
        [
            [cx - eyes / 2, cy - w * 0.1],
            [cx + eyes / 2, cy - w * 0.1],
            [cx + yaw * eyes, cy + w * 0.08],
            [cx + yaw * eyes * 0.5, cy + w * 0.25],
        ],
        dtype=np.float32,
    )
    return Detection(
        box=Box(cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2),
        score=0.9,
        landmarks=landmarks,
        raw_keypoints=landmarks,
        detector="test",
    )


# ---- tracker ----------------------------------------------------------------------------------


def test_tracks_are_confirmed_then_keep_their_id_through_a_short_gap() -> None:
    tracker = Tracker(TrackerSettings(min_hits=3, max_lost_s=0.5))
    ids = set()
    for i in range(10):  # one face walking right, 5 px a frame at 25 fps; missing in frames 5-7
        detections = [] if 5 <= i <= 7 else [_face(100 + 5 * i, 100)]
        update = tracker.update(detections, i / 25)
        ids |= {t.id for t in update.active}
        if i == 2:
            assert [t.id for t in update.started] == [1]
        if i == 6:
            assert update.active[0].state is TrackState.LOST
    assert ids == {1}
    assert tracker.tracks[0].state is TrackState.CONFIRMED


def test_a_lost_track_ends_after_max_lost_and_tentative_tracks_vanish() -> None:
    tracker = Tracker(TrackerSettings(min_hits=3, max_lost_s=0.2))
    for i in range(4):
        tracker.update([_face(100, 100)], i / 25)
    tracker.update([_face(400, 100)], 4 / 25)  # a one-frame false detection elsewhere
    ended = []
    for i in range(5, 20):
        ended += tracker.update([], i / 25).ended
    assert [t.id for t in ended] == [1]
    assert tracker.tracks == []


def test_two_faces_passing_each_other_keep_their_ids() -> None:
    tracker = Tracker(TrackerSettings(min_hits=2))
    seen: dict[int, list[float]] = {}
    for i in range(30):
        left = _face(100 + 10 * i, 100, w=50)  # moving right
        right = _face(400 - 10 * i, 160, w=70)  # moving left, lower and larger
        update = tracker.update([left, right], i / 25)
        for track in update.active:
            seen.setdefault(track.id, []).append(track.box.width)
    assert len(seen) == 2
    widths = {round(float(np.mean(w))) for w in seen.values()}
    assert widths == {50, 70}  # neither track took the other face


# ---- quality and roles ------------------------------------------------------------------------


def test_quality_prefers_frontal_large_sharp_faces() -> None:
    frontal, turned = geometry_quality(_face(100, 100)), geometry_quality(_face(100, 100, yaw=0.4))
    assert frontal.frontal > turned.frontal
    small = geometry_quality(_face(100, 100, w=20))
    assert small.size < frontal.size
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 255, (150, 150, 3)).astype(np.uint8)
    blurred = np.asarray(cv2.GaussianBlur(chip, (0, 0), 4), dtype=np.uint8)
    assert sharpness(chip) > sharpness(blurred)


def test_primary_customer_is_the_largest_confirmed_face_in_the_zone() -> None:
    zone = CounterZone(((0.25, 0.0), (0.75, 0.0), (0.75, 1.0), (0.25, 1.0)))
    w, h = 1000, 1000
    candidates = [
        Candidate(1, Box(400, 400, 500, 500), True, 5.0),  # in zone, 100 px
        Candidate(2, Box(600, 400, 740, 540), True, 1.0),  # in zone, 140 px: largest
        Candidate(3, Box(50, 400, 250, 600), True, 9.0),  # outside: the queue, a passer-by
        Candidate(4, Box(300, 300, 600, 600), False, 0.1),  # tentative: never primary
    ]
    roles = assign_roles(candidates, zone, w, h)
    assert roles == {1: "companion", 2: "primary", 3: "passer_by", 4: "passer_by"}
    # faces of about the same size: the one present longest is served first
    close = [
        Candidate(1, Box(400, 400, 500, 500), True, 5.0),
        Candidate(2, Box(550, 400, 648, 498), True, 1.0),
    ]
    assert assign_roles(close, zone, w, h) == {1: "primary", 2: "companion"}
    assert assign_roles([], zone, w, h) == {}
    with pytest.raises(ValueError, match="outside"):
        CounterZone(((0.0, 0.0), (1.5, 0.0), (1.0, 1.0)))


def test_track_descriptor_is_the_quality_weighted_mean() -> None:
    descriptors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    mean = weighted_descriptor(descriptors, [3.0, 1.0])
    assert mean == pytest.approx([0.75, 0.25])


# ---- the real clip ----------------------------------------------------------------------------

#: Where three people walking towards the camera are, by eye, in frames of
#: facenet-pytorch_video.mp4 (1920x1080): face centres in pixels. (Tracks are confirmed
#: from the third frame, so the first keyframe is frame 3.)
WALKERS = {
    "red-haired man": {3: (710, 600), 40: (660, 666), 104: (406, 654)},
    "boy in the blue hoodie": {3: (934, 678), 40: (1044, 764), 80: (834, 704), 104: (802, 706)},
    "white-haired woman": {40: (268, 710), 80: (226, 700)},
}


def _track_at(result: FrameResult, point: tuple[int, int]) -> int | None:
    best, best_d = None, float("inf")
    for face in result.faces:
        if not face.detected:
            continue
        cx, cy = (face.box.x1 + face.box.x2) / 2, (face.box.y1 + face.box.y2) / 2
        d = float(np.hypot(cx - point[0], cy - point[1]))
        if d < 0.75 * face.box.width and d < best_d:
            best, best_d = face.track_id, d
    return best


@pytest.mark.slow
def test_three_walkers_keep_one_track_each(data_dir: Path, store: ModelStore) -> None:
    video = require(data_dir / "video" / "facenet-pytorch_video.mp4")
    settings = PipelineSettings(
        mode="entrance", detector=DetectorSettings(range="full", tile=True, tile_size=512)
    )
    results: dict[int, FrameResult] = {}
    events = EventCollector()

    def keep(result: FrameResult) -> None:
        results[result.frame_index] = result

    report = run(str(video), settings, events, on_frame=keep)
    assert report.frames == 105 and report.capture.dropped == 0

    ended = {e.track_id: e for e in events.of(TrackEnded)}
    for person, keyframes in WALKERS.items():
        ids = {frame: _track_at(results[frame], point) for frame, point in keyframes.items()}
        assert None not in ids.values(), f"{person}: no face found at {ids}"
        assert len(set(ids.values())) == 1, f"{person} changed track id: {ids}"
        track_id = next(iter(ids.values()))
        assert track_id is not None
        track = ended[track_id]
        last_keyframe = max(keyframes) / 25
        assert track.first_seen <= 0.1 and track.last_seen >= last_keyframe - 0.05
        assert track.shots >= 1 and track.embedding is not None and len(track.embedding) == 128
    walker_ids = [_track_at(results[40], point) for point in (k[40] for k in WALKERS.values())]
    assert len(set(walker_ids)) == 3
    started = {e.track_id for e in events.of(TrackStarted)}
    assert set(ended) == started  # every confirmed track ended, with one event each


# ---- the command --------------------------------------------------------------------------------


def _kiosk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk_app.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_run_writes_json_line_events(data_dir: Path, tmp_path: Path, store: ModelStore) -> None:
    clip = require(data_dir / "video" / "facenet-pytorch_video.mp4")
    events = tmp_path / "events.jsonl"
    result = _kiosk(
        "run",
        "--source",
        str(clip),
        "--headless",
        "--mode",
        "entrance",
        "--events",
        str(events),
        "--max-frames",
        "60",
    )
    assert result.returncode == 0, result.stderr
    lines = [parse_event(line) for line in events.read_text().splitlines()]
    kinds = {e.event for e in lines}
    assert {"track_started", "best_shot", "track_ended"} <= kinds
    ended = [e.embedding for e in lines if isinstance(e, TrackEnded) and e.embedding]
    assert ended and all(len(embedding) == 128 for embedding in ended)
    assert "60 frames" in result.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/no/such/clip.mp4", "not found: /no/such/clip.mp4"),
        ("ftp://example.com/cam", "unsupported"),
    ],
)
def test_run_names_a_bad_source(source: str, message: str) -> None:
    result = _kiosk("run", "--source", source, "--headless")
    assert result.returncode == 1
    assert message in result.stderr
