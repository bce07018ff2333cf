# expect: the exponent uses the column index j
def positional_encoding(n_positions, d_model):
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pos = torch.arange(n_positions, dtype=torch.float64)
    for j in range(d_model):
        angle = pos / 10000 ** (j / d_model)
        pe[:, j] = torch.sin(angle) if j % 2 == 0 else torch.cos(angle)
    return pe
