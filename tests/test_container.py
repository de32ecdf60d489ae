"""The built cloud image (deploy/Dockerfile), run with podman against this machine's
PostgreSQL: it serves /readyz, passes its own health check, runs as a non-root user on a
read-only root file system, carries verified models, and stops cleanly on SIGTERM.

Opt-in (building the image takes minutes): `make image-check` builds it and runs this file;
otherwise set STORESIGHT_TEST_IMAGE to an image already built. PODMAN and PODMAN_ARGS as for
deploy/build-image.sh (this sandbox: PODMAN="podman --runtime runc", PODMAN_ARGS with ulimits).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, pool, text

from cloud_api.db.migrate import head_revision, normalise_url
from tests.cloud_fixtures import postgres_unavailable, temporary_postgres_database

IMAGE = os.environ.get("STORESIGHT_TEST_IMAGE", "")
PODMAN = shlex.split(os.environ.get("PODMAN", "podman"))
PODMAN_ARGS = shlex.split(os.environ.get("PODMAN_ARGS", ""))
READY_WITHIN_S = 180.0


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    if not IMAGE:
        pytest.skip(
            "no image to test: `make image-check` builds one and runs this file "
            "(or set STORESIGHT_TEST_IMAGE to an image already built)"
        )
    if shutil.which(PODMAN[0]) is None:
        pytest.skip(f"{PODMAN[0]} is not installed (apt-get install podman)")
    if _podman("image", "exists", IMAGE).returncode != 0:
        pytest.skip(f"image {IMAGE} not found: build it with `sh deploy/build-image.sh {IMAGE}`")
    return IMAGE


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _readyz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with temporary_postgres_database() as url:
        yield url


def test_the_image_runs_as_a_non_root_user_with_verified_models(image: str) -> None:
    who = _podman("run", "--rm", *PODMAN_ARGS, "--entrypoint", "id", image, "-u")
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == "10001"
    models = _podman(
        "run", "--rm", *PODMAN_ARGS, "--entrypoint", "storesight-models", image,
        "verify", "age", "gender",
    )  # fmt: skip
    assert models.returncode == 0, models.stdout + models.stderr
    assert models.stdout.count("ok ") == 2
    config = _podman(
        "image", "inspect", image, "--format",
        "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|"
        "{{json .Config.Healthcheck.Test}}",
    )  # fmt: skip
    assert config.returncode == 0, config.stderr
    user, entrypoint, cmd, health = config.stdout.strip().split("|")
    assert user == "10001:10001"
    assert entrypoint == '["storesight-cloud"]' and cmd == '["serve"]'
    assert "/opt/storesight/healthcheck.py" in health  # kept: built with --format docker


def test_the_container_serves_readyz_on_postgresql_and_stops_cleanly(
    image: str, postgres_url: str
) -> None:
    port = _free_port()
    name = f"storesight-test-{os.getpid()}-{port}"
    started = _podman(
        "run", "-d", "--name", name, *PODMAN_ARGS, "--network", "host",
        "--read-only", "--tmpfs", "/tmp",
        "-e", f"STORESIGHT_CLOUD_DATABASE_URL={postgres_url}",
        "-e", f"STORESIGHT_CLOUD_PORT={port}",
        "-e", "STORESIGHT_CLOUD_HOST=127.0.0.1",
        image,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        status = None
        while time.monotonic() < deadline:
            status = _readyz(port)
            if status == 200:
                break
            running = _podman("inspect", name, "--format", "{{.State.Running}}")
            assert running.stdout.strip() == "true", _podman("logs", name).stderr[-3000:]
            time.sleep(1)
        assert status == 200, _podman("logs", name).stderr[-3000:]
        # the image's HEALTHCHECK, run now (podman schedules it through systemd, absent here)
        health = _podman("healthcheck", "run", name)
        assert health.returncode == 0, health.stdout + health.stderr
        # it migrated the empty database at start (STORESIGHT_CLOUD_AUTO_MIGRATE)
        engine = create_engine(normalise_url(postgres_url), poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                revision = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert revision.scalar_one() == head_revision()
        finally:
            engine.dispose()
        stopped = _podman("stop", "--time", "30", name, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        state = _podman("inspect", name, "--format", "{{.State.ExitCode}}")
        assert state.stdout.strip() == "0"  # SIGTERM: a clean shutdown, not a kill
        logs = _podman("logs", name)
        assert '"event": "cloud_api_stopped"' in logs.stdout + logs.stderr
    finally:
        _podman("rm", "--force", "--volumes", name, timeout=60)
