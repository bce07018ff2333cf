"""Memory per student: the peak resident memory of each notebook's kernel, for the hub's capacity arithmetic.

    .venv/bin/python scripts/hub_capacity.py                    # every notebook, full sizes, short budgets
    .venv/bin/python scripts/hub_capacity.py --smoke 01_attention
    .venv/bin/python scripts/hub_capacity.py --limit 240 04_translation 05_bert_gpt

Memory depends on the sizes (data, model, batch), not on how long a model trains, so the default
run is full mode with every time budget (`*_SECONDS`) cut to 3 s and every step count (`*_STEPS`)
to 5: the same tensors as a full run, in minutes instead of an hour. Cells that then fail (a check
that needs the fully trained model) are recorded and the run goes on, so later sections are
measured too. What is measured is the sum of the resident memory of the kernel and its children (not the runner),
sampled every 0.2 s; a notebook stopped by --limit is marked "(stopped)": a lower bound.
The table goes to stdout and to build/hub-capacity/capacity.json; hub/README.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import course_utils  # noqa: F401  (sets OMP_WAIT_POLICY before anything imports torch)
from course_utils.paths import NOTEBOOKS_DIR, build_dir

import nbformat
from nbclient import NotebookClient

SHORT = {r"_SECONDS$": 3, r"_STEPS$": 5}


def _overrides(nb: nbformat.NotebookNode) -> dict[str, int]:
    """The parameters that bound run time, from the parameters cell, with their short values."""
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", cell.source, flags=re.M)
    return {n: v for n in names for pattern, v in SHORT.items() if re.search(pattern, n)}


def run_one(name: str, smoke: bool) -> dict:
    """Execute one notebook in this process's kernel child; returns its failed cells and overrides."""
    path = NOTEBOOKS_DIR / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    overrides = {} if smoke else _overrides(nb)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    lines = [f"SMOKE = {smoke}"] + [f"{k} = {v!r}" for k, v in overrides.items()]
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(lines)))
    client = NotebookClient(
        nb, timeout=1200, allow_errors=True, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    failed = [
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)
    ]
    return {"failed_cells": failed, "overrides": overrides}


def _tree_rss(root: int) -> int:
    """Resident bytes of all descendants of `root` (the kernel and what it starts), now."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, stack = 0, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(name: str, smoke: bool, limit: float, out: Path) -> dict:
    """Run one notebook in a child process and sample the memory of its process tree."""
    report = out / f"{name}.json"
    report.unlink(missing_ok=True)
    args = [sys.executable, __file__, "--one", name, "--report", str(report)] + (["--smoke"] if smoke else [])
    env = {**os.environ, "COURSE_HEADLESS": "1", "COURSE_SMOKE": "1" if smoke else "0"}
    t0 = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, stopped = 0, False
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        if time.monotonic() - t0 > limit:
            stopped = True
            subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)  # the kernel: a child of ours
            proc.kill()
            proc.wait()
            break
        time.sleep(0.2)
    done = json.loads(report.read_text()) if report.exists() else {}
    return {
        "notebook": name,
        "mode": "smoke" if smoke else "full sizes, short budgets",
        "peak_mib": round(peak / 2**20),
        "seconds": round(time.monotonic() - t0),
        "stopped": stopped,
        "failed_cells": done.get("failed_cells"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="stems, e.g. 01_attention (default: every notebook)")
    parser.add_argument("--smoke", action="store_true", help="SMOKE sizes instead of full sizes")
    parser.add_argument("--limit", type=float, default=300, help="seconds per notebook before it is stopped")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        args.report.write_text(json.dumps(run_one(args.one, args.smoke)))
        return 0
    known = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    unknown = sorted(set(args.notebooks) - set(known))
    if unknown:
        parser.error(f"no notebook named {unknown}; known: {', '.join(known)}")
    if args.limit <= 0:
        parser.error(f"--limit must be a positive number of seconds, not {args.limit}")
    out = build_dir("hub-capacity")
    rows = []
    for name in args.notebooks or known:
        row = measure(name, args.smoke, args.limit, out)
        rows.append(row)
        flag = " (stopped)" if row["stopped"] else ""
        print(f"{name:<24} {row['peak_mib']:>6} MiB  {row['seconds']:>4} s  failed cells {row['failed_cells']}{flag}")
        sys.stdout.flush()
        (out / "capacity.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
