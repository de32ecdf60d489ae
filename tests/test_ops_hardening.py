"""Issue 13, operations: health and readiness, a database that never answers or is not
there, background jobs during an outage, request ids and control characters in logs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from cloud_api import admin
from cloud_api.api.app import _Periodic, create_app
from cloud_api.api.request_id import RequestIdMiddleware
from cloud_api.db.migrate import upgrade
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.security import new_api_key
from cloud_api.services.context import Services
from cloud_api.settings import CloudSettings
from storesight_common.logs import configure_logging
from tests.cloud_server import free_port, serve

DEADLINE_S = 120.0  # generous: only there so a hang fails instead of blocking the suite


@pytest.fixture
def silent_database() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def _in_thread(work: Any) -> Any:
    """`work()` in a thread, failing the test (not hanging it) if it never returns."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except BaseException as error:  # handed back to the test
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), "the call hung: no timeout"
    if "error" in result:
        raise result["error"]
    return result["value"]


# ---- row 18: connect timeout -> 503 ---------------------------------------------------------


def test_a_database_that_never_answers_gives_503(silent_database: int, tmp_path: Path) -> None:
    url = f"postgresql://storesight@127.0.0.1:{silent_database}/storesight"
    settings = CloudSettings(
        database_url=url,
        index_dir=tmp_path / "index",
        auto_migrate=False,
        database_connect_timeout_s=1,
    )
    engine = make_engine(url, connect_timeout_s=1, statement_timeout_s=5)
    with pytest.raises(OperationalError):
        _in_thread(lambda: engine.connect().close())

    class Ready:
        ready = True

    app = create_app(settings)
    app.state.services = Services(  # no lifespan: the services a started app would have
        settings=settings,
        sessions=session_factory(engine),
        recognizer=Ready(),  # type: ignore[arg-type]
        demographics=None,
    )
    client = TestClient(app, raise_server_exceptions=False)
    key, _, _ = new_api_key()
    answer = _in_thread(lambda: client.get("/v1/device", headers={"X-API-Key": key}))
    assert answer.status_code == 503
    assert answer.json()["error"] == "unavailable"
    ready = _in_thread(lambda: client.get("/readyz"))
    assert ready.status_code == 503
    assert ready.json() == {"status": "not_ready"}  # no detail without an admin's sign-in
    assert client.get("/healthz").json() == {"status": "ok"}  # alive all the same


# ---- row 19: /healthz, /readyz; row 17: the index directory after a clean stop ---------------


def test_healthz_is_liveness_and_readyz_details_are_for_admins(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade(url)
    with transaction(session_factory(make_engine(url))) as session:
        admin.create_region(session, "North")
        admin.create_store(session, "North", "N001", "North One")
        admin.create_user(session, "ops@example.com", "Ops", "admin", "ops-password-1")
        admin.create_user(
            session, "boss@example.com", "Boss", "store_manager", "boss-password-1", "N001"
        )
    settings = CloudSettings(
        database_url=url, index_dir=tmp_path / "index", estimate_demographics=False
    )
    with serve(settings) as server:
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        anonymous = httpx.get(server.url + "/readyz")
        assert anonymous.status_code == 200
        assert anonymous.json() == {"status": "ready"}

        def token(email: str, password: str) -> dict[str, str]:
            body = {"email": email, "password": password}
            answer = httpx.post(server.url + "/v1/auth/login", json=body).json()
            return {"Authorization": f"Bearer {answer['token']}"}

        manager = httpx.get(
            server.url + "/readyz", headers=token("boss@example.com", "boss-password-1")
        )
        assert manager.json() == {"status": "ready"}
        detailed = httpx.get(
            server.url + "/readyz", headers=token("ops@example.com", "ops-password-1")
        )
        assert detailed.json()["checks"] == {"database": "ok", "index": "loaded"}
        assert "samples" in detailed.json()["index"]
        process_dirs = list((tmp_path / "index").iterdir())
        assert process_dirs
    assert not list((tmp_path / "index").iterdir()), "index files left after a clean stop"


def test_a_failing_background_job_logs_the_outage_once_and_the_recovery() -> None:
    calls = 0
    recovered = threading.Event()

    def work() -> None:
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        recovered.set()

    with capture_logs() as logs:
        task = _Periodic("index-sync", 0.01, work)
        task.start()
        assert recovered.wait(DEADLINE_S)
        task.stop()
    failing = [e for e in logs if e["event"] == "background_task_failing"]
    assert len(failing) == 1
    assert "exc_info" not in failing[0]  # one line, no traceback
    assert [e["event"] for e in logs].count("background_task_recovered") == 1


# ---- row 22: serve against a closed database port ------------------------------------------


def test_serve_against_a_closed_database_port_says_so_in_one_line(tmp_path: Path) -> None:
    closed = free_port()
    url = f"postgresql://storesight@127.0.0.1:{closed}/storesight"
    done = subprocess.run(
        [sys.executable, "-m", "cloud_api.cli", "serve", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        cwd=tmp_path,
        env={**__import__("os").environ, "STORESIGHT_CLOUD_INDEX_DIR": str(tmp_path / "i")},
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, done.stderr
    assert "cannot reach the database" in errors[0]


# ---- section 4: request ids and control characters -----------------------------------------


def test_every_log_line_of_a_request_carries_its_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    log = structlog.get_logger("test")
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware)

    @app.get("/work")
    def work() -> dict[str, str]:  # a sync handler: runs in the thread pool
        log.info("handler_working")
        return {"ok": "yes"}

    client = TestClient(app)
    capsys.readouterr()
    given = client.get("/work", headers={"X-Request-ID": "till-7:abc.123"})
    assert given.headers["x-request-id"] == "till-7:abc.123"
    made = client.get("/work", headers={"X-Request-ID": "bad id\nforged=1"})
    assert made.headers["x-request-id"] != "bad id\nforged=1"
    assert len(made.headers["x-request-id"]) == 32
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "{" in line]
    working = [line for line in lines if line.get("event") == "handler_working"]
    assert [line["request_id"] for line in working] == [
        "till-7:abc.123",
        made.headers["x-request-id"],
    ]
    log.info("outside_a_request")
    outside = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert "request_id" not in outside


def test_control_characters_never_reach_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=False)
    capsys.readouterr()
    structlog.get_logger("test").info(
        "login_refused", email="eve@example.com\nlevel=info event=login user=1\x1b[2J\x00"
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one event, one line
    assert "\x1b" not in err and "\x00" not in err
    assert "\\x0a" in err and "\\x1b" in err
