"""Notebook 09's graded checks: one Q4_1 block, RMSNorm, the GQA key/value expansion, a Llama block, attention over the cache.

The visible part of each test cell works one example by hand and calls a `..._properties` check
from here; the hidden part calls `check_...`: the course's reference (`course_utils.llama`,
`course_utils.gguf_file`) on inputs of several kinds, with the usual mistakes named where the
input tells them apart. Messages describe an input, never print it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import torch.nn.functional as F

from course_utils import attention, gguf_file, llama, positional
from course_utils.tools.grading import call, expect, expect_close, expect_dtype, expect_shape

__all__ = [
    "rms_norm_properties",
    "check_rms_norm",
    "expand_kv_properties",
    "check_expand_kv",
    "llama_block_properties",
    "check_llama_block",
    "q4_1_block",
    "dequantize_block_properties",
    "check_dequantize_block",
    "attend_properties",
    "check_attend_to_cache",
    "rms_norm_reference",
    "attend_to_cache_reference",
]


# ---- Exercise 2: RMSNorm -------------------------------------------------------------------------


def rms_norm_reference(x, weight, eps=1e-5):
    """What rms_norm must return: the normalised x scaled by weight (the fallback of a student copy)."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rms_mistakes(x, weight, eps) -> dict:
    ms = x.pow(2).mean(-1, keepdim=True)
    centred = x - x.mean(-1, keepdim=True)
    return {
        "a LayerNorm: RMSNorm does not subtract the mean, it divides by sqrt(mean(x^2) + eps)": weight
        * centred
        * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + eps),
        "eps added outside the square root (use sqrt(mean(x^2) + eps))": weight * x / (ms.sqrt() + eps),
        "the sum of squares instead of their mean": weight * x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps),
        "the learned weight is not applied (multiply by weight at the end)": x * torch.rsqrt(ms + eps),
        "the mean square taken over the wrong dimension (normalise each vector, dim=-1)": weight
        * x
        * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps),
    }


def rms_norm_properties(rms_norm) -> None:
    """Same shape and dtype; a vector and twice that vector normalise to the same output."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 3, 8, generator=g), torch.rand(8, generator=g) + 0.5
    y = call(rms_norm, x, w, 1e-6)
    expect_shape(y, x.shape, "rms_norm's output for x of shape (2, 3, 8)")
    expect_dtype(y, torch.float32, "rms_norm's output")
    on = "a batch of random vectors"
    expect_close(y, rms_norm_reference(x, w, 1e-6), "rms_norm's output", mistakes=_rms_mistakes(x, w, 1e-6), on=on)
    expect_close(
        call(rms_norm, 2 * x, w, 1e-6), y, "rms_norm(2 x) (it should equal rms_norm(x): scale-free)", atol=1e-4
    )


def check_rms_norm(rms_norm) -> None:
    """Vectors of very different sizes, a row with a large mean, batch and odd widths, float64, a large eps."""
    g = torch.Generator().manual_seed(1)
    cases = [
        (
            torch.randn(4, 7, generator=g) * torch.tensor([[0.01], [1.0], [30.0], [1000.0]]),
            1e-5,
            "rows of very different sizes",
        ),
        (torch.randn(2, 5, 6, generator=g) + 3.0, 1e-5, "a batch whose vectors have a large mean"),
        (torch.randn(1, 3, generator=g, dtype=torch.float64), 1e-5, "float64 vectors of width 3"),
        (torch.randn(3, 10, generator=g) * 0.01, 0.5, "tiny vectors with eps = 0.5"),
    ]
    for x, eps, on in cases:
        w = torch.rand(x.shape[-1], generator=g, dtype=x.dtype) + 0.5
        y = call(rms_norm, x, w, eps)
        expect_dtype(y, x.dtype, f"rms_norm's output (on {on})")
        expect_close(y, rms_norm_reference(x, w, eps), "rms_norm's output", mistakes=_rms_mistakes(x, w, eps), on=on)


# ---- Exercise 3: the GQA key/value expansion ------------------------------------------------------


def _expand_mistakes(x, n_rep) -> dict:
    B, h, T, d = x.shape
    return {
        "the heads are tiled (kv0, kv1, kv0, kv1, ...): query head j must read key/value head j // n_rep, so "
        "repeat each head n_rep times in place (kv0, kv0, kv1, kv1, ...)": x.repeat(1, n_rep, 1, 1),
        "the positions were repeated instead of the heads": x.repeat_interleave(n_rep, dim=2).reshape(
            B, h * n_rep, T, d
        ),
    }


def expand_kv_properties(expand_kv) -> None:
    """(B, h_kv * n_rep, T, d); n_rep = 1 changes nothing."""
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    y = call(expand_kv, x, 3)
    expect_shape(y, (2, 9, 4, 5), "expand_kv's output for 3 key/value heads and n_rep = 3")
    on = "3 key/value heads, n_rep = 3"
    expect_close(y, llama.expand_kv_heads(x, 3), "expand_kv's output", mistakes=_expand_mistakes(x, 3), on=on)
    expect_close(call(expand_kv, x, 1), x, "expand_kv(x, 1) (one query head per key/value head: nothing to repeat)")


def check_expand_kv(expand_kv) -> None:
    """SmolLM2's grouping, one key/value head (multi-query attention), batch and odd sizes, float64."""
    g = torch.Generator().manual_seed(2)
    cases = [
        ((1, 3, 5, 4), 3, torch.float32, "SmolLM2's grouping: 3 key/value heads for 9 query heads"),
        ((2, 1, 3, 2), 4, torch.float32, "one key/value head shared by 4 query heads (multi-query attention)"),
        ((3, 2, 1, 7), 2, torch.float64, "float64, a batch of 3, one position"),
    ]
    for shape, n_rep, dtype, on in cases:
        x = torch.randn(*shape, generator=g, dtype=dtype)
        y = call(expand_kv, x, n_rep)
        ref = llama.expand_kv_heads(x, n_rep)
        expect_shape(y, ref.shape, f"expand_kv's output (on {on})")
        expect_dtype(y, dtype, f"expand_kv's output (on {on})")
        expect_close(y, ref, "expand_kv's output", mistakes=_expand_mistakes(x, n_rep), on=on)


# ---- Exercise 4: one Llama block, assembled -------------------------------------------------------

BLOCK_CONFIG = dict(vocab_size=16, max_len=64, n_layers=1, n_heads=4, n_kv_heads=2, d_model=32, d_ff=48)
FORBIDDEN_BLOCK = (llama.LlamaBlock.forward, llama.LlamaAttention.forward, llama.SwiGLU.forward)


def random_block(seed: int = 0, **sizes) -> llama.LlamaBlock:
    """A LlamaBlock with random weights everywhere (the norms' weights too, so skipping one shows)."""
    torch.manual_seed(seed)
    block = llama.LlamaBlock(llama.LlamaConfig(**{**BLOCK_CONFIG, **sizes}))
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3 if p.dim() > 1 else 1.0)
    return block.eval()


def _block_variant(block, x, positions, kind: str) -> torch.Tensor:
    """The block's output computed with one known mistake."""
    c, a, m = block.attn.config, block.attn, block.mlp
    T = x.shape[1]
    h = x if kind == "post_norm" else block.attn_norm(x)
    q, k, v = (
        attention.split_heads(p(h), n)
        for p, n in ((a.q_proj, c.n_heads), (a.k_proj, c.n_kv_heads), (a.v_proj, c.n_kv_heads))
    )
    if kind != "no_rope":  # (positions shifted by a constant give the same output: RoPE sees offsets only)
        q = positional.apply_rope(q, positions, c.rope_base, angle_dtype=torch.float32)
        k = positional.apply_rope(k, positions, c.rope_base, angle_dtype=torch.float32)
    n_rep = c.n_heads // c.n_kv_heads
    if kind == "tiled":
        k, v = k.repeat(1, n_rep, 1, 1), v.repeat(1, n_rep, 1, 1)
    else:
        k, v = llama.expand_kv_heads(k, n_rep), llama.expand_kv_heads(v, n_rep)
    mask = None if kind == "no_mask" else attention.causal_mask(T)
    att = a.o_proj(attention.merge_heads(attention.scaled_dot_product_attention(q, k, v, mask)[0]))
    if kind == "post_norm":
        x = block.attn_norm(x + att)
        hm = x
    else:
        x = att if kind == "no_residual" else x + att
        hm = block.mlp_norm(x)
    act = F.gelu if kind == "gelu" else F.silu
    gate, up = (m.up_proj, m.gate_proj) if kind == "gate_up_swapped" else (m.gate_proj, m.up_proj)
    mlp = m.down_proj(act(gate(hm)) * up(hm))
    if kind == "post_norm":
        return block.mlp_norm(x + mlp)
    return mlp if kind == "no_residual" else x + mlp


BLOCK_MISTAKES = {
    "no_residual": "the residual connections are missing: each sub-layer's output is added to its input, x + attn(norm(x))",
    "post_norm": "the norms come after the additions (post-norm); Llama normalises each sub-layer's input: x + attn(norm(x))",
    "no_rope": "the queries and keys are not rotated: apply RoPE (apply_rope) to q and k at their positions",
    "tiled": "the key/value heads are tiled (repeat) instead of repeated in place: query head j reads key/value head j // n_rep",
    "no_mask": "there is no causal mask: each position may see only itself and the past",
    "gelu": "the MLP uses GELU: SwiGLU gates with SiLU, down(silu(gate(x)) * up(x))",
    "gate_up_swapped": "gate and up are swapped: the SiLU goes on gate_proj's output, down(silu(gate(x)) * up(x))",
}


def _expect_llama_block(out, block, x, positions, on: str) -> None:
    expect_shape(out, x.shape, f"the block's output (on {on})")
    with torch.no_grad():
        ref = block(x, positions)
        mistakes = {msg: _block_variant(block, x, positions, kind) for kind, msg in BLOCK_MISTAKES.items()}
    expect_close(out, ref, "the block's output", mistakes=mistakes, on=on, atol=1e-4, rtol=1e-4)


def llama_block_properties(llama_block) -> None:
    """(B, T, d) out; causal; a block whose output projections are zero is the identity; shifted positions, same output."""
    block = random_block(0)
    x = torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = call(llama_block, x, block, torch.arange(6) + 3, forbidden=FORBIDDEN_BLOCK)
        expect_shape(out, (2, 6, 32), "the block's output for x of shape (2, 6, 32)")
        _expect_llama_block(out, block, x, torch.arange(6) + 3, "random weights, positions 3 to 8")
        out = call(llama_block, x, block, torch.arange(6), forbidden=FORBIDDEN_BLOCK)
        x2 = x.clone()
        x2[:, -1] += 1.0
        out2 = call(llama_block, x2, block, torch.arange(6), forbidden=FORBIDDEN_BLOCK)
        expect(
            torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-5),
            "changing the last token changed the outputs of earlier positions: the attention needs a causal mask.",
        )
        shifted = call(llama_block, x, block, torch.arange(6) + 9, forbidden=FORBIDDEN_BLOCK)
        expect(
            torch.allclose(out, shifted, atol=1e-4),
            "shifting every position by 9 changed the output: RoPE makes the scores depend on offsets only, so "
            "rotate q and k (not v, not x) by their positions.",
        )
        zero = random_block(1)
        zero.attn.o_proj.weight.zero_()
        zero.mlp.down_proj.weight.zero_()
        expect_close(
            call(llama_block, x, zero, torch.arange(6), forbidden=FORBIDDEN_BLOCK),
            x,
            "the output of a block whose o_proj and down_proj are zero (it should be x itself: both sub-layers add 0)",
        )


def check_llama_block(llama_block) -> None:
    """Random weights: a batch, one position, positions that start later, SmolLM2's head ratio, one kv head."""
    g = torch.Generator().manual_seed(5)
    cases = [
        (random_block(2), torch.randn(2, 7, 32, generator=g), torch.arange(7), "a batch of 2, 7 positions"),
        (random_block(3), torch.randn(1, 1, 32, generator=g), torch.arange(1), "one position"),
        (
            random_block(4),
            torch.randn(1, 5, 32, generator=g),
            torch.arange(11, 16),
            "positions 11 to 15",
        ),
        (
            random_block(5, n_heads=6, n_kv_heads=2, d_model=48),
            torch.randn(2, 4, 48, generator=g),
            torch.arange(4),
            "3 query heads per key/value head",
        ),
        (
            random_block(6, n_kv_heads=1),
            torch.randn(1, 6, 32, generator=g),
            torch.arange(6),
            "one key/value head (multi-query)",
        ),
    ]
    for block, x, positions, on in cases:
        with torch.no_grad():
            out = call(llama_block, x, block, positions, forbidden=FORBIDDEN_BLOCK)
        _expect_llama_block(out, block, x, positions, on)


# ---- Exercise 1: one Q4_1 block -------------------------------------------------------------------


def q4_1_block(d: float, m: float, q) -> torch.Tensor:
    """The 20 stored bytes (uint8) of a Q4_1 block with scale d, minimum m and the 32 codes q (0..15)."""
    q = np.asarray(q, dtype=np.uint8)
    packed = (q[:16] | (q[16:] << 4)).astype(np.uint8)
    head = np.frombuffer(np.float16(d).tobytes() + np.float16(m).tobytes(), dtype=np.uint8)
    return torch.from_numpy(np.concatenate([head, packed]).copy())


def _block_mistakes(block: torch.Tensor) -> dict:
    d = float(block[:2].numpy().view(np.float16)[0])
    m = float(block[2:4].numpy().view(np.float16)[0])
    packed = block[4:].long()
    low, high = packed & 15, packed >> 4
    q = torch.cat([low, high]).float()
    return {
        "the nibbles were read in pairs (weight 2j low, 2j + 1 high): byte j holds weight j in its low four "
        "bits and weight j + 16 in its high four bits": d * torch.stack([low, high], 1).reshape(32).float() + m,
        "the high and low nibbles swapped: weight j is in the LOW four bits of byte j": d
        * torch.cat([high, low]).float()
        + m,
        "the minimum m is not added (Q4_1: x = d * q + m)": d * q,
        "the codes treated as signed (q - 8, that is Q4_0): Q4_1's codes are 0..15, shifted by the minimum m": d
        * (q - 8)
        + m,
        "d and m swapped: the first float16 is the scale d, the second the minimum m": m * q + d,
    }


def _expect_block(out, block, on: str) -> None:
    expect_shape(out, (32,), f"the dequantized block (on {on})")
    expect_dtype(out, torch.float32, f"the dequantized block (on {on})")
    ref = gguf_file.dequantize(block.numpy(), "Q4_1", (32,))
    expect_close(out, ref, "the dequantized block", mistakes=_block_mistakes(block), on=on, atol=1e-6, rtol=1e-6)


def dequantize_block_properties(dequantize_block) -> None:
    """32 float32 weights; the input bytes are left alone; every weight lies in [m, m + 15 d]."""
    block = q4_1_block(0.25, -1.5, list(range(16)) + list(range(15, -1, -1)))
    out = call(dequantize_block, block)
    expect_shape(out, (32,), "the dequantized block")
    expect_dtype(out, torch.float32, "the dequantized block")
    _expect_block(out, block, "codes 0..15, then 15..0")
    expect(
        bool(((out >= -1.5 - 1e-6) & (out <= -1.5 + 15 * 0.25 + 1e-6)).all()),
        "every weight of a Q4_1 block lies between m (code 0) and m + 15 d (code 15).",
    )


def check_dequantize_block(dequantize_block) -> None:
    """Random blocks (all codes, negative scales), a block of SmolLM2's file, a zero-range block."""
    rng = np.random.default_rng(3)
    cases = [(q4_1_block(0.0123, -0.2, rng.integers(0, 16, 32)), "a block with random codes")]
    cases.append((q4_1_block(-0.5, 3.0, rng.integers(0, 16, 32)), "a block with a negative scale"))
    cases.append((q4_1_block(0.0, 0.75, rng.integers(0, 16, 32)), "a block of equal weights (scale 0)"))
    for block, on in cases:
        _expect_block(call(dequantize_block, block), block, on)


# ---- Exercise 5: the new token's attention over the cache -----------------------------------------


def attend_to_cache_reference(q, k_cache, v_cache):
    """What attend_to_cache must return: (B, h, 1, d), each query head over its key/value head's cache."""
    n_rep = q.shape[1] // k_cache.shape[1]
    k, v = llama.expand_kv_heads(k_cache, n_rep), llama.expand_kv_heads(v_cache, n_rep)
    return attention.scaled_dot_product_attention(q, k, v)[0]


def _attend_mistakes(q, k_cache, v_cache) -> dict:
    n_rep = q.shape[1] // k_cache.shape[1]
    k, v = llama.expand_kv_heads(k_cache, n_rep), llama.expand_kv_heads(v_cache, n_rep)
    kt, vt = k_cache.repeat(1, n_rep, 1, 1), v_cache.repeat(1, n_rep, 1, 1)
    scores = q @ k.transpose(-2, -1)
    first = torch.zeros_like(scores, dtype=torch.bool)
    first[..., 0] = True
    return {
        "the scores are not divided by sqrt(d_head)": scores.softmax(-1) @ v,
        "the key/value heads are tiled (repeat) instead of repeated in place (repeat_interleave): query head j "
        "reads key/value head j // n_rep": attention.scaled_dot_product_attention(q, kt, vt)[0],
        "a causal mask: the newest token is the last position, it may attend to every cached key": (
            attention.scaled_dot_product_attention(q, k, v, first)[0]
        ),
        "the softmax is taken over the wrong dimension (normalise over the keys, dim=-1)": (
            (scores / math.sqrt(q.shape[-1])).softmax(-2) @ v
        ),
    }


def _qkv_cache(B, h, h_kv, t, d, seed, dtype=torch.float32, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, h, 1, d, generator=g, dtype=dtype) * scale
    return q, torch.randn(B, h_kv, t, d, generator=g, dtype=dtype), torch.randn(B, h_kv, t, d, generator=g, dtype=dtype)


def attend_properties(attend_to_cache) -> None:
    """(B, h, 1, d); a cache of one position gives back its value in every head that reads it."""
    q, k, v = _qkv_cache(2, 6, 3, 5, 4, seed=0)
    out = call(attend_to_cache, q, k, v)
    expect_shape(out, (2, 6, 1, 4), "the new token's output for 6 query heads over 3 cached key/value heads")
    on = "6 query heads over 3 cached key/value heads, 5 positions"
    expect_close(
        out, attend_to_cache_reference(q, k, v), "the new token's output", mistakes=_attend_mistakes(q, k, v), on=on
    )
    q1, k1, v1 = _qkv_cache(1, 4, 2, 1, 3, seed=1)
    out1 = call(attend_to_cache, q1, k1, v1)
    expect_shape(out1, (1, 4, 1, 3), "the output over a cache of one position")
    expect_close(
        out1, v1.repeat_interleave(2, dim=1), "the output over a cache of one position (all weight on that value)"
    )


def check_attend_to_cache(attend_to_cache) -> None:
    """SmolLM2's heads over a long cache, multi-query attention, float64, queries of very different scales."""
    cases = [
        ((1, 9, 3, 12, 8), torch.float32, 1.0, "SmolLM2's 9 query heads over 3 cached key/value heads"),
        ((2, 4, 1, 7, 5), torch.float32, 1.0, "a batch of 2, one key/value head for 4 query heads"),
        ((1, 2, 2, 6, 4), torch.float64, 1.0, "float64, one query head per key/value head"),
        ((1, 6, 2, 9, 16), torch.float32, 6.0, "large queries (sharp attention)"),
    ]
    for seed, ((B, h, h_kv, t, d), dtype, scale, on) in enumerate(cases, start=2):
        q, k, v = _qkv_cache(B, h, h_kv, t, d, seed, dtype, scale)
        out = call(attend_to_cache, q, k, v)
        expect_shape(out, (B, h, 1, d), f"the new token's output (on {on})")
        expect_dtype(out, dtype, f"the new token's output (on {on})")
        expect_close(
            out, attend_to_cache_reference(q, k, v), "the new token's output", mistakes=_attend_mistakes(q, k, v), on=on
        )
