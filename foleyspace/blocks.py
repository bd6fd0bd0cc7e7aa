"""Signals in blocks: re-chunking, exact-length fitting and a streaming polyphase resampler.

Long clips are processed block by block so memory follows the block size, not the clip's
length. Every helper here gives, concatenated, exactly what its whole-signal counterpart gives
(:func:`foleyspace.mono.fit_length`, :func:`scipy.signal.resample_poly`), sample for sample.
Blocks are 1-D float arrays (mono samples) unless a docstring says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np

#: Default block length in samples (≈ 2.7 s at 48 kHz): audio read, rendered and written per
#: block (``OutputConfig.block_samples`` sets it per job).
BLOCK_SAMPLES = 1 << 17


def rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The samples of ``blocks`` (along their last axis) again, in blocks of exactly ``size``
    samples (the last may be shorter)."""
    if size < 1:
        raise ValueError("block size must be at least 1 sample")
    pending: list[np.ndarray] = []
    held = 0
    for block in blocks:
        while block.shape[-1]:
            take = block[..., : size - held]
            pending.append(take)
            held += take.shape[-1]
            block = block[..., take.shape[-1]:]
            if held == size:
                yield np.concatenate(pending, axis=-1)
                pending, held = [], 0
    if held:
        yield np.concatenate(pending, axis=-1)


def fit_blocks(blocks: Iterable[np.ndarray], n: int, size: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """``blocks`` trimmed or zero-padded to exactly ``n`` samples in all, in blocks of ``size``:
    the streaming form of :func:`foleyspace.mono.fit_length`. Stops reading once ``n`` are in."""
    def trimmed() -> Iterator[np.ndarray]:
        got = 0
        for block in blocks:
            block = np.asarray(block, float)[: n - got]
            got += len(block)
            yield block
            if got >= n:
                return
        while got < n:
            pad = min(size, n - got)
            got += pad
            yield np.zeros(pad)

    return rechunk(trimmed(), size)


def collect(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """All ``blocks`` as one array along the last axis (1-D mono, or ``(channels, n)``)."""
    parts = list(blocks)
    return np.concatenate(parts, axis=-1) if parts else np.zeros(0)


def _output_len(len_h: int, n_in: int, up: int, down: int) -> int:
    """Samples :func:`scipy.signal.upfirdn` returns for a filter of ``len_h`` taps."""
    return ((n_in - 1) * up + len_h - 1) // down + 1


class PolyphaseStream:
    """:func:`scipy.signal.resample_poly` (its default Kaiser window, zero padding) computed over
    an input that arrives in blocks; the outputs, concatenated, equal the whole-signal call.

    Each output sample of ``upfirdn`` is a sum over the input samples at and before its own
    position, accumulated oldest first. Feeding ``upfirdn`` chunks that start on a multiple of
    ``down`` with at least one filter length of earlier input as context therefore repeats the
    whole call's sums term for term. ``n_in`` (the whole input's length, if known) only decides
    the trailing zero taps ``resample_poly`` may add, which change no sum.
    """

    def __init__(self, rate_in: int, rate_out: int, n_in: int | None = None) -> None:
        from scipy.signal import firwin

        ratio = Fraction(int(rate_out), int(rate_in))
        self.up, self.down = ratio.numerator, ratio.denominator
        half_len = 10 * max(self.up, self.down)
        h = firwin(2 * half_len + 1, 1.0 / max(self.up, self.down), window=("kaiser", 5.0)) * self.up
        n_pre_pad = self.down - half_len % self.down
        n_post_pad = 0
        self._n_pre_remove = (half_len + n_pre_pad) // self.down
        if n_in is not None:
            n_out = -(-n_in * self.up // self.down)
            while _output_len(len(h) + n_pre_pad + n_post_pad, n_in, self.up, self.down) < n_out + self._n_pre_remove:
                n_post_pad += 1
        self._h = np.concatenate([np.zeros(n_pre_pad), h, np.zeros(n_post_pad)])
        per_phase = -(-len(self._h) // self.up)
        self._context = -(-(per_phase - 1) // self.down) * self.down  # ≥ one filter span, a multiple of down
        self._buf = np.zeros(0)
        self._buf_start = 0  # input index of _buf[0]
        self._done = 0       # input index (a multiple of down) up to which outputs were produced
        self._n_in = 0
        self._emitted = 0    # upfirdn output index of the next sample to return

    def push(self, x: np.ndarray) -> np.ndarray:
        """Feed input samples; returns the output samples they complete (possibly none)."""
        self._buf = np.concatenate([self._buf, np.asarray(x, float)])
        self._n_in += len(x)
        end = self._n_in // self.down * self.down
        if end <= self._done:
            return np.zeros(0)
        return self._run(end, final=False)

    def finish(self) -> np.ndarray:
        """The remaining output once the input has ended."""
        if self._n_in == 0:
            return np.zeros(0)
        return self._run(self._n_in, final=True)

    def _run(self, end: int, final: bool) -> np.ndarray:
        from scipy.signal import upfirdn

        first = max(0, self._done - self._context)  # a multiple of down
        chunk = self._buf[first - self._buf_start : end - self._buf_start]
        y = upfirdn(self._h, chunk, self.up, self.down)
        offset = first * self.up // self.down  # upfirdn output index of y[0]
        stop = offset + len(y) if final else end * self.up // self.down
        if final:
            stop = min(stop, self._n_pre_remove + -(-self._n_in * self.up // self.down))
        begin = max(self._emitted, self._n_pre_remove)
        out = y[begin - offset : max(begin, stop) - offset]
        self._emitted = max(begin, stop)
        self._done = end
        keep_from = max(0, end - self._context) // self.down * self.down
        self._buf = self._buf[keep_from - self._buf_start:]
        self._buf_start = keep_from
        return out


def resample_blocks(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int,
                    n_in: int | None = None) -> Iterator[np.ndarray]:
    """``blocks`` at ``rate_in`` Hz resampled to ``rate_out`` Hz as they arrive; concatenated,
    equal to :func:`foleyspace.mono.resample` of the whole signal (``n_in``: its length if known)."""
    if rate_in == rate_out:
        for block in blocks:
            yield np.asarray(block, float)
        return
    stream = PolyphaseStream(rate_in, rate_out, n_in)
    for block in blocks:
        out = stream.push(block)
        if len(out):
            yield out
    out = stream.finish()
    if len(out):
        yield out
