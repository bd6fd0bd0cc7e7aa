"""The diffusion maths as pure functions: the noise schedules, the forward process and one reverse step.

Notation (Ho et al. 2020, "DDPM"; Kong et al. 2021, "DiffWave"): β_t the noise variance of
training step t (t = 0 … T−1 here, the papers' 1 … T), α_t = 1 − β_t, ᾱ_t = ∏_{s≤t} α_s.

- Forward process (DDPM eq. 4): ``x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε``, ε ~ N(0, I).
- Reverse step (DDPM Alg. 2 / DiffWave Alg. 2):
  ``x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t)) / √α_t + σ_t z``, σ_t² = β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t,
  no noise at the last step.
- Standard sampler (paper: 50 steps): the training steps respaced as improved DDPM (Nichol &
  Dhariwal 2021, §4): K steps kept, evenly strided from 0 to T−1, and β recomputed from ᾱ,
  ``β'_k = 1 − ᾱ_{s_k}/ᾱ_{s_{k−1}}``, so the respaced ᾱ' equals ᾱ at every kept step; the model
  sees the kept training step s_k.
- Fast sampler (DiffWave §4 "fast sampling", its inference.py): a hand-picked β (6 steps), and each
  inference step s aligned to the fractional training step t + (√ᾱ_t − √ᾱ'_s)/(√ᾱ_t − √ᾱ_{t+1})
  where ᾱ_{t+1} ≤ ᾱ'_s ≤ ᾱ_t; the step embedding interpolates there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from foleyspace.diffusion.config import SCHEDULES, DiffusionConfig

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class NoiseSchedule:
    """A noise schedule of K steps; each field ``(K,)`` float64.

    Attributes:
        beta: β_k; alpha: α_k = 1 − β_k; alpha_bar: ᾱ_k = ∏ α.
        model_steps: the (possibly fractional) training step the model is told at step k.
    """

    beta: np.ndarray
    alpha: np.ndarray
    alpha_bar: np.ndarray
    model_steps: np.ndarray

    def __len__(self) -> int:
        return len(self.beta)

    @property
    def sigma(self) -> np.ndarray:
        """σ_k of the reverse step, √β̃_k = √((1 − ᾱ_{k−1})/(1 − ᾱ_k) · β_k) (DDPM §3.2); σ_0 = 0."""
        prev = np.concatenate([[1.0], self.alpha_bar[:-1]])
        return np.sqrt((1.0 - prev) / (1.0 - self.alpha_bar) * self.beta)


def _from_beta(beta: np.ndarray, model_steps: np.ndarray) -> NoiseSchedule:
    beta = np.asarray(beta, np.float64)
    alpha = 1.0 - beta
    return NoiseSchedule(beta, alpha, np.cumprod(alpha), np.asarray(model_steps, np.float64))


def training_schedule(cfg: DiffusionConfig) -> NoiseSchedule:
    """The forward process: linear β from ``beta_start`` to ``beta_end`` over T = ``diffusion_steps``
    (DDPM §4; DESIGN §2)."""
    beta = np.linspace(cfg.beta_start, cfg.beta_end, cfg.diffusion_steps)
    return _from_beta(beta, np.arange(cfg.diffusion_steps))


def kept_steps(diffusion_steps: int, count: int) -> np.ndarray:
    """Improved DDPM's even striding: ``round(k·(T − 1)/(K − 1))``, k < K (0 and T − 1 kept)."""
    if not 1 <= count <= diffusion_steps:
        raise ValueError(f"need 1 <= steps <= {diffusion_steps}")
    if count == 1:
        return np.array([diffusion_steps - 1])
    return np.round(np.arange(count) * (diffusion_steps - 1) / (count - 1)).astype(np.int64)


def respaced_schedule(cfg: DiffusionConfig, count: int | None = None) -> NoiseSchedule:
    """The standard sampler: ``count`` (default ``inference_steps``) kept training steps with
    ``β'_k = 1 − ᾱ_{s_k}/ᾱ_{s_{k−1}}`` (ᾱ_{s_{−1}} = 1), so ᾱ' = ᾱ at the kept steps."""
    train = training_schedule(cfg)
    kept = kept_steps(cfg.diffusion_steps, count or cfg.inference_steps)
    bar = train.alpha_bar[kept]
    beta = 1.0 - bar / np.concatenate([[1.0], bar[:-1]])
    return _from_beta(beta, kept)


def align_steps(train_alpha_bar: np.ndarray, alpha_bar: np.ndarray) -> np.ndarray:
    """DiffWave's alignment of inference steps to fractional training steps: for each ᾱ'_s the t
    with ᾱ_{t+1} ≤ ᾱ'_s ≤ ᾱ_t, then ``t + (√ᾱ_t − √ᾱ'_s)/(√ᾱ_t − √ᾱ_{t+1})``. An ᾱ'_s above ᾱ_0
    maps to 0, one below ᾱ_{T−1} to T − 1."""
    root = np.sqrt(np.asarray(train_alpha_bar, np.float64))
    steps = []
    for a in np.sqrt(np.asarray(alpha_bar, np.float64)):
        if a >= root[0]:
            steps.append(0.0)
            continue
        if a <= root[-1]:
            steps.append(float(len(root) - 1))
            continue
        t = int(np.nonzero(root >= a)[0][-1])  # root[t] >= a > root[t + 1]
        steps.append(t + (root[t] - a) / (root[t] - root[t + 1]))
    return np.array(steps)


def fast_schedule(cfg: DiffusionConfig) -> NoiseSchedule:
    """DiffWave's fast sampler: β = ``cfg.fast_schedule``, model steps by :func:`align_steps`."""
    beta = np.asarray(cfg.fast_schedule, np.float64)
    bar = np.cumprod(1.0 - beta)
    return _from_beta(beta, align_steps(training_schedule(cfg).alpha_bar, bar))


def sampling_schedule(cfg: DiffusionConfig, name: str = "standard") -> NoiseSchedule:
    """The schedule a sampler named ``name`` (:data:`SCHEDULES`) runs."""
    if name == "standard":
        return respaced_schedule(cfg)
    if name == "fast":
        return fast_schedule(cfg)
    raise ValueError(f"unknown sampling schedule {name!r}; known: {', '.join(SCHEDULES)}")


def q_sample(x0: "torch.Tensor", t: "torch.Tensor", noise: "torch.Tensor", cfg: DiffusionConfig) -> "torch.Tensor":
    """DDPM eq. 4, the forward process: ``√ᾱ_t · x0 + √(1 − ᾱ_t) · noise``.

    Args:
        x0: clean signals ``(B, C, L)``; t: training steps ``(B,)`` long in [0, T); noise: like ``x0``.
        cfg: the config whose linear β schedule defines ᾱ.

    Returns:
        ``x_t`` like ``x0`` (its dtype). The training loss is ``‖noise − model(x_t, …, t)‖²``.
    """
    import torch

    bar = torch.as_tensor(training_schedule(cfg).alpha_bar, dtype=torch.float32, device=x0.device)[t]
    shape = (-1,) + (1,) * (x0.dim() - 1)
    return (bar.sqrt().view(shape) * x0 + (1.0 - bar).sqrt().view(shape) * noise).to(x0.dtype)


def reverse_step(x: "torch.Tensor", eps: "torch.Tensor", schedule: NoiseSchedule, k: int,
                 z: "torch.Tensor | None") -> "torch.Tensor":
    """DDPM Alg. 2, one step: ``(x − β_k/√(1 − ᾱ_k) · eps)/√α_k + σ_k z`` (``z`` ignored at k = 0)."""
    c1 = 1.0 / float(np.sqrt(schedule.alpha[k]))
    c2 = float(schedule.beta[k] / np.sqrt(1.0 - schedule.alpha_bar[k]))
    x = c1 * (x - c2 * eps)
    if k > 0 and z is not None:
        x = x + float(schedule.sigma[k]) * z
    return x
