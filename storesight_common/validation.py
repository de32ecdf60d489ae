"""How a pydantic validation error reads: one ``where: what`` line per problem.

Every place that turns a `ValidationError` into words (the API's 422 body, the kiosk's
configuration file, the receipt parser, the membership form, the alert stream) uses these, so
a field is always named the same way: its location joined with dots (``items.0.price``).
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from pydantic import ValidationError

__all__ = ["location", "problems"]


def location(loc: Iterable[object], *, skip: Container[object] = ()) -> str:
    """A pydantic error location as a dotted path (``items.0.price``), leaving out `skip`."""
    return ".".join(str(part) for part in loc if part not in skip)


def problems(error: ValidationError, *, prefix: str = "", whole: str = "") -> list[str]:
    """One ``where: message`` line per problem in `error`.

    `prefix` goes before every location (``"items.3."``); a problem with no location (the
    object as a whole) is named by the prefix without its dot, else by `whole`.
    """
    out = []
    for item in error.errors(include_url=False):
        loc = location(item["loc"])
        where = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or whole)
        out.append(f"{where}: {item['msg']}")
    return out
