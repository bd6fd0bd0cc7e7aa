"""The ``diffusion`` renderer: the trained binaural DiffWave behind :class:`foleyspace.render.StreamingRenderer`.

It streams, as the DSP renderer does (:meth:`DiffusionRenderer.render_blocks`): the mono blocks are
resampled to the model rate as they arrive (:class:`foleyspace.blocks.PolyphaseStream`, exact
against the one-piece resampler), the sampler generates the chunks of
:mod:`foleyspace.diffusion.sampler` as soon as the mono reaches their ends, each chunk scaled to the
data's level on its own (RMS ``DiffusionConfig.mono_level_dbfs``, as the training set's builder
scales each segment; :func:`~foleyspace.diffusion.sampler.chunk_gain`) and scaled back, and the
result is resampled to the stem rate as it comes. Memory holds about a chunk of mono and of output
plus a block, whatever the clip's length; :meth:`DiffusionRenderer.render` is the stream collected.
The trajectory is read at the starts of the eq. 8 segments the DSP renderer would use (per analysis
frame for the fine scheme, per second for the coarse one) and held over equal segments
(:func:`~foleyspace.diffusion.model.expand_trajectory`). The network is loaded once per process
into the ``Backends`` model cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.blocks import BLOCK_SAMPLES, PolyphaseStream, rechunk, resample_blocks
from foleyspace.diffusion.config import DiffusionConfig, DiffusionRendererSettings
from foleyspace.errors import InputError
from foleyspace.render import DspRenderer, Waypoints

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A checkpoint's network (EMA weights, eval mode, on its device) and what the sidecar says of it."""

    model: Any
    config: DiffusionConfig
    step: int
    code_version: str


def load_model(path: str, device: str) -> LoadedModel:
    """Load a checkpoint for inference (:class:`InputError`, one line, if it is unusable)."""
    from foleyspace.diffusion.checkpoint import build_model, load

    ckpt = load(path)
    model = build_model(path, ckpt.config, ckpt.ema if ckpt.ema is not None else ckpt.model)
    return LoadedModel(model.to(device).eval(), ckpt.config, ckpt.step, ckpt.code_version)


def model_samples(n_samples: int, sample_rate: int, model_rate: int) -> int:
    """The model-rate length of a signal of ``n_samples`` at ``sample_rate`` Hz (at least 1)."""
    return max(1, int(round(n_samples * model_rate / sample_rate)))


def resample_stereo_blocks(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int,
                           n_in: int) -> Iterator[np.ndarray]:
    """``(2, k)`` blocks at ``rate_in`` Hz resampled to ``rate_out`` Hz as they arrive, one
    :class:`~foleyspace.blocks.PolyphaseStream` per ear; concatenated, each ear equals
    ``scipy.signal.resample_poly`` of the whole ear (``n_in``: the whole signal's samples)."""
    if rate_in == rate_out:
        yield from blocks
        return
    ears = [PolyphaseStream(rate_in, rate_out, n_in) for _ in range(2)]
    for block in blocks:
        out = np.stack([ear.push(channel) for ear, channel in zip(ears, block)])
        if out.shape[1]:
            yield out
    out = np.stack([ear.finish() for ear in ears])
    if out.shape[1]:
        yield out


def fit_blocks_to(blocks: Iterable[np.ndarray], n: int, channels: tuple[int, ...] = ()) -> Iterator[np.ndarray]:
    """``blocks`` (``channels + (k,)`` each) cut or zero-padded to exactly ``n`` samples in all along
    the last axis, keeping their sizes (no re-chunking, so no added delay); stops reading once
    ``n`` are in."""
    got = 0
    for block in blocks:
        block = block[..., : n - got]
        got += block.shape[-1]
        if block.shape[-1]:
            yield block
        if got >= n:
            return
    if got < n:
        yield np.zeros(channels + (n - got,))


def model_positions(waypoints: Waypoints, n_samples: int, sample_rate: int, n_model: int) -> np.ndarray:
    """The ``(N, 3)`` positions the model holds over N equal segments of its ``n_model`` samples:
    N = the DSP renderer's eq. 8 segment count for this signal (a segment per trajectory time),
    position i at the start of segment i."""
    from foleyspace.diffusion.model import trajectory_bounds

    n_segments = len(DspRenderer(None).bounds(n_samples, sample_rate, waypoints)) - 1  # type: ignore[arg-type]
    starts = trajectory_bounds(max(n_segments, 1), n_model)[:-1]
    seconds_per_sample = n_samples / sample_rate / n_model  # the clip's duration over the model's samples
    return waypoints.at(starts * seconds_per_sample)


class DiffusionRenderer:
    """The binaural DiffWave as a :class:`~foleyspace.render.StreamingRenderer` (see the module docstring).

    Args:
        config: the renderer's settings (a checkpoint is required).
        device: where the model runs (resolved by the ``Backends``).
        models: the process's model cache, which keeps the network loaded between jobs.
    """

    name = "diffusion"

    def __init__(self, config: DiffusionRendererSettings | None = None, device: str = "cpu",
                 models: Any = None) -> None:
        if config is None or config.checkpoint is None:
            raise InputError("the diffusion renderer needs a trained checkpoint (--checkpoint CKPT)")
        self.config = config
        self.device = device
        path = str(config.checkpoint)
        key = _cache_key(path, device)
        self.loaded: LoadedModel = (models.get(key, lambda: load_model(path, device)) if models is not None
                                    else load_model(path, device))
        self._progress: Callable[[float], None] | None = None

    def describe(self) -> dict[str, Any]:
        """For the sidecar: the checkpoint's config, training step, code version and the model rate."""
        cfg = self.loaded.config
        return {"model": {"config": cfg.name, "step": self.loaded.step, "code_version": self.loaded.code_version,
                          "sample_rate": cfg.sample_rate, "device": self.device}}

    def with_progress(self, progress: Callable[[float], None]) -> "DiffusionRenderer":
        """A view of this renderer (same model) that reports the fraction of sampling steps done to
        ``progress`` (which may raise to cancel)."""
        view = _shallow_copy(self)
        view._progress = progress
        return view

    def render(self, mono: np.ndarray, waypoints: Waypoints, sample_rate: int) -> np.ndarray:
        """``(2, len(mono))`` binaural signal at ``sample_rate`` Hz: :meth:`render_blocks` of the
        whole signal, collected."""
        mono = np.asarray(mono, np.float64).reshape(-1)
        parts = list(self.render_blocks([mono], len(mono), waypoints, sample_rate))
        return np.concatenate(parts, axis=1) if parts else np.zeros((2, 0))

    def render_blocks(self, blocks: Iterable[np.ndarray], n_samples: int, waypoints: Waypoints,
                      sample_rate: int, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """``(2, k)`` float64 blocks at ``sample_rate`` Hz (``block_samples`` each, the last may be
        shorter), ``n_samples`` in all, from mono ``blocks`` (1-D, ``sample_rate`` Hz, ``n_samples``
        in all); each sampling step is reported to the progress of :meth:`with_progress`. The
        result does not depend on the blocking (see the module docstring)."""
        from foleyspace.diffusion.sampler import sample_blocks

        if n_samples <= 0:
            return iter(())
        cfg = self.loaded.config
        n_model = model_samples(n_samples, sample_rate, cfg.sample_rate)
        mono = fit_blocks_to(resample_blocks(blocks, sample_rate, cfg.sample_rate, n_samples), n_model)
        xyz = model_positions(waypoints, n_samples, sample_rate, n_model)
        stereo = sample_blocks(self.loaded.model, cfg, mono, n_model, xyz, schedule=self.config.schedule,
                               seed=self.config.seed, device=self.device, progress=self._progress,
                               level_dbfs=cfg.mono_level_dbfs)
        back = resample_stereo_blocks(stereo, cfg.sample_rate, sample_rate, n_model)
        return rechunk(fit_blocks_to(back, n_samples, (2,)), block_samples)


def _shallow_copy(renderer: DiffusionRenderer) -> DiffusionRenderer:
    """A shallow copy sharing the loaded model."""
    view = object.__new__(DiffusionRenderer)
    view.__dict__.update(renderer.__dict__)
    return view


def _cache_key(path: str, device: str) -> tuple[Any, ...]:
    """The model cache key: the checkpoint file (real path, modification time, size) and the device."""
    try:
        st = os.stat(path)
        stamp: tuple[int, int] = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)
    return (f"diffusion {Path(path).name}", os.path.realpath(path), *stamp, device)

