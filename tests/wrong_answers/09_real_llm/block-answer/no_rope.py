# expect: the queries and keys are not rotated
from course_utils.attention import causal_mask, merge_heads, scaled_dot_product_attention, split_heads


def llama_block(x, block, positions):
    """One pre-norm Llama block: x + attn(norm(x)), then + swiglu(norm(.)); (B, T, d) -> (B, T, d)."""
    config, attn, mlp = block.attn.config, block.attn, block.mlp
    T = x.shape[1]
    h = block.attn_norm(x)
    q = split_heads(attn.q_proj(h), config.n_heads)
    k = split_heads(attn.k_proj(h), config.n_kv_heads)
    v = split_heads(attn.v_proj(h), config.n_kv_heads)
    n_rep = config.n_heads // config.n_kv_heads
    k = k.repeat_interleave(n_rep, dim=1)
    v = v.repeat_interleave(n_rep, dim=1)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(T))
    x = x + attn.o_proj(merge_heads(out))
    h = block.mlp_norm(x)
    return x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))
