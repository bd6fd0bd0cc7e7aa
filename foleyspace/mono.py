"""Mono sources: the signal that gets spatialized.

A source returns exactly the requested number of samples at the requested rate, float64 mono,
whole (``mono``) or in blocks as it is read (``blocks``; :func:`mono_blocks` gives it for a
source that has only ``mono``). The clip's audio and audio files are decoded, checked and
resampled block by block, so a long clip's sound is never held whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from foleyspace.blocks import (BLOCK_SAMPLES, SampleSpool, collect, fit_blocks, rechunk, resample_blocks,
                               reversed_resample_blocks)
from foleyspace.errors import InputError, OutputError
from foleyspace.video import audio_rate, iter_audio

log = logging.getLogger(__name__)


class MonoSource(Protocol):
    """Where the mono signal comes from; built per job by its registry factory (``job`` → source).

    ``timing``: ``"source"`` if the signal belongs to the clip's source time and so follows a
    retimed clip (varispeed, reversed), ``"timeline"`` if it is already in timeline time (a
    separate recording); a source without the attribute counts as ``"source"``.
    """

    name: str
    timing: str

    def mono(self, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
        """``(round((end_s − start_s)·sample_rate),)`` float mono samples for the clip range."""
        ...


class BlockMonoSource(MonoSource, Protocol):
    """A :class:`MonoSource` that also reads its range block by block (bounded memory)."""

    def blocks(self, start_s: float, end_s: float, sample_rate: int,
               block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """``mono(start_s, end_s, sample_rate)`` in 1-D float blocks of ``block_samples`` (the
        last may be shorter), read as they are consumed."""
        ...


def mono_blocks(source: MonoSource, start_s: float, end_s: float, sample_rate: int,
                block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """``source``'s samples for the range in blocks: its own ``blocks`` where it has them, else
    its whole ``mono`` cut into blocks (memory then holds the whole range, e.g. a generator)."""
    stream = getattr(source, "blocks", None)
    if stream is not None:
        return stream(start_s, end_s, sample_rate, block_samples)
    return rechunk([np.asarray(source.mono(start_s, end_s, sample_rate), float)], block_samples)


def reversed_mono_blocks(source: MonoSource, start_s: float, end_s: float, sample_rate: int,
                         block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """``source``'s samples for the range played backwards (last sample first) in blocks of at
    most ``block_samples``: its own ``reversed_blocks`` where it has them (read from the range's
    end in pieces), else its blocks collected whole and reversed (memory then holds the range,
    8 bytes a sample)."""
    stream = getattr(source, "reversed_blocks", None)
    if stream is not None:
        return stream(start_s, end_s, sample_rate, block_samples)
    log.debug("%s has no backwards reader: its range is read whole to play it reversed", source.name)
    return rechunk([collect(mono_blocks(source, start_s, end_s, sample_rate, block_samples))[::-1]], block_samples)


def checked_mono(blocks: Iterable[np.ndarray], what: str) -> Iterator[np.ndarray]:
    """``(channels, k)`` blocks downmixed to mono, each checked for NaN/inf (:func:`check_finite`)."""
    for block in blocks:
        yield check_finite(downmix(block), what)


def downmix(samples: np.ndarray) -> np.ndarray:
    """Mean of the channels of ``(channels, n)`` → ``(n,)``."""
    samples = np.asarray(samples, float)
    return samples.mean(axis=0) if samples.ndim == 2 else samples


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling of ``x`` ``(n,)`` from ``rate_in`` to ``rate_out`` Hz."""
    if rate_in <= 0:
        raise InputError(f"invalid sample rate {rate_in} Hz")
    if rate_in == rate_out:
        return np.asarray(x, float)
    from scipy.signal import resample_poly  # rare path: kept off the import of every run

    ratio = Fraction(int(rate_out), int(rate_in))
    return resample_poly(np.asarray(x, float), ratio.numerator, ratio.denominator)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad ``x`` to exactly ``n`` samples."""
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def check_finite(x: np.ndarray, what: str) -> np.ndarray:
    """Raise :class:`InputError` if ``x`` holds NaN or infinite samples."""
    if not np.all(np.isfinite(x)):
        raise InputError(f"{what}: the audio contains NaN or infinite samples")
    return x


#: First bytes of the containers read through libsndfile (WAV/RF64/BW64, FLAC, Ogg, AIFF); anything
#: else (mp3, m4a, video, unknown data) goes to FFmpeg, so libsndfile's mpg123 never prints its
#: "Note: Illegal Audio-MPEG-Header" lines for a damaged or mislabelled file.
SOUNDFILE_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"BW64", b"fLaC", b"OggS", b"FORM")
#: Sample rates an audio file may have (Hz); a header outside them is damaged: 7 Hz would be
#: resampled into an hour of garbage, 2 GHz would not fit in memory.
RATE_RANGE_HZ = (1000, 768000)


def libsndfile_reads(path: str | Path) -> bool:
    """Whether ``path`` starts like a container libsndfile reads (:data:`SOUNDFILE_MAGIC`);
    :class:`InputError` naming the file when it cannot be opened."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in SOUNDFILE_MAGIC
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def libsndfile_fallback(path: str | Path) -> bool:
    """Whether to try libsndfile on a file FFmpeg refused (formats only libsndfile reads:
    MATLAB, HTK, MPC 2000, …): not for an MPEG-named file, whose damage libsndfile's mpg123
    reports with "Note:" lines on the process's stderr."""
    return Path(path).suffix.lower() not in (".mp3", ".mp2", ".mpa", ".mpga")


def check_rate(native: int, path: str | Path) -> int:
    """``native`` if it lies in :data:`RATE_RANGE_HZ`, else :class:`InputError` naming the file."""
    low, high = RATE_RANGE_HZ
    if not low <= native <= high:
        raise InputError(f"{path}: sample rate {native} Hz is not an audio rate ({low}-{high} Hz); a damaged header?")
    return native


class ClipAudio:
    """The clip's own audio track, downmixed to mono."""

    name = "clip audio"
    timing = "source"

    def __init__(self, video: str | Path) -> None:
        self.video = Path(video)

    def mono(self, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
        return collect(self.blocks(start_s, end_s, sample_rate))

    def blocks(self, start_s: float, end_s: float, sample_rate: int,
               block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """The range decoded, downmixed, checked and resampled block by block."""
        native = audio_rate(self.video)
        n_in = int(round((end_s - start_s) * native))
        raw = iter_audio(self.video, start_s, end_s, block_samples)
        resampled = resample_blocks(checked_mono(raw, str(self.video)), native, sample_rate, n_in)
        return fit_blocks(resampled, int(round((end_s - start_s) * sample_rate)), block_samples)

    def reversed_blocks(self, start_s: float, end_s: float, sample_rate: int,
                        block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """``mono(start_s, end_s, sample_rate)[::-1]``, sample for sample, in blocks of at most
        ``block_samples``, without the range in memory: the range is decoded forwards as
        :meth:`blocks` decodes it, its mono samples (at the clip's own rate) spooled to a
        temporary file (8 bytes a sample: ≈ 23 MB a minute at 48 kHz), then resampled from the
        end backwards a block at a time (:func:`~foleyspace.blocks.reversed_resample_blocks`).

        The decoded samples are spooled rather than decoded again piece by piece from the end
        because a lossy decoder's output depends on where it started: FFmpeg's AAC decoder fills
        noise-substituted (PNS) bands from a random generator that runs from the first decoded
        frame, so a chunk decoded after a seek differs from the same samples decoded in one pass
        (by up to 0.19 of full scale on a noisy synthetic clip), however long the pre-roll.
        The first block comes once the whole range is decoded (no cancel is polled meanwhile).
        """
        native = audio_rate(self.video)
        n_in = int(round((end_s - start_s) * native))
        n = int(round((end_s - start_s) * sample_rate))

        def played_backwards() -> Iterator[np.ndarray]:
            try:
                with SampleSpool() as spool:
                    for block in checked_mono(iter_audio(self.video, start_s, end_s, block_samples), str(self.video)):
                        spool.append(block)
                    yield from reversed_resample_blocks(spool.read, n_in, native, sample_rate, n, block_samples)
            except OSError as exc:
                raise OutputError(f"{self.video}: the clip's sound cannot be held on disk to play it reversed "
                                  f"({getattr(exc, 'strerror', None) or exc})") from exc

        return played_backwards()


class FileAudio:
    """An audio file (any rate and channel count), played from ``start_s`` seconds into the file
    for the clip range (default: from its start).

    If the file ends before the range does the rest is silence (a warning is logged).
    """

    timing = "timeline"

    def __init__(self, path: str | Path, start_s: float = 0.0) -> None:
        self.path = Path(path)
        self.start_s = float(start_s)
        self.name = f"file {self.path.name}" + (f" from {self.start_s:g} s" if self.start_s else "")
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such audio file")

    def _native(self, block_samples: int) -> tuple[int, int | None, Iterator[np.ndarray]]:
        """``(rate, samples, blocks)``: the file from ``start_s`` on at its own rate in
        ``(channels, k)`` float blocks; ``samples`` left from ``start_s``, ``None`` if unknown."""
        import soundfile as sf

        first = libsndfile_reads(self.path)
        if not first:
            try:
                return self._native_ffmpeg(block_samples)  # mp3, m4a, video, …
            except InputError:
                if not libsndfile_fallback(self.path):
                    raise
        try:  # WAV, FLAC, Ogg, AIFF; or what FFmpeg refused (MATLAB, HTK, … only libsndfile reads)
            info = sf.info(str(self.path))
        except (sf.LibsndfileError, RuntimeError, TypeError):
            if not first:
                raise InputError(f"{self.path}: not a readable audio file") from None
            return self._native_ffmpeg(block_samples)  # e.g. a WAV codec only FFmpeg knows
        native, frames = check_rate(int(info.samplerate), self.path), int(info.frames)
        if frames == 0:
            raise InputError(f"{self.path}: the audio file holds no samples")
        skip = self._skip(native, frames)

        def read() -> Iterator[np.ndarray]:
            with sf.SoundFile(str(self.path)) as fh:
                fh.seek(skip)
                while True:
                    data = fh.read(block_samples, dtype="float64", always_2d=True)
                    if not len(data):
                        return
                    yield data.T

        return native, frames - skip, read()

    def _native_ffmpeg(self, block_samples: int) -> tuple[int, int | None, Iterator[np.ndarray]]:
        """:meth:`_native` through FFmpeg (its length is known only once read)."""
        try:
            native = audio_rate(self.path)
        except InputError as exc:
            raise InputError(f"{self.path}: not a readable audio file") from exc
        check_rate(native, self.path)
        skip = int(round(self.start_s * native))

        def read() -> Iterator[np.ndarray]:
            seen = 0
            try:
                for block in iter_audio(self.path, block_samples=block_samples):
                    drop = min(max(skip - seen, 0), block.shape[1])
                    seen += block.shape[1]
                    if block.shape[1] > drop:
                        yield block[:, drop:].astype(float)
            except InputError as exc:
                raise InputError(f"{self.path}: not a readable audio file") from exc
            if seen == 0:
                raise InputError(f"{self.path}: the audio file holds no samples")
            self._skip(native, seen)

        return native, None, read()

    def _skip(self, native: int, frames: int) -> int:
        """Samples to skip for ``start_s`` in a file of ``frames``; refused past its end."""
        skip = int(round(self.start_s * native))
        if skip >= frames:
            raise InputError(f"{self.path}: --audio-start {self.start_s:g} s is past the end of the file "
                             f"({frames / native:.3f} s)")
        return skip

    def mono(self, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
        return collect(self.blocks(start_s, end_s, sample_rate))

    def blocks(self, start_s: float, end_s: float, sample_rate: int,
               block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """The file read, downmixed, checked and resampled block by block; silence (and a
        warning) past its end. Only the blocks read are checked for NaN/inf."""
        native, n_in, raw = self._native(block_samples)
        n = int(round((end_s - start_s) * sample_rate))
        resampled = resample_blocks(checked_mono(raw, str(self.path)), native, sample_rate, n_in)
        return fit_blocks(self._warn_if_short(resampled, n, sample_rate), n, block_samples)

    def _warn_if_short(self, blocks: Iterable[np.ndarray], n: int, sample_rate: int) -> Iterator[np.ndarray]:
        """``blocks`` as they are, with a warning if they end before ``n`` samples."""
        got = 0
        for block in blocks:
            got += len(block)
            yield block
        if got < n:
            log.warning("%s lasts %.2f s, shorter than the %.2f s range: the rest is silence",
                        self.path, got / sample_rate, n / sample_rate)


def clip_audio(job) -> ClipAudio:
    """Registry factory: the clip's own audio (a job without ``audio``)."""
    return ClipAudio(job.video)


def file_audio(job) -> FileAudio:
    """Registry factory: the job's ``audio`` file from ``audio_start_s``."""
    return FileAudio(job.audio, job.audio_start_s)
