"""The container's health check: exit 0 when this container's API answers /readyz with 200.

Standard library only (it runs every few seconds: no StoreSight import, no database). The
port is the API's own, STORESIGHT_CLOUD_PORT (8700 by default); one line on stdout says why
when it fails, which `podman inspect` / `docker inspect` show in the health log.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0


def main() -> int:
    port = os.environ.get("STORESIGHT_CLOUD_PORT", "8700")
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        print(f"not ready: {url} cannot be reached: {error}")
        return 1
    if status != 200:
        print(f"not ready: {url} answered {status}")
        return 1
    print(f"ready: {url} answered 200")
    return 0


if __name__ == "__main__":
    sys.exit(main())
