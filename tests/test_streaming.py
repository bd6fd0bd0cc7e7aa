"""Long clips in bounded memory: the sound is read, rendered and written in blocks, and the stem
equals rendering it in one piece, sample for sample (real decoding, real files)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foleyspace.blocks import collect, fit_blocks, rechunk, resample_blocks
from foleyspace.config import OutputConfig, SpatializeConfig
from foleyspace.errors import Cancelled, InputError
from foleyspace.hrtf import SphericalHeadHrirSet
from foleyspace.job import Job
from foleyspace.mono import ClipAudio, FileAudio, downmix, fit_length, resample
from foleyspace.pipeline import spatialize, timeline_blocks, timeline_mono
from foleyspace.render import (DspRenderer, DspRendererConfig, Waypoints, render_blocks, render_segments,
                               render_segments_naive, segment_bounds)
from foleyspace.stem import StemSpool, encode_wav, encode_wav_blocks, limit_peak, peak_gain
from foleyspace.timewarp import TimeWarp
from foleyspace.video import iter_audio, read_audio

RATE = 48000
#: Block sizes: tiny, one that does not divide the 1920-sample segment grid (25 fps), and one
#: larger than any clip here (the one-piece render).
TINY, ODD, WHOLE = 4096, 5003, 1 << 22


def config(block: int) -> SpatializeConfig:
    return replace(SpatializeConfig(), output=OutputConfig(block_samples=block))


def stem_ints(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="int32", always_2d=True)
    return data


def whole_clip_mono(clip: Path, start: float, end: float, rate: int) -> np.ndarray:
    """The clip's sound read the way it was before streaming: decoded whole, then resampled whole."""
    samples, native = read_audio(clip, start, end)
    return fit_length(resample(downmix(samples), native, rate), int(round((end - start) * rate)))


# --- the stem ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [TINY, ODD])
def test_stem_rendered_in_small_blocks_equals_the_one_piece_render(clip_factory, tmp_path, block):
    clip = clip_factory(motion="cross_lr", duration_s=3.0, audio_rate=44100)  # resampled to 48 kHz
    small = spatialize(Job(video=clip, output=tmp_path / "small.wav", config=config(block)))
    whole = spatialize(Job(video=clip, output=tmp_path / "whole.wav", config=config(WHOLE)))
    assert small.samples == whole.samples == 3 * RATE
    assert small.gain_db == whole.gain_db
    a, b = stem_ints(small.stem), stem_ints(whole.stem)
    assert a.shape == (3 * RATE, 2) and np.abs(a).max() > 1000  # a real, audible stem
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("speed", [2.0, -1.0])
def test_retimed_stem_in_small_blocks_equals_the_one_piece_render(clip_factory, tmp_path, speed):
    clip = clip_factory(motion="cross_lr", duration_s=4.0, audio="chirp")
    warp = TimeWarp(speed)
    small = spatialize(Job(video=clip, output=tmp_path / "small.wav", warp=warp, config=config(TINY)))
    whole = spatialize(Job(video=clip, output=tmp_path / "whole.wav", warp=warp, config=config(WHOLE)))
    assert small.samples == round(4 / abs(speed) * RATE)
    np.testing.assert_array_equal(stem_ints(small.stem), stem_ints(whole.stem))


@pytest.mark.parametrize("block", [TINY, ODD, 1920, 1])
def test_float_stereo_in_blocks_equals_the_whole_render(clip_factory, block):
    clip = clip_factory(motion="cross_lr", duration_s=3.0, audio_rate=44100)
    n = 2 * RATE
    t = np.arange(0, 2.0, 0.04)
    path = Waypoints(t, np.stack([1.5 + t, 2 * np.cos(2 * t), 0.2 * t], axis=1))
    renderer = DspRenderer(SphericalHeadHrirSet(RATE))
    whole = renderer.render(whole_clip_mono(clip, 0.5, 2.5, RATE), path, RATE)
    if block == 1:  # one-sample blocks: only the renderer's batching, the sound read in larger blocks
        mono, block = ClipAudio(clip).blocks(0.5, 2.5, RATE, TINY), 1
    else:
        mono = ClipAudio(clip).blocks(0.5, 2.5, RATE, block)
    streamed = np.concatenate(list(renderer.render_blocks(mono, n, path, RATE, block)), axis=1)
    assert streamed.shape == whole.shape == (2, n)
    np.testing.assert_array_equal(streamed, whole)


def test_long_segments_are_rendered_in_pieces_close_to_the_oracle():
    rng = np.random.default_rng(5)
    mono, bounds = rng.standard_normal(3000), segment_bounds(3000, 3)  # segments of 1000 samples
    hrirs = rng.standard_normal((4, 2, 64))
    oracle = render_segments_naive(mono, hrirs, bounds)
    from foleyspace.render import render_segment_blocks

    pieces = collect_stereo(render_segment_blocks(rechunk([mono], 700), bounds, lambda i: hrirs[i], 900, max_piece=256))
    np.testing.assert_allclose(pieces, oracle, atol=1e-9)
    np.testing.assert_allclose(render_segments(mono, hrirs, bounds, block=512), oracle, atol=1e-9)


def collect_stereo(blocks) -> np.ndarray:
    return np.concatenate(list(blocks), axis=1)


def test_a_renderer_without_blocks_renders_in_one_piece():
    class WholeOnly:
        name = "whole-only"
        calls = 0

        def render(self, mono, waypoints, sample_rate):
            WholeOnly.calls += 1
            return np.stack([mono, -mono])

    mono = np.arange(10_000, dtype=float)
    out = list(render_blocks(WholeOnly(), rechunk([mono], 3000), 10_000, Waypoints(np.zeros(1), np.zeros((1, 3))),
                             RATE, 4096))
    assert WholeOnly.calls == 1 and [b.shape[1] for b in out] == [4096, 4096, 1808]
    np.testing.assert_array_equal(collect_stereo(out), np.stack([mono, -mono]))


# --- the mono source -----------------------------------------------------------------------


@pytest.mark.parametrize("rate", [48000, 44100])
def test_clip_audio_blocks_equal_the_whole_read(clip_factory, rate):
    clip = clip_factory(motion="cross_lr", duration_s=3.0, audio_rate=rate)
    whole = whole_clip_mono(clip, 0.7, 2.9, RATE)
    blocks = list(ClipAudio(clip).blocks(0.7, 2.9, RATE, TINY))
    assert {len(b) for b in blocks[:-1]} == {TINY} and len(blocks) > 20
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    decoded = np.concatenate(list(iter_audio(clip, 0.7, 2.9, TINY)), axis=1)
    np.testing.assert_array_equal(decoded, read_audio(clip, 0.7, 2.9)[0])


def test_audio_file_at_another_rate_in_blocks_equals_the_whole_read(tmp_path):
    rng = np.random.default_rng(2)
    pcm = (0.3 * rng.standard_normal((44100 * 5, 2))).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(str(path), pcm, 44100, subtype="PCM_24")
    data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    skip = int(round(1.25 * 44100))
    whole = fit_length(resample(downmix(data.T)[skip:], 44100, RATE), 2 * RATE)
    streamed = collect(FileAudio(path, 1.25).blocks(0.0, 2.0, RATE, ODD))
    np.testing.assert_array_equal(streamed, whole)
    past_end = collect(FileAudio(path, 1.25).blocks(0.0, 6.0, RATE, TINY))  # the file ends: silence after
    np.testing.assert_array_equal(past_end[: 2 * RATE], whole)
    assert not past_end[int(3.9 * RATE):].any()


def test_retimed_clip_sound_in_blocks_equals_the_whole_read(clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=4.0, audio="chirp")
    warp = TimeWarp(2.0)
    n_out = int(round(warp.timeline_duration(0.5, 3.5) * RATE))
    read_rate = warp.varispeed_rate(RATE)  # 24 kHz, played at 48 kHz
    whole = fit_length(whole_clip_mono(clip, 0.5, 3.5, read_rate), n_out)
    streamed = list(timeline_blocks(ClipAudio(clip), warp, 0.5, 3.5, RATE, n_out, TINY))
    assert len(streamed) == -(-n_out // TINY)
    np.testing.assert_array_equal(np.concatenate(streamed), whole)
    np.testing.assert_array_equal(timeline_mono(ClipAudio(clip), TimeWarp(-1.0), 0.5, 3.5, RATE, 3 * RATE),
                                  whole_clip_mono(clip, 0.5, 3.5, RATE)[::-1])


@pytest.mark.parametrize("audio_rate", [48000, 44100])
@pytest.mark.parametrize("speed", [-1.0, -2.0])
@pytest.mark.parametrize("start,end", [(0.3, 3.9), (1.3, 3.1)])
def test_reversed_clip_sound_in_blocks_equals_the_whole_read_reversed(clip_factory, monkeypatch, audio_rate, speed,
                                                                       start, end):
    """Backwards a block at a time (blocks that do not divide the range) gives exactly the range
    read whole and reversed; no read of the spooled sound is longer than a block's input."""
    import foleyspace.blocks

    clip = clip_factory(motion="cross_lr", duration_s=4.0, audio="engine", audio_rate=audio_rate)  # noisy: AAC PNS
    warp = TimeWarp(speed)
    read_rate = warp.varispeed_rate(RATE)
    n_out = int(round(warp.timeline_duration(start, end) * RATE))
    whole = fit_length(whole_clip_mono(clip, start, end, read_rate)[::-1], n_out)
    spans: list[int] = []
    real_read = foleyspace.blocks.SampleSpool.read

    def read(self, lo, hi):
        spans.append(hi - lo)
        return real_read(self, lo, hi)

    monkeypatch.setattr(foleyspace.blocks.SampleSpool, "read", read)
    for block in (TINY + 3, ODD):
        spans.clear()
        streamed = list(timeline_blocks(ClipAudio(clip), warp, start, end, RATE, n_out, block))
        assert {len(b) for b in streamed[:-1]} == {block} and sum(map(len, streamed)) == n_out
        np.testing.assert_array_equal(np.concatenate(streamed), whole)
        assert len(spans) > 5 and max(spans) <= block * audio_rate / read_rate + 600  # + context, aligned to 147
    assert np.abs(whole).max() > 0.1


def test_reversed_resampling_equals_resample_poly_reversed(tmp_path):
    """The backwards resampler over a seekable file (soundfile) and over an array, any rates."""
    from foleyspace.blocks import reversed_resample_blocks

    x = np.random.default_rng(1).standard_normal(30_001)
    path = tmp_path / "x.wav"
    sf.write(str(path), x * 0.1, 44100, subtype="DOUBLE")
    with sf.SoundFile(str(path)) as fh:
        def read_file(lo: int, hi: int) -> np.ndarray:
            fh.seek(lo)
            return fh.read(hi - lo, dtype="float64") * 10
        for rate_in, rate_out in ((44100, 48000), (48000, 24000), (32000, 48000), (48000, 48000)):
            m = -(-len(x) * rate_out // rate_in)
            for n in (m - 7, m + 1234):
                whole = fit_length(resample(x * 0.1 * 10, rate_in, rate_out), n)[::-1]
                for size in (999, 4099):
                    got = list(reversed_resample_blocks(read_file, len(x), rate_in, rate_out, n, size))
                    assert max(map(len, got)) <= size
                    np.testing.assert_array_equal(collect(got), whole)
                    np.testing.assert_array_equal(
                        collect(reversed_resample_blocks(lambda lo, hi: x[lo:hi], len(x), rate_in, rate_out, n, size)),
                        fit_length(resample(x, rate_in, rate_out), n)[::-1])


def test_resampling_in_blocks_equals_resample_poly():
    x = np.random.default_rng(0).standard_normal(30_001)
    for rate_in, rate_out in ((44100, 48000), (48000, 24000), (32000, 48000)):
        whole = resample(x, rate_in, rate_out)
        for size in (1, 999, 4096):
            np.testing.assert_array_equal(collect(resample_blocks(rechunk([x], size), rate_in, rate_out)), whole)
    assert [len(b) for b in fit_blocks(rechunk([x], 1000), 2500, 1024)] == [1024, 1024, 452]
    assert collect(fit_blocks(iter([x[:10]]), 25, 8)).tolist() == x[:10].tolist() + [0.0] * 15


# --- writing ------------------------------------------------------------------------------


def test_peak_limiting_across_blocks_equals_the_whole_signal_limiter(tmp_path):
    rng = np.random.default_rng(4)
    stereo = 0.4 * rng.standard_normal((2, 50_000))
    stereo[1, 37_123] = 3.0  # the peak sits in a late block
    limited, gain_db = limit_peak(stereo, -1.0)
    assert gain_db < -9
    with StemSpool(tmp_path / "stem.wav") as spool:
        for block in rechunk([stereo], TINY):
            spool.append(block)
        scale, spooled_db = peak_gain(spool.peak, -1.0)
        assert spooled_db == gain_db and spool.samples == 50_000
        np.testing.assert_array_equal(collect_stereo(b * scale for b in spool.blocks(ODD)), limited)
        encode_wav_blocks(tmp_path / "blocks.wav", (b * scale for b in spool.blocks(ODD)), RATE)
    assert os.listdir(tmp_path) == ["blocks.wav"]  # the spool leaves nothing behind
    encode_wav(tmp_path / "whole.wav", limited, RATE)
    np.testing.assert_array_equal(stem_ints(tmp_path / "blocks.wav"), stem_ints(tmp_path / "whole.wav"))


def test_cancel_mid_render_leaves_no_file(clip_factory, tmp_path):
    clip = clip_factory(motion="cross_lr", duration_s=3.0)
    seen: list[tuple[str, float]] = []

    def cancel() -> bool:
        return sum(stage == "render" and 0 < f < 1 for stage, f in seen) >= 5  # mid-render, after 5 blocks

    with pytest.raises(Cancelled):
        spatialize(Job(video=clip, output=tmp_path / "stem.wav", config=config(TINY)),
                   progress=lambda stage, f: seen.append((stage, f)), cancel=cancel)
    assert os.listdir(tmp_path) == []  # no stem, no sidecar, no temporary file
    rendered = [f for stage, f in seen if stage == "render"]
    assert rendered == sorted(rendered) and 0 < rendered[-1] < 0.5


def test_progress_is_reported_per_block(clip_factory, tmp_path):
    seen: list[tuple[str, float]] = []
    spatialize(Job(video=clip_factory(motion="cross_lr", duration_s=3.0), output=tmp_path / "stem.wav",
                   config=config(TINY)), progress=lambda stage, f: seen.append((stage, f)))
    blocks = -(-3 * RATE // TINY)
    assert len([f for stage, f in seen if stage == "render"]) >= blocks // 2
    assert len([f for stage, f in seen if stage == "write"]) >= blocks
    assert sorted(os.listdir(tmp_path)) == ["stem.json", "stem.wav"]


def test_nan_in_an_audio_file_gives_the_clear_error_and_no_output(clip_factory, tmp_path):
    pcm = 0.1 * np.random.default_rng(3).standard_normal(5 * RATE)
    pcm[int(2.5 * RATE)] = np.nan  # in a late block
    bad = tmp_path / "in" / "nan.wav"
    bad.parent.mkdir()
    sf.write(str(bad), pcm, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    out.mkdir()
    job = Job(video=clip_factory(motion="cross_lr", duration_s=3.0), output=out / "stem.wav", audio=bad,
              config=config(TINY))
    with pytest.raises(InputError, match="nan.wav: the audio contains NaN or infinite samples"):
        spatialize(job)
    assert os.listdir(out) == []


def test_distance_gain_settings_stream_too(clip_factory):
    """The renderer's own settings (coarse segments of a second) give the same blocks."""
    clip = clip_factory(motion="cross_lr", duration_s=3.0)
    t = np.arange(0, 3.0, 1.0)
    path = Waypoints(t, np.stack([1.0 + t, 1.0 - t, 0 * t], axis=1))
    renderer = DspRenderer(SphericalHeadHrirSet(RATE), DspRendererConfig(segment_rate_hz=1))
    mono = ClipAudio(clip).mono(0.0, 3.0, RATE)
    whole = renderer.render(mono, path, RATE)
    blocks = collect_stereo(renderer.render_blocks(rechunk([mono], TINY), len(mono), path, RATE, ODD))
    np.testing.assert_array_equal(blocks, whole)
