"""Quantization from scratch: absmax int8, blockwise constants, 4-bit NormalFloat (NF4), double quantization.

The idea (lecture notes, Deep Learning ch. 7; Dettmers et al. 2022/2023): store each weight as a small integer plus a
shared floating-point constant, and turn it back into a float only when it is used.

    absmax int8:   c = 127 / absmax(X),  X_int8 = round(c * X),  dequant: X_int8 / c
    blockwise:     one constant c per block of 64 values, so one outlier only hurts its block
    NF4:           16 code values at the quantiles of N(0, 1), scaled to [-1, 1]; each value is
                   stored as the 4-bit index of its nearest code (two indices per byte)
    double quant:  the per-block fp32 constants are themselves quantized to int8 (blocks of 256)

Concessions, on purpose:
- Everything is plain PyTorch and runs on the CPU; dequantization materialises the whole
  fp32 weight in `QuantizedLinear.forward` (bitsandbytes fuses it into the matmul on a GPU).
- The double-quantized constants use blockwise absmax int8 after subtracting their mean;
  QLoRA uses an 8-bit float for them. The memory is the same (8 bits per constant).
- `scale` is the lecture's quantization constant c = 127/absmax (multiply to quantize, divide
  to dequantize), not its inverse.

Why this file is long: the four formats build on one another (blockwise reuses absmax, NF4
reuses the blocks, double quantization quantizes NF4's constants), and the two frozen layers at
the end (`QuantizedLinear`, `QuantizedEmbedding`) are the only readers of the packed formats;
split apart, each half would import every private helper of the other.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.checks import check_choice, check_int, check_tensor

# The NF4 code values published with QLoRA (Dettmers et al. 2023, appendix E) and used by
# bitsandbytes (`bnb.functional.get_4bit_type("nf4")`). `nf4_code_values()` recomputes them.
NF4_PUBLISHED = (
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
)


def _check_weights(fn: str, name: str, x) -> None:
    """A non-empty floating-point tensor: something there is to quantize."""
    check_tensor(fn, name, x, dtype="float")
    if x.numel() == 0:
        raise ValueError(f"{fn}: {name} is empty (shape {tuple(x.shape)}); nothing to quantize")


def _safe_scale(absmax: torch.Tensor, levels: float) -> torch.Tensor:
    """levels / absmax, with 1.0 where absmax is 0 (an all-zero block quantizes to zeros)."""
    return torch.where(absmax > 0, levels / absmax.clamp_min(torch.finfo(absmax.dtype).tiny), torch.ones_like(absmax))


# ---------------------------------------------------------------------------------------------
# absmax int8, one constant for the whole tensor


def absmax_quantize(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize `x` to int8 with one constant: c = 127 / max|x|, q = round(c * x).

    Returns (q, scale) with q an int8 tensor of x's shape and scale = c, a float32 scalar.
    >>> q, c = absmax_quantize(torch.tensor([0.5, -1.0, 0.25])); q.tolist(), round(c.item(), 1)
    ([64, -127, 32], 127.0)
    """
    _check_weights("absmax_quantize", "x", x)
    x = x.float()
    scale = _safe_scale(x.abs().max(), 127.0)
    q = torch.round(scale * x).clamp(-127, 127).to(torch.int8)
    return q, scale


def absmax_dequantize(q: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Back to float32: q / scale (the inverse of `absmax_quantize`, up to rounding).

    >>> [round(v, 6) for v in absmax_dequantize(torch.tensor([64, -127], dtype=torch.int8), 127.0).tolist()]
    [0.503937, -1.0]
    """
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        raise TypeError(
            f"absmax_dequantize: q must be an int8 tensor, got "
            f"{q.dtype if isinstance(q, torch.Tensor) else type(q).__name__}"
        )
    return q.float() / torch.as_tensor(scale, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# blockwise absmax int8: one constant per block of `blocksize` consecutive values


def _blocks(x: torch.Tensor, blocksize: int) -> torch.Tensor:
    """Flatten and zero-pad x to (n_blocks, blocksize). [1..5], 2 -> [[1, 2], [3, 4], [5, 0]]."""
    flat = x.reshape(-1)
    pad = (-flat.numel()) % blocksize
    return F.pad(flat, (0, pad)).view(-1, blocksize)


def blockwise_quantize(x: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax int8 per block of `blocksize` consecutive values (row-major order).

    Returns (q, scales): q int8 with x's shape, scales float32 (n_blocks,) with
    n_blocks = ceil(x.numel() / blocksize). An outlier now only coarsens its own block.
    """
    _check_weights("blockwise_quantize", "x", x)
    check_int("blockwise_quantize", "blocksize", blocksize)
    blocks = _blocks(x.float(), blocksize)  # (n_blocks, blocksize)
    scales = _safe_scale(blocks.abs().amax(dim=1), 127.0)  # (n_blocks,)
    q = torch.round(blocks * scales[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(-1)[: x.numel()].view(x.shape), scales


def blockwise_dequantize(q: torch.Tensor, scales: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """Inverse of `blockwise_quantize`: each block divided by its own constant, float32, q's shape."""
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        raise TypeError("blockwise_dequantize: q must be an int8 tensor from blockwise_quantize")
    check_int("blockwise_dequantize", "blocksize", blocksize)
    n_blocks = math.ceil(q.numel() / blocksize)
    if scales.numel() != n_blocks:
        raise ValueError(
            f"blockwise_dequantize: {q.numel()} values in blocks of {blocksize} need {n_blocks} "
            f"scales, got {scales.numel()}; was the same blocksize used to quantize?"
        )
    x = _blocks(q.float(), blocksize) / scales.float().view(-1, 1)
    return x.reshape(-1)[: q.numel()].view(q.shape)


# ---------------------------------------------------------------------------------------------
# NF4: 16 code values at the quantiles of a standard normal


def nf4_code_values() -> torch.Tensor:
    """The 16 NF4 code values, recomputed as in QLoRA: quantiles of N(0, 1), normalised to [-1, 1].

    Eight non-negative and seven negative quantiles (plus an exact 0) so that zero is
    represented exactly. The outermost quantile uses probability
    delta = (1 - 1/(2*15) + 1 - 1/(2*16)) / 2 = 0.9677 instead of 1 (whose quantile is inf).
    Matches NF4_PUBLISHED to ~1e-7 (float32).
    """
    delta = 0.5 * ((1 - 1 / 30) + (1 - 1 / 32))
    pos = torch.special.ndtri(torch.linspace(delta, 0.5, 9, dtype=torch.float64)[:-1])  # 8 values > 0
    neg = -torch.special.ndtri(torch.linspace(delta, 0.5, 8, dtype=torch.float64)[:-1])  # 7 values < 0
    values = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values
    return (values / values.max()).float()


_NF4 = None


def _nf4() -> torch.Tensor:
    global _NF4
    if _NF4 is None:
        _NF4 = nf4_code_values()
    return _NF4


def nf4_quantize(x: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """NF4 per block: divide each block by its absmax (now in [-1, 1]), take the nearest code index.

    Returns (codes, absmax): codes uint8 in 0..15, flat (n_blocks * blocksize,), zero-padded;
    absmax float32 (n_blocks,). Pack two codes per byte with `pack_4bit`.
    """
    _check_weights("nf4_quantize", "x", x)
    check_int("nf4_quantize", "blocksize", blocksize)
    blocks = _blocks(x.float(), blocksize)  # (n_blocks, blocksize)
    absmax = blocks.abs().amax(dim=1)  # (n_blocks,)
    normed = blocks * _safe_scale(absmax, 1.0)[:, None]  # in [-1, 1]
    code = _nf4()
    midpoints = (code[1:] + code[:-1]) / 2  # 15 decision boundaries
    codes = torch.bucketize(normed, midpoints).to(torch.uint8)  # nearest code index
    return codes.reshape(-1), absmax


def nf4_dequantize(codes: torch.Tensor, absmax: torch.Tensor, shape: tuple | torch.Size) -> torch.Tensor:
    """Code index -> code value -> times its block's absmax; float32 of `shape`."""
    n_blocks = absmax.numel()
    values = _nf4()[codes.long()].view(n_blocks, -1) * absmax.float().view(-1, 1)
    n = math.prod(shape)
    if values.numel() < n:
        raise ValueError(f"nf4_dequantize: {values.numel()} codes cannot fill shape {tuple(shape)}")
    return values.reshape(-1)[:n].view(shape)


def pack_4bit(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte (first code in the high nibble). [1, 2, 15] -> [0x12, 0xF0]."""
    if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8:
        raise TypeError("pack_4bit: codes must be a uint8 tensor of values 0..15")
    if codes.numel() and int(codes.max()) > 15:
        raise ValueError(f"pack_4bit: codes must lie in 0..15, got a maximum of {int(codes.max())}")
    flat = F.pad(codes.reshape(-1), (0, codes.numel() % 2))
    return (flat[0::2] << 4) | flat[1::2]


def unpack_4bit(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of `pack_4bit`: the first `n` codes, uint8."""
    out = torch.stack([packed >> 4, packed & 0xF], dim=1).reshape(-1)
    return out[:n]


# ---------------------------------------------------------------------------------------------
# double quantization: quantize the per-block constants too


def double_quantize(absmax: torch.Tensor, blocksize: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize fp32 block constants to int8: subtract their mean, then blockwise absmax (blocks of 256).

    The constants are all positive; centring them first uses the int8 range on both sides.
    Returns (q int8 (n,), scales float32 (ceil(n / blocksize),), offset float32 scalar).
    """
    _check_weights("double_quantize", "absmax", absmax)
    offset = absmax.float().mean()
    q, scales = blockwise_quantize(absmax.float() - offset, blocksize)
    return q, scales, offset


def double_dequantize(
    q: torch.Tensor, scales: torch.Tensor, offset: torch.Tensor, blocksize: int = 256
) -> torch.Tensor:
    """Inverse of `double_quantize`: the fp32 block constants, approximately."""
    return blockwise_dequantize(q, scales, blocksize) + offset


def bits_per_parameter(
    bits: int = 4, blocksize: int = 64, double_quant: bool = True, dq_blocksize: int = 256, const_bits: int = 32
) -> float:
    """Storage per weight in bits, constants included.

    4-bit, blocks of 64, fp32 constants: 4 + 32/64 = 4.5 bits. With double quantization the
    constant costs 8 bits plus a 32-bit constant per 256 blocks: 4 + 8/64 + 32/(64*256) = 4.127.
    >>> round(bits_per_parameter(4, 64, double_quant=False), 3), round(bits_per_parameter(4, 64), 3)
    (4.5, 4.127)
    """
    for name, v in (
        ("bits", bits),
        ("blocksize", blocksize),
        ("dq_blocksize", dq_blocksize),
        ("const_bits", const_bits),
    ):
        check_int("bits_per_parameter", name, v)
    if not double_quant:
        return bits + const_bits / blocksize
    return bits + 8 / blocksize + const_bits / (blocksize * dq_blocksize)


# ---------------------------------------------------------------------------------------------
# a Linear layer that stores quantized weights and dequantizes them on the fly


def _store_block_absmax(module: nn.Module, absmax: torch.Tensor, double_quant: bool, dq_blocksize: int) -> None:
    """Register the per-block constants as buffers: fp32 `absmax`, or (double quantization) int8
    `absmax_q` + fp32 `absmax_scales` + `absmax_offset`. `_read_block_absmax` undoes it."""
    if double_quant:
        q, s, off = double_quantize(absmax, dq_blocksize)
        module.register_buffer("absmax_q", q)
        module.register_buffer("absmax_scales", s)
        module.register_buffer("absmax_offset", off)
    else:
        module.register_buffer("absmax", absmax.float())


def _read_block_absmax(module: nn.Module) -> torch.Tensor:
    """The per-block constants (n_blocks,) stored by `_store_block_absmax`, dequantized if need be."""
    if module.double_quant:
        return double_dequantize(module.absmax_q, module.absmax_scales, module.absmax_offset, module.dq_blocksize)
    return module.absmax


class QuantizedLinear(nn.Module):
    """A frozen nn.Linear whose weight is stored quantized ("nf4": packed 4-bit codes, or "int8").

    Build it with `QuantizedLinear.from_linear(linear, fmt="nf4", blocksize=64, double_quant=True)`.
    Stored buffers: `codes` (uint8, two NF4 codes per byte; int8 for fmt="int8") and the block
    constants, either fp32 `absmax` or, with double quantization, int8 `absmax_q` + fp32
    `absmax_scales` + `absmax_offset`. The bias stays fp32. forward(x): (..., in) -> (..., out),
    with the weight dequantized to x's dtype for this call only. Nothing here is trainable.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        fmt: str = "nf4",
        blocksize: int = 64,
        double_quant: bool = True,
        dq_blocksize: int = 256,
    ):
        super().__init__()
        check_choice("QuantizedLinear", "fmt", fmt, ("nf4", "int8"))
        check_int("QuantizedLinear", "blocksize", blocksize)
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.blocksize, self.double_quant, self.dq_blocksize = fmt, blocksize, double_quant, dq_blocksize
        self.bias = None

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        fmt: str = "nf4",
        blocksize: int = 64,
        double_quant: bool = True,
        dq_blocksize: int = 256,
    ) -> "QuantizedLinear":
        """Quantize `linear`'s weight (out, in); keep its bias in fp32 (frozen)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"QuantizedLinear.from_linear: linear must be an nn.Linear, got {type(linear).__name__}")
        self = cls(linear.in_features, linear.out_features, fmt, blocksize, double_quant, dq_blocksize)
        w = linear.weight.detach()
        if fmt == "nf4":
            codes, absmax = nf4_quantize(w, blocksize)
            self.register_buffer("codes", pack_4bit(codes))
        else:
            q, _ = blockwise_quantize(w, blocksize)
            self.register_buffer("codes", q.reshape(-1))
            absmax = _blocks(w.float(), blocksize).abs().amax(dim=1)  # stored as absmax for both formats
        _store_block_absmax(self, absmax, double_quant, dq_blocksize)
        if linear.bias is not None:
            self.bias = nn.Parameter(linear.bias.detach().float().clone(), requires_grad=False)
        return self

    def block_absmax(self) -> torch.Tensor:
        """The per-block constants (n_blocks,), dequantized if they were double-quantized."""
        return _read_block_absmax(self)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight (out, in) rebuilt from codes and constants."""
        shape = (self.out_features, self.in_features)
        absmax = self.block_absmax()
        if self.fmt == "nf4":
            n = absmax.numel() * self.blocksize
            w = nf4_dequantize(unpack_4bit(self.codes, n), absmax, shape)
        else:
            w = blockwise_dequantize(self.codes.view(shape), _safe_scale(absmax, 127.0), self.blocksize)
        return w.to(dtype)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight (out, in), for code that reads `.weight` (e.g. nn.MultiheadAttention)."""
        return self.dequantized_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return F.linear(x, self.dequantized_weight(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def weight_nbytes(self) -> int:
        """Bytes actually stored for the weight: codes + constants (bias not included)."""
        return sum(b.numel() * b.element_size() for name, b in self.named_buffers())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.fmt}, "
            f"blocksize={self.blocksize}, double_quant={self.double_quant}"
        )


class QuantizedEmbedding(nn.Module):
    """A frozen nn.Embedding stored as NF4 codes (blocks of `blocksize` along each row).

    With embedding_dim divisible by blocksize every row is made of whole blocks, so a lookup
    dequantizes only the rows it needs. forward(ids): (...) -> (..., embedding_dim).
    """

    def __init__(
        self, embedding: nn.Embedding, blocksize: int = 64, double_quant: bool = True, dq_blocksize: int = 256
    ):
        super().__init__()
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"QuantizedEmbedding: embedding must be an nn.Embedding, got {type(embedding).__name__}")
        check_int("QuantizedEmbedding", "blocksize", blocksize)
        n, d = embedding.weight.shape
        if d % blocksize or blocksize % 2:
            raise ValueError(
                f"QuantizedEmbedding: embedding_dim {d} must be a multiple of an even blocksize, got {blocksize}"
            )
        self.num_embeddings, self.embedding_dim, self.blocksize = n, d, blocksize
        self.double_quant, self.dq_blocksize, self.padding_idx = double_quant, dq_blocksize, embedding.padding_idx
        codes, absmax = nf4_quantize(embedding.weight.detach(), blocksize)
        self.register_buffer("codes", pack_4bit(codes).view(n, d // 2))  # (n, d/2): two codes per byte
        _store_block_absmax(self, absmax, double_quant, dq_blocksize)

    def block_absmax(self) -> torch.Tensor:
        """(num_embeddings, embedding_dim // blocksize) per-block constants."""
        return _read_block_absmax(self).view(self.num_embeddings, -1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (...) -> (..., d)
        rows = self.codes[ids.reshape(-1)]  # (N, d/2) packed
        codes = torch.stack([rows >> 4, rows & 0xF], dim=-1).view(rows.shape[0], -1)  # (N, d)
        values = _nf4()[codes.long()].view(rows.shape[0], -1, self.blocksize)  # (N, d/bs, bs)
        values = values * self.block_absmax()[ids.reshape(-1)][..., None]
        return values.view(*ids.shape, self.embedding_dim)

    @property
    def weight(self) -> torch.Tensor:
        """The whole table, dequantized (for code that reads `.weight`)."""
        return self(torch.arange(self.num_embeddings, device=self.codes.device))

    def weight_nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def quantize_linears(
    model: nn.Module,
    fmt: str = "nf4",
    blocksize: int = 64,
    double_quant: bool = True,
    skip: tuple[str, ...] = (),
    embeddings: bool = False,
) -> list[str]:
    """Replace every nn.Linear in `model` (in place) by a QuantizedLinear; returns the replaced names.

    skip: module names (or name suffixes) to keep in full precision, e.g. a classifier head.
    embeddings: also store every nn.Embedding as NF4 (QuantizedEmbedding); in a small model
    the vocabulary table can be half of all weights.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize_linears: model must be an nn.Module, got {type(model).__name__}")
    kinds = (nn.Linear, nn.Embedding) if embeddings else (nn.Linear,)
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, kinds) and not any(n == s or n.endswith("." + s) for s in skip)
    ]
    for name in names:
        m = model.get_submodule(name)
        new = (
            QuantizedLinear.from_linear(m, fmt, blocksize, double_quant)
            if isinstance(m, nn.Linear)
            else QuantizedEmbedding(m, blocksize, double_quant)
        )
        _swap(model, name, new)
    return names


def stored_bytes(module: nn.Module) -> int:
    """Bytes of every parameter and buffer `module` holds (shared storages counted once).

    What the model really occupies, measured from its tensors rather than computed from counts.
    """
    seen, total = set(), 0
    for t in list(module.parameters()) + list(module.buffers()):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total
