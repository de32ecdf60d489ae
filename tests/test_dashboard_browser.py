"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against the real
app (uvicorn, SQLite) holding a seeded chain of three stores.

A head-office user signs in through the form and every chart must have drawn data (Chart.js
instances with non-empty, non-zero datasets and painted canvases), with no console errors;
the page is saved as a screenshot (screenshots/dashboard.png for the README under
`make screenshots`). A store manager sees only
their store: the store picker holds theirs alone, the figures match the API's for that
store, and asking for another store from the page is refused (403).

The browser is /usr/bin/chromium (Debian's package; `make test` installs it when it is
missing and it runs as root). Without it these tests are skipped with the reason; set
STORESIGHT_TEST_REQUIRE_BROWSER=1 (as CI should) to make that a failure instead.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud_api import admin
from cloud_api.api import errors
from cloud_api.dashboard import STATIC_DIR, static_file
from cloud_api.dashboard import router as dashboard_router
from cloud_api.db.migrate import upgrade
from cloud_api.db.models import Device, RecognitionDecision, Store
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.seed import seed
from cloud_api.settings import CloudSettings
from tests.cloud_server import serve

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("STORESIGHT_TEST_REQUIRE_BROWSER", "") == "1"
#: the README's picture is refreshed by `make screenshots` (STORESIGHT_SCREENSHOTS=1);
#: an ordinary test run saves its screenshot under pytest's temporary directory
README_SCREENSHOT = Path(__file__).resolve().parents[1] / "screenshots" / "dashboard.png"
PASSWORD = "correct horse battery staple"
HEAD_OFFICE = "helen.park@example.com"
MANAGER = "anna.berg@example.com"
MANAGER_STORE = "S001"
CHARTS = {
    "traffic",
    "customers",
    "frequency",
    "retention",
    "basket",
    "demographics",
    "categories",
    "products",
    "portrait",
    "preferences",
    "forecast",
    "recognition",
}
TABLES = {"heatmap", "vip"}
TIMEOUT_MS = 20_000


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.is_file():
        return (
            f"Debian's chromium is not installed at {CHROMIUM} "
            "(apt-get install chromium; `make test` installs it when run as root)"
        )
    return None


def require_browser() -> None:
    reason = browser_unavailable()
    if reason is not None:
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason} (STORESIGHT_TEST_REQUIRE_BROWSER=1)")
        pytest.skip(reason)


def add_recognition_decisions(session: Session) -> None:
    """Face decisions for the recognition-quality section (the seed makes none): per store
    and each of the last eight weeks, a right and a wrong match, a customer missed, a
    confirmed possible member and a shot without a face."""
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    tills = {
        store_id: device_id
        for store_id, device_id in session.execute(
            select(Device.store_id, func.min(Device.id)).group_by(Device.store_id)
        )
    }
    kinds = [  # outcome, candidate, truth, cashier
        ("member", 1, 1, None),
        ("returning", 2, 3, None),
        ("new", None, 4, None),
        ("possible_member", 5, 5, "confirmed"),
        ("no_face", None, None, None),
    ]
    for store_id, device_id in tills.items():
        for week in range(8):
            for n, (outcome, candidate, truth, cashier) in enumerate(kinds):
                session.add(
                    RecognitionDecision(
                        store_id=store_id,
                        device_id=device_id,
                        at=now - timedelta(days=7 * week + 1, minutes=n),
                        outcome=outcome,
                        candidate_id=candidate,
                        searched=100,
                        truth_customer_id=truth,
                        truth_source="loyalty" if truth else None,
                        truth_had_face=True if truth else None,
                        cashier=cashier,
                    )
                )


@dataclass(frozen=True)
class Chain:
    url: str
    stores: dict[str, int]  # code -> id


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    require_browser()
    directory = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{directory / 'dashboard.db'}"
    upgrade(url)
    # four months: the default 90-day window is full and the forecast has its 12 weeks
    seed(url, stores=3, days=120, seed=1, progress=False)
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        with transaction(sessions) as session:
            admin.create_user(session, HEAD_OFFICE, "Helen Park", "head_office", PASSWORD)
            admin.create_user(
                session, MANAGER, "Anna Berg", "store_manager", PASSWORD, MANAGER_STORE
            )
            stores = {store.code: store.id for store in session.scalars(select(Store))}
            add_recognition_decisions(session)
    finally:
        engine.dispose()
    assert len(stores) == 3 and MANAGER_STORE in stores
    settings = CloudSettings(
        database_url=url,
        index_dir=directory / "index",
        auto_migrate=False,
        estimate_demographics=False,
    )
    with serve(settings) as server:
        yield Chain(server.url, stores)


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless (root in CI: no sandbox)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
    )


@pytest.fixture(scope="module")
def browser(chain: Chain) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """What the page reported: console errors and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.exceptions: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.exceptions.append(str(error)))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # a new context each time: no cookies carried between users
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, locale="en-GB", timezone_id="UTC"
    )
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def open_dashboard(page: Page, chain: Chain) -> Console:
    console = Console(page)
    page.goto(f"{chain.url}/dashboard")
    page.wait_for_selector("body[data-state=signed-out]")
    assert page.locator("#login-form").is_visible()
    return console


def sign_in(page: Page, console: Console, email: str) -> None:
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    # the page asked /v1/auth/me first, and was told 401 (nobody signed in): expected
    console.errors.clear()
    page.click("#login-submit")
    page.wait_for_selector("body[data-state=ready]")
    page.evaluate("() => window.__dashboard.ready")


def api_token(chain: Chain, email: str) -> str:
    answer = httpx.post(
        f"{chain.url}/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def api_report(chain: Chain, token: str, name: str, **params: str | int) -> dict[str, Any]:
    answer = httpx.get(
        f"{chain.url}/v1/reports/{name}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


CHART_STATE = """() => Object.fromEntries(Object.entries(window.__dashboard.charts).map(
  ([id, chart]) => {
    const canvas = chart.canvas;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
    const values = chart.data.datasets.flatMap((d) => d.data)
      .filter((v) => v !== null && v !== undefined).map(Number);
    return [id, {
      type: chart.config.type,
      datasets: chart.data.datasets.length,
      points: values.length,
      nonzero: values.filter((v) => v > 0).length,
      painted: painted / (canvas.width * canvas.height),
      width: canvas.width,
      height: canvas.height,
    }];
  }))"""


# ---- the page and its files (no browser needed) -----------------------------------------


def test_static_files_are_served_from_the_package_only() -> None:
    app = FastAPI()
    errors.install(app)
    app.include_router(dashboard_router)

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
            return await client.get(path)

    def fetch(path: str) -> httpx.Response:
        return asyncio.run(get(path))

    page = fetch("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-cache"
    for path in ("/dashboard/static/vendor/chart.umd.min.js", "/dashboard/static/app.js"):
        script = fetch(path)
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert "max-age" in script.headers["cache-control"]
        assert script.headers["x-content-type-options"] == "nosniff"
    assert fetch("/dashboard/static/dashboard.css").headers["content-type"] == (
        "text/css; charset=utf-8"
    )
    assert fetch("/dashboard/static/favicon.svg").headers["content-type"] == "image/svg+xml"
    assert "MIT" in fetch("/dashboard/static/vendor/LICENSES.md").text
    root = fetch("/")
    assert root.status_code == 307 and root.headers["location"] == "/dashboard"

    for bad in (
        "/dashboard/static/%2e%2e/__init__.py",
        "/dashboard/static/vendor/%2E%2E/%2E%2E/__init__.py",
        "/dashboard/static/..%2f..%2fsettings.py",
        "/dashboard/static/%2fetc%2fpasswd",
        "/dashboard/static/vendor/..%5c..%5capp.js",
        "/dashboard/static/.hidden.js",
        "/dashboard/static/__init__.py",
        "/dashboard/static/missing.js",
        "/dashboard/static/vendor",
        "/dashboard/static/",
    ):
        answer = fetch(bad)
        assert answer.status_code == 404, bad
        assert answer.json()["error"] == "not_found", bad  # an ErrorBody, not a file
    # and the same paths as the route receives them, decoded (clients normalise some)
    for path in (
        "../__init__.py",
        "vendor/../../__init__.py",
        "/etc/passwd",
        "vendor\\..\\app.js",
        "app.js\x00.png",
        ".hidden.js",
        "vendor/.git/config.js",
        "__init__.py",
        "",
    ):
        with pytest.raises(HTTPException) as refused:
            static_file(path)
        assert refused.value.status_code == 404, path
    assert static_file("vendor/chart.umd.min.js").parent == STATIC_DIR / "vendor"


# ---- in the browser ---------------------------------------------------------------------


def test_wrong_password_shows_the_error(page: Page, chain: Chain) -> None:
    console = open_dashboard(page, chain)
    page.fill("#login-email", HEAD_OFFICE)
    page.fill("#login-password", "not the password")
    page.click("#login-submit")
    error = page.locator("#login-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("Sign-in failed")
    assert page.evaluate("() => document.body.dataset.state") == "signed-out"
    assert page.locator("#app-view").is_hidden()
    assert all(c["name"] != "storesight_session" for c in page.context.cookies())
    # the password field is ready for another try; the page itself did not break
    assert page.input_value("#login-password") == "not the password"
    assert console.exceptions == []


def test_head_office_sees_every_chart_drawn(
    page: Page, chain: Chain, tmp_path_factory: pytest.TempPathFactory
) -> None:
    console = open_dashboard(page, chain)
    sign_in(page, console, HEAD_OFFICE)

    assert page.inner_text("#user-name") == "Helen Park"
    assert page.inner_text("#user-role") == "Head office"
    stores = page.locator("#filter-store option").all_inner_texts()
    assert stores[0] == "All stores" and len(stores) == 1 + len(chain.stores)
    assert page.evaluate("() => window.__dashboard.errors") == {}

    charts: dict[str, dict[str, Any]] = page.evaluate(CHART_STATE)
    assert set(charts) == CHARTS
    for name, chart in charts.items():
        assert chart["datasets"] >= 1 and chart["points"] >= 1, (name, chart)
        assert chart["nonzero"] >= 1, (name, chart)  # data, not a row of zeros
        assert chart["width"] > 200 and chart["height"] > 150, (name, chart)
        assert chart["painted"] > 0.02, (name, chart)  # more than axes on a blank canvas
    tables: dict[str, dict[str, int]] = page.evaluate("() => window.__dashboard.tables")
    assert set(tables) == TABLES
    assert tables["heatmap"]["rows"] == 7 * 24 and tables["heatmap"]["cells"] > 20
    assert tables["vip"]["rows"] >= 1
    assert page.locator("#section-vip tbody tr").count() >= 1
    assert page.locator("#section-recognition tbody tr").count() >= 1
    for section in CHARTS | TABLES:
        link = page.locator(f"#section-{section} a.csv")
        assert "format=csv" in (link.get_attribute("href") or ""), section

    # the CSV links download the same table
    href = page.get_attribute("#section-traffic a.csv", "href")
    status, kind, header = page.evaluate(
        """async (href) => {
          const answer = await fetch(href);
          return [answer.status, answer.headers.get("content-type"),
                  (await answer.text()).split("\\r\\n")[0]];
        }""",
        href,
    )
    assert (status, kind, header) == (
        200,
        "text/csv; charset=utf-8",
        "date,visitors,transactions,buyers,conversion",
    )

    assert console.errors == [] and console.exceptions == []
    screenshot = (
        README_SCREENSHOT
        if os.environ.get("STORESIGHT_SCREENSHOTS") == "1"
        else tmp_path_factory.mktemp("dashboard") / "dashboard.png"
    )
    screenshot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 50_000


def test_store_manager_sees_only_their_store(page: Page, chain: Chain) -> None:
    console = open_dashboard(page, chain)
    sign_in(page, console, MANAGER)
    own = chain.stores[MANAGER_STORE]
    other = next(i for code, i in chain.stores.items() if code != MANAGER_STORE)

    assert page.inner_text("#user-role") == "Store manager"
    options = page.locator("#filter-store option")
    assert options.count() == 1
    assert options.first.get_attribute("value") == str(own)
    assert MANAGER_STORE in options.first.inner_text()
    assert page.is_disabled("#filter-store") and page.is_disabled("#filter-region")
    assert page.evaluate("() => window.__dashboard.errors") == {}
    assert console.errors == [] and console.exceptions == []

    # the figures drawn are the store's own: as the API gives them for that store, and
    # fewer than the whole chain's
    filters = page.evaluate("() => window.__dashboard.filters")
    assert filters["store"] == str(own)
    drawn = page.evaluate(
        """() => {
          const chart = window.__dashboard.charts.traffic;
          const sum = (label) => chart.data.datasets.find((d) => d.label === label)
            .data.reduce((a, b) => a + b, 0);
          return {visitors: sum("Visitors"), transactions: sum("Transactions")};
        }"""
    )
    period = {"from": filters["from"], "to": filters["to"]}
    mine = api_report(chain, api_token(chain, MANAGER), "traffic", store=own, **period)
    chain_wide = api_report(chain, api_token(chain, HEAD_OFFICE), "traffic", **period)
    assert drawn == {
        "visitors": mine["summary"]["visitors"],
        "transactions": mine["summary"]["transactions"],
    }
    assert 0 < drawn["visitors"] < chain_wide["summary"]["visitors"]
    products = page.evaluate("() => window.__dashboard.reports.products.filters.store_id")
    assert products == own

    # another store's figures are refused, however they are asked for
    statuses = page.evaluate(
        """async (other) => {
          const get = async (query) => (await fetch(`/v1/reports/traffic?${query}`)).status;
          return [await get(`store=${other}`), await get(`store=${other}&format=csv`)];
        }""",
        other,
    )
    assert statuses == [403, 403]

    # a report the API fails is shown as failed, with the API's own words
    failing = re.compile(r"/v1/reports/heatmap\?")
    page.route(
        failing,
        lambda route: route.fulfill(
            status=503,
            json={"error": "unavailable", "detail": "the database is unavailable; retry later"},
        ),
    )
    page.click("#filter-apply")
    page.wait_for_selector("body[data-state=ready]")
    page.evaluate("() => window.__dashboard.ready")
    failed = page.locator("#section-heatmap .state.error")
    assert failed.is_visible()
    assert "the database is unavailable; retry later (HTTP 503)" in failed.inner_text()
    assert page.locator("#global-error").is_visible()
    assert list(page.evaluate("() => window.__dashboard.errors")) == ["heatmap"]
    assert "traffic" in page.evaluate("() => Object.keys(window.__dashboard.charts)")
    page.unroute(failing)

    page.click("#logout")
    page.wait_for_selector("body[data-state=signed-out]")
    assert page.locator("#login-form").is_visible()
    assert page.evaluate("async () => (await fetch('/v1/auth/me')).status") == 401
    assert console.exceptions == []
