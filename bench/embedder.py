"""Milliseconds per face: the ONNX embedder against dlib-bin, on the same real aligned chips.

The chips are cut from LFW photos by dlib's own pipeline (frontal detector, 5-point predictor,
get_face_chip at 150 px with padding 0.25). Both back ends embed them one at a time (batch 1)
and eight at a time (batch 8), after a warm-up; each figure is the median over the repetitions
of (wall time / faces). The speed-up is dlib_ms / onnx_ms, both measured in this run.

    python bench/embedder.py [--threads N] [--repeats R] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from evaluation.data_paths import shared_data_dir
from evaluation.tables import format_table
from facelib.config import RuntimeSettings
from facelib.embedder import FaceEmbedder
from models.store import ModelStore

BATCH_SIZES = (1, 8)
CHIP_SIZE = 150
CHIP_PADDING = 0.25

Chips = NDArray[np.uint8]
Measurement = dict[str, float]


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise SystemExit(
            "dlib is not installed; it is the reference: pip install -e '.[dev]' (dlib-bin)"
        ) from None
    return dlib


def lfw_chips(dlib: Any, store: ModelStore, data_dir: Path, count: int) -> Chips:
    """`count` aligned chips of different people, the first photo of each, in name order."""
    lfw = data_dir / "faces" / "lfw"
    if not lfw.is_dir():
        raise SystemExit(f"LFW photos not found at {lfw} (set STORESIGHT_DATA_DIR)")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(store.path("shape_predictor_5")))
    chips: list[Chips] = []
    for person in sorted(lfw.iterdir()):
        photo = person / "0001.jpg"
        if not photo.is_file():
            continue
        image = dlib.load_rgb_image(str(photo))
        faces = detector(image, 1)
        if len(faces) == 0:
            continue
        shape = predictor(image, max(faces, key=lambda r: r.area()))
        chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        chips.append(np.ascontiguousarray(chip, dtype=np.uint8))
        if len(chips) == count:
            return np.stack(chips)
    raise SystemExit(f"dlib found only {len(chips)} faces in {lfw}; {count} are needed")


def _per_face_ms(run: Callable[[], object], faces: int) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000.0 / faces


def _runners(
    embedder: FaceEmbedder, dlib_model: Any, chips: Chips, batch: int
) -> dict[str, Callable[[], object]]:
    """For one batch size: a call per back end that embeds every chip once."""
    groups = [chips[i : i + batch] for i in range(0, len(chips), batch)]
    dlib_groups = [[np.ascontiguousarray(c) for c in group] for group in groups]

    def onnx() -> object:
        return [embedder.embed(group) for group in groups]

    def dlib_batch1() -> object:
        return [dlib_model.compute_face_descriptor(group[0]) for group in dlib_groups]

    def dlib_batched() -> object:  # dlib's own batch form: a list of aligned chips
        return [dlib_model.compute_face_descriptor(group) for group in dlib_groups]

    return {"onnx_ms": onnx, "dlib_ms": dlib_batch1 if batch == 1 else dlib_batched}


def measure(
    embedder: FaceEmbedder, dlib_model: Any, chips: Chips, *, warmup: int, repeats: int
) -> dict[str, Measurement]:
    """{"batch_1": {"onnx_ms", "dlib_ms", "speedup"}, "batch_8": {...}}, medians over repeats."""
    results: dict[str, Measurement] = {}
    total = len(BATCH_SIZES) * 2 * (warmup + repeats)
    with tqdm(total=total, desc="embedder bench", unit="run", file=sys.stderr) as progress:
        for batch in BATCH_SIZES:
            row: Measurement = {}
            for key, run in _runners(embedder, dlib_model, chips, batch).items():
                progress.set_postfix_str(f"{key[:-3]} batch {batch}")
                for _ in range(warmup):
                    run()
                    progress.update()
                times = []
                for _ in range(repeats):
                    times.append(_per_face_ms(run, len(chips)))
                    progress.update()
                row[key] = statistics.median(times)
            row["speedup"] = row["dlib_ms"] / row["onnx_ms"]
            results[f"batch_{batch}"] = row
    return results


def report(results: dict[str, Measurement]) -> dict[str, object]:
    """The JSON document: per batch size, plus batch 1's figures at the top level."""
    first = results[f"batch_{BATCH_SIZES[0]}"]
    return {
        **results,
        "onnx_ms": first["onnx_ms"],
        "dlib_ms": first["dlib_ms"],
        "speedup": first["speedup"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/embedder.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads (default: RuntimeSettings' default)",
    )
    parser.add_argument(
        "--faces",
        type=int,
        default=16,
        help="chips embedded per repetition; a multiple of 8 (default 16)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the figures as JSON"
    )
    args = parser.parse_args(argv)
    if args.faces < 8 or args.faces % 8:
        parser.error("--faces must be a positive multiple of 8")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")

    dlib = _import_dlib()
    store = ModelStore()
    runtime = (
        RuntimeSettings()
        if args.threads is None
        else RuntimeSettings(intra_op_threads=args.threads)
    )
    chips = lfw_chips(dlib, store, shared_data_dir(), args.faces)
    embedder = FaceEmbedder(store, runtime, batch_size=max(BATCH_SIZES))
    dlib_model = dlib.face_recognition_model_v1(str(store.path("dlib_resnet_source")))

    results = measure(embedder, dlib_model, chips, warmup=args.warmup, repeats=args.repeats)
    rows = [
        [f"batch {batch}", r["onnx_ms"], r["dlib_ms"], f"{r['speedup']:.2f}x"]
        for batch in BATCH_SIZES
        for r in [results[f"batch_{batch}"]]
    ]
    print(
        f"ms per face, median of {args.repeats} runs over {args.faces} LFW chips; "
        f"onnxruntime intra-op threads {runtime.intra_op_threads}, dlib {dlib.__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    print(format_table(["batch", "onnx_ms", "dlib_ms", "speedup"], rows))
    if args.json is not None:
        args.json.write_text(json.dumps(report(results), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
