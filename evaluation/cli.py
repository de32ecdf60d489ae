"""`storesight-eval`: measure the face library on labelled public data."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from evaluation.data_paths import shared_data_dir
from evaluation.face_encoding import Pipeline
from evaluation.tables import format_table
from facelib.config import DetectorSettings, FaceLibSettings
from facelib.errors import FaceLibError
from models.errors import ModelError
from storesight_common.logs import configure_logging


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

    ver = sub.add_parser("verify", help="LFW-style pair verification: accuracy, TAR@FAR, threshold")
    ver.add_argument("--pairs", type=Path, default=data / "faces/pairs-dev.txt")
    ver.add_argument("--images", type=Path, default=data / "faces/lfw")
    _pipeline_options(ver)
    ver.add_argument("--json", type=Path, default=None)

    ident = sub.add_parser("identify", help="open-set identification on person folders")
    ident.add_argument("--gallery", type=Path, default=data / "faces/lfw")
    ident.add_argument("--min-photos", type=int, default=4, help="people with fewer are left out")
    ident.add_argument("--enrol", type=int, default=2, help="photos enrolled per known person")
    ident.add_argument("--strangers", type=float, default=0.2, help="share of people not enrolled")
    ident.add_argument("--seed", type=int, default=0)
    ident.add_argument(
        "--far-target",
        type=float,
        default=0.01,
        help="stranger false-accept rate the recommended threshold keeps to",
    )
    ident.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="default: the configured open-set identification threshold",
    )
    _pipeline_options(ident)
    ident.add_argument("--json", type=Path, default=None)

    op = sub.add_parser(
        "openset",
        help="1:N open-set identification through the product's gallery and decision policy",
    )
    op.add_argument("--enrolled", type=Path, default=None, help="default: the shared data")
    op.add_argument("--strangers", type=Path, default=None)
    op.add_argument("--distractors", type=Path, action="append", default=None)
    op.add_argument("--sizes", default="0,1000,2000,4000,6000", help="distractors enrolled")
    op.add_argument("--workers", type=int, default=2, help="processes analysing photos")
    op.add_argument("--cache", type=Path, default=Path("var/eval-cache/faces.sqlite3"))
    op.add_argument(
        "--half",
        choices=["all", "fit", "report"],
        default="all",
        help="probe with one half of the identities only (a fixed hash split; the gallery "
        "is always whole): fit the policy on one half's searches, report on the other's",
    )
    op.add_argument("--policy", type=Path, default=None, help="JSON of DecisionPolicy fields")
    op.add_argument(
        "--fit", type=Path, default=None, help="fit the threshold curve and write it here"
    )
    op.add_argument(
        "--compare",
        action="store_true",
        help="also measure the rule before the open-set policy and each idea of it, side by side",
    )
    op.add_argument("--gender-csv", type=Path, default=data / "faces/lfw_gender.csv")
    op.add_argument("--json", type=Path, default=None)

    args = parser.parse_args(argv)
    configure_logging()
    try:
        if args.command == "agegender":
            return _agegender(args)
        if args.command == "detection":
            return _detection(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "identify":
            return _identify(args)
        if args.command == "openset":
            from evaluation.openset_cli import openset

            return openset(args, data)
        return _calibrate(args)
    except (FaceLibError, ModelError, ValueError, FileNotFoundError) as error:
        print(f"storesight-eval: error: {error}", file=sys.stderr)
        return 1


def _pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline",
        choices=["storesight", "dlib"],
        default="storesight",
        help="storesight: the product's detector, alignment and ONNX embedder; dlib: dlib's "
        "HOG detector, 5-point model and network, one pass (the reference; needs dlib-bin)",
    )
    parser.add_argument("--range", choices=["short", "full"], default=None)
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each face's descriptor with its mirror image's (default: as configured)",
    )


def _pipeline(args: argparse.Namespace) -> Pipeline:
    from evaluation.face_encoding import create_pipeline

    configured = FaceLibSettings()
    return create_pipeline(
        args.pipeline,
        detector_range=args.range or configured.detector.range,
        flip=configured.recognition.flip_average if args.flip is None else args.flip,
    )


def _verify(args: argparse.Namespace) -> int:
    from evaluation.face_encoding import encode_images
    from evaluation.verification import evaluate, read_pairs

    _require(args.pairs, "pairs file")
    _require(args.images, "image folder")
    pairs = read_pairs(args.pairs, args.images)
    pipeline = _pipeline(args)
    try:
        codes = encode_images(pipeline, [p for pair in pairs for p in (pair.first, pair.second)])
    finally:
        pipeline.close()
    figures: dict[str, Any] = {"pipeline": pipeline.name, **evaluate(pairs, codes).figures()}
    shown = {
        k: v for k, v in figures.items() if not isinstance(v, list) and k != "not_found_policy"
    }
    print(format_table(["metric", "value"], list(shown.items())))
    print(f"faces not found: {figures['not_found']} ({figures['not_found_policy']})")
    _write_json(args.json, figures)
    return 0


def _identify(args: argparse.Namespace) -> int:
    from evaluation.face_encoding import encode_images
    from evaluation.identification import evaluate, read_gallery, split_gallery

    people = read_gallery(args.gallery, min_photos=args.min_photos)
    split = split_gallery(people, enrol=args.enrol, stranger_share=args.strangers, seed=args.seed)
    threshold = (
        args.threshold
        if args.threshold is not None
        else FaceLibSettings().recognition.identify_threshold
    )
    pipeline = _pipeline(args)
    photos = [p for ps in split.enrolled.values() for p in ps] + [p for _, p in split.probes]
    try:
        codes = encode_images(pipeline, photos)
    finally:
        pipeline.close()
    figures: dict[str, Any] = {
        "pipeline": pipeline.name,
        **evaluate(split, codes, threshold, false_accept_target=args.far_target).figures(),
    }
    shown = {
        k: v for k, v in figures.items() if not isinstance(v, list) and k != "not_found_policy"
    }
    print(format_table(["metric", "value"], list(shown.items())))
    points = [
        [p["threshold"], p["false_accept"], p["false_reject"]]
        for p in figures["operating_points"]
        if round(p["threshold"] * 100) % 5 == 0
    ]
    print(format_table(["threshold", "false_accept", "false_reject"], points))
    _write_json(args.json, figures)
    return 0


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
