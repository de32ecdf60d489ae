"""Entrance mode: report each visitor once to the cloud, which counts them and raises VIP
arrivals on the store's staff stream.

A confirmed track is reported once it has `best_k` good shots, or once it has been in view for
`after_s` with at least one: soon enough for staff to greet a VIP at the door. Sightings are
counts, not money: each is retried a few times (`cloud_transport.Backoff`, honouring a
Retry-After) and then dropped with a log line, so a long outage cannot pile them up.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import numpy as np
import structlog
from numpy.typing import NDArray

from contract import MAX_VISIT_EMBEDDINGS, SightingRequest, SightingResponse
from kiosk_app.binding import compact_embeddings, encode_crop
from kiosk_app.cloud_transport import (
    DEFAULT_TIMEOUT,
    Backoff,
    error_from_response,
    is_transient,
    make_client,
    retry_after_s,
)
from kiosk_app.events import EventSink, SightingReported
from kiosk_app.pipeline import FrameResult, Shot
from kiosk_app.settings import DEFAULT_BEST_SHOTS

log = structlog.get_logger(__name__)

ATTEMPTS = 3
#: waits between the attempts: 0.5 s then 1 s (+- 10 %), never more than 5 s
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 5.0


class SightingReporter:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        shots: Callable[[int], list[Shot]],
        describe: Callable[[list[Shot]], list[NDArray[np.float32]]],
        sink: EventSink,
        *,
        best_k: int = DEFAULT_BEST_SHOTS,
        after_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._path = "/v1/sightings"
        self._shots = shots
        self._describe = describe
        self._sink = sink
        self._best_k = best_k
        self._after_s = after_s
        self._reported: set[int] = set()
        self._first_seen: dict[int, float] = {}
        self._queue: queue.Queue[tuple[int, list[Shot]] | None] = queue.Queue(maxsize=256)
        self._client = make_client(base_url, api_key, timeout=DEFAULT_TIMEOUT, transport=transport)
        self._backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sightings", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # ends a backoff wait at once
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._client.close()

    def observe(self, result: FrameResult, now: float | None = None) -> None:
        """Called for every processed frame (processing thread)."""
        now = time.monotonic() if now is None else now
        for face in result.faces:
            if face.track_id in self._reported or not face.detected:
                continue
            first = self._first_seen.setdefault(face.track_id, now)
            shots = self._shots(face.track_id)
            if len(shots) >= self._best_k or (shots and now - first >= self._after_s):
                self._reported.add(face.track_id)
                self._first_seen.pop(face.track_id, None)
                try:
                    self._queue.put_nowait((face.track_id, shots))
                except queue.Full:
                    log.warning("sighting_dropped", track=face.track_id, reason="queue full")

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._report(*job)
            except Exception:  # one sighting must not stop the reporter
                log.exception("sighting_failed", track=job[0])

    def _report(self, track_id: int, shots: list[Shot]) -> None:
        shots = shots[:MAX_VISIT_EMBEDDINGS]
        vectors = self._describe(shots)
        request = SightingRequest(
            captured_at=datetime.now(UTC),
            embeddings=compact_embeddings(vectors, shots),
            face_crop=encode_crop(shots[0].chip),
        )
        body = request.model_dump(mode="json", exclude_none=True)
        for attempt in range(1, ATTEMPTS + 1):
            retry_after: float | None = None
            try:
                response = self._client.post(self._path, json=body)
            except httpx.HTTPError as error:
                log.warning("sighting_retry", track=track_id, attempt=attempt, error=str(error))
            else:
                if response.status_code < 300:
                    answer = SightingResponse.model_validate(response.json())
                    self._sink(
                        SightingReported(
                            track_id=track_id,
                            customer_id=answer.customer_id,
                            status=answer.status,
                            is_vip=answer.is_vip,
                            visitors_today=answer.visitors_today,
                        )
                    )
                    log.info(
                        "sighting",
                        track=track_id,
                        vip=answer.is_vip,
                        visitors_today=answer.visitors_today,
                    )
                    return
                if not is_transient(response.status_code):
                    log.error(
                        "sighting_refused",
                        track=track_id,
                        status=response.status_code,
                        detail=error_from_response(response).summary[:200],
                    )
                    return
                log.warning(
                    "sighting_retry", track=track_id, attempt=attempt, status=response.status_code
                )
                retry_after = retry_after_s(response, time.time())
            if attempt < ATTEMPTS and self._stopping.wait(
                self._backoff.delay_s(attempt, retry_after)
            ):
                log.warning("sighting_dropped", track=track_id, reason="stopping")
                return
        log.error("sighting_dropped", track=track_id, reason=f"{ATTEMPTS} attempts failed")
