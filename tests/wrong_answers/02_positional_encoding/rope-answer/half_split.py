# expect: the Llama/GPT-NeoX layout
def rope(x, positions):
    d = x.shape[-1]
    w = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.to(torch.float64)[:, None] * w[None, :]
    cos, sin = torch.cos(angle), torch.sin(angle)
    first, second = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)
