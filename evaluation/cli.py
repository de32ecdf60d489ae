"""`storesight-eval`: measure the face library on labelled public data."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from evaluation.data_paths import shared_data_dir
from evaluation.tables import format_table
from facelib.config import DetectorSettings, FaceLibSettings
from facelib.errors import FaceLibError
from facelib.logs import configure_logging
from models.errors import ModelError


def main(argv: list[str] | None = None) -> int:
    data = shared_data_dir()
    parser = argparse.ArgumentParser(prog="storesight-eval", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ag = sub.add_parser("agegender", help="age MAE and gender accuracy on labelled crops")
    ag.add_argument("--labels", type=Path, default=data / "agegender/utkface/labels.csv")
    ag.add_argument("--images", type=Path, default=data / "agegender/utkface")
    ag.add_argument("--limit", type=int, default=None, help="evaluate a random subset this size")
    ag.add_argument("--json", type=Path, default=None, help="also write the figures here")

    det = sub.add_parser("detection", help="detector recall against dlib's face-box XML files")
    det.add_argument(
        "--xml",
        type=Path,
        nargs="+",
        default=[data / "group/dlib_faces_training.xml", data / "group/dlib_faces_testing.xml"],
    )
    det.add_argument("--detector", choices=["mediapipe", "yunet"], default="mediapipe")
    det.add_argument("--range", choices=["short", "full"], default="full")
    det.add_argument("--tile-size", type=int, default=256, help="0 turns tiling off")
    det.add_argument("--min-width", type=float, default=40.0)
    det.add_argument("--json", type=Path, default=None)

    cal = sub.add_parser("calibrate-template", help="measure the alignment template (needs dlib)")
    cal.add_argument("--images", type=Path, default=data / "faces/lfw")
    cal.add_argument("--count", type=int, default=600)

    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command == "agegender":
            return _agegender(args)
        if args.command == "detection":
            return _detection(args)
        return _calibrate(args)
    except (FaceLibError, ModelError, ValueError, FileNotFoundError) as error:
        print(f"storesight-eval: error: {error}", file=sys.stderr)
        return 1


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")


def _write_json(path: Path | None, figures: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {path}")


def _agegender(args: argparse.Namespace) -> int:
    from evaluation.agegender import evaluate, read_labels
    from facelib.analyzer import FaceAnalyzer

    _require(args.labels, "labels file")
    _require(args.images, "image folder")
    labels = read_labels(args.labels)
    if args.limit:
        labels = random.Random(0).sample(labels, min(args.limit, len(labels)))
    report = evaluate(FaceAnalyzer(), labels, args.images)
    figures = report.as_dict()
    print(format_table(["metric", "value"], list(figures.items())))
    _write_json(args.json, figures)
    return 0


def _detection(args: argparse.Namespace) -> int:
    from evaluation.detection import evaluate, read_dlib_boxes
    from facelib.detectors import create_detector
    from models.store import ModelStore

    for xml in args.xml:
        _require(xml, "face-box XML file")
    settings = DetectorSettings(
        type=args.detector,
        range=args.range,
        tile=args.tile_size > 0,
        tile_size=max(args.tile_size, 96),
    )
    detector = create_detector(settings, ModelStore())
    report = evaluate(detector, read_dlib_boxes(args.xml), min_width=args.min_width)
    figures = {
        "detector": detector.name,
        "images": report.images,
        "labelled_faces": report.labelled,
        "matched": report.matched,
        "recall": report.recall,
        "detections": report.detections,
        "false_detections": report.false_detections,
        "false_per_image": report.false_per_image,
    }
    print(format_table(["metric", "value"], list(figures.items())))
    _write_json(args.json, figures)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from evaluation.template_calibration import calibrate
    from facelib.detectors import create_detector
    from facelib.types import Landmark
    from models.store import ModelStore

    _require(args.images, "image folder")
    store = ModelStore()
    images = sorted(args.images.glob("*/*.jpg"))
    images = random.Random(0).sample(images, min(args.count, len(images)))
    detector = create_detector(FaceLibSettings().detector, store)
    result = calibrate(detector, images, store.path("shape_predictor_5"))
    rows = [
        [Landmark(i).name, float(x), float(y), float(s)]
        for i, ((x, y), s) in enumerate(zip(result.median, result.spread, strict=True))
    ]
    print(f"{result.faces} faces; landmark positions in dlib's unit template frame")
    print(format_table(["landmark", "x", "y", "rms spread"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
