# expect: every pair turns by the same angle
def rope(x, positions):
    d = x.shape[-1]
    angle = positions.to(torch.float64)[:, None].expand(-1, d // 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    even, odd = x[..., 0::2], x[..., 1::2]
    y = torch.empty_like(x)
    y[..., 0::2] = even * cos - odd * sin
    y[..., 1::2] = even * sin + odd * cos
    return y
