"""Building the packaged kiosk: PyInstaller bundle, Debian package, Windows installer script."""
