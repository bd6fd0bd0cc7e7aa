"""Objective metrics of a binaural signal against a reference (``eval binaural``).

Every function takes ``estimate`` and ``reference`` as ``(2, n)`` arrays (left, right ear) at
``sample_rate`` Hz and returns one float. The spectral metrics follow BinauralGrad (Leng et al.
2022), which takes them from Richard et al. 2021 ("Neural synthesis of binaural speech"): their
STFT is a 40 ms Hann window, 10 ms hop, centred frames, an FFT of the next power of two (2048 at
their 48 kHz). We keep those durations at whatever rate the model runs (ours), so the windows cover
the same time at 8 or 16 kHz. The interaural metrics (ILD, ITD per 100 ms window) are ours.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: STFT of the amplitude and phase errors: window and hop in seconds (BinauralGrad: 40 ms, 10 ms).
STFT_WINDOW_S = 0.040
STFT_HOP_S = 0.010
#: Multi-resolution STFT (auraloss' defaults at 48 kHz, as BinauralGrad): (fft, hop, window) samples at 48 kHz.
MRSTFT_RESOLUTIONS_48K = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
#: Window of the interaural metrics, seconds (ours: 100 ms).
INTERAURAL_WINDOW_S = 0.100
#: Largest interaural lag searched, seconds (±1 ms, a little beyond a head's ~0.7 ms).
MAX_ITD_S = 0.001
#: Windows whose reference energy is this far below the loudest window are skipped (dB, ours).
SILENCE_DB = -40.0


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, np.float64)
    ref = np.asarray(reference, np.float64)
    if est.shape != ref.shape or est.ndim != 2 or est.shape[0] != 2:
        raise ValueError(f"need two (2, n) signals of one shape, got {est.shape} and {ref.shape}")
    return est, ref


def _stft(x: np.ndarray, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Complex STFT ``(channels, n_fft//2+1, frames)`` of ``(channels, n)``: Hann window of ``win``
    samples, centred (reflect-padded) frames, as ``torch.stft``."""
    signal = torch.from_numpy(np.ascontiguousarray(x))
    if signal.shape[-1] <= n_fft // 2:  # reflect padding needs more samples than half an FFT
        signal = torch.nn.functional.pad(signal, (0, n_fft // 2 + 1 - signal.shape[-1]))
    return torch.stft(signal, n_fft=n_fft, hop_length=hop, win_length=win,
                      window=torch.hann_window(win, dtype=torch.float64), center=True, return_complex=True)


def _spec_params(sample_rate: int) -> tuple[int, int, int]:
    win = max(2, int(round(STFT_WINDOW_S * sample_rate)))
    hop = max(1, int(round(STFT_HOP_S * sample_rate)))
    return 1 << (win - 1).bit_length(), hop, win


def wave_l2(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Waveform L2 (BinauralGrad): mean over both ears and all samples of ``(est − ref)²``.
    Tables show it ×10³."""
    est, ref = _pair(estimate, reference)
    return float(np.mean((est - ref) ** 2))


def amplitude_error(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """STFT amplitude error (BinauralGrad's "amplitude L2"): mean over ears, bins and frames of
    ``| |STFT(est)| − |STFT(ref)| |`` (40 ms Hann window, 10 ms hop)."""
    est, ref = _pair(estimate, reference)
    n_fft, hop, win = _spec_params(sample_rate)
    return float(torch.mean(torch.abs(_stft(est, n_fft, hop, win).abs() - _stft(ref, n_fft, hop, win).abs())))


def phase_error(estimate: np.ndarray, reference: np.ndarray, sample_rate: int, ignore_below: float = 0.1) -> float:
    """STFT phase error (BinauralGrad's "phase L2"), radians in [0, π]: the mean angular
    distance ``π − | |∠est − ∠ref| − π |`` over the STFT bins where both the reference's and the
    estimate's energy ``|Re| + |Im|`` exceed ``ignore_below`` × the reference's mean energy
    (quiet bins have no meaningful phase). 0 when no bin qualifies."""
    est, ref = _pair(estimate, reference)
    n_fft, hop, win = _spec_params(sample_rate)
    e, r = _stft(est, n_fft, hop, win).flatten(), _stft(ref, n_fft, hop, win).flatten()
    r_energy = r.real.abs() + r.imag.abs()
    e_energy = e.real.abs() + e.imag.abs()
    floor = ignore_below * r_energy.mean()
    keep = (r_energy > floor) & (e_energy > floor)
    if not bool(keep.any()):
        return 0.0
    diff = torch.abs(torch.angle(e[keep]) - torch.angle(r[keep]))
    return float(torch.mean(math.pi - torch.abs(diff - math.pi)))


def mrstft_loss(estimate: np.ndarray, reference: np.ndarray, sample_rate: int, eps: float = 1e-8) -> float:
    """Multi-resolution STFT loss (auraloss' ``MultiResolutionSTFTLoss`` defaults, as BinauralGrad),
    the mean over three resolutions of spectral convergence ``‖|R| − |E|‖_F / ‖|R|‖_F`` plus the
    log-magnitude distance ``mean |log|R| − log|E||`` (magnitudes ``sqrt(max(re² + im², eps))``).
    The resolutions are auraloss' (fft, hop, window) at 48 kHz — (1024, 120, 600), (2048, 240,
    1200), (512, 50, 240) — scaled to ``sample_rate`` in time (ours)."""
    est, ref = _pair(estimate, reference)
    scale = sample_rate / 48000.0
    total = 0.0
    for fft48, hop48, win48 in MRSTFT_RESOLUTIONS_48K:
        win = max(2, int(round(win48 * scale)))
        n_fft = max(win, 1 << (max(2, int(round(fft48 * scale))) - 1).bit_length())
        hop = max(1, int(round(hop48 * scale)))
        e = torch.sqrt(torch.clamp(_stft(est, n_fft, hop, win).abs() ** 2, min=eps))
        r = torch.sqrt(torch.clamp(_stft(ref, n_fft, hop, win).abs() ** 2, min=eps))
        sc = torch.linalg.norm(r - e) / torch.clamp(torch.linalg.norm(r), min=eps)
        total += float(sc + torch.mean(torch.abs(torch.log(r) - torch.log(e))))
    return total / len(MRSTFT_RESOLUTIONS_48K)


def _windows(n: int, sample_rate: int, window_s: float) -> list[tuple[int, int]]:
    size = max(1, int(round(window_s * sample_rate)))
    return [(s, min(n, s + size)) for s in range(0, n, size) if min(n, s + size) - s >= size // 2]


def _loud(reference: np.ndarray, windows: list[tuple[int, int]], silence_db: float) -> list[bool]:
    energy = np.array([np.sum(reference[:, s:e] ** 2) for s, e in windows])
    if len(energy) == 0 or energy.max() <= 0:
        return [False] * len(windows)
    return list(energy > energy.max() * 10 ** (silence_db / 10))


def ild_db(stereo: np.ndarray, eps: float = 1e-12) -> float:
    """Interaural level difference of ``(2, n)``: ``10·log10(E_left / E_right)`` dB (positive =
    louder on the left)."""
    x = np.asarray(stereo, np.float64)
    return float(10 * np.log10((np.sum(x[0] ** 2) + eps) / (np.sum(x[1] ** 2) + eps)))


def itd_s(stereo: np.ndarray, sample_rate: int, max_lag_s: float = MAX_ITD_S) -> float:
    """Interaural time difference of ``(2, n)``, seconds: the lag k maximising the
    cross-correlation ``c[k] = Σ left[i]·right[i + k]`` over |k| ≤ ``max_lag_s``, refined by a
    parabola through the peak and its neighbours. Positive = the right ear hears it later (the
    source is on the left)."""
    x = np.asarray(stereo, np.float64)
    n = x.shape[1]
    max_lag = max(1, min(int(math.ceil(max_lag_s * sample_rate)), n - 1))
    size = 1 << (2 * n - 1).bit_length()
    spec = np.conj(np.fft.rfft(x[0], size)) * np.fft.rfft(x[1], size)
    full = np.fft.irfft(spec, size)
    lags = np.arange(-max_lag, max_lag + 1)
    corr = full[lags % size]
    i = int(np.argmax(corr))
    shift = 0.0
    if 0 < i < len(corr) - 1:
        a, b, c = corr[i - 1], corr[i], corr[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            shift = 0.5 * (a - c) / denom
    return float((lags[i] + shift) / sample_rate)


def ild_error_db(estimate: np.ndarray, reference: np.ndarray, sample_rate: int,
                 window_s: float = INTERAURAL_WINDOW_S, silence_db: float = SILENCE_DB) -> float:
    """Mean absolute ILD difference, dB, over ``window_s`` windows (ours: 100 ms) where the
    reference is within ``silence_db`` of its loudest window; :func:`ild_db` per window."""
    est, ref = _pair(estimate, reference)
    windows = _windows(ref.shape[1], sample_rate, window_s)
    errors = [abs(ild_db(est[:, s:e]) - ild_db(ref[:, s:e]))
              for (s, e), loud in zip(windows, _loud(ref, windows, silence_db)) if loud]
    return float(np.mean(errors)) if errors else 0.0


def itd_error_us(estimate: np.ndarray, reference: np.ndarray, sample_rate: int,
                 window_s: float = INTERAURAL_WINDOW_S, max_lag_s: float = MAX_ITD_S,
                 silence_db: float = SILENCE_DB) -> float:
    """Mean absolute ITD difference, µs, over ``window_s`` windows (100 ms) where the reference is
    within ``silence_db`` of its loudest window; :func:`itd_s` per window (cross-correlation peak
    within ±``max_lag_s``, 1 ms)."""
    est, ref = _pair(estimate, reference)
    windows = _windows(ref.shape[1], sample_rate, window_s)
    errors = [abs(itd_s(est[:, s:e], sample_rate, max_lag_s) - itd_s(ref[:, s:e], sample_rate, max_lag_s))
              for (s, e), loud in zip(windows, _loud(ref, windows, silence_db)) if loud]
    return float(np.mean(errors)) * 1e6 if errors else 0.0


#: Metric names in table order, with how a table shows them.
METRICS: tuple[tuple[str, str], ...] = (
    ("wave_l2_x1e3", "wave L2 ×10³"),
    ("amplitude", "amplitude"),
    ("phase", "phase (rad)"),
    ("mrstft", "MR-STFT"),
    ("ild_db", "ILD err (dB)"),
    ("itd_us", "ITD err (µs)"),
)


def all_metrics(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Every metric of this module, keyed as :data:`METRICS` (wave L2 already ×10³)."""
    return {
        "wave_l2_x1e3": wave_l2(estimate, reference) * 1e3,
        "amplitude": amplitude_error(estimate, reference, sample_rate),
        "phase": phase_error(estimate, reference, sample_rate),
        "mrstft": mrstft_loss(estimate, reference, sample_rate),
        "ild_db": ild_error_db(estimate, reference, sample_rate),
        "itd_us": itd_error_us(estimate, reference, sample_rate),
    }
