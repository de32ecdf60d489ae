"""One decoded frame, as every frame source delivers it."""

from __future__ import annotations

from dataclasses import dataclass

from facelib.types import RGBImage


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame read from a `kiosk_app.sources.FrameSource`.

    `index` is 0-based and counts the frames the source actually read (a live source keeps
    counting across reconnects; a file or folder starts at 0 each time it is opened).
    `timestamp` is in seconds: the position in the video for files (nominal rate for image
    folders), `time.monotonic()` at read time for cameras and network streams.
    `image` is HxWx3 uint8 RGB and C-contiguous.
    """

    index: int
    timestamp: float
    image: RGBImage

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
