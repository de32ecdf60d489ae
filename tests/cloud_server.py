"""Run the real cloud app over real HTTP (uvicorn on a free local port) for tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from cloud_api.api.app import create_app
from cloud_api.settings import CloudSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    url: str
    settings: CloudSettings


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@contextmanager
def serve(
    settings: CloudSettings, *, at_its_address: bool = False, app: FastAPI | None = None
) -> Iterator[RunningServer]:
    """The app on a free local port, or (`at_its_address`) on the settings' host and port,
    where `storesight-cloud serve` would listen. `app`: one made by `create_app(settings)`
    whose state (`app.state`, once started) the test looks into; else a new one."""
    host, port = (settings.host, settings.port) if at_its_address else ("127.0.0.1", free_port())
    config = uvicorn.Config(
        app or create_app(settings), host=host, port=port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the cloud app did not start (see the log above)")
        time.sleep(0.05)
    try:
        yield RunningServer(f"http://{host}:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serve_process(database_url: str, index_dir: str, **env: str) -> Iterator[str]:
    """`storesight-cloud serve` as its own OS process; yields its base URL."""
    import os
    import subprocess
    import sys

    import httpx

    port = free_port()
    environment = {
        **os.environ,
        "STORESIGHT_CLOUD_DATABASE_URL": database_url,
        "STORESIGHT_CLOUD_INDEX_DIR": index_dir,
        "STORESIGHT_CLOUD_AUTO_MIGRATE": "false",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cloud_api.cli", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                errors = process.stderr.read() if process.stderr else ""
                raise RuntimeError(f"serve exited with {process.returncode}: {errors}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not answer /healthz within 90 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
