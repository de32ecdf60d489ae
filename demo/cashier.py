"""A simulated cashier at the window: scans each new customer's receipt, and the POS posts it.

Used by `make screenshots` and `bench/gui_responsiveness.py`. `step()` (call it from a GUI
timer) scans a receipt number into the window's receipt field, as a keyboard-wedge scanner
types it, once a new customer has a usable shot at the counter; the POS then posts the
receipt to the till's local endpoint from another thread.
"""

from __future__ import annotations

import threading

import httpx

from demo.run import CATALOGUE, receipt_body
from kiosk_app.gui.cashier_window import CashierWindow


class ScanningCashier:
    def __init__(self, window: CashierWindow, prefix: str = "S") -> None:
        self.window = window
        self.prefix = prefix
        self.scanned = 0
        self._served: set[int] = set()

    def step(self) -> None:
        host = self.window.host
        latest, service = host.latest(), host.service
        if latest is None or service is None or latest[1].primary is None:
            return
        track = latest[1].primary.track_id
        if track in self._served or not service.pipeline.shots(track):
            return
        self._served.add(track)
        self.scanned += 1
        number = f"{self.prefix}-{self.scanned:04d}"
        self.window.receipt.setText(number)
        self.window.receipt.returnPressed.emit()  # the scanner's Enter
        url = host.receipts_url
        if url is None:
            return
        basket = [
            (CATALOGUE[self.scanned % len(CATALOGUE)], 1),
            (CATALOGUE[(self.scanned + 2) % len(CATALOGUE)], 2),
        ]
        body = receipt_body(number, basket)
        threading.Thread(target=lambda: httpx.post(url, json=body, timeout=10), daemon=True).start()
