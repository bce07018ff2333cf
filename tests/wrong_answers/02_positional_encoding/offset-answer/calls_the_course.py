# expect: your answer calls offset_matrix, which is not allowed here
def build_offset_matrix(k, d_model):
    return offset_matrix(k, d_model, dtype=torch.float64)
