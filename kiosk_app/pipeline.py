"""The kiosk's vision pipeline: frames -> faces -> tracks -> best shots -> embeddings.

`FacePipeline.process(frame)` runs on the processing thread (never the capture thread):
detect every frame, update the tracker, score each tracked face and keep its best K shots
(aligned chips; a chip is only cut when the shot could enter the best K). When a track ends,
its shots go to the embedding worker thread, which embeds them in one batch and emits
`track_ended` with the quality-weighted mean descriptor. Every stage is timed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

import numpy as np
import structlog
from numpy.typing import NDArray

from facelib.alignment import EMBEDDING_CHIP, align
from facelib.detectors import FaceDetector, create_detector
from facelib.embedder import FaceEmbedder
from facelib.image_checks import checked_image
from facelib.types import Box, Detection, RGBImage
from kiosk_app.events import BestShot, EventSink, TrackEnded, TrackStarted
from kiosk_app.frames import Frame
from kiosk_app.quality import geometry_quality, sharpness
from kiosk_app.settings import PipelineSettings
from kiosk_app.tracking import Track, Tracker, TrackState
from kiosk_app.zone import Candidate, CounterZone, Role, assign_roles
from models.store import ModelStore

log = structlog.get_logger(__name__)

STAGES = ("decode", "detect", "track", "align", "embed")
KEEP_ENDED = 256


@dataclass(eq=False)
class Shot:
    quality: float
    chip: RGBImage
    frame_index: int
    timestamp: float
    #: filled in the background as soon as the shot is among a track's best, so a checkout
    #: bound a moment later finds it ready
    descriptor: NDArray[np.float32] | None = None


@dataclass
class TrackRecord:
    track_id: int
    first_seen: float
    first_frame: int
    shots: list[Shot] = field(default_factory=list)
    frames_seen: int = 0
    roles: dict[Role, int] = field(default_factory=lambda: defaultdict(int))
    last_box: Box | None = None

    @property
    def role(self) -> Role:
        """The role the track held in most of its frames, primary winning ties."""
        if not self.roles:
            return "passer_by"
        order = {"primary": 2, "companion": 1, "passer_by": 0}
        return max(self.roles, key=lambda r: (self.roles[r], order[r]))


@dataclass(frozen=True)
class TrackedFace:
    track_id: int
    state: str
    box: Box
    role: Role
    detected: bool


@dataclass(frozen=True)
class FrameResult:
    frame_index: int
    timestamp: float
    faces: list[TrackedFace]

    @property
    def primary(self) -> TrackedFace | None:
        return next((f for f in self.faces if f.role == "primary"), None)


class StageTimer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total_s: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, stage: str, seconds: float, count: int = 1) -> None:
        with self._lock:
            self.total_s[stage] += seconds
            self.count[stage] += count

    def ms_per_frame(self, frames: int) -> dict[str, float]:
        with self._lock:
            return {s: 1000 * self.total_s.get(s, 0.0) / max(1, frames) for s in STAGES}


def weighted_descriptor(
    descriptors: NDArray[np.float32], weights: list[float]
) -> NDArray[np.float32]:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(weights), 1 / len(weights))
    return np.asarray((descriptors * w[:, None]).sum(axis=0), dtype=np.float32)


_Job = tuple[TrackRecord, float] | Shot


class _EmbedWorker:
    """Embeds new best shots, and finishes ended tracks, on its own thread, in batches."""

    def __init__(self, embedder: FaceEmbedder, sink: EventSink, timer: StageTimer) -> None:
        self._embedder = embedder
        self._lock = threading.Lock()  # the binder embeds through `describe` too
        self._sink = sink
        self._timer = timer
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="embed-worker", daemon=True)
        self._thread.start()

    def submit(self, record: TrackRecord, ended_at: float) -> None:
        self._queue.put((record, ended_at))

    def submit_shot(self, shot: Shot) -> None:
        self._queue.put(shot)

    def describe(self, shots: list[Shot]) -> list[NDArray[np.float32]]:
        """Descriptors of `shots`, embedding (in one batch) those not done yet."""
        missing = [s for s in shots if s.descriptor is None]
        if missing:
            started = time.perf_counter()
            with self._lock:
                vectors = self._embedder.embed([s.chip for s in missing])
            self._timer.add("embed", time.perf_counter() - started, len(missing))
            for shot, vector in zip(missing, vectors, strict=True):
                shot.descriptor = vector
        return [s.descriptor for s in shots if s.descriptor is not None]

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while True:  # take whatever else is waiting: one batch for all of it
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            try:
                self._embed(batch)
            except Exception:  # a failed batch must not stop the worker
                log.exception("embedding_failed", jobs=len(batch))

    def _embed(self, batch: list[_Job]) -> None:
        tracks = [job for job in batch if isinstance(job, tuple)]
        shots = [job for job in batch if isinstance(job, Shot)]
        shots += [s for record, _ in tracks for s in record.shots]
        self.describe(shots)
        for record, ended_at in tracks:
            embedding = None
            described = [s for s in record.shots if s.descriptor is not None]
            if described:
                mean = weighted_descriptor(
                    np.stack([s.descriptor for s in described if s.descriptor is not None]),
                    [s.quality for s in described],
                )
                embedding = tuple(round(float(v), 6) for v in mean)
            self._sink(_ended_event(record, ended_at, embedding))


def _ended_event(
    record: TrackRecord, ended_at: float, embedding: tuple[float, ...] | None
) -> TrackEnded:
    qualities = [s.quality for s in record.shots]
    return TrackEnded(
        track_id=record.track_id,
        first_seen=round(record.first_seen, 3),
        last_seen=round(ended_at, 3),
        frames=record.frames_seen,
        role=record.role,
        shots=len(record.shots),
        quality=round(float(np.mean(qualities)), 4) if qualities else 0.0,
        best_quality=round(max(qualities), 4) if qualities else 0.0,
        embedding=embedding,
    )


class FacePipeline:
    """Not thread-safe: one processing thread calls `process`; embedding has its own thread."""

    def __init__(
        self,
        settings: PipelineSettings,
        sink: EventSink,
        *,
        store: ModelStore | None = None,
        timer: StageTimer | None = None,
    ) -> None:
        store = store if store is not None else ModelStore()
        self.settings = settings
        self.timer = timer if timer is not None else StageTimer()
        self._sink = sink
        self.detector: FaceDetector = create_detector(settings.detector, store)
        runtime = settings.runtime
        self._appearance_embedder = FaceEmbedder(store, runtime)
        shots_embedder = FaceEmbedder(
            store, runtime, flip_average=settings.recognition.flip_average
        )
        for model in (self._appearance_embedder, shots_embedder):
            model.warmup()
        self._worker = _EmbedWorker(shots_embedder, sink, self.timer)
        self._image: RGBImage | None = None
        self.tracker = Tracker(settings.tracker, appearance=self._appearance)
        self.zone = CounterZone(tuple(settings.counter_zone))
        self._records: dict[int, TrackRecord] = {}
        #: recently ended tracks, still wanted by a checkout bound a moment later
        self._ended: OrderedDict[int, TrackRecord] = OrderedDict()
        self._records_lock = threading.Lock()
        self.frames = 0

    # ---- per frame -----------------------------------------------------------------------

    def process(self, frame: Frame) -> FrameResult:
        image = checked_image(frame.image, max_pixels=self.settings.max_image_pixels)
        self._image = image
        started = time.perf_counter()
        detections = self.detector.detect(image)
        detected = time.perf_counter()
        self.timer.add("detect", detected - started)
        update = self.tracker.update(detections, frame.timestamp)
        self.timer.add("track", time.perf_counter() - detected)
        self.frames += 1

        for track in update.started:
            with self._records_lock:
                self._records[track.id] = TrackRecord(track.id, track.first_seen, frame.index)
            self._sink(
                TrackStarted(
                    track_id=track.id,
                    frame=frame.index,
                    t=round(frame.timestamp, 3),
                    box=_box_tuple(track.box),
                )
            )
        for track in update.ended:
            self._end(track, track.last_seen)

        height, width = image.shape[:2]
        confirmed = [t for t in update.active if t.confirmed]
        roles = assign_roles(
            [
                Candidate(
                    t.id, t.box, t.state is TrackState.CONFIRMED, t.present_s(frame.timestamp)
                )
                for t in confirmed
            ],
            self.zone,
            width,
            height,
        )
        faces = []
        for track in confirmed:
            role = roles.get(track.id, "passer_by")
            record = self._records.get(track.id)
            if record is not None and track.detection is not None:
                record.frames_seen += 1
                record.roles[role] += 1
                record.last_box = track.box
                self._consider_shot(record, track.detection, image, frame)
            faces.append(
                TrackedFace(
                    track.id, track.state.value, track.box, role, track.detection is not None
                )
            )
        self._image = None
        return FrameResult(frame.index, frame.timestamp, faces)

    def _appearance(self, detection: Detection) -> NDArray[np.float32] | None:
        if self._image is None:
            return None
        started = time.perf_counter()
        chip = align(self._image, detection.landmarks, *EMBEDDING_CHIP)
        descriptor: NDArray[np.float32] = self._appearance_embedder.embed([chip])[0]
        self.timer.add("embed", time.perf_counter() - started)
        return descriptor

    def _consider_shot(
        self, record: TrackRecord, detection: Detection, image: RGBImage, frame: Frame
    ) -> None:
        shots = self.settings.shots
        bound = geometry_quality(detection).without_sharpness
        worst = min((s.quality for s in record.shots), default=0.0)
        full = len(record.shots) >= shots.best_k
        if bound < shots.min_quality or (full and bound <= worst):
            return  # cannot beat what is kept: no chip cut
        started = time.perf_counter()
        chip = align(image, detection.landmarks, *EMBEDDING_CHIP)
        quality = bound * sharpness(chip)
        self.timer.add("align", time.perf_counter() - started)
        if quality < shots.min_quality or (full and quality <= worst):
            return
        shot = Shot(quality, chip, frame.index, frame.timestamp)
        with self._records_lock:
            kept = sorted(
                [*record.shots, shot],
                key=lambda s: s.quality,
                reverse=True,
            )
            record.shots = kept[: shots.best_k]
        if shot in record.shots:
            self._worker.submit_shot(shot)
        if record.shots[0].quality == quality:
            self._sink(
                BestShot(
                    track_id=record.track_id,
                    frame=frame.index,
                    t=round(frame.timestamp, 3),
                    quality=round(quality, 4),
                )
            )

    def _end(self, track: Track, at: float) -> None:
        with self._records_lock:
            record = self._records.pop(track.id, None)
            if record is not None:
                self._ended[track.id] = record
                while len(self._ended) > KEEP_ENDED:
                    self._ended.popitem(last=False)
        if record is not None:
            self._worker.submit(record, at)

    # ---- lifecycle -----------------------------------------------------------------------

    def describe(self, shots: list[Shot]) -> list[NDArray[np.float32]]:
        """Descriptors of shots (any thread): precomputed ones at once, the rest now."""
        return self._worker.describe(shots)

    def shots(self, track_id: int) -> list[Shot]:
        """The best shots of a live or recently ended track (any thread)."""
        with self._records_lock:
            record = self._records.get(track_id) or self._ended.get(track_id)
            return list(record.shots) if record else []

    def finish(self) -> None:
        """End of stream: end every track and wait for their embeddings."""
        for track in self.tracker.finish():
            self._end(track, track.last_seen)
        self._worker.close()
        self.detector.close()


def _box_tuple(box: Box) -> tuple[float, float, float, float]:
    return (round(box.x1, 1), round(box.y1, 1), round(box.x2, 1), round(box.y2, 1))
