# expect: positional_encoding(3000, 26) is not right
def positional_encoding(n_positions, d_model):
    # hard-codes d_model // 4 pairs' worth of frequencies: right for d = 8, wrong elsewhere
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)[None, :]
    angles = pos / 10000 ** (two_i / 8)
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe
