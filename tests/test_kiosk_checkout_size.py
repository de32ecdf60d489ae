"""One checkout's upload stays within its budget: 8 real shots of one face as f16, the best
shot's 150x150 crop as the till makes it, a companion and a usual receipt."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from contract import LineItem, Receipt
from facelib.analyzer import FaceAnalyzer
from facelib.images import read_rgb
from kiosk_app.binding import CHECKOUT_BUDGET_BYTES, CheckoutBinder
from kiosk_app.outbox import checkout_body
from kiosk_app.pipeline import Shot
from kiosk_app.settings import DEFAULT_BEST_SHOTS
from tests.conftest import require

RECEIPT = Receipt(
    number="S-0001",
    scanned_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    items=[
        LineItem(
            sku="SKU-COFFEE",
            name="Espresso beans 1kg",
            category="coffee",
            brand="Roastery",
            quantity=Decimal(1),
            unit_price=Decimal("18.90"),
        ),
        LineItem(
            sku="SKU-CHOC",
            name="Dark chocolate",
            category="sweets",
            brand="Cacao Co",
            quantity=Decimal(2),
            unit_price=Decimal("3.40"),
        ),
    ],
    loyalty_id="VIP-000123",
    payment_token="ab" * 32,
)


def _shots(analyzer: FaceAnalyzer, photos: list[Path]) -> list[Shot]:
    """Each photo as the till's pipeline keeps a shot: the aligned embedding chip and its
    descriptor (the same `align` call and embedder)."""
    shots = []
    for n, photo in enumerate(photos):
        faces = analyzer.analyze(read_rgb(photo))
        face = max(faces, key=lambda f: f.detection.box.area)
        assert face.descriptor is not None
        assert face.chips.embedding.shape == (150, 150, 3)
        descriptor = np.asarray(face.descriptor, dtype=np.float32)
        shots.append(Shot(0.9 - n * 0.01, face.chips.embedding, n, float(n), descriptor))
    return shots


@pytest.mark.parametrize("first", range(DEFAULT_BEST_SHOTS))
def test_a_checkout_with_eight_shots_a_crop_and_a_companion_fits_8_kb(
    analyzer: FaceAnalyzer, data_dir: Path, first: int
) -> None:
    person = require(data_dir / "faces" / "lfw" / "Tony_Blair")
    photos = sorted(person.glob("*.jpg"))[:DEFAULT_BEST_SHOTS]
    assert len(photos) == DEFAULT_BEST_SHOTS
    shots = _shots(analyzer, photos)
    shots = shots[first:] + shots[:first]  # each photo's chip in turn becomes the crop
    companion = _shots(
        analyzer, sorted(require(data_dir / "faces" / "lfw" / "Hugo_Chavez").glob("*.jpg"))[:1]
    )
    tracks = {1: shots, 2: companion}
    binder = CheckoutBinder(
        lambda t: tracks.get(t, []),
        lambda s: [x.descriptor for x in s if x.descriptor is not None],
        device="till-1",
    )
    request = binder.bind(RECEIPT, 0.0, captured=binder.capture_tracks(1, [2])).request
    assert len(request.embeddings) == DEFAULT_BEST_SHOTS and len(request.companions) == 1
    assert request.face_crop is not None and request.face_crop.jpeg().startswith(b"\xff\xd8")
    for shot, sent in zip(shots, request.embeddings, strict=True):
        assert shot.descriptor is not None
        assert np.abs(np.asarray(sent.values()) - shot.descriptor).max() < 1e-3
    size = len(checkout_body(request).encode())
    assert size <= CHECKOUT_BUDGET_BYTES == 8192, f"{size} bytes"
