"""The packaged kiosk's size and start-up time, against the same app run from source.

    make package && python bench/package.py [--repeats N] [--json FILE]

Size: the bundle folder on disk (links counted once), the largest parts, the .deb (xz) and
a gzip tarball of the folder (what a Windows zip or installer would roughly weigh).
Start-up: the wall time from starting the process to its exit after its first processed
frame (`run --headless --max-frames 1` on the shared clip), which covers unpacking nothing
(a one-folder bundle), importing, loading and checking the models, opening the clip and
detecting in one frame. The bundle and the source run alternate, `--repeats` times each; the
first run of each is reported apart (the coldest the page cache gets here: the machine's
caches cannot be dropped from the session) and the median of the others is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evaluation.data_paths import shared_data_dir  # noqa: E402
from evaluation.tables import format_table  # noqa: E402
from installers.build import folder_bytes  # noqa: E402

APP = REPO / "dist" / "storesight-kiosk"
BUNDLED = APP / "storesight-kiosk"
SOURCE = [sys.executable, "-m", "kiosk_app.cli"]
MB = 1e6


def largest_parts(folder: Path, count: int = 8) -> list[tuple[str, int]]:
    inside = folder / "_internal"
    parts = [
        (p.name, folder_bytes(p) if p.is_dir() else p.lstat().st_size) for p in inside.iterdir()
    ]
    return sorted(parts, key=lambda part: -part[1])[:count]


def gzip_bytes(folder: Path) -> int:
    with tempfile.TemporaryDirectory() as temp:
        target = Path(temp) / "bundle.tar.gz"
        with tarfile.open(target, "w:gz", compresslevel=6) as tar:
            tar.add(folder, arcname=folder.name)
        return target.stat().st_size


def start_seconds(command: list[str], clip: str, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [*command, "run", "--headless", "--source", clip, "--max-frames", "1"],
        env=environment,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each (>= 2)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    if not BUNDLED.exists():
        raise SystemExit(f"no bundle at {APP}: run `make package` first")
    clip = shared_data_dir() / "video" / "facenet-pytorch_video.mp4"
    if not clip.is_file():
        raise SystemExit(f"the clip {clip} is missing (set STORESIGHT_DATA_DIR)")
    debs = sorted((REPO / "dist").glob("storesight-kiosk_*.deb"))
    print("measuring sizes...", file=sys.stderr)
    on_disk = folder_bytes(APP)
    tarball = gzip_bytes(APP)
    deb = debs[-1].stat().st_size if debs else None

    with tempfile.TemporaryDirectory() as home:
        environment = {
            **os.environ,
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_DATA_HOME": f"{home}/data",
            "PYTHONPATH": str(REPO),
        }
        times: dict[str, list[float]] = {"bundle": [], "source": []}
        for repeat in range(args.repeats):
            for name, command in (("bundle", [str(BUNDLED)]), ("source", SOURCE)):
                print(f"start-up {repeat + 1}/{args.repeats}: {name}", file=sys.stderr)
                times[name].append(start_seconds(command, str(clip), environment))

    size_rows: list[list[object]] = [
        ["bundle on disk", round(on_disk / MB, 1), "goal < 400"],
        [".deb (xz)", round(deb / MB, 1) if deb else "not built", "goal < 200"],
        ["tar.gz of the folder", round(tarball / MB, 1), "goal < 200"],
        *[[f"  _internal/{name}", round(size / MB, 1), ""] for name, size in largest_parts(APP)],
    ]
    print(format_table(["what", "MB", ""], size_rows))
    print()
    first = {name: values[0] for name, values in times.items()}
    median = {name: statistics.median(values[1:]) for name, values in times.items()}
    start_rows = [
        [
            name,
            round(first[name], 2),
            round(median[name], 2),
            round(median[name] / median["source"], 2),
        ]
        for name in ("bundle", "source")
    ]
    print(
        format_table(
            ["run", "first start s", f"median of {args.repeats - 1} s", "x source"], start_rows
        )
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "bytes_on_disk": on_disk,
                    "deb_bytes": deb,
                    "tar_gz_bytes": tarball,
                    "start_s": times,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
