"""The kiosk's configuration, loaded in one place, in this order: the defaults
(`MachineConfig`'s), the machine's file (see `machine_config`), the environment
(``STORESIGHT_KIOSK_<FIELD>``, e.g. ``STORESIGHT_KIOSK_CLOUD_URL``), the command line.

The CLI (window and headless), the service host and the settings dialog all read it from here,
and `service_config` turns it into the service's `ServiceConfig`: no field is copied by hand
anywhere else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from kiosk_app.machine_config import MachineConfig, load_config

if TYPE_CHECKING:  # the service pulls in the face pipeline: imported when it is needed
    from kiosk_app.service import ServiceConfig

ENV_PREFIX = "STORESIGHT_KIOSK_"
#: fields whose variable holds JSON rather than a plain value
_JSON_FIELDS = frozenset({"counter_zone"})


def env_variable(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The `MachineConfig` fields set by ``STORESIGHT_KIOSK_<FIELD>`` variables."""
    environ = os.environ if environ is None else environ
    found: dict[str, object] = {}
    for field in MachineConfig.model_fields:
        name = env_variable(field)
        if name not in environ:
            continue
        text = environ[name]
        if field in _JSON_FIELDS:
            try:
                found[field] = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{name} is not JSON: {error.msg}") from None
        else:
            found[field] = text
    return found


def layered(
    base: MachineConfig,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> MachineConfig:
    """`base` (defaults or the file) with the environment over it, then `overrides` (the
    command line; None values mean "not given"). A bad value names where it came from."""
    from_env = environment_overrides(environ)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - set(MachineConfig.model_fields)
    if unknown:
        raise ValueError(f"unknown kiosk setting(s): {', '.join(sorted(unknown))}")
    if not from_env and not given:
        return base
    try:
        return MachineConfig.model_validate({**base.model_dump(), **from_env, **given})
    except ValidationError as error:
        problems = []
        for e in error.errors():
            field = str(e["loc"][0]) if e["loc"] else ""
            where = (
                "the command line"
                if field in given
                else env_variable(field)
                if field in from_env
                else "the configuration"
            )
            problems.append(f"{field} ({where}): {e['msg']}")
        raise ValueError(f"invalid kiosk setting: {'; '.join(problems)}") from None


def load_kiosk_config(
    path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> MachineConfig:
    """Defaults < the machine's file (`path`, else the usual place) < environment < overrides."""
    return layered(load_config(path) or MachineConfig(), overrides, environ)


def service_config(
    config: MachineConfig,
    *,
    resize: tuple[int, int] | None = None,
    realtime: bool = False,
    loop: bool = False,
    opt_out: Callable[[str], bool] | None = None,
) -> ServiceConfig:
    """The service's configuration from the kiosk's, plus what only a run decides."""
    from kiosk_app.service import ServiceConfig

    return ServiceConfig(
        source=config.source,
        cloud_url=config.cloud_url,
        api_key=config.api_key,
        device=config.device,
        data_dir=config.data_dir,
        receipts_port=config.receipts_port,
        window_s=config.binding_window_s,
        resize=resize,
        realtime=realtime,
        loop=loop,
        opt_out=opt_out if opt_out is not None else _never_opted_out,
    )


def _never_opted_out(number: str) -> bool:
    return False
