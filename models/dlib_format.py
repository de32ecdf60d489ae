"""Read dlib's serialisation format (dlib/serialize.h and dlib/dnn/tensor.h).

Integers are packed as one control byte (low nibble: byte count, bit 7: negative) followed by
that many little-endian bytes. Strings are a packed length then the bytes. Scalars of type
float are a packed 64-bit mantissa and a packed 16-bit exponent (value = mantissa * 2**exponent).
Booleans are the characters '0' and '1'. A tensor is version 2, four packed dimensions
(samples, k, rows, columns), then raw little-endian IEEE float32 values; an alias_tensor is
version 1 and the four dimensions only (it names a slice of its layer's parameter tensor).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models.errors import ModelConversionError

#: float_details uses these exponents for values it cannot represent as mantissa * 2**exp.
_SPECIAL_EXPONENTS = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}


class DlibReader:
    """A cursor over the bytes of a dlib-serialised object. Every read checks its bounds."""

    def __init__(self, data: bytes, *, name: str = "dlib file") -> None:
        self._data = data
        self._name = name
        self.offset = 0

    @property
    def at_end(self) -> bool:
        return self.offset == len(self._data)

    def fail(self, what: str) -> ModelConversionError:
        return ModelConversionError(f"{self._name}: {what} at byte {self.offset}")

    def _take(self, count: int) -> bytes:
        end = self.offset + count
        if count < 0 or end > len(self._data):
            raise self.fail(
                f"truncated: wanted {count} bytes, {len(self._data) - self.offset} left"
            )
        chunk = self._data[self.offset : end]
        self.offset = end
        return chunk

    def read_int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def read_str(self) -> str:
        length = self.read_int()
        raw = self._take(length)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("non-ASCII string") from None

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return float(mantissa) * 2.0**exponent

    def read_bool(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise self.fail(f"bad boolean {char!r}")
        return char == b"1"

    def expect_int(self, expected: int, what: str) -> None:
        start = self.offset
        value = self.read_int()
        if value != expected:
            self.offset = start
            raise self.fail(f"{what}: expected version {expected}, found {value}")

    def read_dims(self) -> tuple[int, int, int, int]:
        dims = (self.read_int(), self.read_int(), self.read_int(), self.read_int())
        if min(dims) < 0:
            raise self.fail(f"negative tensor dimensions {dims}")
        return dims

    def read_tensor(self) -> NDArray[np.float32]:
        self.expect_int(2, "tensor")
        dims = self.read_dims()
        count = int(np.prod(dims))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        self.expect_int(1, "alias_tensor")
        return self.read_dims()
