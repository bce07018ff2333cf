# expect: forgot to rescale l and acc
def tiled_attention(q, k, v, block_q, block_k, is_causal=False):
    T_q, T_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    rows = []
    for i in range(0, T_q, block_q):
        qi = q[..., i : i + block_q, :] / math.sqrt(d)
        m = torch.full((*qi.shape[:-1], 1), float("-inf"), dtype=q.dtype)
        l = torch.zeros_like(m)
        acc = torch.zeros(*qi.shape[:-1], v.shape[-1], dtype=q.dtype)
        for j in range(0, T_k, block_k):
            s = qi @ k[..., j : j + block_k, :].transpose(-2, -1)
            if is_causal:
                s = s.masked_fill(
                    torch.arange(j, j + s.shape[-1]) > torch.arange(i, i + qi.shape[-2])[:, None], float("-inf")
                )
            m = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            p = torch.exp(s - m)
            l = l + p.sum(dim=-1, keepdim=True)
            acc = acc + p @ v[..., j : j + block_k, :]
        rows.append(acc / l)
    return torch.cat(rows, dim=-2)
