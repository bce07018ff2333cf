"""What a computation costs: wall time, peak memory, parameters. Notebooks 01, 07 and 08 and the benchmarks
measure with these, so every figure of the course is taken the same way.

- `best_time(fn)`: the best of a few runs after a warm-up; a shared machine only ever adds time.
- `peak_memory(fn)`: the most memory torch's allocator held at once during one call, from the
  profiler's allocation events (CPU) or `torch.cuda.max_memory_allocated` (CUDA). It counts
  torch's tensors only, at op granularity.
- `peak_rss(fn)`: a second, independent method: the process's resident high-water mark from
  Linux's /proc (None elsewhere). It sees everything, including memory torch does not manage.
- `count_parameters(model)`: distinct numbers in a module (a tied matrix counts once).

Concession: the profiler's C++ library prints start/stop lines on file descriptor 2, which
Jupyter shows as pink error blocks; `peak_memory` redirects fd 2 while it profiles.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import sys
import time
from typing import Callable, Optional

import torch
from torch import nn

from course_utils.checks import check_callable, check_int

__all__ = ["best_time", "peak_memory", "peak_rss", "time_and_memory", "count_parameters"]


class _SilentStderr:
    """Redirect file descriptor 2 to /dev/null for the duration of a `with` block."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(self._null, 2)

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        os.close(self._null)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device: torch.device | str = "cpu", repeats: int = 3) -> float:
    """Seconds of the fastest of `repeats` calls of `fn()`, after one warm-up call (kernels chosen, caches warm)."""
    check_callable("best_time", "fn", fn)
    check_int("best_time", "repeats", repeats)
    device = torch.device(device)
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_memory(fn: Callable[[], object], device: torch.device | str = "cpu") -> tuple[int, int]:
    """Run fn() once; return (peak, end) bytes that torch allocated during it, on top of what was held before.

    peak is the highest running total of allocations minus frees; end is what was still held when
    fn returned (its results). For a training step this counts activations, gradients and
    optimizer states; the weights were held before, so add them yourself (`quant.stored_bytes`).
    """
    check_callable("peak_memory", "fn", fn)
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (
            max(0, torch.cuda.max_memory_allocated(device) - base),
            max(0, torch.cuda.memory_allocated(device) - base),
        )
    from torch.profiler import ProfilerActivity, profile

    with _SilentStderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    running = list(itertools.accumulate(e.nbytes() for e in events)) or [0]
    return max(0, max(running)), running[-1]


def time_and_memory(
    fn: Callable[[], object], device: torch.device | str = "cpu", repeats: int = 3
) -> tuple[float, float]:
    """(best_time, peak bytes) of `fn()`: the two numbers a cost plot needs."""
    seconds = best_time(fn, device, repeats)
    peak, _ = peak_memory(fn, device)
    return seconds, float(peak)


_LIBC: Optional[ctypes.CDLL] = None


def _rss() -> tuple[int, int]:
    """(current resident set, its high-water mark) of this process in bytes, from /proc/self/status."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def peak_rss(fn: Callable[[], object]) -> Optional[int]:
    """Peak extra resident memory (bytes) while `fn()` runs, or None where it cannot be measured.

    torch's CPU tensors live outside Python's allocator, so tracemalloc does not see them.
    Linux keeps a high-water mark of the resident set (VmHWM) that writing "5" to
    /proc/self/clear_refs resets; peak = VmHWM after - VmRSS before. Two glibc settings keep
    it honest: big blocks (>= 128 KiB) are mmap-ed and returned to the OS on free
    (M_MMAP_THRESHOLD fixed), and malloc_trim releases what the heap kept, so a freed
    matrix cannot be silently reused without being counted. Resolution: a few hundred KiB.
    """
    global _LIBC
    check_callable("peak_rss", "fn", fn)
    if not (os.path.exists("/proc/self/clear_refs") and os.path.exists("/proc/self/status")):
        return None
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD, disables its drift
        _LIBC.malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    before, _ = _rss()
    result = fn()
    _, peak = _rss()
    del result
    return max(peak - before, 0)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of distinct parameters of `model` (a tied matrix counts once); trainable_only: requires_grad only.

    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"count_parameters: model must be an nn.Module, got {type(model).__name__}; "
            "for a config's formula use the model module's parameter_formula(config)"
        )
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
