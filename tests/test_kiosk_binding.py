"""Binding a receipt to the customer at the counter, and opting out."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime

import numpy as np
import pytest
from numpy.typing import NDArray
from pydantic import ValidationError

from contract import MAX_VISIT_EMBEDDINGS, LineItem, Receipt
from facelib.types import Box
from kiosk_app.binding import CheckoutBinder, idempotency_key
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.outbox import checkout_body
from kiosk_app.pipeline import FrameResult, Shot, TrackedFace
from kiosk_app.settings import DEFAULT_BEST_SHOTS, PipelineSettings, ShotSettings
from kiosk_app.sightings import SightingReporter

RECEIPT = Receipt(
    number="R-1",
    scanned_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    items=[LineItem(sku="S", name="Tea", category="tea", brand="", quantity=1, unit_price="2.00")],
)


def _shot(value: int) -> Shot:
    return Shot(0.5, np.full((150, 150, 3), value, dtype=np.uint8), 0, 0.0)


def _describe(shots: list[Shot]) -> list[NDArray[np.float32]]:
    return [np.full(128, s.chip[0, 0, 0] / 255, dtype=np.float32) for s in shots]


def _frame(*faces: tuple[int, str]) -> FrameResult:
    box = Box(0, 0, 10, 10)
    return FrameResult(0, 0.0, [TrackedFace(t, "confirmed", box, role, True) for t, role in faces])  # type: ignore[arg-type]


def _binder() -> CheckoutBinder:
    shots = {1: [_shot(10), _shot(20)], 2: [_shot(200)], 3: [_shot(90)]}
    return CheckoutBinder(lambda t: shots.get(t, []), _describe, device="till-1", window_s=10)


def test_the_customer_at_the_counter_when_scanned_is_bound() -> None:
    binder = _binder()
    for i in range(50):  # track 1 served first, for a long time; then track 2 steps up
        binder.observe(_frame((1, "primary"), (3, "passer_by")), at=float(i) * 0.1)
    for i in range(50, 70):
        binder.observe(_frame((2, "primary"), (1, "companion")), at=float(i) * 0.1)
    binding = binder.bind(RECEIPT, at=7.0)
    assert binding.primary_track == 2
    assert binding.companion_tracks == [1]
    request = binding.request
    assert len(request.embeddings) == 1
    sent = request.embeddings[0]
    assert sent.vector is None and sent.f16 is not None  # the compact encoding
    assert np.allclose(sent.values(), 200 / 255, atol=1e-3) and sent.quality == 0.5
    assert request.face_crop is not None
    assert len(request.companions) == 1 and request.companions[0].face_crop is None
    assert request.idempotency_key == idempotency_key("till-1", RECEIPT)


def test_nobody_at_the_counter_is_an_anonymous_checkout() -> None:
    binder = _binder()
    binder.observe(_frame((3, "passer_by")), at=0.0)
    binding = binder.bind(RECEIPT, at=1.0)
    assert binding.primary_track is None
    assert binding.request.embeddings == [] and binding.request.face_crop is None


def test_an_opted_out_customer_sends_no_face_data() -> None:
    binder = _binder()
    binder.observe(_frame((1, "primary"), (2, "companion")), at=0.0)
    request = binder.bind(RECEIPT, at=0.5, opt_out=True).request
    assert request.embeddings == [] and request.face_crop is None and request.companions == []
    assert request.receipt == RECEIPT  # the sale itself is still sent


def test_every_kept_shot_is_sent_compact_up_to_the_contracts_limit() -> None:
    many = [_shot(10 + i) for i in range(MAX_VISIT_EMBEDDINGS + 4)]
    binder = CheckoutBinder(lambda t: many if t == 1 else [], _describe, device="till-1")
    binder.observe(_frame((1, "primary")), at=0.0)
    request = binder.bind(RECEIPT, at=0.5).request
    assert len(request.embeddings) == MAX_VISIT_EMBEDDINGS
    for shot, sent in zip(many, request.embeddings, strict=False):
        assert sent.f16 is not None and sent.vector is None
        assert np.allclose(sent.values(), shot.chip[0, 0, 0] / 255, atol=1e-3)
    body = json.loads(checkout_body(request))
    assert all(set(e) == {"f16", "quality"} for e in body["embeddings"])  # no "vector": null
    assert "face_crop" in body and "companions" in body
    assert "loyalty_id" not in body["receipt"] and "payment_token" not in body["receipt"]


def test_eight_best_shots_are_kept_by_default_everywhere() -> None:
    assert DEFAULT_BEST_SHOTS == 8 <= MAX_VISIT_EMBEDDINGS
    assert PipelineSettings().shots.best_k == DEFAULT_BEST_SHOTS
    assert KioskConfig().pipeline_settings().shots.best_k == DEFAULT_BEST_SHOTS
    assert inspect.signature(SightingReporter).parameters["best_k"].default == DEFAULT_BEST_SHOTS
    with pytest.raises(ValidationError):
        ShotSettings(best_k=MAX_VISIT_EMBEDDINGS + 1)
