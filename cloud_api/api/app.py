"""The FastAPI application: built by create_app(settings), services started in its lifespan."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from cloud_api.api import errors
from cloud_api.api.headers import SecurityHeaders
from cloud_api.api.health import health
from cloud_api.api.limits import BodySizeLimit
from cloud_api.api.report_routes import router as reporting
from cloud_api.api.request_id import RequestIdMiddleware
from cloud_api.api.routes import router
from cloud_api.change_feed import DELETIONS, SAMPLES, ChangeFeed
from cloud_api.dashboard import router as dashboard
from cloud_api.db.session import error_line, make_engine, session_factory
from cloud_api.reports import rollups
from cloud_api.services.alert_hub import AlertHub
from cloud_api.services.context import Services
from cloud_api.services.login_limits import LoginLimits
from cloud_api.services.recognizer import Recognizer
from cloud_api.services.retention import purge_expired
from cloud_api.settings import CloudSettings

log = structlog.get_logger(__name__)

RETENTION_INTERVAL_S = 3600.0
ROLLUP_INTERVAL_S = 30.0
REBUILD_CHECK_S = 5.0
MIN_BACKOFF_S = 0.5  # the first pause after a failure; doubled per failure after that
MAX_BACKOFF_S = 30.0


class _Periodic:
    """A daemon thread running `work` every `interval` seconds until stopped.

    A failure (a database outage, say) is logged once, without a traceback, and the work is
    retried with a growing pause (up to MAX_BACKOFF_S) instead of every period; the recovery is
    logged once too. The loop never ends on an error: a database hiccup must not end index
    syncing.

    `interval` may be a function, asked before each wait (the change feed's pace: slow while
    notifications arrive, fast while they cannot); `wake()` runs the work early (a
    notification), but never sooner than `min_gap_s` after the last run began.
    """

    def __init__(
        self,
        name: str,
        interval: float | Callable[[], float],
        work: Callable[[], object],
        *,
        min_gap_s: float = 0.0,
    ) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._interval = interval if callable(interval) else lambda: interval
        self._min_gap_s = min_gap_s
        self._work = work
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _wait(self, wait: float, began: float, failing: bool) -> bool:
        """Wait `wait` seconds or until woken (at the earliest `min_gap_s` after `began`; a
        pause after a failure is not cut short); whether to go on (not stopped)."""
        (self._stop if failing else self._wake).wait(wait)
        too_soon = self._min_gap_s - (time.monotonic() - began)
        if too_soon > 0:
            self._stop.wait(too_soon)
        self._wake.clear()
        return not self._stop.is_set()

    def _run(self) -> None:
        wait = self._interval()
        failing = False
        began = time.monotonic()
        while self._wait(wait, began, failing):
            began = time.monotonic()
            try:
                self._work()
            except Exception as error:  # logged, retried after a pause
                if not failing and isinstance(error, OperationalError):
                    log.error(
                        "background_task_failing",
                        task=self._thread.name,
                        error="the database is unavailable",
                        detail=error_line(error),
                    )
                elif not failing:
                    log.exception("background_task_failing", task=self._thread.name)
                failing = True
                wait = min(max(wait * 2, MIN_BACKOFF_S), MAX_BACKOFF_S)
                continue
            if failing:
                log.info("background_task_recovered", task=self._thread.name)
            failing = False
            wait = self._interval()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)


def create_app(settings: CloudSettings | None = None) -> FastAPI:
    settings = settings if settings is not None else CloudSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = start_services(settings)
        app.state.services = services
        # one change feed per process: notifications wake index syncing and the alert hub
        feed = ChangeFeed.from_settings(settings)
        index_sync = _Periodic(
            "index-sync",
            lambda: feed.poll_interval(settings.sync_interval_s),
            services.recognizer.sync,
            min_gap_s=settings.sync_interval_s,
        )
        feed.subscribe((SAMPLES, DELETIONS), lambda _channel, _payload: index_sync.wake())
        alert_hub = AlertHub(
            services.sessions, feed, poll_interval_s=settings.alert_poll_interval_s
        )
        app.state.change_feed, app.state.alert_hub = feed, alert_hub
        tasks = [
            index_sync,
            _Periodic(
                "index-rebuild",
                REBUILD_CHECK_S,
                lambda: services.recognizer.maintain(max_age_s=settings.rebuild_interval_s),
            ),
            _Periodic("retention", RETENTION_INTERVAL_S, lambda: purge_expired(services)),
            # reports read rollups; keep them warm so a report rarely waits for a refresh
            _Periodic(
                "rollups", ROLLUP_INTERVAL_S, lambda: rollups.ensure_fresh(services.sessions)
            ),
        ]
        feed.start()
        await alert_hub.start()
        for task in tasks:
            task.start()
        log.info("cloud_api_started", database=_safe_url(settings.database_url))
        try:
            yield
        finally:
            await alert_hub.stop()
            feed.stop()
            for task in tasks:
                task.stop()
            # the index files hold descriptors and are rebuilt at every start: not left behind
            services.recognizer.close(remove_files=True)
            index_dir = services.recognizer.engine.index_dir
            if index_dir is not None:
                shutil.rmtree(index_dir, ignore_errors=True)
            log.info("cloud_api_stopped")

    app = FastAPI(
        title="StoreSight cloud API",
        version="1",
        description="Checkouts in; returning customers recognised; VIP cards and history out.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load scripts from a CDN: off; /openapi.json stays
        redoc_url=None,
    )
    # the last added runs first: request ids, then security headers, then the body limit
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders, settings=settings)
    app.state.login_limits = LoginLimits(settings)  # per API process
    errors.install(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(router)
    app.include_router(reporting)
    app.include_router(health)
    app.include_router(dashboard)
    return app


def start_services(settings: CloudSettings) -> Services:
    from cloud_api.db.migrate import upgrade

    if settings.auto_migrate:
        upgrade(settings.database_url)
    engine = make_engine(
        settings.database_url,
        connect_timeout_s=settings.database_connect_timeout_s,
        statement_timeout_s=settings.database_statement_timeout_s,
    )
    sessions = session_factory(engine)
    recognizer = Recognizer(
        sessions,
        policy=settings.decision_policy(),
        index_dir=process_index_dir(settings),
        settings=settings.engine,
    )
    recognizer.load()
    if recognizer.engine.rebuild_due():
        # build the indexes before serving: a first rebuild under load would slow requests
        started = time.perf_counter()
        recognizer.engine.rebuild()
        log.info("index_built_at_start", seconds=round(time.perf_counter() - started, 1))
    demographics = None
    if settings.estimate_demographics:
        from cloud_api.services.demographics import DemographicsEstimator

        demographics = DemographicsEstimator(runtime=settings.runtime)
    return Services(
        settings=settings, sessions=sessions, recognizer=recognizer, demographics=demographics
    )


def process_index_dir(settings: CloudSettings) -> Path:
    """This process's own index directory under `settings.index_dir`.

    Index files are a cache of the database, rebuilt at every start, and an engine owns its
    directory; several API processes on one machine therefore each get one, and directories
    left by processes of this host that no longer run are removed.
    """
    host = socket.gethostname()
    root = settings.index_dir
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{host}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return root / f"{host}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
