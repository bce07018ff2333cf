# expect: reshaping straight to (B, h, T, D/h) mixes tokens into heads
def split_heads_(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, n_heads, T, D // n_heads)


def merge_heads_(x):
    B, h, T, d_h = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_h)
