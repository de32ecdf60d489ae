"""`storesight-cloud indexer`: the process that builds a machine's recognition index versions.

It takes the index directory's build lock (waiting while another process holds it), maps the
newest version, reads the rest from the database, and then, like any API process, follows the
database (`sync_interval_s`); every `REBUILD_CHECK_S` it publishes a new version when one is
due (`Recognizer.publish_due`: after a deletion at once, with `rebuild_buffer_limit` samples
beyond the last version, or with any after `rebuild_interval_s`). The API processes of the
machine (`index_builder="indexer"`) only map what it publishes, so each version is built once,
by this process, whatever the number of workers.

Why a lock on the index directory rather than a PostgreSQL advisory lock: versions are shared
by the processes that can map the same files, that is those of one machine (or one shared
volume). An advisory lock would elect one builder for the whole database, and the other
machines' directories would never get a version. A `flock` elects one per directory, works
the same on SQLite, and is released by the kernel when its holder dies, so another process
(the next indexer, or with `index_builder="serve"` an API process) takes over.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import structlog
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.db.session import error_line, open_database, session_factory
from cloud_api.recognition.index_versions import IndexDirectory
from cloud_api.services.recognizer import Recognizer
from cloud_api.settings import CloudSettings

log = structlog.get_logger(__name__)

#: How often the builder checks whether a version is due.
REBUILD_CHECK_S = 5.0


def versioned_recognizer(sessions: sessionmaker[Session], settings: CloudSettings) -> Recognizer:
    """A recogniser on `settings.index_dir`'s versions (the directory joined, not loaded)."""
    versions = IndexDirectory(settings.index_dir, prefault=settings.engine.prefault)
    versions.enter()
    return Recognizer(
        sessions,
        policy=settings.decision_policy(),
        index_dir=None,
        settings=settings.engine,
        versions=versions,
    )


def run_indexer(settings: CloudSettings, *, once: bool, stop: threading.Event | None = None) -> int:
    """Build and publish index versions until stopped (SIGTERM, SIGINT or `stop`); with
    `once`, publish one version now and return."""
    stop = stop if stop is not None else _stop_on_signals()
    engine = open_database(settings)
    recognizer = versioned_recognizer(session_factory(engine), settings)
    versions = recognizer.versions
    assert versions is not None
    try:
        waited = False
        while not versions.try_build():
            if not waited:
                log.info("indexer_waiting", index_dir=str(settings.index_dir))
                waited = True
            if stop.wait(settings.index_check_interval_s):
                return 0
        started = time.perf_counter()
        recognizer.load()
        if once or recognizer.publish_due(max_age_s=settings.rebuild_interval_s):
            recognizer.publish()
        log.info(
            "indexer_ready",
            index_version=recognizer.version,
            seconds=round(time.perf_counter() - started, 1),
        )
        if not once:
            _follow(recognizer, settings, stop)
        return 0
    finally:
        recognizer.close()
        versions.leave(remove=not settings.index_keep_on_stop)
        engine.dispose()


def _follow(recognizer: Recognizer, settings: CloudSettings, stop: threading.Event) -> None:
    """Sync with the database and publish when due, until `stop`; a database outage is
    logged once and retried."""
    next_check = time.monotonic() + REBUILD_CHECK_S
    failing = False
    while not stop.wait(settings.sync_interval_s):
        try:
            recognizer.sync()
            if time.monotonic() >= next_check:
                recognizer.maintain(max_age_s=settings.rebuild_interval_s)
                next_check = time.monotonic() + REBUILD_CHECK_S
        except OperationalError as error:
            if not failing:
                log.error(
                    "indexer_failing", error="the database is unavailable", detail=error_line(error)
                )
            failing = True
            stop.wait(REBUILD_CHECK_S)
            continue
        if failing:
            log.info("indexer_recovered")
        failing = False


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("indexer_stopping", signal=signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
    return stop
