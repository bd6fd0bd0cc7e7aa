"""The ``diffusion`` renderer: the trained binaural DiffWave behind :class:`foleyspace.render.Renderer`.

It renders a clip in one piece (the pipeline collects the mono for it, see
:func:`foleyspace.render.render_blocks`): the mono is resampled to the model rate and scaled to the
data's level (RMS ``DiffusionConfig.mono_level_dbfs``), the trajectory is read at the starts of the eq. 8
segments the DSP renderer would use (per analysis frame for the fine scheme, per second for the
coarse one) and held over equal segments (:func:`~foleyspace.diffusion.model.expand_trajectory`),
the sampler generates the two ears, and the result is scaled back and resampled to the stem rate.
The network is loaded once per process into the ``Backends`` model cache.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

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


def resample(signal: np.ndarray, rate_in: int, rate_out: int, n_out: int) -> np.ndarray:
    """``signal`` ``(..., n)`` from ``rate_in`` to ``rate_out`` Hz (polyphase), cut or zero-padded to ``n_out``."""
    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    up, down = int(rate_out) // g, int(rate_in) // g
    out = signal if up == down else resample_poly(signal, up, down, axis=-1)
    if out.shape[-1] >= n_out:
        return out[..., :n_out]
    pad = [(0, 0)] * (out.ndim - 1) + [(0, n_out - out.shape[-1])]
    return np.pad(out, pad)


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
    """The binaural DiffWave as a :class:`~foleyspace.render.Renderer` (renders in one piece).

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
        """``(2, len(mono))`` binaural signal at ``sample_rate`` Hz (see the module docstring)."""
        from foleyspace.diffusion.sampler import sample

        mono = np.asarray(mono, np.float64).reshape(-1)
        n = len(mono)
        cfg = self.loaded.config
        if n == 0:
            return np.zeros((2, 0))
        n_model = max(1, int(round(n * cfg.sample_rate / sample_rate)))
        signal = resample(mono, sample_rate, cfg.sample_rate, n_model)
        rms = float(np.sqrt(np.mean(signal ** 2)))
        if rms == 0.0:
            return np.zeros((2, n))
        gain = 10.0 ** (cfg.mono_level_dbfs / 20.0) / rms
        xyz = model_positions(waypoints, n, sample_rate, n_model)
        out = sample(self.loaded.model, cfg, (signal * gain).astype(np.float32), xyz, schedule=self.config.schedule,
                     seed=self.config.seed, device=self.device, progress=self._progress)
        return resample(out.astype(np.float64) / gain, cfg.sample_rate, sample_rate, n)


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

