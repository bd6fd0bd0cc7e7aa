"""``foleyspace eval binaural``: a checkpoint's output on held-out examples against the DSP-rendered
target, beside two baselines.

Systems scored on each held-out example (:func:`foleyspace.training.metrics.all_metrics`):

* ``model`` — the checkpoint's EMA network sampled along the example's trajectory;
* ``mono`` — the mono segment duplicated to both ears (what a mono renderer gives);
* ``dsp-nearest`` — the DSP renderer of the data set again, on the example's own SOFA file
  and trajectory, but with the nearest measured HRIR instead of the set's interpolation (for a
  coarse-scheme set, which is rendered with the nearest HRIR, this baseline equals the target).

The table shows the mean over examples; the JSON also holds every example's figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.device import resolve_device
from foleyspace.errors import FoleySpaceError
from foleyspace.training.metrics import METRICS, all_metrics

log = logging.getLogger(__name__)

SYSTEMS = ("model", "mono", "dsp-nearest")


@dataclass
class BinauralReport:
    """What ``eval binaural`` measured: per system the mean of each metric, and per example."""

    checkpoint: str
    data: str
    config: str
    step: int
    schedule: str
    sample_rate: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    means: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"checkpoint": self.checkpoint, "data": self.data, "config": self.config, "step": self.step,
                "schedule": self.schedule, "sample_rate": self.sample_rate, "count": len(self.examples),
                "metrics": {key: label for key, label in METRICS}, "means": self.means,
                "examples": self.examples, "seconds": round(self.seconds, 2)}


def _nearest_target(dataset: Any, index: int, mono: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """The example re-rendered by the data set's DSP renderer with nearest-neighbour HRIRs."""
    from foleyspace.training.dataset_build import make_renderer, render_example

    cfg = dataset.config
    settings = dataset.manifest["renderer"]
    subject = dataset.info(index)["subject"]
    renderer = make_renderer(str(subject["path"]), cfg.sample_rate, "nearest", settings["directions"],
                             float(settings["segment_rate_hz"]))
    return render_example(mono, xyz, renderer, cfg)


def evaluate_binaural(checkpoint: str | Path, data: str | Path, examples: int = 8, schedule: str = "fast",
                      seed: int = 0, device: str | None = None,
                      progress: Callable[[str], None] | None = None) -> BinauralReport:
    """Score ``checkpoint`` and the baselines on the first ``examples`` held-out examples of ``data``.

    Raises:
        FoleySpaceError: one line — an unusable checkpoint or data set, no held-out split, or a
            data set cut for another rate / segment / trajectory than the checkpoint's config.
    """
    from foleyspace.diffusion.checkpoint import load
    from foleyspace.diffusion.checkpoint import build_model
    from foleyspace.diffusion.sampler import sample
    from foleyspace.training.run_state import check_data_config
    from foleyspace.training.shards import ShardDataset

    if examples < 1:
        raise FoleySpaceError("--examples must be at least 1")
    device = resolve_device(device or "auto")  # one-line DeviceError for a typo or a missing GPU
    ckpt = load(checkpoint)
    cfg = ckpt.config
    model = build_model(checkpoint, cfg, ckpt.ema if ckpt.ema is not None else ckpt.model).eval()
    dataset = ShardDataset(data, "heldout")
    try:
        check_data_config(dataset.config, cfg, Path(data))
    except FoleySpaceError:
        built = dataset.config
        raise FoleySpaceError(
            f"{checkpoint}: a {cfg.name!r} checkpoint ({cfg.sample_rate} Hz, {cfg.segment_samples} samples, "
            f"{cfg.positions} positions) cannot be scored on {data}, built for config {built.name!r} "
            f"({built.sample_rate} Hz, {built.segment_samples} samples, {built.positions} positions); "
            f"build a set with --config {cfg.name}") from None
    report = BinauralReport(str(checkpoint), str(data), cfg.name, ckpt.step, schedule, cfg.sample_rate)
    started = time.monotonic()
    count = min(examples, len(dataset))
    for index in range(count):
        item = dataset[index]
        mono = item["mono"][0].numpy().astype(np.float64)
        target = item["binaural"].numpy().astype(np.float64)
        xyz = item["xyz"].numpy()
        t0 = time.monotonic()
        generated = sample(model, cfg, mono, xyz, schedule=schedule, seed=seed + index, device=device)
        sampling_s = time.monotonic() - t0
        outputs = {"model": generated, "mono": np.stack([mono, mono]),
                   "dsp-nearest": _nearest_target(dataset, index, mono, xyz)}
        row: dict[str, Any] = {"index": index, **{k: v for k, v in dataset.info(index).items() if k != "subject"},
                               "sampling_rtf": sampling_s / (len(mono) / cfg.sample_rate)}
        for name in SYSTEMS:
            row[name] = all_metrics(outputs[name], target, cfg.sample_rate)
        report.examples.append(row)
        if progress is not None:
            progress(f"example {index + 1}/{count}: model wave L2 ×10³ {row['model']['wave_l2_x1e3']:.3f}, "
                     f"ITD err {row['model']['itd_us']:.0f} µs")
    report.means = {name: {key: float(np.mean([row[name][key] for row in report.examples])) for key, _ in METRICS}
                    for name in SYSTEMS}
    report.seconds = time.monotonic() - started
    return report


def format_binaural_table(report: BinauralReport) -> str:
    """The means as a fixed-width table, one row per system."""
    head = (f"eval binaural: {report.checkpoint} ({report.config}, step {report.step}, {report.schedule} schedule) "
            f"on {len(report.examples)} held-out example(s) of {report.data}, {report.sample_rate} Hz")
    labels = [label for _, label in METRICS]
    widths = [max(11, len(label)) for label in labels]
    lines = [head, "", f"{'system':<12}" + "".join(f"  {label:>{w}}" for label, w in zip(labels, widths))]
    for name in SYSTEMS:
        values = report.means[name]
        lines.append(f"{name:<12}" + "".join(f"  {values[key]:>{w}.4g}" for (key, _), w in zip(METRICS, widths)))
    lines.append("")
    lines.append("target: the data set's DSP rendering; lower is better for every column. wave L2 = MSE ×10³; "
                 "amplitude/phase: STFT (40 ms, 10 ms hop); ILD/ITD: per 100 ms window, ITD lags within ±1 ms.")
    return "\n".join(lines)
