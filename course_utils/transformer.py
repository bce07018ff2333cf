"""The encoder-decoder transformer of Vaswani et al. (2017), built on `course_utils.attention`.

Notebook 04 builds it and trains a German->English translator with it. One file, nanoGPT
style: a config dataclass, then small modules bottom-up (LayerNorm, FeedForward,
EncoderLayer, DecoderLayer, Encoder, Decoder, Seq2SeqTransformer), then decoding
(greedy, beam search) and batching.

    src (B, S) ids --embed*sqrt(d) + PE--> Encoder (N x [self-attn, FFN]) --> memory (B, S, d)
    tgt_in (B, T) ids --embed*sqrt(d) + PE--> Decoder (N x [causal self-attn, cross-attn to memory, FFN])
        --> h (B, T, d) --h @ E^T (tied)--> logits (B, T, V)

Conventions: batch first; masks are boolean with True = may attend (the opposite of
`nn.Transformer`'s masks, whose True means blocked); ids of padding, start and end
tokens live in the config.

Concessions:
- Post-LN (`norm_first=False`, the paper's LayerNorm(x + Sublayer(x))) is the default,
  so our layers can be checked against `nn.TransformerEncoderLayer` / `DecoderLayer`.
  Pre-LN (`norm_first=True`, LayerNorm inside the residual branch, plus a final
  LayerNorm after each stack) trains more stably without warm-up; both are here.
- Attention is the plain "math" version from notebook 01 (it returns the weights, which
  we draw). Decoding caches each decoder layer's *inputs* for the positions already
  written (`decode_next`), so a step runs the layers on one new position; the keys and
  values are re-projected from those inputs every step, and the encoder's keys and values
  for cross-attention too (a true key/value cache, notebook 08, saves that as well).
- One vocabulary for both languages, one embedding matrix used three times: source
  embedding, target embedding and (transposed) output projection, as in the paper.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.attention import MultiHeadAttention, causal_mask
from course_utils.positional import SinusoidalPositionalEncoding

__all__ = ["TransformerConfig", "LayerNorm", "FeedForward", "EncoderLayer", "DecoderLayer", "Encoder",
           "Decoder", "Seq2SeqTransformer", "decoder_self_mask", "greedy_decode", "beam_step", "length_penalty",
           "beam_search", "batch_by_length", "pad_batch", "make_batch", "translate", "count_parameters",
           "encode_pairs", "length_batches", "shorter_half", "curriculum_batches", "seq2seq_loss", "mean_loss",
           "shared_tokenizer", "config_ids"]


# ----------------------------------------------------------------------------- configuration
@dataclass
class TransformerConfig:
    """Every size of the model. The defaults are the paper's base model (Table 3) with a 37k shared vocabulary."""

    vocab_size: int = 37_000
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    max_len: int = 256            # longest sequence the position table is built for (longer ones still work)
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    norm_first: bool = False      # False: post-LN as in the paper; True: pre-LN
    activation: str = "relu"
    layer_norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self):
        fn = "TransformerConfig"
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{fn}: {name} must be a positive int, got {v!r}")
        for name in ("n_encoder_layers", "n_decoder_layers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{fn}: {name} must be an int >= 0, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"{fn}: d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.d_model % 2:
            raise ValueError(f"{fn}: d_model must be even (sin/cos position pairs), got {self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{fn}: dropout must lie in [0, 1), got {self.dropout}")
        for name in ("pad_id", "bos_id", "eos_id"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < self.vocab_size:
                raise ValueError(f"{fn}: {name} must be a token id in [0, vocab_size={self.vocab_size}), got {v!r}")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError(f"{fn}: pad_id, bos_id and eos_id must differ, got {self.pad_id}, {self.bos_id}, "
                             f"{self.eos_id}")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"{fn}: activation must be 'relu' or 'gelu', got {self.activation!r}")


# ----------------------------------------------------------------------------- building blocks
class LayerNorm(nn.Module):
    """y = gamma * (h - mu) / sigma + beta per token, with mu and sigma over its D features (seed 004).

    sigma = sqrt(mean_j (h_j - mu)^2 + eps): the *mean* of the squares (the slide's formula omits
    the 1/D, which would shrink every output by sqrt(D)), plus a small eps so a constant vector
    does not divide by zero. Same parameters (`weight` = gamma, `bias` = beta) as `nn.LayerNorm`.
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))   # gamma (D,)
        self.bias = nn.Parameter(torch.zeros(d_model))    # beta  (D,)

    def forward(self, h: torch.Tensor) -> torch.Tensor:   # (..., D) -> (..., D)
        mu = h.mean(dim=-1, keepdim=True)                                   # (..., 1)
        sigma = ((h - mu).pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()
        return self.weight * (h - mu) / sigma + self.bias


class FeedForward(nn.Module):
    """FFN(x) = W2 act(W1 x + b1) + b2, applied to every position on its own: d_model -> d_ff -> d_model."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu"):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.act = F.relu if activation == "relu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (B, T, d) -> (B, T, d)
        return self.linear2(self.dropout(self.act(self.linear1(x))))


def _copy_linear(ours: nn.Linear, theirs: nn.Linear) -> None:
    ours.weight.data.copy_(theirs.weight.data)
    ours.bias.data.copy_(theirs.bias.data)


def _torch_activation(layer) -> str:
    act = layer.activation          # a function (F.relu, F.gelu) or a module (nn.ReLU(), nn.GELU())
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if (act is F.gelu or isinstance(act, nn.GELU)) and getattr(act, "approximate", "none") == "none":
        return "gelu"
    raise ValueError(f"from_torch: only relu and gelu activations are supported, got {layer.activation!r}")


class EncoderLayer(nn.Module):
    """Self-attention then a feed-forward network, each wrapped in a residual connection and LayerNorm.

    post-LN (paper): x = LN(x + Drop(SelfAttn(x)));  x = LN(x + Drop(FFN(x)))
    pre-LN:          x = x + Drop(SelfAttn(LN(x)));  x = x + Drop(FFN(LN(x)))
    forward(x (B, S, d), mask (B, 1, S) or (B, S, S), True = may attend) -> (x (B, S, d), weights (B, h, S, S)).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = False,
                 activation: str = "relu", eps: float = 1e-5):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2 = LayerNorm(d_model, eps), LayerNorm(d_model, eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.norm_first:
            h = self.norm1(x)
            a, w = self.self_attn(h, h, h, mask)
            x = x + self.dropout1(a)
            x = x + self.dropout2(self.ff(self.norm2(x)))
        else:
            a, w = self.self_attn(x, x, x, mask)
            x = self.norm1(x + self.dropout1(a))
            x = self.norm2(x + self.dropout2(self.ff(x)))
        return x, w

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "EncoderLayer":
        """Our layer with the weights of a torch `nn.TransformerEncoderLayer` (our forward is batch-first)."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"EncoderLayer.from_torch: expected nn.TransformerEncoderLayer, got {type(layer).__name__}")
        sa = layer.self_attn
        ours = cls(sa.embed_dim, sa.num_heads, layer.linear1.out_features, layer.dropout.p, layer.norm_first,
                   _torch_activation(layer), layer.norm1.eps)
        ours.self_attn = MultiHeadAttention.from_torch(sa)
        _copy_linear(ours.ff.linear1, layer.linear1)
        _copy_linear(ours.ff.linear2, layer.linear2)
        ours.norm1.load_state_dict(layer.norm1.state_dict())
        ours.norm2.load_state_dict(layer.norm2.state_dict())
        return ours.train(layer.training)


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder's output, a feed-forward network.

    post-LN: x = LN(x + SelfAttn(x, causal & padding mask)); x = LN(x + CrossAttn(x, memory)); x = LN(x + FFN(x))
    Queries of the cross-attention come from the decoder, keys and values from the encoder
    (`memory`): each target position looks at the whole source, which is where alignment happens.
    forward(x (B, T, d), memory (B, S, d), self_mask (B, T, T), cross_mask (B, 1, S))
      -> (x (B, T, d), self weights (B, h, T, T), cross weights (B, h, T, S)).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, norm_first: bool = False,
                 activation: str = "relu", eps: float = 1e-5):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2, self.norm3 = (LayerNorm(d_model, eps) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                cross_mask: torch.Tensor | None = None, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """context: keys/values of the self-attention when x holds only the newest positions (decoding
        with a cache: x (B, 1, d), context (B, T, d) = this layer's inputs so far, x last). Default x."""
        ctx = x if context is None else context
        if self.norm_first:
            h = self.norm1(x)
            hc = h if context is None else self.norm1(ctx)
            a, w_self = self.self_attn(h, hc, hc, self_mask)
            x = x + self.dropout1(a)
            a, w_cross = self.cross_attn(self.norm2(x), memory, memory, cross_mask)
            x = x + self.dropout2(a)
            x = x + self.dropout3(self.ff(self.norm3(x)))
        else:
            a, w_self = self.self_attn(x, ctx, ctx, self_mask)
            x = self.norm1(x + self.dropout1(a))
            a, w_cross = self.cross_attn(x, memory, memory, cross_mask)
            x = self.norm2(x + self.dropout2(a))
            x = self.norm3(x + self.dropout3(self.ff(x)))
        return x, w_self, w_cross

    @classmethod
    def from_torch(cls, layer: nn.TransformerDecoderLayer) -> "DecoderLayer":
        """Our layer with the weights of a torch `nn.TransformerDecoderLayer`."""
        if not isinstance(layer, nn.TransformerDecoderLayer):
            raise TypeError(f"DecoderLayer.from_torch: expected nn.TransformerDecoderLayer, got {type(layer).__name__}")
        sa = layer.self_attn
        ours = cls(sa.embed_dim, sa.num_heads, layer.linear1.out_features, layer.dropout.p, layer.norm_first,
                   _torch_activation(layer), layer.norm1.eps)
        ours.self_attn = MultiHeadAttention.from_torch(sa)
        ours.cross_attn = MultiHeadAttention.from_torch(layer.multihead_attn)
        _copy_linear(ours.ff.linear1, layer.linear1)
        _copy_linear(ours.ff.linear2, layer.linear2)
        for mine, theirs in ((ours.norm1, layer.norm1), (ours.norm2, layer.norm2), (ours.norm3, layer.norm3)):
            mine.load_state_dict(theirs.state_dict())
        return ours.train(layer.training)


class Encoder(nn.Module):
    """N encoder layers; pre-LN adds a final LayerNorm (the last residual sum was never normalised)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.norm_first,
                                                 cfg.activation, cfg.layer_norm_eps)
                                    for _ in range(cfg.n_encoder_layers))
        self.norm = LayerNorm(cfg.d_model, cfg.layer_norm_eps) if cfg.norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask)
            weights.append(w)
        return self.norm(x), weights


class Decoder(nn.Module):
    """N decoder layers, each attending to the same encoder output; final LayerNorm for pre-LN."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, cfg.norm_first,
                                                 cfg.activation, cfg.layer_norm_eps)
                                    for _ in range(cfg.n_decoder_layers))
        self.norm = LayerNorm(cfg.d_model, cfg.layer_norm_eps) if cfg.norm_first else nn.Identity()

    def forward(self, x, memory, self_mask=None, cross_mask=None):
        self_w, cross_w = [], []
        for layer in self.layers:
            x, ws, wc = layer(x, memory, self_mask, cross_mask)
            self_w.append(ws)
            cross_w.append(wc)
        return self.norm(x), self_w, cross_w


# ----------------------------------------------------------------------------- masks
def decoder_self_mask(tgt: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, T) target ids -> (B, T, T) bool mask, True = query i may attend to key j.

    Position i may look at position j when j <= i (no peeking at the future: causal) AND
    token j is not padding. Padding blocks *keys* (the last axis); a padded query row still
    sees its real prefix, so it never becomes an all-blocked row.

    >>> decoder_self_mask(torch.tensor([[5, 6, 0]]), pad_id=0)[0].int()
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 1, 0]], dtype=torch.int32)
    """
    if not isinstance(tgt, torch.Tensor) or tgt.dim() != 2 or tgt.is_floating_point():
        raise TypeError(f"decoder_self_mask: tgt must be a (B, T) integer tensor of token ids, got "
                        f"{type(tgt).__name__}{'' if not isinstance(tgt, torch.Tensor) else f' {tuple(tgt.shape)} {tgt.dtype}'}")
    keys = tgt != pad_id                                               # (B, T)   real tokens
    return causal_mask(tgt.shape[1], device=tgt.device)[None] & keys[:, None, :]   # (B, T, T)


def _check_ids(name: str, x, fn: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.is_floating_point() or x.dtype == torch.bool:
        got = f"{type(x).__name__}" + (f" of shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, torch.Tensor) else "")
        raise TypeError(f"{fn}: {name} must be a (B, T) tensor of integer token ids, got {got}")


# ----------------------------------------------------------------------------- the model
class Seq2SeqTransformer(nn.Module):
    """The encoder-decoder transformer with one shared, tied embedding matrix E (V, d).

    forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V): position t predicts tgt_in[:, t + 1]
    (teacher forcing). `encode` and `decode` are separate so decoding runs the encoder once.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if not isinstance(cfg, TransformerConfig):
            raise TypeError(f"Seq2SeqTransformer: cfg must be a TransformerConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = SinusoidalPositionalEncoding(cfg.d_model, cfg.max_len)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform for every matrix (as the reference implementations), N(0, 1/d) for E.

        With E ~ N(0, 1/d), sqrt(d) * E has unit-variance entries, the same scale as the
        positional encoding, and the tied output logits h . e start with variance ~1.
        """
        for name, p in self.named_parameters():
            if p.dim() > 1 and not name.startswith("embed"):
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.embed.weight, std=self.cfg.d_model ** -0.5)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:   # (B, T) -> (B, T, d)
        """sqrt(d_model) * E[ids] + PE, then dropout (the paper scales so E and PE have comparable size)."""
        return self.drop(self.pos(self.embed(ids) * math.sqrt(self.cfg.d_model)))

    def encode(self, src: torch.Tensor, return_attention: bool = False):
        """src (B, S) -> memory (B, S, d), src_mask (B, 1, S) [, encoder self-attention weights per layer]."""
        _check_ids("src", src, "encode")
        src_mask = (src != self.cfg.pad_id)[:, None, :]                       # (B, 1, S) keys that are real
        memory, weights = self.encoder(self.embed_tokens(src), src_mask)
        return (memory, src_mask, weights) if return_attention else (memory, src_mask)

    def project(self, h: torch.Tensor) -> torch.Tensor:   # (..., d) -> (..., V)
        """Output scores: h @ E^T with the tied embedding (or the separate head when untied)."""
        return h @ self.embed.weight.T if self.lm_head is None else self.lm_head(h)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
               return_attention: bool = False, last_only: bool = False):
        """tgt_in (B, T), memory (B, S, d), src_mask (B, 1, S) -> logits (B, T, V) [, self and cross weights].

        last_only=True projects only the last position, (B, V): what decoding needs, V/T times cheaper.
        """
        _check_ids("tgt_in", tgt_in, "decode")
        self_mask = decoder_self_mask(tgt_in, self.cfg.pad_id)                # (B, T, T)
        h, w_self, w_cross = self.decoder(self.embed_tokens(tgt_in), memory, self_mask, src_mask)
        logits = self.project(h[:, -1] if last_only else h)                   # (B, T, V) or (B, V)
        return (logits, w_self, w_cross) if return_attention else logits

    def decode_next(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
                    cache: list) -> torch.Tensor:
        """Scores (B, V) for the token after tgt_in (B, T), computing only the newest position.

        `cache` (a list, one entry per decoder layer, start with []) keeps every layer's inputs for
        the earlier positions; they cannot change (the decoder is causal), so each step runs the
        layers on one position and attends to the cached ones: O(T) work per step, not O(T^2).
        Reorder the rows of every cache entry when beams are reordered (`reorder_cache`).
        """
        T, d = tgt_in.shape[1], self.cfg.d_model
        pe = self.pos.pe[T - 1] if T <= self.pos.pe.shape[0] else \
            SinusoidalPositionalEncoding(d, T).pe[T - 1].to(tgt_in.device)
        x = self.drop(self.embed(tgt_in[:, -1:]) * math.sqrt(d) + pe)            # (B, 1, d) newest position
        key_mask = (tgt_in != self.cfg.pad_id)[:, None, :]                       # (B, 1, T) real keys
        for i, layer in enumerate(self.decoder.layers):
            ctx = x if len(cache) <= i else torch.cat([cache[i], x], dim=1)     # (B, T, d) inputs so far
            cache[i:i + 1] = [ctx]
            x, _, _ = layer(x, memory, key_mask, src_mask, context=ctx)
        return self.project(self.decoder.norm(x)[:, -1])                         # (B, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, return_attention: bool = False):
        _check_ids("src", src, "Seq2SeqTransformer")
        _check_ids("tgt_in", tgt_in, "Seq2SeqTransformer")
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"Seq2SeqTransformer: src and tgt_in need the same batch size, got "
                             f"{src.shape[0]} and {tgt_in.shape[0]}")
        if return_attention:
            memory, src_mask, w_enc = self.encode(src, return_attention=True)
            logits, w_self, w_cross = self.decode(tgt_in, memory, src_mask, return_attention=True)
            return logits, {"encoder": w_enc, "decoder_self": w_self, "cross": w_cross}
        memory, src_mask = self.encode(src)
        return self.decode(tgt_in, memory, src_mask)


def count_parameters(module: nn.Module) -> int:
    """Number of distinct trainable numbers (a tied matrix counts once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- decoding
def _strip(ids: Sequence[int], cfg: TransformerConfig) -> list[int]:
    """Token ids after BOS up to (not including) the first EOS; padding removed."""
    out = []
    for i in ids:
        if i == cfg.eos_id:
            break
        if i not in (cfg.pad_id, cfg.bos_id):
            out.append(int(i))
    return out


def _max_new(src: torch.Tensor, max_new_tokens: int | None) -> int:
    if max_new_tokens is None:
        return int(1.5 * src.shape[1]) + 10
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    return max_new_tokens


@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, src: torch.Tensor, max_new_tokens: int | None = None,
                  use_cache: bool = True) -> list[list[int]]:
    """Translate a batch by always taking the most probable next token. src (B, S) -> B lists of ids (no BOS/EOS).

    The encoder runs once; at every step the decoder scores the next token and we keep the
    argmax. use_cache=False re-reads the whole prefix every step (same result, slower: the
    reference the cache is tested against). Finished rows receive padding until all are done.
    """
    _check_ids("src", src, "greedy_decode")
    cfg = model.cfg
    was_training = model.training
    model.eval()
    memory, src_mask = model.encode(src)
    ys = torch.full((src.shape[0], 1), cfg.bos_id, dtype=torch.long, device=src.device)   # (B, 1)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    cache: list = []
    for _ in range(_max_new(src, max_new_tokens)):
        logits = (model.decode_next(ys, memory, src_mask, cache) if use_cache
                  else model.decode(ys, memory, src_mask, last_only=True))    # (B, V) the next token's scores
        nxt = logits.argmax(dim=-1).masked_fill(done, cfg.pad_id)         # (B,)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == cfg.eos_id
        if done.all():
            break
    model.train(was_training)
    return [_strip(row.tolist(), cfg) for row in ys]


def length_penalty(length: torch.Tensor | int, alpha: float = 0.6) -> torch.Tensor | float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016). Scores log P(Y) / lp(Y) compare lengths fairly.

    A sum of log-probabilities only falls as a sentence grows, so raw scores prefer short
    outputs; alpha = 0 switches the correction off, alpha = 1 divides by (roughly) the length.

    >>> length_penalty(1, 0.6)
    1.0
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"length_penalty: alpha must be a number >= 0, got {alpha!r}")
    return ((5 + length) / 6) ** alpha


def beam_step(scores: torch.Tensor, log_probs: torch.Tensor, beam_size: int):
    """One step of beam search: extend every beam by every token, keep the `beam_size` best.

    scores (K,) or (B, K): log P of each beam so far. log_probs (K, V) or (B, K, V): log p(next | beam).
    A candidate's score is scores[k] + log_probs[k, v] (probabilities multiply, so logs add).
    Returns (new_scores, parent beam, token), each (beam_size,) or (B, beam_size), best first.

    >>> s, parent, tok = beam_step(torch.tensor([0.0, -1.0]), torch.tensor([[-2.0, -0.1], [-0.2, -3.0]]), 2)
    >>> s, parent, tok
    (tensor([-0.1000, -1.2000]), tensor([0, 1]), tensor([1, 0]))
    """
    if not isinstance(scores, torch.Tensor) or not isinstance(log_probs, torch.Tensor):
        raise TypeError("beam_step: scores and log_probs must be tensors")
    batched = scores.dim() == 2
    if scores.dim() not in (1, 2) or log_probs.dim() != scores.dim() + 1 or log_probs.shape[:-1] != scores.shape:
        raise ValueError(f"beam_step: expected scores (K,) with log_probs (K, V), or (B, K) with (B, K, V); got "
                         f"{tuple(scores.shape)} and {tuple(log_probs.shape)}")
    if not batched:
        scores, log_probs = scores[None], log_probs[None]
    B, K, V = log_probs.shape
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or not 1 <= beam_size <= K * V:
        raise ValueError(f"beam_step: beam_size must be an int in [1, K*V={K * V}], got {beam_size!r}")
    total = scores[..., None] + log_probs                          # (B, K, V) log P(beam + token)
    best, flat = total.reshape(B, K * V).topk(beam_size, dim=-1)   # (B, beam_size) over all K*V candidates
    parent, token = flat // V, flat % V                            # which beam, which token
    return (best, parent, token) if batched else (best[0], parent[0], token[0])


@torch.no_grad()
def beam_search(model: Seq2SeqTransformer, src: torch.Tensor, beam_size: int = 4, alpha: float = 0.6,
                max_new_tokens: int | None = None, trace: bool = False, use_cache: bool = True):
    """Keep the `beam_size` most probable prefixes per sentence; return the best finished one.

    src (B, S) -> B lists of ids. Beams are ranked by their summed log-probability while
    searching; among the final beams the winner maximises log P / length_penalty(len, alpha).
    A finished beam (it produced EOS) stays in the beam with its score frozen: its only
    continuation is padding, with log-probability 0.
    trace=True (B = 1 only) also returns the search step by step: a list of dicts with the
    kept tokens, their parent beams and scores, to draw the beam as a tree.
    """
    _check_ids("src", src, "beam_search")
    if trace and src.shape[0] != 1:
        raise ValueError(f"beam_search: trace=True needs a single sentence, got a batch of {src.shape[0]}")
    length_penalty(1, alpha)
    cfg, B, K = model.cfg, src.shape[0], beam_size
    was_training = model.training
    model.eval()
    memory, src_mask = model.encode(src)                                  # (B, S, d), (B, 1, S)
    memory = memory.repeat_interleave(K, dim=0)                           # (B*K, S, d)  beam k of sentence b
    src_mask = src_mask.repeat_interleave(K, dim=0)                       # at row b*K + k
    seqs = torch.full((B, K, 1), cfg.bos_id, dtype=torch.long, device=src.device)
    scores = torch.full((B, K), float("-inf"), device=src.device)
    scores[:, 0] = 0.0                                                    # all beams start equal: expand one
    finished = torch.zeros(B, K, dtype=torch.bool, device=src.device)
    steps, cache = [], []
    rows = torch.arange(B, device=src.device)[:, None] * K                  # (B, 1) first row of each sentence
    for _ in range(_max_new(src, max_new_tokens)):
        flat = seqs.view(B * K, -1)
        logits = (model.decode_next(flat, memory, src_mask, cache) if use_cache
                  else model.decode(flat, memory, src_mask, last_only=True))    # (B*K, V)
        logp = logits.float().log_softmax(-1).view(B, K, -1)                    # (B, K, V)
        frozen = torch.full_like(logp[0, 0], float("-inf"))
        frozen[cfg.pad_id] = 0.0                                                # finished: pad, no cost
        logp = torch.where(finished[..., None], frozen, logp)
        scores, parent, token = beam_step(scores, logp, K)                     # (B, K) each
        seqs = torch.cat([seqs.gather(1, parent[..., None].expand(-1, -1, seqs.shape[-1])), token[..., None]], -1)
        finished = finished.gather(1, parent) | (token == cfg.eos_id)
        cache[:] = [c[(rows + parent).view(-1)] for c in cache]               # each kept beam's history
        if trace:
            steps.append({"token": token[0].tolist(), "parent": parent[0].tolist(), "score": scores[0].tolist(),
                          "finished": finished[0].tolist()})
        if finished.all():
            break
    lengths = (seqs[..., 1:] != cfg.pad_id).sum(-1)                              # tokens incl. EOS
    best = (scores / length_penalty(lengths.float(), alpha)).argmax(-1)          # (B,)
    model.train(was_training)
    out = [_strip(seqs[b, best[b]].tolist(), cfg) for b in range(B)]
    return (out, steps) if trace else out


# ----------------------------------------------------------------------------- batching
def batch_by_length(lengths: Sequence[int], max_tokens: int, shuffle: bool = True, seed: int = 0) -> list[list[int]]:
    """Group example indices into batches of similar length, each padded batch <= max_tokens tokens.

    Sorting by length means little padding (a batch of 5-token sentences is not padded to 40);
    a batch's cost is (number of sentences) x (its longest), so batches of short sentences hold
    more of them. shuffle: random order of batches (and of equal-length examples), fixed by seed.

    >>> batch_by_length([3, 9, 4, 8], max_tokens=18, shuffle=False)
    [[0, 2], [3, 1]]
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"batch_by_length: max_tokens must be a positive int, got {max_tokens!r}")
    lengths = list(lengths)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths):
        raise ValueError("batch_by_length: lengths must be positive ints")
    if lengths and max(lengths) > max_tokens:
        raise ValueError(f"batch_by_length: an example of length {max(lengths)} does not fit max_tokens={max_tokens}")
    rng = random.Random(seed)
    keys = [(n, rng.random() if shuffle else i) for i, n in enumerate(lengths)]
    order = sorted(range(len(lengths)), key=lambda i: keys[i])
    batches, current, longest = [], [], 0
    for i in order:
        if current and max(longest, lengths[i]) * (len(current) + 1) > max_tokens:
            batches.append(current)                  # adding i would overflow: close the batch
            current, longest = [], 0
        current.append(i)
        longest = max(longest, lengths[i])
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Right-pad lists of ids to a (B, T_max) long tensor.

    >>> pad_batch([[5, 6, 7], [8]], pad_id=0)
    tensor([[5, 6, 7],
            [8, 0, 0]])
    """
    if not seqs:
        raise ValueError("pad_batch: seqs is empty")
    T = max(len(s) for s in seqs)
    if T == 0:
        raise ValueError("pad_batch: every sequence is empty")
    return torch.tensor([list(s) + [pad_id] * (T - len(s)) for s in seqs], dtype=torch.long)


def make_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], cfg: TransformerConfig):
    """(source ids, target ids) pairs -> src (B, S), tgt_in (B, T), tgt_out (B, T).

    src = x + [EOS];  tgt_in = [BOS] + y;  tgt_out = y + [EOS]   (tgt_in shifted left by one).
    """
    src = pad_batch([list(x) + [cfg.eos_id] for x, _ in pairs], cfg.pad_id)
    tgt_in = pad_batch([[cfg.bos_id] + list(y) for _, y in pairs], cfg.pad_id)
    tgt_out = pad_batch([list(y) + [cfg.eos_id] for _, y in pairs], cfg.pad_id)
    return src, tgt_in, tgt_out


def translate(model: Seq2SeqTransformer, tokenizer, sentences: Sequence[str], beam_size: int = 1,
              alpha: float = 0.6, batch_size: int = 64, progress: bool = False,
              max_new_tokens: int | None = None) -> list[str]:
    """Translate strings with any tokenizer that has encode(str) -> ids and decode(ids) -> str.

    Sentences are decoded in batches of similar length (less padding), then put back in order.
    beam_size=1 is greedy decoding.
    """
    if isinstance(sentences, str):
        raise TypeError("translate: sentences must be a list of strings, got a single str (wrap it in a list)")
    device = next(model.parameters()).device
    cfg = model.cfg
    ids = [tokenizer.encode(s)[: cfg.max_len - 1] + [cfg.eos_id] for s in sentences]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[str | None] = [None] * len(ids)
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc="greedy" if beam_size == 1 else f"beam {beam_size}")
    for chunk in chunks:
        src = pad_batch([ids[i] for i in chunk], cfg.pad_id).to(device)
        hyps = (greedy_decode(model, src, max_new_tokens) if beam_size == 1
                else beam_search(model, src, beam_size, alpha, max_new_tokens))
        for i, h in zip(chunk, hyps):
            out[i] = tokenizer.decode(h)
    return out


# ----------------------------------------------------------------------------- training on sentence pairs
def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], max_len: int = 64) -> list[tuple[list[int], list[int]]]:
    """(german, english) strings -> (source ids, target ids), each cut to max_len - 1 tokens (room for BOS/EOS)."""
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"encode_pairs: max_len must be an int >= 2, got {max_len!r}")
    return [(tokenizer.encode(de)[: max_len - 1], tokenizer.encode(en)[: max_len - 1]) for de, en in pairs]


def length_batches(encoded: Sequence[tuple[list[int], list[int]]], cfg: TransformerConfig, max_tokens: int,
                   seed: int = 0, epochs: int | None = None, device=None):
    """Yield (src, tgt_in, tgt_out) batches grouped by length, reshuffled every epoch; endless if epochs is None.

    A batch's size is counted as (sentences) x (longest side + 1), so every step costs about the same.
    """
    lengths = [max(len(x), len(y)) + 1 for x, y in encoded]
    epoch = 0
    while epochs is None or epoch < epochs:
        for idx in batch_by_length(lengths, max_tokens, shuffle=True, seed=seed + epoch):
            src, tgt_in, tgt_out = make_batch([encoded[i] for i in idx], cfg)
            yield src.to(device), tgt_in.to(device), tgt_out.to(device)
        epoch += 1


def shorter_half(encoded: Sequence[tuple[list[int], list[int]]]) -> list[tuple[list[int], list[int]]]:
    """The pairs whose longer side is at most the median length: the first stage of a curriculum."""
    if not encoded:
        raise ValueError("shorter_half: no pairs given; pass encode_pairs(tokenizer, pairs) of a non-empty list")
    lengths = [max(len(x), len(y)) for x, y in encoded]
    median = sorted(lengths)[len(lengths) // 2]
    return [pair for pair, n in zip(encoded, lengths) if n <= median]


def curriculum_batches(encoded: Sequence[tuple[list[int], list[int]]], cfg: TransformerConfig, max_tokens: int,
                       short_seconds: float, seed: int = 0, device=None):
    """Length batches of `shorter_half(encoded)` for `short_seconds` of wall clock, then of all pairs (endless).

    A curriculum: short pairs teach word order and frequent words cheaply, before long ones add
    their noise. The clock starts at the first batch drawn; short_seconds=0 turns it off.
    """
    if not short_seconds >= 0:
        raise ValueError(f"curriculum_batches: short_seconds must be >= 0 seconds, got {short_seconds!r}")
    if short_seconds > 0:
        start = time.perf_counter()
        for batch in length_batches(shorter_half(encoded), cfg, max_tokens, seed, device=device):
            if time.perf_counter() - start >= short_seconds:
                break
            yield batch
    yield from length_batches(encoded, cfg, max_tokens, seed, device=device)


def seq2seq_loss(model: Seq2SeqTransformer, batch, smoothing: float = 0.1) -> tuple[torch.Tensor, int]:
    """Teacher-forced, label-smoothed loss of a (src, tgt_in, tgt_out) batch and its number of target tokens.

    The loss function `course_utils.train.train_for` expects: (mean loss per real token, tokens).
    """
    from course_utils.train import label_smoothed_cross_entropy

    src, tgt_in, tgt_out = batch
    logits = model(src, tgt_in)                                            # (B, T, V)
    loss = label_smoothed_cross_entropy(logits, tgt_out, smoothing, ignore_index=model.cfg.pad_id)
    return loss, int((tgt_out != model.cfg.pad_id).sum())


@torch.no_grad()
def mean_loss(model: Seq2SeqTransformer, batches, smoothing: float = 0.0) -> float:
    """Average per-token loss over batches (smoothing 0: the plain cross-entropy, exp() of it is perplexity)."""
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    for batch in batches:
        loss, k = seq2seq_loss(model, batch, smoothing)
        total, n = total + float(loss) * k, n + k
    model.train(was_training)
    if n == 0:
        raise ValueError("mean_loss: no target tokens in the batches")
    return total / n


SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")


def shared_tokenizer(pairs: Sequence[tuple[str, str]], vocab_size: int, cache: str | None = None, progress: bool = False):
    """A byte-level BPE (notebook 03) trained on both sides of `pairs`: one vocabulary for German and English.

    Special tokens <pad>, <s>, </s> come last (ids vocab_size-3 .. vocab_size-1); `config_ids(tok)`
    gives them as TransformerConfig arguments. cache: a path prefix; if `<cache>.json` exists it is
    loaded instead of retrained (training takes ~10 s per 4k merges on a laptop core).
    """
    from pathlib import Path

    from course_utils.bytelevel import ByteLevelBPE

    if cache is not None and Path(str(cache) + ".json").exists():
        tok = ByteLevelBPE.load(str(cache) + ".json")
        if len(tok) == vocab_size:
            return tok
    text = "\n".join(f"{de}\n{en}" for de, en in pairs)
    tok = ByteLevelBPE(special_tokens=SPECIAL_TOKENS).train(text, vocab_size, progress=progress)
    if cache is not None:
        tok.save(cache)
    return tok


def config_ids(tokenizer) -> dict:
    """{"vocab_size", "pad_id", "bos_id", "eos_id"} of a tokenizer made by `shared_tokenizer`."""
    sp = tokenizer.special_tokens
    return {"vocab_size": len(tokenizer), "pad_id": sp["<pad>"], "bos_id": sp["<s>"], "eos_id": sp["</s>"]}
