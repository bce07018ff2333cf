# expect: this matrix works on the concatenated layout
def build_offset_matrix(k, d_model):
    half = d_model // 2
    w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * w), torch.sin(k * w)
    M = torch.zeros(d_model, d_model, dtype=torch.float64)
    idx = torch.arange(half)
    M[idx, idx], M[idx, idx + half] = c, s  # sin part of pair i lives at i, cos at half + i
    M[idx + half, idx], M[idx + half, idx + half] = -s, c
    return M
