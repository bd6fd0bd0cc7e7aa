"""Eq. 8 moving-source rendering, the §IV-A distance model and the DSP renderer.

Every expected value is computed by hand; the arithmetic is in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import level_difference_db, right_ear_lead_s
from foleyspace.render import DspRendererConfig
from foleyspace.coords import to_cartesian, to_spherical
from foleyspace.hrtf import SphericalHeadHrirSet
from foleyspace.render import (
    DspRenderer,
    Waypoints,
    crossfade_weight,
    delay_hrirs,
    distance_gain,
    render_segments,
    render_segments_naive,
    segment_bounds,
)

FS = 48000


@pytest.fixture(scope="module")
def head() -> SphericalHeadHrirSet:
    return SphericalHeadHrirSet(sample_rate=FS)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(7).standard_normal(FS // 2)  # 0.5 s of white noise


def static(az: float, el: float = 0.0, r: float = 1.47) -> Waypoints:
    return Waypoints(times_s=np.array([0.0]), xyz=to_cartesian([az], [el], [r]))


def delta_hrirs(left: list[float], right: list[float], taps: int = 3, at: int = 0) -> np.ndarray:
    """``(N, 2, taps)`` HRIRs that are scaled unit impulses at tap ``at``."""
    h = np.zeros((len(left), 2, taps))
    h[:, 0, at] = left
    h[:, 1, at] = right
    return h


# --- eq. 8 pieces ------------------------------------------------------------------------------


def test_segment_bounds_by_hand():
    # linspace(0, 10, 5) = [0, 2.5, 5, 7.5, 10]; np.round is half-to-even: 2.5 → 2, 7.5 → 8
    np.testing.assert_array_equal(segment_bounds(10, 4), [0, 2, 5, 8, 10])
    np.testing.assert_array_equal(segment_bounds(12, 3), [0, 4, 8, 12])
    # never more segments than samples, at least one
    np.testing.assert_array_equal(segment_bounds(3, 10), [0, 1, 2, 3])
    np.testing.assert_array_equal(segment_bounds(5, 0), [0, 5])


def test_crossfade_weight_by_hand():
    np.testing.assert_allclose(crossfade_weight(4), [0.0, 0.25, 0.5, 0.75])  # n / 4
    np.testing.assert_allclose(crossfade_weight(1), [0.0])
    assert crossfade_weight(0).shape == (0,)


def test_render_segments_delta_hrirs_by_hand():
    mono = np.ones(8)
    bounds = np.array([0, 4, 8])
    h = delta_hrirs(left=[1.0, 2.0, 4.0], right=[3.0, 1.0, 0.5])
    # y[n] = x[n]·((1 − w)·g_i + w·g_{i+1}), w = [0, .25, .5, .75] in each segment
    # left:  seg 0: 1 + w       = [1, 1.25, 1.5, 1.75];  seg 1: 2 + 2w    = [2, 2.5, 3, 3.5]
    # right: seg 0: 3 − 2w      = [3, 2.5, 2, 1.5];      seg 1: 1 − 0.5w  = [1, .875, .75, .625]
    expected = np.array([[1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5], [3, 2.5, 2, 1.5, 1, 0.875, 0.75, 0.625]])
    for render in (render_segments, render_segments_naive):
        out = render(mono, h, bounds)
        assert out.shape == (2, 8)
        np.testing.assert_allclose(out, expected, atol=1e-12)


def test_render_segments_tail_crosses_segment_edge():
    # impulse at n = 3 (last sample of segment 0, w = 0.75); HRIRs are impulses delayed by 1 tap
    # → the whole response lands at n = 4, in segment 1, by overlap-add:
    # left 0.25·1 + 0.75·2 = 1.75, right 0.25·3 + 0.75·1 = 1.5; everything else 0
    mono = np.zeros(8)
    mono[3] = 1.0
    h = delta_hrirs(left=[1.0, 2.0, 4.0], right=[3.0, 1.0, 0.5], taps=4, at=1)
    expected = np.zeros((2, 8))
    expected[:, 4] = [1.75, 1.5]
    np.testing.assert_allclose(render_segments(mono, h, np.array([0, 4, 8])), expected, atol=1e-12)
    # an impulse at the last sample rings out past the end: dropped, output length unchanged
    mono = np.zeros(8)
    mono[7] = 1.0
    out = render_segments(mono, h, np.array([0, 4, 8]))
    assert out.shape == (2, 8)
    np.testing.assert_allclose(out, 0.0, atol=1e-12)


@pytest.mark.parametrize(
    "bounds, taps, block",
    [
        ([0, 100, 200, 300], 32, 256),  # equal segments
        ([0, 3, 10, 11, 30, 31, 64], 16, 256),  # unequal, taps longer than several segments
        ([0, 3, 10, 11, 30, 31, 64], 16, 2),  # the same across several batches
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 40, 3),  # one-sample segments, long taps
        ([0, 1000], 256, 256),  # a single segment
    ],
)
def test_render_segments_matches_naive(bounds, taps, block):
    rng = np.random.default_rng(len(bounds) * 1000 + taps + block)
    bounds = np.asarray(bounds)
    mono = rng.standard_normal(int(bounds[-1]))
    hrirs = rng.standard_normal((len(bounds), 2, taps))
    fast = render_segments(mono, hrirs, bounds, block=block)
    ref = render_segments_naive(mono, hrirs, bounds)
    assert fast.shape == ref.shape == (2, len(mono))
    np.testing.assert_allclose(fast, ref, atol=1e-9)


def test_render_segments_static_equals_plain_convolution():
    # the same HRIR at every boundary: (1 − w)·x ⊛ h + w·x ⊛ h = x ⊛ h, cut to len(x)
    rng = np.random.default_rng(3)
    mono, h = rng.standard_normal(500), rng.standard_normal((2, 50))
    out = render_segments(mono, np.repeat(h[None], 8, axis=0), segment_bounds(500, 7))
    expected = np.stack([np.convolve(mono, h[0])[:500], np.convolve(mono, h[1])[:500]])
    np.testing.assert_allclose(out, expected, atol=1e-9)


# --- §IV-A distance ----------------------------------------------------------------------------


def test_distance_gain_inverse_and_clamped():
    # ref / r with ref = 1.47: r = 1.47 → 1, 2.94 → 0.5, 0.735 → 2; r < 0.25 is clamped: 1.47/0.25 = 5.88
    g = distance_gain(np.array([1.47, 2.94, 0.735, 0.1, 0.0]), 1.47, 0.25)
    np.testing.assert_allclose(g, [1.0, 0.5, 2.0, 5.88, 5.88])


def test_delay_hrirs_integer_and_half_sample():
    h = np.zeros((3, 2, 64))
    h[:, :, 10] = 1.0
    out = delay_hrirs(h, np.array([0.0, 5.0, 5.5]) / FS, FS)
    assert out.shape == (3, 2, 64 + 6 + 1)  # taps + ceil(5.5) + 1
    # no delay and an integer delay of 5: a unit impulse at 10 and at 15
    np.testing.assert_allclose(out[0, :, 10], 1.0, atol=1e-9)
    np.testing.assert_allclose(np.delete(out[0], 10, axis=-1), 0.0, atol=1e-9)
    np.testing.assert_allclose(out[1, :, 15], 1.0, atol=1e-9)
    np.testing.assert_allclose(np.delete(out[1], 15, axis=-1), 0.0, atol=1e-9)
    # 5.5 samples: a band-limited impulse at 15.5 — equal peaks at 15 and 16 (sinc(±0.5) = 2/π)
    # and an energy centroid of 15.5 over a window symmetric about it (8..23)
    half = out[2, 0]
    assert np.argmax(half) in (15, 16)
    np.testing.assert_allclose(half[15], half[16], atol=1e-9)
    np.testing.assert_allclose(half[15], 2 / np.pi, atol=1e-2)
    k = np.arange(8, 24)
    e = half[8:24] ** 2
    assert (k * e).sum() / e.sum() == pytest.approx(15.5, abs=1e-6)
    with pytest.raises(ValueError):
        delay_hrirs(h, np.array([0.0, -1.0, 0.0]) / FS, FS)


# --- the DSP renderer --------------------------------------------------------------------------


def test_trajectory_at_interpolates_and_holds():
    tr = Waypoints(times_s=np.array([0.0, 1.0]), xyz=np.array([[0.0, 0, 0], [2.0, 4.0, 6.0]]))
    np.testing.assert_allclose(tr.at(np.array([-1.0, 0.5, 3.0])), [[0, 0, 0], [1, 2, 3], [2, 4, 6]])


def test_static_source_on_the_right(head, noise):
    out = DspRenderer(head).render(noise, static(-60.0), FS)
    assert out.shape == (2, len(noise))
    assert level_difference_db(out) < -6.0  # right channel louder by more than 6 dB
    # Woodworth with ears at ±100°: right θ = 40°, left θ = 160°;
    # ITD = (a/c)·[(160° − 90°) in rad + 1 − (1 − cos 40°)] = (a/c)(1.2217 + 0.7660) = 0.507 ms
    lead = right_ear_lead_s(out, FS)
    assert 0.3e-3 < lead < 0.8e-3


def test_static_source_on_the_left_mirrors(head, noise):
    out = DspRenderer(head).render(noise, static(60.0), FS)
    assert level_difference_db(out) > 6.0
    assert -0.8e-3 < right_ear_lead_s(out, FS) < -0.3e-3


def test_straight_ahead_is_balanced(head, noise):
    out = DspRenderer(head).render(noise, static(0.0), FS)
    assert abs(level_difference_db(out)) < 0.1
    assert right_ear_lead_s(out, FS) == 0.0


def test_moving_source_pans_right_to_left(head):
    mono = np.random.default_rng(11).standard_normal(FS)
    tr = Waypoints(times_s=np.array([0.0, 1.0]), xyz=to_cartesian([-80.0, 80.0], [0.0, 0.0], [1.47, 1.47]))
    out = DspRenderer(head, DspRendererConfig(segment_rate_hz=25)).render(mono, tr, FS)
    q = FS // 4
    assert level_difference_db(out[:, :q]) < -6.0  # first quarter: right
    assert level_difference_db(out[:, -q:]) > 6.0  # last quarter: left
    assert abs(level_difference_db(out[:, 2 * q - 1200 : 2 * q + 1200])) < 3.0  # middle: near center


def test_distance_gain_in_renderer(head, noise):
    near = DspRenderer(head).render(noise, static(0.0, r=1.47), FS)
    far = DspRenderer(head).render(noise, static(0.0, r=2.94), FS)
    # twice the HRIR radius → gain 1/2 → −6.02 dB in both ears, identical waveform otherwise
    np.testing.assert_allclose(far, 0.5 * near, atol=1e-12)
    inside = DspRenderer(head).render(noise, static(0.0, r=0.1), FS)
    clamp = DspRenderer(head).render(noise, static(0.0, r=0.25), FS)
    np.testing.assert_allclose(inside, clamp, atol=1e-12)  # 0.1 m is clamped to 0.25 m
    np.testing.assert_allclose(clamp, (1.47 / 0.25) * near, atol=1e-9)
    flat = DspRenderer(head, DspRendererConfig(distance_gain=False)).render(noise, static(0.0, r=2.94), FS)
    np.testing.assert_allclose(flat, near, atol=1e-12)


def test_distance_delay_shifts_time_of_arrival(head):
    # straight ahead at 1.47 m then 4.90 m: extra path 3.43 m / 343 m/s = 10 ms = 480 samples at 48 kHz
    tr = Waypoints(times_s=np.array([0.0, 1.0]), xyz=np.array([[1.47, 0, 0], [4.90, 0, 0]]))
    r = DspRenderer(head, DspRendererConfig(distance_delay=True, distance_gain=False))
    h = r.boundary_hrirs(tr, np.array([0.0, 1.0]))
    peak = np.argmax(np.abs(h), axis=-1)
    np.testing.assert_array_equal(peak[1] - peak[0], [480, 480])
    # without the option the two responses are the same
    h = DspRenderer(head, DspRendererConfig(distance_gain=False)).boundary_hrirs(tr, np.array([0.0, 1.0]))
    np.testing.assert_allclose(h[0], h[1], atol=1e-12)


def test_segment_count_and_rate_check(head):
    tr = Waypoints(times_s=np.arange(10) / 25.0, xyz=np.tile([1.0, 0, 0], (10, 1)))
    # None: one segment per trajectory sample; 25 Hz over 2 s → 50; 1 Hz over 8.4 s → round(8.4) = 8
    assert DspRenderer(head).segment_count(96000, FS, tr) == 10
    assert DspRenderer(head, DspRendererConfig(segment_rate_hz=25)).segment_count(96000, FS, tr) == 50
    assert DspRenderer(head, DspRendererConfig(segment_rate_hz=1)).segment_count(int(8.4 * FS), FS, tr) == 8
    with pytest.raises(ValueError):
        DspRenderer(head).render(np.zeros(100), tr, 44100)


def test_output_length_is_input_length(head):
    for n in (1, 7, 1001, 4800):
        mono = np.random.default_rng(n).standard_normal(n)
        out = DspRenderer(head, DspRendererConfig(segment_rate_hz=25)).render(mono, static(30.0), FS)
        assert out.shape == (2, n)


def test_coarse_positions_fall_exactly_on_segment_boundaries(head):
    # positions once per second (coarse scheme), a 2.5 s signal: segments start at 0, 1, 2 s and
    # the last one (2–2.5 s) holds the last position; no interpolated in-between HRIR is used
    tr = Waypoints(np.array([0.0, 1.0, 2.0]), to_cartesian(np.array([30.0, 0.0, -50.0]), np.zeros(3), np.full(3, 2.0)))
    renderer = DspRenderer(head)
    bounds = renderer.bounds(int(2.5 * FS), FS, tr)
    np.testing.assert_array_equal(bounds, [0, FS, 2 * FS, int(2.5 * FS)])
    az = to_spherical(tr.at(bounds / FS))[:, 0]
    np.testing.assert_allclose(az, [30.0, 0.0, -50.0, -50.0], atol=1e-9)
    assert renderer.segment_count(int(2.5 * FS), FS, tr) == 3


def test_a_failed_commit_puts_every_target_back(tmp_path, monkeypatch):
    """Stem and sidecar are replaced together: when the second rename fails, the first is undone."""
    import os

    import foleyspace.stem as stem
    from foleyspace.errors import OutputError

    wav, side = tmp_path / "s.wav", tmp_path / "s.json"
    wav.write_bytes(b"old stem")
    side.write_text("old sidecar")
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        if str(dst).endswith("s.json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(stem.os, "replace", failing_replace)
    with pytest.raises(OutputError, match="No space left"):
        with stem.atomic_outputs(wav, side) as (t_wav, t_side):
            t_wav.write_bytes(b"new stem")
            t_side.write_text("new sidecar")
    assert wav.read_bytes() == b"old stem" and side.read_text() == "old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.wav"]
    # a target that did not exist before is removed again
    wav.unlink()
    with pytest.raises(OutputError):
        with stem.atomic_outputs(wav, side) as (t_wav, t_side):
            t_wav.write_bytes(b"new stem")
    assert not wav.exists() and side.read_text() == "old sidecar"


def test_a_file_that_appears_during_the_job_is_not_replaced_at_commit(tmp_path):
    """The ownership check is repeated at the moment of the commit, on the opened folder."""
    import foleyspace.stem as stem
    from foleyspace.errors import OutputError

    target = tmp_path / "s.wav"
    with pytest.raises(OutputError, match="was not written by FoleySpace"):
        with stem.atomic_outputs(target, overwrite=False) as (tmp,):
            tmp.write_bytes(b"new stem")
            target.write_bytes(b"RIFF someone's take")  # appears while the job renders
    assert target.read_bytes() == b"RIFF someone's take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.wav"]
    with stem.atomic_outputs(target, overwrite=True) as (tmp,):
        tmp.write_bytes(b"new stem")
    assert target.read_bytes() == b"new stem"


def test_deciding_ownership_never_blocks_on_a_pipe(tmp_path):
    """A pipe (or a link to /dev/zero) named like the sidecar must not hang the check."""
    import os

    import foleyspace.stem as stem

    (tmp_path / "s.wav").write_bytes(b"RIFF....WAVE")
    os.mkfifo(tmp_path / "s.json")
    assert not stem.written_by_foleyspace(tmp_path / "s.json")
    assert not stem.written_by_foleyspace(tmp_path / "s.wav")
    (tmp_path / "t.json").symlink_to("/dev/zero")
    assert not stem.written_by_foleyspace(tmp_path / "t.json")
