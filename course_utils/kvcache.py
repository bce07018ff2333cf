"""The KV-cache append step, the idea behind fast generation (notebook 08's exercise).

Generating token t+1 needs attention of the newest query over the keys and values of *all*
t + 1 tokens. Without a cache, each step re-runs the model on the whole prefix: step t costs
O(t) for every linear layer and O(t^2) for attention. In a causal decoder the keys and
values of old tokens never change (they see only the past), so we keep them and each step
appends the new token's key and value:

    cache per layer: k, v  (B, h, t, d_head)   --append on dim -2 (time)-->  (B, h, t + 1, d_head)

`append_kv` is the textbook version, a `torch.cat` per step (an O(t) copy, simple and exact).
`KVCache` does the same with preallocated buffers (one write per step, no copy); it is what
`course_utils.gpt.GPT.generate(use_cache=True)` uses and what notebook 08 times, and
`shifted_causal_mask` is the causal mask of new queries over cached keys. `tests/test_kvcache.py`
checks that both caches hold the same keys and values.
"""

from __future__ import annotations

from typing import Optional

import torch

from course_utils.checks import check_int, check_tensor

__all__ = ["append_kv", "KVCache", "shifted_causal_mask"]


def append_kv(
    cache_k: Optional[torch.Tensor], cache_v: Optional[torch.Tensor], k_new: torch.Tensor, v_new: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the new positions' keys and values after the cached ones, along time (dim -2).

    cache_k, cache_v: (B, h, t, d) or None (empty cache)   k_new, v_new: (B, h, t_new, d)
    returns (B, h, t + t_new, d) each; the old positions come first (position order).

    >>> k, v = append_kv(None, None, torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    >>> tuple(append_kv(k, v, torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))[0].shape)
    (1, 2, 4, 4)
    """
    for name, x in (("k_new", k_new), ("v_new", v_new)):
        check_tensor("append_kv", name, x, min_dim=2, shape="(..., t_new, d)")
    if (cache_k is None) != (cache_v is None):
        raise ValueError("append_kv: cache_k and cache_v must both be None (empty cache) or both tensors")
    if cache_k is None:
        return k_new, v_new
    for name, old, new in (("keys", cache_k, k_new), ("values", cache_v, v_new)):
        if old.shape[:-2] != new.shape[:-2] or old.shape[-1] != new.shape[-1]:
            raise ValueError(
                f"append_kv: cached {name} {tuple(old.shape)} and new {name} {tuple(new.shape)} "
                "must agree on every dimension except time (-2)"
            )
    return torch.cat([cache_k, k_new], dim=-2), torch.cat([cache_v, v_new], dim=-2)


class KVCache:
    """Keys and values of the positions already processed, per layer, in preallocated buffers.

    `update(layer, k, v)` writes the new positions' keys/values (B, h, T_new, d) after the
    stored ones and returns all of them so far (B, h, T_past + T_new, d). `length` is the
    number of positions stored (read it before a forward pass: it is the position offset of
    the new tokens). Buffers are allocated on the first update, with k's batch, heads,
    dtype and device.

    >>> cache = KVCache(n_layers=1, max_len=4)
    >>> k, v = cache.update(0, torch.ones(1, 2, 3, 8), torch.ones(1, 2, 3, 8)); cache.length, tuple(k.shape)
    (3, (1, 2, 3, 8))
    """

    def __init__(self, n_layers: int, max_len: int):
        self.n_layers = check_int("KVCache", "n_layers", n_layers)
        self.max_len = check_int("KVCache", "max_len", max_len)
        self.reset()

    def reset(self) -> None:
        """Forget every stored position (the buffers are kept)."""
        self._len = [0] * self.n_layers
        if not hasattr(self, "k"):
            self.k: list[Optional[torch.Tensor]] = [None] * self.n_layers
            self.v: list[Optional[torch.Tensor]] = [None] * self.n_layers

    @property
    def length(self) -> int:
        """Positions stored in layer 0 (all layers agree between forward passes)."""
        return self._len[0]

    def stored(self, layer: int) -> int:
        """Positions stored for one layer (during a forward pass, layers before it are one step ahead)."""
        return self._len[layer]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"KVCache.update: layer must lie in [0, {self.n_layers}), got {layer}")
        if k.shape != v.shape or k.dim() != 4:
            raise ValueError(
                f"KVCache.update: k and v must both be (B, h, T_new, d), got {tuple(k.shape)} and {tuple(v.shape)}"
            )
        B, h, T_new, d = k.shape
        start = self._len[layer]
        if start + T_new > self.max_len:
            raise ValueError(
                f"KVCache.update: {start} stored + {T_new} new positions exceed max_len={self.max_len}; "
                "reset() the cache or crop the context"
            )
        buf = self.k[layer]
        if (
            buf is None
            or buf.shape[:2] != (B, h)
            or buf.shape[-1] != d
            or buf.dtype != k.dtype
            or buf.device != k.device
        ):
            if start:
                raise ValueError(
                    f"KVCache.update: layer {layer} holds {start} positions of another batch/shape; reset() first"
                )
            self.k[layer] = k.new_zeros(B, h, self.max_len, d)
            self.v[layer] = v.new_zeros(B, h, self.max_len, d)
        self.k[layer][:, :, start : start + T_new] = k
        self.v[layer][:, :, start : start + T_new] = v
        self._len[layer] = start + T_new
        return self.k[layer][:, :, : start + T_new], self.v[layer][:, :, : start + T_new]


def shifted_causal_mask(t_new: int, t_past: int, device=None) -> torch.Tensor:
    """(t_new, t_past + t_new) bool, True = may attend: new query i sits at position t_past + i.

    With t_past = 0 it is `causal_mask(t_new)`; with a cache, queries see every stored key.

    >>> shifted_causal_mask(2, 1).int()
    tensor([[1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    q_pos = torch.arange(t_new, device=device)[:, None] + t_past  # (t_new, 1)
    k_pos = torch.arange(t_past + t_new, device=device)[None, :]  # (1, T_k)
    return k_pos <= q_pos
