"""A StoreSight cloud cluster on one machine, for tests/test_cluster.py.

- `Node`: one `storesight-cloud serve` OS process with its own index directory and log, as a
  separate machine would have; it can be started again on its port after a SIGKILL or SIGTERM.
- `Proxy`: Debian's HAProxy running deploy/haproxy.cfg (the file a deployment uses), its
  addresses given in the environment.
- `Traffic`: an httpx transport per client that records every request sent through the proxy:
  when it went and came back, its status or transport error, and which node answered (the
  proxy's X-StoreSight-Node header). Errors while reading an answer's body count too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
HAPROXY_CONFIG = REPO / "deploy" / "haproxy.cfg"
NODE_HEADER = "X-StoreSight-Node"
#: uvicorn's message when requests outlive the grace period and are cancelled
GRACE_EXCEEDED = "timeout graceful shutdown exceeded"


def haproxy_binary() -> str | None:
    """Debian's haproxy (in /usr/sbin, which a non-root PATH may lack), or None."""
    found = shutil.which("haproxy")
    if found is None and Path("/usr/sbin/haproxy").is_file():
        found = "/usr/sbin/haproxy"
    return found


def _wait(condition: str, timeout_s: float, check: Callable[[], bool]) -> None:
    """Call `check` (True when done) every 0.2 s, for `timeout_s` at most."""
    for _ in range(max(1, round(timeout_s / 0.2))):
        if check():
            return
        time.sleep(0.2)
    if not check():
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {condition}")


def stop_process(process: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM, and SIGKILL when it has not exited within `grace_s`."""
    for send, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        if process is None or process.poll() is not None:
            return
        process.send_signal(send)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


class Node:
    """`python -m cloud_api.cli serve --port PORT` with its own index directory."""

    def __init__(self, name: str, port: int, directory: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.port = port
        self.directory = directory
        self.log_path = directory / "serve.log"
        directory.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **env,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "STORESIGHT_CLOUD_INDEX_DIR": str(directory / "index"),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cloud_api.cli", "serve", "--port", str(self.port)],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, f"{self.name} was never started"
        return self.process

    def ready(self) -> bool:
        """Whether it answers /readyz with 200; fails when the process has exited."""
        process = self._running()
        if process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {process.returncode}; see {self.log_path}"
            )
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        _wait(f"{self.name} to be ready", timeout_s, self.ready)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as a machine losing power."""
        process = self._running()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: a graceful shutdown (what `docker stop` and systemd send)."""
        self._running().send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float) -> int:
        return self._running().wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process, grace_s=30.0)


class Proxy:
    """HAProxy in the foreground with deploy/haproxy.cfg in front of `nodes`."""

    def __init__(self, binary: str, port: int, nodes: list[Node], directory: Path) -> None:
        if len(nodes) != 3:
            raise ValueError("deploy/haproxy.cfg names three API servers")
        self.port = port
        self.log_path = directory / "haproxy.log"
        self.env = {
            **os.environ,
            "STORESIGHT_PROXY_BIND": f"127.0.0.1:{port}",
            **{f"STORESIGHT_API_{n}": node.address for n, node in enumerate(nodes, 1)},
        }
        self.command = [binary, "-db", "-f", str(HAPROXY_CONFIG)]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        checked = subprocess.run(
            [*self.command, "-c"], env=self.env, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, f"deploy/haproxy.cfg: {checked.stdout}{checked.stderr}"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_serving(self, names: set[str], timeout_s: float = 30.0) -> None:
        """Until each of `names` has answered through the proxy (leastconn takes turns
        between servers of equal load, so an idle cluster answers from each in turn)."""
        seen: set[str] = set()

        def all_seen() -> bool:
            process = self.process
            assert process is not None and process.poll() is None, f"see {self.log_path}"
            try:
                answer = httpx.get(self.url + "/readyz", timeout=2)
            except httpx.TransportError:
                return False
            if answer.status_code == 200:
                seen.add(answer.headers.get(NODE_HEADER, ""))
            return names <= seen

        _wait(f"the proxy to route to {sorted(names)}", timeout_s, all_seen)

    def replays(self) -> list[Replay]:
        """Requests the proxy sent again to another server after the first one failed them
        (from its log: `retry-on`, `option redispatch`)."""
        found = []
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        for match in _REPLAYED.finditer(text):
            accepted = datetime.strptime(match["accepted"], "%d/%b/%Y:%H:%M:%S.%f").timestamp()
            took_s = int(match["total_ms"]) / 1000
            found.append(Replay(accepted, accepted + took_s, match["server"], match["path"]))
        return found

    def stop(self) -> None:
        stop_process(self.process, grace_s=10.0)


#: an `option httplog` line whose retry count is not 0 ("+1": sent again to another server)
_REPLAYED = re.compile(
    r"\[(?P<accepted>[^\]]+)\] \S+ \S+/(?P<server>\S+) [-\d]+/[-\d]+/[-\d]+/[-\d]+/"
    r"(?P<total_ms>\d+) .*? \d+/\d+/\d+/\d+/\+?[1-9]\d* \d+/\d+ "
    r'"\S+ (?P<path>\S+)'
)


@dataclass(frozen=True)
class Replay:
    accepted: float  # wall clock (time.time()), as the proxy logs it
    ended: float
    server: str  # the server that answered in the end
    path: str


@dataclass(frozen=True)
class Attempt:
    """One request as its client saw it."""

    client: str
    path: str
    started: float  # time.monotonic()
    ended: float  # when the answer's head arrived, or the error
    status: int | None
    node: str | None  # the server that answered, as the proxy names it
    error: str | None = None  # a transport error (sending, or reading the body)

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.status is not None and self.status >= 500)

    def overlaps(self, start: float, end: float) -> bool:
        return self.started <= end and self.ended >= start


class Traffic:
    """Every request the test's clients send, recorded by their transports (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: list[Attempt] = []

    def transport(self, client: str) -> httpx.BaseTransport:
        return _RecordingTransport(self, client)

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts.append(attempt)

    def attempts(self, client_prefix: str = "") -> list[Attempt]:
        with self._lock:
            return [a for a in self._attempts if a.client.startswith(client_prefix)]

    def last_node(self, path_suffix: str) -> str | None:
        """The node that last answered a request to a path ending so (2xx only)."""
        for attempt in reversed(self.attempts()):
            if attempt.path.endswith(path_suffix) and attempt.status == 200:
                return attempt.node
        return None


class _RecordingTransport(httpx.HTTPTransport):
    def __init__(self, traffic: Traffic, client: str) -> None:
        super().__init__()
        self._traffic = traffic
        self._client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        path = request.url.path
        try:
            response = super().handle_request(request)
        except httpx.TransportError as error:
            self._record(path, started, None, None, f"{type(error).__name__}: {error}")
            raise
        node = response.headers.get(NODE_HEADER)
        self._record(path, started, response.status_code, node, None)
        assert isinstance(response.stream, httpx.SyncByteStream)

        def body_failed(error: Exception) -> None:
            reason = f"reading the body: {type(error).__name__}: {error}"
            self._record(path, started, response.status_code, node, reason)

        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_WatchedStream(response.stream, body_failed),
            extensions=response.extensions,
            request=request,
        )

    def _record(
        self, path: str, started: float, status: int | None, node: str | None, error: str | None
    ) -> None:
        attempt = Attempt(self._client, path, started, time.monotonic(), status, node, error)
        self._traffic.add(attempt)


class _WatchedStream(httpx.SyncByteStream):
    """A response body that reports a transport error while it is read."""

    def __init__(self, inner: httpx.SyncByteStream, on_error: Callable[[Exception], None]) -> None:
        self._inner = inner
        self._on_error = on_error

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except httpx.TransportError as error:
            self._on_error(error)
            raise

    def close(self) -> None:
        self._inner.close()
