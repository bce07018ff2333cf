"""Positions for a transformer: sinusoids, the offset rotation M_k, RoPE, a learned table.

Self-attention is blind to order (permute the tokens and the outputs permute the same
way), so every transformer injects positions. This module holds the three ways the
course uses, built and verified in notebook 02:

- `sinusoidal_encoding`: the fixed sin/cos table of Vaswani et al. (2017), in both
  published layouts. Interleaved (the paper, as the lecture notes "Deep Learning ch. 7"
  quote it): dimension 2i holds sin(pos * w_i) and 2i+1 holds cos(pos * w_i), with
  w_i = 10000^(-2i/d). Concatenated (the lecture notes "Transformers intuition", and e.g.
  tensor2tensor): all sines first, then all cosines.
  The two differ by a fixed permutation of dimensions (`layout_permutation`).
- `offset_matrix(k, d)`: the block-diagonal matrix of 2x2 rotations with
  PE[pos + k] = offset_matrix(k, d) @ PE[pos] for every pos (interleaved layout).
- `apply_rope`: rotary position embedding (Su et al., 2021), the same rotations applied
  to queries and keys so that q.k depends on the offset only; notebook 05's GPT uses it.
- `LearnedPositionalEmbedding` (BERT, GPT-2, ViT) and `SinusoidalPositionalEncoding`,
  two drop-in modules that add positions to a (B, T, D) batch of embeddings.

Concessions: angles are always computed in float64 and only then cast, because
pos * w_i for pos ~ 10^4 loses about three digits in float32 before the sine is even
taken; that costs nothing at the sizes the course uses. The pairs are consecutive
dimensions (2i, 2i+1) everywhere, as in the paper and in RoFormer; some libraries
(GPT-NeoX, Llama in Hugging Face) rotate dimension i with i + d/2 instead, which is the
same thing up to `layout_permutation`.
"""

from __future__ import annotations

import torch
from torch import nn

from course_utils.checks import check_choice, check_int, check_number, check_tensor

LAYOUTS = ("interleaved", "concatenated")


# ----------------------------------------------------------------------------- validation
def _even_dim(fn: str, d_model) -> int:
    """d_model as an int >= 1 that is even: the sin/cos (or RoPE) pairs need it."""
    d = check_int(fn, "d_model", d_model)
    if d % 2:
        raise ValueError(f"{fn}: d_model must be even (dimensions come in sin/cos pairs), got {d}")
    return d


def _base(fn: str, base) -> float:
    """The base of the wavelengths' geometric progression: > 1 (the paper uses 10000.0)."""
    return check_number(fn, "base", base, low=1, low_open=True)


# ----------------------------------------------------------------------------- the sinusoids
def frequencies(d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Angular frequencies w_i = base^(-2i/d_model), i = 0 .. d_model/2 - 1, shape (d_model/2,).

    One frequency per sin/cos pair; the wavelengths 2*pi/w_i run from 2*pi (i = 0) up to
    2*pi * base^(1 - 2/d_model), a geometric progression.

    >>> frequencies(4)
    tensor([1.0000, 0.0100], dtype=torch.float64)
    """
    d = _even_dim("frequencies", d_model)
    base = _base("frequencies", base)
    two_i = torch.arange(0, d, 2, dtype=torch.float64)  # 0, 2, 4, ... d-2
    return (base ** (-two_i / d)).to(dtype)


def sinusoidal_encoding(
    n_positions: int,
    d_model: int,
    layout: str = "interleaved",
    *,
    base: float = 10000.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The fixed positional encoding table PE, shape (n_positions, d_model), for positions 0 .. n-1.

    interleaved:  PE[pos, 2i] = sin(pos * w_i),  PE[pos, 2i+1] = cos(pos * w_i)
    concatenated: PE[pos, i]  = sin(pos * w_i),  PE[pos, d/2 + i] = cos(pos * w_i)
    with w_i = base^(-2i/d_model). dtype defaults to torch's default (float32); the angles
    are computed in float64 first either way.

    >>> sinusoidal_encoding(2, 4)
    tensor([[0.0000, 1.0000, 0.0000, 1.0000],
            [0.8415, 0.5403, 0.0100, 0.9999]])
    """
    n = check_int("sinusoidal_encoding", "n_positions", n_positions)
    d = _even_dim("sinusoidal_encoding", d_model)
    layout = check_choice("sinusoidal_encoding", "layout", layout, LAYOUTS)
    dtype = dtype or torch.get_default_dtype()
    pos = torch.arange(n, dtype=torch.float64)[:, None]  # (n, 1)
    angles = pos * frequencies(d, base)[None, :]  # (n, d/2)
    sin, cos = torch.sin(angles), torch.cos(angles)  # (n, d/2) each
    if layout == "interleaved":
        pe = torch.stack([sin, cos], dim=-1).reshape(n, d)  # s0 c0 s1 c1 ...
    else:
        pe = torch.cat([sin, cos], dim=-1)  # s0 s1 ... c0 c1 ...
    return pe.to(dtype=dtype, device=device)


def layout_permutation(d_model: int, source: str = "concatenated", target: str = "interleaved") -> torch.Tensor:
    """Index tensor p (d_model,) with x_target = x_source[..., p]: the fixed reordering between layouts.

    Interleaved dimension 2i is concatenated dimension i, and 2i+1 is d/2 + i:

    >>> layout_permutation(6)                 # concatenated -> interleaved
    tensor([0, 3, 1, 4, 2, 5])
    >>> layout_permutation(6, "interleaved", "concatenated")
    tensor([0, 2, 4, 1, 3, 5])
    """
    d = _even_dim("layout_permutation", d_model)
    source = check_choice("layout_permutation", "source", source, LAYOUTS)
    target = check_choice("layout_permutation", "target", target, LAYOUTS)
    if source == target:
        return torch.arange(d)
    half = torch.arange(d // 2)
    to_interleaved = torch.stack([half, half + d // 2], dim=-1).reshape(d)  # 0, d/2, 1, d/2+1, ...
    if target == "interleaved":
        return to_interleaved
    return torch.argsort(to_interleaved)  # the inverse permutation


# ----------------------------------------------------------------------------- the offset rotation
def offset_matrix(
    k: int,
    d_model: int,
    *,
    base: float = 10000.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """M_k, shape (d_model, d_model), with PE[pos + k] = M_k @ PE[pos] for every pos (interleaved layout).

    Pair i of PE[pos] is (sin a, cos a) with a = pos * w_i. Shifting pos by k adds
    b = k * w_i to the angle, and the angle-sum formulas give
        sin(a + b) =  cos b * sin a + sin b * cos a
        cos(a + b) = -sin b * sin a + cos b * cos a,
    so M_k is block-diagonal with blocks [[cos b, sin b], [-sin b, cos b]]: a rotation of
    each pair that does not depend on pos. M_{-k} is its transpose and inverse. k may be
    negative or fractional.

    >>> offset_matrix(1, 2)
    tensor([[ 0.5403,  0.8415],
            [-0.8415,  0.5403]])
    """
    k = check_number("offset_matrix", "k (the offset in positions)", k)
    d = _even_dim("offset_matrix", d_model)
    b = k * frequencies(d, base)  # (d/2,) float64
    c, s = torch.cos(b), torch.sin(b)
    blocks = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)  # (d/2, 2, 2)
    return torch.block_diag(*blocks).to(dtype=dtype or torch.get_default_dtype(), device=device)


# ----------------------------------------------------------------------------- RoPE
def rope_angles(positions: torch.Tensor, d: int, base: float = 10000.0) -> torch.Tensor:
    """Rotation angles positions[..., None] * w_i, float64, shape (*positions.shape, d/2)."""
    return positions.to(torch.float64)[..., None] * frequencies(d, base).to(positions.device)


def apply_rope(
    x: torch.Tensor,
    positions: torch.Tensor | None = None,
    base: float = 10000.0,
    angle_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Rotary position embedding: rotate each consecutive pair (x[2i], x[2i+1]) by angle pos * w_i.

    x: (..., T, d) with d even, e.g. queries or keys (B, h, T, d_head).
    positions: (T,) or anything broadcastable to x.shape[:-1] (e.g. (B, 1, T) for per-row
    offsets); defaults to 0 .. T-1. Returns a tensor of x's shape and dtype.
    angle_dtype: the precision of the angles pos * w_i. float64 by default (see the module's
    concessions); a pretrained model trained with float32 angles (Llama in `transformers`) is
    matched more closely with float32: at position 300 the two differ by ~1e-5 rad.

        y[2i]   = x[2i] cos(pos w_i) - x[2i+1] sin(pos w_i)
        y[2i+1] = x[2i] sin(pos w_i) + x[2i+1] cos(pos w_i)

    Because rotations compose, <rope(q, m), rope(k, n)> = <q, rope(k, n - m)>: attention
    scores depend on the offset n - m only (RoFormer, Su et al. 2021).

    >>> apply_rope(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))      # positions 0 and 1
    tensor([[1.0000, 0.0000],
            [0.5403, 0.8415]])
    """
    check_tensor("apply_rope", "x", x, min_dim=2, dtype="float", shape="(..., T, d)")
    T, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"apply_rope: the last dimension of x must be even (pairs are rotated), got {d}")
    base = _base("apply_rope", base)
    if positions is None:
        positions = torch.arange(T, device=x.device)
    elif not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(positions, device=x.device)
    if positions.dim() == 0 or positions.shape[-1] != T:
        raise ValueError(
            f"apply_rope: positions must end in a dimension of size T={T}, got shape {tuple(positions.shape)}"
        )
    if angle_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"apply_rope: angle_dtype must be torch.float32 or torch.float64, got {angle_dtype}")
    if x.device.type == "mps" or angle_dtype == torch.float32:  # (MPS has no float64: float32 angles there)
        angles = positions.to(x.device, torch.float32)[..., None] * frequencies(d, base).to(x.device, torch.float32)
    else:
        angles = rope_angles(positions.to(x.device), d, base)  # (..., T, d/2) float64
    # the angles need float64 (pos * w for pos ~ 10^4); the rotation itself is fine in x's dtype
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    pairs = x.reshape(*x.shape[:-1], d // 2, 2)  # (..., T, d/2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    out = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return out.reshape(x.shape)


# ----------------------------------------------------------------------------- modules
class SinusoidalPositionalEncoding(nn.Module):
    """x + PE[:T] for x of shape (B, T, d_model); no parameters, any length.

    The table for `max_len` positions is a buffer (it moves with .to(device)); longer inputs
    get a longer table computed on the fly, which is the point of a fixed encoding.
    """

    def __init__(self, d_model: int, max_len: int = 1024, layout: str = "interleaved"):
        super().__init__()
        self.d_model = _even_dim("SinusoidalPositionalEncoding", d_model)
        max_len = check_int("SinusoidalPositionalEncoding", "max_len", max_len)
        self.layout = check_choice("SinusoidalPositionalEncoding", "layout", layout, LAYOUTS)
        pe = sinusoidal_encoding(max_len, d_model, layout)  # (max_len, d_model)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"SinusoidalPositionalEncoding: x must be (B, T, {self.d_model}), got {tuple(x.shape)}")
        T = x.shape[1]
        pe = self.pe if T <= self.pe.shape[0] else sinusoidal_encoding(T, self.d_model, self.layout, device=x.device)
        return x + pe[:T].to(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """x + E[:T] for x of shape (B, T, d_model), with E a trained (max_len, d_model) table.

    BERT, GPT-2 and ViT do this. Row p of E only learns if some training sequence is
    longer than p: rows past the longest trained position keep their random start
    (normal, std 0.02 as in GPT-2), and a sequence longer than max_len has no row at all.
    """

    def __init__(self, max_len: int, d_model: int, init_std: float = 0.02):
        super().__init__()
        fn = "LearnedPositionalEmbedding"
        self.max_len = check_int(fn, "max_len", max_len)
        self.d_model = check_int(fn, "d_model", d_model)
        init_std = check_number(fn, "init_std", init_std, low=0)
        self.weight = nn.Parameter(torch.randn(self.max_len, self.d_model) * init_std)  # (max_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"LearnedPositionalEmbedding: x must be (B, T, {self.d_model}), got {tuple(x.shape)}")
        T = x.shape[1]
        if T > self.max_len:
            raise ValueError(
                f"LearnedPositionalEmbedding: sequence length {T} exceeds max_len="
                f"{self.max_len}; a learned table has no row for positions it never had"
            )
        return x + self.weight[:T].to(x.dtype)
