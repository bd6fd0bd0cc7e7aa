"""The analysis frames of one clip range, decoded once and handed to each stage in its own form.

A stage says what it needs with a :class:`FrameForm` (RGB or grey, at which long side). The
pipeline pulls the localizer's frames from :meth:`FrameSource.frames`; stages that only watch
the clip (a depth model) are *taps*: they get the same pictures pushed to them in batches during
that one pass, so no stage decodes the clip a second time.

Every frame is the picture as a player shows it (turned by the clip's display matrix, anamorphic
pixels stretched; see :mod:`foleyspace.video`), and every size here is in display pixels.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

PIXELS = ("rgb", "grey")


def analysis_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """A frame size ``(w, h)`` with the long side scaled to ``long_side`` pixels (never up; ``None``:
    unchanged), both even — the analysis size, and the size of every :class:`FrameForm`.
    ``width, height`` are the display size (:attr:`foleyspace.video.VideoInfo.width`)."""
    if not long_side or max(width, height) <= long_side:
        return width, height
    scale = long_side / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


@dataclass(frozen=True)
class FrameForm:
    """How a stage wants its frames.

    Attributes:
        pixels: ``"rgb"`` (``uint8 (H, W, 3)``) or ``"grey"`` (``uint8 (H, W)``, luma).
        long_side: scale so the long side has this many pixels (never above the analysis size);
            ``None``: the analysis size.
    """

    pixels: str = "rgb"
    long_side: int | None = None

    def __post_init__(self) -> None:
        if self.pixels not in PIXELS:
            raise ValueError(f"pixels must be one of {PIXELS}, not {self.pixels!r}")


class FrameSink(Protocol):
    """A stage that watches the frames of a pass (see :class:`FrameSource`)."""

    def push(self, first_index: int, frames: np.ndarray) -> None:
        """Frames ``first_index, first_index + 1, …`` as one array ``(n, H, W[, 3])``."""
        ...


_DONE = object()


def decode_ahead(items: Iterable[Any], depth: int) -> Iterator[Any]:
    """Yield ``items`` while a background thread produces up to ``depth`` of them ahead.

    FFmpeg decoding and OpenCV release the GIL, so on two cores decoding the next frames
    overlaps with analysing this one. An exception of the producer is raised here, after the
    items before it; when the consumer stops early (or this generator is closed) the producer
    stops too and closes ``items`` in its own thread.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        end: tuple[bool, Any] = (True, _DONE)
        iterator = None
        try:
            iterator = iter(items)
            for item in iterator:
                if stop.is_set():
                    return
                put((True, item))
        except BaseException as exc:  # handed to the consumer
            end = (False, exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator: its file is closed here, in the thread that ran it
            put(end)

    worker = threading.Thread(target=produce, name="foleyspace-decode", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = buffer.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=10.0)  # a decoder stuck in FFmpeg is left to die with the process


class FrameSource:
    """Frames of ``video`` over ``[start_s, end_s)`` at ``fps``, analysis size ``size = (w, h)``
    (display pixels: the display size of :func:`~foleyspace.video.probe` scaled by
    :func:`analysis_size`), upright as shown.

    Re-iterable: each call of :meth:`frames` is one decoding pass, decoded ``read_ahead`` frames
    ahead in a background thread (0: in the caller's thread). ``check()`` is called every
    ``check_every`` frames (it may raise to cancel).
    """

    def __init__(self, video: str | Path, start_s: float, end_s: float, fps: float, size: tuple[int, int],
                 check: Callable[[], None] | None = None, check_every: int = 8, read_ahead: int = 8) -> None:
        from foleyspace.video import frame_count

        self.video = Path(video)
        self.start_s, self.end_s, self.fps, self.size = start_s, end_s, fps, size
        self.n_frames = frame_count(start_s, end_s, fps)
        self._check = check
        self._check_every = check_every
        self._read_ahead = read_ahead

    def size_of(self, form: FrameForm) -> tuple[int, int]:
        """``(w, h)`` of frames in ``form``."""
        return analysis_size(self.size[0], self.size[1], form.long_side)

    def frames(self, form: FrameForm = FrameForm(),
               taps: Sequence[tuple[FrameForm, FrameSink]] = (), batch: int = 8) -> Iterator[np.ndarray]:
        """Yield every frame in ``form``; push the same frames to each tap in its form, ``batch``
        at a time (the last batch may be shorter)."""
        from foleyspace.video import iter_frame_forms

        forms = [(form.pixels, self.size_of(form))] + [(f.pixels, self.size_of(f)) for f, _ in taps]
        pending: list[list[np.ndarray]] = [[] for _ in taps]
        first = 0
        index = 0
        decoded: Iterator[tuple[np.ndarray, ...]] = iter_frame_forms(self.video, self.start_s, self.end_s, self.fps,
                                                                     forms)
        if self._read_ahead > 0:
            decoded = decode_ahead(decoded, self._read_ahead)
        try:
            for index, arrays in enumerate(decoded):
                if self._check is not None and index % self._check_every == 0:
                    self._check()
                for j, (_, sink) in enumerate(taps):
                    pending[j].append(arrays[1 + j])
                    if len(pending[j]) == batch:
                        sink.push(first, np.stack(pending[j]))
                        pending[j].clear()
                if taps and len(pending[0]) == 0:
                    first = index + 1
                yield arrays[0]
            for j, (_, sink) in enumerate(taps):
                if pending[j]:
                    sink.push(first, np.stack(pending[j]))
        finally:
            decoded.close()  # stops the decoding thread and closes the file now, not at garbage collection
