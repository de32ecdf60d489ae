"""The face library both the kiosk and the cloud use: detect, align, estimate (and embed)."""
