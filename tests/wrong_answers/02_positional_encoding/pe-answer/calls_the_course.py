# expect: your answer calls sinusoidal_encoding, which is not allowed here
def positional_encoding(n_positions, d_model):
    return sinusoidal_encoding(n_positions, d_model, dtype=torch.float64)
