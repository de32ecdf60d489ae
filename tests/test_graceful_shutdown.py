"""`storesight-cloud serve` on SIGTERM: open alert streams end at once (their clients resume
elsewhere), so the process exits without waiting out the grace period; before, one open stream
kept it running forever. (Requests in flight finishing while a process drains behind HAProxy:
tests/test_cluster.py.)"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from cloud_api.db.migrate import upgrade
from tests.cloud_fixtures import west_harbour_till
from tests.cloud_server import free_port
from tests.cluster import GRACE_EXCEEDED, Node

pytestmark = pytest.mark.slow

#: far longer than the test waits for the stream to end: only the drain can end it in time
GRACE_S = 120


def test_sigterm_ends_open_alert_streams_and_the_process_exits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade(url)
    key = west_harbour_till(url)
    env = {
        "STORESIGHT_CLOUD_DATABASE_URL": url,
        "STORESIGHT_CLOUD_AUTO_MIGRATE": "false",
        "STORESIGHT_CLOUD_ESTIMATE_DEMOGRAPHICS": "false",
        "STORESIGHT_CLOUD_SHUTDOWN_GRACE_S": str(GRACE_S),
    }
    node = Node("api", free_port(), tmp_path / "api", env)
    node.start()
    try:
        node.wait_ready()
        connected = threading.Event()
        ended: list[str] = []

        def follow() -> None:
            headers = {"X-API-Key": key}
            try:
                with httpx.stream(
                    "GET", f"{node.url}/v1/stores/1/alerts", headers=headers, timeout=GRACE_S
                ) as response:
                    assert response.status_code == 200
                    for line in response.iter_lines():
                        if line.startswith("id:"):
                            connected.set()
                ended.append("cleanly")
            except httpx.HTTPError as error:
                ended.append(f"{type(error).__name__}: {error}")

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        assert connected.wait(30), "the alert stream did not open"
        node.terminate()
        follower.join(timeout=GRACE_S / 2)
        assert ended == ["cleanly"]  # the stream was ended by the server, not cut
        assert node.wait_exit(timeout_s=GRACE_S / 2) in (0, -signal.SIGTERM)
        log = node.log()
        assert "event_streams_ending" in log
        assert GRACE_EXCEEDED not in log
    finally:
        node.stop()
