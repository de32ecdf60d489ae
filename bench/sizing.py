"""Memory, disk and build time of the recognition index per sample: the sizing figures of
docs/deploy.md.

For each size, in a fresh process: bench/recognition.py's synthetic dlib-like population
(128-d float32, ~20 samples a customer, 100 stores in 10 regions), loaded into the engine
with the service's default EngineSettings and an index directory, then indexed (`rebuild`),
then 2000 queries. Printed per size and per million samples:

- descriptors_MB: the bare vectors (n x 128 x 4 bytes)
- engine_MB: the engine's arrays in memory (its `stats()["memory_bytes"]`: every descriptor
  once per store partition, plus labels and the global partition's buffer)
- rss_anon_MB: how much the process's private memory grew (what each API worker holds)
- peak_anon_MB: its high-water mark while loading and building (a rebuild's working set)
- index_MB: the Annoy files on disk; rss_file_MB: how much of them the queries paged in
  (file pages: shared by every process mapping the same files, kept in the page cache)
- build_s: loading the samples and building the indexes (wall time: on a shared machine it
  grows with the load); build_cpu_s: the CPU time that took, which does not
- query_ms: the mean of the 2000 queries (wall; bench/recognition.py measures latency properly)

    python bench/sizing.py [--sizes 100000,1000000] [--queries 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.recognition import DIM, REGIONS, STORES, generate, load_engine
from cloud_api.recognition import EngineSettings, RecognitionEngine
from evaluation.tables import format_table
from storesight_common.logs import configure_logging

MB = 1e6
MILLION = 1_000_000


def _memory() -> dict[str, int]:
    """This process's resident memory (bytes) from /proc/self/status (Linux)."""
    fields = {"RssAnon": "anon", "RssFile": "file", "VmHWM": "peak", "VmRSS": "rss"}
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            out[fields[key]] = int(value.split()[0]) * 1024
    return out


def _reset_peak() -> None:
    """Start VmHWM afresh from the current RSS (Linux 4.0+: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def measure(size: int, queries: int, seed: int) -> dict[str, Any]:
    configure_logging()
    rng = np.random.default_rng(seed)
    pop = generate(size, rng, 0.10, 0.30)
    picks = rng.integers(0, size, queries)
    probes = pop.vectors[picks] + rng.normal(0, 0.02, (queries, DIM)).astype(np.float32)
    gc.collect()
    _reset_peak()
    before = _memory()
    settings = EngineSettings()
    with tempfile.TemporaryDirectory(prefix="sizing-") as tmp:
        index_dir = Path(tmp) / "index"
        engine = RecognitionEngine(settings, index_dir)
        cpu = time.process_time()
        loaded = load_engine(engine, pop, 0, f"{size:,} samples")
        build_cpu_s = time.process_time() - cpu
        gc.collect()
        built = _memory()
        start = time.perf_counter()
        for q, vector in enumerate(probes):
            store = int(pop.store[picks[q]])
            engine.identify(
                vector,
                region_id=store // (STORES // REGIONS),
                store_id=store,
                gender="unknown",
                age_band=-1,
                threshold=0.45,
            )
        query_ms = (time.perf_counter() - start) * 1000 / max(1, queries)
        after = _memory()
        stats = engine.stats()
        disk = sum(path.stat().st_size for path in index_dir.iterdir())
        engine.close()
    return {
        "samples": size,
        "descriptors_bytes": size * DIM * 4,
        "engine_bytes": int(stats["memory_bytes"]),
        "rss_anon_bytes": built["anon"] - before["anon"],
        "peak_anon_bytes": built["peak"] - before["rss"],
        "index_bytes": disk,
        "rss_file_bytes": after["file"] - before["file"],
        "annoy_partitions": int(stats["annoy_partitions"]),
        "exact_partitions": int(stats["exact_partitions"]),
        "build_s": loaded["build_s"],
        "build_cpu_s": build_cpu_s,
        "query_ms_mean": query_ms,
        "n_trees": settings.n_trees,
        "build_jobs": settings.build_jobs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100_000, 1_000_000],
        help="samples, comma-separated (default: 100000,1000000)",
    )
    parser.add_argument("--queries", type=int, default=2000, help="queries after the build")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size
    args = parser.parse_args(argv)
    configure_logging()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.queries, args.seed)))
        return 0
    rows = []
    # each size in a process of its own, so one size's memory does not count in the next
    for size in args.sizes:
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--queries", str(args.queries),
             "--seed", str(args.seed)],
            stdout=subprocess.PIPE, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(child.stdout.splitlines()[-1]))
    headers = (
        "samples", "descriptors_MB", "engine_MB", "rss_anon_MB", "peak_anon_MB",
        "index_MB", "rss_file_MB", "build_s", "build_cpu_s", "query_ms",
    )  # fmt: skip
    table = []
    for row in rows:
        per = {"samples": row["samples"]}
        table.append(_cells(row, per))
        if row["samples"] != MILLION:  # the same figures scaled to a million samples
            scale = MILLION / row["samples"]
            table.append(_cells(row, {"samples": f"  per 1M (x{scale:g})"}, scale))
    print(format_table(headers, table))
    print(
        f"(EngineSettings defaults: {rows[0]['n_trees']} trees, build_jobs "
        f"{rows[0]['build_jobs']}; build_s is loading plus indexing, on this machine now; "
        "per 1M rows scale linearly, but a store above exact_max_size gets an index of its own)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": rows}, indent=2) + "\n")
    return 0


def _cells(row: dict[str, Any], first: dict[str, Any], scale: float = 1.0) -> list[object]:
    return [
        first["samples"],
        round(row["descriptors_bytes"] * scale / MB),
        round(row["engine_bytes"] * scale / MB),
        round(row["rss_anon_bytes"] * scale / MB),
        round(row["peak_anon_bytes"] * scale / MB),
        round(row["index_bytes"] * scale / MB),
        round(row["rss_file_bytes"] * scale / MB),
        round(row["build_s"] * scale, 1),
        round(row["build_cpu_s"] * scale, 1),
        round(row["query_ms_mean"], 2),
    ]


if __name__ == "__main__":
    sys.exit(main())
