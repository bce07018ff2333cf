# expect: has shape
def split_heads_(x, n_heads):
    T, D = x.shape[1:]
    return x[0].reshape(T, n_heads, D // n_heads).transpose(0, 1)[None]


def merge_heads_(x):
    B, h, T, d_h = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_h)
