# expect: the rotation goes the wrong way
def build_offset_matrix(k, d_model):
    w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * w), torch.sin(k * w)
    blocks = [torch.tensor([[c[i], -s[i]], [s[i], c[i]]], dtype=torch.float64) for i in range(d_model // 2)]
    return torch.block_diag(*blocks)
