"""The desktop app (PySide6): cashier window, staff window, settings dialog.

Widgets only draw and react; cameras, models and the network run in worker threads
(`kiosk_app.gui.workers`, `kiosk_app.gui.service_host`) that hand results to the GUI thread
through queued Qt signals, so the window never waits on them.
"""
