"""Things with a start and a stop (threads, servers, devices), usable as context managers."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartStop:
    """`with thing:` starts it and stops it again, even when the block raises."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
