# expect: your answer computes a tensor larger than one (block_q, block_k) tile
def tiled_attention(q, k, v, block_q, block_k, is_causal=False):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # all the scores at once, then a stable softmax
    if is_causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    w = torch.exp(s - s.amax(dim=-1, keepdim=True))
    return (w / w.sum(dim=-1, keepdim=True)) @ v
