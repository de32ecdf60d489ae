"""`storesight-cloud`: the multi-store HTTP service."""

from __future__ import annotations

import argparse
import sys
import time

from facelib.config import FaceLibSettings
from facelib.logs import configure_logging
from models.errors import ModelError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storesight-cloud", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-models", help="load and warm up the models the service runs")
    parser.parse_args(argv)
    configure_logging()
    try:
        return _check_models()
    except ModelError as error:
        print(f"storesight-cloud: error: {error}", file=sys.stderr)
        return 1


def _check_models() -> int:
    from facelib.age_gender import AgeEstimator, GenderEstimator
    from models.store import ModelStore

    store = ModelStore()
    runtime = FaceLibSettings().runtime
    for estimator_type in (AgeEstimator, GenderEstimator):
        started = time.perf_counter()
        estimator = estimator_type(store, runtime)
        estimator.warmup()
        elapsed = (time.perf_counter() - started) * 1000
        print(f"ok  {estimator.model_name:8} loaded and warmed up in {elapsed:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
