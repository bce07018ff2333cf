# expect: return float64
def build_offset_matrix(k, d_model):
    w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    c, s = torch.cos(k * w), torch.sin(k * w)
    blocks = [torch.stack([torch.stack([c[i], s[i]]), torch.stack([-s[i], c[i]])]) for i in range(d_model // 2)]
    return torch.block_diag(*blocks)
