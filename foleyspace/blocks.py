"""Signals in blocks: re-chunking, exact-length fitting and a streaming polyphase resampler.

Long clips are processed block by block so memory follows the block size, not the clip's
length. Every helper here gives, concatenated, exactly what its whole-signal counterpart gives
(:func:`foleyspace.mono.fit_length`, :func:`scipy.signal.resample_poly`), sample for sample.
Blocks are 1-D float arrays (mono samples) unless a docstring says otherwise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from types import TracebackType

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


def _polyphase_filter(rate_in: int, rate_out: int, n_in: int | None) -> tuple[int, int, np.ndarray, int]:
    """``(up, down, h, n_pre_remove)`` of :func:`scipy.signal.resample_poly` from ``rate_in`` to
    ``rate_out`` Hz: the factors, the zero-padded Kaiser filter ``upfirdn`` runs (its trailing
    zeros depend on ``n_in``, the whole input's length in samples, if known) and the ``upfirdn``
    outputs dropped at the start (the filter's delay)."""
    from scipy.signal import firwin

    ratio = Fraction(int(rate_out), int(rate_in))
    up, down = ratio.numerator, ratio.denominator
    half_len = 10 * max(up, down)
    h = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0)) * up
    n_pre_pad = down - half_len % down
    n_post_pad = 0
    n_pre_remove = (half_len + n_pre_pad) // down
    if n_in is not None:
        n_out = -(-n_in * up // down)
        while _output_len(len(h) + n_pre_pad + n_post_pad, n_in, up, down) < n_out + n_pre_remove:
            n_post_pad += 1
    return up, down, np.concatenate([np.zeros(n_pre_pad), h, np.zeros(n_post_pad)]), n_pre_remove


def _context(len_h: int, up: int, down: int) -> int:
    """Input samples of context an ``upfirdn`` chunk needs before its first exact output: one
    filter span (per phase) rounded up to a multiple of ``down``."""
    per_phase = -(-len_h // up)
    return -(-(per_phase - 1) // down) * down


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
        self.up, self.down, self._h, self._n_pre_remove = _polyphase_filter(rate_in, rate_out, n_in)
        self._context = _context(len(self._h), self.up, self.down)  # ≥ one filter span, a multiple of down
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


class PolyphaseWindow:
    """Any stretch of :func:`scipy.signal.resample_poly` of an ``n_in``-sample input (its
    default Kaiser window, zero padding), computed from a window of the input only: the samples
    equal the whole-signal call's, for the same reason as :class:`PolyphaseStream`'s (``upfirdn``
    is causal, so a chunk that starts on a multiple of ``down`` one filter span early and ends
    past an output's last tap repeats that output's sum term for term).

    Outputs are indexed like ``resample_poly``'s: ``0 … n_out − 1``, ``n_out = ⌈n_in·up/down⌉``.
    """

    def __init__(self, rate_in: int, rate_out: int, n_in: int) -> None:
        self.n_in = int(n_in)
        if rate_in == rate_out:
            self.up = self.down = 1
            self._h, self._n_pre_remove, self._context = np.ones(1), 0, 0
        else:
            self.up, self.down, self._h, self._n_pre_remove = _polyphase_filter(rate_in, rate_out, self.n_in)
            self._context = _context(len(self._h), self.up, self.down)
        self.n_out = -(-self.n_in * self.up // self.down)

    @property
    def identity(self) -> bool:
        return self.up == self.down == 1

    def input_span(self, a: int, b: int) -> tuple[int, int]:
        """``(first, end)``: the input samples ``x[first:end]`` that outputs ``a … b − 1`` need
        (``first`` a multiple of ``down``; ``end`` at most ``n_in``)."""
        if self.identity:
            return a, min(b, self.n_in)
        k_a, k_b = a + self._n_pre_remove, b + self._n_pre_remove  # upfirdn output indices
        first = max(0, k_a // self.up * self.down - self._context)
        end = min(self.n_in, -(-k_b // self.up) * self.down)
        return first, end

    def outputs(self, chunk: np.ndarray, first: int, a: int, b: int) -> np.ndarray:
        """Outputs ``a … b − 1`` from ``chunk = x[first:end]``, the span :meth:`input_span` gave."""
        if self.identity:  # no scipy import: scipy.signal alone costs ≈ 60 MB resident
            return np.asarray(chunk, float)[a - first: b - first]
        from scipy.signal import upfirdn

        y = upfirdn(self._h, np.asarray(chunk, float), self.up, self.down)
        offset = first * self.up // self.down - self._n_pre_remove  # resample_poly index of y[0]
        return y[a - offset: b - offset]


def reversed_resample_blocks(read: Callable[[int, int], np.ndarray], n_in: int, rate_in: int, rate_out: int,
                             n: int, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """``fit_length(resample(x, rate_in, rate_out), n)[::-1]`` in blocks of at most
    ``block_samples``, reading the ``n_in``-sample input backwards: ``read(lo, hi)`` returns the
    1-D float ``x[lo:hi]``. Each block reads ``block_samples·rate_in/rate_out`` input samples
    plus its context: one filter span (≈ 20 samples at the lower rate) and the alignment of both
    ends to the down-sampling factor (< 2·``down``: 294 samples from 44.1 to 48 kHz). The
    samples equal the whole-signal call's (see :class:`PolyphaseWindow`)."""
    if block_samples < 1:
        raise ValueError("block size must be at least 1 sample")
    window = PolyphaseWindow(rate_in, rate_out, n_in)
    b = min(n, window.n_out)
    for pad in range(n - b, 0, -block_samples):  # fit_length's zero padding comes first, reversed
        yield np.zeros(min(pad, block_samples))
    while b > 0:
        a = max(0, b - block_samples)
        first, end = window.input_span(a, b)
        yield window.outputs(read(first, end), first, a, b)[::-1]
        b = a


class SampleSpool:
    """1-D float64 samples appended to an unnamed temporary file (the system removes it when it
    is closed or the process dies), then read back by index in any order — a signal to be played
    backwards without holding it in memory (8 bytes a sample on disk). Float64 keeps every
    sample exactly; a full disk raises :class:`OSError`."""

    def __init__(self, folder: str | None = None) -> None:
        """``folder``: where the file lies (default: the system's temporary folder)."""
        self._fh = tempfile.TemporaryFile(dir=folder, prefix=".foleyspace-sound-")
        self.samples = 0

    def append(self, block: np.ndarray) -> None:
        """Add samples at the end."""
        self._fh.write(np.ascontiguousarray(block, dtype="<f8").tobytes())
        self.samples += len(block)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo … hi − 1`` (clipped to those appended)."""
        lo, hi = max(0, lo), min(hi, self.samples)
        if hi <= lo:
            return np.zeros(0)
        self._fh.flush()
        self._fh.seek(8 * lo)
        data = self._fh.read(8 * (hi - lo))
        if len(data) != 8 * (hi - lo):
            raise OSError(f"the sound spool returned {len(data) // 8} of {hi - lo} samples")
        return np.frombuffer(data, dtype="<f8").astype(float)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> SampleSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
