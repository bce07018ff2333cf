"""LoRA and NF4 costs on a MiniLM-sized block of linear layers: time per training step, stored bytes.

    .venv/bin/python benchmarks/lora.py

Prints one table: for a stack of six 384 -> 1536 -> 384 feed-forward pairs (the linear
layers of MiniLM's six blocks), the time of a forward+backward+Adam step with every
weight trained, with LoRA (r = 4), and with LoRA on an NF4 base (QLoRA), plus the bytes
the frozen weights occupy. Medians of repeated runs; the machine may be shared.
"""

import course_utils  # noqa: F401  (sets OMP_WAIT_POLICY before torch)
import copy
import statistics
import time

import torch
import torch.nn as nn

from course_utils.lora import apply_lora
from course_utils.measure import count_parameters
from course_utils.quant import quantize_linears, stored_bytes


def stack(d=384, hidden=1536, n=6) -> nn.Sequential:
    layers = []
    for _ in range(n):
        layers += [nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d)]
    return nn.Sequential(*layers)


def step_time(model: nn.Module, x: torch.Tensor, repeats: int = 10) -> float:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        model(x).square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:  # skip warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    torch.manual_seed(0)
    base = stack()
    x = torch.randn(16 * 40, 384)  # a batch of 16 passages of 40 tokens
    full = copy.deepcopy(base)
    lora = copy.deepcopy(base)
    frozen_fp32 = stored_bytes(lora)
    apply_lora(lora, [str(i) for i in range(len(base)) if isinstance(base[i], nn.Linear)], r=4, alpha=8)
    qlora = copy.deepcopy(base)
    quantize_linears(qlora)
    frozen_nf4 = stored_bytes(qlora)
    apply_lora(qlora, [str(i) for i in range(len(base)) if isinstance(base[i], nn.Linear)], r=4, alpha=8)
    print(f"{'setup':<22}{'trained':>12}{'frozen MB':>11}{'step ms':>10}")
    for name, model, frozen in (
        ("full fine-tuning", full, 0),
        ("LoRA r=4", lora, frozen_fp32),
        ("QLoRA r=4 (NF4 base)", qlora, frozen_nf4),
    ):
        ms = 1000 * step_time(model, x)
        print(f"{name:<22}{count_parameters(model, trainable_only=True):>12,}{frozen / 2**20:>11.2f}{ms:>10.1f}")


if __name__ == "__main__":
    main()
