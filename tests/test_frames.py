"""The frame source: one decoding pass, each stage's form, taps in batches, decoding ahead."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from foleyspace.errors import Cancelled, InputError
from foleyspace.frames import FrameForm, FrameSource, decode_ahead
from foleyspace.video import iter_frames


class Collect:
    def __init__(self) -> None:
        self.batches: list[tuple[int, np.ndarray]] = []

    def push(self, first_index: int, frames: np.ndarray) -> None:
        self.batches.append((first_index, frames.copy()))


def test_one_pass_feeds_the_localizer_and_the_taps_in_their_forms(clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=2.0, size=(320, 180))
    source = FrameSource(clip, 0.0, 2.0, 25.0, (320, 180))
    rgb, grey_small = Collect(), Collect()
    frames = list(source.frames(FrameForm("grey", 160), taps=[(FrameForm("rgb"), rgb), (FrameForm("grey", 80), grey_small)],
                                batch=8))
    assert len(frames) == source.n_frames == 50 and frames[0].shape == (90, 160)
    assert [first for first, _ in rgb.batches] == [0, 8, 16, 24, 32, 40, 48]
    assert [len(b) for _, b in rgb.batches] == [8] * 6 + [2]
    assert rgb.batches[0][1].shape == (8, 180, 320, 3) and grey_small.batches[0][1].shape == (8, 44, 80)  # even sizes
    # the tap sees exactly what a separate decode would give
    again = list(iter_frames(clip, 0.0, 2.0, 25.0, long_side=320))
    np.testing.assert_array_equal(np.concatenate([b for _, b in rgb.batches]), np.stack(again))
    # grey straight from the luma plane is close to RGB turned grey (full range, not video range)
    grey = list(iter_frames(clip, 0.0, 2.0, 25.0, long_side=320, pixels="grey"))[10].astype(float)
    luma = again[10] @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey - luma).mean() < 3.0


def test_the_check_runs_during_the_pass(clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=2.0, size=(160, 96))
    calls = []

    def check():
        calls.append(1)
        if len(calls) == 3:
            raise Cancelled("stop")

    source = FrameSource(clip, 0.0, 2.0, 25.0, (160, 96), check=check, check_every=8)
    with pytest.raises(Cancelled):
        for _ in source.frames():
            pass
    assert len(calls) == 3


def test_decode_ahead_keeps_order_and_raises_the_producers_error():
    def items():
        yield from range(5)
        raise InputError("broken frame 5")

    got = []
    with pytest.raises(InputError, match="broken frame 5"):
        for item in decode_ahead(items(), depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_decode_ahead_stops_the_producer_when_the_consumer_stops():
    produced = []
    closed = threading.Event()

    def items():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = decode_ahead(items(), depth=3)
    assert next(stream) == 0
    stream.close()
    assert closed.wait(2.0)
    time.sleep(0.05)
    assert len(produced) < 10  # never ran ahead by more than its depth (plus the one in hand)


def test_decode_ahead_reports_an_items_that_cannot_even_start():
    with pytest.raises(TypeError):
        list(decode_ahead(5, depth=2))  # not iterable: raised here, never a hang


def test_a_cancelled_pass_stops_its_decoding_thread_at_once(clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=2.0, size=(160, 96))

    def check():
        raise Cancelled("stop")

    source = FrameSource(clip, 0.0, 2.0, 25.0, (160, 96), check=check)
    with pytest.raises(Cancelled) as caught:
        for _ in source.frames():
            pass
    assert caught.value is not None  # the exception (and its traceback) still alive ...
    assert not [t for t in threading.enumerate() if t.name == "foleyspace-decode"]  # ... the thread is not
