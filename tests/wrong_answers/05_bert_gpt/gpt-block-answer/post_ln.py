# expect: post-LN
def gpt_block(x, block):
    B, T, C = x.shape
    n_heads = block.attn.config.n_heads
    q, k, v = block.attn.c_attn(x).split(C, dim=-1)
    q, k, v = (split_heads(t, n_heads) for t in (q, k, v))
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    out, _ = scaled_dot_product_attention(q, k, v, allowed)
    x = block.ln_1(x + block.attn.c_proj(merge_heads(out)))  # the 2017 paper's order
    return block.ln_2(x + block.mlp(x))


def gpt_logits(idx, model):
    wte, wpe = model.transformer.wte, model.transformer.wpe
    x = wte(idx) + wpe(torch.arange(idx.shape[1]))
    for block in model.transformer.h:
        x = gpt_block(x, block)
    x = model.transformer.ln_f(x)
    return x @ wte.weight.T
