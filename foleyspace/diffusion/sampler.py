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
from collections.abc import Callable, Iterable, Iterator
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


def native_bf16(device: str | torch.device) -> bool:
    """Whether the CUDA ``device`` computes in bf16 natively (compute capability 8.0 on: Ampere,
    Hopper, …); ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only emulated."""
    return torch.device(device).type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def autocast_dtype(device: str, dtype: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``dtype`` (``auto``, ``float32``, ``float16``, ``bfloat16``) on
    ``device``: ``auto`` is bf16 on a CUDA GPU that has it (else fp16) and none (fp32) on a CPU."""
    if dtype == "float32" or not device.startswith("cuda"):
        return None
    if dtype == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float16
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


def chunk_gain(mono: np.ndarray, level_dbfs: float | None) -> float:
    """The gain that brings a chunk's ``mono`` ``(L,)`` to an RMS of ``level_dbfs`` dB re full scale
    (as the training set's builder scales each segment); 1 for ``None`` (the mono is at the data's
    level already); 0 for a silent chunk (its output is silence, no network is run)."""
    if level_dbfs is None:
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))) if len(mono) else 0.0
    return 10.0 ** (level_dbfs / 20.0) / rms if rms > 0.0 and np.isfinite(rms) else 0.0


class _MonoWindow:
    """The mono samples ``[start, …)`` of a signal that arrives in blocks, read only as far as asked."""

    def __init__(self, blocks: Iterable[np.ndarray], n_samples: int) -> None:
        self._blocks = iter(blocks)
        self._n = n_samples
        self.start = 0
        self._parts: list[np.ndarray] = []
        self._held = 0

    def take(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (``start`` ≥ the window's start), float64, reading blocks as needed."""
        while self.start + self._held < stop:
            block = next(self._blocks, None)
            if block is None:
                raise ValueError(f"the mono signal ended after {self.start + self._held} samples; "
                                 f"{self._n} were expected")
            block = np.asarray(block, np.float64).reshape(-1)
            self._parts.append(block)
            self._held += len(block)
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0][start - self.start: stop - self.start]

    def drop_before(self, index: int) -> None:
        """Forget the samples before ``index``."""
        if self._parts:
            kept = self._parts[0][index - self.start:].copy()  # a copy: the dropped samples are freed
            self._parts, self._held = [kept], len(kept)
        self.start = index


def render_chunk(model: BinauralDiffWave, cfg: DiffusionConfig, mono: np.ndarray, trajectory: torch.Tensor,
                 schedule_name: str, seed: int, start: int, device: str, dtype: torch.dtype | None,
                 step_done: Callable[[], None], level_dbfs: float | None) -> np.ndarray:
    """One chunk at the mono's own level: ``mono`` ``(L,)`` float64 (model rate, clip samples
    ``[start, start + L)``) and ``trajectory`` ``(3, L)`` metres → ``(2, L)`` float64.

    The network sees the mono × :func:`chunk_gain` × ``cfg.data_gain`` (the data's level, then the
    diffusion space) and its output is divided by the same product; a silent chunk gives zeros
    (its steps are still reported, so progress and cancel keep their pace)."""
    gain = chunk_gain(mono, level_dbfs)
    if gain == 0.0:
        for _ in range(len(sampling_schedule(cfg, schedule_name))):
            step_done()
        return np.zeros((2, len(mono)))
    scale = gain * cfg.data_gain
    mono_t = torch.from_numpy((mono * scale).astype(np.float32))
    y = sample_chunk(model, mono_t, trajectory, schedule_name, seed, start, device, dtype, step_done)
    return y.numpy().astype(np.float64) / scale


def sample_blocks(model: BinauralDiffWave, cfg: DiffusionConfig, blocks: Iterable[np.ndarray], n_samples: int,
                  xyz: np.ndarray, schedule: str = "standard", seed: int = 0, device: str | None = None,
                  dtype: str = "auto", progress: Callable[[float], None] | None = None, crossfade: str = "linear",
                  level_dbfs: float | None = None) -> Iterator[np.ndarray]:
    """Generate the binaural signal of a mono signal arriving in blocks, chunk by chunk, in blocks.

    Chunks, noise, positions and cross-fades are those of the module docstring, so the result
    depends on neither the input's nor the output's blocking. Held at a time: the mono from the
    current chunk's start to the end of the block that completes it (≈ ``segment_samples`` + a
    block) and one chunk's output; the finished part (up to the next chunk's start) is yielded as
    soon as the chunk is done, the overlap waits for the next chunk's cross-fade.

    Args:
        model, cfg, schedule, seed, device, dtype, progress, crossfade: as :func:`sample`.
        blocks: the mono ``(k,)`` blocks at ``cfg.sample_rate``, ``n_samples`` in all (only that many are read).
        n_samples: n, the signal's samples.
        xyz: ``(N, 3)`` metres, position i held over eq.-8 segment i of the whole signal.
        level_dbfs: ``None``: the mono is at the data's level (RMS ``cfg.mono_level_dbfs``) already;
            a level: each chunk is scaled to that RMS on its own (:func:`chunk_gain`) and its
            output scaled back, so the model hears every chunk at the level of the training
            segments whatever the clip's level (the renderer's case).

    Returns:
        an iterator of ``(2, k)`` float64 blocks at ``cfg.sample_rate``, ``n_samples`` in all (one
        per chunk), at the mono's level. Validation happens here; sampling as it is consumed.
    """
    xyz_t = torch.as_tensor(np.asarray(xyz, np.float32))
    if xyz_t.dim() != 2 or xyz_t.shape[1] != 3 or len(xyz_t) < 1:
        raise ValueError(f"xyz must be (N, 3) with N >= 1, got {tuple(xyz_t.shape)}")
    if n_samples <= 0:
        return iter(())
    overlap = int(round(cfg.chunk_overlap_s * cfg.sample_rate))
    chunks = chunk_starts(n_samples, cfg.segment_samples, overlap)
    fades = crossfade_weights(overlap, crossfade)
    device = device or default_device()
    step_done = _step_counter(len(chunks) * len(sampling_schedule(cfg, schedule)), progress)

    def chunk(mono: np.ndarray, start: int, stop: int) -> np.ndarray:
        traj = trajectory_slice(xyz_t, n_samples, start, stop)[0]
        return render_chunk(model, cfg, mono, traj, schedule, seed, start, device, autocast_dtype(device, dtype),
                            step_done, level_dbfs)

    model = model.to(device).eval()
    log.info("sampling %d samples in %d chunk(s) x %d steps (%s) on %s", n_samples, len(chunks),
             len(sampling_schedule(cfg, schedule)), schedule, device)
    return _chunked(_MonoWindow(blocks, n_samples), chunks, fades, chunk)


def _step_counter(total: int, progress: Callable[[float], None] | None) -> Callable[[], None]:
    """A ``step_done()`` that reports the fraction of ``total`` steps done to ``progress``."""
    done = [0]

    def step_done() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0] / total)

    return step_done


def _chunked(mono: _MonoWindow, chunks: list[tuple[int, int]], fades: tuple[np.ndarray, np.ndarray],
             chunk: Callable[[np.ndarray, int, int], np.ndarray]) -> Iterator[np.ndarray]:
    """Render ``chunks`` in order with ``chunk(mono, start, stop)`` → ``(2, stop − start)``; cross-fade
    each chunk's first ``overlap`` samples with the previous chunk's tail (``fades``: in, out) and
    yield everything before the next chunk's start."""
    fade_in, fade_out = fades
    overlap = len(fade_in)
    tail = np.zeros((2, 0))
    for index, (start, stop) in enumerate(chunks):
        y = chunk(mono.take(start, stop), start, stop)
        if index > 0:
            y[:, :overlap] = fade_out * tail + fade_in * y[:, :overlap]
        following = chunks[index + 1][0] if index + 1 < len(chunks) else stop
        mono.drop_before(following)
        tail = y[:, following - start:].copy()
        yield y[:, : following - start]


def sample(model: BinauralDiffWave, cfg: DiffusionConfig, mono: np.ndarray, xyz: np.ndarray,
           schedule: str = "standard", seed: int = 0, device: str | None = None, dtype: str = "auto",
           progress: Callable[[float], None] | None = None, crossfade: str = "linear") -> np.ndarray:
    """Generate the binaural signal of ``mono`` along ``xyz`` (:func:`sample_blocks` of one block, collected).

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
    parts = list(sample_blocks(model, cfg, [mono], len(mono), xyz, schedule, seed, device, dtype, progress, crossfade))
    return np.concatenate(parts, axis=1).astype(np.float32) if parts else np.zeros((2, 0), np.float32)
