"""HRIR sets: the analytic spherical head (offline default) and SOFA files."""

from foleyspace.hrtf.base import HrirSet
from foleyspace.hrtf.spherical_head import SphericalHeadConfig, SphericalHeadHrirSet

__all__ = ["HrirSet", "SphericalHeadConfig", "SphericalHeadHrirSet", "load_hrir_set"]


def load_hrir_set(sofa_path: str | None, fs: int = 48000) -> HrirSet:
    """The SOFA file's HRIRs when a path is given, else the analytic spherical head."""
    if sofa_path:
        from foleyspace.hrtf.sofa import SofaHrirSet

        return SofaHrirSet(sofa_path, fs=fs)
    return SphericalHeadHrirSet(fs=fs)
