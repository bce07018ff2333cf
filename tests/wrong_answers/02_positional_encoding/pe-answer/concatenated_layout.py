# expect: this is the concatenated layout
def positional_encoding(n_positions, d_model):
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)[None, :]
    angles = pos / 10000 ** (two_i / d_model)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
