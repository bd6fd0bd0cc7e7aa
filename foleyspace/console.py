"""Terminal progress for the CLI: one bar per pipeline stage on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class StageProgress:
    """``progress(stage, fraction)`` callback drawing ``stage [#####.....]  50%``.

    On a terminal the bar redraws in place (at most ~10 times a second); otherwise each stage
    prints one line when it finishes.
    """

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.stage: str | None = None
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.done: set[str] = set()

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage in self.done:
            return
        if stage != self.stage:
            self.finish()
            self.stage, self.started, self.last_draw = stage, now, 0.0
        if fraction >= 1.0 or (self.tty and now - self.last_draw > 0.1):
            self.last_draw = now
            if self.tty:
                filled = int(round(fraction * self.width))
                bar = "#" * filled + "." * (self.width - filled)
                self.stream.write(f"\r{stage:<8} [{bar}] {fraction * 100:3.0f}%  {now - self.started:5.1f}s")
                self.stream.flush()
        if fraction >= 1.0:
            self.finish()

    def reset(self) -> None:
        """Start over for the next item: every stage may report again."""
        self.finish()
        self.done.clear()

    def finish(self) -> None:
        """End the current stage's line."""
        if self.stage is None:
            return
        elapsed = time.perf_counter() - self.started
        self.done.add(self.stage)
        self.stream.write("\n" if self.tty else f"{self.stage:<8} done  {elapsed:5.1f}s\n")
        self.stream.flush()
        self.stage = None
