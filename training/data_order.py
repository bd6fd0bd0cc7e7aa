"""Which examples a training step reads, and its random draws: functions of (seed, rank, step) only.

The data is one endless stream of examples: epoch ``e`` is a permutation of the dataset drawn
from ``(seed, e)``, and the stream is the epochs one after another. Step ``s`` of a run with
``world`` processes and ``batch`` examples per process consumes stream positions
``[s·batch·world, (s+1)·batch·world)``; process ``rank`` takes every ``world``-th of them from
``rank`` on (as ``DistributedSampler`` interleaves). The data position saved in a checkpoint is
the number of positions consumed, so a resumed run reads exactly what the uninterrupted run would
have. The diffusion step t and the noise of each step come from a generator seeded by
``(seed, rank, step)``, so they too do not depend on where a run was stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class DataOrder:
    """The deterministic example stream of a dataset of ``n_items`` (see the module docstring)."""

    def __init__(self, n_items: int, seed: int) -> None:
        if n_items < 1:
            raise ValueError("the dataset is empty")
        self.n_items = int(n_items)
        self.seed = int(seed)
        self._epochs: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of epoch ``epoch``: a permutation of ``range(n_items)`` drawn from ``(seed, epoch)``."""
        if epoch not in self._epochs:
            if len(self._epochs) > 4:
                self._epochs.clear()
            self._epochs[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
        return self._epochs[epoch]

    def item(self, position: int) -> int:
        """The dataset index at stream ``position``."""
        epoch, offset = divmod(int(position), self.n_items)
        return int(self.permutation(epoch)[offset])

    def batch(self, step: int, rank: int, world: int, batch_size: int) -> list[int]:
        """Dataset indices of process ``rank``'s batch at 0-based ``step``."""
        start = step * batch_size * world
        return [self.item(start + k * world + rank) for k in range(batch_size)]


class StepBatches(torch.utils.data.Sampler):
    """Batch sampler for a ``DataLoader``: the batches of steps ``first_step`` … ``last_step − 1``
    of process ``rank`` (so worker processes can load ahead in the deterministic order)."""

    def __init__(self, order: DataOrder, rank: int, world: int, batch_size: int, first_step: int,
                 last_step: int) -> None:
        self.order, self.rank, self.world, self.batch_size = order, rank, world, batch_size
        self.first_step, self.last_step = first_step, last_step

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.first_step, self.last_step):
            yield self.order.batch(step, self.rank, self.world, self.batch_size)

    def __len__(self) -> int:
        return max(0, self.last_step - self.first_step)


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed for the random draws (t, noise) of process ``rank`` at ``step``."""
    return int(np.random.SeedSequence([int(seed), int(rank), int(step)]).generate_state(1, np.uint64)[0] >> 1)


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by :func:`step_seed`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(step_seed(seed, rank, step))
    return generator
