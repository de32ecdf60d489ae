"""`make demo`: the whole system on this machine (cloud API, a store, a till, the kiosk)."""
