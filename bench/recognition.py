"""Recognition engine against exact search, Annoy and hnswlib, on synthetic dlib-like descriptors.

The population: customers with ~20 samples each (10-30) around a centre, 128-d float32 with
norms near 1, within-customer distances ~0.3-0.5 and between-customer ~0.75-1.0 (the measured
quantiles are printed); spread over 100 stores in 10 regions, each sample with a gender and
age-band estimate that is sometimes wrong. The queries: returning customers at their home store,
at another store of their region, in another region, and strangers (--mix), each with its own
gender and age estimates (wrong as often as --gender-error / --age-error say).

Every method answers every query (exact search: --exact-queries of them; its answers for all
queries come from one batched pass) and is compared with exact search over all samples:
recall@1 (same nearest sample) and agreement (same decision at the identify threshold: the
same customer, or "new" for both). The engine's recall@1 counts only queries that exact search
matches (it returns nothing otherwise). Speed-up is exact search's p50 over the method's, both
measured in this run; ram_MB counts arrays in memory plus index files mapped into it.

    python bench/recognition.py [--sizes 100000,1000000] [--queries 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
from annoy import AnnoyIndex
from numpy.typing import NDArray
from tqdm import tqdm

from cloud_api.recognition import GENDERS, EngineSettings, Match, RecognitionEngine, SampleMeta
from evaluation.tables import format_table
from facelib.config import FaceLibSettings
from storesight_common.logs import configure_logging

DIM = 128
STORES = 100
REGIONS = 10
KINDS = ("home", "region", "other-region", "stranger")
N_AGE_BANDS = 5
AGE_PRIOR = (0.06, 0.24, 0.32, 0.24, 0.14)
UNKNOWN_RATE = 0.02  # estimates that come back "unknown"
CROSSOVER_SIZES = (2_000, 5_000, 10_000, 15_000, 20_000, 50_000)
MB = 1e6

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
Row = dict[str, Any]


# --------------------------------------------------------------------------- the population


@dataclass
class Population:
    vectors: F32  # (n, DIM)
    sq_norms: F32
    customer: I64  # per sample
    store: I64
    gender: NDArray[np.int8]  # per sample: the estimate recorded at enrolment
    band: NDArray[np.int8]
    centres: F32  # per customer
    noise: F32  # per customer: per-dimension standard deviation of their samples
    home: I64
    true_gender: NDArray[np.int8]
    true_band: NDArray[np.int8]
    mean: F32
    spread: F32  # per dimension: standard deviation of centres


@dataclass
class Queries:
    vectors: F32
    kind: NDArray[np.int8]  # index into KINDS
    customer: I64  # -1 for strangers
    store: I64
    gender: list[str]
    band: NDArray[np.int8]


def region_of(store: I64 | int) -> Any:
    return np.asarray(store) // (STORES // REGIONS)


def estimate(
    rng: np.random.Generator,
    gender: NDArray[np.int8],
    band: NDArray[np.int8],
    gender_error: float,
    age_error: float,
) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    """Gender and age-band estimates: unknown 2% of the time, else wrong at the given rates
    (an age estimate off by one band, up or down)."""
    n = len(gender)
    g = gender.copy()
    u = rng.random(n)
    g[u < gender_error] = 1 - g[u < gender_error]
    g[u > 1 - UNKNOWN_RATE] = GENDERS.index("unknown")
    b = band.astype(np.int16)
    u = rng.random(n)
    off = u < age_error
    step = np.where(rng.random(n) < 0.5, -1, 1)
    step = np.where(b == 0, 1, np.where(b == N_AGE_BANDS - 1, -1, step))
    b[off] += step[off]
    b[u > 1 - UNKNOWN_RATE] = -1
    return g, b.astype(np.int8)


def generate(
    n_samples: int, rng: np.random.Generator, gender_error: float, age_error: float
) -> Population:
    """Customers around a common mean (dlib descriptors share one), centres spread along a
    decaying spectrum (real descriptors are far from isotropic), samples spread per customer."""
    spectrum = np.exp(-np.arange(DIM) / 45.0)
    spectrum *= np.sqrt(DIM / np.sum(spectrum**2))
    mean = rng.normal(0, 1, DIM)
    mean *= 0.75 / np.linalg.norm(mean)
    spread = (spectrum * 0.05).astype(np.float32)
    counts = rng.integers(10, 31, n_samples // 10 + 1)
    n_customers = int(np.searchsorted(np.cumsum(counts), n_samples)) + 1
    counts = counts[:n_customers]
    counts[-1] -= int(counts.sum()) - n_samples
    centres = (mean + rng.standard_normal((n_customers, DIM), np.float32) * spread).astype(
        np.float32
    )
    noise = rng.uniform(0.019, 0.030, n_customers).astype(np.float32)
    customer = np.repeat(np.arange(n_customers), counts)
    vectors = np.empty((n_samples, DIM), np.float32)
    for lo in range(0, n_samples, 100_000):
        c = customer[lo : lo + 100_000]
        vectors[lo : lo + len(c)] = centres[c] + (
            rng.standard_normal((len(c), DIM), np.float32) * noise[c, None]
        )
    home = rng.integers(0, STORES, n_customers)
    true_gender = rng.integers(0, 2, n_customers).astype(np.int8)
    true_band = rng.choice(N_AGE_BANDS, n_customers, p=AGE_PRIOR).astype(np.int8)
    gender, band = estimate(
        rng, true_gender[customer], true_band[customer], gender_error, age_error
    )
    return Population(
        vectors,
        np.einsum("ij,ij->i", vectors, vectors),
        customer.astype(np.int64),
        home[customer],
        gender,
        band,
        centres,
        noise,
        home,
        true_gender,
        true_band,
        mean.astype(np.float32),
        spread,
    )


def make_queries(
    pop: Population,
    count: int,
    mix: tuple[float, ...],
    rng: np.random.Generator,
    gender_error: float,
    age_error: float,
) -> Queries:
    """Fresh samples (not enrolled ones) of returning customers, and strangers."""
    kind = rng.choice(len(KINDS), count, p=np.asarray(mix) / sum(mix)).astype(np.int8)
    customer = rng.integers(0, len(pop.centres), count)
    home = pop.home[customer]
    per_region = STORES // REGIONS
    same_region = region_of(home) * per_region + (
        (home % per_region + rng.integers(1, per_region, count)) % per_region
    )
    other_region = (home + per_region * rng.integers(1, REGIONS, count)) % STORES
    store = np.select([kind == 0, kind == 1, kind == 2], [home, same_region, other_region])
    store = np.where(kind == 3, rng.integers(0, STORES, count), store)
    strangers = kind == 3
    centres = pop.centres[customer].copy()
    noise = pop.noise[customer].copy()
    centres[strangers] = pop.mean + (
        rng.standard_normal((int(strangers.sum()), DIM), np.float32) * pop.spread
    )
    noise[strangers] = rng.uniform(0.019, 0.030, int(strangers.sum()))
    noise *= rng.uniform(0.95, 1.15, count).astype(np.float32)  # a visit's own conditions
    vectors = (centres + rng.standard_normal((count, DIM), np.float32) * noise[:, None]).astype(
        np.float32
    )
    true_gender = np.where(strangers, rng.integers(0, 2, count), pop.true_gender[customer])
    true_band = np.where(
        strangers, rng.choice(N_AGE_BANDS, count, p=AGE_PRIOR), pop.true_band[customer]
    )
    gender, band = estimate(
        rng, true_gender.astype(np.int8), true_band.astype(np.int8), gender_error, age_error
    )
    return Queries(
        vectors,
        kind,
        np.where(strangers, -1, customer).astype(np.int64),
        store.astype(np.int64),
        [GENDERS[g] for g in gender.tolist()],
        band,
    )


# --------------------------------------------------------------------------- exact reference


@dataclass
class Truth:
    nearest: I64  # sample index
    distance: NDArray[np.float64]
    decision: I64  # customer id, or -1 for "new"


def exact_truth(pop: Population, queries: F32, threshold: float, desc: str) -> Truth:
    """Every query's nearest sample, batched over blocks of samples (one BLAS call each)."""
    n, block = len(pop.vectors), 65_536
    best = np.full(len(queries), np.inf, np.float32)
    arg = np.zeros(len(queries), np.int64)
    for lo in tqdm(range(0, n, block), desc=desc, unit="block", file=sys.stderr, leave=False):
        scores = pop.sq_norms[lo : lo + block][None, :] - 2.0 * (
            queries @ pop.vectors[lo : lo + block].T
        )
        i = scores.argmin(axis=1)
        s = scores[np.arange(len(queries)), i]
        better = s < best
        best[better], arg[better] = s[better], i[better] + lo
    diff = pop.vectors[arg] - queries
    distance = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    decision = np.where(distance < threshold, pop.customer[arg], -1)
    return Truth(arg, distance, decision)


def distance_quantiles(
    pop: Population, queries: Queries, truth: Truth, rng: np.random.Generator
) -> dict[str, list[float]]:
    qs = (0.01, 0.05, 0.5, 0.95, 0.99)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(pop.customer)) + 1])
    sizes = np.diff(np.concatenate([starts, [len(pop.customer)]]))
    c = rng.integers(0, len(starts), 20_000)
    a = starts[c] + rng.integers(0, sizes[c])
    b = starts[c] + (a - starts[c] + rng.integers(1, sizes[c])) % sizes[c]
    within = np.linalg.norm(pop.vectors[a] - pop.vectors[b], axis=1)
    i, j = rng.integers(0, len(pop.vectors), (2, 20_000))
    other = pop.customer[i] != pop.customer[j]
    between = np.linalg.norm(pop.vectors[i[other]] - pop.vectors[j[other]], axis=1)
    returning = queries.customer >= 0
    own = []
    for q in np.flatnonzero(returning)[:500]:
        c = queries.customer[q]  # samples are stored customer by customer
        rows = starts[c] + np.arange(sizes[c])
        own.append(np.linalg.norm(pop.vectors[rows] - queries.vectors[q], axis=1).min())
    return {
        "quantiles": list(qs),
        "within_customer": np.quantile(within, qs).round(3).tolist(),
        "between_customers": np.quantile(between, qs).round(3).tolist(),
        "returning_to_nearest_own_sample": np.quantile(own, qs).round(3).tolist(),
        "stranger_to_nearest_sample": np.quantile(truth.distance[~returning], qs).round(3).tolist(),
        "norms": np.quantile(np.sqrt(pop.sq_norms[:100_000]), qs).round(3).tolist(),
    }


# --------------------------------------------------------------------------- measuring


@dataclass
class Answers:
    """One method's top-1 answer per query (sample index or -1) and its time per query."""

    index: NDArray[np.int64]
    distance: NDArray[np.float64]
    ms: NDArray[np.float64]
    levels: list[str] = field(default_factory=list)


def timed(count: int, desc: str, search: Callable[[int], tuple[int, float, str]]) -> Answers:
    """Every query twice, in two passes; a query's time is the lower of its two.

    Two passes rather than back to back, so the second run does not find the first one's data
    in the CPU caches; the lower of two, so that a hiccup of a shared machine (another process,
    a page fault) is not counted as the method's latency.
    """
    index = np.full(count, -1, np.int64)
    distance = np.full(count, np.inf)
    ms = np.full(count, np.inf)
    levels = [""] * count
    with tqdm(total=2 * count, desc=desc, unit="query", file=sys.stderr, leave=False) as bar:
        for _ in range(2):
            for q in range(count):
                start = time.perf_counter_ns()
                i, d, level = search(q)
                ms[q] = min(ms[q], (time.perf_counter_ns() - start) / 1e6)
                index[q], distance[q], levels[q] = i, d, level
                bar.update()
    return Answers(index, distance, ms, levels)


def figures(
    answers: Answers,
    pop: Population,
    truth: Truth,
    threshold: float,
    exact_p50: float,
    engine: bool = False,
) -> Row:
    n = len(answers.index)
    found = answers.index >= 0
    decision = np.where(
        found & (answers.distance < threshold), pop.customer[np.maximum(answers.index, 0)], -1
    )
    agree = decision == truth.decision[:n]
    matched = truth.decision[:n] >= 0
    same = answers.index == truth.nearest[:n]
    recall = float(same[matched].mean()) if engine else float(same.mean())
    p50 = float(np.percentile(answers.ms, 50))
    return {
        "p50_ms": p50,
        "p99_ms": float(np.percentile(answers.ms, 99)),
        "speedup": exact_p50 / p50,
        "recall_at_1": recall,
        "agreement": float(agree.mean()),
        "queries": n,
    }


@contextmanager
def build_timer(row: Row) -> Iterator[None]:
    gc.collect()
    start = time.perf_counter()
    yield
    row["build_s"] = time.perf_counter() - start


def measure_exact(pop: Population, queries: Queries, count: int, truth: Truth) -> Answers:
    def search(q: int) -> tuple[int, float, str]:
        v = queries.vectors[q]
        scores = pop.vectors @ v
        scores *= -2.0
        scores += pop.sq_norms
        i = int(scores.argmin())
        return i, float(np.linalg.norm(pop.vectors[i] - v)), ""

    answers = timed(count, "exact search", search)
    mismatched = int((answers.index != truth.nearest[:count]).sum())
    if mismatched:
        print(f"note: per-query and batched exact search disagree on {mismatched} ties")
    return answers


def add_to_annoy(index: AnnoyIndex, vectors: F32, desc: str) -> None:
    chunk = 8192
    for lo in tqdm(
        range(0, len(vectors), chunk), desc=desc, unit="chunk", file=sys.stderr, leave=False
    ):
        for i, row in enumerate(vectors[lo : lo + chunk].tolist(), start=lo):
            index.add_item(i, row)


def measure_annoy(
    pop: Population,
    queries: Queries,
    truth: Truth,
    threshold: float,
    exact_p50: float,
    trees: int,
    search_ks: list[int],
    candidates: int,
    workdir: Path,
) -> list[Row]:
    n = len(pop.vectors)
    path = workdir / "global.ann"
    built: Row = {}
    with build_timer(built):
        index = AnnoyIndex(DIM, "euclidean")
        index.set_seed(42)
        add_to_annoy(index, pop.vectors, f"annoy {trees} trees: add")
        index.build(trees, os.cpu_count() or 1)
        index.save(str(path))
    index = AnnoyIndex(DIM, "euclidean")
    index.load(str(path))
    size = path.stat().st_size
    rows = []
    for search_k in search_ks:

        def search(q: int, search_k: int = search_k) -> tuple[int, float, str]:
            items, dists = index.get_nns_by_vector(
                queries.vectors[q].tolist(), candidates, search_k, True
            )
            return (items[0], dists[0], "") if items else (-1, float("inf"), "")

        answers = timed(len(queries.kind), f"annoy {trees}/{search_k}", search)
        rows.append(
            {
                "method": "annoy global",
                "n": n,
                "params": f"trees={trees} search_k={search_k}",
                "n_trees": trees,
                "search_k": search_k,
                "build_s": built["build_s"],
                "disk_bytes": size,
                "ram_bytes": size,
                **figures(answers, pop, truth, threshold, exact_p50),
                "_answers": answers,
            }
        )
    index.unload()
    path.unlink()
    return rows


def measure_hnsw(
    pop: Population,
    queries: Queries,
    truth: Truth,
    threshold: float,
    exact_p50: float,
    m: int,
    ef_construction: int,
    efs: list[int],
    workdir: Path,
) -> list[Row]:
    n = len(pop.vectors)
    built: Row = {}
    with build_timer(built):
        index = hnswlib.Index(space="l2", dim=DIM)
        index.init_index(max_elements=n, M=m, ef_construction=ef_construction, random_seed=42)
        index.set_num_threads(os.cpu_count() or 1)
        chunk = 20_000
        for lo in tqdm(
            range(0, n, chunk),
            desc=f"hnswlib M={m}: add",
            unit="chunk",
            file=sys.stderr,
            leave=False,
        ):
            index.add_items(pop.vectors[lo : lo + chunk], np.arange(lo, min(n, lo + chunk)))
    path = workdir / "hnsw.bin"
    index.save_index(str(path))
    size = path.stat().st_size
    path.unlink()
    index.set_num_threads(1)
    rows = []
    for ef in efs:
        index.set_ef(ef)

        def search(q: int) -> tuple[int, float, str]:
            labels, d2 = index.knn_query(queries.vectors[q : q + 1], k=1)
            return int(labels[0, 0]), float(np.sqrt(max(d2[0, 0], 0.0))), ""

        answers = timed(len(queries.kind), f"hnswlib ef={ef}", search)
        rows.append(
            {
                "method": "hnswlib",
                "n": n,
                "params": f"M={m} ef_c={ef_construction} ef={ef}",
                "build_s": built["build_s"],
                "disk_bytes": size,
                "ram_bytes": size,
                **figures(answers, pop, truth, threshold, exact_p50),
                "_answers": answers,
            }
        )
    return rows


def load_engine(
    engine: RecognitionEngine, pop: Population, buffered: int, label: str
) -> dict[str, float]:
    """add_many everything but the last `buffered` samples, rebuild, then add those one by
    one (so queries also search the exact buffers)."""
    n = len(pop.vectors)
    bulk = n - buffered
    chunk = 100_000
    start = time.perf_counter()
    for lo in tqdm(
        range(0, bulk, chunk), desc=f"{label}: add_many", unit="chunk", file=sys.stderr, leave=False
    ):
        hi = min(bulk, lo + chunk)
        engine.add_many(np.arange(lo, hi), pop.vectors[lo:hi], metas(pop, lo, hi))
    with tqdm(desc=f"{label}: rebuild", unit="partition", file=sys.stderr, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        engine.rebuild(progress)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(bulk, n):
        engine.add(i, pop.vectors[i], metas(pop, i, i + 1)[0])
    add_us = (time.perf_counter() - start) / max(1, buffered) * 1e6
    return {"build_s": build_s, "add_us": add_us}


def metas(pop: Population, lo: int, hi: int) -> list[SampleMeta]:
    stores = pop.store[lo:hi].tolist()
    return [
        SampleMeta(c, s // (STORES // REGIONS), s, GENDERS[g], b)
        for c, s, g, b in zip(
            pop.customer[lo:hi].tolist(),
            stores,
            pop.gender[lo:hi].tolist(),
            pop.band[lo:hi].tolist(),
            strict=True,
        )
    ]


def measure_engine(
    pop: Population,
    queries: Queries,
    truth: Truth,
    threshold: float,
    exact_p50: float,
    settings: EngineSettings,
    buffered: int,
    label: str,
    workdir: Path,
) -> Row:
    index_dir = workdir / f"engine-{settings.region_level}"
    engine = RecognitionEngine(settings, index_dir)
    loaded = load_engine(engine, pop, buffered, label)
    stats = engine.stats()

    def search(q: int) -> tuple[int, float, str]:
        store = int(queries.store[q])
        match: Match | None = engine.identify(
            queries.vectors[q],
            region_id=store // (STORES // REGIONS),
            store_id=store,
            gender=queries.gender[q],
            age_band=int(queries.band[q]),
            threshold=threshold,
        )
        if match is None:
            return -1, float("inf"), "none"
        return match.sample_id, match.distance, match.level

    answers = timed(len(queries.kind), f"{label}: identify", search)
    engine.close()
    for path in index_dir.iterdir():
        path.unlink()
    index_dir.rmdir()
    params = (
        f"region={settings.region_level} trees={settings.n_trees} "
        f"search_k={settings.search_k} exact<={settings.exact_max_size}"
    )
    return {
        "method": label,
        "n": len(pop.vectors),
        "params": params,
        "settings": settings.model_dump(),
        "build_s": loaded["build_s"],
        "add_us": loaded["add_us"],
        "buffered": buffered,
        "disk_bytes": int(stats["index_bytes"]),
        "ram_bytes": int(stats["memory_bytes"]) + int(stats["index_bytes"]),
        "annoy_partitions": int(stats["annoy_partitions"]),
        "exact_partitions": int(stats["exact_partitions"]),
        **figures(answers, pop, truth, threshold, exact_p50, engine=True),
        "levels": {lv: answers.levels.count(lv) for lv in sorted(set(answers.levels))},
        "_answers": answers,
    }


def crossover(
    pop: Population, settings: EngineSettings, rng: np.random.Generator, count: int
) -> list[Row]:
    """Per partition size: exact numpy search against Annoy (the engine's n_trees and search_k).

    Queries rotate over several disjoint partitions of each size, so exact search does not
    run from a warm cache as it would not in a service with many stores.
    """
    rows = []
    for size in tqdm(
        CROSSOVER_SIZES, desc="exact vs annoy", unit="size", file=sys.stderr, leave=False
    ):
        parts = min(16, len(pop.vectors) // size)
        if parts == 0:
            continue
        annoy_parts = min(3, parts)
        indexes = []
        for p in range(annoy_parts):
            index = AnnoyIndex(DIM, "euclidean")
            index.set_seed(settings.seed)
            for i, row in enumerate(pop.vectors[p * size : (p + 1) * size].tolist()):
                index.add_item(i, row)
            index.build(settings.n_trees, os.cpu_count() or 1)
            indexes.append(index)
        picks = rng.integers(0, size, count)
        which = np.arange(count) % parts
        rows_q = which * size + picks
        c = pop.customer[rows_q]
        q = (
            pop.centres[c] + rng.standard_normal((count, DIM), np.float32) * pop.noise[c, None]
        ).astype(np.float32)
        exact_ms, annoy_ms, hits = [], [], 0
        annoy_n = 0
        for k in range(count):
            lo = which[k] * size
            block, norms = pop.vectors[lo : lo + size], pop.sq_norms[lo : lo + size]
            start = time.perf_counter_ns()
            scores = block @ q[k]
            scores *= -2.0
            scores += norms
            best = int(scores.argmin())
            exact_ms.append((time.perf_counter_ns() - start) / 1e6)
            if which[k] < annoy_parts:
                start = time.perf_counter_ns()
                items = indexes[which[k]].get_nns_by_vector(
                    q[k].tolist(), settings.candidates, settings.search_k
                )
                annoy_ms.append((time.perf_counter_ns() - start) / 1e6)
                hits += bool(items) and items[0] == best
                annoy_n += 1
        rows.append(
            {
                "size": size,
                "exact_p50_ms": float(np.percentile(exact_ms, 50)),
                "exact_p99_ms": float(np.percentile(exact_ms, 99)),
                "annoy_p50_ms": float(np.percentile(annoy_ms, 50)),
                "annoy_p99_ms": float(np.percentile(annoy_ms, 99)),
                "annoy_recall_at_1": hits / annoy_n,
            }
        )
    return rows


def by_kind(
    rows: list[Row],
    queries: Queries,
    truth: Truth,
    pop: Population,
    threshold: float,
    exact: Answers,
) -> list[Row]:
    """p50/p99 and agreement per query kind, for the engine rows and the global rows given."""
    out = []
    for row in [{"method": "exact", "params": "", "_answers": exact}, *rows]:
        answers: Answers = row["_answers"]
        n = len(answers.index)
        decision = np.where(
            (answers.index >= 0) & (answers.distance < threshold),
            pop.customer[np.maximum(answers.index, 0)],
            -1,
        )
        agree = decision == truth.decision[:n]
        for k, kind in enumerate(KINDS):
            mask = queries.kind[:n] == k
            if not mask.any():
                continue
            levels = [answers.levels[i] for i in np.flatnonzero(mask)] if answers.levels else []
            common = max(set(levels), key=levels.count) if levels and levels[0] else "-"
            out.append(
                {
                    "method": row["method"],
                    "params": row["params"],
                    "kind": kind,
                    "queries": int(mask.sum()),
                    "p50_ms": float(np.percentile(answers.ms[mask], 50)),
                    "p99_ms": float(np.percentile(answers.ms[mask], 99)),
                    "agreement": float(agree[mask].mean()),
                    "exact_matched": float((truth.decision[:n][mask] >= 0).mean()),
                    "usual_level": common,
                }
            )
    return out


# --------------------------------------------------------------------------- main


def run_size(n: int, args: argparse.Namespace, workdir: Path, threshold: float) -> Row:
    rng = np.random.default_rng([args.seed, n])
    started = time.perf_counter()
    pop = generate(n, rng, args.gender_error, args.age_error)
    queries = make_queries(
        pop, args.queries, tuple(args.mix), rng, args.gender_error, args.age_error
    )
    truth = exact_truth(pop, queries.vectors, threshold, f"exact truth N={n}")
    quantiles = distance_quantiles(pop, queries, truth, rng)
    print(
        f"\nN = {n:,} samples, {len(pop.centres):,} customers, {STORES} stores in {REGIONS} "
        f"regions; {args.queries} queries ({', '.join(KINDS)} = {args.mix})"
    )
    print(
        format_table(
            ["distance", *(f"q{int(q * 100):02d}" for q in quantiles["quantiles"])],
            [[k, *v] for k, v in quantiles.items() if k != "quantiles"],
        )
    )
    print(
        f"returning queries matched by exact search at {threshold}: "
        f"{float((truth.decision[queries.customer >= 0] >= 0).mean()):.3f}; "
        f"strangers matched: {float((truth.decision[queries.customer < 0] >= 0).mean()):.3f}"
    )

    exact_count = min(args.queries, args.exact_queries)
    exact = measure_exact(pop, queries, exact_count, truth)
    exact_p50 = float(np.percentile(exact.ms, 50))
    rows: list[Row] = [
        {
            "method": "exact (reference)",
            "n": n,
            "params": "numpy matvec",
            "build_s": 0.0,
            "disk_bytes": 0,
            "ram_bytes": pop.vectors.nbytes + pop.sq_norms.nbytes,
            **figures(exact, pop, truth, threshold, exact_p50),
            "_answers": exact,
        }
    ]
    engine_settings = EngineSettings(build_jobs=os.cpu_count() or 1)
    search_ks = sorted({*args.search_k, engine_settings.search_k})
    for trees in sorted({*args.trees, engine_settings.n_trees}):
        rows += measure_annoy(
            pop,
            queries,
            truth,
            threshold,
            exact_p50,
            trees,
            search_ks,
            engine_settings.candidates,
            workdir,
        )
    if not args.no_hnsw:
        rows += measure_hnsw(pop, queries, truth, threshold, exact_p50, 16, 100, args.ef, workdir)
    buffered = int(n * args.buffered)
    engines = [("engine", engine_settings)]
    if not args.no_variants:
        engines += [
            ("engine variant", variant(engine_settings, region_level=level))
            for level in ("index", "off")
            if level != engine_settings.region_level
        ]
    for label, settings in engines:
        rows.append(
            measure_engine(
                pop, queries, truth, threshold, exact_p50, settings, buffered, label, workdir
            )
        )
    global_same = [
        r
        for r in rows
        if r["method"] == "annoy global"
        and r["n_trees"] == engine_settings.n_trees
        and r["search_k"] == engine_settings.search_k
    ]
    kinds = by_kind(
        global_same + [r for r in rows if r["method"].startswith("engine")],
        queries,
        truth,
        pop,
        threshold,
        exact,
    )
    return {
        "n": n,
        "customers": len(pop.centres),
        "distances": quantiles,
        "rows": rows,
        "by_kind": kinds,
        "seconds": time.perf_counter() - started,
        "_pop": pop,
    }


def print_tables(result: Row, threshold: float) -> None:
    n = result["n"]
    print(f"\nN = {n:,}: every method against exact search (threshold {threshold})")
    headers = [
        "method",
        "params",
        "build_s",
        "disk_MB",
        "ram_MB",
        "p50_ms",
        "p99_ms",
        "speedup",
        "recall@1",
        "agreement",
    ]
    print(
        format_table(
            headers,
            [
                [
                    r["method"],
                    r["params"],
                    r["build_s"],
                    r["disk_bytes"] / MB,
                    r["ram_bytes"] / MB,
                    r["p50_ms"],
                    r["p99_ms"],
                    f"{r['speedup']:.1f}x",
                    r["recall_at_1"],
                    r["agreement"],
                ]
                for r in result["rows"]
            ],
        )
    )
    for r in result["rows"]:
        if r["method"].startswith("engine"):
            print(
                f"  engine ({r['params']}): {r['annoy_partitions']} Annoy / "
                f"{r['exact_partitions']} exact partitions, {r['buffered']} samples in "
                f"buffers, add {r['add_us']:.0f} us; levels {r['levels']}"
            )
    print(
        "  (the engine's recall@1 counts queries exact search matches; it may rightly return "
        "another sample of the same customer, one whose recorded estimates fit the query)"
    )
    print(f"\nN = {n:,}: partitioned (engine) against one global index, by query kind")
    print(
        format_table(
            [
                "method",
                "params",
                "kind",
                "queries",
                "p50_ms",
                "p99_ms",
                "agreement",
                "exact_matched",
                "usual_level",
            ],
            [
                [
                    r["method"],
                    r["params"],
                    r["kind"],
                    r["queries"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["agreement"],
                    r["exact_matched"],
                    r["usual_level"],
                ]
                for r in result["by_kind"]
            ],
        )
    )


def variant(settings: EngineSettings, **changes: object) -> EngineSettings:
    return EngineSettings.model_validate({**settings.model_dump(), **changes})


def parse_ints(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/recognition.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=parse_ints,
        default=[100_000, 1_000_000],
        help="samples in the population, comma-separated (default 1e5,1e6)",
    )
    parser.add_argument("--queries", type=int, default=2000, help="queries per size")
    parser.add_argument(
        "--exact-queries",
        type=int,
        default=200,
        help="queries timed on exact search (its answers for all queries are "
        "computed in one batched pass)",
    )
    parser.add_argument(
        "--mix",
        type=lambda t: [float(v) for v in t.split(",")],
        default=[70.0, 10.0, 5.0, 15.0],
        help="percent of queries: home, same region, other region, stranger",
    )
    parser.add_argument("--gender-error", type=float, default=0.10)
    parser.add_argument(
        "--age-error", type=float, default=0.30, help="how often an age estimate is one band off"
    )
    parser.add_argument(
        "--buffered",
        type=float,
        default=0.005,
        help="fraction of samples added after the engine's rebuild, so they "
        "sit in its exact buffers while it is queried",
    )
    parser.add_argument(
        "--trees",
        type=parse_ints,
        default=[10, 50],
        help="Annoy global n_trees (the engine's default is added)",
    )
    parser.add_argument(
        "--search-k",
        type=parse_ints,
        default=[1000, 10000],
        help="Annoy global search_k (the engine's default is added)",
    )
    parser.add_argument("--ef", type=parse_ints, default=[16, 32, 64], help="hnswlib ef")
    parser.add_argument("--no-hnsw", action="store_true", help="skip hnswlib")
    parser.add_argument(
        "--no-variants", action="store_true", help="only the engine with default settings"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the figures as JSON"
    )
    args = parser.parse_args(argv)
    if len(args.mix) != len(KINDS) or min(args.mix) < 0 or sum(args.mix) <= 0:
        parser.error(f"--mix needs {len(KINDS)} non-negative percentages")
    if args.queries < 1 or args.exact_queries < 1 or not args.sizes:
        parser.error("--queries, --exact-queries and --sizes must be positive")
    configure_logging(level="WARNING")
    threshold = FaceLibSettings().recognition.identify_threshold
    print(
        f"recognition bench: seed {args.seed}, {os.cpu_count()} CPUs, identify threshold "
        f"{threshold}, engine defaults {EngineSettings().model_dump()}"
    )

    started = time.perf_counter()
    results = []
    cross: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="recognition-bench-") as tmp:
        for n in sorted(args.sizes):
            result = run_size(n, args, Path(tmp), threshold)
            print_tables(result, threshold)
            if n == max(args.sizes):
                settings = EngineSettings()
                cross = crossover(result["_pop"], settings, np.random.default_rng(args.seed), 500)
                print(
                    f"\nexact vs Annoy by partition size (Annoy: trees={settings.n_trees} "
                    f"search_k={settings.search_k}; engine exact up to "
                    f"{settings.exact_max_size})"
                )
                print(
                    format_table(
                        [
                            "size",
                            "exact_p50_ms",
                            "exact_p99_ms",
                            "annoy_p50_ms",
                            "annoy_p99_ms",
                            "annoy_recall@1",
                        ],
                        [
                            [
                                c["size"],
                                c["exact_p50_ms"],
                                c["exact_p99_ms"],
                                c["annoy_p50_ms"],
                                c["annoy_p99_ms"],
                                c["annoy_recall_at_1"],
                            ]
                            for c in cross
                        ],
                    )
                )
            del result["_pop"]
            results.append(result)
            gc.collect()

    largest = results[-1]
    engine = next(r for r in largest["rows"] if r["method"] == "engine")
    print(
        f"\nengine at N = {largest['n']:,}: p99 {engine['p99_ms']:.2f} ms (target <= 5), "
        f"agreement with exact search {engine['agreement']:.4f} (target >= 0.995); "
        f"whole run {time.perf_counter() - started:.0f} s"
    )
    if args.json is not None:
        document = {
            "engine_p99_ms": engine["p99_ms"],
            "engine_agreement": engine["agreement"],
            "engine_n": largest["n"],
            "threshold": threshold,
            "seed": args.seed,
            "mix": dict(zip(KINDS, args.mix, strict=True)),
            "methods": [
                {k: v for k, v in r.items() if not k.startswith("_")}
                for res in results
                for r in res["rows"]
            ],
            "by_kind": [dict(r, n=res["n"]) for res in results for r in res["by_kind"]],
            "distances": {str(res["n"]): res["distances"] for res in results},
            "exact_vs_annoy_by_size": cross,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
