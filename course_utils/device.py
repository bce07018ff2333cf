"""Pick a device and make runs repeatable.

`get_device("auto")` prefers CUDA, then Apple's MPS, then the CPU, so the same
notebook runs on a laptop and a GPU box. `seed_everything` seeds every random
number generator the course touches. (Notebook 00's table of versions, device, data and
network is course tooling: `course_utils.tools.environment.environment_report`.)
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from course_utils.checks import check_int

_KNOWN = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    """Apple's Metal backend, on a PyTorch that has it at all."""
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def get_device(name: str | torch.device = "auto") -> torch.device:
    """Return the torch.device for `name`: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1", "mps".

    >>> get_device("cpu")
    device(type='cpu')
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"get_device: name must be a string such as 'auto' or 'cpu', got {type(name).__name__}")
    kind = name.split(":")[0].lower()
    if kind not in _KNOWN:
        raise ValueError(f"get_device: unknown device {name!r}; use one of {', '.join(_KNOWN)} (or 'cuda:N')")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"get_device: {name!r} asked for, but this PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}); use DEVICE='auto' or 'cpu'"
        )
    if kind == "cuda" and ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
        raise ValueError(f"get_device: {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    if kind == "mps" and not _mps_available():
        raise ValueError(
            "get_device: 'mps' asked for, but Apple's Metal backend is not available here; use DEVICE='auto' or 'cpu'"
        )
    return torch.device(name.lower())


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy and torch (CPU and all GPUs); ask cuDNN for determinism.

    Same seed, same numbers on the same machine. GPU kernels may still differ in the
    last bits between runs; we do not force `torch.use_deterministic_algorithms`
    because some kernels the course uses have no deterministic version.
    """
    seed = check_int("seed_everything", "seed", seed, low=0, high=2**32 - 1)  # numpy's seeds are 32-bit
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses; this process's hashing is fixed at start
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
