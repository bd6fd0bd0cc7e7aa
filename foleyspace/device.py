"""Compute devices for model backends: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

Resolved in this one place. PyTorch is imported only when the answer needs it: ``cpu`` never
imports it, ``auto`` only when PyTorch is installed.
"""

from __future__ import annotations

import re
from importlib.util import find_spec

from foleyspace.errors import FoleySpaceError

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class DeviceError(FoleySpaceError):
    """A requested device that this machine does not have."""

    code = "bad_device"


def check_device_name(name: str) -> str:
    """``name`` if it is a device spelling this tool accepts; :class:`DeviceError` otherwise."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise DeviceError(f"--device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return name


def resolve_device(name: str) -> str:
    """The device a model backend should use, as a torch device string.

    ``auto``: the first CUDA GPU, else Apple's MPS, else ``cpu`` (also when PyTorch is not
    installed). An explicit ``cuda``/``cuda:N``/``mps`` that this machine cannot provide raises
    :class:`DeviceError` with one line saying why.
    """
    name = check_device_name(name)
    if name == "cpu":
        return "cpu"
    if find_spec("torch") is None:
        if name == "auto":
            return "cpu"
        raise DeviceError(f"--device {name!r}: PyTorch is not installed (pip install 'foleyspace[models]'), "
                          "so only the CPU can be used")
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return "cuda:0" if cuda else "mps" if mps else "cpu"
    if name == "mps":
        if not mps:
            raise DeviceError("--device 'mps': Apple's Metal backend is not available on this machine")
        return "mps"
    if not cuda:
        raise DeviceError(f"--device {name!r}: no CUDA GPU is available to PyTorch on this machine")
    index = int(name.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"--device {name!r}: this machine has {count} CUDA GPU(s) (cuda:0 … cuda:{count - 1})")
    return f"cuda:{index}"
