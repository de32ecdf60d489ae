"""Does the cashier window stay responsive while the pipeline runs?

    python bench/gui_responsiveness.py [--seconds 30] [--idle-seconds 5] [--json FILE]

The cashier window pulls the newest frame on a 40 ms timer; every gap between two ticks is
recorded (`TickMonitor`). Two conditions, in one run, in one process:

- reference: the same window with its service not started (an idle event loop);
- running: the whole till on the shared clip at 1920x1080, looped at its own 25 fps, with
  full-range detection on tiles (the heaviest configuration), the real cloud API as its own
  process, and a cashier scanning a receipt every few seconds while a customer is at the
  counter (the POS posts it to the till's endpoint), so VIP cards keep arriving.

Printed: ticks, median / p99 / longest gap, and the longest gap as a ratio to the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "xcb")

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402

from demo import run as demo  # noqa: E402
from demo.cashier import ScanningCashier  # noqa: E402
from evaluation.data_paths import shared_data_dir  # noqa: E402
from evaluation.tables import format_table  # noqa: E402
from kiosk_app.gui.app import application  # noqa: E402
from kiosk_app.gui.cashier_window import FRAME_INTERVAL_MS, CashierWindow  # noqa: E402
from kiosk_app.gui.service_host import ServiceHost  # noqa: E402
from kiosk_app.kiosk_config import KioskConfig  # noqa: E402


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def gap_stats(gaps: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(gaps)
    return {
        "seconds": seconds,
        "ticks": len(gaps) + 1,
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": ordered[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    clip = shared_data_dir() / "video" / "facenet-pytorch_video.mp4"
    if not clip.is_file():
        print(f"skipped: the shared clip is missing ({clip})")
        return 0
    app = application()
    with tempfile.TemporaryDirectory(prefix="gui-bench-") as tmp:
        root = Path(tmp)
        demo.DEMO_DIR = root
        (root / "logs").mkdir()
        database = f"sqlite:///{root / 'cloud.db'}"
        keys = demo.setup_cloud(database)
        port = demo.free_port()
        cloud = demo.start_cloud(database, port, root / "logs")
        try:
            config = KioskConfig(
                source=str(clip),
                cloud_url=f"http://127.0.0.1:{port}",
                api_key=keys["till"],
                device="till-bench",
                receipts_port=0,
                data_dir=root / "till",
                detector=demo.kiosk_detector(str(clip)),
            )
            host = ServiceHost(config, loop=True)
            window = CashierWindow(host)
            window.show()
            wait(500)
            window.ticks.reset()
            wait(int(args.idle_seconds * 1000))
            idle = gap_stats(window.ticks.gaps_ms, args.idle_seconds)

            started = threading.Event()
            host.started.connect(started.set)
            host.start()
            while not started.is_set():
                wait(100)
            cashier = ScanningCashier(window, prefix="B")
            pos = QTimer()
            pos.setInterval(500)
            pos.timeout.connect(cashier.step)
            pos.start()
            cards: list[Any] = []
            host.card.connect(lambda response, track: cards.append(response))
            frames_before = host.service.frames if host.service else 0
            window.ticks.reset()
            wait(int(args.seconds * 1000))
            running = gap_stats(window.ticks.gaps_ms, args.seconds)
            frames = (host.service.frames if host.service else 0) - frames_before
            pos.stop()
            window.close()
        finally:
            cloud.terminate()
            cloud.wait(timeout=30)
    running.update(
        {
            "pipeline_fps": frames / args.seconds,
            "frames_shown": window.frames_shown,
            "receipts_scanned": cashier.scanned,
            "cards_shown": len(cards),
        }
    )
    rows = [
        [
            name,
            f"{s['seconds']:.0f}",
            int(s["ticks"]),
            s["p50_ms"],
            s["p99_ms"],
            s["max_ms"],
            f"{s['max_ms'] / idle['max_ms']:.2f}x",
        ]
        for name, s in (("idle event loop (reference)", idle), ("pipeline running", running))
    ]
    print(f"\ncashier window, {FRAME_INTERVAL_MS} ms frame timer")
    print(
        format_table(
            ["condition", "s", "ticks", "p50 gap ms", "p99 gap ms", "max gap ms", "max vs ref"],
            rows,
        )
    )
    print(
        f"\npipeline {running['pipeline_fps']:.1f} fps on the 1920x1080 clip (tiles), "
        f"{running['receipts_scanned']} receipts scanned, {running['cards_shown']} VIP cards"
    )
    if args.json:
        args.json.write_text(json.dumps({"idle": idle, "running": running}, indent=2))
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
