"""Bind the customer at the counter to a receipt.

Every processed frame is remembered for `history_s` (track ids and roles with the kiosk's
monotonic time). A receipt scanned at time T is bound to the track that was the primary
customer in most frames of [T - window_s, T + grace_s] (the caller waits for the grace to
pass); other tracks that stood in the counter zone then are its companions. What is sent is
the best shots' descriptors (the cloud fuses a visit's shots into one descriptor), each as
128 half floats (`Embedding.compact`), the best shot as the 150x150 aligned chip in JPEG for
age and gender, and the companions' descriptors. The whole body stays within
`CHECKOUT_BUDGET_BYTES` with 8 shots, the crop, a companion and a usual receipt. No
face in the window makes an anonymous checkout; an opted-out customer's checkout carries no
face data at all.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np
from numpy.typing import NDArray

from contract import (
    MAX_VISIT_EMBEDDINGS,
    CheckoutRequest,
    Companion,
    Embedding,
    FaceCrop,
    Receipt,
)
from facelib.types import RGBImage
from kiosk_app.pipeline import FrameResult, Shot

#: JPEG quality of the face crop (with optimised Huffman tables): about 2.5 KB for a 150x150
#: chip, enough for age and gender (quality 75 made it about 3.5 KB).
CROP_JPEG_QUALITY = 60
#: A crop heavier than this (a very detailed or noisy chip) is encoded again at a lower quality,
#: down to `CROP_MIN_QUALITY`, so 8 shots, the crop and a companion stay within the budget.
CROP_MAX_BYTES = 3000
CROP_MIN_QUALITY = 30
#: What one checkout body (as the outbox stores and the uplink sends it) should weigh at most.
CHECKOUT_BUDGET_BYTES = 8 * 1024
MAX_COMPANIONS = 3
#: Seconds before the scan in which the paying customer is looked for first.
RECENT_S = 1.5


@dataclass(frozen=True)
class _Seen:
    at: float
    roles: tuple[tuple[int, str], ...]  # (track id, role) of every detected confirmed face


@dataclass(frozen=True)
class CounterSnapshot:
    """The customer (and companions) at the counter at one moment, as the checkout sends them."""

    primary_track: int | None
    companion_tracks: list[int]
    embeddings: list[Embedding]
    crop: FaceCrop | None
    companions: list[Companion]
    opted_out: bool = False


@dataclass(frozen=True)
class Binding:
    request: CheckoutRequest
    primary_track: int | None
    companion_tracks: list[int]


def idempotency_key(device: str, receipt: Receipt) -> str:
    """Stable for one receipt: a POS that sends the same receipt twice sends one checkout."""
    millis = int(receipt.scanned_at.timestamp() * 1000)
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in receipt.number)
    return f"{device}:{safe}:{millis}"


def checkout_id(key: str) -> str:
    """A short id for one checkout, bound to the till's log lines about it and sent as the
    cloud request's ``X-Request-ID``, so one id follows it through both logs. Derived from
    the idempotency key (every retry carries the same id) without showing the receipt."""
    return "ck-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def encode_crop(chip: RGBImage) -> FaceCrop:
    """The chip as the checkout's JPEG: `CROP_JPEG_QUALITY`, lower when it would pass
    `CROP_MAX_BYTES` (never below `CROP_MIN_QUALITY`)."""
    bgr = cv2.cvtColor(chip, cv2.COLOR_RGB2BGR)
    quality = CROP_JPEG_QUALITY
    while True:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
        ok, jpeg = cv2.imencode(".jpg", bgr, params)
        if not ok:
            raise ValueError("the face chip could not be encoded as JPEG")
        if jpeg.size <= CROP_MAX_BYTES or quality <= CROP_MIN_QUALITY:
            break
        quality = max(CROP_MIN_QUALITY, quality - 10)
    return FaceCrop(jpeg_base64=base64.b64encode(jpeg.tobytes()).decode("ascii"))


class CheckoutBinder:
    def __init__(
        self,
        shots: Callable[[int], list[Shot]],
        describe: Callable[[list[Shot]], list[NDArray[np.float32]]],
        *,
        device: str,
        window_s: float = 10.0,
        grace_s: float = 1.0,
        history_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shots = shots
        self._describe = describe
        self.device = device
        self.window_s = window_s
        self.grace_s = grace_s
        self._history_s = history_s
        self._clock = clock
        self._seen: deque[_Seen] = deque()
        self._lock = threading.Lock()

    def observe(self, result: FrameResult, at: float | None = None) -> None:
        """Called for every processed frame (processing thread)."""
        now = self._clock() if at is None else at
        entry = _Seen(now, tuple((f.track_id, f.role) for f in result.faces if f.detected))
        with self._lock:
            self._seen.append(entry)
            while self._seen and self._seen[0].at < now - self._history_s:
                self._seen.popleft()

    def who(self, at: float) -> tuple[int | None, list[int]]:
        """(primary track, companion tracks) around time `at`.

        The customer paying is the one at the counter when the receipt is scanned: the track
        that was primary in most frames of the last `RECENT_S` before `at` (to `at` + grace);
        only when nobody was, the most frequent primary of the whole window.
        """
        start, end = at - self.window_s, at + self.grace_s
        primary: Counter[int] = Counter()
        recent: Counter[int] = Counter()
        companions: Counter[int] = Counter()
        with self._lock:
            window = [s for s in self._seen if start <= s.at <= end]
        for seen in window:
            for track_id, role in seen.roles:
                if role == "primary":
                    primary[track_id] += 1
                    if seen.at >= at - RECENT_S:
                        recent[track_id] += 1
                elif role == "companion":
                    companions[track_id] += 1
        ranked = recent or primary
        chosen = ranked.most_common(1)[0][0] if ranked else None
        others = [t for t, _ in companions.most_common() if t != chosen]
        others += [t for t, _ in primary.most_common() if t not in (chosen, *others)]
        return chosen, others[:MAX_COMPANIONS]

    def capture(self, at: float, *, opt_out: bool = False) -> CounterSnapshot:
        """Who stood at the counter at `at`, with their descriptors and crop, ready to send.

        Taken when the receipt is scanned; the receipt itself may come later (a POS export).
        """
        if opt_out:
            return CounterSnapshot(None, [], [], None, [], opted_out=True)
        primary, companions = self.who(at)
        return self.capture_tracks(primary, companions)

    def capture_tracks(self, primary: int | None, companions: list[int]) -> CounterSnapshot:
        """The checkout's face data for these tracks, from their best shots so far."""
        embeddings: list[Embedding] = []
        crop: FaceCrop | None = None
        if primary is not None:
            shots = self._shots(primary)
            embeddings = self._embed(shots)
            crop = encode_crop(shots[0].chip) if shots else None
        companion_bodies = []
        for track_id in companions:  # their best shot only, and no crop: a lighter upload
            shots = self._shots(track_id)[:1]
            if shots:
                companion_bodies.append(Companion(embeddings=self._embed(shots)))
        return CounterSnapshot(primary, companions, embeddings, crop, companion_bodies)

    def refresh(self, captured: CounterSnapshot) -> CounterSnapshot:
        """The same people as `captured`, with the better shots their tracks have taken since
        (the customer stayed at the counter after the scan); `captured` itself once those
        tracks are forgotten."""
        if captured.opted_out or captured.primary_track is None:
            return captured
        fresh = self.capture_tracks(captured.primary_track, captured.companion_tracks)
        return fresh if fresh.embeddings else captured

    def bind(
        self,
        receipt: Receipt,
        at: float,
        *,
        opt_out: bool = False,
        captured: CounterSnapshot | None = None,
    ) -> Binding:
        """The checkout for `receipt`: from `captured` when the scan took it, else taken now."""
        if captured is not None:
            capture = self.refresh(captured)
        else:
            capture = self.capture(at, opt_out=opt_out)
        request = CheckoutRequest(
            idempotency_key=idempotency_key(self.device, receipt),
            captured_at=datetime.now(UTC),
            receipt=receipt,
            embeddings=capture.embeddings,
            face_crop=capture.crop,
            companions=capture.companions,
        )
        primary = capture.primary_track if capture.embeddings else None
        return Binding(request, primary, capture.companion_tracks)

    def _embed(self, shots: list[Shot]) -> list[Embedding]:
        if not shots:
            return []
        shots = shots[:MAX_VISIT_EMBEDDINGS]
        return compact_embeddings(self._describe(shots), shots)


def compact_embeddings(
    vectors: Sequence[NDArray[np.float32]], shots: Sequence[Shot]
) -> list[Embedding]:
    """The shots' descriptors as the wire carries them: f16, with each shot's quality."""
    return [
        Embedding.compact(vector.tolist(), round(shot.quality, 4))
        for vector, shot in zip(vectors, shots, strict=True)
    ]
