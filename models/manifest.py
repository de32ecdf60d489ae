"""The model manifest: where each model comes from, its checksum, licence and input contract."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.errors import UnknownModelError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
DEFAULT_MODELS_DIR = Path(__file__).with_name("files")
MODELS_DIR_ENV = "STORESIGHT_MODELS_DIR"

#: Licences that may ship in a commercial product.
COMMERCIAL_LICENSES = frozenset(
    {"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "CC0-1.0", "Public-Domain"}
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WheelSource(_Strict):
    """A file inside a wheel on PyPI."""

    package: str
    version: str
    path_in_wheel: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


class Conversion(_Strict):
    """A model StoreSight generates from another manifest entry with one of its converters."""

    from_model: str
    converter: Literal["dlib_resnet_to_onnx"]


class InputContract(_Strict):
    """What the network expects; width/height 0 means any size."""

    width: int = Field(ge=0)
    height: int = Field(ge=0)
    color_order: Literal["RGB", "BGR"]
    layout: Literal["NCHW", "NHWC"]
    normalization: str
    dtype: Literal["uint8", "float32"] = "float32"
    chip_padding: float | None = None


class ModelSpec(_Strict):
    task: str
    description: str
    source: WheelSource | None = None
    converted: Conversion | None = None
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(gt=0)
    license: str
    used_at: Literal["runtime", "development"]
    input: InputContract

    @property
    def origin(self) -> str:
        """Where the file comes from, for messages: a wheel, or a conversion of another model."""
        if self.source is not None:
            return self.source.requirement
        assert self.converted is not None
        return f"{self.converted.converter} applied to model {self.converted.from_model!r}"

    @model_validator(mode="after")
    def _one_origin(self) -> ModelSpec:
        if (self.source is None) == (self.converted is None):
            raise ValueError(f"{self.file}: give exactly one of 'source' and 'converted'")
        return self

    @model_validator(mode="after")
    def _shippable(self) -> ModelSpec:
        if self.used_at == "runtime" and self.license not in COMMERCIAL_LICENSES:
            raise ValueError(
                f"{self.file}: licence {self.license!r} may not ship in the product "
                f"(allowed: {', '.join(sorted(COMMERCIAL_LICENSES))})"
            )
        return self


class Manifest(_Strict):
    schema_version: Literal[1]
    models: dict[str, ModelSpec]

    @model_validator(mode="after")
    def _conversions_resolve(self) -> Manifest:
        for name, spec in self.models.items():
            if spec.converted is None:
                continue
            parent = self.models.get(spec.converted.from_model)
            if parent is None or parent.source is None:
                raise ValueError(
                    f"model {name!r} is converted from {spec.converted.from_model!r}, "
                    "which is not a model fetched from a wheel in this manifest"
                )
        return self

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise UnknownModelError(
                f"no model named {name!r} in the manifest (known: {known})"
            ) from None


@lru_cache(maxsize=1)
def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    return Manifest.model_validate_json(path.read_bytes())


def models_dir() -> Path:
    """Where fetched model files live: $STORESIGHT_MODELS_DIR, else models/files in the tree."""
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured) if configured else DEFAULT_MODELS_DIR
