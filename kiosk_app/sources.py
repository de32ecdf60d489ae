"""Frame sources behind one interface: cameras, network streams, video files, image folders.

`open_source(spec)` turns what the operator typed into a `FrameSource`:

* an `int` or an all-digit string: camera index (`cv2.VideoCapture(index)`); a character
  device such as `/dev/video0` is a camera too;
* `rtsp://`, `rtsps://`, `rtsp+tcp://` (RTSP forced over TCP), `http://`, `https://`: a
  network stream, opened with OpenCV's FFmpeg backend and bounded open/read timeouts;
* an existing directory: its `*.jpg`, `*.jpeg` and `*.png` files in name order, one frame
  each, at a nominal 10 frames per second; a single image file is a one-frame folder;
* any other existing file: a video file.

Anything else raises `SourceError` straight away with a message naming the spec (URLs with
credentials masked). Sources are not thread-safe: one thread opens, reads and closes them
(`kiosk_app.capture.CaptureThread` does so in its own thread).
"""

from __future__ import annotations

import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np
import structlog

from facelib.types import RGBImage
from kiosk_app.frames import Frame

log = structlog.get_logger(__name__)

#: Suffixes an image folder source reads (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Timestamps of image-folder frames are index / this.
FOLDER_FPS = 10.0
#: Open and read timeout for network streams, seconds.
DEFAULT_STREAM_TIMEOUT_S = 5.0
#: Used for a video file that reports neither positions nor a frame rate.
_FALLBACK_FPS = 25.0

STREAM_SCHEMES = ("rtsp", "rtsps", "rtsp+tcp", "http", "https")
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "rtsp+tcp": 554, "http": 80, "https": 443}
_SENSITIVE_QUERY_KEYS = re.compile(
    r"pass|pwd|secret|token|key|auth|sig|credential|session|user", re.IGNORECASE
)
_HOST_CHARS = re.compile(r"^[A-Za-z0-9._~%:-]+$")
_SCHEME_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")

# OPENCV_FFMPEG_CAPTURE_OPTIONS is read by OpenCV's FFmpeg backend on every open; changing the
# environment while another thread opens a stream is unsafe, so stream opens are serialised.
_FFMPEG_OPEN_LOCK = threading.Lock()
_FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

SourceKind = Literal["camera", "stream", "file"]


class SourceError(Exception):
    """A source that cannot be opened or read; the message names the source and says why."""


class SourceLost(SourceError):
    """A live source (camera, network stream) stopped delivering frames."""


@runtime_checkable
class FrameSource(Protocol):
    """What `CaptureThread` and the pipeline read frames from."""

    #: For logs and errors; never contains credentials from a URL.
    name: str
    #: Camera or network stream: reconnect on loss. File or folder: ends cleanly.
    live: bool

    def open(self) -> None:
        """Open (or reopen) the source; raises `SourceError` with a clear message."""
        ...

    def read(self) -> Frame | None:
        """The next frame; None at the end of a file or folder. Live sources raise `SourceLost`."""
        ...

    def close(self) -> None:
        """Release the device, connection or file; safe to call more than once."""
        ...


@contextmanager
def opened(source: FrameSource) -> Iterator[FrameSource]:
    """`with opened(open_source(spec)) as source:` opens the source and always closes it."""
    source.open()
    try:
        yield source
    finally:
        source.close()


# ---- spec parsing ------------------------------------------------------------------------------


def open_source(
    spec: str | int | Path,
    *,
    resize: tuple[int, int] | None = None,
    timeout_s: float = DEFAULT_STREAM_TIMEOUT_S,
) -> FrameSource:
    """A source for `spec`, not yet opened; raises `SourceError` for a spec that cannot work.

    Checks what can be checked without opening (the file exists, the folder holds images, the
    URL has a supported scheme and a host); a camera or stream that cannot be reached fails in
    `open()`. `resize=(width, height)` scales every frame at read (cv2.INTER_AREA);
    `timeout_s` bounds opening and each read of a network stream.
    """
    size = _check_resize(resize)
    if isinstance(spec, bool):
        raise SourceError(f"not a frame source: {spec!r}")
    if isinstance(spec, int):
        return _camera(spec, size)
    text = str(spec)
    if not text.strip():
        raise SourceError("empty source: give a camera index, a stream URL, a video or a folder")
    if text.strip().isascii() and text.strip().isdigit():
        return _camera(int(text.strip()), size)
    if "://" in text:
        return OpenCVSource(_check_url(text), kind="stream", resize=size, timeout_s=timeout_s)
    path = Path(text).expanduser()
    if path.is_dir():
        source = ImageFolderSource(path, resize=size)
        if not source.image_paths():
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        return source
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFolderSource(path, resize=size)
        return OpenCVSource(str(path), kind="file", resize=size)
    if path.is_char_device():
        return OpenCVSource(str(path), kind="camera", resize=size)
    scheme = _SCHEME_PREFIX.match(text)
    if scheme and len(scheme.group(1)) > 1:  # "C:\clip.mp4" is a drive letter, not a scheme
        _check_url(text)  # "rtsp:/host" and "ftp:x" get a URL message, not "file not found"
        raise SourceError(f"malformed URL {mask_url(text)}: expected scheme://host[:port]/path")
    if path.exists():
        raise SourceError(f"not a video file, folder or camera: {path}")
    raise SourceError(f"video file not found: {path}")


def _camera(index: int, size: tuple[int, int] | None) -> FrameSource:
    if index < 0:
        raise SourceError(f"camera index must be 0 or more, not {index}")
    return OpenCVSource(index, kind="camera", resize=size)


def _check_resize(resize: tuple[int, int] | None) -> tuple[int, int] | None:
    if resize is None:
        return None
    width, height = resize
    if int(width) != width or int(height) != height or width <= 0 or height <= 0:
        raise ValueError(f"resize must be two positive integers (width, height), not {resize}")
    return int(width), int(height)


def _check_url(url: str) -> str:
    """`url` if it is a stream URL OpenCV can try; SourceError naming the (masked) URL if not."""
    masked = mask_url(url)
    if any(ch.isspace() for ch in url):
        raise SourceError(f"malformed URL {masked}: contains whitespace")
    scheme_match = _SCHEME_PREFIX.match(url)
    if scheme_match is None:
        raise SourceError(f"malformed URL {masked}: no scheme (use rtsp://host/path)")
    scheme = scheme_match.group(1).lower()
    if scheme not in STREAM_SCHEMES:
        supported = ", ".join(f"{s}://" for s in STREAM_SCHEMES)
        raise SourceError(f"unsupported URL scheme {scheme!r} in {masked}: use {supported}")
    if not url[len(scheme) + 1 :].startswith("//"):
        raise SourceError(f"malformed URL {masked}: expected {scheme}://host[:port]/path")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise SourceError(f"malformed URL {masked}: {error}") from None
    host = parts.hostname
    if not host:
        raise SourceError(f"malformed URL {masked}: no host")
    if not _HOST_CHARS.match(host):
        raise SourceError(f"malformed URL {masked}: invalid host {host!r}")
    if port == 0:
        raise SourceError(f"malformed URL {masked}: port 0")
    return url


def mask_url(url: str) -> str:
    """`url` with any user:password and credential-like query values replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/]*@", "//***@", url)
    netloc = parts.netloc
    query = parts.query
    masked = False
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
        masked = True
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SENSITIVE_QUERY_KEYS.search(key) for key, _ in pairs):
            query = urlencode(
                [(k, "***" if _SENSITIVE_QUERY_KEYS.search(k) else v) for k, v in pairs],
                safe="*",
            )
            masked = True
    if not masked:
        # As typed (urlunsplit would rewrite "rtsp:/x" as "rtsp:///x"), but still hide the
        # user:password of a malformed URL such as "rtsp:/user:pass@host/x".
        return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*:/*)[^/?#]*@", r"\1***@", url)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# ---- conversion --------------------------------------------------------------------------------


def to_rgb(image: np.ndarray[Any, Any], resize: tuple[int, int] | None) -> RGBImage:
    """BGR/BGRA/gray uint8 as OpenCV delivers it → resized, C-contiguous RGB."""
    if resize is not None and (image.shape[1], image.shape[0]) != resize:
        image = cv2.resize(image, resize, interpolation=cv2.INTER_AREA)
    if image.ndim == 2:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if rgb.dtype != np.uint8:
        raise SourceError(f"unsupported pixel type {rgb.dtype} (expected 8-bit)")
    result: RGBImage = np.ascontiguousarray(rgb)
    return result


# ---- sources -----------------------------------------------------------------------------------


class OpenCVSource:
    """A camera, network stream or video file read with `cv2.VideoCapture`."""

    def __init__(
        self,
        target: str | int,
        *,
        kind: SourceKind,
        resize: tuple[int, int] | None = None,
        timeout_s: float = DEFAULT_STREAM_TIMEOUT_S,
    ) -> None:
        self.kind: SourceKind = kind
        self.live = kind != "file"
        self.resize = resize
        self.timeout_s = timeout_s
        self._target = target
        if kind == "camera":
            self.name = f"camera {target}"
        elif kind == "stream":
            self.name = mask_url(str(target))
        else:
            self.name = str(target)
        #: Nominal frame rate reported by the backend (0 when unknown); set by open().
        self.fps = 0.0
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._last_timestamp = -math.inf

    def open(self) -> None:
        self.close()
        if self.kind == "camera":
            capture = cv2.VideoCapture(self._target)
            if not capture.isOpened():
                capture.release()
                raise SourceError(
                    f"cannot open {self.name}: no such device, or another program is using it"
                )
        elif self.kind == "stream":
            capture = self._open_stream()
        else:
            path = Path(str(self._target))
            if not path.is_file():
                raise SourceError(f"video file not found: {path}")
            capture = cv2.VideoCapture(str(path))
            if not capture.isOpened():
                capture.release()
                raise SourceError(f"cannot open video file {path}: not a video OpenCV can decode")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and 0.0 < fps < 1000.0 else 0.0
        self._capture = capture
        if not self.live:
            self._index = 0
            self._last_timestamp = -math.inf

    def _open_stream(self) -> cv2.VideoCapture:
        url = str(self._target)
        scheme = url.split(":", 1)[0].lower()
        if scheme == "rtsp+tcp":
            url = "rtsp" + url[len(scheme) :]
        timeout_ms = max(1, round(self.timeout_s * 1000))
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            timeout_ms,
        ]
        with _FFMPEG_OPEN_LOCK:
            previous = os.environ.get(_FFMPEG_OPTIONS_ENV)
            if scheme == "rtsp+tcp":
                forced = "rtsp_transport;tcp"
                os.environ[_FFMPEG_OPTIONS_ENV] = f"{previous}|{forced}" if previous else forced
            try:
                capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
            finally:
                if scheme == "rtsp+tcp":
                    if previous is None:
                        os.environ.pop(_FFMPEG_OPTIONS_ENV, None)
                    else:
                        os.environ[_FFMPEG_OPTIONS_ENV] = previous
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open stream {self.name}: {self._diagnose(url)}")
        return capture

    def _diagnose(self, url: str) -> str:
        """Why a stream did not open, as far as a plain TCP connect can tell."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 554)
        try:
            with socket.create_connection((host, port), timeout=min(self.timeout_s, 3.0)):
                pass
        except socket.gaierror:
            return f"cannot resolve host {host!r}"
        except ConnectionRefusedError:
            return f"connection refused by {host}:{port}"
        except TimeoutError:
            return f"no answer from {host}:{port} (timed out)"
        except OSError as error:
            return f"cannot connect to {host}:{port}: {error.strerror or error}"
        return (
            f"{host}:{port} accepts connections but no video arrived within "
            f"{self.timeout_s:g} s (wrong path or credentials, or an unsupported codec?)"
        )

    def read(self) -> Frame | None:
        capture = self._capture
        if capture is None:
            if self.live:
                raise SourceLost(f"{self.name} is not open")
            raise SourceError(f"{self.name} is not open")
        try:
            ok, image = capture.read()
        except cv2.error as error:
            if self.live:
                raise SourceLost(f"{self.name}: read failed: {error}") from error
            raise SourceError(f"{self.name}: read failed: {error}") from error
        if not ok or image is None:
            if self.live:
                raise SourceLost(
                    f"{self.name} stopped delivering frames (unplugged, stream ended or "
                    f"no frame within the read timeout)"
                )
            return None
        timestamp = time.monotonic() if self.live else self._file_timestamp(capture)
        rgb = to_rgb(image, self.resize)
        frame = Frame(index=self._index, timestamp=timestamp, image=rgb)
        self._index += 1
        self._last_timestamp = timestamp
        return frame

    def _file_timestamp(self, capture: cv2.VideoCapture) -> float:
        """The frame's position in seconds; strictly increasing even for odd containers."""
        position = float(capture.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        if math.isfinite(position) and position >= 0.0 and position > self._last_timestamp:
            return position
        step = 1.0 / (self.fps or _FALLBACK_FPS)
        if self._last_timestamp == -math.inf:
            return self._index * step
        return self._last_timestamp + step

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class ImageFolderSource:
    """The images of a folder in name order (or one image file), one frame each."""

    live = False

    def __init__(
        self, path: Path, *, resize: tuple[int, int] | None = None, fps: float = FOLDER_FPS
    ) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.resize = resize
        self.fps = fps
        self._paths: list[Path] | None = None
        self._position = 0
        self._index = 0

    def image_paths(self) -> list[Path]:
        """The images this source reads, sorted by name."""
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            return []
        return sorted(
            p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )

    def open(self) -> None:
        if not self.path.exists():
            raise SourceError(f"image folder not found: {self.path}")
        paths = self.image_paths()
        if not paths:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {self.path}")
        self._paths = paths
        self._position = 0
        self._index = 0

    def read(self) -> Frame | None:
        if self._paths is None:
            raise SourceError(f"{self.name} is not open")
        while self._position < len(self._paths):
            path = self._paths[self._position]
            self._position += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("source_image_unreadable", source=self.name, path=str(path))
                continue
            frame = Frame(
                index=self._index,
                timestamp=self._index / self.fps,
                image=to_rgb(image, self.resize),
            )
            self._index += 1
            return frame
        return None

    def close(self) -> None:
        self._paths = None


class StageTimes(Protocol):
    """Where `TimedSource` adds the time each read took (`kiosk_app.pipeline.StageTimer`)."""

    def add(self, stage: str, seconds: float, count: int = 1) -> None: ...


class TimedSource:
    """Wraps a source to time each read (the decode stage) on the capture thread."""

    def __init__(self, inner: FrameSource, timer: StageTimes) -> None:
        self._inner = inner
        self._timer = timer
        self.name = inner.name
        self.live = inner.live

    def open(self) -> None:
        self._inner.open()

    def read(self) -> Frame | None:
        started = time.perf_counter()
        frame = self._inner.read()
        if frame is not None:
            self._timer.add("decode", time.perf_counter() - started)
        return frame

    def close(self) -> None:
        self._inner.close()


class PacedSource:
    """Plays a file at its own frame rate, as a camera would deliver it (demos, benchmarks).

    Without pacing a file is read as fast as the pipeline takes frames, which no camera does.
    """

    def __init__(self, inner: FrameSource) -> None:
        self._inner = inner
        self.name = inner.name
        self.live = inner.live
        self._start: float | None = None
        self._first_ts = 0.0

    def open(self) -> None:
        self._inner.open()
        self._start = None

    def read(self) -> Frame | None:
        frame = self._inner.read()
        if frame is None:
            return None
        if self._start is None:
            self._start, self._first_ts = time.monotonic(), frame.timestamp
        due = self._start + (frame.timestamp - self._first_ts)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return frame

    def close(self) -> None:
        self._inner.close()


class LoopedSource:
    """Plays a file or folder over and over, as one endless stream (a shop-window demo, a
    long benchmark). Indices and timestamps keep counting up across the loops."""

    def __init__(self, inner: FrameSource) -> None:
        self._inner = inner
        self.name = inner.name
        self.live = inner.live
        self.loops = 0
        self._index_offset = 0
        self._time_offset = 0.0
        self._last: Frame | None = None
        self._step = 0.04

    def open(self) -> None:
        self._inner.open()

    def read(self) -> Frame | None:
        frame = self._inner.read()
        if frame is None:
            if self._last is None:
                return None  # an empty source: nothing to loop
            self._inner.close()
            self._inner.open()
            self.loops += 1
            self._index_offset = self._last.index + 1
            self._time_offset = self._last.timestamp + self._step
            frame = self._inner.read()
            if frame is None:
                return None
        looped = Frame(
            frame.index + self._index_offset, frame.timestamp + self._time_offset, frame.image
        )
        if self._last is not None and looped.timestamp > self._last.timestamp:
            self._step = looped.timestamp - self._last.timestamp
        self._last = looped
        return looped

    def close(self) -> None:
        self._inner.close()
