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

With --in-store, a second store runs in in-store mode beside the first: head office knows it
as in-store (`stores.mode = 'store'`) and holds a `store_server` key for it; a store server
(`storesight-cloud serve` with STORESIGHT_CLOUD_MODE=store, its own SQLite database and index
under var/demo/store, log var/demo/logs/store-server.log) serves that store's till. A third
pass over the clip checks out there; the demo waits until the store server has sent head
office that day's aggregates, and the summary shows head office's reports per store, the
in-store one included, and that head office holds none of its receipts.
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
from collections.abc import Callable
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
    SightingReported,
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
IN_STORE_CODE = "DEMO-2"
#: how often the demo's store server sends head office what changed (seconds)
UPSTREAM_INTERVAL_S = 2.0
HEAD_OFFICE_EMAIL = "head-office@demo.storesight"
STAFF_EMAIL = "staff@demo.storesight"  # the staff app (/staff/), store DEMO-1
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
        admin.create_user(
            session, STAFF_EMAIL, "Demo staff", "store_staff", DEMO_PASSWORD, "DEMO-1"
        )
    return {"till": till, "entrance": entrance}


def setup_in_store(head_office: str, store_database: str) -> dict[str, str]:
    """The in-store store at head office (mode "store", a store_server key) and in the store
    server's own database (the same region and store code, its till). Returns the keys:
    "upstream" (head office's, for the store server) and "till" (the store server's)."""
    from cloud_api import admin
    from cloud_api.db.migrate import upgrade
    from cloud_api.db.session import make_engine, session_factory, transaction

    sessions = session_factory(make_engine(head_office))
    with transaction(sessions) as session:
        admin.create_store(session, "Demo region", IN_STORE_CODE, "Demo in-store", mode="store")
        _, upstream = admin.create_device(session, IN_STORE_CODE, "store_server", "store PC")
    upgrade(store_database)
    sessions = session_factory(make_engine(store_database))
    with transaction(sessions) as session:
        admin.create_region(session, "Demo region")
        # mode "cloud" in its own database: the store server serves this store's tills (a
        # store marked in-store refuses them: that is head office's view of it)
        admin.create_store(session, "Demo region", IN_STORE_CODE, "Demo in-store")
        _, till = admin.create_device(session, IN_STORE_CODE, "till", "till 1")
    return {"upstream": upstream, "till": till}


def start_cloud(
    url: str,
    port: int,
    logs: Path,
    *,
    index_dir: Path | None = None,
    log_name: str = "cloud.log",
    env_extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`storesight-cloud serve` on `url` and `port`, once it answers /healthz; `env_extra`
    makes it a store server (STORESIGHT_CLOUD_MODE=store, ...)."""
    env = {
        **os.environ,
        "STORESIGHT_CLOUD_DATABASE_URL": url,
        "STORESIGHT_CLOUD_INDEX_DIR": str(index_dir or DEMO_DIR / "index"),
        "STORESIGHT_LOG_JSON": "1",
        **(env_extra or {}),
    }
    log = (logs / log_name).open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "cloud_api.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the cloud API exited; see {logs / log_name}")
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
    pass_no: int,
    source: str,
    cloud: str,
    keys: dict[str, str],
    events: EventCollector,
    data_dir: Path | None = None,
) -> None:
    """One pass over `source`: its kiosk events go to `events` and to the pass's own log.
    `data_dir`: the kiosk's state (default var/demo/kiosk)."""
    pos = SimulatedPos(pass_no, seed=pass_no)
    config = KioskConfig(
        source=source,
        cloud_url=cloud,
        api_key=keys["till"],
        device="till-1",
        receipts_port=0,
        data_dir=data_dir or DEMO_DIR / "kiosk",
        detector=kiosk_detector(source),
    )

    def started(service: KioskService) -> None:
        pos.url = service.receipts_url
        print(f"pass {pass_no}: kiosk running on {source}; receipts at {service.receipts_url}")

    run_clip(config, f"kiosk-events-pass{pass_no}.jsonl", events, started, on_frame=pos.on_frame)


def run_entrance_pass(source: str, cloud: str, keys: dict[str, str]) -> int:
    """The same clip through the store's entrance camera (the kiosk in entrance mode): each
    face is counted, and a member or frequent customer recognised goes to the staff app.
    Returns how many sightings the cloud took."""
    events = EventCollector()
    config = KioskConfig(
        source=source,
        cloud_url=cloud,
        api_key=keys["entrance"],
        device="door-1",
        mode="entrance",
        receipts_port=0,
        data_dir=DEMO_DIR / "entrance",
        detector=kiosk_detector(source),
    )
    run_clip(
        config,
        "kiosk-events-entrance.jsonl",
        events,
        lambda _: print(f"entrance: the door camera on {source}"),
    )
    sightings = events.of(SightingReported)
    vips = sum(1 for s in sightings if s.is_vip)
    print(f"entrance: {len(sightings)} sightings, {vips} of a VIP member")
    return len(sightings)


def run_clip(
    config: KioskConfig,
    log_name: str,
    events: EventCollector,
    started: Callable[[KioskService], None],
    *,
    on_frame: Callable[[FrameResult], None] | None = None,
) -> None:
    """The kiosk service over `config.source` until it ends (a minute for a live camera),
    its events to `events` and to `logs/<log_name>`; what is still queued is delivered."""
    writer = JsonLinesWriter(DEMO_DIR / "logs" / log_name)

    def sink(event: KioskEvent) -> None:
        events(event)
        writer(event)

    service = KioskService(config, sink, on_frame=on_frame)
    service.start()
    started(service)
    service.source_ended.wait(timeout=60 if config.source.isdigit() else None)
    time.sleep(0.5)  # receipts posted for the last frames
    if not service.drain(timeout_s=60):
        print("warning: some events were still undelivered (the outbox keeps them)")
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


def head_office_client(cloud: str) -> httpx.Client:
    """An HTTP client signed in as the demo's head-office user (close it when done)."""
    client = httpx.Client(base_url=cloud, timeout=30)
    client.post(
        "/v1/auth/login", json={"email": HEAD_OFFICE_EMAIL, "password": DEMO_PASSWORD}
    ).raise_for_status()
    return client


def head_office_view(cloud: str) -> dict[str, Any]:
    """What head office sees of the demo: a few report figures, read over HTTP as a user."""
    client = head_office_client(cloud)
    try:
        traffic = client.get("/v1/reports/traffic").json()["summary"]
        customers = client.get("/v1/reports/customers").json()["summary"]
        categories = client.get("/v1/reports/categories").json()
    finally:
        client.close()
    return {
        "report_transactions": traffic["transactions"],
        "report_buyers": traffic["buyers"],
        "report_new_customers": customers["new_customers"],
        "report_returning_customers": customers["returning_customers"],
        "report_top_category": categories["summary"]["top_category"],
    }


def staff_view(cloud: str) -> dict[str, Any]:
    """What the store's staff app lists of the demo's arrivals, read over HTTP as a staff user."""
    with httpx.Client(base_url=cloud, timeout=30) as client:
        client.post(
            "/v1/auth/login", json={"email": STAFF_EMAIL, "password": DEMO_PASSWORD}
        ).raise_for_status()
        arrivals = client.get("/v1/staff/arrivals").json()["arrivals"]
        client.post("/v1/auth/logout")
    return {
        "staff_app_arrivals": len(arrivals),
        "staff_app_member_arrivals": sum(1 for a in arrivals if a["member"] is not None),
    }


def _count_receipts(database: str, store_code: str | None = None) -> int:
    from sqlalchemy import func, select

    from cloud_api.db.models import Receipt, Store
    from cloud_api.db.session import make_engine

    engine = make_engine(database)
    try:
        query = select(func.count()).select_from(Receipt)
        if store_code is not None:
            query = query.join(Store, Store.id == Receipt.store_id).where(Store.code == store_code)
        with engine.connect() as connection:
            return int(connection.scalar(query) or 0)
    finally:
        engine.dispose()


def per_store_traffic(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """Head office's traffic report per store: visitors and transactions, by store code."""
    scope = client.get("/v1/scope")
    scope.raise_for_status()
    found: dict[str, dict[str, Any]] = {}
    for store in scope.json()["stores"]:
        answer = client.get("/v1/reports/traffic", params={"store": store["id"]})
        answer.raise_for_status()
        traffic = answer.json()["summary"]
        found[store["code"]] = {
            "visitors": traffic["visitors"],
            "transactions": traffic["transactions"],
        }
    return found


def wait_for_upstream(client: httpx.Client, expected: int, timeout_s: float = 90.0) -> None:
    """Poll head office's traffic report until the in-store store shows `expected`
    transactions: its store server has sent that day's aggregates."""
    deadline = time.monotonic() + timeout_s
    while True:
        shown = per_store_traffic(client).get(IN_STORE_CODE, {}).get("transactions", 0)
        if shown >= expected:
            return
        if time.monotonic() > deadline:
            print(
                f"warning: head office shows {shown} of the in-store store's {expected} "
                f"transactions after {timeout_s:.0f} s (see the store server's log)"
            )
            return
        time.sleep(0.5)


def in_store_figures(
    client: httpx.Client,
    database: str,
    store_database: str,
    events: EventCollector,
    waited_s: float,
) -> dict[str, Any]:
    """The summary's in-store part: what the store server holds, what head office shows."""
    from sqlalchemy import select

    from cloud_api.db.models import Store
    from cloud_api.db.session import make_engine

    stored = _count_receipts(store_database)
    stores = per_store_traffic(client)
    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            modes = {c: m for c, m in connection.execute(select(Store.code, Store.mode))}
    finally:
        engine.dispose()
    figures: dict[str, Any] = {
        "in_store_store": IN_STORE_CODE,
        "in_store_checkouts": len(events.of(CheckoutQueued)),
        "in_store_stored_in_store": stored,
        "in_store_receipts_at_head_office": _count_receipts(database, IN_STORE_CODE),
        "in_store_upstream_wait_s": round(waited_s, 1),
    }
    for code, traffic in sorted(stores.items()):
        key = code.lower().replace("-", "_")
        figures[f"head_office_{key}_mode"] = modes.get(code, "?")
        figures[f"head_office_{key}_visitors"] = traffic["visitors"]
        figures[f"head_office_{key}_transactions"] = traffic["transactions"]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__)
    parser.add_argument("--source", default=os.environ.get("SOURCE") or None)
    parser.add_argument("--summary", type=Path, default=Path("demo-summary.json"))
    parser.add_argument("--dir", type=Path, default=None, help="state and logs (var/demo)")
    parser.add_argument(
        "--serve", action="store_true", help="keep the cloud API up afterwards for the dashboard"
    )
    parser.add_argument(
        "--in-store",
        action="store_true",
        help=f"also run a store server for an in-store store ({IN_STORE_CODE}) beside head "
        "office, a third pass checking out there, and show head office's reports including it",
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
    store_events = EventCollector()
    store_server: subprocess.Popen[bytes] | None = None
    store_database = f"sqlite:///{DEMO_DIR / 'store' / 'store.db'}"
    extra: dict[str, Any] = {}
    try:
        run_pass(1, source, cloud, keys, passes[0])
        member = enrol_first_member(cloud, keys["till"], passes[0])
        if member is not None:
            print(f"customer {member} joined the VIP programme (consent given)")
        run_pass(2, source, cloud, keys, passes[1])
        cards = [card for events in passes for card in events.of(CardReceived)]
        confirmed = confirm_possible_members(cloud, keys["till"], member, cards)
        entrance_sightings = run_entrance_pass(source, cloud, keys)
        if args.in_store:
            (DEMO_DIR / "store").mkdir(parents=True, exist_ok=True)
            store_keys = setup_in_store(database, store_database)
            store_port = free_port()
            store_url = f"http://127.0.0.1:{store_port}"
            store_server = start_cloud(
                store_database,
                store_port,
                DEMO_DIR / "logs",
                index_dir=DEMO_DIR / "store" / "index",
                log_name="store-server.log",
                env_extra={
                    "STORESIGHT_CLOUD_MODE": "store",
                    "STORESIGHT_CLOUD_STORE_CODE": IN_STORE_CODE,
                    "STORESIGHT_CLOUD_UPSTREAM_URL": cloud,
                    "STORESIGHT_CLOUD_UPSTREAM_KEY": store_keys["upstream"],
                    "STORESIGHT_CLOUD_UPSTREAM_INTERVAL_S": str(UPSTREAM_INTERVAL_S),
                },
            )
            print(f"store server for {IN_STORE_CODE} (in-store) at {store_url}")
            run_pass(
                3, source, store_url, store_keys, store_events, data_dir=DEMO_DIR / "kiosk-store"
            )
            started = time.monotonic()
            client = head_office_client(cloud)
            try:
                wait_for_upstream(client, _count_receipts(store_database))
                extra = in_store_figures(
                    client, database, store_database, store_events, time.monotonic() - started
                )
            finally:
                client.close()
        reports = head_office_view(cloud) | staff_view(cloud)
        reports["entrance_sightings"] = entrance_sightings
        if args.serve:
            print(
                f"\ndashboard: {cloud}/dashboard (sign in as {HEAD_OFFICE_EMAIL} / "
                f"{DEMO_PASSWORD})\nstaff app: {cloud}/staff/ (sign in as {STAFF_EMAIL} / "
                f"{DEMO_PASSWORD}); Ctrl-C to stop"
            )
            try:
                process.wait()
            except KeyboardInterrupt:
                pass
    finally:
        for running in (store_server, process):
            if running is not None:
                running.terminate()
                running.wait(timeout=30)
    figures = {**summary(passes, confirmed, database), **reports, **extra}
    args.summary.write_text(json.dumps(figures, indent=2) + "\n")
    width = max(len(k) for k in figures)
    print("\nStoreSight demo summary")
    for key, value in figures.items():
        print(f"  {key:{width}}  {value}")
    if args.in_store:
        print(
            f"{IN_STORE_CODE} is in-store: its faces, customers and receipts stay in "
            f"{DEMO_DIR / 'store' / 'store.db'}; head office got only its aggregates and "
            "reports it beside the cloud store"
        )
    print(f"wrote {args.summary}; logs in {DEMO_DIR / 'logs'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
