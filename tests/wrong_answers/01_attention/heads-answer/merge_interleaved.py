# expect: the heads are interleaved feature by feature
def split_heads_(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads_(x):
    B, h, T, d_h = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, T, h * d_h)
