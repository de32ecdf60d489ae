"""SQL statements per checkout, counted in process through the real app.

    python bench/checkout_statements.py [--backend postgresql|sqlite] [--checkouts 40]
                                        [--enrolled 2000] [--json FILE]

The app (`create_app`, age/gender off) on a throwaway database (PostgreSQL on
STORESIGHT_TEST_POSTGRES_URL, or SQLite in a temp dir) with `--enrolled` synthetic customers,
and `--checkouts` checkouts posted through FastAPI's TestClient: the first photo of 12 LFW
people, half of the checkouts by someone already served (as in `bench/cloud_load.py`). Every
statement the engine sends while a checkout is answered is counted (SQLAlchemy's
`before_cursor_execute`), by the card's status. Background threads (index syncing, rollups)
run too, so a count may include one of their reads: compare means, not single checkouts.

JSON: {"backend", "new": {"checkouts", "mean"}, "returning": {...}, "statements": {status:
[the last checkout's statements, first 110 characters]}}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cloud_load  # noqa: E402
from cloud_api.api.app import create_app  # noqa: E402
from cloud_api.settings import CloudSettings  # noqa: E402
from evaluation.tables import format_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/checkout_statements.py", description=__doc__)
    parser.add_argument("--backend", choices=cloud_load.BACKENDS, default="postgresql")
    parser.add_argument("--checkouts", type=int, default=40)
    parser.add_argument("--enrolled", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from fastapi.testclient import TestClient

    faces = cloud_load.load_faces(12)
    statements: list[str] = []

    def count(*event_args: Any) -> None:
        statements.append(" ".join(str(event_args[2]).split())[:110])

    by_status: dict[str, list[list[str]]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        cloud_load.database(args.backend, Path(tmp)) as url,
    ):
        keys = cloud_load.setup_database(url, 1)
        cloud_load.enrol_synthetic(url, args.enrolled)
        settings = CloudSettings(
            database_url=url,
            index_dir=Path(tmp) / "index",
            auto_migrate=False,
            estimate_demographics=False,
        )
        event.listen(Engine, "before_cursor_execute", count)
        try:
            with TestClient(create_app(settings)) as client:
                rng = np.random.default_rng(0)
                people = cloud_load.People(faces, 0.5, random.Random(0))
                headers = {"X-API-Key": keys[0], "Content-Type": "application/json"}
                for n in range(args.checkouts):
                    body = cloud_load.checkout_body(faces[people.next()], rng, 0, n)
                    statements.clear()
                    answer = client.post("/v1/checkouts", content=body, headers=headers)
                    answer.raise_for_status()
                    status = str(answer.json()["card"]["status"])
                    by_status.setdefault(status, []).append(list(statements))
        finally:
            event.remove(Engine, "before_cursor_execute", count)
    rows = [
        [status, len(runs), round(sum(map(len, runs)) / len(runs), 1)]
        for status, runs in sorted(by_status.items())
    ]
    print(format_table(["card status", "checkouts", "statements (mean)"], rows))
    if args.json:
        result: dict[str, Any] = {"backend": args.backend}
        for status, runs in by_status.items():
            result[status] = {"checkouts": len(runs), "mean": sum(map(len, runs)) / len(runs)}
        result["statements"] = {status: runs[-1] for status, runs in by_status.items()}
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
