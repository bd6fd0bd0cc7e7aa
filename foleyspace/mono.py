"""Mono sources: the signal that gets spatialized.

A source returns exactly the requested number of samples at the requested rate, float64 mono.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from foleyspace.errors import InputError
from foleyspace.video import read_audio

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


class ClipAudio:
    """The clip's own audio track, downmixed to mono."""

    name = "clip audio"
    timing = "source"

    def __init__(self, video: str | Path) -> None:
        self.video = Path(video)

    def mono(self, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
        samples, native = read_audio(self.video, start_s, end_s)
        x = check_finite(downmix(samples), str(self.video))
        return fit_length(resample(x, native, sample_rate), int(round((end_s - start_s) * sample_rate)))


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

    def _read(self) -> tuple[np.ndarray, int]:
        import soundfile as sf

        try:
            data, native = sf.read(str(self.path), dtype="float64", always_2d=True)
            return data.T, int(native)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            pass  # not a libsndfile format: try FFmpeg (mp3, m4a, …)
        try:
            samples, native = read_audio(self.path)
        except InputError as exc:
            raise InputError(f"{self.path}: not a readable audio file") from exc
        return samples.astype(float), native

    def mono(self, start_s: float, end_s: float, sample_rate: int) -> np.ndarray:
        samples, native = self._read()
        if samples.shape[-1] == 0:
            raise InputError(f"{self.path}: the audio file holds no samples")
        x = check_finite(downmix(samples), str(self.path))
        n = int(round((end_s - start_s) * sample_rate))
        skip = int(round(self.start_s * native))
        if skip >= len(x):
            raise InputError(f"{self.path}: --audio-start {self.start_s:g} s is past the end of the file "
                             f"({len(x) / native:.3f} s)")
        y = resample(x[skip:], native, sample_rate)
        if len(y) < n:
            log.warning("%s lasts %.2f s, shorter than the %.2f s range: the rest is silence",
                        self.path, len(y) / sample_rate, n / sample_rate)
        return fit_length(y, n)


def clip_audio(job) -> ClipAudio:
    """Registry factory: the clip's own audio (a job without ``audio``)."""
    return ClipAudio(job.video)


def file_audio(job) -> FileAudio:
    """Registry factory: the job's ``audio`` file from ``audio_start_s``."""
    return FileAudio(job.audio, job.audio_start_s)
