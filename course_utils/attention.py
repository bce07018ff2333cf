"""Attention from scratch: scaled dot-product attention, masks and multi-head attention.

Notebook 01 builds these step by step and proves them equal to PyTorch's
`F.scaled_dot_product_attention` and `nn.MultiheadAttention`; notebooks 04-08 import
them. Conventions (CONTRIBUTING.md):

- batch-first: any leading dimensions `...` (batch, heads) in front of `(T, D)`;
- masks are boolean with `True` = *may attend*, the convention of
  `F.scaled_dot_product_attention` (and the OPPOSITE of `nn.MultiheadAttention`'s
  `attn_mask` / `key_padding_mask`, where `True` = *blocked*);
- a mask is applied to the scores *before* the softmax, so a blocked position gets
  exactly zero weight.

Concessions, admitted up front:

- This is the plain "math" attention: it materialises the full (T_q, T_k) weight
  matrix, which is the point of the lesson (you can look at it) and also its cost
  (memory grows as T^2; `benchmarks/attention.py` measures it against the fused kernel).
- A query row whose mask blocks *every* key has no distribution to attend with.
  We return zeros for that row (weights and output), never NaN, the same choice
  PyTorch >= 2.5's `F.scaled_dot_product_attention` makes. Such rows appear for
  padding queries with left padding and a causal mask; their outputs are usually
  ignored by the loss.
- Returned weights are the softmax probabilities *before* dropout (what you want to
  plot); `nn.MultiheadAttention` returns them after dropout. In eval mode, or with
  dropout 0, the two agree.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.checks import check_int, check_number, check_tensor

__all__ = [
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
]


# ---------------------------------------------------------------------------------------------
# input checks (course_utils.checks), plus the one a mask needs: its convention and its shape
# ---------------------------------------------------------------------------------------------
def _check_mask(mask, scores_shape: torch.Size, fn: str, what: str = "(..., T_q, T_k)") -> None:
    """A bool mask, True = may attend, that broadcasts to the scores; the message says how to convert others."""
    check_tensor(fn, "mask", mask, shape="boolean (True = may attend)")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{fn}: mask must have dtype torch.bool with True = may attend, got {mask.dtype}. "
            "For an additive float mask (0 / -inf) use `mask = float_mask == 0`; for "
            "nn.MultiheadAttention's boolean masks (True = blocked) use `~mask`."
        )
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{fn}: mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} {what}"
        )


# ---------------------------------------------------------------------------------------------
# scaled dot-product attention
# ---------------------------------------------------------------------------------------------
def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    is_causal: bool = False,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k)) v, returning `(output, weights)`.

    q: (..., T_q, d_k)   k: (..., T_k, d_k)   v: (..., T_k, d_v)   leading dims broadcast.
    mask: bool, True = may attend, broadcastable to (..., T_q, T_k); applied before the softmax,
          so blocked keys get exactly 0 weight. A fully blocked query row gives zeros (not NaN).
    is_causal: also block keys after the query (top-left aligned, like torch's `is_causal`).
    dropout_p: dropout on the weights used for the output (the caller passes 0 in eval mode);
          the returned weights are the probabilities before dropout.
    returns output (..., T_q, d_v) and weights (..., T_q, T_k), each row summing to 1.

    Why 1/sqrt(d_k): with unit-variance entries, q.k has variance d_k; dividing brings it
    back to 1 so the softmax does not saturate as d_k grows (notebook 01, section 3).

    >>> q = torch.tensor([[1.0, 0.0]]); k = torch.tensor([[1.0, 0.0], [0.0, 1.0]]); v = torch.eye(2)
    >>> out, w = scaled_dot_product_attention(q, k, v)
    >>> w        # e^{1/sqrt 2} : e^0
    tensor([[0.6698, 0.3302]])
    """
    fn = "scaled_dot_product_attention"
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(fn, name, x, min_dim=2, dtype="float", shape="(..., T, D)")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{fn}: q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{fn}: q and k must have the same last dimension d_k, got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{fn}: k and v must have the same number of keys T_k (dim -2), got k "
            f"{tuple(k.shape)} and v {tuple(v.shape)}"
        )
    try:
        lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"{fn}: the leading (batch/head) dims of q {tuple(q.shape)}, k {tuple(k.shape)} and "
            f"v {tuple(v.shape)} do not broadcast"
        ) from None
    check_number(fn, "dropout_p", dropout_p, low=0, high=1, high_open=True)
    T_q, T_k = q.shape[-2], k.shape[-2]
    scores_shape = torch.Size((*lead, T_q, T_k))
    if mask is not None:
        _check_mask(mask, scores_shape, fn)
    if is_causal:
        tri = torch.ones(T_q, T_k, dtype=torch.bool, device=q.device).tril()
        mask = tri if mask is None else mask & tri

    # E = Q K^T / sqrt(d_k); scaling q first is the same number and costs n*d, not n^2, extra memory
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)  # (..., T_q, T_k)
    blocked_rows = None
    if mask is not None:
        if scores.shape != scores_shape:  # v or the mask has more leading dims
            scores = scores.expand(scores_shape).clone()
        scores.masked_fill_(~mask, float("-inf"))  # blocked -> exp(-inf) = exactly 0
        blocked_rows = ~mask.any(dim=-1, keepdim=True)  # (..., T_q, 1) queries with no key left
        if blocked_rows.any():  # rare: softmax of all -inf is NaN
            scores.masked_fill_(blocked_rows, 0.0)
        else:
            blocked_rows = None
    weights = scores.softmax(dim=-1)  # (..., T_q, T_k), over the keys
    if blocked_rows is not None:
        weights = weights.masked_fill(blocked_rows, 0.0)  # ... and we give those rows zeros
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return attn @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


# ---------------------------------------------------------------------------------------------
# masks (True = may attend)
# ---------------------------------------------------------------------------------------------
def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, n) bool mask, True on and below the diagonal: query i may attend to keys 0..i.

    >>> causal_mask(3).int()
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    n = check_int("causal_mask", "n", n)
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def padding_mask(
    lengths: Sequence[int] | torch.Tensor, max_len: int | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """(B, max_len) bool, True where a position holds a real token (position < its sequence's length).

    To block padded *keys*, broadcast it over queries (and heads):
    `mask[:, None, :]` for (B, T_q, T_k) scores, `mask[:, None, None, :]` for (B, h, T_q, T_k).
    max_len defaults to max(lengths).

    >>> padding_mask([2, 3]).int()
    tensor([[1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    if isinstance(lengths, torch.Tensor):
        if lengths.dim() != 1 or lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise TypeError(
                f"padding_mask: lengths must be a 1-D integer tensor, got dtype {lengths.dtype} "
                f"and shape {tuple(lengths.shape)}"
            )
        lengths = lengths.to(device=device)
    else:
        lengths = list(lengths)
        for i, n in enumerate(lengths):
            check_int("padding_mask", f"lengths[{i}]", n, low=None)  # >= 0 is checked below, for all
        lengths = torch.tensor(lengths, dtype=torch.long, device=device)
    if lengths.numel() == 0:
        raise ValueError("padding_mask: lengths is empty; give one length per sequence")
    if (lengths < 0).any():
        raise ValueError(f"padding_mask: lengths must be >= 0, got {lengths.tolist()}")
    longest = int(lengths.max())
    if max_len is None:
        max_len = longest
    max_len = check_int("padding_mask", "max_len", max_len)
    if longest > max_len:
        raise ValueError(f"padding_mask: a length ({longest}) exceeds max_len ({max_len})")
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]  # (B, max_len)


# ---------------------------------------------------------------------------------------------
# heads
# ---------------------------------------------------------------------------------------------
def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(..., T, D) -> (..., h, T, D/h): head j takes features j*D/h .. (j+1)*D/h - 1 of every token.

    Reshape to (..., T, h, D/h) FIRST, then swap T and h; reshaping straight to
    (..., h, T, D/h) would mix tokens into heads.

    >>> split_heads(torch.arange(8.).view(1, 2, 4), 2)[0]   # 2 tokens, 4 features, 2 heads
    tensor([[[0., 1.],
             [4., 5.]],
    <BLANKLINE>
            [[2., 3.],
             [6., 7.]]])
    """
    check_tensor("split_heads", "x", x, min_dim=2, shape="(..., T, D)")
    check_int("split_heads", "n_heads", n_heads)
    *lead, T, D = x.shape
    if D % n_heads:
        raise ValueError(f"split_heads: the last dimension D={D} is not divisible by n_heads={n_heads}")
    return x.reshape(*lead, T, n_heads, D // n_heads).transpose(-3, -2)  # (..., h, T, D/h)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(..., h, T, d_h) -> (..., T, h*d_h): the inverse of `split_heads` (concatenate the heads).

    >>> x = torch.randn(2, 5, 12); bool((merge_heads(split_heads(x, 3)) == x).all())
    True
    """
    check_tensor("merge_heads", "x", x, min_dim=3, shape="(..., h, T, d_h)")
    *lead, h, T, d_h = x.shape
    return x.transpose(-3, -2).reshape(*lead, T, h * d_h)  # (..., T, h*d_h)


# ---------------------------------------------------------------------------------------------
# multi-head attention
# ---------------------------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """h attention heads in parallel, each on its own d_model/h slice, concatenated and mixed by W_O.

    forward(query (..., T_q, d_model), key (..., T_k, kdim), value (..., T_k, vdim), mask=None)
      -> output (..., T_q, d_model), weights (..., h, T_q, T_k) per head.
    mask (bool, True = may attend): (T_q, T_k), (B, T_q, T_k) (same for every head) or
    (B, h, T_q, T_k); anything broadcastable to the weights' shape after that rule.
    Padded keys: `mask=padding_mask(lengths, T_k)[:, None, :]`; a decoder over a padded batch:
    `causal_mask(T) & padding_mask(lengths, T)[:, None, :]`.
    Self-attention: `mha(x, x, x)`; cross-attention: `mha(decoder_x, encoder_out, encoder_out)`.

    Projections are separate `q_proj`, `k_proj`, `v_proj` and `out_proj` (= W_O) Linear
    layers; `from_torch` copies an `nn.MultiheadAttention`'s packed weights into them.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ):
        super().__init__()
        fn = "MultiHeadAttention"
        d_model, n_heads = check_int(fn, "d_model", d_model), check_int(fn, "n_heads", n_heads)
        if d_model % n_heads:
            raise ValueError(f"{fn}: d_model={d_model} must be divisible by n_heads={n_heads}")
        check_number(fn, "dropout", dropout, low=0, high=1, high_open=True)
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.d_head = d_model // n_heads
        self.kdim, self.vdim = kdim or d_model, vdim or d_model
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)  # W_Q, all heads side by side
        self.k_proj = nn.Linear(self.kdim, d_model, bias=bias)  # W_K
        self.v_proj = nn.Linear(self.vdim, d_model, bias=bias)  # W_V
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)  # W_O mixes the concatenated heads

    def _head_mask(self, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """A (B, T_q, T_k) mask is the same for every head: insert the head dim -> (B, 1, T_q, T_k)."""
        check_tensor("MultiHeadAttention", "mask", mask, shape="boolean (True = may attend)")
        if mask.dim() == query.dim() and mask.dim() > 2:
            return mask.unsqueeze(-3)
        return mask

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(output (..., T_q, d_model), weights (..., h, T_q, T_k)); see the class docstring for the mask."""
        fn = "MultiHeadAttention"
        for name, x, dim in (("query", query, self.d_model), ("key", key, self.kdim), ("value", value, self.vdim)):
            check_tensor(fn, name, x, min_dim=2, dtype="float", shape="(..., T, D)")
            if x.shape[-1] != dim:
                raise ValueError(f"{fn}: {name} must have last dimension {dim}, got shape {tuple(x.shape)}")
        if key.shape[-2] != value.shape[-2]:
            raise ValueError(
                f"{fn}: key and value must have the same length T_k, got {tuple(key.shape)} and {tuple(value.shape)}"
            )
        q = split_heads(self.q_proj(query), self.n_heads)  # (..., h, T_q, d_head)
        k = split_heads(self.k_proj(key), self.n_heads)  # (..., h, T_k, d_head)
        v = split_heads(self.v_proj(value), self.n_heads)  # (..., h, T_k, d_head)
        if mask is not None:
            mask = self._head_mask(mask, query)
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)  # (..., h, T_q, d_head)
        return self.out_proj(merge_heads(out)), weights  # (..., T_q, d_model), (..., h, T_q, T_k)

    @classmethod
    def from_torch(cls, torch_mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """A MultiHeadAttention with the same weights as `torch_mha` (and its dtype/device).

        Our forward is always batch-first, whatever `torch_mha.batch_first` says.
        torch packs W_Q, W_K, W_V row-wise in `in_proj_weight` (3*d_model, d_model) when
        kdim = vdim = d_model, else keeps q_proj_weight, k_proj_weight, v_proj_weight.
        """
        if not isinstance(torch_mha, nn.MultiheadAttention):
            raise TypeError(f"from_torch: expected an nn.MultiheadAttention, got {type(torch_mha).__name__}")
        if torch_mha.bias_k is not None or torch_mha.add_zero_attn:
            raise ValueError("from_torch: add_bias_kv and add_zero_attn are not supported")
        d = torch_mha.embed_dim
        has_bias = torch_mha.in_proj_bias is not None
        ref = torch_mha.out_proj.weight
        mha = cls(
            d, torch_mha.num_heads, dropout=torch_mha.dropout, bias=has_bias, kdim=torch_mha.kdim, vdim=torch_mha.vdim
        ).to(dtype=ref.dtype, device=ref.device)
        if torch_mha._qkv_same_embed_dim:
            w_q, w_k, w_v = torch_mha.in_proj_weight.detach().chunk(3, dim=0)
        else:
            w_q, w_k, w_v = (
                torch_mha.q_proj_weight.detach(),
                torch_mha.k_proj_weight.detach(),
                torch_mha.v_proj_weight.detach(),
            )
        with torch.no_grad():
            for lin, w in ((mha.q_proj, w_q), (mha.k_proj, w_k), (mha.v_proj, w_v)):
                lin.weight.copy_(w)
            mha.out_proj.weight.copy_(torch_mha.out_proj.weight)
            if has_bias:
                for lin, b in zip((mha.q_proj, mha.k_proj, mha.v_proj), torch_mha.in_proj_bias.detach().chunk(3)):
                    lin.bias.copy_(b)
                mha.out_proj.bias.copy_(torch_mha.out_proj.bias)
        mha.train(torch_mha.training)
        return mha

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, d_head={self.d_head}, dropout={self.dropout}"
