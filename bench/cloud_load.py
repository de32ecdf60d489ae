"""Checkouts per second the cloud sustains: simulated tills against `storesight-cloud serve`.

    python bench/cloud_load.py [--configs postgresql:1,postgresql:2,postgresql:4,sqlite:1]
                               [--clients 8] [--seconds 30] [--enrolled 100000]
                               [--people 120] [--returning 0.6] [--profile FILE] [--json FILE]

1. Real faces, computed once before anything is timed: the first photo of `--people` people
   from the shared LFW photos, through facelib (detection, alignment, embedding), giving one
   descriptor and the aligned 150x150 chip as JPEG per person.
2. Per run (a backend and a number of API worker processes), a fresh database (SQLite
   in a temp dir; PostgreSQL: a throwaway database on
   STORESIGHT_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres,
   dropped afterwards), one store with `--clients` tills, then `storesight-cloud serve` as its
   own process (log in the temp dir), with age/gender estimation on. Before it starts,
   `--enrolled` customers with one synthetic sample each are written to the database
   (random unit descriptors: distractors the search passes over, in the tills' store).
3. `--clients` tills (threads, one HTTP connection each) post checkouts back to back for
   `--seconds`: each a receipt of 1-3 catalogue lines, 8 shots of one person's face encoded
   as the kiosk sends them (`Embedding.compact`, f16; the descriptor with a little noise per
   shot, as consecutive frames differ) and the face crop. A share `--returning` of checkouts
   is someone already served (a returning customer), the rest a person not seen yet (a new
   customer) while there are any left.
4. One row per run (JSON: `runs`, and `postgresql_4_workers` for that run): checkouts/s
   (2xx answers over the timed window), p50/p95/p99
   latency of those answers, errors (non-2xx answers and transport failures), and the CPU
   time per checkout of the API processes, the local PostgreSQL server and the simulated
   tills (Linux /proc): where the machine's cores go.

Before the API starts, `storesight-cloud indexer --once` publishes the enrolled customers'
index version (a chain's steady state: no worker builds one in the timed window).

Issue 16's before/after table, what changed and why 200 checkouts/s is out of reach on a
2-core machine: README, Measuring.

`--profile FILE` records the API process with py-spy (GIL-holding samples: where its CPU
goes) into FILE-BACKEND as a speedscope profile.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract import Embedding  # noqa: E402
from demo.run import CATALOGUE, free_port, receipt_body  # noqa: E402
from evaluation.data_paths import shared_data_dir  # noqa: E402
from evaluation.tables import format_table  # noqa: E402

SHOTS = 8
#: Per-value noise between one shot and the next (descriptors are unit-norm, 128-d).
SHOT_NOISE = 0.01
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Face:
    descriptor: NDArray[np.float32]  # unit norm
    crop_base64: str


def load_faces(count: int) -> list[Face]:
    """One face per person, the first photo of the first `count` LFW people with a face."""
    import base64

    import cv2

    from facelib.analyzer import FaceAnalyzer
    from facelib.config import FaceLibSettings
    from facelib.images import read_rgb

    root = shared_data_dir() / "faces" / "lfw"
    if not root.is_dir():
        raise SystemExit(f"LFW photos not found: {root} (set STORESIGHT_DATA_DIR)")
    analyzer = FaceAnalyzer(FaceLibSettings(estimate_age_gender=False))
    faces: list[Face] = []
    people = sorted(p for p in root.iterdir() if p.is_dir())
    with tqdm(total=count, desc="faces", unit="face") as bar:
        for person in people:
            if len(faces) == count:
                break
            photos = sorted(person.glob("*.jpg"))
            if not photos:
                continue
            found = analyzer.analyze(read_rgb(photos[0]))
            found = [f for f in found if f.descriptor is not None]
            if not found:
                continue
            face = max(found, key=lambda f: f.detection.box.area)
            assert face.descriptor is not None
            ok, jpeg = cv2.imencode(
                ".jpg",
                cv2.cvtColor(face.chips.embedding, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90],
            )
            assert ok
            vector = np.asarray(face.descriptor, dtype=np.float32)
            faces.append(
                Face(vector / np.linalg.norm(vector), base64.b64encode(jpeg.tobytes()).decode())
            )
            bar.update(1)
    if len(faces) < count:
        raise SystemExit(f"only {len(faces)} faces found under {root}, {count} asked for")
    return faces


def setup_database(url: str, tills: int) -> list[str]:
    """Schema, one store and `tills` till keys."""
    from cloud_api import admin
    from cloud_api.db.migrate import upgrade
    from cloud_api.db.session import make_engine, session_factory, transaction

    upgrade(url)
    engine = make_engine(url)
    keys = []
    try:
        with transaction(session_factory(engine)) as session:
            admin.create_region(session, "Load region")
            admin.create_store(session, "Load region", "LOAD-1", "Load store")
            for n in range(tills):
                keys.append(admin.create_device(session, "LOAD-1", "till", f"till {n + 1}")[1])
    finally:
        engine.dispose()
    return keys


def enrol_synthetic(url: str, count: int, seed: int = 0, chunk: int = 5000) -> None:
    """`count` customers of the load store, one sample each, written straight to the
    database (the API would take minutes): random unit descriptors, so they are
    distractors the search must pass over, never matches of the LFW faces the tills show."""
    from sqlalchemy import insert, select

    from cloud_api.db.models import Customer, FaceSample, Store
    from cloud_api.db.session import make_engine
    from cloud_api.recognition.partitions import PARTITION_AGE_BANDS
    from cloud_api.services.recognizer import to_bytes

    if count <= 0:
        return
    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            store_id, region_id = connection.execute(
                select(Store.id, Store.region_id).where(Store.code == "LOAD-1")
            ).one()
        with tqdm(total=count, desc="enrolling", unit="customer") as bar:
            done = 0
            while done < count:
                n = min(chunk, count - done)
                vectors = rng.standard_normal((n, 128)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                genders = rng.choice(["female", "male"], n)
                bands = rng.integers(1, len(PARTITION_AGE_BANDS), n)  # adults
                with engine.begin() as connection:
                    first = (
                        connection.execute(
                            insert(Customer).returning(Customer.id),
                            [
                                {"region_id": region_id, "first_store_id": store_id, "gender": g}
                                for g in genders
                            ],
                        )
                        .scalars()
                        .all()
                    )
                    connection.execute(
                        insert(FaceSample),
                        [
                            {
                                "customer_id": customer,
                                "region_id": region_id,
                                "store_id": store_id,
                                "gender": str(genders[i]),
                                "age_band": int(bands[i]),
                                "descriptor": to_bytes(vectors[i]),
                                "quality": 0.5,
                            }
                            for i, customer in enumerate(first)
                        ],
                    )
                done += n
                bar.update(n)
    finally:
        engine.dispose()


@contextmanager
def database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'cloud.db'}"
        return
    from tests.cloud_fixtures import temporary_postgres_database

    with temporary_postgres_database() as url:
        yield url


def cloud_env(url: str, directory: Path, workers: int) -> dict[str, str]:
    return {
        **os.environ,
        "STORESIGHT_CLOUD_DATABASE_URL": url,
        "STORESIGHT_CLOUD_INDEX_DIR": str(directory / "index"),
        "STORESIGHT_CLOUD_AUTO_MIGRATE": "false",
        "STORESIGHT_LOG_JSON": "1",
        "STORESIGHT_CLOUD_WORKERS": str(workers),
    }


def publish_index(url: str, directory: Path) -> float:
    """`storesight-cloud indexer --once`: the enrolled customers' index version, published
    before the API starts, as a chain's indexer has long done before its busiest hour (the
    workers map it; without it one of them would build it inside the timed window).
    Seconds taken."""
    started = time.perf_counter()
    with (directory / "indexer.log").open("ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "cloud_api.cli", "indexer", "--once"],
            env=cloud_env(url, directory, 1),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"the indexer failed; see {directory / 'indexer.log'}")
    return time.perf_counter() - started


@contextmanager
def serve(url: str, directory: Path, workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`storesight-cloud serve` as its own process; yields its base URL and the process."""
    port = free_port()
    env = cloud_env(url, directory, workers)
    log_path = directory / "cloud.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cloud_api.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # every worker loads the enrolled customers first
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the cloud API exited; see {log_path}")
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the cloud API was not ready within 600 s; see {log_path}")
            time.sleep(0.2)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class People:
    """Who comes to the till next: someone already served, or the next new person."""

    faces: list[Face]
    returning: float
    rng: random.Random
    served: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> int:
        with self.lock:
            fresh = len(self.served) < len(self.faces)
            if self.served and (not fresh or self.rng.random() < self.returning):
                return self.rng.choice(self.served)
            person = len(self.served)
            self.served.append(person)
            return person


def _processes() -> Iterator[tuple[str, str, list[str]]]:
    """(pid, command name, the fields after it) of every process (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, rest = text[text.index("(") + 1 :].rsplit(")", 1)
        yield stat.parent.name, name, rest.split()


def _cpu_of(chosen: Iterable[list[str]]) -> float:
    """User + system CPU seconds of these processes' fields; NaN for none."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in chosen)
    return ticks / os.sysconf("SC_CLK_TCK") if ticks else float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time a process and its child processes (uvicorn's workers) have used."""
    me = str(pid)
    return _cpu_of(f for p, _, f in _processes() if p == me or f[1] == me)


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL server process on this machine (NaN where there is
    none: a remote database)."""
    return _cpu_of(f for _, name, f in _processes() if name.startswith("postgres"))


def checkout_body(face: Face, rng: np.random.Generator, till: int, n: int) -> bytes:
    shots = []
    for i in range(SHOTS):
        vector = face.descriptor + rng.normal(0.0, SHOT_NOISE, face.descriptor.shape)
        vector /= np.linalg.norm(vector)
        shot = Embedding.compact(vector.tolist(), round(0.9 - 0.05 * i, 2))
        shots.append(shot.model_dump(mode="json", exclude_none=True))
    basket = [
        (item, 1 + (n + k) % 2)
        for k, item in enumerate(random.Random(n).sample(CATALOGUE, k=1 + n % 3))
    ]
    body = {
        "idempotency_key": f"load-{till}-{n}-{uuid.uuid4().hex[:12]}",
        "captured_at": datetime.now(UTC).isoformat(),
        "receipt": receipt_body(f"L{till:02d}-{n:06d}", basket),
        "embeddings": shots,
        "face_crop": {"jpeg_base64": face.crop_base64},
    }
    return json.dumps(body).encode()


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, ms: float) -> None:
        with self.lock:
            self.latencies_ms.append(ms)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors += 1
            self.first_error = self.first_error or what


def till(
    base: str, key: str, number: int, people: People, stop: threading.Event, tally: Tally
) -> None:
    rng = np.random.default_rng(number)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        n = 0
        while not stop.is_set():
            n += 1
            body = checkout_body(people.faces[people.next()], rng, number, n)
            started = time.perf_counter()
            try:
                response = client.post("/v1/checkouts", content=body)
            except httpx.HTTPError as error:
                tally.error(f"{type(error).__name__}: {error}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if stop.is_set():  # answered after the window closed: not counted
                break
            if 200 <= response.status_code < 300:
                tally.ok(elapsed)
            else:
                tally.error(f"HTTP {response.status_code}: {response.text[:200]}")


def run_backend(
    backend: str,
    workers: int,
    faces: list[Face],
    args: argparse.Namespace,
    profile: Path | None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
        directory = Path(tmp)
        keys = setup_database(url, args.clients)
        enrol_synthetic(url, args.enrolled)
        index_s = publish_index(url, directory) if args.enrolled else 0.0
        with serve(url, directory, workers) as (base, process):
            people = People(faces, args.returning, random.Random(0))
            tally = Tally()
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=till, args=(base, keys[i], i, people, stop, tally), daemon=True
                )
                for i in range(args.clients)
            ]
            profiler = (
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(process.pid),
                        "--duration",
                        str(int(args.seconds)),
                        "--format",
                        "speedscope",
                        "--output",
                        str(profile),
                        "--gil",  # only the thread holding the GIL: where the CPU goes
                    ]
                )
                if profile is not None
                else None
            )
            cpu_before = cpu_seconds(process.pid)
            postgres_before = postgres_cpu_seconds()
            tills_before = time.process_time()
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            with tqdm(total=int(args.seconds), desc=f"{backend} x{workers}", unit="s") as bar:
                while (elapsed := time.perf_counter() - started) < args.seconds:
                    time.sleep(min(1.0, args.seconds - elapsed))
                    elapsed = time.perf_counter() - started
                    done = len(tally.latencies_ms)
                    bar.n = int(elapsed)
                    bar.set_postfix(
                        checkouts=done, per_s=f"{done / elapsed:.0f}", errors=tally.errors
                    )
            stop.set()
            window = time.perf_counter() - started
            cpu = cpu_seconds(process.pid) - cpu_before
            postgres_cpu = postgres_cpu_seconds() - postgres_before
            tills_cpu = time.process_time() - tills_before
            for thread in threads:
                thread.join(timeout=60)
            if profiler is not None:
                profiler.wait(timeout=120)
    latencies = tally.latencies_ms
    if tally.first_error:
        print(f"{backend}: first error: {tally.first_error}", file=sys.stderr)

    def pct(q: int) -> float:
        return round(float(np.percentile(latencies, q)), 1) if latencies else float("nan")

    return {
        "backend": backend,
        "clients": args.clients,
        "workers": workers,
        "enrolled": args.enrolled,
        "seconds": round(window, 1),
        "checkouts": len(latencies),
        "checkouts_per_s": round(len(latencies) / window, 1),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "errors": tally.errors,
        # load-independent: what one checkout costs the API process (all its threads)
        "server_cpu_ms_per_checkout": round(1000 * cpu / max(1, len(latencies)), 1),
        "server_cpu_share": round(cpu / window, 2),  # 1.0 = one core busy all the time
        # the rest of the machine's CPU per checkout: the database (all of its processes:
        # includes other databases' work on a shared server) and the simulated tills
        "postgres_cpu_ms_per_checkout": round(1000 * postgres_cpu / max(1, len(latencies)), 1),
        "tills_cpu_ms_per_checkout": round(1000 * tills_cpu / max(1, len(latencies)), 1),
        "people_served": len(people.served),
        "index_publish_s": round(index_s, 1),
    }


DEFAULT_CONFIGS = "postgresql:1,postgresql:2,postgresql:4,sqlite:1"


def parse_configs(text: str) -> list[tuple[str, int]]:
    """ "backend:workers,..." as (backend, workers) pairs."""
    configs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        backend, _, workers = part.partition(":")
        if backend not in BACKENDS or not workers.isdigit() or int(workers) < 1:
            raise ValueError(
                f"{part!r}: give BACKEND:WORKERS, a backend of {', '.join(BACKENDS)} and 1 or more"
            )
        configs.append((backend, int(workers)))
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/cloud_load.py", description=__doc__)
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help=f"BACKEND:WORKERS runs, in order (default {DEFAULT_CONFIGS})",
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--people", type=int, default=120, help="distinct faces (LFW people)")
    parser.add_argument(
        "--enrolled",
        type=int,
        default=100_000,
        help="customers enrolled before the run (synthetic descriptors: distractors)",
    )
    parser.add_argument(
        "--returning", type=float, default=0.6, help="share of checkouts by someone served before"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record the server with py-spy into this speedscope file (per run: NAME-BACKEND-N)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        configs = parse_configs(args.configs)
    except ValueError as error:
        parser.error(str(error))
    if any(backend == "postgresql" for backend, _ in configs):
        from tests.cloud_fixtures import postgres_unavailable

        reason = postgres_unavailable()
        if reason is not None:
            print(f"PostgreSQL skipped: {reason}", file=sys.stderr)
            configs = [c for c in configs if c[0] != "postgresql"]
    faces = load_faces(args.people)
    rows = []
    for backend, workers in configs:
        profile = (
            args.profile.with_name(f"{args.profile.stem}-{backend}-{workers}{args.profile.suffix}")
            if args.profile is not None
            else None
        )
        rows.append(run_backend(backend, workers, faces, args, profile))
    headers = ["backend", "workers", "clients", "enrolled", "checkouts/s", "p50 ms", "p95 ms"]
    headers += ["p99 ms", "errors", "API CPU ms/checkout", "API cores", "PG CPU ms/checkout"]
    headers += ["tills CPU ms/checkout"]
    keys = ["backend", "workers", "clients", "enrolled", "checkouts_per_s", "p50_ms", "p95_ms"]
    keys += ["p99_ms", "errors", "server_cpu_ms_per_checkout", "server_cpu_share"]
    keys += ["postgres_cpu_ms_per_checkout", "tills_cpu_ms_per_checkout"]
    print(format_table(headers, [[row[k] for k in keys] for row in rows]))
    if args.json:
        four = next((r for r in rows if r["backend"] == "postgresql" and r["workers"] == 4), None)
        args.json.write_text(
            json.dumps({"runs": rows, "postgresql_4_workers": four}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
