# expect: largest error
def build_offset_matrix(k, d_model):
    # frequencies and angles in float16: visibly wrong for large k
    w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float16) / d_model)
    a = (k * w.double()).half().double()
    c, s = torch.cos(a), torch.sin(a)
    blocks = [torch.stack([torch.stack([c[i], s[i]]), torch.stack([-s[i], c[i]])]) for i in range(d_model // 2)]
    return torch.block_diag(*blocks)
