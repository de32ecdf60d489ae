"""Receipt inputs on the till: intake, local HTTP server, export-folder watcher, scanner text."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from contract import Receipt
from kiosk_app.binding import CheckoutBinder
from kiosk_app.gui.scanned_number import parse_scanned_number
from kiosk_app.outbox import checkout_body
from kiosk_app.receipts.folder_watcher import ExportFolderWatcher
from kiosk_app.receipts.http_endpoint import LocalReceiptServer
from kiosk_app.receipts.intake import ReceiptIntake, ReceiptRejected, reason_path


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Receipt, str]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, receipt: Receipt, source: str) -> None:
        if self.fail:
            raise RuntimeError("outbox is full")
        with self._lock:
            self.calls.append((receipt, source))


def receipt_json(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": "R-1001",
        "currency": "EUR",
        "scanned_at": "2026-11-25T10:00:00Z",
        "items": [
            {
                "sku": "4006381333931",
                "name": "Stabilo pen",
                "category": "stationery",
                "brand": "Stabilo",
                "quantity": 2,
                "unit_price": "1.25",
            },
            {
                "sku": "123",
                "name": "Notebook",
                "category": "stationery",
                "quantity": 1,
                "unit_price": 3.5,
            },
        ],
    }
    body.update(changes)
    return body


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


@pytest.fixture
def intake(tmp_path: Path, handler: Recorder) -> ReceiptIntake:
    return ReceiptIntake(tmp_path / "dead", handler)


@pytest.fixture
def server(intake: ReceiptIntake) -> Iterator[LocalReceiptServer]:
    with LocalReceiptServer(intake) as running:
        yield running


def post(server: LocalReceiptServer, body: bytes, **headers: str) -> httpx.Response:
    headers.setdefault("content-type", "application/json")
    return httpx.post(f"{server.url}/receipts", content=body, headers=headers, timeout=5)


# -- HTTP ------------------------------------------------------------------------------------


def test_valid_json_over_http_reaches_the_handler_once(
    server: LocalReceiptServer, handler: Recorder, intake: ReceiptIntake
) -> None:
    response = post(server, json.dumps(receipt_json()).encode())
    assert response.status_code == 202
    assert response.json() == {"accepted": "R-1001"}
    assert len(handler.calls) == 1
    receipt, source = handler.calls[0]
    assert source == "http"
    assert receipt == Receipt.model_validate(receipt_json())
    assert receipt.scanned_at == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert receipt.items[0].unit_price == Decimal("1.25")
    assert receipt.items[1].unit_price == Decimal("3.5")
    assert receipt.total == Decimal("6.00")
    assert intake.dead_letters() == []


def test_wrapped_json_is_accepted(server: LocalReceiptServer, handler: Recorder) -> None:
    response = post(server, json.dumps({"receipt": receipt_json(number="W-7")}).encode())
    assert response.status_code == 202, response.text
    assert [r.number for r, _ in handler.calls] == ["W-7"]


def test_missing_scanned_at_is_filled_with_now_and_logged(
    intake: ReceiptIntake, handler: Recorder
) -> None:
    body = receipt_json()
    del body["scanned_at"]
    with capture_logs() as logs:
        receipt = intake.accept_json(json.dumps(body).encode(), "http")
    assert receipt.scanned_at.tzinfo is not None
    assert abs(datetime.now(UTC) - receipt.scanned_at) < timedelta(seconds=5)
    assert [e["number"] for e in logs if e["event"] == "receipt_scanned_at_filled"] == ["R-1001"]
    assert handler.calls == [(receipt, "http")]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            json.dumps(
                receipt_json(
                    items=[
                        {
                            "sku": "1",
                            "name": "x",
                            "category": "c",
                            "quantity": 1,
                            "unit_price": "1,50",
                        }
                    ]
                )
            ).encode(),
            "items.0.unit_price",
        ),
        (
            json.dumps({k: v for k, v in receipt_json().items() if k != "items"}).encode(),
            "items: Field required",
        ),
        (json.dumps(receipt_json(scanned_at="2026-11-25T10:00:00")).encode(), "scanned_at"),
        (json.dumps(receipt_json(loyalty_card="123")).encode(), "loyalty_card"),
        (b"number=R-1&total=12", "not valid JSON"),
        (json.dumps({"receipt": receipt_json(currency="euro")}).encode(), "receipt.currency"),
    ],
    ids=["bad-decimal", "missing-items", "naive-time", "extra-field", "not-json", "wrapped"],
)
def test_invalid_json_is_422_named_and_dead_lettered(
    server: LocalReceiptServer,
    intake: ReceiptIntake,
    handler: Recorder,
    body: bytes,
    named: str,
) -> None:
    response = post(server, body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert named in error
    assert handler.calls == []
    [letter] = intake.dead_letters()
    assert re.fullmatch(r"\d{8}T\d{6}Z-http-\d+\.json", letter.name), letter.name
    assert letter.read_bytes() == body
    reason = reason_path(letter).read_text()
    assert named in reason and "source: http" in reason


def test_naive_time_reason_quotes_the_contract(intake: ReceiptIntake) -> None:
    with pytest.raises(ReceiptRejected) as caught:
        intake.accept_json(
            json.dumps(receipt_json(scanned_at="2026-11-25T10:00:00")).encode(), "http"
        )
    assert "scanned_at" in caught.value.reason
    assert "time zone" in caught.value.reason
    assert caught.value.dead_letter is not None and caught.value.dead_letter.exists()


def test_oversized_body_is_413_and_nothing_else(
    server: LocalReceiptServer, intake: ReceiptIntake, handler: Recorder
) -> None:
    body = b'{"number": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = post(server, body)
    assert response.status_code == 413
    assert handler.calls == [] and intake.dead_letters() == []
    # the server is still there for the next receipt
    assert post(server, json.dumps(receipt_json()).encode()).status_code == 202


def test_other_paths_methods_and_types(server: LocalReceiptServer, handler: Recorder) -> None:
    body = json.dumps(receipt_json()).encode()
    assert httpx.post(f"{server.url}/other", content=body).status_code == 404
    assert httpx.get(f"{server.url}/").status_code == 404
    got = httpx.get(f"{server.url}/receipts")
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    assert httpx.delete(f"{server.url}/receipts").status_code == 405
    assert post(server, body, **{"content-type": "text/plain"}).status_code == 415
    assert handler.calls == []


def test_handler_failure_is_500_and_not_dead_lettered(tmp_path: Path) -> None:
    intake = ReceiptIntake(tmp_path / "dead", Recorder(fail=True))
    with LocalReceiptServer(intake) as server:
        response = post(server, json.dumps(receipt_json()).encode())
    assert response.status_code == 500
    assert intake.dead_letters() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "till.example.com", ""])
def test_non_loopback_host_is_refused(intake: ReceiptIntake, host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalReceiptServer(intake, host=host)


def test_loopback_names_are_fine(intake: ReceiptIntake) -> None:
    assert LocalReceiptServer(intake, host="localhost").host == "127.0.0.1"
    assert LocalReceiptServer(intake, host="127.0.0.2").host == "127.0.0.2"
    with pytest.raises(RuntimeError):
        _ = LocalReceiptServer(intake).url  # not started


def test_concurrent_posts_each_reach_the_handler(
    server: LocalReceiptServer, handler: Recorder
) -> None:
    numbers = [f"C-{i}" for i in range(8)]
    statuses: list[int] = []

    def send(number: str) -> None:
        statuses.append(post(server, json.dumps(receipt_json(number=number)).encode()).status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [202] * 8
    assert sorted(r.number for r, _ in handler.calls) == sorted(numbers)


# -- CSV -------------------------------------------------------------------------------------

HEADER = "number,scanned_at,sku,name,category,brand,quantity,unit_price,currency\r\n"
TWO_RECEIPTS = (
    HEADER
    + "A-1,2026-11-25T10:00:00Z,111,Milk,dairy,Alpro,2,1.19,EUR\r\n"
    + 'B-2,2026-11-25T10:05:00+01:00,222,"Bread, rye",bakery,,1,2.50,EUR\r\n'
    + "A-1,2026-11-25T10:00:00Z,333,Butter,dairy,Kerrygold,1.5,3.00,EUR\r\n"
)


def test_csv_two_receipts_grouped_by_number(intake: ReceiptIntake, handler: Recorder) -> None:
    receipts = intake.accept_csv(("\ufeff" + TWO_RECEIPTS).encode(), "folder:x.csv")
    assert [r.number for r in receipts] == ["A-1", "B-2"]
    assert [(r.number, s) for r, s in handler.calls] == [
        ("A-1", "folder:x.csv"),
        ("B-2", "folder:x.csv"),
    ]
    a, b = receipts
    assert [i.sku for i in a.items] == ["111", "333"]
    assert a.items[1].quantity == Decimal("1.5") and a.total == Decimal("6.88")
    assert b.items[0].name == "Bread, rye" and b.items[0].brand == ""
    assert b.scanned_at == datetime(2026, 11, 25, 9, 5, tzinfo=UTC)


def test_csv_without_currency_column_defaults_to_eur(intake: ReceiptIntake) -> None:
    raw = (
        b"number,scanned_at,sku,name,category,brand,quantity,unit_price\n"
        b"Z-9,2026-11-25T10:00:00Z,1,Tea,drinks,,1,4.20\n"
    )
    [receipt] = intake.accept_csv(raw, "test")
    assert receipt.currency == "EUR"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (TWO_RECEIPTS.replace("1,2.50,EUR", '1,"2,50",EUR'), ["row 3", "unit_price"]),
        (TWO_RECEIPTS.replace("Butter,dairy", "Butter,"), ["row 4", "category"]),
        (
            TWO_RECEIPTS.replace("B-2,2026-11-25T10:05:00+01:00", "B-2,2026-11-25T10:05:00"),
            ["row 3", "scanned_at"],
        ),
        (TWO_RECEIPTS.replace("333,Butter", "333,Butter,extra"), ["row 4", "expected 9 values"]),
        (
            TWO_RECEIPTS.replace("A-1,2026-11-25T10:00:00Z,333", "A-1,2026-11-25T11:00:00Z,333"),
            ["row 4", "scanned_at", "row 2"],
        ),
        (
            HEADER.replace("unit_price", "price") + "A,2026-11-25T10:00:00Z,1,x,c,,1,1,EUR\n",
            ["unit_price", "'price'"],
        ),
        (HEADER.replace(",", ";") + "A;x\n", ["';'"]),
        (HEADER, ["no line items"]),
        ("", ["empty file"]),
    ],
    ids=[
        "comma-decimal",
        "empty-category",
        "naive-time",
        "extra-cell",
        "disagreeing-time",
        "wrong-header",
        "semicolons",
        "header-only",
        "empty",
    ],
)
def test_csv_bad_row_dead_letters_the_whole_file(
    intake: ReceiptIntake, handler: Recorder, raw: str, named: list[str]
) -> None:
    with pytest.raises(ReceiptRejected) as caught:
        intake.accept_csv(raw.encode(), "folder:export_123.csv")
    for text in named:
        assert text in caught.value.reason
    assert handler.calls == []
    [letter] = intake.dead_letters()
    assert re.fullmatch(r"\d{8}T\d{6}Z-folder_export_123\.csv-\d+\.csv", letter.name)
    assert letter.read_bytes() == raw.encode()
    assert caught.value.reason in reason_path(letter).read_text()


def test_csv_not_utf8_is_rejected(intake: ReceiptIntake) -> None:
    raw = TWO_RECEIPTS.replace("Milk", "Müsli").encode("latin-1")
    with pytest.raises(ReceiptRejected, match="not UTF-8"):
        intake.accept_csv(raw, "t")


def test_dead_letter_names_do_not_collide(intake: ReceiptIntake) -> None:
    for _ in range(5):
        with pytest.raises(ReceiptRejected):
            intake.accept_json(b"{", "http")
    letters = intake.dead_letters()
    assert len(letters) == 5 and len({p.name for p in letters}) == 5
    assert all(reason_path(p).is_file() for p in letters)


# -- export folder ---------------------------------------------------------------------------


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


def test_folder_csv_is_processed_once_and_moved(
    intake: ReceiptIntake, handler: Recorder, exports: Path
) -> None:
    watcher = ExportFolderWatcher(intake, exports)
    (exports / "export_1.csv").write_text(TWO_RECEIPTS, encoding="utf-8")
    watcher.poll()
    assert handler.calls == []  # seen once: might still be written
    watcher.poll()
    assert [(r.number, s) for r, s in handler.calls] == [
        ("A-1", "folder:export_1.csv"),
        ("B-2", "folder:export_1.csv"),
    ]
    assert not (exports / "export_1.csv").exists()
    assert (exports / "processed" / "export_1.csv").read_bytes() == TWO_RECEIPTS.encode()
    for _ in range(3):
        watcher.poll()
    assert len(handler.calls) == 2


def test_folder_bad_file_goes_to_dead_letters(
    intake: ReceiptIntake, handler: Recorder, exports: Path
) -> None:
    raw = json.dumps(receipt_json(items=[])).encode()
    (exports / "bad.json").write_bytes(raw)
    watcher = ExportFolderWatcher(intake, exports)
    watcher.poll()
    watcher.poll()
    assert handler.calls == []
    assert not (exports / "bad.json").exists()
    assert not (exports / "processed").exists()
    [letter] = intake.dead_letters()
    assert "folder_bad.json" in letter.name and letter.read_bytes() == raw
    assert "items" in reason_path(letter).read_text()


def test_folder_file_written_in_two_chunks_is_read_complete(
    intake: ReceiptIntake, handler: Recorder, exports: Path
) -> None:
    lines = TWO_RECEIPTS.splitlines(keepends=True)
    path = exports / "slow.csv"
    watcher = ExportFolderWatcher(intake, exports)
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write("".join(lines[:2]))  # a valid file already: header and one row
        stream.flush()
        watcher.poll()
        stream.write("".join(lines[2:]))
        stream.flush()
        watcher.poll()
        assert handler.calls == []  # changed since the last poll
    watcher.poll()
    assert [len(r.items) for r, _ in handler.calls] == [2, 1]


def test_folder_watcher_thread_waits_for_a_slow_writer(
    intake: ReceiptIntake, handler: Recorder, exports: Path
) -> None:
    lines = TWO_RECEIPTS.splitlines(keepends=True)
    with ExportFolderWatcher(intake, exports, poll_s=0.2):
        with (exports / "slow.csv").open("w", encoding="utf-8", newline="") as stream:
            stream.write("".join(lines[:2]))
            stream.flush()
            time.sleep(0.1)  # less than a poll: no two polls can see the half file
            stream.write("".join(lines[2:]))
        deadline = time.monotonic() + 5
        while not (exports / "processed" / "slow.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a few more polls
    assert [(r.number, len(r.items)) for r, _ in handler.calls] == [("A-1", 2), ("B-2", 1)]


def test_folder_temp_and_other_names_are_ignored(
    intake: ReceiptIntake, handler: Recorder, exports: Path
) -> None:
    names = [".hidden.csv", "export.csv.tmp", "export.csv~", "~$export.csv", "notes.txt"]
    for name in names:
        (exports / name).write_text(TWO_RECEIPTS, encoding="utf-8")
    watcher = ExportFolderWatcher(intake, exports)
    for _ in range(3):
        watcher.poll()
    assert handler.calls == [] and intake.dead_letters() == []
    assert sorted(p.name for p in exports.iterdir()) == sorted(names)
    (exports / "export.csv.tmp").rename(exports / "export.csv")  # the POS finishes its write
    watcher.poll()
    watcher.poll()
    assert len(handler.calls) == 2


def test_folder_file_vanishing_is_survived(
    intake: ReceiptIntake, handler: Recorder, exports: Path
) -> None:
    watcher = ExportFolderWatcher(intake, exports)
    (exports / "gone.json").write_text(json.dumps(receipt_json()), encoding="utf-8")
    watcher.poll()
    (exports / "gone.json").unlink()
    watcher.poll()
    watcher.poll()
    assert handler.calls == [] and intake.dead_letters() == []


def test_folder_failed_move_is_retried_without_reprocessing(
    intake: ReceiptIntake, handler: Recorder, exports: Path
) -> None:
    (exports / "processed").write_text("in the way")  # a file where the folder should be
    (exports / "r.json").write_text(json.dumps(receipt_json()), encoding="utf-8")
    watcher = ExportFolderWatcher(intake, exports)
    for _ in range(4):
        watcher.poll()
    assert len(handler.calls) == 1 and (exports / "r.json").exists()
    (exports / "processed").unlink()
    watcher.poll()
    assert len(handler.calls) == 1
    assert (exports / "processed" / "r.json").exists() and not (exports / "r.json").exists()


def test_folder_handler_failure_goes_to_failed(tmp_path: Path, exports: Path) -> None:
    intake = ReceiptIntake(tmp_path / "dead", Recorder(fail=True))
    (exports / "r.json").write_text(json.dumps(receipt_json()), encoding="utf-8")
    watcher = ExportFolderWatcher(intake, exports)
    watcher.poll()
    watcher.poll()
    failed = exports / "failed" / "r.json"
    assert failed.exists() and "outbox is full" in reason_path(failed).read_text()
    assert intake.dead_letters() == []


def test_folder_must_not_be_the_dead_letter_folder(tmp_path: Path, handler: Recorder) -> None:
    intake = ReceiptIntake(tmp_path, handler)
    with pytest.raises(ValueError, match="dead-letter"):
        ExportFolderWatcher(intake, tmp_path)


# -- scanner / typed entry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("R-1001\r\n", "R-1001"),
        ("  0042319  ", "0042319"),
        ("\tabc-XYZ-9\n", "abc-XYZ-9"),
        ("A" * 64, "A" * 64),
        ("A" * 65, None),
        ("", None),
        ("  \r\n", None),
        ("R 1001", None),
        ("R_1001", None),
        ("R-1001\nR-1002", None),
        ("Ré-1", None),
        ("١٢٣", None),
    ],
)
def test_parse_scanned_number(text: str, number: str | None) -> None:
    assert parse_scanned_number(text) == number


# -- ground truth: the member card and the payment token the POS scanned ---------------------

TOKEN = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _sent(receipt: Receipt) -> dict[str, Any]:
    """The receipt as the checkout the uplink sends carries it."""
    binder = CheckoutBinder(lambda _: [], lambda _: [], device="till-1")
    body: dict[str, Any] = json.loads(checkout_body(binder.bind(receipt, at=0.0).request))
    return body["receipt"]  # type: ignore[no-any-return]


def test_loyalty_id_and_payment_token_reach_the_cloud_unchanged(
    server: LocalReceiptServer, handler: Recorder, intake: ReceiptIntake
) -> None:
    body = receipt_json(loyalty_id="VIP-000123", payment_token=TOKEN)
    assert post(server, json.dumps(body).encode()).status_code == 202
    [(receipt, _)] = handler.calls
    assert receipt.loyalty_id == "VIP-000123" and receipt.payment_token == TOKEN
    sent = _sent(receipt)
    assert sent["loyalty_id"] == "VIP-000123" and sent["payment_token"] == TOKEN
    # a receipt without them sends neither (no nulls on the wire)
    assert post(server, json.dumps(receipt_json(number="R-2")).encode()).status_code == 202
    plain = _sent(handler.calls[1][0])
    assert "loyalty_id" not in plain and "payment_token" not in plain
    assert intake.dead_letters() == []


def test_csv_loyalty_id_and_payment_token_columns(intake: ReceiptIntake) -> None:
    raw = (
        "number,scanned_at,sku,name,category,brand,quantity,unit_price,loyalty_id,payment_token\n"
        f"A-1,2026-11-25T10:00:00Z,1,Tea,drinks,,1,4.20,VIP-7,{TOKEN}\n"
        f"A-1,2026-11-25T10:00:00Z,2,Milk,dairy,,1,1.10,VIP-7,{TOKEN}\n"
        "B-2,2026-11-25T10:01:00Z,1,Tea,drinks,,1,4.20,,\n"
    )
    a, b = intake.accept_csv(raw.encode(), "folder:x.csv")
    assert (a.loyalty_id, a.payment_token) == ("VIP-7", TOKEN)
    assert (b.loyalty_id, b.payment_token) == (None, None)
    assert _sent(a)["payment_token"] == TOKEN and _sent(a)["loyalty_id"] == "VIP-7"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"payment_token": TOKEN[:-1]}, "payment_token"),  # 63 digits
        ({"payment_token": TOKEN.upper()}, "payment_token"),  # not lowercase hex
        ({"payment_token": "4111111111111111"}, "payment_token"),  # a card number, never
        ({"loyalty_id": "VIP 123"}, "loyalty_id"),
        ({"loyalty_id": ""}, "loyalty_id"),
    ],
    ids=["short-token", "upper-token", "card-number", "loyalty-space", "loyalty-empty"],
)
def test_a_bad_loyalty_id_or_payment_token_is_dead_lettered_naming_the_field(
    server: LocalReceiptServer,
    intake: ReceiptIntake,
    handler: Recorder,
    changes: dict[str, str],
    field: str,
) -> None:
    body = json.dumps(receipt_json(**changes)).encode()
    with capture_logs() as logs:
        response = post(server, body)
    assert response.status_code == 422
    assert field in response.json()["error"]
    assert handler.calls == []
    [letter] = intake.dead_letters()
    assert letter.read_bytes() == body  # kept as sent, for staff
    reason = reason_path(letter).read_text()
    assert field in reason
    value = changes[field]
    if value:  # the customer's numbers are in the dead letter only, never in a reason or log
        assert value not in reason and value not in json.dumps(logs, default=str)


def test_a_csv_receipt_whose_rows_disagree_on_the_token_is_dead_lettered(
    intake: ReceiptIntake,
) -> None:
    other = "0" * 64
    raw = (
        "number,scanned_at,sku,name,category,brand,quantity,unit_price,payment_token\n"
        f"A-1,2026-11-25T10:00:00Z,1,Tea,drinks,,1,4.20,{TOKEN}\n"
        f"A-1,2026-11-25T10:00:00Z,2,Milk,dairy,,1,1.10,{other}\n"
        "B-2,2026-11-25T10:01:00Z,1,Tea,drinks,,1,4.20,not-a-token\n"
    )
    with pytest.raises(ReceiptRejected) as caught:
        intake.accept_csv(raw.encode(), "folder:x.csv")
    reason = caught.value.reason
    assert "row 3: payment_token differs" in reason and "row 4: payment_token" in reason
    assert TOKEN not in reason and other not in reason
    [letter] = intake.dead_letters()
    assert "payment_token" in reason_path(letter).read_text()
