# expect: is not causal
def gpt_block(x, block):
    B, T, C = x.shape
    n_heads = block.attn.config.n_heads
    h = block.ln_1(x)
    q, k, v = block.attn.c_attn(h).split(C, dim=-1)
    q, k, v = (split_heads(t, n_heads) for t in (q, k, v))
    allowed = torch.ones(T, T, dtype=torch.bool).triu()
    out, _ = scaled_dot_product_attention(q, k, v, allowed)
    x = x + block.attn.c_proj(merge_heads(out))
    return x + block.mlp(block.ln_2(x))


def gpt_logits(idx, model):
    wte, wpe = model.transformer.wte, model.transformer.wpe
    x = wte(idx) + wpe(torch.arange(idx.shape[1]))
    for block in model.transformer.h:
        x = gpt_block(x, block)
    x = model.transformer.ln_f(x)
    return x @ wte.weight.T
