"""The encoder-decoder transformer of Vaswani et al. (2017), built on `course_utils.attention`.

Notebook 04 builds it and trains a German->English translator with it. This module is the model
only, nanoGPT style: a config dataclass, then small modules bottom-up (LayerNorm, FeedForward,
EncoderLayer, DecoderLayer, Encoder, Decoder, Seq2SeqTransformer). Decoding (greedy, beam search,
`translate`) is `course_utils.decoding`; data, training and checkpoints of the translator are
`course_utils.translation`. Both import this module, never the reverse.

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
  LayerNorm after each stack) trains more stably without warm-up; both are here, in one
  place (`residual`).
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
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.attention import MultiHeadAttention, causal_mask
from course_utils.checks import check_choice, check_fields, check_int, check_number, check_tensor
from course_utils.positional import SinusoidalPositionalEncoding

__all__ = [
    "TransformerConfig",
    "LayerNorm",
    "FeedForward",
    "residual",
    "EncoderLayer",
    "DecoderLayer",
    "Encoder",
    "Decoder",
    "Seq2SeqTransformer",
    "decoder_self_mask",
]


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
    max_len: int = 256  # longest sequence the position table is built for (longer ones still work)
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    norm_first: bool = False  # False: post-LN as in the paper; True: pre-LN
    activation: str = "relu"
    layer_norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self):
        fn = "TransformerConfig"
        check_fields(fn, self, ("vocab_size", "d_model", "n_heads", "d_ff", "max_len"))
        check_fields(fn, self, ("n_encoder_layers", "n_decoder_layers"), low=0)
        if self.d_model % self.n_heads:
            raise ValueError(f"{fn}: d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.d_model % 2:
            raise ValueError(f"{fn}: d_model must be even (sin/cos position pairs), got {self.d_model}")
        check_number(fn, "dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        for name in ("pad_id", "bos_id", "eos_id"):  # token ids: in [0, vocab_size)
            check_int(fn, name, getattr(self, name), low=0, high=self.vocab_size - 1)
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError(
                f"{fn}: pad_id, bos_id and eos_id must differ, got {self.pad_id}, {self.bos_id}, {self.eos_id}"
            )
        check_choice(fn, "activation", self.activation, ("relu", "gelu"))


def check_ids(fn: str, name: str, ids) -> torch.Tensor:
    """A (B, T) tensor of integer token ids (what every entry point of the model and of decoding takes)."""
    return check_tensor(fn, name, ids, dim=2, dtype="int", shape="(B, T)")


# ----------------------------------------------------------------------------- building blocks
class LayerNorm(nn.Module):
    """y = gamma * (h - mu) / sigma + beta per token, with mu and sigma over its D features (Ba et al. 2016).

    sigma = sqrt(mean_j (h_j - mu)^2 + eps): the *mean* of the squares (the formula in the lecture
    notes, CS 4644/7643 (Kira), omits the 1/D, which would shrink every output by sqrt(D)), plus a
    small eps so a constant vector does not divide by zero. Same parameters (`weight` = gamma,
    `bias` = beta) as `nn.LayerNorm`.
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))  # gamma (D,)
        self.bias = nn.Parameter(torch.zeros(d_model))  # beta  (D,)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        mu = h.mean(dim=-1, keepdim=True)  # (..., 1)
        sigma = ((h - mu).pow(2).mean(dim=-1, keepdim=True) + self.eps).sqrt()
        return self.weight * (h - mu) / sigma + self.bias


class FeedForward(nn.Module):
    """FFN(x) = W2 act(W1 x + b1) + b2, applied to every position on its own: d_model -> d_ff -> d_model."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.linear1 = nn.Linear(config.d_model, config.d_ff)
        self.linear2 = nn.Linear(config.d_ff, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.act = F.relu if config.activation == "relu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        return self.linear2(self.dropout(self.act(self.linear1(x))))


def residual(x: torch.Tensor, sublayer: Callable, norm: nn.Module, dropout: nn.Module, norm_first: bool):
    """One residual branch around `sublayer(h) -> (y, extra)`; returns (new x, extra).

    post-LN (the paper): x = LN(x + Drop(Sublayer(x)));  pre-LN: x = x + Drop(Sublayer(LN(x))).
    `extra` is whatever the sublayer returns beside its output: an attention's weights, None for the FFN.
    Every sublayer of EncoderLayer and DecoderLayer goes through here, so the two orders live in one place.
    """
    y, extra = sublayer(norm(x) if norm_first else x)  # (B, T, d)
    x = x + dropout(y)
    return (x if norm_first else norm(x)), extra


def _torch_activation(layer) -> str:
    act = layer.activation  # a function (F.relu, F.gelu) or a module (nn.ReLU(), nn.GELU())
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if (act is F.gelu or isinstance(act, nn.GELU)) and getattr(act, "approximate", "none") == "none":
        return "gelu"
    raise ValueError(f"from_torch: only relu and gelu activations are supported, got {layer.activation!r}")


class _TorchLoadable(nn.Module):
    """`from_torch`, shared by EncoderLayer and DecoderLayer: same sizes, same weights as a torch layer.

    torch names the parts as we do (linear1/2, norm1/2/3), except the FFN (ours is `ff.linear1/2`)
    and the cross-attention (`multihead_attn`, ours `cross_attn`).
    """

    torch_type: type = nn.Module  # the torch layer a subclass mirrors

    @classmethod
    def from_torch(cls, layer: nn.Module):
        """Our layer with the weights of a torch layer of `cls.torch_type` (our forward is batch-first)."""
        if not isinstance(layer, cls.torch_type):
            raise TypeError(
                f"{cls.__name__}.from_torch: expected nn.{cls.torch_type.__name__}, got {type(layer).__name__}"
            )
        sa = layer.self_attn
        config = TransformerConfig(
            d_model=sa.embed_dim,
            n_heads=sa.num_heads,
            d_ff=layer.linear1.out_features,
            dropout=layer.dropout.p,
            norm_first=layer.norm_first,
            activation=_torch_activation(layer),
            layer_norm_eps=layer.norm1.eps,
        )
        ours = cls(config)
        ours.self_attn = MultiHeadAttention.from_torch(sa)
        if hasattr(ours, "cross_attn"):
            ours.cross_attn = MultiHeadAttention.from_torch(layer.multihead_attn)
        ours.ff.linear1.load_state_dict(layer.linear1.state_dict())
        ours.ff.linear2.load_state_dict(layer.linear2.state_dict())
        for name in ("norm1", "norm2", "norm3"):
            if hasattr(ours, name):
                getattr(ours, name).load_state_dict(getattr(layer, name).state_dict())
        return ours.train(layer.training)


class EncoderLayer(_TorchLoadable):
    """Self-attention then a feed-forward network, each wrapped in a residual connection and LayerNorm.

    post-LN (paper): x = LN(x + Drop(SelfAttn(x)));  x = LN(x + Drop(FFN(x)))
    pre-LN:          x = x + Drop(SelfAttn(LN(x)));  x = x + Drop(FFN(LN(x)))
    forward(x (B, S, d), mask (B, 1, S) or (B, S, S), True = may attend) -> (x (B, S, d), weights (B, h, S, S)).
    """

    torch_type = nn.TransformerEncoderLayer

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.ff = FeedForward(config)
        self.norm1, self.norm2 = (LayerNorm(config.d_model, config.layer_norm_eps) for _ in range(2))
        self.dropout = nn.Dropout(config.dropout)
        self.norm_first = config.norm_first

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, w = residual(x, lambda h: self.self_attn(h, h, h, mask), self.norm1, self.dropout, self.norm_first)
        x, _ = residual(x, lambda h: (self.ff(h), None), self.norm2, self.dropout, self.norm_first)
        return x, w


class DecoderLayer(_TorchLoadable):
    """Masked self-attention, cross-attention to the encoder's output, a feed-forward network.

    post-LN: x = LN(x + SelfAttn(x, causal & padding mask)); x = LN(x + CrossAttn(x, memory)); x = LN(x + FFN(x))
    Queries of the cross-attention come from the decoder, keys and values from the encoder
    (`memory`): each target position looks at the whole source, which is where alignment happens.
    forward(x (B, T, d), memory (B, S, d), self_mask (B, T, T), cross_mask (B, 1, S))
      -> (x (B, T, d), self weights (B, h, T, T), cross weights (B, h, T, S)).
    """

    torch_type = nn.TransformerDecoderLayer

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.self_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.cross_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.ff = FeedForward(config)
        self.norm1, self.norm2, self.norm3 = (LayerNorm(config.d_model, config.layer_norm_eps) for _ in range(3))
        self.dropout = nn.Dropout(config.dropout)
        self.norm_first = config.norm_first

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        cross_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """context: keys/values of the self-attention when x holds only the newest positions (decoding
        with a cache: x (B, 1, d), context (B, T, d) = this layer's inputs so far, x last). Default x."""

        def self_attention(h):  # h: x, normalised first for pre-LN; the context the same way
            kv = h if context is None else (self.norm1(context) if self.norm_first else context)
            return self.self_attn(h, kv, kv, self_mask)

        x, w_self = residual(x, self_attention, self.norm1, self.dropout, self.norm_first)
        x, w_cross = residual(
            x, lambda h: self.cross_attn(h, memory, memory, cross_mask), self.norm2, self.dropout, self.norm_first
        )
        x, _ = residual(x, lambda h: (self.ff(h), None), self.norm3, self.dropout, self.norm_first)
        return x, w_self, w_cross


class Encoder(nn.Module):
    """N encoder layers; pre-LN adds a final LayerNorm (the last residual sum was never normalised)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_encoder_layers))
        self.norm = LayerNorm(config.d_model, config.layer_norm_eps) if config.norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask)
            weights.append(w)
        return self.norm(x), weights


class Decoder(nn.Module):
    """N decoder layers, each attending to the same encoder output; final LayerNorm for pre-LN."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_decoder_layers))
        self.norm = LayerNorm(config.d_model, config.layer_norm_eps) if config.norm_first else nn.Identity()

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
    check_ids("decoder_self_mask", "tgt", tgt)
    keys = tgt != pad_id  # (B, T)   real tokens
    return causal_mask(tgt.shape[1], device=tgt.device)[None] & keys[:, None, :]  # (B, T, T)


# ----------------------------------------------------------------------------- the model
class Seq2SeqTransformer(nn.Module):
    """The encoder-decoder transformer with one shared, tied embedding matrix E (V, d).

    forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V): position t predicts tgt_in[:, t + 1]
    (teacher forcing). `encode` and `decode` are separate so decoding runs the encoder once.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"Seq2SeqTransformer: config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = SinusoidalPositionalEncoding(config.d_model, config.max_len)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform for every matrix (as the reference implementations), N(0, 1/d) for E.

        With E ~ N(0, 1/d), sqrt(d) * E has unit-variance entries, the same scale as the
        positional encoding, and the tied output logits h . e start with variance ~1.
        """
        for name, p in self.named_parameters():
            if p.dim() > 1 and not name.startswith("embed"):
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.embed.weight, std=self.config.d_model**-0.5)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, d)
        """sqrt(d_model) * E[ids] + PE, then dropout (the paper scales so E and PE have comparable size)."""
        return self.drop(self.pos(self.embed(ids) * math.sqrt(self.config.d_model)))

    def encode(self, src: torch.Tensor, return_attention: bool = False):
        """src (B, S) -> memory (B, S, d), src_mask (B, 1, S) [, encoder self-attention weights per layer]."""
        check_ids("encode", "src", src)
        src_mask = (src != self.config.pad_id)[:, None, :]  # (B, 1, S) keys that are real
        memory, weights = self.encoder(self.embed_tokens(src), src_mask)
        return (memory, src_mask, weights) if return_attention else (memory, src_mask)

    def project(self, h: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., V)
        """Output scores: h @ E^T with the tied embedding (or the separate head when untied)."""
        return h @ self.embed.weight.T if self.lm_head is None else self.lm_head(h)

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        return_attention: bool = False,
        last_only: bool = False,
    ):
        """tgt_in (B, T), memory (B, S, d), src_mask (B, 1, S) -> logits (B, T, V) [, self and cross weights].

        last_only=True projects only the last position, (B, V): what decoding needs, V/T times cheaper.
        """
        check_ids("decode", "tgt_in", tgt_in)
        self_mask = decoder_self_mask(tgt_in, self.config.pad_id)  # (B, T, T)
        h, w_self, w_cross = self.decoder(self.embed_tokens(tgt_in), memory, self_mask, src_mask)
        logits = self.project(h[:, -1] if last_only else h)  # (B, T, V) or (B, V)
        return (logits, w_self, w_cross) if return_attention else logits

    def decode_next(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, cache: list
    ) -> torch.Tensor:
        """Scores (B, V) for the token after tgt_in (B, T), computing only the newest position.

        `cache` (a list, one entry per decoder layer, start with []) keeps every layer's inputs for
        the earlier positions; they cannot change (the decoder is causal), so each step runs the
        layers on one position and attends to the cached ones: O(T) work per step, not O(T^2).
        Reorder the rows of every cache entry when beams are reordered (`decoding.beam_search`).
        """
        T, d = tgt_in.shape[1], self.config.d_model
        pe = (
            self.pos.pe[T - 1]
            if T <= self.pos.pe.shape[0]
            else SinusoidalPositionalEncoding(d, T).pe[T - 1].to(tgt_in.device)
        )
        x = self.drop(self.embed(tgt_in[:, -1:]) * math.sqrt(d) + pe)  # (B, 1, d) newest position
        key_mask = (tgt_in != self.config.pad_id)[:, None, :]  # (B, 1, T) real keys
        for i, layer in enumerate(self.decoder.layers):
            ctx = x if len(cache) <= i else torch.cat([cache[i], x], dim=1)  # (B, T, d) inputs so far
            cache[i : i + 1] = [ctx]
            x, _, _ = layer(x, memory, key_mask, src_mask, context=ctx)
        return self.project(self.decoder.norm(x)[:, -1])  # (B, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, return_attention: bool = False):
        check_ids("Seq2SeqTransformer", "src", src)
        check_ids("Seq2SeqTransformer", "tgt_in", tgt_in)
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(
                f"Seq2SeqTransformer: src and tgt_in need the same batch size, got {src.shape[0]} and {tgt_in.shape[0]}"
            )
        if return_attention:
            memory, src_mask, w_enc = self.encode(src, return_attention=True)
            logits, w_self, w_cross = self.decode(tgt_in, memory, src_mask, return_attention=True)
            return logits, {"encoder": w_enc, "decoder_self": w_self, "cross": w_cross}
        memory, src_mask = self.encode(src)
        return self.decode(tgt_in, memory, src_mask)
