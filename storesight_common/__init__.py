"""Small helpers every StoreSight package may use (and which use none of them).

`storesight_common` sits below `models`, `facelib`, `contract`, `kiosk_app` and `cloud_api`
in the import graph: it imports only the standard library and third-party packages.
"""
