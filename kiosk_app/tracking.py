"""A multi-face tracker: constant-velocity prediction and overlap, with track states.

Each frame's detections are matched to the tracks' predicted boxes, cheapest pair first,
where the cost mixes overlap (1 - IoU) and centre distance in face widths, gated by a
maximum distance and a size ratio. A new track is *tentative* until it has been matched in
`min_hits` consecutive frames, then *confirmed*; a confirmed track that misses a frame is
*lost* and keeps its id if it is matched again within `max_lost_s` (a head turned away, someone
walking past in front); after that it *ends*. Tentative tracks that miss a frame are dropped
without trace: most are false detections.

Appearance helps where motion cannot decide: when a detection could belong to two tracks, or a
track could take two detections (people crossing, one face hidden behind another), the tracker
asks the `appearance` function (the face embedder, on that detection's chip) for descriptors
and adds their distance to each confirmed track's reference descriptor to the cost; a clearly
different face (beyond `appearance_gate`) is not matched at all. Each track's reference is
taken once, when it is confirmed, so an occasional embedding costs nothing per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from facelib.types import Box, Detection

#: How far ahead a track's motion is extrapolated at most (beyond it the box stays put).
MAX_PREDICTION_S = 0.5
#: Two matches whose motion costs differ by less than this are decided by appearance.
AMBIGUITY_MARGIN = 0.5


class TrackerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_hits: int = Field(3, ge=1, le=30, description="consecutive frames to confirm a track")
    max_lost_s: float = Field(1.0, gt=0, le=30, description="how long a lost track keeps its id")
    max_distance: float = Field(
        1.2, gt=0, description="largest centre jump between frames, in face widths"
    )
    max_size_ratio: float = Field(1.8, gt=1, description="largest change of face width")
    velocity_smoothing: float = Field(0.6, ge=0, lt=1, description="weight of the old velocity")
    appearance_weight: float = Field(
        2.0, ge=0, description="cost per unit of descriptor distance in ambiguous matches"
    )
    appearance_gate: float = Field(
        0.75, gt=0, description="descriptor distance beyond which a face is not the track's"
    )


#: Descriptor of a detection's face, computed on demand (None when it cannot be cut).
Appearance = Callable[[Detection], NDArray[np.float32] | None]


class TrackState(StrEnum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


def _centre_size(box: Box) -> NDArray[np.float64]:
    return np.array(
        [(box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2, box.width, box.height], dtype=np.float64
    )


def _box(centre_size: NDArray[np.float64]) -> Box:
    cx, cy, w, h = (float(v) for v in centre_size)
    return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@dataclass
class Track:
    id: int
    state: TrackState
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1
    detection: Detection | None = None  # this frame's detection, None when missed
    velocity: NDArray[np.float64] = field(default_factory=lambda: np.zeros(4))
    appearance: NDArray[np.float32] | None = None  # reference descriptor, taken at confirmation

    @property
    def confirmed(self) -> bool:
        return self.state is not TrackState.TENTATIVE

    def present_s(self, now: float) -> float:
        return now - self.first_seen

    def predict(self, timestamp: float) -> Box:
        dt = min(max(0.0, timestamp - self.last_seen), MAX_PREDICTION_S)
        moved = _centre_size(self.box) + self.velocity * dt
        moved[2:] = np.maximum(moved[2:], 1.0)
        return _box(moved)


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame changed. `active` lists every live track with its detection (or None)."""

    active: list[Track]
    started: list[Track]  # newly confirmed this frame
    ended: list[Track]  # confirmed tracks that ended this frame


class Tracker:
    def __init__(
        self, settings: TrackerSettings | None = None, appearance: Appearance | None = None
    ) -> None:
        self.settings = settings or TrackerSettings()
        self.appearance = appearance
        self.appearance_calls = 0
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def update(self, detections: list[Detection], timestamp: float) -> TrackUpdate:
        self._descriptors: dict[int, NDArray[np.float32] | None] = {}
        matches = self._match(detections, timestamp)
        matched_tracks = {id(t) for t, _ in matches}
        matched_dets = {id(d) for _, d in matches}
        started: list[Track] = []
        ended: list[Track] = []
        survivors: list[Track] = []

        for track, detection in matches:
            self._observe(track, detection, timestamp)
            if track.state is TrackState.TENTATIVE and track.hits >= self.settings.min_hits:
                track.state = TrackState.CONFIRMED
                track.appearance = self._descriptor(detection)
                started.append(track)
            elif track.state is TrackState.LOST:
                track.state = TrackState.CONFIRMED
            survivors.append(track)

        for track in self._tracks:
            if id(track) in matched_tracks:
                continue
            track.detection = None
            if track.state is TrackState.TENTATIVE:
                continue  # dropped: never confirmed
            if timestamp - track.last_seen > self.settings.max_lost_s:
                ended.append(track)
                continue
            track.state = TrackState.LOST
            survivors.append(track)

        for detection in detections:
            if id(detection) in matched_dets:
                continue
            track = Track(
                id=self._next_id,
                state=TrackState.TENTATIVE,
                box=detection.box,
                first_seen=timestamp,
                last_seen=timestamp,
                detection=detection,
            )
            self._next_id += 1
            if self.settings.min_hits <= 1:
                track.state = TrackState.CONFIRMED
                track.appearance = self._descriptor(detection)
                started.append(track)
            survivors.append(track)

        self._tracks = sorted(survivors, key=lambda t: t.id)
        return TrackUpdate(active=list(self._tracks), started=started, ended=ended)

    def finish(self) -> list[Track]:
        """End every confirmed track (end of stream); returns them."""
        ended = [t for t in self._tracks if t.confirmed]
        self._tracks = []
        return ended

    def _observe(self, track: Track, detection: Detection, timestamp: float) -> None:
        dt = timestamp - track.last_seen
        now = _centre_size(detection.box)
        if dt > 0:
            observed = (now - _centre_size(track.box)) / dt
            a = self.settings.velocity_smoothing
            track.velocity = a * track.velocity + (1 - a) * observed
        track.box = detection.box
        track.last_seen = timestamp
        track.detection = detection
        track.hits += 1

    def _descriptor(self, detection: Detection) -> NDArray[np.float32] | None:
        if self.appearance is None:
            return None
        key = id(detection)
        if key not in self._descriptors:
            self.appearance_calls += 1
            self._descriptors[key] = self.appearance(detection)
        return self._descriptors[key]

    def _match(
        self, detections: list[Detection], timestamp: float
    ) -> list[tuple[Track, Detection]]:
        pairs = self._motion_pairs(detections, timestamp)
        if self.appearance is not None:
            pairs = self._with_appearance(pairs, detections)
        pairs.sort()
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        out = []
        for _, ti, di in pairs:
            if ti in used_tracks or di in used_dets:
                continue
            used_tracks.add(ti)
            used_dets.add(di)
            out.append((self._tracks[ti], detections[di]))
        return out

    def _with_appearance(
        self, pairs: list[tuple[float, int, int]], detections: list[Detection]
    ) -> list[tuple[float, int, int]]:
        """Re-cost the pairs of ambiguous tracks and detections by descriptor distance."""
        by_track: dict[int, list[float]] = {}
        by_det: dict[int, list[float]] = {}
        for cost, ti, di in pairs:
            by_track.setdefault(ti, []).append(cost)
            by_det.setdefault(di, []).append(cost)

        def close_call(costs: list[float]) -> bool:
            """A second option nearly as cheap as the best one."""
            if len(costs) < 2:
                return False
            first, second = sorted(costs)[:2]
            return second - first < AMBIGUITY_MARGIN

        out = []
        for cost, ti, di in pairs:
            track = self._tracks[ti]
            ambiguous = close_call(by_track[ti]) or close_call(by_det[di])
            if ambiguous and track.appearance is not None:
                descriptor = self._descriptor(detections[di])
                if descriptor is not None:
                    distance = float(np.linalg.norm(descriptor - track.appearance))
                    if distance > self.settings.appearance_gate:
                        continue
                    cost += self.settings.appearance_weight * distance
            out.append((cost, ti, di))
        return out

    def _motion_pairs(
        self, detections: list[Detection], timestamp: float
    ) -> list[tuple[float, int, int]]:
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(self._tracks):
            predicted = track.predict(timestamp)
            pc = _centre_size(predicted)
            for di, detection in enumerate(detections):
                dc = _centre_size(detection.box)
                width = max(pc[2], dc[2], 1.0)
                distance = float(np.hypot(*(pc[:2] - dc[:2]))) / width
                ratio = max(pc[2], dc[2]) / max(min(pc[2], dc[2]), 1.0)
                if distance > self.settings.max_distance or ratio > self.settings.max_size_ratio:
                    continue
                cost = (1.0 - predicted.iou(detection.box)) + 0.5 * distance
                pairs.append((cost, ti, di))
        return pairs
