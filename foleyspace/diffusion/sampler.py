"""Sampling a binaural signal from the model (DDPM Alg. 2 over a noise schedule), chunked for long clips.

A clip longer than one training segment is generated in chunks of ``segment_samples`` that
overlap by ``chunk_overlap_s``; consecutive chunks are cross-faded over their overlap (linear by
default: the two chunks render the same sound at the same place, so they are correlated and
linear weights summing to 1 keep the level). Each chunk sees the slice of the whole clip's
trajectory grid (:func:`~foleyspace.diffusion.model.trajectory_slice`), so positions do not move
with the chunking. The noise is drawn per absolute sample position (tiles of :data:`NOISE_TILE`
samples, each from its own seed), so two chunks start from — and add — the same noise where they
overlap, and the result depends only on the seed, not on the device's random state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch

from foleyspace.diffusion.config import DiffusionConfig
from foleyspace.diffusion.model import BinauralDiffWave, trajectory_slice
from foleyspace.diffusion.schedule import reverse_step, sampling_schedule

log = logging.getLogger(__name__)

#: Samples per noise tile: the noise at a sample depends on the seed, the step and its tile only.
NOISE_TILE = 4096
CROSSFADES = ("linear", "equal-power")


def chunk_starts(n_samples: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each chunk: starts every ``chunk − overlap`` samples; every chunk but
    the last is ``chunk`` long, the last is longer than ``overlap``; one chunk if ``n ≤ chunk``."""
    if not 0 <= overlap < chunk:
        raise ValueError("need 0 <= overlap < chunk")
    if n_samples <= chunk:
        return [(0, n_samples)]
    hop = chunk - overlap
    count = -(-(n_samples - overlap) // hop)
    return [(k * hop, min(k * hop + chunk, n_samples)) for k in range(count)]


def crossfade_weights(overlap: int, kind: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """``(fade_in, fade_out)`` over ``overlap`` samples, u = (j + 1)/(overlap + 1): linear
    (``fade_in + fade_out = 1``) or equal-power (``sin(πu/2)``, ``cos(πu/2)``: squares sum to 1)."""
    u = (np.arange(overlap) + 1.0) / (overlap + 1.0)
    if kind == "linear":
        return u, 1.0 - u
    if kind == "equal-power":
        return np.sin(0.5 * np.pi * u), np.cos(0.5 * np.pi * u)
    raise ValueError(f"unknown cross-fade {kind!r}; known: {', '.join(CROSSFADES)}")


def position_noise(seed: int, tag: int, start: int, stop: int, channels: int = 2) -> torch.Tensor:
    """Standard normal noise ``(channels, stop − start)`` float32 for samples ``[start, stop)``,
    drawn per tile of :data:`NOISE_TILE` samples from seed ``(seed, tag, tile)`` (CPU)."""
    first, last = start // NOISE_TILE, (stop - 1) // NOISE_TILE
    tiles = []
    for tile in range(first, last + 1):
        state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, tag, tile]).generate_state(2)
        gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        tiles.append(torch.randn(channels, NOISE_TILE, generator=gen))
    noise = torch.cat(tiles, dim=1)
    offset = start - first * NOISE_TILE
    return noise[:, offset: offset + stop - start]


def autocast_dtype(device: str, dtype: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``dtype`` (``auto``, ``float32``, ``float16``, ``bfloat16``) on
    ``device``: ``auto`` is bf16 on a CUDA GPU that has it (else fp16) and none (fp32) on a CPU."""
    if dtype == "float32" or not device.startswith("cuda"):
        return None
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def default_device() -> str:
    """``cuda`` when PyTorch sees a GPU, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@torch.no_grad()
def sample_chunk(model: BinauralDiffWave, mono: torch.Tensor, trajectory: torch.Tensor, schedule_name: str,
                 seed: int, start: int, device: str, dtype: torch.dtype | None,
                 step_done: Callable[[], None] = lambda: None) -> torch.Tensor:
    """One chunk: ``mono`` ``(L,)`` and ``trajectory`` ``(3, L)`` (model rate) starting at clip
    sample ``start`` → ``(2, L)`` float32 on the CPU; ``step_done()`` after every reverse step."""
    schedule = sampling_schedule(model.cfg, schedule_name)
    n = mono.shape[-1]
    k_last = len(schedule) - 1
    x = position_noise(seed, k_last + 1, start, start + n).unsqueeze(0).to(device)
    cond_mono = mono.view(1, 1, n).to(device)
    cond_traj = trajectory.view(1, 3, n).to(device)
    step_type = torch.long if np.all(schedule.model_steps == np.round(schedule.model_steps)) else torch.float32
    ctx = torch.autocast(device_type=device.split(":")[0], dtype=dtype) if dtype is not None else nullcontext()
    for k in range(k_last, -1, -1):
        step = torch.tensor([schedule.model_steps[k]], device=device).to(step_type)
        with ctx:
            eps = model(x, cond_mono, cond_traj, step)
        z = position_noise(seed, k, start, start + n).unsqueeze(0).to(device) if k > 0 else None
        x = reverse_step(x, eps.float(), schedule, k, z)
        step_done()
    return x[0].float().cpu()


def sample(model: BinauralDiffWave, cfg: DiffusionConfig, mono: np.ndarray, xyz: np.ndarray,
           schedule: str = "standard", seed: int = 0, device: str | None = None, dtype: str = "auto",
           progress: Callable[[float], None] | None = None, crossfade: str = "linear") -> np.ndarray:
    """Generate the binaural signal of ``mono`` along ``xyz``.

    Args:
        model: the network (its weights: the EMA ones for inference), moved to ``device`` here.
        cfg: its config (rate, segment, overlap).
        mono: ``(n,)`` at ``cfg.sample_rate``, at the data's level convention (``cfg.mono_level_dbfs`` RMS);
            the network sees it × ``cfg.data_gain`` (the diffusion space of training) and its output
            is divided by that gain, so the result is at the data's level too.
        xyz: ``(N, 3)`` metres, position i held over eq.-8 segment i of the whole clip
            (:func:`~foleyspace.diffusion.model.expand_trajectory`).
        schedule: ``standard`` (``inference_steps`` respaced steps) or ``fast`` (DiffWave's 6).
        seed: the same seed gives the same output (on the same device and dtype).
        device: ``None``: CUDA when available, else the CPU.
        dtype: autocast on a GPU: ``auto`` (bf16, else fp16), ``float16``, ``bfloat16`` or ``float32``.
        progress: called with the fraction done after every reverse step of every chunk; raising
            from it cancels the sampling (the exception propagates).
        crossfade: ``linear`` or ``equal-power`` between chunks.

    Returns:
        ``(2, n)`` float32 at ``cfg.sample_rate`` (left, right).
    """
    mono = np.asarray(mono, np.float32).reshape(-1)
    xyz_t = torch.as_tensor(np.asarray(xyz, np.float32))
    if xyz_t.dim() != 2 or xyz_t.shape[1] != 3 or len(xyz_t) < 1:
        raise ValueError(f"xyz must be (N, 3) with N >= 1, got {tuple(xyz_t.shape)}")
    n = len(mono)
    out = np.zeros((2, n), np.float32)
    if n == 0:
        return out
    device = device or default_device()
    amp = autocast_dtype(device, dtype)
    model = model.to(device).eval()
    overlap = int(round(cfg.chunk_overlap_s * cfg.sample_rate))
    chunks = chunk_starts(n, cfg.segment_samples, overlap)
    steps = len(sampling_schedule(cfg, schedule))
    total, done = len(chunks) * steps, [0]

    def step_done() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0] / total)

    fade_in, fade_out = crossfade_weights(overlap, crossfade)
    gain = cfg.data_gain  # the diffusion space's gain (DiffusionConfig.data_gain_db): in on the mono, out on the result
    mono_t = torch.from_numpy(mono * np.float32(gain))
    log.info("sampling %d samples in %d chunk(s) x %d steps (%s) on %s", n, len(chunks), steps, schedule, device)
    for index, (start, stop) in enumerate(chunks):
        traj = trajectory_slice(xyz_t, n, start, stop)[0]
        y = sample_chunk(model, mono_t[start:stop], traj, schedule, seed, start, device, amp, step_done).numpy()
        if index > 0:  # the first `overlap` samples cross-fade with the previous chunk's tail
            y[:, :overlap] *= fade_in
            out[:, start: start + overlap] *= fade_out
            out[:, start: start + overlap] += y[:, :overlap]
            out[:, start + overlap: stop] = y[:, overlap:]
        else:
            out[:, start:stop] = y
    return out / np.float32(gain) if gain != 1.0 else out
