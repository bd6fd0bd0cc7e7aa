"""The HRIR-set protocol: head-related impulse responses by direction.

Directions follow SOFA: azimuth in degrees counter-clockwise from straight ahead (positive =
left), elevation in degrees (positive = up). Channel 0 is the left ear, 1 the right ear.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class HrirSet(Protocol):
    """A set of HRIRs measured (or modelled) at one radius.

    Attributes:
        name: short description for the sidecar.
        sample_rate: sample rate of the returned impulse responses in Hz.
        ref_distance_m: the radius the HRIRs are valid at (measurement distance), metres.
    """

    name: str
    sample_rate: int
    ref_distance_m: float

    def hrirs(self, azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
        """``(N, 2, taps)`` float impulse responses (left, right) for N directions."""
        ...
