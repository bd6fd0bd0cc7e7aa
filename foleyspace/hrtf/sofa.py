"""HRIRs from a SOFA ``SimpleFreeFieldHRIR`` file (HUTUBS, SADIE, KEMAR, …) via ``sofar``.

Directions are looked up by nearest neighbour on the sphere (great-circle distance); the
responses are resampled to the requested rate. Receiver 0 is taken as the left ear unless the
file's ``ReceiverPosition`` says receiver 0 sits on the right (negative y).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from foleyspace.errors import InputError
from foleyspace.coords import to_cartesian
from foleyspace.hrtf.directions import DIRECTION_SETS

log = logging.getLogger(__name__)


#: How positions between measured directions are served (``--hrtf-interp``).
INTERPOLATIONS = ("nearest", "linear", "aligned")


@dataclass(frozen=True)
class SofaSettings:
    """Settings of the SOFA backend (ours).

    Attributes:
        interp: ``nearest`` (the closest measured direction), ``linear`` (barycentric mix of
            the three around it) or ``aligned`` (the same mix with each response's onset delay
            removed first and the interpolated delay re-applied, so nothing comb-filters).
        directions: which measured directions may be used: ``all``, or the paper's ``fine`` /
            ``coarse`` sets (:mod:`foleyspace.hrtf.directions`).
    """

    interp: str = "aligned"
    directions: str = "all"

    def __post_init__(self) -> None:
        if self.interp not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {self.interp!r}")
        if self.directions not in DIRECTION_SETS:
            raise ValueError(f"direction set must be one of {', '.join(DIRECTION_SETS)}, not {self.directions!r}")


class SofaHrirSet:
    """Measured HRIRs; satisfies :class:`~foleyspace.hrtf.base.HrirSet`."""

    def __init__(self, path: str | Path, sample_rate: int = 48000, config: SofaSettings | None = None) -> None:
        self.config = config or SofaSettings()
        import sofar  # imported here: only this backend needs it

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such SOFA file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sofa = sofar.read_sofa(str(path), verify=False, verbose=False)
        except Exception as exc:  # sofar/netCDF raise many types for a bad file
            raise InputError(f"{path}: not a readable SOFA file ({exc.__class__.__name__})") from exc
        convention = str(getattr(sofa, "GLOBAL_SOFAConventions", ""))
        if convention != "SimpleFreeFieldHRIR":
            raise InputError(f"{path}: SOFA convention {convention!r} is not SimpleFreeFieldHRIR")
        ir = np.asarray(sofa.Data_IR, dtype=float)
        if ir.ndim != 3 or ir.shape[1] != 2:
            raise InputError(f"{path}: expected Data.IR of shape (M, 2, N), got {ir.shape}")
        pos = np.asarray(sofa.SourcePosition, dtype=float)
        kind = str(getattr(sofa, "SourcePosition_Type", "spherical")).lower()
        if kind.startswith("cartesian"):
            r = np.linalg.norm(pos, axis=1)
            unit = pos / r[:, None]
        else:
            r = pos[:, 2]
            unit = to_cartesian(pos[:, 0], pos[:, 1], np.ones(len(pos)))
        receivers = np.asarray(getattr(sofa, "ReceiverPosition", np.zeros((2, 3))), dtype=float).reshape(2, -1)
        if receivers.shape[1] >= 2 and receivers[0, 1] < 0 < receivers[1, 1]:
            ir = ir[:, ::-1, :]
        file_rate = float(np.asarray(sofa.Data_SamplingRate).ravel()[0])
        if abs(file_rate - sample_rate) > 1e-6:
            from scipy.signal import resample_poly

            ratio = Fraction(int(sample_rate), int(round(file_rate))).limit_denominator(1000)
            ir = resample_poly(ir, ratio.numerator, ratio.denominator, axis=-1)
        self._ir = ir
        self._unit = unit
        self.sample_rate = int(sample_rate)
        self.ref_distance_m = float(np.median(r))
        self.name = f"SOFA {path.name} ({len(pos)} directions, {ir.shape[-1]} taps)"
        log.info("loaded %s, measured at %.2f m", self.name, self.ref_distance_m)

    def hrirs(self, azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
        az = np.atleast_1d(np.asarray(azimuth_deg, float))
        el = np.atleast_1d(np.asarray(elevation_deg, float))
        want = to_cartesian(az, el, np.ones(len(az)))
        nearest = np.argmax(want @ self._unit.T, axis=1)
        return self._ir[nearest]
