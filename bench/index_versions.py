"""Index versions: memory of N worker processes mapping one version against one, start-up, and
index builds per version.

    python bench/index_versions.py [--samples 1000000] [--backend sqlite] [--workers 4]
                                   [--queries 500] [--no-private] [--json FILE]

1. A fresh database (SQLite in a temp dir; PostgreSQL: a throwaway database on
   STORESIGHT_TEST_POSTGRES_URL) holding `--samples` synthetic dlib-like descriptors of
   `bench/recognition.py`'s population (about 20 per customer, 100 stores in 10 regions).
2. `storesight-cloud indexer --once` builds and publishes index version 1 (default engine
   settings: every store searched exactly, everyone through Annoy), as its own process.
3. Worker processes, each a `Recognizer` on the index directory as `serve` has one (the
   indexer holds the build lock, so they never build): start-up time, then `--queries`
   decisions; with `ENGINE__PREFAULT`, every page of the version is read at load: the worst
   case for memory. Their memory is read from /proc/PID/smaps_rollup while they are
   all running: RSS (counts a shared page in every process that touched it), PSS (a shared
   page divided among its sharers: the sum is what the machine really spends) and anonymous
   memory (each process's own). First one worker alone, then `--workers` at once.
4. For reference, one process the old way (`--no-private` skips it): no version, every sample
   read from the database and its own indexes built (what every `serve` process did before).
5. Index builds per version: versions the indexer published plus index builds in the workers
   (counted by their engines), over the versions the workers served from. The goal is one.

At 1M samples on SQLite (2-core machine shared with other work; `--samples 1000000`): indexer
193.9 s (reading the database 94.6 s, building and publishing 93.7 s; peak RSS 2665 MiB),
version on disk 1699 MiB, then

    processes    start s  RSS MiB  PSS MiB  anonymous MiB  builds  decide ms
    1            1.40     1548     1528     70             0       9.76
    4            2.99     6191     1749     280            0       28.29
    1 (old way)  183.10   2589     2568     1438           1       11.44
    index builds per version: 1 (goal: 1)

(the 4 workers' decisions ran at once on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import numpy as np
from sqlalchemy import Engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.recognition import STORES, generate, make_queries, region_of  # noqa: E402
from cloud_api.db.models import Customer, FaceSample, utcnow  # noqa: E402
from cloud_api.recognition.partitions import GENDERS  # noqa: E402
from evaluation.tables import format_table  # noqa: E402
from storesight_common.logs import configure_logging  # noqa: E402

MB = 1024 * 1024
_BATCH = 10_000
_QUERY_FILE = "queries.npz"


# --------------------------------------------------------------------------- the database


def fill(url: str, samples: int, seed: int, workdir: Path) -> dict[str, float]:
    """Regions, stores, customers and their samples in the database; queries in workdir."""
    from cloud_api import admin
    from cloud_api.db.migrate import upgrade
    from cloud_api.db.session import make_engine, session_factory, transaction

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    pop = generate(samples, rng, gender_error=0.10, age_error=0.30)
    queries = make_queries(pop, 2000, (70.0, 10.0, 5.0, 15.0), rng, 0.10, 0.30)
    generated = time.perf_counter() - started
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(session_factory(engine)) as session:
            regions = [admin.create_region(session, f"Region {r}") for r in range(STORES // 10)]
            stores = [
                admin.create_store(session, regions[int(region_of(s))].name, f"S{s:03d}", f"S{s}")
                for s in range(STORES)
            ]
            session.flush()
            store_ids = np.array([s.id for s in stores], np.int64)
            region_ids = np.array([s.region_id for s in stores], np.int64)
        started = time.perf_counter()
        customer_ids = _insert_customers(engine, pop.home, store_ids, region_ids)
        _insert_samples(engine, pop, customer_ids, store_ids, region_ids)
        inserted = time.perf_counter() - started
    finally:
        engine.dispose()
    np.savez(
        workdir / _QUERY_FILE,
        vectors=queries.vectors,
        store=store_ids[queries.store],
        region=region_ids[queries.store],
    )
    return {"generate_s": round(generated, 1), "insert_s": round(inserted, 1)}


def _insert_customers(
    engine: Engine, home: Any, store_ids: Any, region_ids: Any
) -> np.ndarray[Any, np.dtype[np.int64]]:
    now = utcnow()
    ids = np.arange(1, len(home) + 1, dtype=np.int64)
    rows = [
        {
            "id": int(i),
            "region_id": int(region_ids[h]),
            "first_store_id": int(store_ids[h]),
            "visit_count": 1,
            "lifetime_spend": Decimal(0),
            "created_at": now,
            "last_seen_at": now,
        }
        for i, h in zip(ids.tolist(), home.tolist(), strict=True)
    ]
    _insert(engine, Customer, rows, "customers")
    return ids


def _insert_samples(
    engine: Engine, pop: Any, customer_ids: Any, store_ids: Any, region_ids: Any
) -> None:
    vectors = np.ascontiguousarray(pop.vectors, dtype="<f4")
    now = utcnow()

    def rows(lo: int, hi: int) -> list[dict[str, Any]]:
        return [
            {
                "customer_id": int(customer_ids[pop.customer[i]]),
                "region_id": int(region_ids[pop.store[i]]),
                "store_id": int(store_ids[pop.store[i]]),
                "gender": GENDERS[int(pop.gender[i])],
                "age_band": int(pop.band[i]),
                "descriptor": vectors[i].tobytes(),
                "quality": 0.8,
                "verified": False,
                "created_at": now,
            }
            for i in range(lo, hi)
        ]

    total = len(vectors)
    for lo in range(0, total, _BATCH):
        with engine.begin() as connection:
            connection.execute(insert(FaceSample), rows(lo, min(total, lo + _BATCH)))
        if (lo // _BATCH) % 20 == 0:
            print(f"  samples inserted: {min(total, lo + _BATCH):,}/{total:,}", flush=True)


def _insert(engine: Engine, model: type[Any], rows: list[dict[str, Any]], what: str) -> None:
    for lo in range(0, len(rows), _BATCH):
        with engine.begin() as connection:
            connection.execute(insert(model), rows[lo : lo + _BATCH])
    print(f"  {what} inserted: {len(rows):,}", flush=True)


# --------------------------------------------------------------------------- processes


def _env(url: str, index_dir: Path, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "STORESIGHT_CLOUD_DATABASE_URL": url,
        "STORESIGHT_CLOUD_INDEX_DIR": str(index_dir),
        "STORESIGHT_CLOUD_INDEX_BUILDER": "indexer",
        "STORESIGHT_CLOUD_INDEX_KEEP_ON_STOP": "true",  # the version outlives the indexer
        "STORESIGHT_CLOUD_AUTO_MIGRATE": "false",
        "STORESIGHT_LOG_LEVEL": "INFO",
        **more,
    }


def run_indexer(url: str, index_dir: Path, log: Path) -> dict[str, float]:
    started = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "cloud_api.cli", "indexer", "--once"],
            env=_env(url, index_dir),
            stderr=out,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the indexer failed; its log:\n{log.read_text()[-4000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the first child waited
    text = log.read_text()
    loaded = re.search(r"recognizer_loaded.*?\bseconds=([\d.]+)", text)
    built = re.search(r"index_version_published.*?\bbuild_seconds=([\d.]+)", text)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "load_s": float(loaded.group(1)) if loaded else float("nan"),
        "build_and_publish_s": float(built.group(1)) if built else float("nan"),
        "versions_published": text.count("index_version_published"),
        "peak_rss_mb": round(peak_kb / 1024),
    }


@dataclass
class Worker:
    process: subprocess.Popen[str]
    report: dict[str, Any]


@contextmanager
def workers(
    url: str, index_dir: Path, workdir: Path, count: int, queries: int
) -> Iterator[list[Worker]]:
    """`count` worker processes, each loaded, queried and with every mapped page read; they
    stay up (for their memory to be read) until the block ends."""
    with ExitStack() as stack:
        started: list[subprocess.Popen[str]] = []
        for n in range(count):
            log = stack.enter_context((workdir / f"worker-{count}-{n}.log").open("w"))
            started.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", str(workdir), "--queries", str(queries)],
                    env=_env(url, index_dir, STORESIGHT_CLOUD_ENGINE__PREFAULT="true"),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            )
        try:
            ready = [Worker(p, json.loads(_line(p.stdout))) for p in started]
            yield ready
        finally:
            for process in started:
                if process.stdin is not None:
                    process.stdin.close()
            for process in started:
                process.wait(timeout=120)


def _line(stream: IO[str] | None) -> str:
    line = stream.readline() if stream is not None else ""
    if not line:
        raise RuntimeError("a worker ended before reporting (see worker-*.log)")
    return line


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and anonymous memory of a process, in MiB (Linux)."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name] = int(parts[0]) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"], "anonymous": fields["Anonymous"]}


def worker_main(workdir: Path, count: int) -> int:
    """One worker: a `serve` process's recogniser on the index directory (never the builder),
    started, queried, every mapped page read; reports on stdout, then waits for stdin."""
    from cloud_api.db.session import open_database, session_factory
    from cloud_api.services.indexer import versioned_recognizer
    from cloud_api.settings import CloudSettings

    configure_logging(level="WARNING")
    settings = CloudSettings()
    started = time.perf_counter()
    recognizer = versioned_recognizer(session_factory(open_database(settings)), settings)
    read = recognizer.load()
    load_s = time.perf_counter() - started
    query_ms = decide_ms(recognizer, workdir, count)
    stats = recognizer.engine.stats()
    print(
        json.dumps(
            {
                "load_s": round(load_s, 2),
                "samples_read": read,
                "index_version": stats["index_version"],
                "index_builds": stats["annoy_builds"] + stats["rebuilds"],
                "query_ms": round(query_ms, 2),
            }
        ),
        flush=True,
    )
    sys.stdin.read()  # until the bench has read this process's memory
    recognizer.close()
    assert recognizer.versions is not None
    recognizer.versions.leave(remove=False)
    return 0


def decide_ms(recognizer: Any, workdir: Path, count: int) -> float:
    """The mean time of `count` decisions on the bench's queries, in ms."""
    from cloud_api.recognition.gallery import Shot, Visit

    loaded = np.load(workdir / _QUERY_FILE)
    count = min(count, len(loaded["vectors"]))
    began = time.perf_counter()
    for i in range(count):
        visit = Visit(
            [Shot(loaded["vectors"][i], 0.9)], int(loaded["region"][i]), int(loaded["store"][i])
        )
        recognizer.gallery.decide(visit)
    return round((time.perf_counter() - began) * 1000 / max(1, count), 2)


def private_reference(url: str, workdir: Path, queries: int) -> dict[str, float]:
    """The old way, in its own process (`private_main`): every sample read, own indexes
    built."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--private", str(workdir), "--queries", str(queries)],
        env=_env(url, workdir / "private"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        report: dict[str, float] = json.loads(_line(process.stdout))
        report.update(memory(process.pid))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=120)
    return report


def private_main(workdir: Path, count: int) -> int:
    """A recogniser without index versions, as every `serve` process had before: it reads
    every sample and builds its own indexes; reports on stdout, then waits for stdin."""
    from cloud_api.db.session import open_database, session_factory
    from cloud_api.services.recognizer import Recognizer
    from cloud_api.settings import CloudSettings

    configure_logging(level="WARNING")
    settings = CloudSettings()
    started = time.perf_counter()
    recognizer = Recognizer(
        session_factory(open_database(settings)),
        policy=settings.decision_policy(),
        index_dir=workdir / "private",
        settings=settings.engine,
    )
    recognizer.load()
    recognizer.engine.rebuild()
    start_s = round(time.perf_counter() - started, 1)
    query_ms = decide_ms(recognizer, workdir, count)
    print(json.dumps({"start_s": start_s, "query_ms": query_ms}), flush=True)
    sys.stdin.read()
    recognizer.close(remove_files=True)
    return 0


# --------------------------------------------------------------------------- main


def measure(group: list[Worker]) -> dict[str, float]:
    mems = [memory(w.process.pid) for w in group]
    return {
        "processes": len(group),
        "start_s_max": max(w.report["load_s"] for w in group),
        "rss_mb": round(sum(m["rss"] for m in mems)),
        "pss_mb": round(sum(m["pss"] for m in mems)),
        "anonymous_mb": round(sum(m["anonymous"] for m in mems)),
        "index_builds": sum(w.report["index_builds"] for w in group),
        "query_ms": round(float(np.mean([w.report["query_ms"] for w in group])), 2),
        "samples_read": sum(w.report["samples_read"] for w in group),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/index_versions.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--queries", type=int, default=500, help="decisions per worker")
    parser.add_argument("--no-private", action="store_true", help="skip the old-way reference")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, metavar="FILE")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--private", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker, args.queries)
    if args.private is not None:
        return private_main(args.private, args.queries)
    configure_logging(level="WARNING")
    from tests.cloud_fixtures import temporary_database

    result: dict[str, Any] = {
        "samples": args.samples,
        "backend": args.backend,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="index-versions-bench-") as tmp:
        workdir = Path(tmp)
        index_dir = workdir / "index"
        with temporary_database(args.backend, workdir) as url:
            print(f"filling the {args.backend} database with {args.samples:,} samples", flush=True)
            result["database"] = fill(url, args.samples, args.seed, workdir)
            print("indexer --once: building version 1", flush=True)
            result["indexer"] = run_indexer(url, index_dir, workdir / "indexer.log")
            result["index_dir_mb"] = round(
                sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / MB
            )
            rows = []
            for count in sorted({1, args.workers}):
                print(f"{count} worker(s) mapping the version", flush=True)
                with workers(url, index_dir, workdir, count, args.queries) as group:
                    rows.append(measure(group))
            result["workers"] = rows
            if not args.no_private:
                print("reference: one process the old way (loads everything, builds its own)")
                result["private_process"] = private_reference(url, workdir, args.queries)
    published = result["indexer"]["versions_published"]
    builds = published + sum(r["index_builds"] for r in result["workers"])
    result["builds_per_version"] = builds / max(1, published)
    _print(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _print(result: dict[str, Any]) -> None:
    print(
        f"\n{result['samples']:,} samples on {result['backend']}: indexer "
        f"{result['indexer']['seconds']} s (reading the database "
        f"{result['indexer']['load_s']} s, building and publishing "
        f"{result['indexer']['build_and_publish_s']} s; peak RSS "
        f"{result['indexer']['peak_rss_mb']} MiB); version on disk {result['index_dir_mb']} MiB"
    )
    headers = ["processes", "start s", "RSS MiB", "PSS MiB", "anonymous MiB", "builds", "decide ms"]
    table = [
        [
            r["processes"],
            r["start_s_max"],
            r["rss_mb"],
            r["pss_mb"],
            r["anonymous_mb"],
            r["index_builds"],
            r["query_ms"],
        ]
        for r in result["workers"]
    ]
    private = result.get("private_process")
    if private is not None:
        table.append(
            [
                "1 (old way)",
                private["start_s"],
                round(private["rss"]),
                round(private["pss"]),
                round(private["anonymous"]),
                1,
                private["query_ms"],
            ]
        )
    print(format_table(headers, table))
    print(f"index builds per version: {result['builds_per_version']:g} (goal: 1)")


if __name__ == "__main__":
    raise SystemExit(main())
