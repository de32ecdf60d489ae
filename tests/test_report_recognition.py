"""The recognition-quality report against figures worked out by hand, on SQLite and PostgreSQL.

Two stores (A in region North, B in South) and seventeen face decisions: fifteen in the two
weeks of the window (Mon 2 - Sun 15 March 2026) and one just outside it on each side. The
customer ids are plain numbers: `recognition_decisions` keeps them without a foreign key.

    id   store day  time   outcome          candidate truth (source)  had_face cashier
    a1   A     2    10:00  member           101       101 loyalty     yes      -
    a2   A     3    11:00  returning        102       103 payment     yes      -          mismatch
    a3   A     4    12:00  possible_member  104       -               -        rejected
    a4   A     5    13:00  possible_member  105       105 cashier     yes      confirmed
    a5   A     6    14:00  new              -         106 loyalty     no       -          no face
    a6   A     7    15:00  no_face          -         -               -        -
    a7   A     8    23:30  new              -         107 payment     yes      -          Sunday
    a8   A     10   09:00  child            -         -               -        -
    a9   A     11   10:00  member           108       -               -        -
    a10  A     15   23:59  returning        109       109 payment     yes      -          Sunday
    b1   B     2    09:00  no_face          -         -               -        -
    b2   B     9    00:00  member           110       111 loyalty     unknown  -          mismatch
    b3   B     12   10:00  possible_member  112       113 loyalty     yes      rejected   mismatch
    b4   B     13   10:00  new              -         -               -        -
    b5   B     14   10:00  returning        115       115 payment     yes      -
    x1   A     1    23:30  member           116       117 loyalty     yes      -          before
    x2   B     16   00:00  member           118       119 loyalty     yes      -          after

(day = day of March 2026, UTC; x1 is Sunday 1 March, of the week of 23 February.)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import admin
from cloud_api.db.models import RecognitionDecision
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.reports import REPORTS, run_report
from cloud_api.reports.recognition import COLUMNS
from cloud_api.settings import CloudSettings
from contract import REPORT_NAMES, Report, ReportFilters
from tests.cloud_fixtures import migrated_url  # noqa: F401
from tests.cloud_server import serve

START, END = date(2026, 3, 2), date(2026, 3, 15)
PASSWORD = "correct horse battery"
WEEK1, WEEK2 = "2026-03-02", "2026-03-09"

# store, day of March 2026, hour, minute (UTC), outcome, candidate, truth, source,
# had_face, cashier
Decision = tuple[
    str, int, int, int, str, int | None, int | None, str | None, bool | None, str | None
]
DECISIONS: list[Decision] = [
    ("A", 2, 10, 0, "member", 101, 101, "loyalty", True, None),
    ("A", 3, 11, 0, "returning", 102, 103, "payment", True, None),
    ("A", 4, 12, 0, "possible_member", 104, None, None, None, "rejected"),
    ("A", 5, 13, 0, "possible_member", 105, 105, "cashier", True, "confirmed"),
    ("A", 6, 14, 0, "new", None, 106, "loyalty", False, None),
    ("A", 7, 15, 0, "no_face", None, None, None, None, None),
    ("A", 8, 23, 30, "new", None, 107, "payment", True, None),
    ("A", 10, 9, 0, "child", None, None, None, None, None),
    ("A", 11, 10, 0, "member", 108, None, None, None, None),
    ("A", 15, 23, 59, "returning", 109, 109, "payment", True, None),
    ("B", 2, 9, 0, "no_face", None, None, None, None, None),
    ("B", 9, 0, 0, "member", 110, 111, "loyalty", None, None),
    ("B", 12, 10, 0, "possible_member", 112, 113, "loyalty", True, "rejected"),
    ("B", 13, 10, 0, "new", None, None, None, None, None),
    ("B", 14, 10, 0, "returning", 115, 115, "payment", True, None),
    ("A", 1, 23, 30, "member", 116, 117, "loyalty", True, None),  # x1, before the window
    ("B", 16, 0, 0, "member", 118, 119, "loyalty", True, None),  # x2, after it
]

# A, week 1 (a1-a7):
#   decisions a1 a2 a3 a4 a5 a7 = 6 (a6 no face); accepted a1 a2 a3 a4 = 4;
#   possible members a3 a4 = 2; confirmed a4 = 1; rejected a3 = 1;
#   with truth a1 a2 a4 a5 a7 (truth) + a3 (cashier) = 6;
#   false accepts a2 (pointed at 102, was 103) + a3 (rejected) = 2 -> 2/6 = 0.3333;
#   findable a1 a2 a4 a7 = 4 (a5's customer had no face); false rejects a2 (accepted the
#   wrong customer) + a7 (not accepted) = 2 -> 2/4 = 0.5
A1 = [WEEK1, "A", "Store A", 6, 4, 2, 1, 1, 6, 2, 0.3333, 4, 2, 0.5]
# B, week 1: b1 alone, no face: every count 0, no rates
B1 = [WEEK1, "B", "Store B", 0, 0, 0, 0, 0, 0, 0, None, 0, 0, None]
# A, week 2 (a8-a10; a10 is Sunday 15 March 23:59, still this week):
#   decisions a8 a9 a10 = 3; accepted a9 a10 = 2; with truth a10 = 1; false accepts 0 ->
#   0/1 = 0.0; findable a10 = 1, found -> 0/1 = 0.0
A2 = [WEEK2, "A", "Store A", 3, 2, 0, 0, 0, 1, 0, 0.0, 1, 0, 0.0]
# B, week 2 (b2-b5; b2 is Monday 9 March 00:00, this week):
#   decisions 4; accepted b2 b3 b5 = 3; possible member b3 = 1; rejected b3 = 1;
#   with truth b2 b3 b5 = 3; false accepts b2 (110 not 111) + b3 (mismatch and rejected,
#   counted once) = 2 -> 2/3 = 0.6667; findable b3 b5 = 2 (b2's had_face is unknown);
#   false rejects b3 = 1 -> 1/2 = 0.5
B2 = [WEEK2, "B", "Store B", 4, 3, 1, 0, 1, 3, 2, 0.6667, 2, 1, 0.5]


@dataclass(frozen=True)
class World:
    url: str
    sessions: sessionmaker[Session]
    stores: dict[str, int]
    regions: dict[str, int]


def build(url: str) -> World:
    sessions = session_factory(make_engine(url))
    with transaction(sessions) as session:
        regions = {name: admin.create_region(session, name).id for name in ("North", "South")}
        stores, tills = {}, {}
        for code, region in (("A", "North"), ("B", "South")):
            stores[code] = admin.create_store(session, region, f"RQ-{code}", f"Store {code}").id
            tills[code] = admin.create_device(session, f"RQ-{code}", "till", "till")[0].id
        admin.create_user(session, "boss@example.com", "Boss", "head_office", PASSWORD)
        admin.create_user(session, "bea@example.com", "Bea", "store_manager", PASSWORD, "RQ-B")
        for code, day, hour, minute, outcome, candidate, truth, source, face, cashier in DECISIONS:
            session.add(
                RecognitionDecision(
                    store_id=stores[code],
                    device_id=tills[code],
                    at=datetime(2026, 3, day, hour, minute, tzinfo=UTC),
                    outcome=outcome,
                    candidate_id=candidate,
                    customer_id=candidate,
                    searched=10,
                    truth_customer_id=truth,
                    truth_source=source,
                    truth_had_face=face,
                    cashier=cashier,
                )
            )
    return World(url, sessions, stores, regions)


@pytest.fixture
def world(migrated_url: str) -> World:  # noqa: F811
    return build(migrated_url)


def expected(world: World, *rows: list[object]) -> list[list[object]]:
    """Hand-made rows with the store's letter turned into its id."""
    return [[row[0], world.stores[str(row[1])], *row[2:]] for row in rows]


def report(
    world: World,
    *,
    start: date = START,
    end: date = END,
    store: str | None = None,
    region: str | None = None,
) -> Report:
    filters = ReportFilters(
        date_from=start,
        date_to=end,
        store_id=world.stores[store] if store else None,
        region_id=world.regions[region] if region else None,
    )
    return run_report(world.sessions, "recognition", filters)


def test_every_figure_per_store_and_week(world: World) -> None:
    r = report(world)
    assert r.columns == [
        "week",
        "store_id",
        "store",
        "decisions",
        "accepted",
        "possible_members",
        "confirmations",
        "rejections",
        "with_truth",
        "false_accepts",
        "false_accept_rate",
        "truth_findable",
        "false_rejects",
        "false_reject_rate",
    ]
    # x1 (Sunday 1 March) and x2 (Monday 16 March) are outside the window
    assert r.rows == expected(world, A1, B1, A2, B2)
    # the period: decisions 6+0+3+4 = 13; accepted 4+0+2+3 = 9; with truth 6+0+1+3 = 10;
    # false accepts 2+0+0+2 = 4 -> 4/10 = 0.4; findable 4+0+1+2 = 7; false rejects
    # 2+0+0+1 = 3 -> 3/7 = 0.4286
    assert r.summary == {
        "decisions": 13,
        "accepted": 9,
        "with_truth": 10,
        "false_accepts": 4,
        "false_accept_rate": 0.4,
        "truth_findable": 7,
        "false_rejects": 3,
        "false_reject_rate": 0.4286,
    }


def test_store_region_and_window_filters(world: World) -> None:
    assert report(world, store="B").rows == expected(world, B1, B2)
    north = report(world, region="North")
    assert north.rows == expected(world, A1, A2)
    # store A alone: false accepts 2+0 over with truth 6+1 = 2/7 = 0.2857; false rejects
    # 2+0 over findable 4+1 = 2/5 = 0.4
    assert north.summary["false_accept_rate"] == 0.2857
    assert north.summary["false_reject_rate"] == 0.4
    # Monday 9 March alone: b2 only (a false accept of unknown findability)
    monday = report(world, start=date(2026, 3, 9), end=date(2026, 3, 9))
    assert monday.rows == expected(
        world, [WEEK2, "B", "Store B", 1, 1, 0, 0, 0, 1, 1, 1.0, 0, 0, None]
    )
    # Sunday 8 March to Monday 9 March: a7 (week 1) and b2 (week 2); a week cut by the window
    # counts only its days inside it
    edges = report(world, start=date(2026, 3, 8), end=date(2026, 3, 9))
    assert [(row[0], row[2], row[3]) for row in edges.rows] == [
        (WEEK1, "Store A", 1),
        (WEEK2, "Store B", 1),
    ]
    empty = report(world, start=date(2026, 4, 1), end=date(2026, 4, 30))
    assert empty.rows == []
    assert empty.summary["false_accept_rate"] is None
    assert empty.summary["false_reject_rate"] is None


def test_listed_with_its_columns(world: World) -> None:
    assert "recognition" in REPORTS and "recognition" in REPORT_NAMES
    assert REPORTS["recognition"].title == "Recognition quality"
    assert "false-accept rate" in REPORTS["recognition"].description.lower()
    assert COLUMNS == report(world).columns


@pytest.fixture
def api(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = CloudSettings(
        database_url=world.url,
        index_dir=tmp_path_factory.mktemp("index"),
        auto_migrate=False,
        estimate_demographics=False,
    )
    with serve(settings) as server:
        yield server.url


def sign_in(client: httpx.Client, email: str) -> dict[str, str]:
    answer = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_over_http_as_json_and_csv_by_role(world: World, api: str) -> None:
    query = {"from": START.isoformat(), "to": END.isoformat()}
    with httpx.Client(base_url=api, timeout=30) as client:
        assert client.get("/v1/reports/recognition", params=query).status_code == 401
        boss = sign_in(client, "boss@example.com")
        client.cookies.clear()  # each request below says who asks
        answer = client.get("/v1/reports/recognition", params=query, headers=boss)
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == expected(world, A1, B1, A2, B2)
        assert answer.json()["summary"]["false_accept_rate"] == 0.4

        csv_answer = client.get(
            "/v1/reports/recognition", params={**query, "format": "csv"}, headers=boss
        )
        assert csv_answer.status_code == 200
        assert csv_answer.headers["content-type"].startswith("text/csv")
        assert "recognition-2026-03-02-2026-03-15.csv" in csv_answer.headers["content-disposition"]
        lines = list(csv.reader(io.StringIO(csv_answer.text)))
        assert lines[0] == COLUMNS
        a, b = world.stores["A"], world.stores["B"]
        assert lines[1:] == [
            ["" if cell is None else str(cell) for cell in row]
            for row in expected(world, A1, B1, A2, B2)
        ]
        # a rate with nothing to divide by is an empty cell
        assert lines[2] == [WEEK1, str(b), "Store B", *["0"] * 7, "", "0", "0", ""]
        assert lines[1][-4:] == ["0.3333", "4", "2", "0.5"]

        # a store manager sees their own store, and is refused another store's figures
        manager = sign_in(client, "bea@example.com")
        client.cookies.clear()
        own = client.get("/v1/reports/recognition", params=query, headers=manager)
        assert own.status_code == 200
        assert own.json()["filters"]["store_id"] == b
        assert own.json()["rows"] == expected(world, B1, B2)
        for fmt in ("json", "csv"):
            foreign = client.get(
                "/v1/reports/recognition",
                params={**query, "store": a, "format": fmt},
                headers=manager,
            )
            assert foreign.status_code == 403, fmt
        other_region = client.get(
            "/v1/reports/recognition",
            params={**query, "region": world.regions["North"]},
            headers=manager,
        )
        assert other_region.status_code == 403
