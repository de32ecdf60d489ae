"""Faces of photo files, analysed once by the product's face library and cached by file hash.

The open-set evaluation needs, for each of some 9,000 photos, what the till and the cloud
would know about its face: the descriptor (the kiosk's FaceAnalyzer, flip-averaged as
configured) and the age and gender the cloud estimates. Analysing them takes minutes, so each
result is kept in a SQLite file keyed by the sha256 of the photo's bytes and the pipeline's
settings; a renamed or copied photo is not analysed again, a changed one is.

Photos are analysed by `workers` processes (each with its own models, one thread each); the
progress bar counts photos.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

DEFAULT_CACHE = Path("var/eval-cache/faces.sqlite3")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS faces (
    sha256 TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    found INTEGER NOT NULL,
    descriptor BLOB,
    age_years REAL,
    gender TEXT,
    gender_confidence REAL,
    score REAL,
    PRIMARY KEY (sha256, pipeline)
)
"""


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """The central face of one photo as the product sees it; `descriptor` None: no face."""

    descriptor: NDArray[np.float32] | None
    age_years: float | None
    gender: str | None
    gender_confidence: float | None
    score: float | None


NO_FACE = FaceRecord(None, None, None, None, None)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pipeline_key() -> str:
    """What decides a descriptor: the face library's detector and recognition settings."""
    from facelib.config import FaceLibSettings

    settings = FaceLibSettings()
    return json.dumps(
        {
            "detector": settings.detector.model_dump(mode="json"),
            "flip": settings.recognition.flip_average,
            "version": 1,
        },
        sort_keys=True,
    )


class FaceCache:
    """SQLite file of FaceRecords by (file sha256, pipeline key)."""

    def __init__(self, path: Path = DEFAULT_CACHE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get_many(self, hashes: Sequence[str], pipeline: str) -> dict[str, FaceRecord]:
        out: dict[str, FaceRecord] = {}
        for start in range(0, len(hashes), 500):
            chunk = list(hashes[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT sha256, found, descriptor, age_years, gender, gender_confidence, score "
                f"FROM faces WHERE pipeline = ? AND sha256 IN ({marks})",
                [pipeline, *chunk],
            )
            for sha, found, blob, age, gender, confidence, score in rows:
                out[sha] = (
                    FaceRecord(
                        np.frombuffer(blob, dtype="<f4").astype(np.float32),
                        age,
                        gender,
                        confidence,
                        score,
                    )
                    if found
                    else NO_FACE
                )
        return out

    def put_many(self, items: Sequence[tuple[str, FaceRecord]], pipeline: str) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO faces VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    sha,
                    pipeline,
                    int(r.descriptor is not None),
                    None if r.descriptor is None else r.descriptor.astype("<f4").tobytes(),
                    r.age_years,
                    r.gender,
                    r.gender_confidence,
                    r.score,
                )
                for sha, r in items
            ],
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()


# ---- analysing, in worker processes -------------------------------------------------------

_ANALYZER = None


def _start_worker() -> None:
    global _ANALYZER
    from facelib.analyzer import FaceAnalyzer
    from storesight_common.logs import configure_logging

    configure_logging(level="WARNING")
    _ANALYZER = FaceAnalyzer()


def _analyse(path: Path) -> FaceRecord:
    from evaluation.face_encoding import central
    from facelib.images import read_rgb

    assert _ANALYZER is not None, "worker not started"
    image = read_rgb(path)
    faces = _ANALYZER.analyze(image)
    if not faces:
        return NO_FACE
    image_h, image_w = image.shape[:2]
    face = faces[central([f.detection.box for f in faces], image_w, image_h)]
    if face.descriptor is None:
        return NO_FACE
    return FaceRecord(
        descriptor=np.asarray(face.descriptor, dtype=np.float32),
        age_years=None if face.age is None else float(face.age.years),
        gender=None if face.gender is None else face.gender.label,
        gender_confidence=None if face.gender is None else float(face.gender.confidence),
        score=float(face.detection.score),
    )


def _analyse_batch(paths: list[Path]) -> list[FaceRecord]:
    return [_analyse(p) for p in paths]


def _batches(items: Sequence[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def analyse_photos(
    paths: Sequence[Path],
    *,
    cache: FaceCache,
    workers: int = 1,
    desc: str = "photos",
) -> dict[Path, FaceRecord]:
    """The FaceRecord of every photo: from the cache where it is there, analysed otherwise."""
    pipeline = pipeline_key()
    unique = list(dict.fromkeys(paths))
    hashes = {p: file_hash(p) for p in tqdm(unique, desc=f"{desc}: hashing", unit="photo")}
    known = cache.get_many(list(set(hashes.values())), pipeline)
    todo = [p for p in unique if hashes[p] not in known]
    # one photo per distinct content is enough
    todo = list({hashes[p]: p for p in todo}.values())
    if todo:
        bar = tqdm(total=len(todo), desc=f"{desc}: analysing", unit="photo")
        batches = list(_batches(todo, 16))
        if workers <= 1:
            _start_worker()
            _consume(map(_analyse_batch, batches), batches, hashes, known, cache, pipeline, bar)
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker) as pool:
                results = pool.map(_analyse_batch, batches)
                _consume(results, batches, hashes, known, cache, pipeline, bar)
        bar.close()
    return {p: known[hashes[p]] for p in unique}


def _consume(
    results: Iterable[list[FaceRecord]],
    batches: list[list[Path]],
    hashes: dict[Path, str],
    known: dict[str, FaceRecord],
    cache: FaceCache,
    pipeline: str,
    bar: tqdm,
) -> None:
    for batch, records in zip(batches, results, strict=True):
        items = [(hashes[p], r) for p, r in zip(batch, records, strict=True)]
        cache.put_many(items, pipeline)
        known.update(items)
        bar.update(len(batch))
