"""`storesight-kiosk selftest`: can this machine run the kiosk? One line per check.

What it checks, in order: every model file the kiosk runs with (`KIOSK_MODELS`: present,
sha256 as in the manifest); the face pipeline (detection, alignment and a 128-d embedding
of the picture in ``resources/``); the camera or other source (opened, one frame read
within a time limit); the cloud (its URL answers and takes this device's key), when a key
is configured; the outbox database (opens, passes SQLite's quick check). Each line says
OK, FAIL or SKIP and why; nothing prints a traceback. The exit status is 0 only when no
check failed, so the installer's post-install step and support staff can act on it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, TextIO

import numpy as np

from facelib.config import FaceLibSettings
from kiosk_app.build_info import APP_ROOT, build_info
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.kiosk_models import KIOSK_MODELS
from kiosk_app.outbox import Outbox, outbox_path
from models.store import ModelStore

SELFTEST_PICTURE = APP_ROOT / "resources" / "selftest-face.jpg"
#: a camera that gives no frame in this long is reported as not working
SOURCE_TIMEOUT_S = 15.0

Outcome = Literal["OK", "FAIL", "SKIP"]


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str

    def line(self) -> str:
        return f"{self.outcome:<4} {self.name}: {self.detail}"


class CheckFailed(Exception):
    """A check's clear, one-line reason for failing."""


def run_selftest(
    config: KioskConfig,
    *,
    source: str | None = None,
    store: ModelStore | None = None,
    source_timeout_s: float = SOURCE_TIMEOUT_S,
    installation_only: bool = False,
) -> list[Check]:
    """Every check, in order; `source` (else the configured one) is the camera tried.
    `installation_only`: what the package installed (models, face pipeline), not this
    machine's camera, cloud or outbox (the installer's post-install step)."""
    store = store if store is not None else ModelStore()
    checks = [_check(f"model {name}", partial(_model, store, name)) for name in KIOSK_MODELS]
    models_ok = all(c.outcome == "OK" for c in checks)
    if models_ok:
        checks.append(_check("face pipeline", lambda: _face_pipeline(config, store)))
    else:
        checks.append(Check("face pipeline", "SKIP", "a model it needs failed its check"))
    if installation_only:
        return checks
    camera = source if source is not None else config.source
    checks.append(_check(f"source {camera!r}", lambda: _source(camera, source_timeout_s)))
    if config.api_key:
        checks.append(_check("cloud", lambda: _cloud(config)))
    else:
        checks.append(Check("cloud", "SKIP", "no API key configured (storesight-kiosk settings)"))
    checks.append(_check("outbox", lambda: _outbox(config.data_dir)))
    return checks


def report(checks: Iterable[Check], out: TextIO) -> int:
    """Print the checks, one line each, then a summary; 0 when none failed."""
    checks = list(checks)
    print(build_info().describe(), file=out)
    for check in checks:
        print(check.line(), file=out)
    failed = sum(c.outcome == "FAIL" for c in checks)
    print(
        f"selftest: {'FAILED' if failed else 'passed'} ({failed} of {len(checks)} failed)", file=out
    )
    return 1 if failed else 0


def _check(name: str, run: Callable[[], str]) -> Check:
    try:
        return Check(name, "OK", run())
    except CheckFailed as failure:
        return Check(name, "FAIL", str(failure))
    except Exception as error:  # a selftest reports, it never crashes: name what went wrong
        return Check(name, "FAIL", f"{type(error).__name__}: {error}")


def _model(store: ModelStore, name: str) -> str:
    path = store.path(name)  # raises a ModelError naming the file when missing or corrupt
    return f"{path.name} ({path.stat().st_size:,} bytes, sha256 as in the manifest)"


def _face_pipeline(config: KioskConfig, store: ModelStore) -> str:
    from facelib.analyzer import FaceAnalyzer
    from facelib.images import read_rgb

    if not SELFTEST_PICTURE.is_file():
        raise CheckFailed(f"the test picture {SELFTEST_PICTURE} is missing from the installation")
    settings = FaceLibSettings(
        detector=config.detector,
        runtime=config.runtime,
        recognition=config.recognition,
        estimate_age_gender=False,
        embed=True,
    )
    analyzer = FaceAnalyzer(settings, store)
    try:
        started = time.perf_counter()
        faces = analyzer.analyze(read_rgb(SELFTEST_PICTURE))
        took_ms = (time.perf_counter() - started) * 1000
    finally:
        analyzer.close()
    if not faces:
        raise CheckFailed(f"no face found in {SELFTEST_PICTURE.name}, which shows one")
    descriptor = faces[0].descriptor
    if descriptor is None:
        raise CheckFailed("the face was found but no embedding came out")
    vector = np.asarray(descriptor, dtype=np.float64)
    if vector.shape != (128,) or not np.all(np.isfinite(vector)) or not np.any(vector):
        raise CheckFailed(f"the embedding is not a usable 128-d vector (shape {vector.shape})")
    return (
        f"{len(faces)} face(s) in {SELFTEST_PICTURE.name}, 128-d embedding, "
        f"{took_ms:.0f} ms ({settings.detector.type} detector)"
    )


def _source(spec: str, timeout_s: float) -> str:
    """Open the source and read one frame, in a thread: a camera that hangs is a failure
    after `timeout_s`, not a selftest that never ends."""
    from kiosk_app.sources import open_source, opened

    result: dict[str, str] = {}

    def read() -> None:
        try:
            with opened(open_source(spec)) as source:
                frame = source.read()
                if frame is None:
                    result["error"] = f"{source.name} opened but gave no frame"
                    return
                result["ok"] = f"opened, a {frame.width}x{frame.height} frame read"
        except Exception as error:  # reported as the check's reason
            result["error"] = str(error) or type(error).__name__

    worker = threading.Thread(target=read, name="selftest-source", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise CheckFailed(f"no frame within {timeout_s:g} s (is the camera in use or unplugged?)")
    if "error" in result:
        raise CheckFailed(result["error"])
    return result["ok"]


def _cloud(config: KioskConfig) -> str:
    from kiosk_app.cloud_client import CloudClient, CloudError

    client = CloudClient(config.cloud_url, config.api_key)
    try:
        device = client.device()
    except CloudError as error:
        raise CheckFailed(str(error)) from None
    return (
        f"{client.shown} knows this key: {device.kind} {device.name!r} of "
        f"{device.store_name!r} ({device.store_code})"
    )


def _outbox(data_dir: Path) -> str:
    path = outbox_path(data_dir)
    try:
        with Outbox(path) as box:
            stats = box.stats()
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except (OSError, sqlite3.Error) as error:
        raise CheckFailed(f"{path}: {error}") from None
    if verdict != "ok":
        raise CheckFailed(f"{path} is damaged: {verdict}")
    return f"{path}: {stats.pending} pending, {stats.dead} dead"
