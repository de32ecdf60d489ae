"""The open-set decision against the bare engine search it is built on, at chain scale.

`Gallery.decide` (what every checkout and sighting now runs: fuse a visit's shots, find the
customers near it at each level, score the nearest two templates, compare with the policy's
size-dependent thresholds) is timed against `RecognitionEngine.identify` (one search for one
shot: the reference, the old per-frame decision) on the same engine, in the same run, over
the synthetic dlib-like population of `bench/recognition.py` (customers with 10-30 samples in
100 stores and 10 regions). Queries: visits of 8 shots of returning customers at their home
store, and of strangers. Also: how long loading the samples and templates takes, and the
templates' memory.

    python bench/decision.py [--sizes 100000,1000000] [--queries 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.recognition import REGIONS, STORES, generate, metas  # noqa: E402
from cloud_api.recognition import EngineSettings, RecognitionEngine  # noqa: E402
from cloud_api.recognition.gallery import Gallery, Shot, Visit  # noqa: E402
from cloud_api.recognition.policy import DecisionPolicy  # noqa: E402
from evaluation.tables import format_table  # noqa: E402
from storesight_common.logs import configure_logging  # noqa: E402

SHOTS = 8
CHUNK = 100_000


def load(gallery: Gallery, population: Any) -> float:
    started = time.perf_counter()
    n = len(population.vectors)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        gallery.add_samples(
            list(range(lo, hi)),
            population.vectors[lo:hi],
            metas(population, lo, hi),
            [0.8] * (hi - lo),
            [False] * (hi - lo),
        )
        print(f"  loaded {hi:,} of {n:,} samples", file=sys.stderr)
    gallery.engine.rebuild()
    return time.perf_counter() - started


def visits(population: Any, count: int, rng: np.random.Generator) -> list[tuple[str, Visit]]:
    out: list[tuple[str, Visit]] = []
    customers = len(population.centres)
    for i in range(count):
        stranger = i % 2 == 1
        if stranger:
            centre = (
                population.mean + rng.standard_normal(128).astype(np.float32) * population.spread
            )
            noise, store = 0.025, int(rng.integers(0, STORES))
        else:
            who = int(rng.integers(0, customers))
            centre, noise, store = (
                population.centres[who],
                population.noise[who],
                population.home[who],
            )
        shots = [
            Shot((centre + rng.standard_normal(128) * noise).astype(np.float32), 0.8)
            for _ in range(SHOTS)
        ]
        out.append(
            (
                "stranger" if stranger else "returning",
                Visit(shots, store // (STORES // REGIONS), int(store)),
            )
        )
    return out


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = np.sort(np.asarray(values))
    return float(np.percentile(ordered, 50)), float(np.percentile(ordered, 99))


def run_size(n: int, queries: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    population = generate(n, rng, 0.1, 0.3)
    gallery = Gallery(RecognitionEngine(EngineSettings(), None), DecisionPolicy())
    load_s = load(gallery, population)
    engine = gallery.engine
    threshold = 0.443
    reference: list[float] = []
    decided: list[float] = []
    accepted = {"returning": 0, "stranger": 0}
    kinds = {"returning": 0, "stranger": 0}
    for kind, visit in visits(population, queries, rng):
        started = time.perf_counter()
        engine.identify(
            visit.shots[0].vector,
            region_id=visit.region_id,
            store_id=visit.store_id,
            gender="unknown",
            age_band=-1,
            threshold=threshold,
        )
        reference.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        decision = gallery.decide(visit)
        decided.append((time.perf_counter() - started) * 1000)
        kinds[kind] += 1
        accepted[kind] += decision.returning is not None
    engine.close()
    ref50, ref99 = percentiles(reference)
    dec50, dec99 = percentiles(decided)
    return {
        "samples": n,
        "customers": gallery.customers(),
        "load_s": round(load_s, 1),
        "template_MB": round(gallery.customers() * 128 * 8 / 1e6, 1),
        "identify_p50_ms": round(ref50, 3),
        "identify_p99_ms": round(ref99, 3),
        "decide_p50_ms": round(dec50, 3),
        "decide_p99_ms": round(dec99, 3),
        "p50_ratio": round(dec50 / ref50, 2),
        "returning_accepted": round(accepted["returning"] / max(1, kinds["returning"]), 3),
        "strangers_accepted": round(accepted["stranger"] / max(1, kinds["stranger"]), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")
    rows = [run_size(int(s), args.queries, args.seed) for s in args.sizes.split(",") if s]
    headers = list(rows[0])
    print(
        "Gallery.decide (visit of 8 shots, templates, margin, thresholds) against "
        "RecognitionEngine.identify (one shot; reference), same engine, same run"
    )
    print(format_table(headers, [[r[h] for h in headers] for r in rows]))
    print(
        "(accept rates on synthetic descriptors describe the generator, not real faces: "
        "storesight-eval openset measures those)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
