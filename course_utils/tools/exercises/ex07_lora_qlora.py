"""Notebook 07's graded checks (LoRA and QLoRA): the references and the known mistakes of each exercise.

The visible part of a test cell works one small example by hand and calls a `..._properties`
check from here; the hidden part calls the full `check_...`. The references are the course's
own modules, on random weights: `course_utils.lora.LoRALinear` for the LoRA layer and the merge,
`course_utils.quant` for absmax and NF4, and a `QuantizedLinear` base (NF4, no double
quantization) inside a `LoRALinear` for the QLoRA layer. Messages describe a hidden input
(`on=`), never print it.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.lora import LoRALinear
from course_utils.quant import (
    QuantizedLinear,
    absmax_dequantize,
    absmax_quantize,
    nf4_code_values,
    nf4_dequantize,
    nf4_quantize,
)
from course_utils.tools.grading import call, expect, expect_close, expect_dtype, expect_equal, expect_shape, forbid

# ---------------------------------------------------------------------------------------------
# Exercise 1: a LoRA layer

# the worked example of the visible test: W = I, b = (0.5, -0.5), r = 2, alpha = 8 (alpha / r = 4),
# A = [[1, 1], [0, 1]], B = [[1, 0], [0, 0]], x = (1, 2): W x + b = (1.5, 1.5), B A x = (3, 0)
LORA_EXAMPLE_MISTAKES = {
    "the offset is not scaled: multiply B A x by alpha / r": torch.tensor([[4.5, 1.5]]),
    "the offset is multiplied by alpha instead of alpha / r": torch.tensor([[25.5, 1.5]]),
    "the scaling is upside down: use alpha / r, not r / alpha": torch.tensor([[2.25, 1.5]]),
    "the base layer's output is missing: add W x + b": torch.tensor([[12.0, 0.0]]),
    "the bias is missing: add b": torch.tensor([[13.0, 2.0]]),
}


def _expect_lora_parameters(layer: nn.Module, in_features: int, out_features: int, r: int, on: str) -> None:
    """A and B are parameters of the right shapes and initialisation, and they are all that trains."""
    A, B = getattr(layer, "A", None), getattr(layer, "B", None)
    expect(
        isinstance(A, nn.Parameter) and isinstance(B, nn.Parameter),
        "self.A and self.B should be nn.Parameter tensors, so the optimizer trains them.",
    )
    expect_shape(B, (out_features, r), "B (out_features, r)")
    expect_shape(A, (r, in_features), "A (r, in_features)")
    expect(bool((B == 0).all()), "B should start at zero, so the adapted layer starts as the pretrained one.")
    expect(
        bool((A != 0).any()),
        "A should start random (kaiming-uniform): with A = 0 and B = 0 no gradient ever reaches them.",
    )
    expect(
        float(A.detach().abs().max()) <= 1 / math.sqrt(in_features) + 1e-6,
        f"A should be initialised with nn.init.kaiming_uniform_(self.A, a=math.sqrt(5)), whose values lie "
        f"within ±1/sqrt(in_features) (on {on}).",
    )
    trainable = {name for name, p in layer.named_parameters() if p.requires_grad}
    expect(
        trainable == {"A", "B"},
        "the base layer should be frozen: set requires_grad to False on its weight and bias, so only A and B train "
        f"(trainable now: {', '.join(sorted(trainable)) or 'nothing'}).",
    )


def _offset_mistakes(base_out, offset, scaling, r, bias) -> dict:
    """Outputs of the usual slips in h = base(x) + (alpha / r) B A x, from its two terms."""
    mistakes = {
        "the offset is not scaled: multiply B A x by alpha / r": base_out + offset,
        "the offset is multiplied by alpha instead of alpha / r": base_out + scaling * r * offset,
        "the scaling is upside down: use alpha / r, not r / alpha": base_out + offset / scaling,
        "the base layer's output is missing: add W x + b": scaling * offset,
    }
    if bias is not None:
        mistakes["the bias is missing: add b"] = base_out - bias + scaling * offset
    return mistakes


def _expect_same_gradients(out, ref_out, layer, ref: LoRALinear, on: str) -> None:
    """The gradients of a loss that weighs every output differently reach A and B as in the reference."""
    expect(
        out.requires_grad,
        "the output carries no gradient: compute the offset from self.A and self.B in forward, "
        "without .detach() or torch.no_grad().",
    )
    weights = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out * weights).sum().backward()
    (ref_out * weights).sum().backward()
    expect(layer.A.grad is not None and layer.B.grad is not None, "no gradient reaches A and B: use them in forward.")
    expect_close(layer.B.grad, ref.lora_B.grad, "the gradient of B", atol=1e-4, rtol=1e-4, on=on)
    expect_close(layer.A.grad, ref.lora_A.grad, "the gradient of A", atol=1e-4, rtol=1e-4, on=on)


def lora_layer_properties(cls) -> None:
    """Visible checks of LoRALayer(base, r, alpha) on a 6 -> 4 layer with r = 2: parameters, shapes, init, frozen base."""
    torch.manual_seed(0)
    layer = call(cls, nn.Linear(6, 4), 2, 8.0, what="LoRALayer(base, r=2, alpha=8)")
    _expect_lora_parameters(layer, 6, 4, 2, "a 6 -> 4 layer with r = 2")


LORA_CASES = [  # (in, out, bias, r, alpha, x shape, what kind of input)
    (5, 7, False, 3, 3.0, (2, 4, 5), "a batch of 2 x 4 inputs to a 5 -> 7 layer without bias"),
    (6, 3, True, 2, 16.0, (1, 6), "one input to a 6 -> 3 layer, alpha / r = 8"),
    (1, 4, True, 1, 2.0, (3, 1), "a layer with one input feature"),
]


def check_lora_layer(cls) -> None:
    """Hidden checks: parameters, output and gradients equal course_utils.lora.LoRALinear's on several shapes."""
    g = torch.Generator().manual_seed(7)
    for in_f, out_f, bias, r, alpha, x_shape, on in LORA_CASES:
        torch.manual_seed(in_f * 10 + out_f)
        base = nn.Linear(in_f, out_f, bias=bias)
        layer = call(cls, base, r, alpha, what=f"LoRALayer(base, r={r}, alpha={alpha:g})")
        _expect_lora_parameters(layer, in_f, out_f, r, on)
        ref = LoRALinear(copy.deepcopy(base), r=r, alpha=alpha)
        with torch.no_grad():
            layer.B.copy_(torch.randn(out_f, r, generator=g))
            ref.lora_A.copy_(layer.A)
            ref.lora_B.copy_(layer.B)
        x = torch.randn(x_shape, generator=g)
        out = call(layer.forward, x, what="LoRALayer.forward")
        ref_out = ref(x)
        A, B, W = layer.A.detach(), layer.B.detach(), base.weight.detach()
        b = None if base.bias is None else base.bias.detach()
        expect_close(
            out.detach(),
            ref_out.detach(),
            "the LoRA output",
            mistakes=_offset_mistakes(F.linear(x, W, b), x @ A.T @ B.T, alpha / r, r, b),
            on=on,
        )
        _expect_same_gradients(out, ref_out, layer, ref, on)


# ---------------------------------------------------------------------------------------------
# Exercise 2: merge

# worked example: W = [[1, 2], [3, 4]], A = [[1, 1], [0, 1]], B = [[1, 0], [0, 2]], alpha = 6, r = 2:
# B A = [[1, 1], [0, 2]], alpha / r = 3, W + 3 B A = [[4, 5], [3, 10]]
MERGE_EXAMPLE_MISTAKES = {
    "merged without the scaling: add (alpha / r) B A, not B A": torch.tensor([[2.0, 3.0], [3.0, 6.0]]),
    "the product is transposed: B A has shape (out, in), like W": torch.tensor([[4.0, 2.0], [6.0, 10.0]]),
    "the product is in the wrong order: B A, not A B": torch.tensor([[4.0, 8.0], [3.0, 10.0]]),
    "the scaling is upside down: alpha / r, not r / alpha": torch.tensor([[4 / 3, 7 / 3], [3.0, 14 / 3]]),
    "the offset is multiplied by alpha instead of alpha / r": torch.tensor([[7.0, 8.0], [3.0, 16.0]]),
    "the offset is subtracted: add it": torch.tensor([[-2.0, -1.0], [3.0, -2.0]]),
}

MERGE_CASES = [  # (out, in, r, alpha, what kind of input)
    (4, 4, 2, 8.0, "a 4 x 4 weight"),
    (3, 5, 2, 1.0, "a 3 x 5 weight (out != in), alpha / r = 0.5"),
    (1, 6, 1, 0.5, "a weight with one output row"),
]


def check_merge_weights(fn) -> None:
    """Hidden checks: W + course_utils.lora's delta_weight on several shapes; the merged layer matches the LoRA one."""
    g = torch.Generator().manual_seed(11)
    for out_f, in_f, r, alpha, on in MERGE_CASES:
        W, A, B = (
            torch.randn(out_f, in_f, generator=g),
            torch.randn(r, in_f, generator=g),
            torch.randn(out_f, r, generator=g),
        )
        with torch.random.fork_rng(devices=[]):
            lora = LoRALinear(nn.Linear(in_f, out_f), r=r, alpha=alpha)
        with torch.no_grad():
            lora.base.weight.copy_(W)
            lora.lora_A.copy_(A)
            lora.lora_B.copy_(B)
        s = alpha / r
        mistakes = {
            "merged without the scaling: add (alpha / r) B A, not B A": W + B @ A,
            "the scaling is upside down: alpha / r, not r / alpha": W + B @ A / s,
            "the offset is multiplied by alpha instead of alpha / r": W + alpha * B @ A,
            "the offset is subtracted: add it": W - s * B @ A,
        }
        if out_f == in_f:
            mistakes["the product is transposed: B A has shape (out, in), like W"] = W + s * (B @ A).T
        merged = call(fn, W, A, B, alpha, r, what="merge_weights")
        expect_dtype(merged, torch.float32, "merge_weights(W, A, B, alpha, r) for float32 inputs")
        expect_close(merged, W + lora.delta_weight().detach(), "the merged weight", mistakes=mistakes, on=on)
        x = torch.randn(4, in_f, generator=g)
        expect_close(
            F.linear(x, merged, lora.base.bias.detach()),
            lora(x).detach(),
            "the merged layer's output vs the unmerged LoRA output",
            on=on,
        )


# ---------------------------------------------------------------------------------------------
# Exercise 4: absmax quantization

# worked example: x = (0.5, -2, 1.3, 0.01, -0.74), max|x| = 2, c = 127 / 2 = 63.5,
# c x = (31.75, -127, 82.55, 0.635, -46.99), q = (32, -127, 83, 1, -47)
ABSMAX_C_MISTAKES = {
    "c uses 255 (the unsigned range): int8 holds -127..127, so use 127": torch.tensor(127.5),
    "c is upside down: c = 127 / max|x|, not max|x| / 127": torch.tensor(2.0 / 127),
    "c uses max(x) instead of max(|x|): a negative value can have the largest magnitude": torch.tensor(127 / 1.3),
}
ABSMAX_Q_MISTAKES = {
    "the values are truncated, not rounded: apply torch.round before .to(torch.int8)": torch.tensor(
        [31, -127, 82, 0, -46], dtype=torch.int32
    ),
}
ABSMAX_DEQUANT_MISTAKES = {
    "dequantization multiplies by c; divide by it": torch.tensor([32.0, -127.0, 83.0, 1.0, -47.0]) * 63.5,
}


def _absmax_inputs() -> list[tuple[torch.Tensor, str]]:
    g = torch.Generator().manual_seed(3)
    x2 = torch.randn(4, 6, generator=g) * 3
    x2[1, 2] = 9.0
    x3 = torch.randn(7, generator=g)
    x3[4] = -4.0
    return [
        (x2, "a 4 x 6 tensor whose largest magnitude is positive"),
        (x3, "a tensor whose largest magnitude is negative"),
        (torch.randn(2, 3, 4, generator=g) * 1e-3, "a 3-d tensor of small values"),
        (torch.tensor([-0.3]), "a tensor of one value"),
    ]


def check_absmax(quantize, dequantize) -> None:
    """Hidden checks: quantize_absmax and dequantize_absmax equal course_utils.quant's on several shapes and scales."""
    for x, on in _absmax_inputs():
        out = call(quantize, x, what="quantize_absmax")
        expect(isinstance(out, tuple) and len(out) == 2, "quantize_absmax should return a pair (q, c).")
        q, c = out
        q_ref, c_ref = absmax_quantize(x)
        expect_dtype(q, torch.int8, f"q (on {on})")
        expect_shape(q, tuple(x.shape), "q, which has x's shape")
        absmax = x.abs().max()
        expect_close(
            torch.as_tensor(c, dtype=torch.float32),
            c_ref,
            "the constant c",
            rtol=1e-4,
            mistakes={
                "c uses 255 (the unsigned range): int8 holds -127..127, so use 127": 255 / absmax,
                "c is upside down: c = 127 / max|x|, not max|x| / 127": absmax / 127,
                "c uses max(x) instead of max(|x|): a negative value can have the largest magnitude": 127 / x.max(),
            },
            on=on,
        )
        expect_equal(
            q.to(torch.int32),
            q_ref.to(torch.int32),
            "q",
            mistakes={
                "the values are truncated, not rounded: apply torch.round before .to(torch.int8)": (c_ref * x)
                .to(torch.int8)
                .to(torch.int32)
            },
            on=on,
        )
        for scale, kind in ((c_ref, "a 0-d tensor"), (float(c_ref), "a float")):
            x_hat = call(dequantize, q_ref, scale, what="dequantize_absmax")
            expect_dtype(x_hat, torch.float32, f"dequantize_absmax(q, c) with c {kind}")
            expect_close(
                x_hat,
                absmax_dequantize(q_ref, c_ref),
                f"dequantize_absmax(q, c) with c {kind}",
                mistakes={"dequantization multiplies by c; divide by it": q_ref.float() * c_ref},
                on=on,
            )
        err = (call(dequantize, q, c, what="dequantize_absmax") - x).abs().max()
        expect(
            bool(err <= absmax / 254 + 1e-6),
            f"the round-trip error should be at most half a step, max|x| / 254 (on {on}).",
        )


# ---------------------------------------------------------------------------------------------
# Exercise 5: a QLoRA layer

QLORA_FORBIDDEN = (nf4_quantize, nf4_dequantize, QuantizedLinear, LoRALinear)
QLORA_REASON = "build the layer yourself from nf4_code_values() and the LoRA pieces of exercise 1"
NF4_LEVEL_12 = 0.44070982933044434  # the NF4 level nearest to 0.5

# the worked example: W = [[4, 0], [1, -2]], blocks of 2: [4, 0] (absmax 4) and [1, -2] (absmax 2)
QLORA_WEIGHT_EXAMPLE_MISTAKES = {
    "one constant for the whole matrix instead of one per block": torch.tensor(
        [[4.0, 0.0], [4 * 0.24611230194568634, -4 * 0.5250730514526367]]
    ),
    "the blocks run down the columns: flatten W row by row (W.reshape(-1)), not W.T": torch.tensor(
        [[4.0, 0.0], [4 * 0.24611230194568634, -2.0]]
    ),
    "the levels are not multiplied by their block's absmax": torch.tensor([[1.0, 0.0], [NF4_LEVEL_12, -1.0]]),
    "the nearest level is picked for the value, not for value / absmax": torch.tensor([[4.0, 0.0], [2.0, -2.0]]),
    "the weight is not quantized: dequantized_weight returns the full-precision W": torch.tensor(
        [[4.0, 0.0], [1.0, -2.0]]
    ),
}
# ... then b = (1, -1), r = 1, alpha = 2, A = [[1, 1]], B = [[0.5], [0]], x = (1, 1):
# W^ x + b = (5, 2 * 0.4407 - 3), B A x = (1, 0), alpha / r = 2
QLORA_OUTPUT_EXAMPLE_MISTAKES = {
    "the base uses the full-precision weight: use the dequantized 4-bit one": torch.tensor([[7.0, -2.0]]),
    "the offset is not scaled: multiply B A x by alpha / r": torch.tensor([[6.0, 2 * NF4_LEVEL_12 - 3]]),
    "the scaling is upside down: use alpha / r, not r / alpha": torch.tensor([[5.5, 2 * NF4_LEVEL_12 - 3]]),
    "the bias is missing: add b": torch.tensor([[6.0, 2 * NF4_LEVEL_12 - 2]]),
    "the base layer's output is missing: add W x + b": torch.tensor([[2.0, 0.0]]),
}


def _nf4_roundtrip(w: torch.Tensor, blocksize: int) -> torch.Tensor:
    return nf4_dequantize(*nf4_quantize(w, blocksize), w.shape)


def _weight_mistakes(w: torch.Tensor, blocksize: int) -> dict:
    """Dequantized weights of the usual slips in blockwise NF4, from course_utils.quant's pieces."""
    codes, absmax = nf4_quantize(w, blocksize)
    levels = nf4_code_values()
    blocks = F.pad(w.reshape(-1), (0, (-w.numel()) % blocksize)).view(-1, blocksize)
    raw = torch.bucketize(blocks, (levels[1:] + levels[:-1]) / 2)  # nearest level to the value itself
    mistakes = {
        "one constant for the whole matrix instead of one per block": _nf4_roundtrip(w, w.numel()),
        "the blocks run down the columns: flatten W row by row (W.reshape(-1)), not W.T": _nf4_roundtrip(
            w.T.contiguous(), blocksize
        ).T,
        "the levels are not multiplied by their block's absmax": nf4_dequantize(
            codes, torch.ones_like(absmax), w.shape
        ),
        "the nearest level is picked for the value, not for value / absmax": nf4_dequantize(raw, absmax, w.shape),
        "the weight is not quantized: dequantized_weight returns the full-precision W": w,
    }
    if w.shape[0] == w.shape[1]:
        mistakes["the dequantized weight is transposed: it has W's shape (out, in)"] = _nf4_roundtrip(w, blocksize).T
    return mistakes


def _expect_4bit_storage(layer: nn.Module, in_features: int, out_features: int, blocksize: int, on: str) -> None:
    """Buffers `codes` (uint8, 0..15, one per value) and `absmax` (float32, one per block); no fp32 copy of W."""
    n, n_blocks = in_features * out_features, math.ceil(in_features * out_features / blocksize)
    buffers = dict(layer.named_buffers())
    expect(
        "codes" in buffers and "absmax" in buffers,
        "store the quantized weight as buffers: self.register_buffer('codes', ...) and self.register_buffer('absmax', ...).",
    )
    codes, absmax = buffers["codes"], buffers["absmax"]
    expect_dtype(codes, torch.uint8, "self.codes")
    expect(
        codes.numel() == n_blocks * blocksize and int(codes.max()) <= 15,
        f"self.codes should hold one level index (0..15) per value, padding included: {n_blocks} blocks of "
        f"{blocksize} (on {on}).",
    )
    expect_dtype(absmax, torch.float32, "self.absmax")
    expect_shape(absmax.reshape(-1), (n_blocks,), f"self.absmax, one constant per block of {blocksize} (flattened)")
    kept = [
        name
        for name, t in layer.state_dict().items()
        if t.is_floating_point() and t.numel() >= n and name not in ("A", "B", "bias")
    ]
    expect(
        not kept,
        f"the layer keeps a full-precision copy of the weight ({', '.join(kept)}): store only the codes, "
        "the block constants and the bias, or the 4 bits save nothing.",
    )
    bias = getattr(layer, "bias", None)
    expect(bias is None or not bias.requires_grad, "the bias should stay frozen: requires_grad False.")


def qlora_linear_properties(cls) -> None:
    """Visible checks of QLoRALinear(base, r=2, alpha=4, blocksize=8) on a 6 -> 4 layer: storage, A and B, frozen rest."""
    torch.manual_seed(0)
    with forbid(cls.__init__, QLORA_FORBIDDEN, QLORA_REASON):
        layer = call(cls, nn.Linear(6, 4), 2, 4.0, 8, what="QLoRALinear(base, r=2, alpha=4, blocksize=8)")
        weight = call(layer.dequantized_weight, what="QLoRALinear.dequantized_weight")
    _expect_4bit_storage(layer, 6, 4, 8, "a 6 -> 4 layer in blocks of 8")
    _expect_lora_parameters(layer, 6, 4, 2, "a 6 -> 4 layer with r = 2")
    expect_dtype(weight, torch.float32, "dequantized_weight()")
    expect_shape(weight, (4, 6), "dequantized_weight(), like W (out_features, in_features)")


def _qlora_inputs():
    """(base, r, alpha, blocksize or None for the default, x shape, what kind of input)."""
    torch.manual_seed(5)
    spread = nn.Linear(8, 4)
    with torch.no_grad():
        spread.weight.mul_(torch.tensor([[1e-3], [0.0], [1.0], [1e3]]))  # one block per row
    return [
        (nn.Linear(20, 12), 4, 8.0, 16, (3, 5, 20), "a batch of 3 x 5 inputs, blocks across rows"),
        (nn.Linear(7, 5, bias=False), 2, 6.0, 8, (4, 7), "a layer without bias, last block padded"),
        (spread, 1, 2.0, 8, (2, 8), "blocks of very different scales, one all zero"),
        (nn.Linear(16, 16), 2, 16.0, None, (1, 16), "a 16 x 16 layer, default blocks of 64"),
    ]


def check_qlora_linear(cls) -> None:
    """Hidden checks: storage, dequantized weight, output and gradients equal LoRALinear(QuantizedLinear) on random weights."""
    g = torch.Generator().manual_seed(13)
    for base, r, alpha, blocksize, x_shape, on in _qlora_inputs():
        x = torch.randn(x_shape, generator=g)
        bs = 64 if blocksize is None else blocksize
        args = (base, r, alpha) if blocksize is None else (base, r, alpha, blocksize)
        with forbid(cls.__init__, QLORA_FORBIDDEN, QLORA_REASON):
            layer = call(cls, *args, what="QLoRALinear(base, r, alpha, blocksize)")
            weight = call(layer.dequantized_weight, what="QLoRALinear.dequantized_weight")
        _expect_4bit_storage(layer, base.in_features, base.out_features, bs, on)
        _expect_lora_parameters(layer, base.in_features, base.out_features, r, on)
        ref = LoRALinear(QuantizedLinear.from_linear(copy.deepcopy(base), "nf4", bs, double_quant=False), r, alpha)
        w, b = base.weight.detach(), None if base.bias is None else base.bias.detach()
        w_hat = ref.base.dequantized_weight()
        expect_dtype(weight, torch.float32, "dequantized_weight()")
        expect_close(weight, w_hat, "the dequantized weight", mistakes=_weight_mistakes(w, bs), on=on)
        with torch.no_grad():
            layer.B.copy_(torch.randn(base.out_features, r, generator=g))
            ref.lora_A.copy_(layer.A)
            ref.lora_B.copy_(layer.B)
        with forbid(cls.__init__, QLORA_FORBIDDEN, QLORA_REASON):
            out = call(layer.forward, x, what="QLoRALinear.forward")
        ref_out = ref(x)
        offset = x @ layer.A.detach().T @ layer.B.detach().T
        mistakes = _offset_mistakes(F.linear(x, w_hat, b), offset, alpha / r, r, b)
        mistakes["the base uses the full-precision weight: use the dequantized 4-bit one"] = (
            F.linear(x, w, b) + alpha / r * offset
        )
        expect_dtype(out, torch.float32, "the QLoRA output")
        expect_close(out.detach(), ref_out.detach(), "the QLoRA output", mistakes=mistakes, on=on)
        _expect_same_gradients(out, ref_out, layer, ref, on)
