"""The whole system on this machine, twice over the same clip, then a summary.

1. A fresh cloud database (embedded SQLite under var/demo), migrated; a region, a store, a
   till and an entrance device created with the admin functions.
2. `storesight-cloud serve` started as its own process (log: var/demo/logs/cloud.log).
3. The kiosk service (capture, pipeline, binder, outbox, uplink, local receipt endpoint)
   on the source: camera 0 if there is one, else a clip from the shared data, else SOURCE.
4. A simulated POS posts a receipt to the till's local endpoint whenever a new customer has
   stood at the counter for a moment. After the first pass the first customer joins the VIP
   programme (with consent); the second pass over the same clip shows returning customers.
5. A summary, also written to demo-summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from contract import DecisionAnswer
from evaluation.data_paths import shared_data_dir
from facelib.config import DetectorSettings
from kiosk_app.events import (
    CardReceived,
    CheckoutQueued,
    EventCollector,
    JsonLinesWriter,
    KioskEvent,
)
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.pipeline import FrameResult
from kiosk_app.service import KioskService
from storesight_common.logs import configure_logging

DEMO_DIR = Path("var/demo")
CATALOGUE = [
    ("SKU-COFFEE", "Espresso beans 1kg", "coffee", "Roastery", "18.90"),
    ("SKU-TEA", "Green tea", "tea", "Leafy", "6.50"),
    ("SKU-MILK", "Oat milk", "dairy", "Oaty", "2.20"),
    ("SKU-CHOC", "Dark chocolate", "sweets", "Cacao Co", "3.40"),
    ("SKU-MUG", "Travel mug", "homeware", "Roastery", "14.00"),
    ("SKU-CAKE", "Carrot cake", "bakery", "Crumb", "4.80"),
]
HEAD_OFFICE_EMAIL = "head-office@demo.storesight"
DEMO_PASSWORD = "demo-password-1"  # a local demo database only
#: Consecutive frames a face must be the primary customer before the simulated POS scans.
PRIMARY_FRAMES = 8


def pick_source(given: str | None) -> str:
    if given:
        return given
    if Path("/dev/video0").exists():
        return "0"
    clip = shared_data_dir() / "video" / "facenet-pytorch_video.mp4"
    if clip.is_file():
        return str(clip)
    raise SystemExit("no camera and no clip in the shared data: run `make demo SOURCE=...`")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def setup_cloud(url: str) -> dict[str, str]:
    from cloud_api import admin
    from cloud_api.db.migrate import upgrade
    from cloud_api.db.session import make_engine, session_factory, transaction

    upgrade(url)
    sessions = session_factory(make_engine(url))
    with transaction(sessions) as session:
        admin.create_region(session, "Demo region")
        admin.create_store(session, "Demo region", "DEMO-1", "Demo store")
        _, till = admin.create_device(session, "DEMO-1", "till", "till 1")
        _, entrance = admin.create_device(session, "DEMO-1", "entrance", "door")
        admin.create_user(session, HEAD_OFFICE_EMAIL, "Head office", "head_office", DEMO_PASSWORD)
    return {"till": till, "entrance": entrance}


def start_cloud(url: str, port: int, logs: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STORESIGHT_CLOUD_DATABASE_URL": url,
        "STORESIGHT_CLOUD_INDEX_DIR": str(DEMO_DIR / "index"),
        "STORESIGHT_LOG_JSON": "1",
    }
    log = (logs / "cloud.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "cloud_api.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the cloud API exited; see {logs / 'cloud.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit("the cloud API did not start within 120 s")


def receipt_body(
    number: str, basket: list[tuple[tuple[str, str, str, str, str], int]]
) -> dict[str, Any]:
    """A POS receipt as JSON: (catalogue row, quantity) per line."""
    return {
        "number": number,
        "scanned_at": datetime.now(UTC).isoformat(),
        "items": [
            {
                "sku": sku,
                "name": name,
                "category": category,
                "brand": brand,
                "quantity": quantity,
                "unit_price": price,
            }
            for (sku, name, category, brand, price), quantity in basket
        ],
    }


class SimulatedPos:
    """Posts a receipt for each new primary customer, like a cashier scanning a basket."""

    def __init__(self, pass_no: int, seed: int) -> None:
        self.url = ""
        self.pass_no = pass_no
        self._served: set[int] = set()
        self._primary_frames: dict[int, int] = {}
        self._rng = random.Random(seed)
        self.posted = 0
        self._lock = threading.Lock()

    def on_frame(self, result: FrameResult) -> None:
        primary = result.primary
        if primary is None or not self.url:
            self._primary_frames.clear()
            return
        # a cashier scans once the same customer has stood at the counter for a moment
        count = self._primary_frames.get(primary.track_id, 0) + 1
        self._primary_frames = {primary.track_id: count}
        if count >= PRIMARY_FRAMES and primary.track_id not in self._served:
            self._served.add(primary.track_id)
            threading.Thread(target=self._post, args=(primary.track_id,), daemon=True).start()

    def _post(self, track_id: int) -> None:
        with self._lock:
            self.posted += 1
            number = f"P{self.pass_no}-{self.posted:04d}"
            items = self._rng.sample(CATALOGUE, k=self._rng.randint(1, 3))
            basket = [(item, self._rng.randint(1, 2)) for item in items]
        receipt = receipt_body(number, basket)
        httpx.post(self.url, json=receipt, timeout=10).raise_for_status()


def kiosk_detector(source: str) -> DetectorSettings:
    # a clip of people walking up to the camera: full range and tiles find faces at 2-5 m
    far = not source.isdigit()
    return DetectorSettings(range="full", tile=far, tile_size=512)


def run_pass(
    pass_no: int, source: str, cloud: str, keys: dict[str, str], events: EventCollector
) -> None:
    """One pass over `source`: its kiosk events go to `events` and to the pass's own log."""
    pos = SimulatedPos(pass_no, seed=pass_no)
    writer = JsonLinesWriter(DEMO_DIR / "logs" / f"kiosk-events-pass{pass_no}.jsonl")

    def sink(event: KioskEvent) -> None:
        events(event)
        writer(event)

    config = KioskConfig(
        source=source,
        cloud_url=cloud,
        api_key=keys["till"],
        device="till-1",
        receipts_port=0,
        data_dir=DEMO_DIR / "kiosk",
        detector=kiosk_detector(source),
    )
    service = KioskService(config, sink, on_frame=pos.on_frame)
    service.start()
    pos.url = service.receipts_url
    print(f"pass {pass_no}: kiosk running on {source}; receipts at {service.receipts_url}")
    live = source.isdigit()
    service.source_ended.wait(timeout=60 if live else None)
    time.sleep(0.5)  # receipts posted for the last frames
    if not service.drain(timeout_s=60):
        print("warning: some checkouts were still undelivered (the outbox keeps them)")
    service.stop()
    writer.close()


def summary(
    passes: tuple[EventCollector, EventCollector], confirmed: int, database: str
) -> dict[str, Any]:
    """The demo's figures from each pass's events and how many the cashier confirmed."""
    first, second = passes
    second_cards = second.of(CardReceived)
    cards = first.of(CardReceived) + second_cards
    queued = first.of(CheckoutQueued) + second.of(CheckoutQueued)
    latencies = [c.latency_ms for c in cards if c.latency_ms is not None]
    from cloud_api.db.models import Receipt
    from cloud_api.db.session import make_engine, session_factory

    sessions = session_factory(make_engine(database))
    with sessions() as session:
        stored = session.query(Receipt).count()

    def pct(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)

    return {
        "checkouts": len(queued),
        "stored": stored,
        "new": sum(c.status == "new" for c in cards),
        "returning": sum(c.status == "returning" for c in cards),
        "returning_second_pass": sum(c.status == "returning" for c in second_cards),
        "checkouts_second_pass": len(second_cards),
        "vips_recognised": sum(c.member for c in second_cards),
        "possible_members": sum(c.status == "possible_member" for c in cards),
        "confirmed_by_cashier": confirmed,
        "latency_p50_ms": pct(latencies, 50),
        "latency_p95_ms": pct(latencies, 95),
        "bytes_per_checkout": round(statistics.mean(q.bytes for q in queued)) if queued else 0,
        "logs": str(DEMO_DIR / "logs"),
    }


def enrol_first_member(cloud: str, key: str, events: EventCollector) -> int | None:
    customers = [c.customer_id for c in events.of(CardReceived) if c.customer_id is not None]
    if not customers:
        return None
    customer = customers[0]
    response = httpx.put(
        f"{cloud}/v1/customers/{customer}/membership",
        json={"vip_number": "VIP-0001", "name": "Demo member", "level": "gold", "consent": True},
        headers={"X-API-Key": key},
        timeout=10,
    )
    response.raise_for_status()
    return customer


def confirm_possible_members(
    cloud: str, key: str, member: int | None, cards: list[CardReceived]
) -> int:
    """The cashier's part: a "possible member" card asks "Are you ...?"; on this clip the
    person at the counter is the member enrolled after pass one, so the cashier confirms.

    Returns how many it confirmed. The demo plays the cashier here, over HTTP: that is no
    kiosk event (the kiosk emits none for a confirmation), so it is counted, not collected.
    """
    confirmed = 0
    if member is None:
        return confirmed
    for card in cards:
        if card.status != "possible_member" or card.decision_id is None:
            continue
        answer = httpx.post(
            f"{cloud}/v1/decisions/{card.decision_id}/confirm",
            headers={"X-API-Key": key},
            timeout=10,
        )
        if answer.status_code == 200:
            customer = DecisionAnswer.model_validate(answer.json()).card.customer_id
            confirmed += 1
            print(f"cashier confirmed a possible member: customer {customer}")
        else:
            print(f"cashier's confirmation refused ({answer.status_code}): {answer.text}")
    return confirmed


def head_office_view(cloud: str) -> dict[str, Any]:
    """What head office sees of the demo: a few report figures, read over HTTP as a user."""
    with httpx.Client(base_url=cloud, timeout=30) as client:
        client.post(
            "/v1/auth/login", json={"email": HEAD_OFFICE_EMAIL, "password": DEMO_PASSWORD}
        ).raise_for_status()
        traffic = client.get("/v1/reports/traffic").json()["summary"]
        customers = client.get("/v1/reports/customers").json()["summary"]
        categories = client.get("/v1/reports/categories").json()
    return {
        "report_transactions": traffic["transactions"],
        "report_buyers": traffic["buyers"],
        "report_new_customers": customers["new_customers"],
        "report_returning_customers": customers["returning_customers"],
        "report_top_category": categories["summary"]["top_category"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__)
    parser.add_argument("--source", default=os.environ.get("SOURCE") or None)
    parser.add_argument("--summary", type=Path, default=Path("demo-summary.json"))
    parser.add_argument("--dir", type=Path, default=None, help="state and logs (var/demo)")
    parser.add_argument(
        "--serve", action="store_true", help="keep the cloud API up afterwards for the dashboard"
    )
    args = parser.parse_args(argv)
    configure_logging()
    global DEMO_DIR
    if args.dir is not None:
        DEMO_DIR = args.dir
    source = pick_source(args.source)
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    (DEMO_DIR / "logs").mkdir(parents=True)
    database = f"sqlite:///{DEMO_DIR / 'cloud.db'}"
    keys = setup_cloud(database)
    port = free_port()
    cloud = f"http://127.0.0.1:{port}"
    process = start_cloud(database, port, DEMO_DIR / "logs")
    passes = (EventCollector(), EventCollector())
    try:
        run_pass(1, source, cloud, keys, passes[0])
        member = enrol_first_member(cloud, keys["till"], passes[0])
        if member is not None:
            print(f"customer {member} joined the VIP programme (consent given)")
        run_pass(2, source, cloud, keys, passes[1])
        cards = [card for events in passes for card in events.of(CardReceived)]
        confirmed = confirm_possible_members(cloud, keys["till"], member, cards)
        reports = head_office_view(cloud)
        if args.serve:
            print(
                f"\ndashboard: {cloud}/dashboard (sign in as {HEAD_OFFICE_EMAIL} / "
                f"{DEMO_PASSWORD}); Ctrl-C to stop"
            )
            try:
                process.wait()
            except KeyboardInterrupt:
                pass
    finally:
        process.terminate()
        process.wait(timeout=30)
    figures = {**summary(passes, confirmed, database), **reports}
    args.summary.write_text(json.dumps(figures, indent=2) + "\n")
    width = max(len(k) for k in figures)
    print("\nStoreSight demo summary")
    for key, value in figures.items():
        print(f"  {key:{width}}  {value}")
    print(f"wrote {args.summary}; logs in {DEMO_DIR / 'logs'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
