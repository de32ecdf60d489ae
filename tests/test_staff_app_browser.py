"""The staff app in a real phone browser: Debian's Chromium, driven by Playwright with a phone
profile (360x740, touch, mobile), against the real app (uvicorn, SQLite, real HTTP).

Two staff members of store A sign in through the form on two phones; a manager and a staff
member of store B sign in on two more. A member's arrival is posted by A's entrance device,
with the face chip it saw: both of A's phones show the card, photo included, within 2 s of
the sighting's answer (the issue's target: one round of the alert hub and one render). The
first taps "Greeted"; the second phone shows who greeted. B's phones were live throughout
and show nothing of it. The member is then deleted at A's till: the card leaves A's phones.
Signing out leaves nothing in local or session storage, and Cache Storage holds the app shell
only. The manifest and service worker pass Chromium's installability check, and no page
logged a console error.

Screenshots of the phone (and a tablet) are saved under pytest's temporary directory, or as
the README's pictures (screenshots/staff-phone.png, staff-tablet.png) under `make
screenshots`. The face chip is a drawn face. Without /usr/bin/chromium these tests skip (or
fail with STORESIGHT_TEST_REQUIRE_BROWSER=1), as the dashboard's do.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from numpy.typing import NDArray
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from cloud_api import admin
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.staff_app import shell_version
from contract import CheckoutRequest, Embedding, LineItem
from contract import Receipt as ReceiptIn
from tests.cloud_fixtures import temporary_database
from tests.cloud_server import serve
from tests.store_chain import PASSWORD, Keys, build_chain, login, settings_for, sighting_body
from tests.test_dashboard_browser import CHROMIUM, Console, launch_chromium, require_browser

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
PHONE: dict[str, Any] = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36"
    ),
    "locale": "en-GB",
    "timezone_id": "UTC",
}
STAFF_A = ("sam.okafor@example.com", "Sam Okafor")
STAFF_A2 = ("tess.lind@example.com", "Tess Lind")
STAFF_B = ("bea.moreau@example.com", "Bea Moreau")
MANAGER_B = ("b@example.com", "Bob")
#: the issue's target: a VIP sighting shows on the phones within this
CARD_WITHIN_MS = 2_000
TIMEOUT_MS = 15_000


def face_chip() -> str:
    """The 150x150 chip an entrance sends (base64 JPEG): a drawn face, so the README's
    pictures put no real person's face next to an invented name and history."""
    chip = np.full((150, 150, 3), (214, 226, 236), np.uint8)
    cv2.ellipse(chip, (75, 150), (62, 44), 0, 180, 360, (96, 112, 150), -1)  # shoulders
    cv2.ellipse(chip, (75, 68), (34, 42), 0, 0, 360, (130, 170, 214), -1)  # face
    cv2.ellipse(chip, (75, 44), (38, 22), 0, 180, 360, (40, 52, 70), -1)  # hair
    for eye in (62, 88):
        cv2.circle(chip, (eye, 68), 3, (50, 50, 60), -1)
    cv2.ellipse(chip, (75, 88), (10, 5), 0, 0, 180, (70, 80, 160), 2)  # smile
    ok, jpeg = cv2.imencode(".jpg", chip, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return base64.b64encode(jpeg.tobytes()).decode()


def basket(
    shots: list[NDArray[np.float32]], items: list[tuple[str, str, str, str, str]]
) -> dict[str, Any]:
    """A checkout of these (sku, name, category, brand, price) items."""
    request = CheckoutRequest(
        idempotency_key=uuid.uuid4().hex,
        captured_at=datetime.now(UTC),
        receipt=ReceiptIn(
            number=uuid.uuid4().hex[:10],
            scanned_at=datetime.now(UTC),
            items=[
                LineItem(sku=s, name=n, category=c, brand=b, quantity=1, unit_price=p)
                for s, n, c, b, p in items
            ],
        ),
        embeddings=[Embedding.compact([float(v) for v in s], 0.9) for s in shots],
    )
    return request.model_dump(mode="json", exclude_none=True)


@dataclass
class Store:
    url: str
    keys: Keys
    rng: np.random.Generator

    def call(
        self, method: str, path: str, key: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        answer = httpx.request(
            method, self.url + path, json=body, headers={"X-API-Key": key}, timeout=60
        )
        assert answer.is_success, answer.text
        return answer

    def member(self, vip: str, name: str, level: str) -> tuple[int, NDArray[np.float32]]:
        """A member of store A with a few baskets behind them."""
        v = self.rng.normal(size=128)
        face = (v / np.linalg.norm(v)).astype(np.float32)
        baskets = [
            [
                ("C-101", "Single-origin espresso beans 1 kg", "Coffee", "Roastery No. 5", "24.90"),
                ("T-220", "Sencha green tea", "Tea", "Kyoto Leaf", "8.50"),
            ],
            [("C-101", "Single-origin espresso beans 1 kg", "Coffee", "Roastery No. 5", "24.90")],
            [
                ("K-310", "Ceramic pour-over dripper", "Kitchen", "Hario", "29.00"),
                ("C-140", "Oat milk barista 1 l", "Coffee", "Oatly", "2.95"),
            ],
        ]
        customer = 0
        for items in baskets:
            card = self.call("POST", "/v1/checkouts", self.keys.till_a, basket([face, face], items))
            customer = card.json()["card"]["customer_id"]
        self.call(
            "PUT",
            f"/v1/customers/{customer}/membership",
            self.keys.till_a,
            {"vip_number": vip, "name": name, "level": level, "consent": True},
        )
        return customer, face


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    require_browser()
    directory = tmp_path_factory.mktemp("staff-app")
    with temporary_database("sqlite", directory) as url:
        from cloud_api.db.migrate import upgrade

        upgrade(url)
        keys = build_chain(url, users=True)
        engine = make_engine(url)
        try:
            with transaction(session_factory(engine)) as session:
                for (email, name), code in (
                    (STAFF_A, "N001"),
                    (STAFF_A2, "N001"),
                    (STAFF_B, "N002"),
                ):
                    admin.create_user(session, email, name, "store_staff", PASSWORD, code)
        finally:
            engine.dispose()
        with serve(settings_for(url, directory / "index")) as server:
            yield Store(server.url, keys, np.random.default_rng(18))


@pytest.fixture(scope="module")
def playwright(store: Store) -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch_chromium(playwright)
    try:
        yield browser
    finally:
        browser.close()


@dataclass
class Phone:
    context: BrowserContext
    page: Page
    console: Console


@pytest.fixture
def phones(browser: Browser) -> Iterator[list[Phone]]:
    opened: list[Phone] = []
    yield opened
    for phone in opened:
        phone.context.close()


def open_phone(browser: Browser, store: Store, phones: list[Phone], **profile: Any) -> Phone:
    context = browser.new_context(**(PHONE | profile))
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    phone = Phone(context, page, Console(page))
    phones.append(phone)
    page.goto(f"{store.url}/staff/")
    page.wait_for_selector("body[data-state=signed-out]")
    return phone


def sign_in(phone: Phone, email: str) -> None:
    page = phone.page
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.locator("#login-submit").tap()
    page.wait_for_selector("body[data-state=signed-in]")
    page.wait_for_selector("#live[data-state=live]")


def card(phone: Phone, arrival: int) -> Any:
    return phone.page.locator(f'article.arrival[data-arrival-id="{arrival}"]')


def newest_arrival(store: Store, email: str) -> dict[str, Any]:
    token = login(store.url, email)
    answer = httpx.get(
        store.url + "/v1/staff/arrivals", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    newest: dict[str, Any] = answer.json()["arrivals"][0]
    return newest


def test_a_vip_arrival_reaches_the_store_staff_phones_and_no_one_else(
    store: Store, browser: Browser, phones: list[Phone], tmp_path: Path
) -> None:
    sam = open_phone(browser, store, phones)
    tess = open_phone(browser, store, phones)
    bea = open_phone(browser, store, phones)  # staff of store B
    bob = open_phone(browser, store, phones)  # store B's manager
    for phone, (email, _) in ((sam, STAFF_A), (tess, STAFF_A2), (bea, STAFF_B), (bob, MANAGER_B)):
        sign_in(phone, email)
    assert sam.page.locator("#store-name").inner_text().strip() == "North One"
    assert sam.page.locator("#user-name").inner_text().strip() == "Sam Okafor"
    assert bea.page.locator("#store-name").inner_text().strip() == "North Two"
    for phone in (sam, tess, bea, bob):
        assert phone.page.evaluate("() => localStorage.length") > 0

    member, face = store.member("VIP-004217", "Ada Whitfield", "gold")
    chip = face_chip()
    body = sighting_body([face, face]) | {"face_crop": {"jpeg_base64": chip}}
    seen = store.call("POST", "/v1/sightings", store.keys.entrance_a, body).json()
    answered = time.monotonic()
    assert seen["is_vip"] and seen["customer_id"] == member
    arrival = newest_arrival(store, STAFF_A[0])["arrival_id"]

    # both of A's phones show the card, its photo loaded, within the target
    for phone in (sam, tess):
        shown = card(phone, arrival)
        left_ms = max(1, CARD_WITHIN_MS - int(1000 * (time.monotonic() - answered)))
        shown.locator("img.face").wait_for(state="visible", timeout=left_ms)
    latency_ms = 1000 * (time.monotonic() - answered)
    print(f"card with photo on both phones {latency_ms:.0f} ms after the sighting's answer")
    shown = card(sam, arrival)
    assert shown.locator(".name").inner_text().strip() == "Ada Whitfield"
    assert "VIP-004217" in shown.locator(".vip-number").inner_text()
    assert "gold" in shown.locator(".level").inner_text().lower()
    assert shown.locator(".purchase-level").inner_text().strip() != ""
    assert "Coffee" in shown.locator(".categories").inner_text()
    assert "Roastery No. 5" in shown.locator(".brands").inner_text()
    assert "Oat milk barista" in shown.locator(".last-purchases").inner_text()
    assert shown.locator(".last-visits").inner_text().strip() != ""
    assert shown.locator("time.arrived").get_attribute("datetime")
    photo = shown.locator("img.face")
    assert photo.evaluate("img => img.complete && img.naturalWidth") == 150
    assert photo.get_attribute("src") == f"data:image/jpeg;base64,{chip}"

    # the phone, for the README
    shots = SCREENSHOTS if os.environ.get("STORESIGHT_SCREENSHOTS") == "1" else tmp_path
    sam.page.screenshot(path=str(shots / "staff-phone.png"), animations="disabled")

    # Sam greets; Tess's phone shows who did, and offers no second greeting
    shown.locator("button.greet").tap()
    shown.locator(".greeted-by").wait_for(state="visible")
    greeted = card(tess, arrival).locator(".greeted-by")
    greeted.wait_for(state="visible", timeout=5_000)
    assert "Sam Okafor" in greeted.inner_text()
    assert card(tess, arrival).locator("button.greet").count() == 0
    sam.page.screenshot(path=str(tmp_path / "staff-phone-greeted.png"), animations="disabled")

    # store B's manager and staff were live all along, and saw nothing of it
    for phone in (bea, bob):
        assert phone.page.locator("#live").get_attribute("data-state") == "live"
        assert phone.page.locator("article.arrival").count() == 0
        assert phone.page.locator("#no-arrivals").is_visible()
        assert "Ada Whitfield" not in phone.page.content()

    # the member is deleted at A's till: the card leaves A's phones at once
    store.call("DELETE", f"/v1/customers/{member}", store.keys.till_a)
    for phone in (sam, tess):
        card(phone, arrival).wait_for(state="detached", timeout=5_000)

    # signing out leaves nothing personal in the browser
    sam.page.locator("#logout").tap()
    sam.page.wait_for_selector("body[data-state=signed-out]")
    left = sam.page.evaluate(
        """async () => ({
            local: localStorage.length,
            session: sessionStorage.length,
            cards: document.querySelectorAll("article.arrival").length,
            cached: (await Promise.all((await caches.keys()).map(async (name) =>
                (await (await caches.open(name)).keys()).map((r) => r.url)))).flat(),
        })"""
    )
    assert left["local"] == 0 and left["session"] == 0 and left["cards"] == 0, left
    assert left["cached"], "the app shell was not cached"
    assert all("/staff/" in url and "/v1/" not in url for url in left["cached"]), left["cached"]
    # the session cookie went with the sign-out (asked with the context's own client, which
    # shares the page's cookies but logs nothing to the page's console)
    assert sam.context.request.get(f"{store.url}/v1/staff/me").status == 401
    for phone in (sam, tess, bea, bob):
        assert phone.console.errors == [] and phone.console.exceptions == [], (
            phone.console.errors,
            phone.console.exceptions,
        )


def test_the_app_is_installable_and_fits_phone_and_tablet(
    store: Store, playwright: Playwright, browser: Browser, phones: list[Phone], tmp_path: Path
) -> None:
    # Chromium answers "in-incognito" for any new_context(): installability is checked in a
    # persistent profile, as a phone's browser has
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--no-sandbox"],
        **PHONE,
    )
    try:
        page = context.new_page()
        console = Console(page)
        page.goto(f"{store.url}/staff/")
        page.wait_for_selector("body[data-state=signed-out]")
        page.evaluate("async () => { await navigator.serviceWorker.ready; }")
        cdp = context.new_cdp_session(page)
        manifest = cdp.send("Page.getAppManifest")
        assert manifest.get("errors") == [], manifest.get("errors")
        installability = cdp.send("Page.getInstallabilityErrors")
        assert installability["installabilityErrors"] == [], installability
        assert console.errors == [] and console.exceptions == []
    finally:
        context.close()

    # a platinum member came in: the phone and the tablet, each with its card
    _, face = store.member("VIP-000318", "Noor Haddad", "platinum")
    body = sighting_body([face, face]) | {"face_crop": {"jpeg_base64": face_chip()}}
    store.call("POST", "/v1/sightings", store.keys.entrance_a, body)
    phone = open_phone(browser, store, phones)
    sign_in(phone, STAFF_A2[0])
    phone.page.locator("article.arrival img.face").first.wait_for(state="visible")
    assert phone.page.evaluate("() => document.documentElement.scrollWidth") <= 360
    tablet = open_phone(
        browser, store, phones, viewport={"width": 820, "height": 1180}, is_mobile=True
    )
    sign_in(tablet, STAFF_A2[0])
    tablet.page.locator("article.arrival img.face").first.wait_for(state="visible")
    assert tablet.page.evaluate("() => document.documentElement.scrollWidth") <= 820
    shots = SCREENSHOTS if os.environ.get("STORESIGHT_SCREENSHOTS") == "1" else tmp_path
    tablet.page.screenshot(path=str(shots / "staff-tablet.png"), animations="disabled")
    for opened in (phone, tablet):
        assert opened.console.errors == [] and opened.console.exceptions == []


def test_the_service_worker_never_caches_the_api(store: Store) -> None:
    """The worker's own rules, read from the file the app serves: /v1/ goes to the network."""
    worker = httpx.get(store.url + "/staff/sw.js", timeout=60)
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert "/v1/" in worker.text
    assert f'const VERSION = "{shell_version()}";' in worker.text  # not the file's "v1"
    manifest = httpx.get(store.url + "/staff/manifest.webmanifest", timeout=60)
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert manifest.json()["start_url"] == "/staff/"
    page = httpx.get(store.url + "/staff/", timeout=60)
    assert "manifest-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(store.url + "/staff/LICENSES.md", timeout=60).status_code == 200
    for hidden in ("/staff/__init__.py", "/staff/%2e%2e/__init__.py", "/staff/.sw.js"):
        assert httpx.get(store.url + hidden, timeout=60).status_code == 404, hidden
