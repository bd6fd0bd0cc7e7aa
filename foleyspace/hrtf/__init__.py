"""HRIR sets: the analytic spherical head (offline default) and SOFA files.

Which set a job uses is the registry's choice (:mod:`foleyspace.backends`, kind ``hrir``).
"""

from foleyspace.hrtf.base import HrirSet
from foleyspace.hrtf.spherical_head import SphericalHeadConfig, SphericalHeadHrirSet

__all__ = ["HrirSet", "SphericalHeadConfig", "SphericalHeadHrirSet"]
