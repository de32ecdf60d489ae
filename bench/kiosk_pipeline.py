"""Frames per second of the kiosk pipeline end to end, and ms per stage.

    python bench/kiosk_pipeline.py [--source VIDEO] [--json FILE]

Runs the real pipeline (capture thread, detection on every frame, tracking, best-shot
alignment, embedding of best shots and appearance checks) over the clip at its own size and
at 640x480. For 640x480 the clip is first re-encoded at that size (as a 640x480 camera would
deliver it, so decoding is measured at that size too) and played forwards, backwards and
forwards again so the run is long enough to time. The reference, measured in the same run,
is decoding alone: the pipeline can never beat it.

Detection is MediaPipe full-range without tiling (the clip's faces are 2-5 m away);
on this clip that is one to three faces per frame.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from evaluation.data_paths import shared_data_dir
from evaluation.tables import format_table
from kiosk_app.events import EventCollector, TrackEnded
from kiosk_app.runner import run
from kiosk_app.settings import PipelineSettings
from kiosk_app.sources import open_source

SIZE_640 = (640, 480)


def settings() -> PipelineSettings:
    return PipelineSettings(mode="entrance")  # the detector at full range, as at a till


def reencode(source: Path, target: Path, size: tuple[int, int]) -> int:
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    capture.release()
    if not frames:
        raise SystemExit(f"no frames in {source}")
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    sequence = frames + frames[::-1] + frames
    for frame in sequence:
        writer.write(frame)
    writer.release()
    return len(sequence)


def decode_only(spec: str) -> float:
    source = open_source(spec)
    source.open()
    started = time.perf_counter()
    frames = 0
    while source.read() is not None:
        frames += 1
    source.close()
    return frames / (time.perf_counter() - started)


def measure(spec: str) -> dict[str, Any]:
    decode_fps = decode_only(spec)
    events = EventCollector()
    report = run(spec, settings(), events)
    faces = events.of(TrackEnded)
    return {
        "frames": report.frames,
        "fps": report.fps,
        "decode_only_fps": decode_fps,
        "ratio_to_decode": report.fps / decode_fps,
        "dropped": report.capture.dropped,
        "tracks": len(faces),
        "stage_ms": report.stage_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/kiosk_pipeline.py", description=__doc__)
    parser.add_argument(
        "--source",
        type=Path,
        default=shared_data_dir() / "video" / "facenet-pytorch_video.mp4",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        raise SystemExit(f"video not found: {args.source} (set STORESIGHT_DATA_DIR)")
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "clip_640x480.mp4"
        reencode(args.source, small, SIZE_640)
        native = measure(str(args.source))
        at_640 = measure(str(small))
    rows = []
    for name, m in (("native", native), ("640x480", at_640)):
        stages = m["stage_ms"]
        rows.append(
            [
                name,
                m["frames"],
                m["fps"],
                m["decode_only_fps"],
                f"{m['ratio_to_decode']:.2f}x",
                *(stages[s] for s in ("decode", "detect", "track", "align", "embed")),
            ]
        )
    headers = ["size", "frames", "fps", "decode fps", "vs decode", "decode", "detect", "track"]
    print(format_table([*headers, "align", "embed"], rows))
    print("stage columns: ms per frame (embed: best shots and appearance checks, its own thread)")
    figures = {
        "fps": native["fps"],
        "fps_640x480": at_640["fps"],
        "stage_ms": at_640["stage_ms"],
        "native": native,
        "640x480": at_640,
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
