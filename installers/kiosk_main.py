"""The packaged kiosk's entry point (PyInstaller runs this; it is `storesight-kiosk`)."""

from __future__ import annotations

import sys
import types


class _LeftOut(types.ModuleType):
    """A library the package leaves out: importing it works, using it says why it fails."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # introspection (inspect, pickle) asks; it may not have them
            raise AttributeError(name)
        raise ImportError(
            f"{self.__name__}.{name}: {self.__name__} is not part of the StoreSight kiosk "
            "package (only MediaPipe's plotting helpers, which the kiosk never calls, use it)"
        )


def _without_matplotlib() -> None:
    """MediaPipe's package imports its drawing helpers on `import mediapipe`, and they import
    matplotlib.pyplot at module level. The kiosk never draws with them, and matplotlib with
    what it needs would add about 50 MB to the package, so the package leaves it out and
    this placeholder lets that import succeed."""
    try:
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        root, pyplot = _LeftOut("matplotlib"), _LeftOut("matplotlib.pyplot")
        root.__dict__["pyplot"] = pyplot
        sys.modules.setdefault("matplotlib", root)
        sys.modules.setdefault("matplotlib.pyplot", pyplot)


if __name__ == "__main__":
    _without_matplotlib()
    from kiosk_app.cli import main

    raise SystemExit(main())
