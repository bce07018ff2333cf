# expect: cos and sin are in each other's places
def build_offset_matrix(k, d_model):
    w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * w), torch.sin(k * w)
    blocks = [torch.tensor([[s[i], c[i]], [-c[i], s[i]]], dtype=torch.float64) for i in range(d_model // 2)]
    return torch.block_diag(*blocks)
