"""LoRA (Hu et al. 2021): fine-tune a frozen layer through a low-rank offset.

    h = W x + (alpha / r) * B A x,    W: (out, in) frozen,  A: (r, in),  B: (out, r)

A starts random (kaiming-uniform, as `nn.Linear` and `peft` do) and B at zero, so the
adapted model starts exactly as the pretrained one and the first gradient flows into B.
Only A and B train: r (in + out) numbers instead of in * out. After training, B A can be
merged into W, and the model is as fast as before.

Concessions, on purpose:
- One adapter per layer, no adapter switching or bias training (peft offers both).
- The names `lora_A` and `lora_B` hold the matrices themselves (peft wraps them in
  `nn.Linear`s of the same shapes), so copying between the two is `peft.weight = ours`.
- Works on an `nn.Linear` or on a `course_utils.quant.QuantizedLinear` base (QLoRA);
  merging into a quantized base returns a full-precision `nn.Linear`.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterable

import torch
import torch.nn as nn

from course_utils.checks import check_int, check_number
from course_utils.quant import QuantizedLinear

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "lora_param_groups"]


def _check_rank_alpha(r, alpha, fn: str) -> None:
    """r: the rank, an int >= 1; alpha: the scale numerator, a number > 0."""
    check_int(fn, "r", r)
    check_number(fn, "alpha", alpha, low=0, low_open=True)


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank offset: h = base(x) + (alpha/r) B A x.

    rslora=True scales by alpha / sqrt(r) instead (rank-stabilised LoRA, Kalajdzievski 2023; peft's
    `use_rslora`): with Adam the offset's early growth is then the same at every rank, where
    alpha / r makes it shrink like 1 / sqrt(r) (notebook 07 measures both).
    base: nn.Linear or QuantizedLinear with in_features = n, out_features = m.
    Parameters: lora_A (r, n), lora_B (m, r); the base's parameters get requires_grad=False.
    forward: (..., n) -> (..., m).
    >>> layer = LoRALinear(nn.Linear(10, 6), r=2, alpha=4)
    >>> sum(p.numel() for p in layer.parameters() if p.requires_grad)  # r (m + n) = 2 * 16
    32
    """

    def __init__(self, base: nn.Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.0, rslora: bool = False):
        super().__init__()
        if not isinstance(base, (nn.Linear, QuantizedLinear)):
            raise TypeError(f"LoRALinear: base must be an nn.Linear or a QuantizedLinear, got {type(base).__name__}")
        _check_rank_alpha(r, alpha, "LoRALinear")
        if r > min(base.in_features, base.out_features):
            raise ValueError(
                f"LoRALinear: r={r} exceeds min(in_features, out_features) = "
                f"{min(base.in_features, base.out_features)}; a low-rank offset needs r smaller"
            )
        check_number("LoRALinear", "dropout", dropout, low=0, high=1, high_open=True)
        self.base, self.r, self.alpha = base, r, alpha
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        for p in base.parameters():
            p.requires_grad_(False)
        ref = next(itertools.chain(base.parameters(), base.buffers()))
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=ref.device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=ref.device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # what nn.Linear and peft do
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., n) -> (..., m)
        low = self.dropout(x) @ self.lora_A.to(x.dtype).T  # (..., r): the bottleneck
        return self.base(x) + self.scaling * (low @ self.lora_B.to(x.dtype).T)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight W + (alpha/r) B A (out, in), differentiable in A and B.

        For code that reads `.weight` instead of calling the layer, such as the fused paths of
        nn.MultiheadAttention (out_proj) and nn.TransformerEncoderLayer in inference."""
        base = self.base.dequantized_weight() if isinstance(self.base, QuantizedLinear) else self.base.weight
        return base + self.delta_weight().to(base.dtype)

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def delta_weight(self) -> torch.Tensor:
        """The offset the adapter adds to W: (alpha / r) B A, shape (m, n)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def merge(self) -> nn.Linear:
        """A plain nn.Linear with weight W + (alpha/r) B A: same outputs, no extra matmul."""
        base = self.base
        weight = (base.dequantized_weight() if isinstance(base, QuantizedLinear) else base.weight).detach()
        merged = nn.Linear(
            self.in_features, self.out_features, bias=base.bias is not None, device=weight.device, dtype=weight.dtype
        )
        with torch.no_grad():
            merged.weight.copy_(weight + self.delta_weight().to(weight.dtype))
            if base.bias is not None:
                merged.bias.copy_(base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}"


def _matches(name: str, targets: Iterable[str]) -> bool:
    """peft's rule for target_modules: the full name, or its last dotted components. 'layer.0.query' ~ 'query'."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_lora(
    model: nn.Module,
    targets: Iterable[str] | str,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    freeze: bool = True,
    rslora: bool = False,
) -> list[str]:
    """Wrap every linear layer whose name matches `targets` in a LoRALinear, in place.

    targets: module names or name suffixes, e.g. ["query", "value"] as in peft's target_modules.
    freeze: make every other parameter of the model non-trainable (what peft does); unfreeze a
    new task head yourself afterwards. rslora: scale by alpha / sqrt(r) (see LoRALinear).
    Returns the wrapped module names.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"apply_lora: model must be an nn.Module, got {type(model).__name__}")
    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise ValueError("apply_lora: targets is empty; name the linear layers to adapt, e.g. ['query', 'value']")
    _check_rank_alpha(r, alpha, "apply_lora")
    names = [
        n for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantizedLinear)) and _matches(n, targets)
    ]
    if not names:
        linears = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantizedLinear))]
        raise ValueError(
            f"apply_lora: no linear layer matches targets {targets}; linear layers are named like "
            f"{linears[:6]}{' ...' if len(linears) > 6 else ''}"
        )
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), r, alpha, dropout, rslora=rslora))
    return names


def merge_lora(model: nn.Module) -> list[str]:
    """Replace every LoRALinear in `model` by its merged nn.Linear, in place; returns their names."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"merge_lora: model must be an nn.Module, got {type(model).__name__}")
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        _replace(model, name, model.get_submodule(name).merge())
    return names


def lora_param_groups(model: nn.Module, lr: float, b_ratio: float = 1.0) -> list[dict]:
    """Optimizer parameter groups: every `lora_B` at lr * b_ratio, every other trainable tensor at lr.

    LoRA+ (Hayou, Ghosh and Yu, 2024): B starts at zero and A is random, so with one learning
    rate B moves too slowly for the adapter to learn features efficiently; giving B a larger rate
    (b_ratio ~ 4 to 16) trains faster at the same cost. b_ratio = 1 is plain LoRA.

    >>> layer = LoRALinear(nn.Linear(4, 3), r=2, alpha=4)
    >>> [(len(g["params"]), g["lr"]) for g in lora_param_groups(layer, 1e-3, b_ratio=8)]
    [(1, 0.001), (1, 0.008)]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"lora_param_groups: model must be an nn.Module, got {type(model).__name__}")
    check_number("lora_param_groups", "lr", lr, low=0, low_open=True)
    check_number("lora_param_groups", "b_ratio", b_ratio, low=0, low_open=True)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    b = [p for n, p in named if n.split(".")[-1] == "lora_B"]
    rest = [p for n, p in named if n.split(".")[-1] != "lora_B"]
    if not named:
        raise ValueError("lora_param_groups: the model has no trainable parameters; call apply_lora first")
    return [g for g in ({"params": rest, "lr": lr}, {"params": b, "lr": lr * b_ratio}) if g["params"]]
