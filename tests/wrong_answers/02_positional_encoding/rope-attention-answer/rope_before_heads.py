# expect: before splitting the heads
def rope_attention(x, qkv, proj, n_heads):
    # rotates the whole (B, T, d_model) q and k, then splits the heads
    B, T, D = x.shape
    d_head = D // n_heads
    q, k, v = qkv(x).split(D, dim=-1)
    w = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * w[None, :]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)

    def turn(t):
        even, odd = t[..., 0::2], t[..., 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)

    q, k = turn(q), turn(k)
    q, k, v = (t.view(B, T, n_heads, d_head).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
    y = weights @ v
    return proj(y.transpose(1, 2).reshape(B, T, D))
