"""The binaural DiffWave (paper §III-D): a DiffWave residual stack that predicts the noise of a
2-channel signal, conditioned on the mono signal and the 3-D trajectory.

Shapes: ``noisy`` ``(B, 2, L)``, ``mono`` ``(B, 1, L)``, ``trajectory`` ``(B, 3, L)`` — the
``(x, y, z)`` metres of :func:`expand_trajectory`, SOFA axes —, ``step`` ``(B,)`` (long: training
steps; float: DiffWave's fast schedule aligns an inference step to a fractional training step and
the step embedding is interpolated). Everything is at the model rate (``DiffusionConfig.sample_rate``).

As DiffWave (Kong et al. 2021, §3 / Fig. 2): 1×1 input projection, ``residual_layers`` blocks of a
dilated conv (kernel 3, dilation ``2^(i mod cycle)``) + step embedding + condition, a gated
``tanh · sigmoid`` unit, 1×1 residual/skip projections, residuals scaled by 1/√2, skips summed and
scaled by 1/√layers, then two 1×1 convs (the last zero-initialised). The condition block replaces
DiffWave's mel upsampler (paper §III-D): the trajectory replicated to the audio rate and the mono
signal, concatenated on channels (4), through ``condition_layers`` convs (ours: kernel
``condition_kernel``, leaky ReLU 0.4 as DiffWave's upsampler), projected by a 1×1 conv into every
residual layer.

Ours, per config (``DiffusionConfig``; the paper's config keeps the paper's condition): the
trajectory may enter as unit direction + distance/6 m (``trajectory_condition="direction"``, 5
input channels) and the mono delayed by the source's arrival delay (``condition_delay``,
:func:`delay_by_distance`) for a model whose layers cannot reach over the 16.8 ms distance delay
(:func:`condition_reach`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from foleyspace.diffusion.config import DIRECTION_DISTANCE_SCALE_M, DiffusionConfig

#: Channels of the condition block's input: x, y, z of the trajectory and the mono signal.
CONDITION_INPUTS = 4


def trajectory_bounds(n_positions: int, n_samples: int) -> np.ndarray:
    """Eq. 8 — the ``n_positions + 1`` sample indices ``round(i·L/N)`` cutting ``n_samples`` into
    N (near-)equal segments, rounded as :func:`foleyspace.render.segment_bounds` rounds them."""
    if n_positions < 1:
        raise ValueError("a trajectory needs at least one position")
    return np.round(np.linspace(0, n_samples, n_positions + 1)).astype(np.int64)


def trajectory_slice(xyz: torch.Tensor, n_samples: int, start: int, stop: int) -> torch.Tensor:
    """Samples ``[start, stop)`` of :func:`expand_trajectory` ``(xyz, n_samples)`` without
    expanding the rest: ``(B, 3, stop − start)``; ``xyz`` ``(B, N, 3)`` or ``(N, 3)``."""
    if xyz.dim() == 2:
        xyz = xyz.unsqueeze(0)
    if xyz.dim() != 3 or xyz.shape[-1] != 3:
        raise ValueError(f"trajectory must be (B, N, 3) or (N, 3), got {tuple(xyz.shape)}")
    if not 0 <= start <= stop <= n_samples:
        raise ValueError(f"need 0 <= start <= stop <= {n_samples}")
    bounds = trajectory_bounds(xyz.shape[1], n_samples)
    # position i holds over [bounds[i], bounds[i+1]): the last bound at or before each sample
    index = np.searchsorted(bounds, np.arange(start, stop), side="right") - 1
    index = torch.as_tensor(np.minimum(index, xyz.shape[1] - 1), device=xyz.device)
    return xyz[:, index, :].transpose(1, 2)


def expand_trajectory(xyz: torch.Tensor | np.ndarray, n_samples: int) -> torch.Tensor:
    """Replicate N positions in time to ``n_samples`` (paper §III-D): position i is held over
    samples ``[round(i·L/N), round((i+1)·L/N))`` — the eq. 8 segments of
    :func:`foleyspace.render.segment_bounds`, position i at the start of segment i.

    Args:
        xyz: ``(B, N, 3)`` or ``(N, 3)`` positions, metres (x forward, y left, z up).
        n_samples: L, the signal's samples.

    Returns:
        ``(B, 3, L)`` (B = 1 for a ``(N, 3)`` input), the dtype and device of ``xyz``.
    """
    xyz = torch.as_tensor(xyz)
    return trajectory_slice(xyz, n_samples, 0, n_samples)


def condition_trajectory(trajectory: torch.Tensor, kind: str = "xyz") -> torch.Tensor:
    """The trajectory channels the condition block sees, ``(B, 3, L)`` metres → ``(B, C, L)``:
    ``xyz`` the metres themselves (paper, C = 3); ``direction`` (ours, C = 4) the unit direction
    ``(x, y, z)/r`` and ``r / 6 m`` (a source at the origin points straight ahead)."""
    if kind == "xyz":
        return trajectory
    if kind != "direction":
        raise ValueError(f"unknown trajectory condition {kind!r}")
    r = torch.linalg.vector_norm(trajectory, dim=1, keepdim=True)
    ahead = torch.zeros_like(trajectory)
    ahead[:, 0] = 1.0
    unit = torch.where(r > 1e-6, trajectory / r.clamp_min(1e-6), ahead)
    return torch.cat([unit, r / DIRECTION_DISTANCE_SCALE_M], dim=1)


def delay_by_distance(mono: torch.Tensor, trajectory: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The mono as it arrives from the trajectory's distance (``DiffusionConfig.condition_delay``):
    ``mono`` ``(B, 1, L)``, ``trajectory`` ``(B, 3, L)`` metres → ``(B, 1, L)`` with sample n taken from
    ``n − round(delay(r_n) · rate)``, the DSP renderer's arrival delay ``(r − 0.25)/343`` s (r clamped
    to 0.25–6 m); zero before the signal's start, as the training targets (rendered from silence)."""
    from foleyspace.render import DspRendererConfig

    dsp = DspRendererConfig(distance_delay=True)
    r = torch.linalg.vector_norm(trajectory.float(), dim=1).clamp(dsp.min_distance_m, dsp.max_distance_m)
    lag = torch.round((r - dsp.min_distance_m) / dsp.speed_of_sound * sample_rate).long()
    index = torch.arange(mono.shape[-1], device=mono.device).unsqueeze(0) - lag
    taken = torch.gather(mono[:, 0], 1, index.clamp_min(0))
    return torch.where(index >= 0, taken, torch.zeros_like(taken)).unsqueeze(1)


def _conv(in_channels: int, out_channels: int, kernel: int, dilation: int = 1) -> nn.Conv1d:
    """A 1-D conv keeping the length, Kaiming-normal initialised (as DiffWave)."""
    conv = nn.Conv1d(in_channels, out_channels, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
    nn.init.kaiming_normal_(conv.weight)
    return conv


class StepEmbedding(nn.Module):
    """DiffWave's diffusion-step embedding: sinusoids ``[sin(t·10^(4j/(d−1))), cos(…)]``, j < d =
    ``dim/2``, then two SiLU linear layers. A fractional step interpolates between table rows."""

    def __init__(self, steps: int, dim: int, hidden: int) -> None:
        super().__init__()
        half = dim // 2
        t = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
        j = torch.arange(half, dtype=torch.float32).unsqueeze(0)
        table = t * 10.0 ** (j * 4.0 / max(half - 1, 1))
        self.register_buffer("table", torch.cat([torch.sin(table), torch.cos(table)], dim=1), persistent=False)
        self.projection1 = nn.Linear(2 * half, hidden)
        self.projection2 = nn.Linear(hidden, hidden)

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        """``(B,)`` steps → ``(B, hidden)``."""
        if step.dtype in (torch.int32, torch.int64):
            x = self.table[step]
        else:
            low = torch.floor(step).long().clamp(0, self.table.shape[0] - 1)
            high = torch.ceil(step).long().clamp(0, self.table.shape[0] - 1)
            frac = (step - low.to(step.dtype)).unsqueeze(-1).to(self.table.dtype)
            x = self.table[low] + frac * (self.table[high] - self.table[low])
        x = F.silu(self.projection1(x))
        return F.silu(self.projection2(x))


class ConditionBlock(nn.Module):
    """The paper's condition block: ``(B, inputs, L)`` trajectory (3 or 4 channels) + mono → ``(B, channels, L)``."""

    def __init__(self, channels: int, layers: int, kernel: int, inputs: int = CONDITION_INPUTS) -> None:
        super().__init__()
        widths = [inputs] + [channels] * layers
        self.convs = nn.ModuleList(_conv(a, b, kernel) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        x = condition
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.4)
        return x


class ResidualBlock(nn.Module):
    """One DiffWave layer: dilated conv + step + condition, gated unit, residual and skip outputs."""

    def __init__(self, channels: int, dilation: int, embedding_hidden: int, condition_channels: int) -> None:
        super().__init__()
        self.dilated_conv = _conv(channels, 2 * channels, 3, dilation)
        self.diffusion_projection = nn.Linear(embedding_hidden, channels)
        self.conditioner_projection = _conv(condition_channels, 2 * channels, 1)
        self.output_projection = _conv(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, step: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, C, L)``, ``step`` ``(B, hidden)``, ``condition`` ``(B, Cc, L)`` → (residual out, skip)."""
        y = x + self.diffusion_projection(step).unsqueeze(-1)
        y = self.dilated_conv(y) + self.conditioner_projection(condition)
        gate, filt = torch.chunk(y, 2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = torch.chunk(y, 2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class BinauralDiffWave(nn.Module):
    """Predicts the noise ε of a noisy binaural signal (DDPM ε-parameterisation)."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.residual_channels
        self.input_projection = _conv(cfg.out_channels, c, 1)
        self.embedding = StepEmbedding(cfg.diffusion_steps, cfg.embedding_dim, cfg.embedding_hidden)
        inputs = CONDITION_INPUTS + (1 if cfg.trajectory_condition == "direction" else 0)
        self.condition = ConditionBlock(cfg.condition_channels, cfg.condition_layers, cfg.condition_kernel, inputs)
        self.layers = nn.ModuleList(
            ResidualBlock(c, 2 ** (i % cfg.dilation_cycle), cfg.embedding_hidden, cfg.condition_channels)
            for i in range(cfg.residual_layers))
        self.skip_projection = _conv(c, c, 1)
        self.output_projection = _conv(c, cfg.out_channels, 1)
        nn.init.zeros_(self.output_projection.weight)

    def forward(self, noisy: torch.Tensor, mono: torch.Tensor, trajectory: torch.Tensor,
                step: torch.Tensor) -> torch.Tensor:
        """``noisy`` ``(B, 2, L)``, ``mono`` ``(B, 1, L)``, ``trajectory`` ``(B, 3, L)``, ``step``
        ``(B,)`` → predicted noise ``(B, 2, L)``."""
        if noisy.dim() != 3 or noisy.shape[1] != self.cfg.out_channels:
            raise ValueError(f"noisy must be (B, {self.cfg.out_channels}, L), got {tuple(noisy.shape)}")
        if mono.shape != (noisy.shape[0], 1, noisy.shape[2]) or trajectory.shape != (noisy.shape[0], 3, noisy.shape[2]):
            raise ValueError(f"mono (B, 1, L) and trajectory (B, 3, L) must match noisy {tuple(noisy.shape)}, "
                             f"got {tuple(mono.shape)} and {tuple(trajectory.shape)}")
        x = F.relu(self.input_projection(noisy))
        emb = self.embedding(step)
        if self.cfg.condition_delay:
            mono = delay_by_distance(mono, trajectory, self.cfg.sample_rate)
        cond = self.condition(torch.cat([condition_trajectory(trajectory, self.cfg.trajectory_condition), mono], dim=1))
        skip = None
        for layer in self.layers:
            x, s = layer(x, emb, cond)
            skip = s if skip is None else skip + s
        x = F.relu(self.skip_projection(skip / math.sqrt(len(self.layers))))
        return self.output_projection(x)


def condition_reach(cfg: DiffusionConfig) -> int:
    """How many samples away (either side) the condition — the mono — can reach an output sample:
    the condition block's ``condition_layers · (condition_kernel − 1)/2``, plus the dilations of
    every residual layer after the first (the condition enters each layer after its dilated conv).
    The binaural target is the mono delayed by the distance (up to (6 − 0.25) m / 343 m/s = 16.8 ms)
    and the HRIR, so a model that cannot reach that far cannot place its output on the target."""
    dilations = [2 ** (i % cfg.dilation_cycle) for i in range(cfg.residual_layers)]
    return cfg.condition_layers * (cfg.condition_kernel - 1) // 2 + sum(dilations[1:])


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
