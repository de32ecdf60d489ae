"""Staff VIP-arrival alerts: the SSE parser, the AlertStream client, and the staff window's
pop-ups, against the real cloud API over real HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from cloud_api import admin
from cloud_api.db.session import make_engine, session_factory, transaction
from cloud_api.settings import CloudSettings
from contract import CheckoutRequest, LineItem, VipArrival
from contract import Receipt as ReceiptIn
from kiosk_app.alerts import AlertStream, SseEvent, SseParser
from kiosk_app.gui.staff_window import StaffWindow, run_staff
from kiosk_app.gui.toast import Toast, ToastManager
from kiosk_app.kiosk_config import KioskConfig
from tests.cloud_fixtures import module_migrated_url  # noqa: F401  (fixture)
from tests.cloud_server import free_port, serve
from tests.conftest import require
from tests.face_samples import face_sample

# --- helpers ---------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


class Recorder:
    """Collects what an AlertStream reports (from its thread)."""

    def __init__(self) -> None:
        self.arrivals: list[VipArrival] = []
        self.states: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def arrival(self, arrival: VipArrival) -> None:
        with self._lock:
            self.arrivals.append(arrival)

    def status(self, state: str, detail: str) -> None:
        with self._lock:
            self.states.append((state, detail))

    def seen(self, state: str) -> bool:
        with self._lock:
            return any(s == state for s, _ in self.states)

    def vip_numbers(self) -> list[str]:
        with self._lock:
            return [a.vip_number for a in self.arrivals]


def stream_for(url: str, key: str, store_id: int | None, recorder: Recorder) -> AlertStream:
    return AlertStream(
        url,
        key,
        store_id,
        recorder.arrival,
        recorder.status,
        backoff_initial_s=0.05,
        backoff_max_s=0.4,
        slow_retry_s=0.5,
    )


# --- (a) the SSE parser ---------------------------------------------------------------------


def test_parser_dispatches_on_blank_lines_with_id_event_and_multiline_data() -> None:
    parser = SseParser()
    lines = [": connected", "", "id: 7", "event: vip_arrival", 'data: {"a":', "data:  1}", ""]
    events = list(parser.feed_lines(lines))
    # one leading space after the colon is dropped, further ones are data
    assert events == [SseEvent(event="vip_arrival", data='{"a":\n 1}', id="7")]
    assert parser.last_event_id == "7"
    # defaults: event type "message"; the id persists into later events
    assert parser.feed_line("data:plain") is None
    assert parser.feed_line("") == SseEvent(event="message", data="plain", id="7")


def test_parser_ignores_comments_unknown_fields_and_events_without_data() -> None:
    parser = SseParser(last_event_id="3")
    events = list(
        parser.feed_lines([": keep-alive", "", "bogus: x", "event: ping", "", "retry: 1500", ""])
    )
    assert events == [] and parser.retry_ms == 1500
    assert parser.last_event_id == "3"
    # an id-only block moves the resume point without dispatching an event
    assert list(parser.feed_lines(["id: 9", ""])) == [] and parser.last_event_id == "9"
    # a field name alone is a field with an empty value; `data` alone adds an empty line
    assert list(parser.feed_lines(["data", "data", ""])) == [SseEvent("message", "\n", "9")]
    # an id holding NUL is ignored; retry must be digits
    assert list(parser.feed_lines(["id: 1\0", "retry: soon", "data: x", ""])) == [
        SseEvent("message", "x", "9")
    ]
    assert parser.retry_ms == 1500


def test_parser_handles_crlf_cr_and_chunks_split_anywhere() -> None:
    stream = "\ufeff: hi\r\nid: 1\r\nevent: vip_arrival\r\ndata: one\r\n\r\nid: 2\rdata: two\r\r"
    stream += "id: 3\ndata: three\n\n"
    expected = [
        SseEvent("vip_arrival", "one", "1"),
        SseEvent("message", "two", "2"),
        SseEvent("message", "three", "3"),
    ]
    for size in (1, 2, 3, 5, 7, len(stream)):
        parser = SseParser()
        events: list[SseEvent] = []
        for start in range(0, len(stream), size):
            events.extend(parser.feed(stream[start : start + size]))
        assert events == expected, size
    # lines handed over with their terminators
    parser = SseParser()
    assert list(parser.feed_lines(["data: x\r\n", "\r\n"])) == [SseEvent("message", "x", None)]


def test_a_half_received_event_does_not_move_the_resume_point() -> None:
    parser = SseParser(last_event_id="4")
    assert list(parser.feed_lines(["id: 5", "event: vip_arrival", "data: {"])) == []
    assert parser.last_event_id == "4"  # the connection broke here: resume after 4


# --- AlertStream on a test transport ---------------------------------------------------------


def _arrival_json(event_id: int, vip: str) -> str:
    return VipArrival(
        event_id=event_id,
        store_id=5,
        customer_id=100 + event_id,
        vip_number=vip,
        name=f"Member {vip}",
        level="gold",
        at=datetime.now(UTC),
    ).model_dump_json()


def test_stream_discovers_its_store_skips_bad_events_and_resumes_after_the_last_id() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/v1/device":
            body = {
                "device_id": 1,
                "name": "door",
                "kind": "entrance",
                "store_id": 5,
                "store_code": "S5",
                "store_name": "Five",
                "region_id": 1,
            }
            return httpx.Response(200, json=body)
        assert request.url.path == "/v1/stores/5/alerts"
        streams = sum(r.url.path.endswith("/alerts") for r in requests)
        if streams == 1:
            text = (
                ": connected\n\n"
                f"id: 11\nevent: vip_arrival\ndata: {_arrival_json(11, 'V-11')}\n\n"
                'id: 12\nevent: vip_arrival\ndata: {"not": "an arrival"}\n\n'
                "id: 13\nevent: vip_arrival\ndata: {broken json\n\n"
                "event: other\ndata: {}\n\n"
                f"id: 14\r\nevent: vip_arrival\r\ndata: {_arrival_json(14, 'V-14')}\r\n\r\n"
            )
        elif streams == 2:  # a server replaying an old event is not believed
            text = (
                f"id: 14\nevent: vip_arrival\ndata: {_arrival_json(14, 'V-14')}\n\n"
                f"id: 15\nevent: vip_arrival\ndata: {_arrival_json(15, 'V-15')}\n\n"
            )
        elif streams == 3:  # a server may move the resume point without an event
            text = ": connected\n\nid: 20\n\n"
        else:
            return httpx.Response(503, json={"error": "unavailable", "detail": "busy"})
        return httpx.Response(200, text=text, headers={"Content-Type": "text/event-stream"})

    recorder = Recorder()
    stream = AlertStream(
        "http://cloud.test",
        "device-key",
        None,
        recorder.arrival,
        recorder.status,
        transport=httpx.MockTransport(handler),
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
    )
    stream.start()
    try:
        wait_for(lambda: len(recorder.arrivals) >= 3, 5, "three arrivals")
        wait_for(
            lambda: any("503" in d for s, d in list(recorder.states) if s == "offline"),
            5,
            "the 503 reported as offline",
        )
    finally:
        assert stream.stop(2)
    assert recorder.vip_numbers() == ["V-11", "V-14", "V-15"]
    assert stream.store_id == 5 and stream.store_name == "Five"
    assert stream.last_event_id == "20"
    alerts = [r for r in requests if r.url.path.endswith("/alerts")]
    assert alerts[0].headers["X-API-Key"] == "device-key"
    assert "Last-Event-ID" not in alerts[0].headers
    assert alerts[1].headers["Last-Event-ID"] == "14"
    assert alerts[2].headers["Last-Event-ID"] == "15"
    assert alerts[3].headers["Last-Event-ID"] == "20"
    assert recorder.states[-1] == ("stopped", "")


def test_a_refused_key_is_reported_and_retried_slowly() -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        return httpx.Response(401, json={"error": "unauthorised", "detail": "unknown API key"})

    recorder = Recorder()
    stream = AlertStream(
        "http://cloud.test",
        "wrong",
        3,
        recorder.arrival,
        recorder.status,
        transport=httpx.MockTransport(handler),
        backoff_initial_s=0.01,
        slow_retry_s=0.3,
    )
    stream.start()
    wait_for(lambda: recorder.seen("unauthorised"), 5, "unauthorised")
    time.sleep(0.4)
    assert stream.stop(2)
    assert stream.state == "stopped"
    assert 1 <= len(calls) <= 3  # not hammered at the 10 ms backoff
    assert ("unauthorised", "HTTP 401: unknown API key") in recorder.states


# --- (d) nobody listening -------------------------------------------------------------------


def test_a_closed_port_is_reported_offline_and_stop_is_prompt() -> None:
    recorder = Recorder()
    for store_id in (None, 4):  # with and without the store discovery
        stream = stream_for(f"http://127.0.0.1:{free_port()}", "key", store_id, recorder)
        stream.start()
        wait_for(lambda: recorder.seen("offline"), 5, "offline")
        started = time.monotonic()
        assert stream.stop(2)
        assert time.monotonic() - started < 1.0
        assert stream.state == "stopped" and recorder.arrivals == []
        assert any("cannot reach" in d for s, d in recorder.states if s == "offline")
        recorder.states.clear()


# --- the real cloud API ---------------------------------------------------------------------


class Relay:
    """A TCP relay in front of the cloud that can cut live connections and refuse new ones."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refusing = False
        self.accepted = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self.refusing:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self.accepted += 1
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@dataclass
class Member:
    customer_id: int
    vip_number: str
    name: str
    sighting: Mapping[str, object]  # the entrance's request body


@dataclass
class Cloud:
    url: str
    port: int
    store_id: int
    store_name: str
    till: str
    entrance: str
    other_till: str  # a till of another store
    data_dir: Path
    members: dict[str, Member] = field(default_factory=dict)

    def member(self, person: str, level: str = "gold") -> Member:
        """A customer enrolled at the till from two photos and made a member (once)."""
        if person in self.members:
            return self.members[person]
        photos = sorted(require(self.data_dir / "faces" / "lfw" / person).glob("*.jpg"))[:2]
        samples = [face_sample(p) for p in photos]
        now = datetime.now(UTC)
        checkout = CheckoutRequest(
            idempotency_key=uuid.uuid4().hex,
            captured_at=now,
            receipt=ReceiptIn(
                number=uuid.uuid4().hex[:10],
                scanned_at=now,
                items=[
                    LineItem(
                        sku="SKU-1",
                        name="Espresso beans",
                        category="coffee",
                        quantity=Decimal(1),
                        unit_price=Decimal("12.50"),
                    )
                ],
            ),
            embeddings=[s.embedding for s in samples],
        )
        headers = {"X-API-Key": self.till}
        answer = httpx.post(
            f"{self.url}/v1/checkouts", json=checkout.model_dump(mode="json"), headers=headers
        )
        assert answer.status_code == 200, answer.text
        customer = answer.json()["card"]["customer_id"]
        vip, name = f"VIP-{customer}", person.replace("_", " ")
        bound = httpx.put(
            f"{self.url}/v1/customers/{customer}/membership",
            json={"vip_number": vip, "name": name, "level": level, "consent": True},
            headers=headers,
        )
        assert bound.status_code == 200, bound.text
        sighting = {
            "captured_at": now.isoformat(),
            # the frames the till saw: a name goes to staff only from more than one frame
            "embeddings": [s.embedding.model_dump(mode="json") for s in samples],
        }
        self.members[person] = Member(customer, vip, name, sighting)
        return self.members[person]

    def arrive(self, member: Member) -> None:
        """The member walks in: the entrance camera reports them; the cloud raises an alert."""
        answer = httpx.post(
            f"{self.url}/v1/sightings",
            json=member.sighting,
            headers={"X-API-Key": self.entrance},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["is_vip"] is True
        assert answer.json()["customer_id"] == member.customer_id


@pytest.fixture(scope="module")
def cloud(
    module_migrated_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    data_dir: Path,
) -> Iterator[Cloud]:
    sessions = session_factory(make_engine(module_migrated_url))
    with transaction(sessions) as session:
        admin.create_region(session, "Alerts")
        store = admin.create_store(session, "Alerts", "AL1", "Alerts One")
        admin.create_store(session, "Alerts", "AL2", "Alerts Two")
        _, till = admin.create_device(session, "AL1", "till", "till 1")
        _, entrance = admin.create_device(session, "AL1", "entrance", "door")
        _, other_till = admin.create_device(session, "AL2", "till", "till 1")
        store_id, store_name = store.id, store.name
    settings = CloudSettings(
        database_url=module_migrated_url,
        index_dir=tmp_path_factory.mktemp("index"),
        sync_interval_s=0.1,
        alert_poll_interval_s=0.1,
        auto_migrate=False,
        estimate_demographics=False,
    )
    with serve(settings) as server:
        port = int(server.url.rsplit(":", 1)[1])
        yield Cloud(server.url, port, store_id, store_name, till, entrance, other_till, data_dir)


@pytest.mark.slow
def test_a_vip_arrival_reaches_the_stream(cloud: Cloud) -> None:
    member = cloud.member("Amelia_Vega")
    recorder = Recorder()
    stream = stream_for(cloud.url, cloud.till, None, recorder)  # learns its store
    stream.start()
    try:
        wait_for(lambda: stream.state == "connected", 10, "connected")
        assert stream.store_id == cloud.store_id and stream.store_name == cloud.store_name
        cloud.arrive(member)
        wait_for(lambda: recorder.arrivals != [], 10, "the VIP arrival")
    finally:
        assert stream.stop(3)
    [arrival] = recorder.arrivals
    assert arrival.vip_number == member.vip_number and arrival.name == "Amelia Vega"
    assert arrival.customer_id == member.customer_id and arrival.store_id == cloud.store_id
    assert arrival.level == "gold"
    assert stream.last_event_id == str(arrival.event_id)
    # another store's till may not follow this store's alerts
    refused = Recorder()
    other = stream_for(cloud.url, cloud.other_till, cloud.store_id, refused)
    other.start()
    try:
        wait_for(lambda: refused.seen("unauthorised"), 10, "403 reported")
    finally:
        assert other.stop(3)
    assert refused.arrivals == []


@pytest.mark.slow
def test_alerts_missed_while_disconnected_arrive_once_after_reconnecting(cloud: Cloud) -> None:
    first, second, third = (
        cloud.member(p) for p in ("Adrien_Brody", "Ana_Guevara", "Anna_Kournikova")
    )
    relay = Relay(cloud.port)
    recorder = Recorder()
    stream = stream_for(relay.url, cloud.till, cloud.store_id, recorder)
    stream.start()
    try:
        wait_for(lambda: stream.state == "connected", 10, "connected")
        cloud.arrive(first)
        wait_for(lambda: len(recorder.arrivals) == 1, 10, "the first arrival")
        # the network goes: the live connection is cut and reconnections fail
        relay.refusing = True
        relay.cut()
        wait_for(lambda: stream.state == "offline", 10, "offline")
        cloud.arrive(second)  # raised while nobody is connected
        time.sleep(0.3)  # several failed reconnection attempts
        assert recorder.vip_numbers() == [first.vip_number]
        relay.refusing = False
        wait_for(lambda: len(recorder.arrivals) >= 2, 10, "the missed arrival")
        time.sleep(0.6)  # several server polls: nothing is delivered twice
        assert recorder.vip_numbers() == [first.vip_number, second.vip_number]
        assert relay.accepted >= 2

        # stopped (the staff window closed) and started again: resumes after the last one
        started = time.monotonic()
        assert stream.stop(3)
        assert time.monotonic() - started < 1.0  # a live connection is interrupted at once
        cloud.arrive(third)
        stream.start()
        wait_for(lambda: len(recorder.arrivals) >= 3, 10, "the arrival missed while stopped")
        time.sleep(0.6)
    finally:
        assert stream.stop(3)
        relay.close()
    assert recorder.vip_numbers() == [first.vip_number, second.vip_number, third.vip_number]
    ids = [a.event_id for a in recorder.arrivals]
    assert ids == sorted(set(ids))
    assert stream.last_event_id == str(ids[-1])


# --- (c) the staff window -------------------------------------------------------------------


def test_toasts_stack_upwards_and_a_click_dismisses(qtbot: QtBot) -> None:
    manager = ToastManager(timeout_ms=0)  # no timeout: only clicks dismiss
    toasts = [manager.show_toast(f"Toast {n}", [f"line {n}"]) for n in range(3)]
    assert manager.visible_toasts() == toasts
    tops = [t.geometry().top() for t in toasts]
    assert tops == sorted(tops, reverse=True)  # the first at the bottom, the next above it
    screen = QApplication.primaryScreen().availableGeometry()
    assert all(screen.contains(t.geometry()) for t in toasts)
    assert toasts[0].geometry().right() == screen.right() - manager.margin
    QTest.mouseClick(toasts[0], Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert manager.visible_toasts() == toasts[1:]
    assert toasts[1].geometry().top() == tops[0]  # the stack closed the gap
    manager.clear()
    assert manager.visible_toasts() == []


@pytest.mark.slow
def test_a_vip_arrival_carries_the_members_face_crop(cloud: Cloud) -> None:
    """Issue 14 item 8: staff see the member's face (members consented) to find them."""
    member = cloud.member("Adam_Sandler", level="silver")
    photo = sorted(require(cloud.data_dir / "faces" / "lfw" / "Adam_Sandler").glob("*.jpg"))[0]
    crop = face_sample(photo).crop
    member.sighting = {**member.sighting, "face_crop": crop.model_dump(mode="json")}
    recorder = Recorder()
    stream = stream_for(cloud.url, cloud.till, cloud.store_id, recorder)
    stream.start()
    try:
        wait_for(lambda: stream.state == "connected", 10, "connected")
        cloud.arrive(member)
        wait_for(
            lambda: any(a.customer_id == member.customer_id for a in recorder.arrivals),
            10,
            "the VIP arrival",
        )
    finally:
        assert stream.stop(3)
    [arrival] = [a for a in recorder.arrivals if a.customer_id == member.customer_id]
    # the entrance's 150x150 chip, read back from the stored alert
    assert arrival.face_jpeg_base64 == crop.jpeg_base64


@pytest.mark.slow
def test_staff_window_pops_a_toast_when_a_vip_arrives(qtbot: QtBot, cloud: Cloud) -> None:
    member = cloud.member("Bill_Gates", level="platinum")
    window = StaffWindow(store_name=cloud.store_name, toast_timeout_ms=800)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)

    def factory(
        on_arrival: Callable[[VipArrival], None], on_status: Callable[[str, str], None]
    ) -> AlertStream:
        return AlertStream(cloud.url, cloud.till, None, on_arrival, on_status)

    stream = window.attach(factory)
    qtbot.waitUntil(lambda: window.stream_state == "connected", timeout=10_000)
    assert "Live" in window.status_label.text()

    cloud.arrive(member)
    qtbot.waitUntil(lambda: len(window.toasts.visible_toasts()) == 1, timeout=10_000)
    [toast] = window.toasts.visible_toasts()
    assert isinstance(toast, Toast) and toast.isVisible()
    assert toast.title == "VIP arrival"
    assert toast.lines[0] == "Bill Gates"
    assert member.vip_number in toast.lines[1] and "platinum" in toast.lines[1]
    # non-blocking: a frameless always-on-top tool window, not modal, asking not to be
    # activated (the offscreen test platform activates every window it shows regardless, so
    # the focus itself is not asserted here)
    flags = toast.windowFlags()
    for flag in (
        Qt.WindowType.Tool,
        Qt.WindowType.FramelessWindowHint,
        Qt.WindowType.WindowStaysOnTopHint,
        Qt.WindowType.WindowDoesNotAcceptFocus,
    ):
        assert flags & flag == flag
    assert toast.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    assert toast.focusPolicy() == Qt.FocusPolicy.NoFocus
    assert not toast.isModal() and QApplication.activeModalWidget() is None
    assert window.isVisible()
    # the row, newest first
    assert window.table.rowCount() == 1
    items = [window.table.item(0, c) for c in range(window.table.columnCount())]
    row = [item.text() if item is not None else "" for item in items]
    assert row[1:] == ["Bill Gates", member.vip_number, "platinum"]
    assert window.arrivals[0].vip_number == member.vip_number
    # the toast goes by itself
    qtbot.waitUntil(lambda: window.toasts.visible_toasts() == [], timeout=5_000)
    window.close()  # stops the stream
    assert isinstance(stream, AlertStream) and not stream.running


@pytest.mark.slow
def test_run_staff_follows_the_configured_store_until_closed(
    qtbot: QtBot, cloud: Cloud, tmp_path: Path
) -> None:
    config = KioskConfig(cloud_url=cloud.url, api_key=cloud.till, store_id=None, data_dir=tmp_path)
    seen: list[str] = []
    deadline = time.monotonic() + 10

    def staff_windows() -> list[StaffWindow]:
        return [w for w in QApplication.topLevelWidgets() if isinstance(w, StaffWindow)]

    def check() -> None:
        windows = [w for w in staff_windows() if w.isVisible()]
        if windows and windows[0].stream_state == "connected":
            seen.extend(w.stream_state for w in windows)
            for window in windows:
                window.close()  # the last window: the event loop ends
        elif time.monotonic() > deadline:
            for window in windows:
                window.close()
            QApplication.exit(3)
        else:
            QTimer.singleShot(50, check)

    QTimer.singleShot(50, check)
    assert run_staff(config) == 0
    assert seen == ["connected"]
    for window in staff_windows():
        window.deleteLater()
