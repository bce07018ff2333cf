"""A KV cache for generation, on a small GPT-style decoder built from `course_utils.attention`.

Notebook 08 builds this. Generating token t+1 needs attention of the newest query over the
keys and values of *all* t + 1 tokens. Without a cache, each step re-runs the model on the
whole prefix: step t costs O(t) for every linear layer and O(t^2) for attention, O(T^3)
overall. The keys and values of old tokens never change in a causal decoder (they see
only the past), so we can keep them: each step then runs the model on one new token,
appends its key and value to the cache and attends over it. Same numbers, same tokens.

    cache per layer: k, v  (B, h, t, d_head)   --append on dim -2 (time)-->  (B, h, t + 1, d_head)

Concessions, admitted up front:
- This decoder is deliberately small and stands alone (notebook 08 trains it for a few
  minutes on Austen, characters as tokens); notebook 05's `course_utils.gpt` is the full
  GPT with its own cache. The two share the idea and the attention function.
- Positions are the fixed sinusoids of `course_utils.positional` (no learned table, so any
  length works: a cached step just adds the encoding of its own position).
- The cache grows with `torch.cat` (a new tensor each step, O(t) copy): simple and exact;
  real servers preallocate (notebook 05's `KVCache`) or page it (vLLM).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import merge_heads, scaled_dot_product_attention, split_heads
from .positional import sinusoidal_encoding

__all__ = ["append_kv", "TinyGPTConfig", "TinyGPT", "generate"]

Cache = list  # one (k, v) pair per layer, or None before the first step


def append_kv(cache_k: Optional[torch.Tensor], cache_v: Optional[torch.Tensor], k_new: torch.Tensor,
              v_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the new positions' keys and values after the cached ones, along time (dim -2).

    cache_k, cache_v: (B, h, t, d) or None (empty cache)   k_new, v_new: (B, h, t_new, d)
    returns (B, h, t + t_new, d) each; the old positions come first (position order).

    >>> k, v = append_kv(None, None, torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    >>> tuple(append_kv(k, v, torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))[0].shape)
    (1, 2, 4, 4)
    """
    for name, x in (("k_new", k_new), ("v_new", v_new)):
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise TypeError(f"append_kv: {name} must be a (..., t_new, d) tensor, got "
                            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if (cache_k is None) != (cache_v is None):
        raise ValueError("append_kv: cache_k and cache_v must both be None (empty cache) or both tensors")
    if cache_k is None:
        return k_new, v_new
    if cache_k.shape[:-2] != k_new.shape[:-2] or cache_k.shape[-1] != k_new.shape[-1]:
        raise ValueError(f"append_kv: cached keys {tuple(cache_k.shape)} and new keys {tuple(k_new.shape)} "
                         "must agree on every dimension except time (-2)")
    return torch.cat([cache_k, k_new], dim=-2), torch.cat([cache_v, v_new], dim=-2)


@dataclass
class TinyGPTConfig:
    """vocab_size token ids; n_layer pre-LN blocks of n_head heads over n_embd features; max_len positions."""

    vocab_size: int = 96
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    max_len: int = 2048

    def __post_init__(self):
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "max_len"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"TinyGPTConfig: {name} must be a positive int, got {val!r}")
        if self.n_embd % self.n_head or self.n_embd % 2:
            raise ValueError(f"TinyGPTConfig: n_embd={self.n_embd} must be even and divisible by n_head={self.n_head}")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention that can read and extend a (k, v) cache."""

    def __init__(self, cfg: TinyGPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)          # W_Q, W_K, W_V side by side
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)             # W_O

    def forward(self, x: torch.Tensor, past: Optional[tuple[torch.Tensor, torch.Tensor]] = None):
        """x (B, T_new, C), past (k, v) each (B, h, t, d) or None -> y (B, T_new, C), new (k, v)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)                        # (B, T_new, C) each
        q, k, v = (split_heads(z, self.n_head) for z in (q, k, v))    # (B, h, T_new, d)
        k, v = append_kv(*(past if past is not None else (None, None)), k, v)   # (B, h, t + T_new, d)
        T_new, T = q.shape[-2], k.shape[-2]
        mask = None
        if T_new > 1:                                                  # new query i sits at position T - T_new + i
            mask = torch.ones(T_new, T, dtype=torch.bool, device=x.device).tril(diagonal=T - T_new)
        y, _ = scaled_dot_product_attention(q, k, v, mask)             # one new query needs no mask
        return self.proj(merge_heads(y)), (k, v)


class Block(nn.Module):
    def __init__(self, cfg: TinyGPTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(), nn.Linear(4 * cfg.n_embd, cfg.n_embd))

    def forward(self, x, past=None):
        a, present = self.attn(self.ln1(x), past)
        x = x + a
        return x + self.mlp(self.ln2(x)), present


class TinyGPT(nn.Module):
    """Token embedding + sinusoidal positions -> n_layer pre-LN blocks -> LayerNorm -> tied output layer."""

    def __init__(self, cfg: TinyGPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.register_buffer("pe", sinusoidal_encoding(cfg.max_len, cfg.n_embd), persistent=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, cache: Optional[Cache] = None) -> tuple[torch.Tensor, Cache]:
        """idx (B, T_new) new token ids; cache: the list returned by the previous call, or None.

        returns logits (B, T_new, vocab) and the cache extended by these T_new positions.
        """
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.is_floating_point():
            raise TypeError(f"TinyGPT: idx must be a (B, T) integer tensor, got "
                            f"{tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__}")
        start = 0 if cache is None else cache[0][0].shape[-2]          # positions already cached
        if start + idx.shape[1] > self.cfg.max_len:
            raise ValueError(f"TinyGPT: {start} cached + {idx.shape[1]} new positions exceed max_len={self.cfg.max_len}")
        x = self.tok(idx) + self.pe[start:start + idx.shape[1]]        # (B, T_new, C)
        present = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[i])
            present.append(kv)
        return F.linear(self.ln_f(x), self.tok.weight), present       # tied weights: logits (B, T_new, V)


@torch.no_grad()
def generate(model: TinyGPT, prompt: torch.Tensor, max_new_tokens: int, use_cache: bool = True) -> torch.Tensor:
    """Greedy continuation of prompt (B, T) by max_new_tokens tokens -> (B, T + max_new_tokens).

    Without the cache every step re-runs the whole sequence; with it, the prompt runs once
    (the "prefill") and every later step feeds only the newest token. Greedy (argmax) so
    the two are comparable token for token.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    was_training = model.training
    model.eval()
    idx, cache, step_input = prompt, None, prompt
    for _ in range(max_new_tokens):
        if use_cache:
            logits, cache = model(step_input, cache)                   # only the new tokens
        else:
            logits, _ = model(idx)                                     # the whole sequence, every time
        nxt = logits[:, -1].argmax(dim=-1, keepdim=True)               # (B, 1)
        idx = torch.cat([idx, nxt], dim=1)
        step_input = nxt
    model.train(was_training)
    return idx
