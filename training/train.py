"""Train the binaural DiffWave: ``torchrun --nproc_per_node=N -m foleyspace.training.train --data DIR
--config tiny|small|paper --out RUN_DIR [--resume] …`` (or one process: ``python -m …``).

DistributedDataParallel over torchrun's processes (gloo on CPUs, NCCL on GPUs, several nodes
through torchrun's RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR), bf16 autocast on GPUs. Each step
draws a diffusion step t and noise ε per example and minimises DiffWave's
``‖ε − ε_θ(√ᾱ_t·x0 + √(1 − ᾱ_t)·ε, mono, trajectory, t)‖²`` (mean squared error) with Adam at the
config's learning rate, the gradient norm clipped to ``grad_clip``, and keeps an EMA of the
weights (``ema_decay``) for sampling. The data order and the draws depend only on (seed, rank,
step) (:mod:`.data_order`), so a resumed run continues exactly where the stopped one left off.

Rank 0 writes: ``log.csv`` (and TensorBoard when installed), ``checkpoint-SSSSSSSS.pt`` every
``--save-every`` steps, at the end and on SIGINT/SIGTERM (atomic; the newest ``--keep`` are kept),
and ``samples/`` (the EMA model on one held-out example with the fast schedule, WAV).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from foleyspace.diffusion.config import DiffusionConfig, named_config
from foleyspace.device import check_device_name, resolve_device
from foleyspace.errors import FoleySpaceError

from foleyspace.training import run_state
from foleyspace.training.data_order import DataOrder, StepBatches, step_generator
from foleyspace.training.train_args import add_train_arguments
from foleyspace.training.train_log import TrainLog

if TYPE_CHECKING:
    from foleyspace.training.shards import ShardDataset

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m foleyspace.training.train`` (and ``foleyspace train fit``)."""
    p = argparse.ArgumentParser(prog="foleyspace.training.train", description=__doc__.split("\n\n")[0])
    add_train_arguments(p)
    return p


@dataclass(frozen=True)
class Dist:
    """Where this process sits: rank, world size, local rank, device, and whether it is rank 0."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join torchrun's process group (env ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``):
    NCCL on CUDA, gloo on CPU. Without torchrun's env: one process, no group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if check_device_name(device) == "mps":
        raise FoleySpaceError("--device mps: training runs on CUDA GPUs or the CPU (DDP has no MPS backend)")
    if device.startswith("cuda"):
        resolve_device(device)  # one line when this machine has no such GPU
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    dev = torch.device(f"cuda:{local_rank}" if use_cuda and device in ("auto", "cuda") else (device if use_cuda else "cpu"))
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Dist(rank, world, local_rank, dev)


class StopRequest:
    """SIGINT/SIGTERM set :attr:`signal` instead of killing the run, so the loop can checkpoint and
    leave; a second SIGINT interrupts at once. :meth:`close` puts the old handlers back."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("%s: saving a checkpoint after this step", signal.Signals(signum).name)

    def close(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def run_config(args: argparse.Namespace) -> DiffusionConfig:
    """The named config with ``--batch-size`` / ``--max-steps`` applied."""
    overrides: dict[str, Any] = {}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.max_steps is not None:
        overrides["max_steps"] = args.max_steps
    try:
        return named_config(args.config, **overrides)
    except ValueError as exc:
        raise FoleySpaceError(str(exc)) from None


def _check_args(args: argparse.Namespace) -> None:
    for name in ("max_steps", "batch_size", "save_every", "workers", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "workers" else 1):
            raise FoleySpaceError(f"--{name.replace('_', '-')} must be a positive number, not {value}")
    if args.sample_every < 0:
        raise FoleySpaceError("--sample-every must be 0 (never) or positive")
    if args.keep < 0:
        raise FoleySpaceError(f"--keep must be 0 (all) or positive, not {args.keep}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise FoleySpaceError(f"--max-minutes must be a positive number of minutes, not {args.max_minutes}")


class Trainer:
    """One process's share of a run: model, EMA, optimiser, data and the loop."""

    def __init__(self, args: argparse.Namespace, cfg: DiffusionConfig, where: Dist, dataset: ShardDataset) -> None:
        """``dataset``: the training split, already checked against ``cfg`` (:func:`train`)."""
        from foleyspace.diffusion.model import BinauralDiffWave

        self.args, self.cfg, self.where = args, cfg, where
        self.run_dir = Path(args.out)
        self.dataset = dataset
        torch.manual_seed(args.seed)
        self.model = BinauralDiffWave(cfg).to(where.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        self.ddp: torch.nn.Module = self.model
        if where.world > 1:
            self.ddp = DistributedDataParallel(self.model, device_ids=[where.device.index] if where.device.type == "cuda" else None)
        self.order = DataOrder(len(self.dataset), args.seed)
        # bf16 autocast on a GPU that has it; otherwise fp32 (fp16 would need a loss scaler)
        from foleyspace.diffusion.sampler import native_bf16

        self.bf16 = native_bf16(where.device)
        if where.device.type == "cuda" and not self.bf16:
            log.warning("%s has no bf16: training in fp32", torch.cuda.get_device_name(where.device))
        self.step = 0
        self.saved_step = -1
        self.elapsed_before = 0.0

    # --- checkpoints -------------------------------------------------------------------------

    def resume(self) -> None:
        """Load the newest checkpoint of the run folder (all processes read it)."""
        from foleyspace.diffusion import checkpoint

        path = run_state.latest_checkpoint(self.run_dir)
        if path is None:
            raise FoleySpaceError(f"{self.run_dir}: no checkpoint to resume (checkpoint-*.pt)")
        # on the CPU: the RNG states must stay CPU tensors; load_state_dict copies weights and the
        # optimiser's state onto the parameters' device
        ckpt = checkpoint.load(path, map_location="cpu")
        run_state.check_resume_config(ckpt.config, self.cfg, path)
        try:
            self.model.load_state_dict(ckpt.model)
            self.ema.load_state_dict(ckpt.ema if ckpt.ema is not None else ckpt.model)
            if ckpt.optimizer is not None:
                self.optimizer.load_state_dict(ckpt.optimizer)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise FoleySpaceError(f"{path}: cannot resume from it: {str(exc).splitlines()[0][:200]}") from exc
        extra = ckpt.extra or {}
        self.step = self.saved_step = int(ckpt.step)
        if int(extra.get("data_position", -1)) != self.step * self.cfg.batch_size * self.where.world:
            log.warning("%s: data position %s from another world size: the stream continues at %d",
                        path, extra.get("data_position"), self.step * self.cfg.batch_size * self.where.world)
        self.elapsed_before = float(extra.get("elapsed_s", 0.0))
        states = extra.get("rng_per_rank") or []
        if len(states) == self.where.world:
            checkpoint.set_rng_state(states[self.where.rank])
        log.info("resumed %s at step %d", path, self.step)

    def save(self, elapsed_s: float) -> Path | None:
        """Checkpoint the current step (collective: every process calls it; rank 0 writes)."""
        from foleyspace.diffusion import checkpoint

        states: list[Any] = [None] * self.where.world
        if self.where.world > 1:
            dist.all_gather_object(states, checkpoint.rng_state())
        else:
            states = [checkpoint.rng_state()]
        path = None
        if self.where.main:
            path = run_state.checkpoint_path(self.run_dir, self.step)
            extra = {"data_position": self.step * self.cfg.batch_size * self.where.world, "world_size": self.where.world,
                     "seed": self.args.seed, "elapsed_s": elapsed_s, "rng_per_rank": states,
                     "data": str(Path(self.args.data).resolve())}
            checkpoint.save(path, checkpoint.Checkpoint(
                config=self.cfg, model=self.model.state_dict(), step=self.step, ema=self.ema.state_dict(),
                optimizer=self.optimizer.state_dict(), rng=states[0], extra=extra))
            run_state.prune(self.run_dir, self.args.keep)
            log.info("checkpoint %s", path)
        if self.where.world > 1:
            dist.barrier()
        self.saved_step = self.step
        return path

    # --- the loop ----------------------------------------------------------------------------

    def _loader(self, last_step: int) -> torch.utils.data.DataLoader:
        workers = self.args.workers if self.args.workers is not None else (4 if self.where.device.type == "cuda" else 0)
        sampler = StepBatches(self.order, self.where.rank, self.where.world, self.cfg.batch_size, self.step, last_step)
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers,
                                           pin_memory=self.where.device.type == "cuda",
                                           persistent_workers=False)

    def _loss(self, batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        from foleyspace.diffusion.model import expand_trajectory
        from foleyspace.diffusion.schedule import q_sample

        device = self.where.device
        gain = self.cfg.data_gain  # the diffusion space's gain (DiffusionConfig.data_gain_db)
        mono = batch["mono"].to(device, torch.float32, non_blocking=True) * gain
        x0 = batch["binaural"].to(device, torch.float32, non_blocking=True) * gain
        trajectory = expand_trajectory(batch["xyz"].to(device, torch.float32), x0.shape[-1])
        generator = step_generator(self.args.seed, self.where.rank, step, device)
        t = torch.randint(0, self.cfg.diffusion_steps, (x0.shape[0],), generator=generator, device=device)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        noisy = q_sample(x0, t, noise, self.cfg)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.bf16):
            predicted = self.ddp(noisy, mono, trajectory, t)
        return F.mse_loss(predicted.float(), noise)

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.cfg.ema_decay
        ema = list(self.ema.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in self.model.parameters()], 1.0 - decay)

    def _kept(self) -> str:
        """What a diverged run leaves (the last checkpoint saved before the non-finite step)."""
        return f"the checkpoint of step {self.saved_step} is kept" if self.saved_step >= 0 else "no checkpoint was written"

    def fit(self, stop: StopRequest, sampler: "SampleWriter | None") -> int:
        """Train to ``cfg.max_steps`` (or until stopped); returns the last completed step."""
        cfg, where = self.cfg, self.where
        train_log = TrainLog(self.run_dir, self.step) if where.main else None
        started = time.monotonic()
        deadline = started + self.args.max_minutes * 60 if self.args.max_minutes else None
        last_time, last_step = started, self.step
        self.model.train()
        try:
            for batch in self._loader(cfg.max_steps):
                loss = self._loss(batch, self.step)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                want_stop = stop.signal is not None or (deadline is not None and time.monotonic() >= deadline)
                stats = torch.stack([loss.detach().float(), torch.tensor(float(want_stop), device=loss.device)])
                if where.world > 1:
                    dist.all_reduce(stats)
                # the step's one host sync; the gradient norm is the same on every rank (DDP averaged the
                # gradients), so every rank takes the same branch below
                loss_sum, stop_sum, norm = torch.cat([stats, grad_norm.detach().float().reshape(1)]).tolist()
                mean_loss, stopping = loss_sum / where.world, stop_sum > 0
                if not (math.isfinite(mean_loss) and math.isfinite(norm)):  # before the weights change
                    what = f"the loss is {mean_loss}" if not math.isfinite(mean_loss) else f"the gradient norm is {norm}"
                    raise FoleySpaceError(f"step {self.step + 1}: {what}: training diverged; {self._kept()}")
                self.optimizer.step()
                self._update_ema()
                self.step += 1
                now = time.monotonic()
                if train_log is not None:
                    rate = (self.step - last_step) * cfg.batch_size * where.world / max(now - last_time, 1e-9)
                    train_log.write(step=self.step, loss=mean_loss, grad_norm=norm,
                                    lr=self.optimizer.param_groups[0]["lr"], samples_per_s=rate,
                                    elapsed_s=self.elapsed_before + now - started)
                last_time, last_step = now, self.step
                elapsed = self.elapsed_before + now - started
                if stopping or self.step >= cfg.max_steps:
                    break
                if self.step % self.args.save_every == 0:
                    self.save(elapsed)
                if sampler is not None and self.step % self.args.sample_every == 0:
                    sampler.write(self.ema, self.step)
            if self.step > self.saved_step:
                self.save(self.elapsed_before + time.monotonic() - started)
            if sampler is not None and stop.signal is None and sampler.last_step != self.step:
                sampler.write(self.ema, self.step)
        finally:
            if train_log is not None:
                train_log.close()
        if stop.signal is not None:
            log.warning("stopped by %s at step %d; continue with --resume", signal.Signals(stop.signal).name, self.step)
        return self.step


class SampleWriter:
    """Rank 0's periodic samples: the EMA model on one held-out example (fast schedule), written as
    ``RUN_DIR/samples/step-SSSSSSSS.wav`` beside ``mono.wav`` and ``target.wav`` (model rate)."""

    def __init__(self, data: Path, run_dir: Path, cfg: DiffusionConfig, device: torch.device, seed: int) -> None:
        import soundfile

        from foleyspace.training.shards import DatasetError, ShardDataset

        try:
            dataset = ShardDataset(data, "heldout")
        except DatasetError:
            log.warning("%s: no held-out examples; samples use the first training example", data)
            dataset = ShardDataset(data, "train")
        item = dataset[0]
        self.mono = item["mono"][0].numpy()
        self.xyz = item["xyz"].numpy()
        self.folder = Path(run_dir) / "samples"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cfg, self.device, self.seed = cfg, device, seed
        self.last_step = -1
        soundfile.write(self.folder / "mono.wav", self.mono, cfg.sample_rate, subtype="FLOAT")
        soundfile.write(self.folder / "target.wav", item["binaural"].numpy().T, cfg.sample_rate, subtype="FLOAT")

    def write(self, model: torch.nn.Module, step: int) -> Path:
        import soundfile

        from foleyspace.diffusion.sampler import sample

        out = sample(model, self.cfg, self.mono, self.xyz, schedule="fast", seed=self.seed, device=str(self.device))
        path = self.folder / f"step-{step:08d}.wav"
        soundfile.write(path, out.T, self.cfg.sample_rate, subtype="FLOAT")
        self.last_step = step
        log.info("sample %s", path)
        return path


def train(args: argparse.Namespace) -> int:
    """Run (or resume) a training run from parsed ``args``; returns the last completed step.

    Raises:
        FoleySpaceError: missing or mismatched data, an existing run without ``--resume``, or a
            checkpoint from another config.
    """
    _check_args(args)
    torch.set_num_threads(args.threads)
    cfg = run_config(args)
    from foleyspace.training.shards import ShardDataset

    # a missing, unfinished, damaged or mismatched data set and an --out that cannot be a folder
    # fail here, before any process group or run folder
    dataset = ShardDataset(args.data, "train")
    run_state.check_data_config(dataset.config, cfg, Path(args.data))
    run_state.check_run_dir(Path(args.out))
    where = init_distributed(args.device)
    stop = StopRequest()
    try:
        run_dir = Path(args.out)
        if where.main:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FoleySpaceError(f"{run_dir}: cannot make the run folder ({exc.strerror or exc})") from exc
        if where.world > 1:
            dist.barrier()
        if not args.resume and run_state.latest_checkpoint(run_dir) is not None:
            raise FoleySpaceError(f"{run_dir} already holds checkpoints: pass --resume to continue, or choose another --out")
        trainer = Trainer(args, cfg, where, dataset)
        if args.resume:
            trainer.resume()
        if trainer.step >= cfg.max_steps:
            log.info("step %d already reached max_steps %d: nothing to train", trainer.step, cfg.max_steps)
            return trainer.step
        sampler = SampleWriter(args.data, run_dir, cfg, where.device, args.seed) if where.main and args.sample_every else None
        log.info("training %s (%d examples) on %d process(es), %s, steps %d..%d", cfg.name, len(trainer.dataset),
                 where.world, where.device, trainer.step, cfg.max_steps)
        return trainer.fit(stop, sampler)
    finally:
        stop.close()
        if dist.is_initialized():
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success (also after a clean stop on SIGINT/SIGTERM), 2 on a usage error."""
    logging.basicConfig(level=logging.INFO, format=f"[rank {os.environ.get('RANK', '0')}] %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except FoleySpaceError as exc:
        log.error("%s", exc)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
