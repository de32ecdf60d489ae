"""`storesight-kiosk`: the till and entrance app."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facelib.config import DetectorSettings, FaceLibSettings
from facelib.errors import FaceLibError
from facelib.types import FaceAnalysis, RGBImage
from kiosk_app.build_info import build_info
from kiosk_app.events import JsonLinesWriter
from kiosk_app.kiosk_config import KioskConfig
from kiosk_app.sources import SourceError
from models.errors import ModelError
from storesight_common.logs import configure_logging

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
#: `run`'s exit status when another kiosk already runs here (its systemd unit does not restart)
ALREADY_RUNNING = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storesight-kiosk", description=__doc__)
    parser.add_argument("--version", action="version", version=build_info().describe())
    sub = parser.add_subparsers(dest="command", required=True)
    analyze = sub.add_parser(
        "analyze", help="detect, align and estimate age/gender in photos or a clip"
    )
    analyze.add_argument(
        "sources", type=Path, nargs="+", help="image files, folders or video files"
    )
    analyze.add_argument("--range", choices=["short", "full"], default="full")
    analyze.add_argument("--detector", choices=["mediapipe", "yunet"], default="mediapipe")
    analyze.add_argument(
        "--every", type=int, default=10, help="for videos: analyse every Nth frame"
    )
    analyze.add_argument("--json", action="store_true", help="print JSON lines instead of a table")

    run = sub.add_parser(
        "run",
        help="the till (or entrance) app; with --headless, the pipeline without a window",
    )
    run.add_argument(
        "--source",
        default=None,
        help="camera index, rtsp:// or http(s):// URL, video, folder (the window: overrides "
        "the configured source; --headless: required)",
    )
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the machine's configuration file (defaults < this file < STORESIGHT_KIOSK_* "
        "variables < these flags)",
    )
    run.add_argument(
        "--headless", action="store_true", help="no window: events as JSON lines (and --cloud-url)"
    )
    run.add_argument("--events", type=Path, default=None, help="append JSON-line events here")
    run.add_argument("--mode", choices=["till", "entrance"], default=None)
    run.add_argument("--range", choices=["short", "full"], default=None, help="detector range")
    run.add_argument("--tile", action="store_true", help="also search tiles (small faces)")
    run.add_argument("--tile-size", type=int, default=None, help="tile side in pixels")
    run.add_argument("--resize", default=None, help="WIDTHxHEIGHT to scale frames to")
    run.add_argument("--max-frames", type=int, default=None)
    run.add_argument(
        "--cloud-url", default=None, help="the cloud API (default http://127.0.0.1:8700)"
    )
    run.add_argument(
        "--api-key", default=None, help="this device's key (storesight-cloud admin); connects"
    )
    run.add_argument("--device", default=None, help="device name used in idempotency keys")
    run.add_argument("--data-dir", type=Path, default=None, help="outbox and dead letters")
    run.add_argument("--receipts-port", type=int, default=None, help="local POS endpoint port")
    run.add_argument(
        "--kiosk", action="store_true", help="full screen without window decorations (tills)"
    )
    run.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        help="save a picture of the window once it shows the camera (or an error), then quit "
        "(support: what does the till show?)",
    )
    selftest = sub.add_parser(
        "selftest",
        help="check models, face pipeline, camera, cloud and outbox; exit 0 only if all pass",
    )
    selftest.add_argument("--config", type=Path, default=None, help="configuration file")
    selftest.add_argument("--source", default=None, help="the camera or clip to try instead")
    selftest.add_argument(
        "--installation",
        action="store_true",
        help="only what the package installed (models, face pipeline): the post-install check",
    )
    for name, text in (
        ("settings", "edit this machine's configuration (camera, zone, cloud, thresholds)"),
        ("staff", "the staff window: VIP arrival pop-ups from the store's alert stream"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--config", type=Path, default=None, help="configuration file")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command == "selftest":
            return _selftest(args)
        if args.command == "run":
            return _guarded_run(args)
        if args.command == "settings":
            from kiosk_app.gui.app import run_settings

            return run_settings(args.config)
        if args.command == "staff":
            from kiosk_app.gui.app import run_staff_window

            return run_staff_window(args.config)
        return _analyze(args)
    except (FaceLibError, ModelError, SourceError, ValueError) as error:
        print(f"storesight-kiosk: error: {error}", file=sys.stderr)
        return 1


def _selftest(args: argparse.Namespace) -> int:
    from kiosk_app.config_loader import load_kiosk_config
    from kiosk_app.selftest import report, run_selftest

    config = load_kiosk_config(args.config)
    checks = run_selftest(config, source=args.source, installation_only=args.installation)
    return report(checks, sys.stdout)


def _guarded_run(args: argparse.Namespace) -> int:
    """`run`, as the only kiosk on this machine, its log also in a rotating file under the
    data folder, a crash logged there with its traceback."""
    from kiosk_app.kiosk_config import default_data_dir
    from kiosk_app.single_instance import AlreadyRunning, SingleInstance
    from storesight_common.logs import log_crashes, log_to_file

    data_dir = default_data_dir()
    log_to_file(data_dir / "logs" / "kiosk.log")
    log_crashes()
    try:
        with SingleInstance(data_dir):
            return _run(args) if args.headless else _window(args)
    except AlreadyRunning as error:
        print(f"storesight-kiosk: {error}", file=sys.stderr)
        return ALREADY_RUNNING


def _run(args: argparse.Namespace) -> int:
    from kiosk_app.config_loader import load_kiosk_config
    from kiosk_app.events import JsonLinesWriter
    from kiosk_app.runner import run

    if not args.source:
        raise ValueError("--headless needs --source (a camera index, URL, video or folder)")
    config = load_kiosk_config(args.config, _overrides(args))
    resize = _size(args.resize) if args.resize else None
    sink = JsonLinesWriter(args.events if args.events else sys.stdout)
    if args.cloud_url or args.api_key:
        try:
            return _serve(config, sink, resize)
        finally:
            sink.close()
    try:
        report = run(
            config.source,
            config.pipeline_settings(),
            sink,
            resize=resize,
            max_frames=args.max_frames,
        )
    finally:
        sink.close()
    print(
        f"{report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps), "
        f"{report.capture.dropped} dropped, {report.capture.reconnects} reconnects",
        file=sys.stderr,
    )
    return 0


def _window(args: argparse.Namespace) -> int:
    """The desktop app, configured from the machine's file (first start opens settings)."""
    from kiosk_app.gui.app import run_cashier

    return run_cashier(
        args.config, _overrides(args), full_screen=args.kiosk, screenshot=args.screenshot
    )


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The kiosk settings given on the command line, nested like `KioskConfig` (None: not
    given)."""
    return {
        "source": args.source,
        "mode": args.mode,
        "cloud_url": args.cloud_url,
        "api_key": args.api_key,
        "device": args.device,
        "data_dir": args.data_dir,
        "receipts_port": args.receipts_port,
        "detector": {
            "range": args.range,
            "tile": True if args.tile else None,
            "tile_size": args.tile_size,
        },
    }


def _serve(config: KioskConfig, sink: JsonLinesWriter, resize: tuple[int, int] | None) -> int:
    """The connected kiosk: receipts in and checkouts out (till), or sightings (entrance)."""
    import signal
    import threading

    from kiosk_app.service import KioskService, RunOptions

    if not config.api_key:
        raise ValueError("give --api-key (or STORESIGHT_KIOSK_API_KEY) to connect to the cloud")
    service = KioskService(config, sink, options=RunOptions(resize=resize))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service.start()
    if not service.entrance:
        print(f"POS receipts: POST {service.receipts_url}", file=sys.stderr)
    try:
        while not stop.is_set() and not service.source_ended.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    if service.source_ended.is_set():
        service.drain(timeout_s=30)
    service.stop()
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--resize takes WIDTHxHEIGHT, e.g. 640x480, not {text!r}") from None
    return width, height


def _analyze(args: argparse.Namespace) -> int:
    from facelib.analyzer import FaceAnalyzer
    from kiosk_app.kiosk_models import AGE_GENDER_MODELS
    from models.store import ModelStore

    store = ModelStore()
    # the kiosk package does not carry them (the cloud estimates age and gender)
    age_gender = all(store.location(name).is_file() for name in AGE_GENDER_MODELS)
    if not age_gender:
        print(
            "note: age and gender are not estimated: their models are not installed here",
            file=sys.stderr,
        )
    settings = FaceLibSettings(
        detector=DetectorSettings(type=args.detector, range=args.range, tile=True),
        estimate_age_gender=age_gender,
    )
    analyzer = FaceAnalyzer(settings)
    if not args.json:
        print(f"{'source':44} {'frame':>5} {'box (x1,y1,x2,y2)':24} {'score':>5} {'age':>9} gender")
    for name, frame_index, image in _frames(args.sources, args.every):
        for face in analyzer.analyze(image):
            _print_face(name, frame_index, face, as_json=args.json)
    analyzer.close()
    return 0


def _frames(sources: list[Path], every: int) -> Iterator[tuple[str, int, RGBImage]]:
    from facelib.images import read_rgb

    for source in sources:
        if not source.exists():
            raise FaceLibError(f"source not found: {source}")
        if source.is_dir():
            for path in sorted(source.iterdir()):
                if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}:
                    yield path.name, 0, read_rgb(path)
        elif source.suffix.lower() in VIDEO_SUFFIXES:
            capture = cv2.VideoCapture(str(source))
            if not capture.isOpened():
                raise FaceLibError(f"cannot open video: {source}")
            index = 0
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                if index % max(1, every) == 0:
                    yield source.name, index, np.ascontiguousarray(bgr[:, :, ::-1])
                index += 1
            capture.release()
        else:
            yield source.name, 0, read_rgb(source)


def _print_face(name: str, frame: int, face: FaceAnalysis, *, as_json: bool) -> None:
    box = face.detection.box
    age = face.age
    gender = face.gender
    if as_json:
        record = {
            "source": name,
            "frame": frame,
            "box": [round(v, 1) for v in (box.x1, box.y1, box.x2, box.y2)],
            "score": round(face.detection.score, 3),
            "age": None
            if age is None
            else {"years": round(age.years, 1), "confidence": round(age.confidence, 3)},
            "gender": None
            if gender is None
            else {"label": gender.label, "confidence": round(gender.confidence, 3)},
        }
        print(json.dumps(record))
        return
    box_text = f"{box.x1:.0f},{box.y1:.0f},{box.x2:.0f},{box.y2:.0f}"
    age_text = "-" if age is None else f"{age.years:4.1f}±{age.std_years:3.1f}"
    gender_text = "-" if gender is None else f"{gender.label} ({gender.confidence:.2f})"
    print(
        f"{name[:44]:44} {frame:5d} {box_text:24} {face.detection.score:5.2f} "
        f"{age_text:>9} {gender_text}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
