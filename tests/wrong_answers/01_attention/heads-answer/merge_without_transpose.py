# expect: merged without moving the head dimension back
def split_heads_(x, n_heads):
    B, T, D = x.shape
    return x.reshape(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads_(x):
    B, h, T, d_h = x.shape
    return x.reshape(B, T, h * d_h)
