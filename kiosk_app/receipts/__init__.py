"""Receipt inputs on the till: the POS hands the kiosk the receipt it just scanned.

Every input validates against the wire contract (`contract.Receipt`) and calls one
`ReceiptHandler(receipt, source)` for every valid receipt. A bad input is rejected with a reason
naming what was wrong (pydantic's field path and message, the CSV row) and kept for staff in the
dead-letter folder (see `kiosk_app.receipts.intake`). Nothing else is affected: the receipts
before and after it go through as usual.

Modules
-------
* `kiosk_app.receipts.parsing` — the JSON and CSV (POS export) formats, validated into
  `contract.Receipt`; a bad input raises `InvalidReceipt` with the reason.
* `kiosk_app.receipts.intake` — `ReceiptIntake`: validates, hands valid receipts to the
  `ReceiptHandler` and keeps bad inputs in the dead letters (`ReceiptRejected`, `reason_path`).
* `kiosk_app.receipts.http_endpoint` — `LocalReceiptServer`: ``POST /receipts`` on the loopback
  interface.
* `kiosk_app.receipts.folder_watcher` — `ExportFolderWatcher`: a folder the POS exports
  ``*.json`` / ``*.csv`` files into.

A receipt number from a keyboard-wedge barcode scanner or typed in is read beside the cashier
window: `kiosk_app.gui.scanned_number.parse_scanned_number`.
"""
