"""Today's decoder in one readable file: the Llama architecture of SmolLM2, loaded from its GGUF file.

    token embedding -> n_layers x [x + attn(RMSNorm(x)), x + mlp(RMSNorm(x))]   (pre-norm blocks)
                    -> RMSNorm -> lm_head (tied to the embedding) -> logits (B, T, V)

It is notebook 05's GPT with four parts grown up, each one a small module here:
- `RMSNorm` for LayerNorm: no mean, no bias, x / rms(x) * weight (Zhang & Sennrich 2019);
- rotary positions (notebook 02's `apply_rope`) inside attention instead of a position table;
- grouped-query attention: n_heads query heads share n_kv_heads key/value heads
  (`expand_kv_heads`; Ainslie et al. 2023), so the KV cache of notebook 08 holds n_kv_heads
  heads, a third of the keys and values for SmolLM2 (9 query heads, 3 key/value heads);
- the SwiGLU MLP: down(silu(gate(x)) * up(x)) (Shazeer 2020), three matrices, no bias.
Attention is notebook 01's `scaled_dot_product_attention` with the causal mask of the cache.

`load_gguf(path)` builds the model from a GGUF file read by `course_utils.gguf_file`: the sizes
from its metadata (`LlamaConfig.from_gguf`), every weight dequantized to float32.
`tests/test_llama.py` and notebook 09 check the logits against `transformers`' Llama.

Concessions, admitted up front:
- llama.cpp stores each head's query and key rows so that RoPE rotates consecutive pairs
  (2i, 2i+1), the RoFormer layout `apply_rope` uses; `transformers` permutes those rows back to
  its "rotate half" layout (dimension i with i + d/2). We keep the file's rows as they are, so
  our q/k weights are a fixed row permutation of `transformers`' (`hf_rows`), and the
  logits are the same.
- No padding masks: a batch of prompts of different lengths is padded on the right, where causal
  attention never lets a real token see a pad (compare only the real positions).
- float32 on the CPU; the 4-bit weights are dequantized once at load time (540 MB for SmolLM2),
  not on the fly as llama.cpp does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.attention import merge_heads, scaled_dot_product_attention, split_heads
from course_utils.checks import check_choice, check_fields, check_int, check_number, check_tensor
from course_utils.gguf_file import GGUFFile, read_gguf
from course_utils.kvcache import KVCache, shifted_causal_mask
from course_utils.positional import apply_rope
from course_utils.sampling import sample_next

__all__ = [
    "LlamaConfig",
    "RMSNorm",
    "expand_kv_heads",
    "LlamaAttention",
    "SwiGLU",
    "LlamaBlock",
    "Llama",
    "load_gguf",
    "hf_rows",
    "hf_llama_config",
    "to_hf_llama",
]


@dataclass
class LlamaConfig:
    """Sizes of a Llama decoder. The defaults are SmolLM2-135M.

    n_heads query heads and n_kv_heads key/value heads (n_heads a multiple of it) over d_model
    features; d_ff the width of the SwiGLU MLP; rope_base the base of RoPE's wavelengths;
    norm_eps RMSNorm's epsilon; max_len the longest context the model was trained for;
    rope_angles the precision of RoPE's angles: "float32", as Llama computes them in training
    (transformers' LlamaRotaryEmbedding), or "float64", notebook 02's more exact default.
    """

    vocab_size: int = 49152
    max_len: int = 8192
    n_layers: int = 30
    n_heads: int = 9
    n_kv_heads: int = 3
    d_model: int = 576
    d_ff: int = 1536
    rope_base: float = 100000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    rope_angles: str = "float32"

    def __post_init__(self):
        check_fields("LlamaConfig", self, ("vocab_size", "max_len", "n_layers", "n_heads", "n_kv_heads", "d_model"))
        check_int("LlamaConfig", "d_ff", self.d_ff)
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"LlamaConfig: d_model={self.d_model} must split into n_heads={self.n_heads} heads of even size (RoPE)"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"LlamaConfig: n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads} "
                "(each key/value head serves n_heads / n_kv_heads query heads)"
            )
        check_number("LlamaConfig", "rope_base", self.rope_base, low=1, low_open=True)
        check_number("LlamaConfig", "norm_eps", self.norm_eps, low=0, low_open=True)
        check_choice("LlamaConfig", "rope_angles", self.rope_angles, ("float32", "float64"))

    @property
    def head_size(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_gguf(cls, metadata: dict, n_layers: Optional[int] = None) -> "LlamaConfig":
        """The sizes a GGUF file's metadata states (`llama.*` keys); n_layers < the file's keeps the first ones."""
        arch = metadata.get("general.architecture")
        if arch != "llama":
            raise ValueError(f"LlamaConfig.from_gguf: the file holds a {arch!r} model; this module reads 'llama'")
        m = lambda key: metadata[f"llama.{key}"]  # noqa: E731
        layers = m("block_count")
        if n_layers is not None:
            layers = check_int("LlamaConfig.from_gguf", "n_layers", n_layers, high=layers)
        vocab = metadata.get("llama.vocab_size", len(metadata.get("tokenizer.ggml.tokens", [])))
        return cls(
            vocab_size=vocab,
            max_len=m("context_length"),
            n_layers=layers,
            n_heads=m("attention.head_count"),
            n_kv_heads=metadata.get("llama.attention.head_count_kv", m("attention.head_count")),
            d_model=m("embedding_length"),
            d_ff=m("feed_forward_length"),
            rope_base=metadata.get("llama.rope.freq_base", 10000.0),
            norm_eps=m("attention.layer_norm_rms_epsilon"),
        )


# ---------------------------------------------------------------------------------------------
# the modules
# ---------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dimension: LayerNorm without the mean and the bias.

    The mean square is taken in float32 whatever x's dtype, as Llama does.

    >>> RMSNorm(2)(torch.tensor([[3.0, 4.0]])).detach()      # rms = sqrt(12.5)
    tensor([[0.8485, 1.1314]])
    """

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = check_number("RMSNorm", "eps", eps, low=0, low_open=True)
        self.weight = nn.Parameter(torch.ones(check_int("RMSNorm", "d_model", d_model)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., d)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def expand_kv_heads(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, h_kv, T, d) -> (B, h_kv * n_rep, T, d): each key/value head repeated for its n_rep query heads.

    Query head j reads key/value head j // n_rep (heads 0, 1, 2 share kv head 0 when n_rep = 3).

    >>> expand_kv_heads(torch.tensor([[[[1.0]], [[2.0]]]]), 2).flatten()
    tensor([1., 1., 2., 2.])
    """
    check_tensor("expand_kv_heads", "x", x, dim=4, shape="(B, h_kv, T, d)")
    check_int("expand_kv_heads", "n_rep", n_rep)
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


class LlamaAttention(nn.Module):
    """Causal grouped-query self-attention with rotary positions; the cache stores n_kv_heads heads."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        d, kv = config.d_model, config.n_kv_heads * config.head_size
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv, bias=False)
        self.v_proj = nn.Linear(d, kv, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, kv_cache: Optional[KVCache] = None, layer: int = 0):
        c = self.config
        B, T, _ = x.shape  # (B, T, d_model)
        q = split_heads(self.q_proj(x), c.n_heads)  # (B, h, T, d_head)
        k = split_heads(self.k_proj(x), c.n_kv_heads)  # (B, h_kv, T, d_head)
        v = split_heads(self.v_proj(x), c.n_kv_heads)
        angles = torch.float32 if c.rope_angles == "float32" else torch.float64  # see LlamaConfig
        q = apply_rope(q, positions, c.rope_base, angle_dtype=angles)
        k = apply_rope(k, positions, c.rope_base, angle_dtype=angles)
        t_past = 0
        if kv_cache is not None:
            t_past = kv_cache.stored(layer)
            k, v = kv_cache.update(layer, k, v)  # (B, h_kv, t_past + T, d_head)
        n_rep = c.n_heads // c.n_kv_heads
        k, v = expand_kv_heads(k, n_rep), expand_kv_heads(v, n_rep)  # (B, h, t_past + T, d_head)
        out, _ = scaled_dot_product_attention(q, k, v, shifted_causal_mask(T, t_past, x.device))
        return self.o_proj(merge_heads(out))  # (B, T, d_model)


class SwiGLU(nn.Module):
    """The gated MLP: down(silu(gate(x)) * up(x)), d_model -> d_ff -> d_model, no biases."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.up_proj = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down_proj = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    """Pre-norm block: x + attn(RMSNorm(x)), then x + mlp(RMSNorm(x))."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = LlamaAttention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x, positions, kv_cache=None, layer=0):
        x = x + self.attn(self.attn_norm(x), positions, kv_cache, layer)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    """The decoder: token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"Llama: config must be a LlamaConfig, got {type(config).__name__}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(LlamaBlock(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight  # one matrix: embed a token, and score it

    def hidden_states(self, idx: torch.Tensor, kv_cache: Optional[KVCache] = None, final_norm: bool = True):
        """idx (B, T) -> the last block's output (B, T, d_model), after the final RMSNorm unless final_norm=False."""
        check_tensor("Llama.forward", "idx", idx, dim=2, dtype="int", shape="(B, T)")
        t_past = kv_cache.length if kv_cache is not None else 0
        if int(idx.max()) >= self.config.vocab_size or int(idx.min()) < 0:
            raise ValueError(
                f"Llama.forward: token ids must lie in [0, {self.config.vocab_size}), "
                f"got [{int(idx.min())}, {int(idx.max())}]"
            )
        positions = torch.arange(t_past, t_past + idx.shape[1], device=idx.device)  # (T,)
        x = self.embed(idx)  # (B, T, d_model)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, kv_cache, i)
        return self.norm(x) if final_norm else x

    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None, kv_cache: Optional[KVCache] = None):
        """idx (B, T) -> (logits (B, T, V), mean cross-entropy in nats against targets (B, T), or None).

        targets are already shifted (the id that follows each position), -100 = ignore. With a
        kv_cache, idx holds only the new tokens; their positions continue after the cached ones.
        """
        logits = self.lm_head(self.hidden_states(idx, kv_cache))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        use_cache: bool = True,
        stop_id: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Continue idx (B, T) by up to max_new_tokens tokens -> (B, T + new); temperature 0 = greedy.

        With use_cache the prompt runs once (the prefill) and each new token costs one position
        (notebook 08). Generation stops early once every row has produced stop_id (e.g. <|im_end|>).
        """
        check_int("Llama.generate", "max_new_tokens", max_new_tokens, low=0)
        if idx.shape[1] + max_new_tokens > self.config.max_len:
            raise ValueError(
                f"Llama.generate: {idx.shape[1]} prompt + {max_new_tokens} new tokens exceed max_len="
                f"{self.config.max_len}; shorten the prompt or ask for fewer tokens"
            )
        cache = KVCache(self.config.n_layers, idx.shape[1] + max_new_tokens) if use_cache else None
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        logits = None
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = self(idx)  # the whole context again
            else:
                logits, _ = self(idx if logits is None else idx[:, -1:], kv_cache=cache)  # prefill, then one token
            nxt = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
            if stop_id is not None:
                done |= nxt[:, 0] == stop_id
                if bool(done.all()):
                    break
        return idx


# ---------------------------------------------------------------------------------------------
# loading a GGUF file
# ---------------------------------------------------------------------------------------------
# our parameter name (block i as {i}) -> the GGUF tensor name
GGUF_NAMES = {
    "embed.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "blocks.{i}.attn_norm.weight": "blk.{i}.attn_norm.weight",
    "blocks.{i}.attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "blocks.{i}.attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "blocks.{i}.attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "blocks.{i}.attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "blocks.{i}.mlp_norm.weight": "blk.{i}.ffn_norm.weight",
    "blocks.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "blocks.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "blocks.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


def load_gguf(path: str | Path | GGUFFile, n_layers: Optional[int] = None) -> Llama:
    """A Llama in eval mode with the weights of a GGUF file, dequantized to float32.

    n_layers < the file's builds only the first blocks (a quick look at a big file; the logits
    of such a model mean nothing, its hidden states after those blocks are exact).
    """
    gguf = path if isinstance(path, GGUFFile) else read_gguf(path)
    config = LlamaConfig.from_gguf(gguf.metadata, n_layers)
    untied = "output.weight" in gguf.tensors
    config.tie_embeddings = not untied
    with torch.device("meta"):  # no memory for random weights that are overwritten at once
        model = Llama(config)
    state = {}
    for ours, theirs in GGUF_NAMES.items():
        for i in range(config.n_layers) if "{i}" in ours else [None]:
            state[ours.format(i=i)] = gguf.tensor(theirs.format(i=i))
    if untied:
        state["lm_head.weight"] = gguf.tensor("output.weight")
    model.load_state_dict(state, assign=True, strict=False)
    if config.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing:
        raise ValueError(f"load_gguf: {gguf.path.name} lacks the weights for {missing[:3]} ...")
    return model.eval()


def hf_rows(n_heads: int, head_size: int) -> torch.Tensor:
    """Row order r with W_hf = W_gguf[r] for a q or k weight: llama.cpp's pairs (2i, 2i+1) -> (i, i + d/2).

    >>> hf_rows(1, 4)
    tensor([0, 2, 1, 3])
    """
    check_int("hf_rows", "n_heads", n_heads)
    half = torch.arange(head_size).reshape(head_size // 2, 2).T.reshape(head_size)  # 0, 2, 4, ..., 1, 3, 5, ...
    return (torch.arange(n_heads)[:, None] * head_size + half).reshape(-1)


# ---------------------------------------------------------------------------------------------
# the bridge to transformers (the reference implementation)
# ---------------------------------------------------------------------------------------------
def hf_llama_config(config: LlamaConfig):
    """The `transformers.LlamaConfig` of our sizes: the one place our names meet theirs."""
    import transformers  # optional: only for comparisons

    return transformers.LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        max_position_embeddings=config.max_len,
        rope_theta=config.rope_base,
        rms_norm_eps=config.norm_eps,
        tie_word_embeddings=config.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
    )


def to_hf_llama(model: Llama):
    """`transformers.LlamaForCausalLM` (eval, float32) with our model's weights; q/k rows put back in its order.

    A quick reference when loading the GGUF file with `transformers` is too slow (SMOKE runs), and the
    base model `peft` adapts in notebook 09's comparison.
    """
    import transformers  # optional: only for comparisons

    if not isinstance(model, Llama):
        raise TypeError(f"to_hf_llama: model must be a Llama, got {type(model).__name__}")
    c = model.config
    hf = transformers.LlamaForCausalLM(hf_llama_config(c))
    q_rows, k_rows = hf_rows(c.n_heads, c.head_size), hf_rows(c.n_kv_heads, c.head_size)
    state = {"model.embed_tokens.weight": model.embed.weight, "model.norm.weight": model.norm.weight}
    if not c.tie_embeddings:
        state["lm_head.weight"] = model.lm_head.weight
    parts = {"attn_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm", "attn": "self_attn", "mlp": "mlp"}
    for name, p in model.blocks.state_dict().items():
        i, part, *rest = name.split(".")
        w = p[q_rows] if rest[0] == "q_proj" else p[k_rows] if rest[0] == "k_proj" else p
        state[".".join(["model.layers", i, parts[part], *rest])] = w.detach().clone()
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"to_hf_llama: names do not match transformers' ({unexpected[:2]}, {missing[:2]})")
    return hf.float().eval()
