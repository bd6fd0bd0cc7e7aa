"""Analytic HRTF of a spherical head with pinna echoes (Brown & Duda 1998 structural model).

Model, per ear, in the frequency domain:

* head shadow (one-pole/one-zero approximation of Rayleigh's rigid sphere)
  ``H(ω, θ) = (1 + j·α(θ)·ω/(2ω₀)) / (1 + j·ω/(2ω₀))``, ``ω₀ = c/a``,
  ``α(θ) = (1 + α_min/2) + (1 − α_min/2)·cos(π·θ/θ_min)`` with α_min = 0.1, θ_min = 150°;
  θ is the angle between the source direction and the ear's axis;
* time of arrival (Woodworth): ``T(θ) = −(a/c)·cos θ`` for θ < 90°, ``(a/c)·(θ − π/2)`` beyond,
  plus ``a/c`` so it is never negative; the interaural difference reaches ``(a/c)(1 + π/2)``
  (0.66 ms for a = 8.75 cm), the range of human heads;
* pinna echoes for elevation: ``1 + Σ ρ_k·e^{−jωτ_k}``,
  ``τ_k = A_k·cos(θ_az/2)·sin(D_k·(90° − φ)) + B_k`` samples at 44.1 kHz (Brown & Duda, Table I).

Defaults: head radius a = 8.75 cm, c = 343 m/s, ears at ±100° azimuth (slightly behind the
interaural axis, as in the paper), 256 taps with a 1 ms bulk delay. The model is far-field; its
reference radius (for the 1/r distance gain) is set to 1.47 m, the HUTUBS measurement radius.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foleyspace.coords import to_cartesian

_PINNA_RHO = np.array([0.5, -1.0, 0.5, -0.25, 0.25])
_PINNA_A = np.array([1.0, 5.0, 5.0, 5.0, 5.0])
_PINNA_B = np.array([2.0, 4.0, 7.0, 11.0, 13.0])
_PINNA_D = np.array([1.0, 0.5, 0.5, 0.5, 0.5])
_PINNA_FS = 44100.0


@dataclass(frozen=True)
class SphericalHeadConfig:
    """Parameters of the structural model (see module docstring).

    Attributes:
        head_radius_m: sphere radius a in metres.
        speed_of_sound: c in m/s.
        ear_azimuth_deg: the ears sit at ± this azimuth.
        alpha_min, theta_min_deg: head-shadow shape (Brown & Duda: 0.1, 150°).
        pinna: include the pinna echoes (elevation cue).
        taps: impulse-response length in samples.
        bulk_delay_s: common delay so fractional delays stay causal, seconds.
        ref_distance_m: radius the responses stand for (ours: 1.47 m, HUTUBS).
    """

    head_radius_m: float = 0.0875
    speed_of_sound: float = 343.0
    ear_azimuth_deg: float = 100.0
    alpha_min: float = 0.1
    theta_min_deg: float = 150.0
    pinna: bool = True
    taps: int = 256
    bulk_delay_s: float = 0.001
    ref_distance_m: float = 1.47


def incidence_angle(azimuth_deg: np.ndarray, elevation_deg: np.ndarray, ear_azimuth_deg: float) -> np.ndarray:
    """Angle in radians between source directions and an ear axis in the horizontal plane."""
    src = to_cartesian(azimuth_deg, elevation_deg, np.ones_like(np.asarray(azimuth_deg, float)))
    ear = to_cartesian(ear_azimuth_deg, 0.0, 1.0)
    return np.arccos(np.clip(src @ ear, -1.0, 1.0))


def woodworth_delay(theta: np.ndarray, head_radius_m: float, c: float) -> np.ndarray:
    """Time of arrival at an ear (s), ≥ 0, for incidence angles ``theta`` (rad): Woodworth's formula."""
    theta = np.abs(np.asarray(theta, float))
    a_c = head_radius_m / c
    return np.where(theta < np.pi / 2, -a_c * np.cos(theta), a_c * (theta - np.pi / 2)) + a_c


def head_shadow(freqs_hz: np.ndarray, theta: np.ndarray, cfg: SphericalHeadConfig) -> np.ndarray:
    """Brown–Duda head-shadow filter ``(N, F)`` complex for incidence angles ``theta`` (rad)."""
    w0 = cfg.speed_of_sound / cfg.head_radius_m
    w = 2 * np.pi * np.asarray(freqs_hz, float)[None, :]
    alpha = (1 + cfg.alpha_min / 2) + (1 - cfg.alpha_min / 2) * np.cos(
        np.asarray(theta, float)[:, None] / np.radians(cfg.theta_min_deg) * np.pi
    )
    return (1 + 1j * alpha * w / (2 * w0)) / (1 + 1j * w / (2 * w0))


def pinna_response(freqs_hz: np.ndarray, azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Brown–Duda pinna echoes ``1 + Σ ρ_k e^{−jωτ_k}`` ``(N, F)`` complex (valid for the front)."""
    az = np.radians(np.asarray(azimuth_deg, float))[:, None]
    el = np.radians(np.asarray(elevation_deg, float))[:, None]
    tau = (_PINNA_A * np.cos(az / 2) * np.sin(_PINNA_D * (np.pi / 2 - el)) + _PINNA_B) / _PINNA_FS  # (N, 5) s
    w = 2 * np.pi * np.asarray(freqs_hz, float)
    return 1 + np.einsum("k,nkf->nf", _PINNA_RHO, np.exp(-1j * w[None, None, :] * tau[:, :, None]))


class SphericalHeadHrirSet:
    """HRIRs computed from the structural model; satisfies :class:`~foleyspace.hrtf.base.HrirSet`."""

    def __init__(self, sample_rate: int = 48000, config: SphericalHeadConfig = SphericalHeadConfig()) -> None:
        self.sample_rate = int(sample_rate)
        self.config = config
        self.ref_distance_m = config.ref_distance_m
        self.name = f"spherical head a={config.head_radius_m * 100:.2f} cm (Brown-Duda)"

    def hrirs(self, azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
        cfg = self.config
        az = np.atleast_1d(np.asarray(azimuth_deg, float))
        el = np.atleast_1d(np.asarray(elevation_deg, float))
        freqs = np.fft.rfftfreq(cfg.taps, 1.0 / self.sample_rate)
        out = np.empty((len(az), 2, cfg.taps))
        pinna = pinna_response(freqs, az, el) if cfg.pinna else 1.0
        for ear, ear_az in enumerate((cfg.ear_azimuth_deg, -cfg.ear_azimuth_deg)):
            theta = incidence_angle(az, el, ear_az)
            delay = woodworth_delay(theta, cfg.head_radius_m, cfg.speed_of_sound) + cfg.bulk_delay_s
            spectrum = head_shadow(freqs, theta, cfg) * pinna * np.exp(-2j * np.pi * freqs[None, :] * delay[:, None])
            out[:, ear, :] = np.fft.irfft(spectrum, n=cfg.taps, axis=-1)
        fade = cfg.taps // 4
        out[..., -fade:] *= np.hanning(2 * fade)[fade:]
        return out
