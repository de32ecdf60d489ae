"""Draws the staff app's icons (static/icons/*.png) with numpy + OpenCV: no third-party art.

The mark is the dashboard's: a rounded square with the indigo -> teal diagonal gradient
(#6366f1 -> #0d9488), here carrying a white "person" glyph (head and shoulders) with a small
gold star, the "someone you should greet" sign.

    .venv/bin/python cloud_api/staff_app/draw_icons.py

writes icon-192.png, icon-512.png (transparent rounded corners) and icon-maskable-512.png
(full bleed, the glyph inside the maskable safe zone: the centre circle of radius 40 %).
Everything is drawn 4x larger and scaled down with INTER_AREA, which gives smooth edges.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
ON = (255,)
OFF = (0,)

HERE = Path(__file__).resolve().parent
OUT = HERE / "static" / "icons"
SS = 4  # supersampling factor

INDIGO = np.array([0x63, 0x66, 0xF1], dtype=np.float32)  # RGB
TEAL = np.array([0x0D, 0x94, 0x88], dtype=np.float32)
WHITE = (255, 255, 255)
GOLD = (0xFB, 0xBF, 0x24)


def gradient(size: int) -> F32:
    """An RGB float image, indigo at the top-left to teal at the bottom-right."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    t = ((xs + ys) / (2 * (size - 1)))[..., None]
    return np.asarray(INDIGO * (1 - t) + TEAL * t, dtype=np.float32)


def rounded_mask(size: int, radius: float) -> U8:
    mask = np.zeros((size, size), np.uint8)
    r = int(round(radius))
    cv2.rectangle(mask, (r, 0), (size - 1 - r, size - 1), ON, -1)
    cv2.rectangle(mask, (0, r), (size - 1, size - 1 - r), ON, -1)
    for cx, cy in ((r, r), (size - 1 - r, r), (r, size - 1 - r), (size - 1 - r, size - 1 - r)):
        cv2.circle(mask, (cx, cy), r, ON, -1, lineType=cv2.LINE_AA)
    return mask


def star(cx: float, cy: float, outer: float, inner: float) -> NDArray[np.int32]:
    points = []
    for i in range(10):
        angle = -np.pi / 2 + i * np.pi / 5
        r = outer if i % 2 == 0 else inner
        points.append((cx + r * np.cos(angle), cy + r * np.sin(angle)))
    return np.round(np.array(points)).astype(np.int32)


def glyph(size: int, scale: float) -> tuple[U8, U8]:
    """Masks (white person, gold star) for a canvas of `size`, the glyph `scale` of it wide."""
    person = np.zeros((size, size), np.uint8)
    gold = np.zeros((size, size), np.uint8)
    c = size / 2
    u = size * scale  # glyph box side
    # the glyph box is centred, nudged down a little so the figure sits optically centred
    top = c - u / 2 + u * 0.02
    head_r = u * 0.17
    head = (int(c - u * 0.06), int(top + u * 0.27))
    cv2.circle(person, head, int(head_r), ON, -1, lineType=cv2.LINE_AA)
    # shoulders: the top half of an ellipse, cut flat at the bottom
    body_centre = (int(c - u * 0.06), int(top + u * 0.86))
    axes = (int(u * 0.33), int(u * 0.31))
    cv2.ellipse(person, body_centre, axes, 0, 180, 360, ON, -1, lineType=cv2.LINE_AA)
    # a gap between head and shoulders reads better at small sizes
    cv2.circle(person, head, int(head_r * 1.28), OFF, int(u * 0.035), lineType=cv2.LINE_AA)
    cv2.circle(person, head, int(head_r), ON, -1, lineType=cv2.LINE_AA)
    # the star at the top right, with a ring cut out of the person around it
    s_centre = (c + u * 0.3, top + u * 0.3)
    ring = star(*s_centre, u * 0.2, u * 0.085)
    cv2.fillPoly(person, [ring], OFF, lineType=cv2.LINE_AA)
    cv2.fillPoly(gold, [star(*s_centre, u * 0.155, u * 0.065)], ON, lineType=cv2.LINE_AA)
    return person, gold


def compose(size: int, *, maskable: bool) -> U8:
    big = size * SS
    rgb = gradient(big)
    # the glyph: in the maskable icon it must fit the safe zone (a circle of radius 0.4)
    person, gold = glyph(big, 0.5 if maskable else 0.62)
    for mask, colour in ((person, WHITE), (gold, GOLD)):
        a = (mask.astype(np.float32) / 255.0)[..., None]
        rgb = np.asarray(rgb * (1 - a) + np.array(colour, np.float32) * a, dtype=np.float32)
    if maskable:
        alpha = np.full((big, big), 255, np.uint8)
    else:
        alpha = rounded_mask(big, big * 0.22)
    rgba = np.dstack([rgb.clip(0, 255).astype(np.uint8), alpha])
    small = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_RGBA2BGRA), dtype=np.uint8)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    outputs = {
        "icon-192.png": compose(192, maskable=False),
        "icon-512.png": compose(512, maskable=False),
        "icon-maskable-512.png": compose(512, maskable=True),
    }
    for name, image in outputs.items():
        path = OUT / name
        cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"wrote {path.relative_to(HERE.parent.parent)} {image.shape[1]}x{image.shape[0]}")


if __name__ == "__main__":
    main()
