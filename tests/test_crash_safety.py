"""The cloud API SIGKILLed under a load of checkouts from real tills (outbox + uplink), then
restarted on the same database and port: once the outboxes drain, every receipt is stored
exactly once (none lost, none doubled), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from cloud_api import admin
from cloud_api.db.models import LineItem, Receipt, Visit
from cloud_api.db.session import make_engine, session_factory, transaction
from contract import CheckoutRequest, Embedding
from contract import LineItem as LineItemIn
from contract import Receipt as ReceiptIn
from kiosk_app.outbox import Outbox
from kiosk_app.uplink import Uplink
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import free_port
from tests.test_kiosk_uplink import wait_for

TILLS = 4
BEFORE_KILL = 20  # checkouts per till queued before the API starts
WHILE_DOWN = 5  # per till, queued while the API is dead
KILL_AFTER = 25  # receipts stored in the cloud before the kill
CLOUD_ENV = {"STORESIGHT_CLOUD_ESTIMATE_DEMOGRAPHICS": "false", "STORESIGHT_LOG_LEVEL": "WARNING"}


def checkout(rng: np.random.Generator, till: int, n: int) -> CheckoutRequest:
    """A receipt of two lines; every other one with a face (a random stranger's descriptor)."""
    now = datetime.now(UTC)
    shots = []
    if n % 2 == 0:
        vector = rng.normal(size=128)
        vector /= np.linalg.norm(vector)
        shots = [Embedding.compact(vector.tolist(), 0.8) for _ in range(3)]
    return CheckoutRequest(
        idempotency_key=f"crash-{till}-{n}-{uuid.uuid4().hex[:8]}",
        captured_at=now,
        receipt=ReceiptIn(
            number=f"T{till}-{n:04d}",
            scanned_at=now,
            items=[
                LineItemIn(
                    sku=f"SKU-{k}",
                    name="Espresso beans",
                    category="coffee",
                    brand="Roastery",
                    quantity=Decimal(1),
                    unit_price=Decimal("4.50"),
                )
                for k in range(2)
            ],
        ),
        embeddings=shots,
    )


class CloudProcess:
    """`storesight-cloud serve` on a fixed port, started and SIGKILLed at will."""

    def __init__(self, url: str, index_dir: Path, port: int, log: Path, **env: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._args = [sys.executable, "-m", "cloud_api.cli", "serve", "--port", str(port)]
        self._env = {
            **os.environ,
            "STORESIGHT_CLOUD_DATABASE_URL": url,
            "STORESIGHT_CLOUD_INDEX_DIR": str(index_dir),
            "STORESIGHT_CLOUD_AUTO_MIGRATE": "false",
            **CLOUD_ENV,
            **env,
        }
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as sink:
            self.process = subprocess.Popen(
                self._args, env=self._env, stdout=sink, stderr=subprocess.STDOUT
            )
        wait_for(self._ready, 90, f"the API to answer /healthz (log: {self._log})")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.process.returncode}: see {self._log}")
        try:
            return httpx.get(self.base + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def transport_failed(box: Outbox) -> bool:
    """Whether the till's oldest checkout last failed without an HTTP answer."""
    head = box.head()
    return head is not None and head.attempts > 0 and head.last_status is None


def spawned_workers(pid: int) -> list[int]:
    """The worker processes uvicorn spawned under `pid` (Linux /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if parent == str(pid) and b"spawn_main" in command:
            found.append(int(proc.name))
    return found


def stored(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return session.scalar(select(func.count()).select_from(Receipt)) or 0
    finally:
        engine.dispose()


@pytest.fixture
def tills(migrated_url: str) -> list[str]:  # noqa: F811
    engine = make_engine(migrated_url)
    try:
        with transaction(session_factory(engine)) as session:
            admin.create_region(session, "North")
            admin.create_store(session, "North", "N001", "North One")
            return [
                admin.create_device(session, "N001", "till", f"till {n}")[1] for n in range(TILLS)
            ]
    finally:
        engine.dispose()


@pytest.fixture
def cloud(migrated_url: str, tmp_path: Path) -> Iterator[CloudProcess]:  # noqa: F811
    process = CloudProcess(migrated_url, tmp_path / "index", free_port(), tmp_path / "cloud.log")
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_api_killed_under_load_stores_every_receipt_exactly_once(
    migrated_url: str,  # noqa: F811
    tills: list[str],
    cloud: CloudProcess,
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(13)
    sent: list[CheckoutRequest] = []
    with ExitStack() as stack:
        boxes = [stack.enter_context(Outbox(tmp_path / f"outbox-{n}.db")) for n in range(TILLS)]
        uplinks = [
            Uplink(box, cloud.base, key, backoff_initial_s=0.05, backoff_max_s=0.5)
            for box, key in zip(boxes, tills, strict=True)
        ]

        def queue(count: int) -> None:
            for n, (box, uplink) in enumerate(zip(boxes, uplinks, strict=True)):
                for _ in range(count):
                    request = checkout(rng, n, len(sent))
                    box.put(request)
                    sent.append(request)
                uplink.wake()

        def pending() -> int:
            return sum(box.stats().pending for box in boxes)

        queue(BEFORE_KILL)
        cloud.start()
        for uplink in uplinks:
            uplink.start()
            stack.callback(uplink.stop)
        wait_for(lambda: stored(migrated_url) >= KILL_AFTER, 60, "receipts in the cloud")
        cloud.kill()  # four tills sending back to back: some requests are in flight
        assert pending() > 0, "the load ended before the kill; raise BEFORE_KILL"
        queue(WHILE_DOWN)
        wait_for(
            lambda: any(transport_failed(box) for box in boxes), 30, "a till to find the API gone"
        )
        cloud.start()  # the same database and port
        wait_for(lambda: pending() == 0, 60, "the outboxes to drain")
        for box in boxes:
            stats = box.stats()
            assert (stats.pending, stats.dead) == (0, 0)
        assert sum(box.stats().delivered for box in boxes) == len(sent)

    engine = make_engine(migrated_url)
    try:
        with session_factory(engine)() as session:
            receipts = session.execute(
                select(Receipt.id, Receipt.idempotency_key, Receipt.number)
            ).all()
            lines = session.scalar(select(func.count()).select_from(LineItem))
            checkout_visits = session.execute(
                select(Visit.receipt_id, func.count())
                .where(Visit.kind == "checkout")
                .group_by(Visit.receipt_id)
            ).all()
    finally:
        engine.dispose()
    keys = [key for _, key, _ in receipts]
    numbers = [number for _, _, number in receipts]
    assert sorted(keys) == sorted(r.idempotency_key for r in sent)  # each key exactly once
    assert sorted(numbers) == sorted(r.receipt.number for r in sent)  # each number once
    assert lines == 2 * len(sent)
    assert all(count == 1 for _, count in checkout_visits)


@pytest.mark.slow
def test_serve_with_two_workers_stores_once_and_recognises_across_processes(
    migrated_url: str,  # noqa: F811
    tills: list[str],
    tmp_path: Path,
) -> None:
    """`serve --workers 2`: two processes on one port, kept in step through the database."""
    cloud = CloudProcess(
        migrated_url,
        tmp_path / "index",
        free_port(),
        tmp_path / "cloud.log",
        STORESIGHT_CLOUD_WORKERS="2",
    )
    rng = np.random.default_rng(7)
    requests = [checkout(rng, 0, 2 * n) for n in range(8)]  # even numbers carry a face
    face = requests[0].embeddings
    requests = [r.model_copy(update={"embeddings": face}) for r in requests]
    try:
        cloud.start()
        headers = {"X-API-Key": tills[0], "Content-Type": "application/json"}
        with httpx.Client(base_url=cloud.base, headers=headers) as client:
            cards = []
            for request in requests:
                response = client.post(
                    "/v1/checkouts", content=request.model_dump_json(exclude_none=True)
                )
                assert response.status_code == 200, response.text
                cards.append(response.json()["card"])
        assert cloud.process is not None
        assert len(spawned_workers(cloud.process.pid)) == 2
    finally:
        cloud.stop()
    assert [c["status"] for c in cards] == ["new"] + ["returning"] * 7
    assert len({c["customer_id"] for c in cards}) == 1
    assert stored(migrated_url) == len(requests)
