"""The diffusion renderer streams: mono blocks in, binaural blocks out, memory bounded by a chunk.

Real model code with a tiny random-weight checkpoint (as tests/test_diffusion.py makes one), a real
recording decoded and resampled in blocks; nothing is downloaded.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scipy.signal import resample_poly  # noqa: E402

from foleyspace.blocks import collect, rechunk  # noqa: E402
from foleyspace.diffusion.checkpoint import Checkpoint, save  # noqa: E402
from foleyspace.diffusion.config import DiffusionRendererSettings, named_config  # noqa: E402
from foleyspace.diffusion.model import BinauralDiffWave, trajectory_slice  # noqa: E402
from foleyspace.diffusion.renderer import DiffusionRenderer, model_positions  # noqa: E402
from foleyspace.diffusion.sampler import (chunk_gain, chunk_starts, crossfade_weights, sample,  # noqa: E402
                                          sample_blocks, sample_chunk)
from foleyspace.errors import Cancelled  # noqa: E402
from foleyspace.mono import FileAudio  # noqa: E402
from foleyspace.render import Waypoints, render_blocks  # noqa: E402

TINY = named_config("tiny")  # 8 kHz, 1 s chunks overlapping by 0.1 s: 48000 samples at 48 kHz, hop 43200
RATE = 48000
#: An output/input block size that divides neither the chunk (48000) nor its hop (43200) at 48 kHz.
ODD = 5003
OVERLAP = int(round(TINY.chunk_overlap_s * TINY.sample_rate))


@pytest.fixture(scope="module")
def renderer(tmp_path_factory) -> DiffusionRenderer:
    """A renderer on a tiny checkpoint whose zero-initialised output layer is randomised."""
    torch.manual_seed(0)
    model = BinauralDiffWave(TINY)
    torch.nn.init.normal_(model.output_projection.weight, std=0.05)
    ema = {k: v + 0.01 for k, v in model.state_dict().items()}
    path = save(tmp_path_factory.mktemp("ckpt") / "tiny.pt", Checkpoint(TINY, model.state_dict(), step=7, ema=ema))
    return DiffusionRenderer(DiffusionRendererSettings(str(path), "fast", 3), "cpu")


def moving_waypoints(duration_s: float) -> Waypoints:
    """A source circling and rising, a position per 25 fps analysis frame."""
    times = np.arange(0.0, duration_s, 0.04)
    return Waypoints(times, np.stack([1 + np.cos(times), 2 * np.sin(1.5 * times), 0.3 * times], axis=1))


def one_piece_oracle(renderer: DiffusionRenderer, mono: np.ndarray, waypoints: Waypoints) -> np.ndarray:
    """The render computed whole, from scratch: the whole mono resampled to the model rate in one
    call, each chunk scaled to the data level on its own and sampled, the chunks cross-faded into
    one array, the whole array resampled back in one call."""
    model, cfg = renderer.loaded.model, renderer.loaded.config
    n = len(mono)
    n_model = int(round(n * cfg.sample_rate / RATE))
    signal = resample_poly(mono, 1, RATE // cfg.sample_rate)[:n_model]
    xyz = torch.as_tensor(model_positions(waypoints, n, RATE, n_model).astype(np.float32))
    fade_in, fade_out = crossfade_weights(OVERLAP)
    out = np.zeros((2, n_model))
    for index, (start, stop) in enumerate(chunk_starts(n_model, cfg.segment_samples, OVERLAP)):
        piece = signal[start:stop]
        rms = np.sqrt(np.mean(piece ** 2))
        y = np.zeros((2, stop - start))
        if rms > 0:
            scale = 10 ** (cfg.mono_level_dbfs / 20) / rms * cfg.data_gain
            y = sample_chunk(model, torch.from_numpy((piece * scale).astype(np.float32)),
                             trajectory_slice(xyz, n_model, start, stop)[0], "fast", 3, start, "cpu",
                             None).numpy().astype(np.float64) / scale
        if index:
            y[:, :OVERLAP] = fade_out * out[:, start: start + OVERLAP] + fade_in * y[:, :OVERLAP]
        out[:, start:stop] = y
    return resample_poly(out, RATE // cfg.sample_rate, 1, axis=-1)[:, :n]


def test_streamed_render_equals_the_one_piece_render_sample_for_sample(renderer, speech_wav):
    """A real recording (speech, 2.54 s, then the file's silence) over 3.3 s: four chunks, the last
    silent; mono and stem in blocks of 5003 samples. Equal, sample for sample, to the render of
    the whole mono and to a from-scratch one-piece computation."""
    duration = 3.3
    n = int(round(duration * RATE))
    waypoints = moving_waypoints(duration)
    steps: list[float] = []
    blocks = list(renderer.with_progress(steps.append).render_blocks(
        FileAudio(speech_wav).blocks(0.0, duration, RATE, ODD), n, waypoints, RATE, ODD))
    assert [b.shape[1] for b in blocks[:-1]] == [ODD] * (len(blocks) - 1) and sum(b.shape[1] for b in blocks) == n
    assert len(chunk_starts(int(round(n * TINY.sample_rate / RATE)), TINY.segment_samples, OVERLAP)) == 4
    assert len(steps) == 4 * 6 and steps[-1] == 1.0  # every fast step of every chunk, the silent one too
    streamed = np.concatenate(blocks, axis=1)
    mono = collect(FileAudio(speech_wav).blocks(0.0, duration, RATE, 1 << 22))
    assert np.abs(streamed[:, : 2 * RATE]).max() > 1e-3  # a real, audible render
    np.testing.assert_array_equal(streamed, renderer.render(mono, waypoints, RATE))
    np.testing.assert_array_equal(streamed, one_piece_oracle(renderer, mono, waypoints))
    assert not streamed[:, int(2.81 * RATE):].any()  # the silent chunk (2.7–3.3 s) once chunk 2 has faded out


class CountingMono:
    """A synthetic mono of ``n`` samples in blocks, counting the samples handed out."""

    def __init__(self, n: int, block: int) -> None:
        self.n, self.block, self.read = n, block, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, self.n, self.block):
            t = np.arange(start, min(start + self.block, self.n)) / RATE
            self.read += len(t)
            yield 0.2 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))


def test_the_stream_reads_the_mono_only_a_chunk_ahead_and_cancels_mid_clip(renderer):
    """Each stem block is handed out while at most a chunk (1 s), the resamplers' context and two
    blocks of the mono have been read past it; a cancel from the progress stops the stream mid-clip."""
    n, block = 12 * RATE, 4800
    mono = CountingMono(n, block)
    ahead, written = [], 0
    for out in render_blocks(renderer, iter(mono), n, moving_waypoints(12.0), RATE, block):
        written += out.shape[1]
        ahead.append(mono.read - written)
    assert written == n and len(ahead) == n // block
    assert max(ahead) <= RATE + 2 * block + 1000, max(ahead)  # a chunk, two blocks and the resamplers' context
    assert ahead[0] < n / 4  # the first block came before a quarter of the clip was read

    def cancel(fraction: float) -> None:
        if fraction > 0.5:
            raise Cancelled("the job was cancelled")

    mono = CountingMono(n, block)
    handed = []
    with pytest.raises(Cancelled):
        for out in renderer.with_progress(cancel).render_blocks(iter(mono), n, moving_waypoints(12.0), RATE, block):
            handed.append(out.shape[1])
    assert 0 < sum(handed) < n and mono.read < 0.75 * n


def traced_peak(renderer: DiffusionRenderer, seconds: float) -> int:
    """Peak bytes numpy (and Python) allocated while streaming a synthetic mono of ``seconds``."""
    n = int(seconds * RATE)
    tracemalloc.start()
    try:
        for _ in render_blocks(renderer, iter(CountingMono(n, 1 << 15)), n, moving_waypoints(seconds), RATE, 1 << 15):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_clip(renderer):
    """32 s of mono (2 MiB at 48 kHz, 4.4 MiB with its stem) peaks within 1 MiB of 8 s: nothing
    holds the whole clip (the one-piece render peaked at 27 MiB for 20 s and 161 MiB for 120 s)."""
    traced_peak(renderer, 1.0)  # imports and caches first
    short, long = traced_peak(renderer, 8.0), traced_peak(renderer, 32.0)
    assert long < short + (1 << 20), (short, long)


def test_each_chunk_hears_the_data_level_on_its_own():
    """The level is set per chunk: making the first chunk's own samples 40 dB louder changes no
    output past its cross-fade; a silent chunk gives silence and still reports its steps."""
    torch.manual_seed(1)
    model = BinauralDiffWave(TINY)
    torch.nn.init.normal_(model.output_projection.weight, std=0.05)
    n = int(2.5 * TINY.segment_samples)  # chunks [0, 8000), [7200, 15200), [14400, 20000)
    t = np.arange(n) / TINY.sample_rate
    mono = 0.05 * np.sin(2 * np.pi * 300 * t)
    xyz = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.5]])

    def render(signal: np.ndarray, progress=None) -> np.ndarray:
        return collect(sample_blocks(model, TINY, rechunk([signal], 3001), n, xyz, "fast", seed=2, device="cpu",
                                     progress=progress, level_dbfs=TINY.mono_level_dbfs))

    base = render(mono)
    louder = mono.copy()
    louder[:7200] *= 100.0  # only chunk 0 holds these samples
    changed = render(louder)
    np.testing.assert_array_equal(changed[:, 8000:], base[:, 8000:])
    ratio = np.sqrt(np.mean(changed[:, :7200] ** 2) / np.mean(base[:, :7200] ** 2))
    assert 30 < ratio < 300  # the output keeps the clip's level: about 40 dB louder there
    silent_tail = mono.copy()
    silent_tail[14400:] = 0.0  # chunk 2 silent
    steps: list[float] = []
    out = render(silent_tail, steps.append)
    assert len(steps) == 3 * 6 and not out[:, 15200:].any()
    np.testing.assert_array_equal(out[:, :7200], base[:, :7200])  # chunk 1 holds 14400–15200: it changed
    assert chunk_gain(mono, None) == 1.0 and chunk_gain(np.zeros(5), -20.0) == 0.0
    assert chunk_gain(10 * mono, -20.0) == pytest.approx(chunk_gain(mono, -20.0) / 10)
    assert chunk_gain(mono, -20.0) == pytest.approx(0.1 / np.sqrt(np.mean(mono ** 2)))


def test_sampler_stream_does_not_depend_on_the_input_blocking():
    torch.manual_seed(2)
    model = BinauralDiffWave(TINY)
    torch.nn.init.normal_(model.output_projection.weight, std=0.05)
    n = 20_000
    mono = (0.3 * np.sin(np.arange(n) * 0.07)).astype(np.float32)
    xyz = np.array([[2.0, 0.5, 0.0], [0.5, -2.0, 0.0], [1.0, 1.0, 1.0]])
    whole = sample(model, TINY, mono, xyz, "fast", seed=5, device="cpu")
    blocks = list(sample_blocks(model, TINY, rechunk([mono.astype(np.float64)], 777), n, xyz, "fast", seed=5,
                                device="cpu"))
    assert [b.shape[1] for b in blocks] == [7200, 7200, 5600]  # each chunk up to the next one's start
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1).astype(np.float32), whole)
    with pytest.raises(ValueError, match="ended after 15000 samples; 20000 were expected"):
        list(sample_blocks(model, TINY, rechunk([mono[:15000]], 5000), n, xyz, "fast", device="cpu"))
    with pytest.raises(ValueError, match="xyz must be"):
        sample_blocks(model, TINY, [mono], n, np.zeros((2, 2)))


def test_render_of_nothing_is_nothing(renderer):
    assert renderer.render(np.zeros(0), moving_waypoints(1.0), RATE).shape == (2, 0)
    assert list(renderer.render_blocks(iter(()), 0, moving_waypoints(1.0), RATE)) == []
    np.testing.assert_array_equal(renderer.render(np.zeros(3000), moving_waypoints(1.0), RATE), np.zeros((2, 3000)))
