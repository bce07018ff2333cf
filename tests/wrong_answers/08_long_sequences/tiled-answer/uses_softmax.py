# expect: calls softmax, which is not allowed here
def tiled_attention(q, k, v, block_q, block_k, is_causal=False):
    rows = []
    for i in range(0, q.shape[-2], block_q):  # tiles of queries, all keys at once
        s = q[..., i : i + block_q, :] @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if is_causal:
            s = s.masked_fill(torch.arange(k.shape[-2]) > torch.arange(i, i + s.shape[-2])[:, None], float("-inf"))
        rows.append(torch.softmax(s, dim=-1) @ v)
    return torch.cat(rows, dim=-2)
