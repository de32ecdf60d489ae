"""The kiosk's configuration, loaded in one place, in this order: the defaults (`KioskConfig`'s),
the machine's file (see `kiosk_config`), the environment, the command line.

The environment: ``STORESIGHT_KIOSK_<FIELD>`` for a setting (``STORESIGHT_KIOSK_CLOUD_URL``),
``STORESIGHT_KIOSK_<SECTION>__<FIELD>`` for one inside a section
(``STORESIGHT_KIOSK_DETECTOR__RANGE``, ``STORESIGHT_KIOSK_TRACKER__MIN_HITS``); a list or a
whole section is JSON (``STORESIGHT_KIOSK_COUNTER_ZONE='[[0.1, 0], [0.9, 0], [0.5, 1]]'``).
A ``STORESIGHT_KIOSK_*`` variable that names no setting is an error (a typo would otherwise
go unnoticed); ``STORESIGHT_KIOSK_CONFIG`` names the file.

The face library's own variables (``STORESIGHT_FACE_DETECTOR__TYPE``,
``STORESIGHT_FACE_RUNTIME__INTRA_OP_THREADS``, ...) reach the kiosk too, for the face library's
sections it holds under the same names (`FACE_SECTIONS`), read here with the kiosk's and at the
same layer (over the file). When both name one setting the kiosk's variable wins:
``STORESIGHT_KIOSK_DETECTOR__TYPE=yunet`` beats ``STORESIGHT_FACE_DETECTOR__TYPE=mediapipe``.
The face library's other variables (age and gender, warm-up) are not the kiosk's business.

Nothing else in the kiosk reads these variables: the pipeline's settings are a plain view of
the loaded configuration (`KioskConfig.pipeline_settings`). A bad value names where it came
from: the variable, the command line, or the configuration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from kiosk_app.kiosk_config import CONFIG_ENV, LEGACY_KEYS, KioskConfig, load_config
from storesight_common.validation import location

ENV_PREFIX = "STORESIGHT_KIOSK_"
FACE_PREFIX = "STORESIGHT_FACE_"
NESTED = "__"
#: the face library's settings the kiosk holds under the face library's own names
FACE_SECTIONS = frozenset({"detector", "runtime", "recognition", "max_image_pixels"})
COMMAND_LINE = "the command line"

#: where a setting is: ("detector", "range")
SettingPath = tuple[str, ...]


def env_variable(*path: str) -> str:
    """The variable of a setting: ``env_variable("detector", "range")`` is
    ``STORESIGHT_KIOSK_DETECTOR__RANGE``."""
    return ENV_PREFIX + NESTED.join(part.upper() for part in path)


def setting(path: SettingPath) -> FieldInfo | None:
    """The `KioskConfig` field at `path` (("detector", "range")), None if there is none."""
    model: type[BaseModel] | None = KioskConfig
    info: FieldInfo | None = None
    for part in path:
        if model is None:
            return None
        info = model.model_fields.get(part)
        if info is None:
            return None
        model = _model(info.annotation)
    return info


def _model(annotation: object) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _is_json(info: FieldInfo) -> bool:
    annotation = info.annotation
    return _model(annotation) is not None or get_origin(annotation) in (list, tuple, dict)


def _path(name: str, prefix: str) -> SettingPath:
    return tuple(part.lower() for part in name[len(prefix) :].split(NESTED))


def _not_a_setting(name: str) -> str:
    rest = name[len(ENV_PREFIX) :].lower()
    if rest in LEGACY_KEYS:
        hint = env_variable(*LEGACY_KEYS[rest])
        return f"{name} is not a kiosk setting (it is now {hint})"
    for section in KioskConfig.model_fields:
        inner = rest[len(section) :].lstrip("_")
        if rest.startswith(section + "_") and setting((section, inner)) is not None:
            return f"{name} is not a kiosk setting (did you mean {env_variable(section, inner)}?)"
    return f"{name} is not a kiosk setting"


def _value(name: str, text: str, info: FieldInfo) -> object:
    if not _is_json(info):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name} is not JSON: {error.msg}") from None


def environment_overrides(
    environ: Mapping[str, str] | None = None,
) -> list[tuple[SettingPath, object, str]]:
    """The settings the environment gives, as (path, value, variable), in the order they
    apply: the face library's variables first, so the kiosk's win."""
    environ = os.environ if environ is None else environ
    face: list[tuple[SettingPath, object, str]] = []
    kiosk: list[tuple[SettingPath, object, str]] = []
    for name, text in environ.items():
        upper = name.upper()
        if upper.startswith(FACE_PREFIX):
            path = _path(upper, FACE_PREFIX)
            info = setting(path) if path[0] in FACE_SECTIONS else None
            if info is not None:
                face += _entries(path, _value(name, text, info), name)
        elif upper.startswith(ENV_PREFIX) and upper != CONFIG_ENV:
            path = _path(upper, ENV_PREFIX)
            info = setting(path)
            if info is None:
                raise ValueError(_not_a_setting(upper))
            kiosk += _entries(path, _value(name, text, info), name)
    return face + kiosk


def _entries(path: SettingPath, value: object, name: str) -> list[tuple[SettingPath, object, str]]:
    """A variable's settings: one, or each field of a section given whole as JSON."""
    leaves = _flat({path[-1]: value}, path[:-1])
    return [(leaf, leaf_value, name) for leaf, leaf_value in leaves.items()]


def _flat(tree: Mapping[str, object], at: SettingPath = ()) -> dict[SettingPath, object]:
    """The leaves of a nested mapping of settings (a section given as a model or a dict is
    walked into; None leaves mean "not given")."""
    out: dict[SettingPath, object] = {}
    for key, value in tree.items():
        path = (*at, key)
        if isinstance(value, BaseModel):
            value = value.model_dump()
        info = setting(path)
        if isinstance(value, Mapping) and info is not None and _model(info.annotation):
            out.update(_flat(value, path))
        elif value is not None:
            out[path] = value
    return out


def _put(tree: dict[str, Any], path: SettingPath, value: object) -> None:
    for part in path[:-1]:
        inner = tree.get(part)
        if not isinstance(inner, dict):
            inner = tree[part] = {}
        tree = inner
    tree[path[-1]] = value


def _origin(loc: SettingPath, origins: Mapping[SettingPath, str]) -> str:
    """Where the value at an error's location came from."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in origins:
            return origins[loc[:end]]
    inside = [where for path, where in origins.items() if path[: len(loc)] == loc]
    return inside[0] if inside else "the configuration"


def layered(
    base: KioskConfig,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> KioskConfig:
    """`base` (defaults or the file) with the environment over it, then `overrides` (the
    command line, nested like the configuration: ``{"detector": {"range": "short"}}``; None
    values mean "not given"). A bad value names where it came from."""
    from_env = environment_overrides(environ)
    given = _flat(overrides or {})
    unknown = sorted(".".join(path) for path in given if setting(path) is None)
    if unknown:
        raise ValueError(f"unknown kiosk setting(s): {', '.join(unknown)}")
    if not from_env and not given:
        return base
    data = base.model_dump()
    origins: dict[SettingPath, str] = {}
    for path, value, where in [*from_env, *((p, v, COMMAND_LINE) for p, v in given.items())]:
        _put(data, path, value)
        origins[path] = where
    try:
        return KioskConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            loc = tuple(str(part) for part in e["loc"])
            problems.append(f"{location(loc)} ({_origin(loc, origins)}): {e['msg']}")
        raise ValueError(f"invalid kiosk setting: {'; '.join(problems)}") from None


def load_kiosk_config(
    path: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> KioskConfig:
    """Defaults < the machine's file (`path`, else the usual place) < environment < overrides."""
    return layered(load_config(path) or KioskConfig(), overrides, environ)
