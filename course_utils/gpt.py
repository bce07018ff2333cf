"""A GPT (decoder-only transformer) in one readable file, nanoGPT style, built on our own attention.

    config -> token embedding (+ learned positions, or RoPE inside attention)
           -> n_layers x [x + attn(LN(x)), x + mlp(LN(x))]     (pre-LN blocks)
           -> LN -> lm_head (tied to the token embedding) -> logits (B, T, V)

Every piece is one small module, and the names of their weights are those of GPT-2
(`transformer.h.0.attn.c_attn.weight`, ...), so `to_hf_gpt2` can load our trained
weights into `transformers.GPT2LMHeadModel` and the logits can be compared (they agree
to 1e-5: tests/test_gpt.py and notebook 05).

Attention is `course_utils.attention.scaled_dot_product_attention` with a causal mask
(True = may attend): query i sees keys 0..i. Generation can keep a `KVCache`: the keys
and values of tokens already processed are stored per layer, so each new token costs
one position instead of re-running the whole prefix (notebook 08 measures the gain).

Concessions, admitted up front:
- The attention is the plain "math" version that materialises the (T, T) weights (the
  lesson of notebook 01); `attn_impl="torch"` switches to PyTorch's fused kernel, which
  is faster and gives the same numbers up to float rounding (tested).
- The KV cache holds at most `max_len` positions. With learned absolute positions a
  longer text cannot slide the window without shifting every position, so once the
  window is full `generate` recomputes the last `max_len` tokens each step: exactly
  what the uncached loop does, no faster.
- No weight decay groups, no flash tricks, no compile: training code lives in notebooks
  and `course_utils.train`.

Ablation switches (notebook 05's ladder: each part of the block earns its place by a
measurement): `attention` ("multi", "single" = one head as wide as d_model, "none"),
`mlp`, `residual`, `layer_norm`. With all of them off the model is a bigram (a lookup
table per token, plus its position). The defaults are the full GPT, bit-identical to the
model without switches (same seed, same weights, same state_dict keys: tested).

Why this file is long: the model, its ablation switches and its two-way bridge to
`transformers`' GPT-2 share one set of weight names; splitting them would make a student
read three files to see that our GPT and GPT-2 are the same network, and notebook 05's
ablation ladder must run this very code, not a second model file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.attention import merge_heads, scaled_dot_product_attention, split_heads
from course_utils.checks import check_choice, check_fields, check_int, check_number, check_tensor
from course_utils.kvcache import KVCache, shifted_causal_mask  # re-exported: notebook 05 builds GPT and cache together
from course_utils.positional import apply_rope
from course_utils.sampling import sample_next

__all__ = [
    "GPTConfig",
    "GPT",
    "KVCache",
    "CausalSelfAttention",
    "MLP",
    "Block",
    "causal_lm_loss",
    "to_hf_gpt2",
    "from_hf_gpt2",
    "hf_gpt2_config",
    "parameter_formula",
]


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class GPTConfig:
    """Sizes of a GPT. The defaults are GPT-2 small (124M parameters with the tied head).

    vocab_size: number of token ids; max_len: the longest context (positions 0..max_len-1);
    n_layers blocks of n_heads heads over d_model features; dropout on embeddings, attention
    weights and residual branches (0 for evaluation); bias: Linear/LayerNorm biases (GPT-2 has them);
    rope: rotary positions in attention instead of a learned position table;
    tie_embeddings: the output layer reuses the token embedding matrix (GPT-2 does);
    attn_impl: "course" (our attention, the weights can be inspected) or "torch" (fused, faster).
    Ablations (notebook 05): attention "multi" (n_heads heads), "single" (one head of d_model
    features) or "none" (no attention: no token sees another); mlp, residual (x + f(x) or just
    f(x)), layer_norm (off = no LayerNorm anywhere, final one included).
    """

    vocab_size: int = 50257
    max_len: int = 1024
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    dropout: float = 0.0
    bias: bool = True
    rope: bool = False
    tie_embeddings: bool = True
    attn_impl: str = "course"
    attention: str = "multi"
    mlp: bool = True
    residual: bool = True
    layer_norm: bool = True

    def __post_init__(self):
        check_fields("GPTConfig", self, ("vocab_size", "max_len", "n_layers", "n_heads", "d_model"))
        if self.d_model % self.n_heads:
            raise ValueError(f"GPTConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.rope and (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"GPTConfig: rope needs an even head size, got d_model/n_heads = {self.d_model // self.n_heads}"
            )
        check_number("GPTConfig", "dropout", self.dropout, low=0, high=1, high_open=True)
        check_choice("GPTConfig", "attn_impl", self.attn_impl, ("course", "torch"))
        check_choice("GPTConfig", "attention", self.attention, ("none", "single", "multi"))
        for name in ("mlp", "residual", "layer_norm"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"GPTConfig: {name} must be True or False, got {getattr(self, name)!r}")

    @property
    def heads(self) -> int:
        """Heads the attention really uses: n_heads, or 1 for attention="single"."""
        return 1 if self.attention == "single" else self.n_heads

    @property
    def head_size(self) -> int:
        return self.d_model // self.heads

    @property
    def is_full(self) -> bool:
        """All ablation switches at their defaults (the GPT-2 architecture)."""
        return self.attention == "multi" and self.mlp and self.residual and self.layer_norm


# ---------------------------------------------------------------------------------------------
# the modules
# ---------------------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and the past.

    One Linear makes q, k and v for all heads at once (`c_attn`, GPT-2's packing: q | k | v
    along the output features), `c_proj` mixes the heads back.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.c_attn = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)  # W_Q | W_K | W_V
        self.c_proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)  # W_O
        self.resid_dropout = nn.Dropout(config.dropout)
        self.last_weights: Optional[torch.Tensor] = None  # set when keep_weights is True (for plots)
        self.keep_weights = False

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: Optional[KVCache] = None,
        layer: int = 0,
        positions: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, d_model)
        h = self.config.heads
        q, k, v = self.c_attn(x).split(C, dim=-1)  # 3 x (B, T, C)
        q, k, v = split_heads(q, h), split_heads(k, h), split_heads(v, h)  # (B, h, T, d_head)
        if self.config.rope:  # rotate by absolute position
            q, k = apply_rope(q, positions), apply_rope(k, positions)
        t_past = 0
        if kv_cache is not None:
            t_past = kv_cache.stored(layer)
            k, v = kv_cache.update(layer, k, v)  # (B, h, t_past + T, d_head)
        p = self.config.dropout if self.training else 0.0
        if self.config.attn_impl == "torch" and not self.keep_weights:
            mask = None if t_past == 0 else shifted_causal_mask(T, t_past, x.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=mask is None)
        else:
            mask = shifted_causal_mask(T, t_past, x.device)  # (T, t_past + T), True = may attend
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)
            if self.keep_weights:
                self.last_weights = weights.detach()  # (B, h, T, t_past + T)
        return self.resid_dropout(self.c_proj(merge_heads(out)))  # (B, T, C)


class MLP(nn.Module):
    """Position-wise feed-forward: d_model -> 4 d_model -> GELU (tanh form, as GPT-2) -> d_model."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)), then x + mlp(LN(x)).

    LayerNorm *before* each sub-layer (GPT-2) leaves the residual path an identity from
    input to output, which trains stably without the warm-up tricks post-LN needs.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.residual = config.residual
        if config.attention != "none":  # (the ablation switches: see GPTConfig)
            self.ln_1 = _layer_norm(config)
            self.attn = CausalSelfAttention(config)
        if config.mlp:
            self.ln_2 = _layer_norm(config)
            self.mlp = MLP(config)

    def forward(self, x, kv_cache=None, layer=0, positions=None):
        if hasattr(self, "attn"):
            a = self.attn(self.ln_1(x), kv_cache, layer, positions)  # (B, T, C)
            x = x + a if self.residual else a
        if hasattr(self, "mlp"):
            m = self.mlp(self.ln_2(x))  # (B, T, C)
            x = x + m if self.residual else m
        return x


def _layer_norm(config: GPTConfig) -> nn.Module:
    """A LayerNorm over d_model, or the identity when the layer_norm ablation switch is off."""
    return nn.LayerNorm(config.d_model, bias=config.bias) if config.layer_norm else nn.Identity()


class GPT(nn.Module):
    """The decoder-only language model: token ids (B, T) -> next-token logits (B, T, vocab_size).

    >>> model = GPT(GPTConfig(vocab_size=10, max_len=8, n_layers=1, n_heads=2, d_model=8))
    >>> logits, loss = model(torch.zeros(2, 5, dtype=torch.long), targets=torch.zeros(2, 5, dtype=torch.long))
    >>> tuple(logits.shape), loss.shape
    ((2, 5, 10), torch.Size([]))
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT: config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.d_model),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layers)),
                ln_f=_layer_norm(config),
            )
        )
        if not config.rope:
            self.transformer["wpe"] = nn.Embedding(config.max_len, config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # one matrix: embed a token, and score it
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled down
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None, kv_cache: Optional[KVCache] = None
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """idx (B, T) int64 -> (logits (B, T, V), loss or None).

        targets (B, T): the id that should follow each position (already shifted, -100 = ignore);
        the loss is the mean cross-entropy in nats. With a kv_cache, idx holds only the new
        tokens and their positions continue after the cached ones.
        """
        logits = self.lm_head(self.hidden_states(idx, kv_cache))  # (B, T, V)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(
                    f"GPT.forward: targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}"
                )
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def hidden_states(self, idx: torch.Tensor, kv_cache: Optional[KVCache] = None) -> torch.Tensor:
        """idx (B, T) -> the last block's output after the final LayerNorm (B, T, C): what lm_head scores,
        and what a fine-tuning head reads (GPT-1's classifier on the extract token)."""
        check_tensor("GPT.forward", "idx", idx, dim=2, dtype="int", shape="(B, T)")
        B, T = idx.shape
        t_past = kv_cache.length if kv_cache is not None else 0
        if t_past + T > self.config.max_len:
            raise ValueError(
                f"GPT.forward: {t_past} cached + {T} new positions exceed max_len="
                f"{self.config.max_len}; crop the context to the last max_len tokens"
            )
        if int(idx.max()) >= self.config.vocab_size or int(idx.min()) < 0:
            raise ValueError(
                f"GPT.forward: token ids must lie in [0, {self.config.vocab_size}), got "
                f"[{int(idx.min())}, {int(idx.max())}]"
            )
        pos = torch.arange(t_past, t_past + T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx)  # (B, T, C)
        if not self.config.rope:
            x = x + self.transformer.wpe(pos)  # + learned position vectors
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, kv_cache, i, pos)
        return self.transformer.ln_f(x)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        use_cache: bool = True,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Continue each row of idx (B, T) by max_new_tokens sampled tokens -> (B, T + max_new_tokens).

        temperature 0 = greedy. With use_cache, the prompt is run once (the "prefill") and each
        new token then costs one position; the tokens are the same as without the cache.
        """
        check_int("GPT.generate", "max_new_tokens", max_new_tokens, low=0)
        was_training = self.training
        self.eval()
        bs = self.config.max_len
        use_cache = use_cache and self.config.attention != "none"  # nothing to cache without attention
        cache = KVCache(self.config.n_layers, bs) if use_cache else None
        try:
            logits = None
            for _ in range(max_new_tokens):
                if cache is None:
                    logits, _ = self(idx[:, -bs:])  # the whole (cropped) context again
                elif logits is None or cache.length >= bs:
                    cache.reset()  # prefill (or the window is full)
                    logits, _ = self(idx[:, -bs:], kv_cache=cache)
                else:
                    logits, _ = self(idx[:, -1:], kv_cache=cache)  # only the newest token
                nxt = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
                idx = torch.cat([idx, nxt], dim=1)
        finally:
            self.train(was_training)
        return idx


def causal_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Next-token cross-entropy (nats): position t's logits are scored against token t + 1.

    logits (B, T, V) from running the model on input_ids (B, T); the last position has no
    next token and the first token is never a target, so T - 1 predictions per row count.
    This is `transformers`' loss for `labels=input_ids`.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"causal_lm_loss: logits must be (B, T, V), got {tuple(getattr(logits, 'shape', ()))}")
    if not isinstance(input_ids, torch.Tensor) or input_ids.shape != logits.shape[:2]:
        raise ValueError(
            f"causal_lm_loss: input_ids must be (B, T) = {tuple(logits.shape[:2])}, "
            f"got {tuple(getattr(input_ids, 'shape', ()))}"
        )
    pred = logits[:, :-1, :]  # (B, T-1, V) predictions for 1..T-1
    target = input_ids[:, 1:]  # (B, T-1) the tokens that came next
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=ignore_index)


def parameter_formula(config: GPTConfig) -> int:
    """Parameters of GPT(config), from the shapes alone (no memory): the formula behind "124M".

    Per block: 2 LayerNorms (2 x 2C) + c_attn (3C^2 + 3C) + c_proj (C^2 + C) + MLP (8C^2 + 5C);
    plus token (V C) and position (max_len C) tables, the final LayerNorm (2C), and an untied head (V C).
    `course_utils.measure.count_parameters(GPT(config))` counts the built model; the two agree (tested).
    """
    C, V, L = config.d_model, config.vocab_size, config.n_layers
    b = 1 if config.bias else 0
    ln = (C + b * C) if config.layer_norm else 0
    block = 0
    if config.attention != "none":
        block += ln + (3 * C * C + b * 3 * C) + (C * C + b * C)
    if config.mlp:
        block += ln + (8 * C * C + b * 5 * C)
    total = V * C + L * block + ln
    if not config.rope:
        total += config.max_len * C
    if not config.tie_embeddings:
        total += V * C
    return total


# ---------------------------------------------------------------------------------------------
# transformers' GPT-2: the reference implementation
# ---------------------------------------------------------------------------------------------
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# our GPTConfig field -> transformers.GPT2Config's name for it: the one place the two vocabularies meet
HF_GPT2_NAMES = {
    "vocab_size": "vocab_size",
    "max_len": "n_positions",
    "d_model": "n_embd",
    "n_layers": "n_layer",
    "n_heads": "n_head",
}


def hf_gpt2_config(config: GPTConfig):
    """The `transformers.GPT2Config` with the same architecture (raises if ours has no GPT-2 twin)."""
    from transformers import GPT2Config  # optional and heavy: only the comparison needs it

    if config.rope or not config.bias or not config.tie_embeddings or not config.is_full:
        raise ValueError(
            "hf_gpt2_config: GPT-2 has learned positions, biases, a tied head and every block part; got "
            f"rope={config.rope}, bias={config.bias}, tie_embeddings={config.tie_embeddings}, "
            f"attention={config.attention!r}, mlp={config.mlp}, residual={config.residual}, "
            f"layer_norm={config.layer_norm}"
        )
    sizes = {theirs: getattr(config, ours) for ours, theirs in HF_GPT2_NAMES.items()}
    return GPT2Config(
        **sizes,
        activation_function="gelu_new",
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
    )  # GPT-2's 50256 is no id in a smaller vocabulary


def to_hf_gpt2(model: GPT):
    """A `transformers.GPT2LMHeadModel` holding our model's weights (eval mode, same dtype).

    GPT-2 stores its Linear layers as `Conv1D` with the weight transposed (in, out); every
    other tensor has the same name and shape as ours.
    """
    from transformers import GPT2LMHeadModel  # optional and heavy: only the comparison needs it

    if not isinstance(model, GPT):
        raise TypeError(f"to_hf_gpt2: model must be a GPT, got {type(model).__name__}")
    hf = GPT2LMHeadModel(hf_gpt2_config(model.config))
    hf.loss_type = "ForCausalLM"  # its class name maps to no loss, so transformers would warn on stderr and guess
    ours = model.state_dict()
    theirs = hf.state_dict()
    new = {}
    for name, tensor in theirs.items():
        if name not in ours:  # buffers (e.g. a causal-mask "bias") that we do not keep
            new[name] = tensor
            continue
        w = ours[name].detach()
        new[name] = w.t().contiguous() if name.endswith(_CONV1D) else w
    hf.load_state_dict(new)
    ref = next(model.parameters())
    return hf.to(dtype=ref.dtype, device=ref.device).eval()


def from_hf_gpt2(hf_model) -> GPT:
    """Our GPT with the weights of a `transformers.GPT2LMHeadModel` (the inverse of `to_hf_gpt2`)."""
    c = hf_model.config
    if c.activation_function != "gelu_new" or (c.n_inner not in (None, 4 * c.n_embd)):
        raise ValueError(
            f"from_hf_gpt2: need activation 'gelu_new' and n_inner = 4 n_embd, got "
            f"{c.activation_function!r} and {c.n_inner}"
        )
    config = GPTConfig(**{ours: getattr(c, theirs) for ours, theirs in HF_GPT2_NAMES.items()})
    model = GPT(config)
    theirs = hf_model.state_dict()
    new = {name: (theirs[name].t() if name.endswith(_CONV1D) else theirs[name]) for name in model.state_dict()}
    model.load_state_dict(new)
    return model.eval()


def config_dict(config: GPTConfig) -> dict:
    """A plain dict of the config (what a checkpoint stores next to the weights)."""
    return asdict(config)
