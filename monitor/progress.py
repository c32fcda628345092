"""A one-line progress bar on a terminal stream, for long runs over stored items."""

from __future__ import annotations

from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``[#####     ]  1,234/5,000  24%``, redrawn in place at most once per percent.

    Disabled (it writes nothing) when ``enabled`` is false, e.g. when the stream is
    not a terminal or the output is JSON for a script.
    """

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, *, enabled: bool) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and total > 0
        self._shown = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        percent = min(100, done * 100 // self.total)
        if percent == self._shown:
            return
        self._shown = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + " " * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done:,}/{self.total:,} {percent:3d}%")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self._shown >= 0:
            self.stream.write("\n")
            self.stream.flush()
