# expect: the features are dealt out round-robin
def split_heads_(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, T, D // n_heads, n_heads).permute(0, 3, 1, 2)


def merge_heads_(x):
    B, h, T, d_h = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_h)
