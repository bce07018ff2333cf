# expect: merge_heads_ raised RuntimeError
def split_heads_(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads_(x):
    B, h, T, d_h = x.shape
    return x.transpose(1, 2).view(B, T, h * d_h)
