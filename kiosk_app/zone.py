"""The counter zone and the primary-customer rule.

The zone is a polygon in normalised image coordinates (0..1), so it survives a change of
camera resolution. The primary customer is the confirmed track inside the zone that is
largest, then longest present; every other confirmed track in the zone is a companion, and
tracks outside it are passers-by (queueing customers, staff).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from facelib.types import Box

Role = Literal["primary", "companion", "passer_by"]


@dataclass(frozen=True)
class CounterZone:
    polygon: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError("the counter zone needs at least three points")
        for x, y in self.polygon:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"zone point ({x}, {y}) is outside the image (0..1)")

    def contains(self, box: Box, width: int, height: int) -> bool:
        """Whether the face centre lies inside the zone."""
        cx = (box.x1 + box.x2) / 2 / width
        cy = (box.y1 + box.y2) / 2 / height
        contour = np.array(self.polygon, dtype=np.float32).reshape(-1, 1, 2)
        return cv2.pointPolygonTest(contour, (float(cx), float(cy)), False) >= 0


@dataclass(frozen=True)
class Candidate:
    track_id: int
    box: Box
    confirmed: bool
    present_s: float  # how long the track has existed


def assign_roles(
    candidates: Sequence[Candidate], zone: CounterZone, width: int, height: int
) -> dict[int, Role]:
    inside = [c for c in candidates if c.confirmed and zone.contains(c.box, width, height)]
    roles: dict[int, Role] = {c.track_id: "passer_by" for c in candidates}
    if not inside:
        return roles
    # largest first; among faces of about the same size (within 10%), the longest present
    largest = max(c.box.area for c in inside)
    contenders = [c for c in inside if c.box.area >= 0.9 * largest]
    primary = max(contenders, key=lambda c: (c.present_s, c.box.area, -c.track_id))
    for c in inside:
        roles[c.track_id] = "primary" if c is primary else "companion"
    return roles
