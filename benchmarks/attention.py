"""Time and peak memory of our attention vs PyTorch's fused scaled_dot_product_attention as n grows.

    .venv/bin/python benchmarks/attention.py            # n = 128 .. 4096 (about a minute on 2 cores)
    .venv/bin/python benchmarks/attention.py --quick    # n = 64 .. 512, a few seconds
    .venv/bin/python benchmarks/attention.py --device cuda

Ours (`course_utils.attention.scaled_dot_product_attention`) materialises the (n, n) weight
matrix per head, so its memory grows as n^2; the fused kernel (flash / memory-efficient
attention) works tile by tile and never stores it. Both do ~4 n^2 d flops. The table prints
time, peak extra memory and the ratio ours / fused. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import course_utils  # noqa: E402,F401  (before torch: OMP_WAIT_POLICY)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from course_utils.attention import scaled_dot_product_attention  # noqa: E402
from course_utils.measure import time_and_memory  # noqa: E402
from course_utils.device import get_device  # noqa: E402
from course_utils.tools import results  # noqa: E402


def run(ns, batch=1, heads=4, d_head=64, device="cpu", dtype=torch.float32, repeats=3, causal=False):
    """One row per n: (n, t_ours, t_fused, mem_ours, mem_fused) in seconds and bytes ."""
    rows = []
    for n in ns:
        g = torch.Generator(device=device).manual_seed(n)
        q, k, v = (torch.randn(batch, heads, n, d_head, generator=g, device=device, dtype=dtype) for _ in range(3))
        ours = partial(scaled_dot_product_attention, q, k, v, is_causal=causal)
        fused = partial(F.scaled_dot_product_attention, q, k, v, is_causal=causal)
        t_o, m_o = time_and_memory(ours, device, repeats)
        t_f, m_f = time_and_memory(fused, device, repeats)
        rows.append((n, t_o, t_f, m_o, m_f))
        del q, k, v, ours, fused  # free this n's tensors before the next, larger one
    return rows


def fmt_mb(b):
    """Bytes as MiB, right-aligned for the table."""
    return f"{b / 2**20:8.1f}"


def print_table(rows, title):
    print(title)
    print(
        f"{'n':>6} {'ours ms':>9} {'fused ms':>9} {'time x':>7} {'ours MiB':>9} {'fused MiB':>9} {'n^2 h 4B MiB':>13}"
    )
    for n, t_o, t_f, m_o, m_f in rows:
        print(
            f"{n:>6} {t_o * 1e3:9.2f} {t_f * 1e3:9.2f} {t_o / t_f:7.2f} {fmt_mb(m_o):>9} {fmt_mb(m_f):>9}"
            f" {n * n * ARGS.heads * ARGS.batch * 4 / 2**20:13.1f}"
        )
    n, t_o, t_f, *_ = rows[-1]
    print(f"at n = {n}: ours / fused time ratio = {t_o / t_f:.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--d-head", type=int, default=64)
    ARGS = p.parse_args()
    device = get_device(ARGS.device)
    ns = [64, 128, 256, 512] if ARGS.quick else [128, 256, 512, 1024, 2048, 4096]
    if device.type == "cuda" and not ARGS.quick:
        ns += [8192, 16384]
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"batch {ARGS.batch}, heads {ARGS.heads}, d_head {ARGS.d_head}, float32, best of 3"
    )
    rows = run(ns, ARGS.batch, ARGS.heads, ARGS.d_head, device)
    print_table(
        rows,
        "time and peak extra memory of one forward pass (memory: torch allocations, CUDA allocator or CPU profiler)",
    )
    n, t_o, t_f, m_o, m_f = next(r for r in rows if r[0] == 4096) if any(r[0] == 4096 for r in rows) else rows[-1]
    if results.recording() and not ARGS.quick and device.type == "cpu":  # COURSE_RECORD_RESULTS=1: results/01.json
        results.record(
            "01",
            "naive-vs-fused-attention",
            {
                "n": n,
                "time_x": round(t_o / t_f, 2),
                "ours_mib": round(m_o / 2**20, 1),
                "fused_mib": round(m_f / 2**20, 1),
            },
            what=f"our attention vs fused `F.scaled_dot_product_attention`, n = {n}, {ARGS.heads} heads × {ARGS.d_head}, "
            "one forward pass, best of 3",
            figure="{time_x:.1f}× the time, {ours_mib:.0f} MiB vs {fused_mib:.1f} MiB of peak extra memory",
            machine=f"2-core CPU, {torch.get_num_threads()} threads",
            command="`COURSE_RECORD_RESULTS=1 .venv/bin/python benchmarks/attention.py`",
        )
