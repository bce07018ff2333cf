# expect: rope changed its input `x` in place
def rope(x, positions):
    # overwrites the even entries before the odd ones are computed from them
    d = x.shape[-1]
    w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.to(torch.float64)[:, None] * w[None, :]
    cos, sin = torch.cos(angle), torch.sin(angle)
    x[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    x[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return x
