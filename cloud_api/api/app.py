"""The FastAPI application: built by create_app(settings), services started in its lifespan."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.api import errors
from cloud_api.api.headers import SecurityHeaders
from cloud_api.api.health import health
from cloud_api.api.limits import BodySizeLimit
from cloud_api.api.report_routes import router as reporting
from cloud_api.api.request_id import RequestIdMiddleware
from cloud_api.api.routes import router
from cloud_api.api.staff_routes import accounts as staff_accounts
from cloud_api.api.staff_routes import router as staff_api
from cloud_api.change_feed import DELETIONS, SAMPLES, ChangeFeed
from cloud_api.dashboard import router as dashboard
from cloud_api.db.session import error_line, open_database, session_factory
from cloud_api.reports import rollups
from cloud_api.services.alert_hub import AlertHub
from cloud_api.services.context import Services
from cloud_api.services.indexer import REBUILD_CHECK_S, versioned_recognizer
from cloud_api.services.login_limits import LoginLimits
from cloud_api.services.recognizer import Recognizer
from cloud_api.services.retention import purge_expired
from cloud_api.settings import CloudSettings
from cloud_api.staff_app import router as staff_app

log = structlog.get_logger(__name__)

RETENTION_INTERVAL_S = 3600.0
ROLLUP_INTERVAL_S = 30.0
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
        services.recognizer.follow(lambda: feed.live)

        def samples_changed(_channel: str | None, _payload: str) -> None:
            services.recognizer.heard()
            index_sync.wake()

        feed.subscribe((SAMPLES, DELETIONS), samples_changed)
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
            _Periodic(
                "index-versions",
                settings.index_check_interval_s,
                lambda: check_index_versions(services.recognizer, settings),
            ),
            _Periodic("retention", RETENTION_INTERVAL_S, lambda: purge_expired(services)),
            # reports read rollups; keep them warm so a report rarely waits for a refresh
            _Periodic(
                "rollups", ROLLUP_INTERVAL_S, lambda: rollups.ensure_fresh(services.sessions)
            ),
        ]
        if settings.mode == "store":  # a store server: aggregates to head office
            from cloud_api.upstream.pusher import UpstreamPusher

            pusher = UpstreamPusher(services.sessions, settings)
            pusher.queue_everything()
            app.state.upstream = pusher
            tasks.append(_Periodic("upstream", settings.upstream_interval_s, pusher.push_once))
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
            services.recognizer.close()
            # the index versions hold descriptors: the last process out removes them, unless
            # they are kept for a quick start
            if services.recognizer.versions is not None:
                services.recognizer.versions.leave(remove=not settings.index_keep_on_stop)
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
    app.include_router(staff_api)
    app.include_router(staff_accounts)
    app.include_router(staff_app)
    return app


def start_services(settings: CloudSettings) -> Services:
    sessions = session_factory(open_database(settings), store_server=settings.mode == "store")
    recognizer = start_recognizer(sessions, settings)
    demographics = None
    if settings.estimate_demographics:
        from cloud_api.services.demographics import DemographicsEstimator

        demographics = DemographicsEstimator(runtime=settings.runtime)
    return Services(
        settings=settings, sessions=sessions, recognizer=recognizer, demographics=demographics
    )


def start_recognizer(sessions: sessionmaker[Session], settings: CloudSettings) -> Recognizer:
    """The process's recogniser, serving from the newest index version of `index_dir`.

    With `index_builder="serve"` the process takes the directory's build lock if it is free;
    the builder publishes a version before serving when there is none yet or too many samples
    lie beyond it. Any other process maps what is there and reads the rest from the database
    (everything, searched exactly, until the builder's first version appears).
    """
    recognizer = versioned_recognizer(sessions, settings)
    versions = recognizer.versions
    assert versions is not None
    if settings.index_builder == "serve":
        versions.try_build()
    recognizer.load()
    due = recognizer.publish_due(max_age_s=settings.rebuild_interval_s)
    if versions.building and due in ("no version", "buffer full"):
        # build before serving: a first build under load would slow requests (a deletion is
        # already applied as a tombstone: its version is built in the background)
        recognizer.publish()
    return recognizer


def check_index_versions(recognizer: Recognizer, settings: CloudSettings) -> None:
    """Map a newer index version if one was published; with `index_builder="serve"`, become
    the builder when the one before stopped."""
    versions = recognizer.versions
    if versions is None:
        return
    if settings.index_builder == "serve" and not versions.building:
        versions.try_build()
    recognizer.refresh()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
