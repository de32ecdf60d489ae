"""Similarity alignment of detector keypoints to dlib's 5-point face template.

dlib's face recogniser and Cydral's age/gender networks were trained on chips cut by
`dlib.get_face_chip_details`: a similarity transform taking the 5-point landmarks (eye corners
and the base of the nose) onto a fixed template, scaled into a square with some padding.
Detectors report other points (eye centres, nose tip, mouth centre), so `DETECTOR_TEMPLATE`
gives where those points fall in dlib's template frame. It was measured, not guessed:
`storesight-eval calibrate-template` maps BlazeFace keypoints through dlib's own 5-point
alignment on LFW photos and takes the median position of each (see that command).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from facelib.types import FloatArray, RGBImage

#: dlib's 5-point template in the unit face square (dlib/image_transforms/interpolation.h):
#: image-right eye outer and inner corner, image-left eye outer and inner corner, nose base.
DLIB_TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)

#: Where the detector landmarks (facelib.types.Landmark order: image-left eye, image-right eye,
#: nose tip, mouth centre) sit in dlib's unit template frame: medians over 564 LFW faces,
#: from `storesight-eval calibrate-template`.
DETECTOR_TEMPLATE = np.array(
    [
        [0.2216, 0.2247],
        [0.7835, 0.2321],
        [0.5003, 0.5511],
        [0.4970, 0.8425],
    ],
    dtype=np.float64,
)

#: Relative trust in each landmark, about the inverse of its variance in the calibration:
#: eyes are stable, the mouth less so, the nose tip moves with head yaw.
DETECTOR_WEIGHTS = np.array([1.0, 1.0, 0.1, 0.3], dtype=np.float64)

EMBEDDING_CHIP = (150, 0.25)
AGE_CHIP = (64, 0.2)
GENDER_CHIP = (32, 0.2)


def chip_points(template: NDArray[np.float64], size: int, padding: float) -> NDArray[np.float64]:
    """Template points in chip pixels, as dlib places them: (padding + p) / (1 + 2 padding)."""
    return (padding + template) / (1.0 + 2.0 * padding) * size


def similarity_transform(
    src: NDArray[np.float64] | FloatArray,
    dst: NDArray[np.float64] | FloatArray,
    weights: NDArray[np.float64] | FloatArray | None = None,
) -> NDArray[np.float64]:
    """Least-squares rotation + uniform scale + translation taking `src` onto `dst` (2x3)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s = (w[:, None] * src).sum(0)
    mu_d = (w[:, None] * dst).sum(0)
    s0 = src - mu_s
    d0 = dst - mu_d
    # Closed form for a 2-D similarity: minimise sum w |a R s + t - d|^2.
    a = (w * (s0[:, 0] * d0[:, 0] + s0[:, 1] * d0[:, 1])).sum()
    b = (w * (s0[:, 0] * d0[:, 1] - s0[:, 1] * d0[:, 0])).sum()
    var = (w * (s0**2).sum(1)).sum()
    if var <= 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    c, s = a / var, b / var
    rot = np.array([[c, -s], [s, c]])
    t = mu_d - rot @ mu_s
    return np.hstack([rot, t[:, None]])


def detector_transform(landmarks: FloatArray, size: int, padding: float) -> NDArray[np.float64]:
    return similarity_transform(
        landmarks, chip_points(DETECTOR_TEMPLATE, size, padding), DETECTOR_WEIGHTS
    )


def warp_chip(image: RGBImage, transform: NDArray[np.float64], size: int) -> RGBImage:
    """Cut a size x size chip; large reductions are pre-shrunk with area averaging (no aliasing)."""
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    matrix = transform
    source = image
    if scale < 0.5:
        inverse = cv2.invertAffineTransform(transform)
        corners = np.array(
            [[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64
        )
        mapped = corners @ inverse.T
        height, width = image.shape[:2]
        x0 = int(max(0, np.floor(mapped[:, 0].min()) - 2))
        y0 = int(max(0, np.floor(mapped[:, 1].min()) - 2))
        x1 = int(min(width, np.ceil(mapped[:, 0].max()) + 2))
        y1 = int(min(height, np.ceil(mapped[:, 1].max()) + 2))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            factor = scale * 1.25  # keep a little more resolution than the chip needs
            new_w = max(1, round((x1 - x0) * factor))
            new_h = max(1, round((y1 - y0) * factor))
            crop = image[y0:y1, x0:x1]
            source = np.asarray(
                cv2.resize(crop, (new_w, new_h), interpolation=cv2.INTER_AREA), dtype=np.uint8
            )
            fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
            # chip <- crop-resized: undo the resize and the crop offset before the transform.
            back = np.array([[1 / fx, 0, x0 + 0.5 / fx - 0.5], [0, 1 / fy, y0 + 0.5 / fy - 0.5]])
            matrix = transform[:, :2] @ back[:, :2]
            matrix = np.hstack([matrix, (transform[:, :2] @ back[:, 2] + transform[:, 2])[:, None]])
    chip = cv2.warpAffine(
        source,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.ascontiguousarray(chip)


def align(image: RGBImage, landmarks: FloatArray, size: int, padding: float) -> RGBImage:
    """The chip a detector's landmarks give, for a network trained on dlib chips."""
    return warp_chip(image, detector_transform(landmarks, size, padding), size)


def rechip(chip: RGBImage, source: tuple[int, float], target: tuple[int, float]) -> RGBImage:
    """Cut a chip of another size/padding out of an aligned chip (same template frame).

    The cloud receives only the 150x150 embedding chip (padding 0.25) and derives the age and
    gender chips (padding 0.2) from it, so no larger crop of the face ever leaves the store.
    """
    size, padding = source
    if chip.shape[:2] != (size, size):
        raise ValueError(f"expected a {size}x{size} chip, got {chip.shape[1]}x{chip.shape[0]}")
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    transform = similarity_transform(
        chip_points(corners, size, padding), chip_points(corners, *target)
    )
    return warp_chip(chip, transform, target[0])
