"""Receipt-to-VIP-card latency, kiosk and cloud on loopback, with 100k customers enrolled.

    python bench/checkout_latency.py [--customers 100000] [--receipts 40] [--json FILE]

1. A cloud database (SQLite, in a temp dir) with N synthetic customers, one descriptor each
   (random unit-norm vectors: strangers to every face in the clip), then `storesight-cloud
   serve` as its own process, which loads them into its recognition engine.
2. The kiosk service (real capture, pipeline, binder, outbox, uplink) on the shared clip
   re-encoded at 640x480, played forwards and backwards at its own 25 fps as a camera would
   deliver it; a POS posts a receipt to the
   till's local endpoint every `--interval` seconds.
3. Latency = from the receipt's arrival at the local endpoint to the VIP card back at the
   kiosk. The reference, measured in the same run, is the cloud alone: the same checkout
   bodies posted straight to the API (new idempotency keys).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.kiosk_pipeline import SIZE_640, reencode  # noqa: E402
from demo.run import CATALOGUE, free_port, receipt_body, setup_cloud, start_cloud  # noqa: E402
from evaluation.data_paths import shared_data_dir  # noqa: E402
from evaluation.tables import format_table  # noqa: E402
from kiosk_app.events import CardReceived, CheckoutQueued, EventCollector  # noqa: E402
from kiosk_app.kiosk_config import KioskConfig  # noqa: E402
from kiosk_app.service import KioskService, RunOptions  # noqa: E402


def enrol_synthetic(url: str, count: int, seed: int = 0) -> None:
    from sqlalchemy import insert, select

    from cloud_api.db.models import Customer, FaceSample, Store, utcnow
    from cloud_api.db.session import make_engine

    engine = make_engine(url)
    rng = np.random.default_rng(seed)
    now = utcnow()
    with engine.begin() as connection:
        store_id, region_id = connection.execute(select(Store.id, Store.region_id)).one()
        first = connection.execute(select(Customer.id).order_by(Customer.id.desc())).scalar() or 0
        batch = 10_000
        for start in tqdm(range(0, count, batch), desc="enrolling", unit="10k customers"):
            n = min(batch, count - start)
            connection.execute(
                insert(Customer),
                [
                    {
                        "region_id": region_id,
                        "first_store_id": store_id,
                        "visit_count": 1,
                        "lifetime_spend": Decimal("10.00"),
                        "created_at": now,
                        "last_seen_at": now,
                    }
                    for _ in range(n)
                ],
            )
            vectors = rng.normal(size=(n, 128)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            connection.execute(
                insert(FaceSample),
                [
                    {
                        "customer_id": first + start + i + 1,
                        "region_id": region_id,
                        "store_id": store_id,
                        "gender": "unknown",
                        "age_band": -1,
                        "descriptor": vectors[i].astype("<f4").tobytes(),
                        "quality": 0.9,
                        "created_at": now,
                    }
                    for i in range(n)
                ],
            )


def receipt(number: str) -> dict[str, Any]:
    return receipt_body(number, [(CATALOGUE[hash(number) % len(CATALOGUE)], 1)])


def pct(values: list[float], q: int) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/checkout_latency.py", description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--receipts", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    clip = shared_data_dir() / "video" / "facenet-pytorch_video.mp4"
    if not clip.is_file():
        raise SystemExit(f"clip not found: {clip} (set STORESIGHT_DATA_DIR)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        database = f"sqlite:///{root / 'cloud.db'}"
        keys = setup_cloud(database)
        enrol_synthetic(database, args.customers)
        (root / "logs").mkdir()
        port = free_port()
        cloud = f"http://127.0.0.1:{port}"
        os.environ["STORESIGHT_CLOUD_SYNC_INTERVAL_S"] = "0.25"
        started = time.perf_counter()
        import demo.run as demo_run

        demo_run.DEMO_DIR = root
        process = start_cloud(database, port, root / "logs")
        load_s = time.perf_counter() - started
        small = root / "clip.mp4"
        reencode(clip, small, SIZE_640)
        events = EventCollector()
        config = KioskConfig(
            source=str(small),
            cloud_url=cloud,
            api_key=keys["till"],
            device="till-1",
            receipts_port=0,
            data_dir=root / "kiosk",
        )
        # frames at the clip's 25 fps, as a till camera delivers them
        service = KioskService(config, events, options=RunOptions(realtime=True))
        sent: list[dict[str, Any]] = []
        original_put = service.outbox.put

        def recording_put(request: Any) -> int:
            sent.append(request.model_dump(mode="json"))
            return original_put(request)

        service.outbox.put = recording_put  # type: ignore[method-assign]
        try:
            service.start()
            for i in tqdm(range(args.receipts), desc="receipts", unit="receipt"):
                httpx.post(service.receipts_url, json=receipt(f"B-{i:05d}"), timeout=10)
                time.sleep(args.interval)
            service.drain(timeout_s=60)
            service.stop()
            cards = events.of(CardReceived)
            queued = events.of(CheckoutQueued)
            kiosk_ms = [c.latency_ms for c in cards if c.latency_ms is not None]
            with_face = [q for q in queued if q.embeddings]
            # the reference: the same bodies, straight to the cloud
            cloud_ms = []
            for body in sent:
                body["idempotency_key"] = uuid.uuid4().hex
                t0 = time.perf_counter()
                httpx.post(
                    f"{cloud}/v1/checkouts",
                    json=body,
                    headers={"X-API-Key": keys["till"]},
                    timeout=30,
                ).raise_for_status()
                cloud_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            process.terminate()
            process.wait(timeout=30)
    rows = [
        [
            "receipt -> card (kiosk + cloud)",
            len(kiosk_ms),
            pct(kiosk_ms, 50),
            pct(kiosk_ms, 95),
            "1.00x",
        ],
        [
            "cloud alone (same bodies)",
            len(cloud_ms),
            pct(cloud_ms, 50),
            pct(cloud_ms, 95),
            f"{pct(cloud_ms, 95) / pct(kiosk_ms, 95):.2f}x",
        ],
    ]
    print(format_table(["path", "n", "p50 ms", "p95 ms", "p95 vs kiosk"], rows))
    figures = {
        "customers": args.customers,
        "cloud_load_s": round(load_s, 1),
        "checkouts": len(queued),
        "checkouts_with_face": len(with_face),
        "latency_p50_ms": pct(kiosk_ms, 50),
        "latency_p95_ms": pct(kiosk_ms, 95),
        "cloud_p50_ms": pct(cloud_ms, 50),
        "cloud_p95_ms": pct(cloud_ms, 95),
        "bytes_per_checkout": statistics.mean(q.bytes for q in queued) if queued else 0,
        "bytes_per_checkout_with_face": (
            statistics.mean(q.bytes for q in with_face) if with_face else 0
        ),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
