"""A toy backend plug-in: registered in this one place, usable everywhere (the registry test).

``toy-stuck``: a localizer that never returns (for the server's stall limit).
``toy-device``: a depth backend whose factory takes a ``device`` (it reports the one it got).
``toy-left``: a localizer that puts the object in the left quarter of every frame, so a stem made
with it is louder on the left whatever the clip shows. Each construction appends a line (the
process id) to the file named by ``FOLEYSPACE_TOY_BUILDS``, so a test can count how often a
process built it.
"""

from __future__ import annotations

import os

import numpy as np

from foleyspace.backends import Backend
from foleyspace.frames import FrameForm
from foleyspace.localize.base import BoxTrack


def register(registry) -> None:
    registry.add(Backend("localizer", "toy-left", "foleyspace_toy:LeftLocalizer",
                         "test plug-in: the object sits in the left quarter of the frame"))
    registry.add(Backend("localizer", "toy-stuck", "foleyspace_toy:StuckLocalizer",
                         "test plug-in: never returns (a read that blocks), for the server's stall limit"))
    registry.add(Backend("depth", "toy-device", "foleyspace_toy:DeviceDepth",
                         "test plug-in: constant depth; records the device it was built for"))


class StuckLocalizer:
    """Blocks forever without reporting progress, like a read from a pipe nobody writes."""

    name = "toy-stuck"
    frame_form = FrameForm("grey", long_side=64)

    def localize(self, frames, request, progress=None):
        import time

        while True:
            time.sleep(1.0)


class DeviceDepth:
    """A 'model' that takes a device, as a torch backend would, and says which it got."""

    name = "toy-device"
    frame_form = None

    def __init__(self, device: str) -> None:
        self.device = device

    def describe(self) -> dict:
        return {"device": self.device}

    def start(self, n_frames: int):
        return self

    def push(self, first_index, frames) -> None:
        pass

    def finish(self, track) -> np.ndarray:
        return np.ones(len(track))


class LeftLocalizer:
    name = "toy-left"
    frame_form = FrameForm("grey", long_side=64)

    def __init__(self) -> None:
        log = os.environ.get("FOLEYSPACE_TOY_BUILDS")
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")

    def describe(self) -> dict:
        return {"weights": "none (toy)", "version": "0.1"}

    def localize(self, frames, request, progress=None) -> BoxTrack:
        rows = []
        for frame in frames:
            assert frame.ndim == 2 and max(frame.shape) <= 64, "the frame source must honour frame_form"
            h, w = frame.shape
            rows.append((w * 0.125 - 2, h * 0.5 - 2, 4.0, 4.0))
        if progress is not None:
            progress(1.0)
        return BoxTrack(np.array(rows, float), np.ones(len(rows)), label=request.label or "toy")


class ToneGenerator:
    """A mono generator plug-in (entry point group ``foleyspace.mono_sources``): a sine whose pitch
    comes from the label's length, so a test can tell the label reached it."""

    timing = "source"

    def __init__(self, job) -> None:
        self.hz = 100.0 * len(job.label or "x")
        self.name = f"toy tone {self.hz:g} Hz"

    def mono(self, start_s, end_s, sample_rate):
        t = start_s + np.arange(int(round((end_s - start_s) * sample_rate))) / sample_rate
        return 0.3 * np.sin(2 * np.pi * self.hz * t)
