"""The packaged kiosk's entry point (PyInstaller runs this; it is `storesight-kiosk`)."""

from kiosk_app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
