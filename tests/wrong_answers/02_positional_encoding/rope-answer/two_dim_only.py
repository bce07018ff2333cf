# expect: rope raised RuntimeError
def rope(x, positions):
    # x[:, 0::2] is right for one (T, d) matrix only: with (B, h, T, d) it slices the wrong dimension
    d = x.shape[-1]
    w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.to(torch.float64)[:, None] * w[None, :]
    cos, sin = torch.cos(angle), torch.sin(angle)
    even, odd = x[:, 0::2], x[:, 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)
